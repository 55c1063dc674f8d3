//! `POST /$batch`: payload checks, then each sub-request as its own operation.

use super::{classify, log, operation, Reply};
use crate::{LoggedRequest, Shared};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Instant;

const MAX_BATCH: usize = 20;

/// `POST /$batch` (FACTS §4).
pub(super) async fn batch(shared: &Shared, body: &[u8], arrived: Instant) -> Reply {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Reply::error(400, "BadRequest", "Invalid batch payload format.");
    };
    let Some(reqs) = v.get("requests").and_then(Value::as_array) else {
        return Reply::error(
            400,
            "BadRequest",
            "Invalid batch payload format: 'requests' is missing.",
        );
    };
    if reqs.is_empty() {
        return Reply::error(400, "BadRequest", "The batch contains no requests.");
    }
    if reqs.len() > MAX_BATCH {
        return Reply::error(
            400,
            "BadRequest",
            &format!("Number of batch request steps exceeds the maximum value of {MAX_BATCH}."),
        );
    }
    let mut seen = HashSet::new();
    for r in reqs {
        let id = r.get("id").and_then(Value::as_str);
        let method = r.get("method").and_then(Value::as_str);
        let url = r.get("url").and_then(Value::as_str);
        let (Some(id), Some(_), Some(url)) = (id, method, url) else {
            return Reply::error(
                400,
                "BadRequest",
                "Each batch request needs id, method and url.",
            );
        };
        if !seen.insert(id.to_lowercase()) {
            return Reply::error(
                400,
                "BadRequest",
                &format!("Batch request id '{id}' is not unique."),
            );
        }
        if url.contains("://") || url.starts_with("/v1.0") || url.starts_with("v1.0") {
            return Reply::error(
                400,
                "BadRequest",
                "Batch request urls must be relative to the version.",
            );
        }
    }
    let mut responses = Vec::with_capacity(reqs.len());
    let mut all_ok = true;
    for r in reqs {
        let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
        let method = r
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_uppercase();
        let url = r.get("url").and_then(Value::as_str).unwrap_or_default();
        let url = if url.starts_with('/') {
            url.to_owned()
        } else {
            format!("/{url}")
        };
        let body = r.get("body").filter(|b| !b.is_null()).cloned();
        let has_ct = r
            .get("headers")
            .and_then(Value::as_object)
            .is_some_and(|h| {
                h.iter().any(|(k, v)| {
                    k.eq_ignore_ascii_case("content-type")
                        && v.as_str()
                            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"))
                })
            });
        let reply = match body {
            Some(_) if !has_ct => {
                let r = Reply::error(
                    400,
                    "BadRequest",
                    "A Content-Type header is required when a body is present.",
                );
                log(
                    shared,
                    LoggedRequest {
                        operation: classify(&method, &url).0,
                        method: method.clone(),
                        path: url.clone(),
                        at: shared.clock.now(),
                        status: 400,
                        in_batch: true,
                        id_count: None,
                    },
                );
                r
            }
            b => operation(shared, &method, &url, b.map(Ok), true, arrived).await,
        };
        all_ok &= (200..300).contains(&reply.status);
        let headers: serde_json::Map<String, Value> = reply
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .chain(std::iter::once((
                "Content-Type".to_owned(),
                Value::String("application/json".into()),
            )))
            .collect();
        let mut entry = json!({"id": id, "status": reply.status, "headers": headers});
        if let (Some(b), Some(obj)) = (reply.body, entry.as_object_mut()) {
            obj.insert("body".into(), b);
        }
        responses.push(entry);
    }
    // Correlate by id: the order differs from the request order.
    responses.reverse();
    let status = if !all_ok && shared.config.batch_424_on_failure {
        424
    } else {
        200
    };
    Reply {
        status,
        headers: Vec::new(),
        body: Some(json!({"responses": responses})),
    }
}
