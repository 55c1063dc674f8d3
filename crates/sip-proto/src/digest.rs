//! HTTP Digest authentication for SIP (RFC 7616, RFC 8760, RFC 3261 §22).
//!
//! Written here rather than taken from `rsip`: rsip 0.4's `Algorithm` has no
//! `SHA-512-256`, defaults to SHA-256 when the `algorithm` parameter is absent
//! (RFC 7616 §3.3 says MD5), keeps one `qop` instead of the offered list and has
//! no nonce-count state.
//!
//! Supported: `MD5`, `MD5-sess`, `SHA-256`, `SHA-256-sess`, `SHA-512-256`,
//! `SHA-512-256-sess` (names case-insensitive); `qop=auth` and `auth-int` (used
//! only when `auth` is not offered) or no qop (RFC 2069 style); hex nonce count;
//! random cnonce; `stale=true`; the strongest of several challenges is answered.
//!
//! The server side is here too: [`Challenge::to_header_value`] writes a
//! challenge, [`parse_credentials`] reads the answer and
//! [`Credentials::verify`] checks it.

use md5::Md5;
use sha2::{Digest as _, Sha256, Sha512_256};

use crate::message::{split_top_level_commas, unquote, Message};

/// Digest hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `MD5` (the default when the challenge names none)
    Md5,
    /// `MD5-sess`
    Md5Sess,
    /// `SHA-256`
    Sha256,
    /// `SHA-256-sess`
    Sha256Sess,
    /// `SHA-512-256`
    Sha512_256,
    /// `SHA-512-256-sess`
    Sha512_256Sess,
}

impl Algorithm {
    /// Parses an algorithm name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "MD5" => Self::Md5,
            "MD5-SESS" => Self::Md5Sess,
            "SHA-256" => Self::Sha256,
            "SHA-256-SESS" => Self::Sha256Sess,
            "SHA-512-256" => Self::Sha512_256,
            "SHA-512-256-SESS" => Self::Sha512_256Sess,
            _ => return None,
        })
    }
    /// The name as written in headers.
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Sha512_256 => "SHA-512-256",
            Self::Sha512_256Sess => "SHA-512-256-sess",
        }
    }
    fn is_sess(self) -> bool {
        matches!(
            self,
            Self::Md5Sess | Self::Sha256Sess | Self::Sha512_256Sess
        )
    }
    /// Strength rank: higher is stronger.
    fn strength(self) -> u8 {
        match self {
            Self::Md5 | Self::Md5Sess => 1,
            Self::Sha256 | Self::Sha256Sess => 2,
            Self::Sha512_256 | Self::Sha512_256Sess => 3,
        }
    }
    /// Lower-case hex digest of `data`.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Self::Md5 | Self::Md5Sess => hex::encode(Md5::digest(data)),
            Self::Sha256 | Self::Sha256Sess => hex::encode(Sha256::digest(data)),
            Self::Sha512_256 | Self::Sha512_256Sess => hex::encode(Sha512_256::digest(data)),
        }
    }
}

/// Quality of protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// `auth`
    Auth,
    /// `auth-int` (the body is hashed too)
    AuthInt,
}

/// One `Digest` challenge from a `WWW-Authenticate` or `Proxy-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`
    pub realm: String,
    /// `nonce`
    pub nonce: String,
    /// `opaque`
    pub opaque: Option<String>,
    /// `algorithm` (MD5 when absent)
    pub algorithm: Algorithm,
    /// The offered `qop` values we understand (empty: no qop).
    pub qop: Vec<Qop>,
    /// `stale=true`: the nonce expired, the credentials were right.
    pub stale: bool,
}

/// Longest challenge header value we look at.
const MAX_CHALLENGE_LEN: usize = 4096;

/// Parses every Digest challenge in one header value. Challenges with an
/// unknown algorithm or without realm/nonce are skipped; other schemes too.
pub fn parse_challenges(value: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    if value.len() > MAX_CHALLENGE_LEN {
        return out;
    }
    // Split into challenges: a new one starts with an element `Scheme k=v`.
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    let finish = |c: Option<(String, Vec<(String, String)>)>, out: &mut Vec<Challenge>| {
        if let Some((scheme, params)) = c {
            if scheme.eq_ignore_ascii_case("Digest") {
                if let Some(ch) = challenge_from_params(&params) {
                    out.push(ch);
                }
            }
        }
    };
    for element in split_top_level_commas(value) {
        let element = element.trim();
        let eq = element.find('=');
        let sp = element.find(|c: char| c.is_ascii_whitespace());
        let starts_scheme = match (sp, eq) {
            (Some(s), Some(e)) => s < e,
            (Some(_), None) => true,
            (None, None) => true,
            (None, Some(_)) => false,
        };
        let kv = if starts_scheme {
            finish(current.take(), &mut out);
            let (scheme, rest) = element
                .split_once(|c: char| c.is_ascii_whitespace())
                .unwrap_or((element, ""));
            current = Some((scheme.to_string(), Vec::new()));
            rest.trim()
        } else {
            element
        };
        if let (Some((_, params)), Some((k, v))) = (current.as_mut(), kv.split_once('=')) {
            params.push((k.trim().to_ascii_lowercase(), unquote(v.trim()).to_string()));
        }
    }
    finish(current.take(), &mut out);
    out
}

fn challenge_from_params(params: &[(String, String)]) -> Option<Challenge> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let algorithm = match get("algorithm") {
        Some(a) => Algorithm::from_name(&a)?,
        None => Algorithm::Md5,
    };
    let qop = get("qop")
        .map(|q| {
            q.split(',')
                .filter_map(|t| match t.trim().to_ascii_lowercase().as_str() {
                    "auth" => Some(Qop::Auth),
                    "auth-int" => Some(Qop::AuthInt),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Challenge {
        realm: get("realm")?,
        nonce: get("nonce")?,
        opaque: get("opaque"),
        algorithm,
        qop,
        stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
    })
}

/// The strongest challenge (by algorithm; `qop` offered beats none).
pub fn choose_strongest(challenges: &[Challenge]) -> Option<&Challenge> {
    challenges.iter().max_by_key(|c| {
        (
            c.algorithm.strength(),
            !c.qop.is_empty(),
            !c.algorithm.is_sess(),
        )
    })
}

/// Computes the `response` value (RFC 7616 §3.4.1).
#[allow(clippy::too_many_arguments)]
pub fn compute_response(
    algorithm: Algorithm,
    username: &str,
    password: &str,
    realm: &str,
    nonce: &str,
    cnonce: &str,
    nc: u32,
    qop: Option<Qop>,
    method: &str,
    uri: &str,
    body: &[u8],
) -> String {
    let h = |s: &str| algorithm.hash_hex(s.as_bytes());
    let mut ha1 = h(&format!("{username}:{realm}:{password}"));
    if algorithm.is_sess() {
        ha1 = h(&format!("{ha1}:{nonce}:{cnonce}"));
    }
    let ha2 = match qop {
        Some(Qop::AuthInt) => h(&format!("{method}:{uri}:{}", algorithm.hash_hex(body))),
        _ => h(&format!("{method}:{uri}")),
    };
    match qop {
        Some(q) => {
            let q = if q == Qop::Auth { "auth" } else { "auth-int" };
            h(&format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:{q}:{ha2}"))
        }
        None => h(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// Why a challenge is not answered again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The server challenged the nonce we just answered: the password is wrong.
    #[error("the PBX rejected the password for user {username} (realm {realm}): check the username and password")]
    WrongCredentials {
        /// user name
        username: String,
        /// realm
        realm: String,
    },
    /// No challenge we can answer.
    #[error("the PBX asked for authentication we do not support ({0})")]
    Unsupported(String),
    /// Too many challenges in a row.
    #[error("the PBX keeps challenging (more than {0} times in a row)")]
    TooManyChallenges(u32),
}

/// Digest state of one request stream (the registration, or one subscription):
/// the last challenge, its nonce count and cnonce.
#[derive(Debug, Clone, Default)]
pub struct DigestSession {
    challenge: Option<Challenge>,
    proxy: bool,
    nc: u32,
    cnonce: String,
    /// Challenges answered since the last success.
    challenges_in_row: u32,
    /// Nonce used in the last request sent, if it carried credentials.
    last_sent_nonce: Option<String>,
}

/// At most this many challenges in a row are answered.
const MAX_CHALLENGES_IN_ROW: u32 = 5;

impl DigestSession {
    /// A session with no challenge yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything (e.g. after the server restarted).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// `true` when requests can carry credentials.
    pub fn has_challenge(&self) -> bool {
        self.challenge.is_some()
    }

    /// Takes a 401/407 response; `Ok(())` means: send the request again with
    /// [`authorize`](Self::authorize).
    pub fn on_challenge(&mut self, response: &Message, username: &str) -> Result<(), AuthError> {
        let proxy = response.status() == Some(407);
        let header = if proxy {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let all: Vec<Challenge> = response
            .headers
            .get_all(header)
            .flat_map(parse_challenges)
            .collect();
        let Some(best) = choose_strongest(&all).cloned() else {
            let offered: Vec<&str> = response.headers.get_all(header).collect();
            return Err(AuthError::Unsupported(if offered.is_empty() {
                format!("{} without {header}", response.status().unwrap_or(0))
            } else {
                offered.join(" | ")
            }));
        };
        self.challenges_in_row += 1;
        if self.challenges_in_row > MAX_CHALLENGES_IN_ROW {
            return Err(AuthError::TooManyChallenges(MAX_CHALLENGES_IN_ROW));
        }
        if !best.stale && self.last_sent_nonce.as_deref() == Some(best.nonce.as_str()) {
            return Err(AuthError::WrongCredentials {
                username: username.to_string(),
                realm: best.realm,
            });
        }
        self.proxy = proxy;
        self.nc = 0;
        self.cnonce = hex::encode(rand::random::<[u8; 12]>());
        self.challenge = Some(best);
        Ok(())
    }

    /// Call on a 2xx (or any non-challenge final) response.
    pub fn on_success(&mut self) {
        self.challenges_in_row = 0;
    }

    /// The credentials header (name, value) for a request, if we have a challenge.
    pub fn authorize(
        &mut self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        body: &[u8],
    ) -> Option<(&'static str, String)> {
        let ch = self.challenge.as_ref()?;
        self.nc = self.nc.wrapping_add(1).max(1);
        let qop = if ch.qop.contains(&Qop::Auth) {
            Some(Qop::Auth)
        } else if ch.qop.contains(&Qop::AuthInt) {
            Some(Qop::AuthInt)
        } else {
            None
        };
        let response = compute_response(
            ch.algorithm,
            username,
            password,
            &ch.realm,
            &ch.nonce,
            &self.cnonce,
            self.nc,
            qop,
            method,
            uri,
            body,
        );
        let mut v = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}",
            escape(username),
            escape(&ch.realm),
            escape(&ch.nonce),
            uri,
            response,
            ch.algorithm.name()
        );
        if let Some(q) = qop {
            let q = if q == Qop::Auth { "auth" } else { "auth-int" };
            v.push_str(&format!(
                ", qop={q}, nc={:08x}, cnonce=\"{}\"",
                self.nc, self.cnonce
            ));
        }
        if let Some(o) = &ch.opaque {
            v.push_str(&format!(", opaque=\"{}\"", escape(o)));
        }
        self.last_sent_nonce = Some(ch.nonce.clone());
        let name = if self.proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        Some((name, v))
    }

    /// A session for another request stream that starts from this one's
    /// challenge (so that it needs no challenge round of its own) with a
    /// cnonce and nonce count of its own.
    pub fn fork(&self) -> Self {
        Self {
            challenge: self.challenge.clone(),
            proxy: self.proxy,
            nc: 0,
            cnonce: hex::encode(rand::random::<[u8; 12]>()),
            challenges_in_row: 0,
            last_sent_nonce: None,
        }
    }

    /// Marks that the last request went without credentials.
    pub fn sent_without_credentials(&mut self) {
        self.last_sent_nonce = None;
    }
}

impl Challenge {
    /// A new challenge for a server to send: `qop=auth` when `qop` is set.
    pub fn new(realm: impl Into<String>, nonce: impl Into<String>, algorithm: Algorithm) -> Self {
        Self {
            realm: realm.into(),
            nonce: nonce.into(),
            opaque: None,
            algorithm,
            qop: vec![Qop::Auth],
            stale: false,
        }
    }

    /// The value of a `WWW-Authenticate` / `Proxy-Authenticate` header carrying
    /// this challenge (the server side of [`parse_challenges`]).
    pub fn to_header_value(&self) -> String {
        let mut v = format!(
            "Digest realm=\"{}\", nonce=\"{}\", algorithm={}",
            escape(&self.realm),
            escape(&self.nonce),
            self.algorithm.name()
        );
        if !self.qop.is_empty() {
            let q: Vec<&str> = self
                .qop
                .iter()
                .map(|q| match q {
                    Qop::Auth => "auth",
                    Qop::AuthInt => "auth-int",
                })
                .collect();
            v.push_str(&format!(", qop=\"{}\"", q.join(",")));
        }
        if let Some(o) = &self.opaque {
            v.push_str(&format!(", opaque=\"{}\"", escape(o)));
        }
        if self.stale {
            v.push_str(", stale=true");
        }
        v
    }
}

/// Credentials from an `Authorization` or `Proxy-Authorization` header: what a
/// server checks (see [`Credentials::verify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `username`
    pub username: String,
    /// `realm`
    pub realm: String,
    /// `nonce`
    pub nonce: String,
    /// `uri` (the digest-uri, as the client hashed it)
    pub uri: String,
    /// `response`
    pub response: String,
    /// `algorithm` (MD5 when absent)
    pub algorithm: Algorithm,
    /// `qop`, when the client used one.
    pub qop: Option<Qop>,
    /// `nc` (nonce count), when `qop` is used.
    pub nc: Option<u32>,
    /// `cnonce`
    pub cnonce: Option<String>,
    /// `opaque`
    pub opaque: Option<String>,
}

/// Parses a `Digest` credentials header value. `None` when it is another
/// scheme, lacks a required parameter, or names an unknown algorithm or qop.
pub fn parse_credentials(value: &str) -> Option<Credentials> {
    if value.len() > MAX_CHALLENGE_LEN {
        return None;
    }
    let value = value.trim();
    let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace())?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut params: Vec<(String, &str)> = Vec::new();
    for element in split_top_level_commas(rest) {
        if let Some((k, v)) = element.split_once('=') {
            params.push((k.trim().to_ascii_lowercase(), unquote(v.trim())));
        }
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    let algorithm = match get("algorithm") {
        Some(a) => Algorithm::from_name(a)?,
        None => Algorithm::Md5,
    };
    let qop = match get("qop") {
        None => None,
        Some(q) if q.eq_ignore_ascii_case("auth") => Some(Qop::Auth),
        Some(q) if q.eq_ignore_ascii_case("auth-int") => Some(Qop::AuthInt),
        Some(_) => return None,
    };
    let nc = match get("nc") {
        Some(n) => Some(u32::from_str_radix(n, 16).ok()?),
        None => None,
    };
    Some(Credentials {
        username: get("username")?.replace("\\\"", "\"").replace("\\\\", "\\"),
        realm: get("realm")?.replace("\\\"", "\"").replace("\\\\", "\\"),
        nonce: get("nonce")?.to_string(),
        uri: get("uri")?.to_string(),
        response: get("response")?.to_ascii_lowercase(),
        algorithm,
        qop,
        nc,
        cnonce: get("cnonce").map(str::to_string),
        opaque: get("opaque").map(str::to_string),
    })
}

impl Credentials {
    /// `true` when `response` is what `password` gives for this request
    /// (`method` from the request line, `body` for `auth-int`). The comparison
    /// takes the same time wherever the first difference is.
    pub fn verify(&self, password: &str, method: &str, body: &[u8]) -> bool {
        if self.qop.is_some() && (self.nc.is_none() || self.cnonce.is_none()) {
            return false;
        }
        let expected = compute_response(
            self.algorithm,
            &self.username,
            password,
            &self.realm,
            &self.nonce,
            self.cnonce.as_deref().unwrap_or(""),
            self.nc.unwrap_or(0),
            self.qop,
            method,
            &self.uri,
            body,
        );
        constant_time_eq(expected.as_bytes(), self.response.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7616 §3.9.1
    const USER: &str = "Mufasa";
    const PASS: &str = "Circle of Life";
    const REALM: &str = "http-auth@example.org";
    const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    #[test]
    fn rfc7616_md5_vector() {
        let r = compute_response(
            Algorithm::Md5,
            USER,
            PASS,
            REALM,
            NONCE,
            CNONCE,
            1,
            Some(Qop::Auth),
            "GET",
            "/dir/index.html",
            b"",
        );
        assert_eq!(r, "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc7616_sha256_vector() {
        let r = compute_response(
            Algorithm::Sha256,
            USER,
            PASS,
            REALM,
            NONCE,
            CNONCE,
            1,
            Some(Qop::Auth),
            "GET",
            "/dir/index.html",
            b"",
        );
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc2617_no_qop_md5() {
        // RFC 2069-style response (no qop) as computed by Kamailio/Asterisk.
        let ha1 = Algorithm::Md5.hash_hex(b"u:r:p");
        let ha2 = Algorithm::Md5.hash_hex(b"REGISTER:sip:r");
        let want = Algorithm::Md5.hash_hex(format!("{ha1}:n:{ha2}").as_bytes());
        let got = compute_response(
            Algorithm::Md5,
            "u",
            "p",
            "r",
            "n",
            "c",
            1,
            None,
            "REGISTER",
            "sip:r",
            b"",
        );
        assert_eq!(got, want);
    }

    #[test]
    fn sess_and_auth_int_and_sha512_256() {
        let h = |a: Algorithm, s: &str| a.hash_hex(s.as_bytes());
        for a in [
            Algorithm::Md5Sess,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256Sess,
        ] {
            let ha1 = h(a, &format!("{}:n:c", h(a, "u:r:p")));
            let ha2 = h(a, &format!("SUBSCRIBE:sip:x:{}", a.hash_hex(b"body")));
            let want = h(a, &format!("{ha1}:n:0000000a:c:auth-int:{ha2}"));
            let got = compute_response(
                a,
                "u",
                "p",
                "r",
                "n",
                "c",
                10,
                Some(Qop::AuthInt),
                "SUBSCRIBE",
                "sip:x",
                b"body",
            );
            assert_eq!(got, want, "{a:?}");
        }
        // SHA-512/256 of "abc" (FIPS 180-4 example).
        assert_eq!(
            Algorithm::Sha512_256.hash_hex(b"abc"),
            "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
        );
    }

    #[test]
    fn parses_and_chooses_strongest() {
        let v = r#"Digest realm="127.0.0.1", nonce="abc,def", qop="auth,auth-int", algorithm=sha-256, stale=TRUE, Digest realm="127.0.0.1", nonce="x", algorithm=MD5, Basic realm="y""#;
        let cs = parse_challenges(v);
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0].nonce, "abc,def");
        assert_eq!(cs[0].algorithm, Algorithm::Sha256);
        assert_eq!(cs[0].qop, vec![Qop::Auth, Qop::AuthInt]);
        assert!(cs[0].stale);
        assert_eq!(choose_strongest(&cs).unwrap().nonce, "abc,def");
        // Missing algorithm means MD5; unknown algorithm is skipped.
        let cs = parse_challenges(r#"Digest realm="r", nonce="n""#);
        assert_eq!(cs[0].algorithm, Algorithm::Md5);
        assert!(parse_challenges(r#"Digest realm="r", nonce="n", algorithm=SHA-1"#).is_empty());
        assert!(parse_challenges(r#"Digest realm="r""#).is_empty());
    }

    fn challenge_response(status: u16, header: &str, value: &str) -> Message {
        let raw = format!("SIP/2.0 {status} X\r\nCSeq: 1 REGISTER\r\n{header}: {value}\r\nContent-Length: 0\r\n\r\n");
        Message::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn session_nc_stale_and_wrong_password() {
        let mut s = DigestSession::new();
        assert!(s.authorize("u", "p", "REGISTER", "sip:r", b"").is_none());
        let r = challenge_response(
            401,
            "WWW-Authenticate",
            r#"Digest realm="r", nonce="n1", qop="auth""#,
        );
        s.on_challenge(&r, "u").unwrap();
        let (name, v1) = s.authorize("u", "p", "REGISTER", "sip:r", b"").unwrap();
        assert_eq!(name, "Authorization");
        assert!(v1.contains("nc=00000001"), "{v1}");
        assert!(v1.contains("qop=auth,"), "{v1}");
        let (_, v2) = s.authorize("u", "p", "REGISTER", "sip:r", b"").unwrap();
        assert!(v2.contains("nc=00000002"), "{v2}");
        // Stale: same nonce is fine, new nonce taken.
        let stale = challenge_response(
            401,
            "WWW-Authenticate",
            r#"Digest realm="r", nonce="n2", qop="auth", stale=true"#,
        );
        s.on_challenge(&stale, "u").unwrap();
        let (_, v3) = s.authorize("u", "p", "REGISTER", "sip:r", b"").unwrap();
        assert!(
            v3.contains("nonce=\"n2\"") && v3.contains("nc=00000001"),
            "{v3}"
        );
        // Challenged again for the nonce we just answered: wrong password.
        let again = challenge_response(
            401,
            "WWW-Authenticate",
            r#"Digest realm="r", nonce="n2", qop="auth""#,
        );
        assert!(matches!(
            s.on_challenge(&again, "u"),
            Err(AuthError::WrongCredentials { .. })
        ));
        // 407 gives Proxy-Authorization.
        let mut p = DigestSession::new();
        let r = challenge_response(
            407,
            "Proxy-Authenticate",
            r#"Digest realm="r", nonce="n", algorithm=SHA-256"#,
        );
        p.on_challenge(&r, "u").unwrap();
        let (name, v) = p
            .authorize("u", "p", "SUBSCRIBE", "sip:1001@r", b"")
            .unwrap();
        assert_eq!(name, "Proxy-Authorization");
        assert!(v.contains("algorithm=SHA-256") && !v.contains("qop"), "{v}");
        // A 401 without any usable challenge.
        let r = challenge_response(401, "WWW-Authenticate", r#"Basic realm="r""#);
        assert!(matches!(
            p.on_challenge(&r, "u"),
            Err(AuthError::Unsupported(_))
        ));
    }

    #[test]
    fn server_side_challenge_and_verify() {
        // A challenge the server writes parses back to the same challenge.
        let mut ch = Challenge::new("pbx.test", "n0nce", Algorithm::Sha256);
        ch.opaque = Some("op".into());
        let cs = parse_challenges(&ch.to_header_value());
        assert_eq!(cs, vec![ch.clone()]);
        ch.stale = true;
        assert!(parse_challenges(&ch.to_header_value())[0].stale);

        // What the client session answers verifies with the right password only.
        for algorithm in [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256Sess] {
            let ch = Challenge::new("pbx.test", "abc", algorithm);
            let raw = format!(
                "SIP/2.0 401 Unauthorized\r\nCSeq: 1 REGISTER\r\nWWW-Authenticate: {}\r\nContent-Length: 0\r\n\r\n",
                ch.to_header_value()
            );
            let mut s = DigestSession::new();
            s.on_challenge(&Message::parse(raw.as_bytes()).unwrap(), "blf")
                .unwrap();
            let (_, v) = s
                .authorize("blf", "secret", "SUBSCRIBE", "sip:1001@pbx.test", b"")
                .unwrap();
            let c = parse_credentials(&v).unwrap();
            assert_eq!(c.username, "blf");
            assert_eq!(c.realm, "pbx.test");
            assert_eq!(c.nonce, "abc");
            assert_eq!(c.algorithm, algorithm);
            assert_eq!(c.qop, Some(Qop::Auth));
            assert_eq!(c.nc, Some(1));
            assert!(c.verify("secret", "SUBSCRIBE", b""), "{algorithm:?}");
            assert!(!c.verify("wrong", "SUBSCRIBE", b""));
            assert!(!c.verify("secret", "REGISTER", b""));
        }
    }

    #[test]
    fn rfc7616_credentials_verify() {
        let v = format!(
            r#"Digest username="{USER}", realm="{REALM}", uri="/dir/index.html", algorithm=MD5, nonce="{NONCE}", nc=00000001, cnonce="{CNONCE}", qop=auth, response="8ca523f5e9506fed4657c9700eebdbec", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#
        );
        let c = parse_credentials(&v).unwrap();
        assert!(c.verify(PASS, "GET", b""));
        assert!(!c.verify(PASS, "POST", b""));
        // Other schemes, missing parameters and unknown algorithms give None.
        assert!(parse_credentials("Basic dXNlcjpwYXNz").is_none());
        assert!(parse_credentials(r#"Digest username="u", realm="r""#).is_none());
        assert!(parse_credentials(
            r#"Digest username="u", realm="r", nonce="n", uri="sip:r", response="x", algorithm=SHA-1"#
        )
        .is_none());
        assert!(parse_credentials(
            r#"Digest username="u", realm="r", nonce="n", uri="sip:r", response="x", qop=auth, nc=zz, cnonce="c""#
        )
        .is_none());
        // qop without nc/cnonce never verifies.
        let c = parse_credentials(
            r#"Digest username="u", realm="r", nonce="n", uri="sip:r", response="x", qop=auth"#,
        )
        .unwrap();
        assert!(!c.verify("p", "REGISTER", b""));
    }

    #[test]
    fn endless_stale_challenges_stop() {
        let mut s = DigestSession::new();
        let mut result = Ok(());
        for i in 0..10 {
            let r = challenge_response(
                401,
                "WWW-Authenticate",
                &format!(r#"Digest realm="r", nonce="n{i}", stale=true"#),
            );
            result = s.on_challenge(&r, "u");
            if result.is_err() {
                break;
            }
            s.authorize("u", "p", "REGISTER", "sip:r", b"");
        }
        assert_eq!(
            result,
            Err(AuthError::TooManyChallenges(MAX_CHALLENGES_IN_ROW))
        );
    }
}
