//! `POST /{tenant}/oauth2/v2.0/token`: the client-credentials grant and Entra's error shape.

use super::{log, random_id};
use crate::{lock, LoggedRequest, Operation, Shared};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

fn entra_error(status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let trace = random_id();
    let corr = random_id();
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {corr} Timestamp: 2026-01-01 00:00:00Z"),
        "error_codes": [code],
        "timestamp": "2026-01-01 00:00:00Z",
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, axum::Json(body)).into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token` (FACTS §6).
pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let now = shared.clock.now();
    let resp = token_inner(&shared, &tenant, &body, now);
    log(
        &shared,
        LoggedRequest {
            operation: Operation::Token,
            method: "POST".into(),
            path: format!("/{tenant}/oauth2/v2.0/token"),
            at: now,
            status: resp.status().as_u16(),
            in_batch: false,
            id_count: None,
        },
    );
    resp
}

fn token_inner(shared: &Shared, tenant: &str, body: &[u8], now: Instant) -> Response {
    let cfg = &shared.config;
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    let tenant_ok = tenant.eq_ignore_ascii_case(&cfg.tenant_id)
        || cfg
            .tenant_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(tenant));
    if tenant.eq_ignore_ascii_case("common") || tenant.eq_ignore_ascii_case("consumers") {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            9001023,
            "The grant type isn't supported over the /common or /consumers endpoints.",
        );
    }
    if !tenant_ok {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let Some(client_id) = form.get("client_id") else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    if !client_id.eq_ignore_ascii_case(&cfg.client_id) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        );
    }
    match form.get("scope") {
        Some(s) if s.ends_with("/.default") && !s.contains(' ') => {}
        _ => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                70011,
                "The provided value for the input parameter 'scope' is not valid. The scope must be '<resource>/.default'.",
            )
        }
    }
    match (form.get("client_secret"), form.get("client_assertion")) {
        (Some(secret), _) => {
            if *secret != cfg.client_secret {
                return entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                );
            }
            if cfg.secret_expired {
                return entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000222,
                    "The provided client secret keys are expired.",
                );
            }
        }
        (None, Some(assertion)) => {
            let type_ok = form.get("client_assertion_type").map(String::as_str)
                == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
            if !cfg.accept_client_assertion || !type_ok || !assertion_ok(assertion, &cfg.client_id, tenant, &cfg.certificate_thumbprints) {
                return entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    700027,
                    "Client assertion failed signature validation.",
                );
            }
        }
        (None, None) => {
            return entra_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        }
    }
    let token = format!("emu.{}", random_id().replace('-', ""));
    let lifetime = cfg.token_lifetime;
    {
        let mut st = lock(&shared.state);
        st.tokens.insert(token.clone(), now + lifetime);
        st.tokens_issued += 1;
    }
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": token,
    }))
    .into_response()
}

/// Structural check of a client assertion JWT (FACTS §6): `alg` PS256 or RS256, a thumbprint
/// header, `iss` = `sub` = client id, `aud` naming the tenant's token endpoint. The signature
/// is not verified (the emulator holds no certificate).
fn assertion_ok(jwt: &str, client_id: &str, tenant: &str, thumbprints: &[String]) -> bool {
    use base64::Engine as _;
    let dec = |s: &str| -> Option<Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Some(h), Some(c)) = (dec(h), dec(c)) else {
        return false;
    };
    let alg_ok = matches!(
        h.get("alg").and_then(Value::as_str),
        Some("PS256" | "RS256")
    );
    let thumb = h
        .get("x5t#S256")
        .or_else(|| h.get("x5t"))
        .and_then(Value::as_str);
    let thumb_ok =
        thumb.is_some_and(|t| thumbprints.is_empty() || thumbprints.iter().any(|k| k == t));
    let iss_ok = c.get("iss").and_then(Value::as_str) == Some(client_id)
        && c.get("sub").and_then(Value::as_str) == Some(client_id);
    let aud_ok = c
        .get("aud")
        .and_then(Value::as_str)
        .is_some_and(|a| a.ends_with(&format!("/{tenant}/oauth2/v2.0/token")));
    alg_ok && thumb_ok && iss_ok && aud_ok && c.get("exp").is_some() && !sig.is_empty()
}
