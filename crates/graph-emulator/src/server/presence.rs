//! The presence and user routes once authenticated: what each operation does to the state.

use super::{Reply, Route};
use crate::model::{
    is_guid, parse_iso8601_duration, AppSession, Preferred, PresencePair, StatusMessage,
    MAX_EXPIRATION, MIN_EXPIRATION, PREFERRED_PAIRS, SET_PRESENCE_PAIRS,
};
use crate::{lock, Operation, Shared};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const MAX_PRESENCE_IDS: usize = 650;

fn presence_json(id: &str, pair: &PresencePair, msg: Option<&StatusMessage>) -> Value {
    json!({
        "id": id,
        "availability": pair.availability,
        "activity": pair.activity,
        "statusMessage": msg.map(|m| json!({
            "message": {"content": m.content, "contentType": "text"},
            "expiryDateTime": m.expiry.as_ref().map(|(d, z)| json!({"dateTime": d, "timeZone": z})),
        })),
    })
}

fn str_field<'a>(body: &'a Option<Value>, name: &str) -> Option<&'a str> {
    body.as_ref()?.get(name)?.as_str()
}

fn parse_expiration(
    body: &Option<Value>,
    default: Duration,
    bounded: bool,
) -> Result<Duration, Reply> {
    match body.as_ref().and_then(|b| b.get("expirationDuration")) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => match parse_iso8601_duration(s) {
            Some(d) if !bounded || (MIN_EXPIRATION..=MAX_EXPIRATION).contains(&d) => Ok(d),
            Some(_) => Err(Reply::error(
                400,
                "BadRequest",
                "expirationDuration must be between PT5M and PT4H.",
            )),
            None => Err(Reply::error(
                400,
                "BadRequest",
                "expirationDuration is not an ISO 8601 duration.",
            )),
        },
        Some(_) => Err(Reply::error(
            400,
            "BadRequest",
            "expirationDuration must be a string.",
        )),
    }
}

pub(super) fn execute(
    shared: &Shared,
    op: Operation,
    route: Route,
    body: Option<Value>,
    now: Instant,
) -> Reply {
    let cfg = &shared.config;
    let mut st = lock(&shared.state);
    if op == Operation::GetPresencesByUserId {
        let Some(ids) = body
            .as_ref()
            .and_then(|b| b.get("ids"))
            .and_then(Value::as_array)
        else {
            return Reply::error(400, "BadRequest", "The body must contain 'ids'.");
        };
        if ids.len() > MAX_PRESENCE_IDS {
            return Reply::error(
                400,
                "BadRequest",
                &format!(
                    "At most {MAX_PRESENCE_IDS} user ids are allowed per request; got {}.",
                    ids.len()
                ),
            );
        }
        let mut value = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(id) = id.as_str().filter(|s| is_guid(s)) else {
                return Reply::error(
                    400,
                    "BadRequest",
                    "Every id must be a user object id (GUID).",
                );
            };
            let key = id.to_lowercase();
            match st.users.get_mut(&key) {
                Some(u) => {
                    u.expire(now);
                    value.push(presence_json(id, &u.aggregate(now), None));
                }
                None => value.push(presence_json(
                    id,
                    &PresencePair::new("PresenceUnknown", "PresenceUnknown"),
                    None,
                )),
            }
        }
        return Reply::ok(Some(json!({"value": value})));
    }
    let Some(user_key) = route.user else {
        return Reply::error(400, "BadRequest", "No user in the path.");
    };
    if op == Operation::GetUser {
        let oid = if is_guid(&user_key) {
            Some(user_key.to_lowercase()).filter(|k| st.users.contains_key(k))
        } else {
            st.upn_index.get(&user_key.to_lowercase()).cloned()
        };
        let Some(oid) = oid else {
            return Reply::error(
                404,
                "Request_ResourceNotFound",
                &format!("Resource '{user_key}' does not exist or one of its queried reference-property objects are not present."),
            );
        };
        let upn = st
            .upn_index
            .iter()
            .find(|(_, v)| **v == oid)
            .map(|(k, _)| k.clone());
        return Reply::ok(Some(json!({"id": oid, "userPrincipalName": upn})));
    }
    // Presence routes take object ids only (FACTS §3).
    if !is_guid(&user_key) {
        return Reply::error(
            400,
            "BadRequest",
            "Presence routes require the user's object id (GUID), not a user principal name.",
        );
    }
    let Some(user) = st.users.get_mut(&user_key.to_lowercase()) else {
        return Reply::error(
            404,
            "NotFound",
            &format!("User '{user_key}' was not found."),
        );
    };
    user.expire(now);
    match op {
        Operation::GetPresence => {
            let pair = user.aggregate(now);
            Reply::ok(Some(presence_json(
                &user_key,
                &pair,
                user.status_message.as_ref(),
            )))
        }
        Operation::SetPresence | Operation::ClearPresence => {
            let session_id = str_field(&body, "sessionId");
            if session_id.is_none_or(|s| !s.eq_ignore_ascii_case(&cfg.client_id)) {
                return Reply::error(
                    400,
                    "BadRequest",
                    "sessionId must be the application (client) id of the calling app.",
                );
            }
            if op == Operation::ClearPresence {
                return match user.app_session.take() {
                    Some(_) => Reply::ok(None),
                    None => Reply::error(404, "NotFound", "The presence session does not exist."),
                };
            }
            let pair = (
                str_field(&body, "availability"),
                str_field(&body, "activity"),
            );
            let (Some(a), Some(b)) = pair else {
                return Reply::error(400, "BadRequest", "availability and activity are required.");
            };
            if !SET_PRESENCE_PAIRS.contains(&(a, b)) {
                return Reply::error(
                    400,
                    "BadRequest",
                    &format!(
                        "The availability/activity pair {a}/{b} is not supported by setPresence."
                    ),
                );
            }
            let exp = match parse_expiration(&body, MIN_EXPIRATION, true) {
                Ok(d) => d,
                Err(r) => return r,
            };
            user.app_session = Some(AppSession {
                session_id: cfg.client_id.clone(),
                pair: PresencePair::new(a, b),
                set_at: now,
                expires_at: now + exp,
            });
            Reply::ok(None)
        }
        Operation::SetStatusMessage => {
            let sm = body.as_ref().and_then(|b| b.get("statusMessage"));
            let msg = sm.and_then(|s| s.get("message"));
            let content = msg.and_then(|m| m.get("content")).and_then(Value::as_str);
            let ctype = msg
                .and_then(|m| m.get("contentType"))
                .and_then(Value::as_str);
            let Some(content) = content else {
                return Reply::error(
                    400,
                    "BadRequest",
                    "statusMessage.message.content is required.",
                );
            };
            if ctype.is_some_and(|c| !c.eq_ignore_ascii_case("text")) {
                return Reply::error(400, "BadRequest", "Only contentType 'text' is supported.");
            }
            let expiry = sm
                .and_then(|s| s.get("expiryDateTime"))
                .filter(|v| !v.is_null());
            let expiry = match expiry {
                None => None,
                Some(e) => {
                    let dt = e.get("dateTime").and_then(Value::as_str);
                    let tz = e.get("timeZone").and_then(Value::as_str);
                    match (dt, tz) {
                        // dateTime must not carry an offset (FACTS §2).
                        (Some(dt), Some(tz)) if !dt.ends_with('Z') && !dt.contains('+') => {
                            Some((dt.to_owned(), tz.to_owned()))
                        }
                        _ => {
                            return Reply::error(
                                400,
                                "BadRequest",
                                "expiryDateTime needs dateTime (without offset) and timeZone.",
                            )
                        }
                    }
                }
            };
            user.status_message = Some(StatusMessage {
                content: content.to_owned(),
                expiry,
            });
            Reply::ok(None)
        }
        Operation::SetUserPreferredPresence => {
            let (Some(a), Some(b)) = (
                str_field(&body, "availability"),
                str_field(&body, "activity"),
            ) else {
                return Reply::error(400, "BadRequest", "availability and activity are required.");
            };
            if !PREFERRED_PAIRS.contains(&(a, b)) {
                return Reply::error(400, "BadRequest", "Unsupported preferred presence pair.");
            }
            // Defaults: 1 day for DoNotDisturb/Busy, 7 days otherwise (FACTS §2).
            let default = if a == "DoNotDisturb" || a == "Busy" {
                86_400
            } else {
                7 * 86_400
            };
            let exp = match parse_expiration(&body, Duration::from_secs(default), false) {
                Ok(d) => d,
                Err(r) => return r,
            };
            user.preferred = Some(Preferred {
                pair: PresencePair::new(a, b),
                expires_at: now + exp,
            });
            Reply::ok(None)
        }
        Operation::ClearUserPreferredPresence => {
            user.preferred = None;
            Reply::ok(None)
        }
        _ => Reply::error(400, "BadRequest", "Unsupported operation."),
    }
}
