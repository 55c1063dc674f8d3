//! Who may see the board: no token (a loopback listener), or a token sent
//! as `Authorization: Bearer <token>` or as the `blf_session` cookie that
//! `/login` sets.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "blf_session";

/// What a client without access is told.
pub const HOW_TO_GET_ACCESS: &str =
    "a token is required: send Authorization: Bearer <HTTP_TOKEN> or log in at /login";

/// Domain separation of the session cookie's value from the token itself.
const SESSION_LABEL: &[u8] = b"sip-blf-sync line-board session v1\0";

/// The access rule: open, or a token.
///
/// The token is never shown (`Debug` prints `Access::Token(..)`) nor
/// logged; only digests of it are kept.
#[derive(Clone, Default)]
pub struct Access {
    secret: Option<Arc<Secret>>,
}

struct Secret {
    /// SHA-256 of the token: what a bearer token is compared with.
    token_digest: [u8; 32],
    /// The `blf_session` cookie's value: hex SHA-256 of a fixed label and
    /// the token, so the same token gives the same cookie after a restart.
    session: String,
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.secret {
            None => f.write_str("Access::Open"),
            Some(_) => f.write_str("Access::Token(..)"),
        }
    }
}

impl Access {
    /// No token: everyone who reaches the listener has access (bind it to
    /// loopback; see [`check_bind`]).
    pub fn open() -> Self {
        Self { secret: None }
    }

    /// `Some(token)` → a token is required; `None`, or a token that is
    /// empty or only whitespace → open (like an unset `HTTP_TOKEN`).
    pub fn new(token: Option<&str>) -> Self {
        match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => Self::open(),
            Some(token) => {
                let mut session = Sha256::new();
                session.update(SESSION_LABEL);
                session.update(token.as_bytes());
                Self {
                    secret: Some(Arc::new(Secret {
                        token_digest: Sha256::digest(token.as_bytes()).into(),
                        session: hex::encode(session.finalize()),
                    })),
                }
            }
        }
    }

    /// Whether a token is required.
    pub fn requires_token(&self) -> bool {
        self.secret.is_some()
    }

    /// Whether `token` is the token (constant time). Always `true` when open.
    pub fn accepts_token(&self, token: &str) -> bool {
        match &self.secret {
            None => true,
            // Comparing digests hides the token's length too.
            Some(secret) => {
                let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
                bool::from(digest.ct_eq(&secret.token_digest))
            }
        }
    }

    /// Whether the request's headers give access: a bearer token or the
    /// session cookie. Always `true` when open.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(secret) = &self.secret else {
            return true;
        };
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split_once(' '))
            .any(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && self.accepts_token(token)
            });
        bearer
            || cookies(headers, SESSION_COOKIE)
                .any(|value| bool::from(value.as_bytes().ct_eq(secret.session.as_bytes())))
    }

    /// The `Set-Cookie` value that logs a browser in, when a token is required.
    pub(crate) fn session_cookie(&self) -> Option<HeaderValue> {
        let secret = self.secret.as_ref()?;
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            secret.session
        ))
        .ok()
    }
}

/// The values of every cookie called `name` in the request.
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"'))
        })
}

/// The 401 answer of the API: `{"error": "..."}`.
pub(crate) fn unauthorized() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({ "error": HOW_TO_GET_ACCESS })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

async fn require_api(State(access): State<Access>, request: Request, next: Next) -> Response {
    if access.allows(request.headers()) {
        next.run(request).await
    } else {
        unauthorized()
    }
}

async fn require_page(State(access): State<Access>, request: Request, next: Next) -> Response {
    if access.allows(request.headers()) {
        next.run(request).await
    } else {
        Redirect::to("/login").into_response()
    }
}

/// Puts every route of `router` behind `access`: without it a request gets
/// 401 `{"error": "..."}` (for the API and the embedding program's own
/// routes such as `/metrics` and `/status`). Open access changes nothing.
pub fn protect(router: Router, access: &Access) -> Router {
    if !access.requires_token() {
        return router;
    }
    router.layer(middleware::from_fn_with_state(access.clone(), require_api))
}

/// Like [`protect`], but a request without access is redirected (303) to
/// `/login`: for pages a person opens.
pub(crate) fn protect_page(router: Router, access: &Access) -> Router {
    if !access.requires_token() {
        return router;
    }
    router.layer(middleware::from_fn_with_state(access.clone(), require_page))
}

/// A listener address that may not be used as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// A non-loopback address without a token.
    #[error(
        "refusing to serve the line board on {addr} without a token: anyone who reaches it \
         would see every line; set HTTP_TOKEN, or bind 127.0.0.1"
    )]
    NoToken {
        /// The address.
        addr: SocketAddr,
    },
}

/// Refuses a non-loopback `addr` without a token (`None`, empty or
/// whitespace). A loopback address (127.0.0.0/8, `::1`) is fine either way.
///
/// ```
/// use line_board::check_bind;
/// assert!(check_bind("127.0.0.1:9090".parse().unwrap(), None).is_ok());
/// assert!(check_bind("0.0.0.0:9090".parse().unwrap(), None).is_err());
/// assert!(check_bind("0.0.0.0:9090".parse().unwrap(), Some("s3cret")).is_ok());
/// ```
pub fn check_bind(addr: SocketAddr, token: Option<&str>) -> Result<(), BindError> {
    let has_token = token.is_some_and(|t| !t.trim().is_empty());
    if addr.ip().is_loopback() || has_token {
        Ok(())
    } else {
        Err(BindError::NoToken { addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn bearer_and_cookie() {
        let access = Access::new(Some("s3cret"));
        assert!(!access.allows(&HeaderMap::new()));
        assert!(access.allows(&headers(&[(header::AUTHORIZATION, "Bearer s3cret")])));
        assert!(access.allows(&headers(&[(header::AUTHORIZATION, "bearer s3cret")])));
        assert!(!access.allows(&headers(&[(header::AUTHORIZATION, "Bearer s3cre")])));
        assert!(!access.allows(&headers(&[(header::AUTHORIZATION, "Basic s3cret")])));
        let cookie = access.session_cookie().unwrap();
        let cookie = cookie.to_str().unwrap();
        assert!(
            cookie.ends_with("; HttpOnly; SameSite=Strict; Path=/"),
            "{cookie}"
        );
        assert!(!cookie.contains("s3cret"));
        let pair = cookie.split(';').next().unwrap();
        assert!(access.allows(&headers(&[(header::COOKIE, &format!("a=b; {pair}; c=d"))])));
        assert!(!access.allows(&headers(&[(header::COOKIE, "blf_session=00")])));
        // The same token after a restart gives the same cookie.
        assert_eq!(
            Access::new(Some("s3cret")).session_cookie().unwrap(),
            access.session_cookie().unwrap()
        );
        assert_ne!(
            Access::new(Some("other")).session_cookie().unwrap(),
            access.session_cookie().unwrap()
        );
    }

    #[test]
    fn open_and_debug() {
        assert!(Access::open().allows(&HeaderMap::new()));
        assert!(!Access::new(Some("  ")).requires_token());
        assert_eq!(
            format!("{:?}", Access::new(Some("s3cret"))),
            "Access::Token(..)"
        );
    }

    #[test]
    fn bind_rule() {
        let any: SocketAddr = "0.0.0.0:9090".parse().unwrap();
        let err = check_bind(any, None).unwrap_err().to_string();
        assert!(
            err.contains("HTTP_TOKEN") && err.contains("127.0.0.1"),
            "{err}"
        );
        assert!(check_bind(any, Some(" ")).is_err());
        assert!(check_bind("[::1]:9090".parse().unwrap(), None).is_ok());
        assert!(check_bind("127.0.0.2:9090".parse().unwrap(), None).is_ok());
        assert!(check_bind("[::]:9090".parse().unwrap(), None).is_err());
    }
}
