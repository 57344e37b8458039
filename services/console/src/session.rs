//! Signed-in sessions: a random id in an HttpOnly, SameSite=Strict cookie
//! (Secure behind TLS); the user's token and a CSRF token stay in this
//! process's memory, never in a URL, a page or a log. A session ends when
//! its token expires, on sign-out, or when the console restarts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use baove_security::Claims;
use base64::Engine as _;
use cookie::{Cookie, SameSite};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "baove_session";
/// The cookie holding the sign-in form's CSRF token (double submit: the
/// form carries the same value), before any session exists.
pub const SIGN_IN_COOKIE: &str = "baove_signin";
/// The hidden form field every form carries.
pub const CSRF_FIELD: &str = "csrf";

/// One signed-in user.
#[derive(Clone, Debug)]
pub struct Session {
    /// The user's own token: every gRPC call is made with it.
    pub token: String,
    /// What it says (who, role, agency, units, expiry).
    pub claims: Claims,
    /// The token every form of this session must carry back.
    pub csrf: String,
}

impl Session {
    /// Whether the token has expired (the session with it).
    #[must_use]
    pub fn expired(&self) -> bool {
        now_secs() >= self.claims.exp
    }
}

/// The sessions of this process.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for a verified token; returns its id.
    pub fn open(&self, token: String, claims: Claims) -> String {
        let id = random_token();
        let session = Session {
            token,
            claims,
            csrf: random_token(),
        };
        let mut map = self
            .by_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, s| !s.expired());
        map.insert(id.clone(), session);
        id
    }

    /// The live session with this id; an expired one is removed.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self
            .by_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(id) {
            Some(s) if s.expired() => {
                map.remove(id);
                None
            }
            other => other.cloned(),
        }
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }
}

/// 32 random bytes, base64url: session ids and CSRF tokens.
#[must_use]
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The value of cookie `name` in a request's `Cookie` headers.
#[must_use]
pub fn cookie_value(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`, Secure when
/// `secure`; `max_age_secs` 0 removes the cookie.
#[must_use]
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age_secs: i64) -> String {
    Cookie::build((name.to_owned(), value.to_owned()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build()
        .to_string()
}

/// Compares two secrets in time independent of where they differ.
#[must_use]
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Seconds since the Unix epoch.
#[must_use]
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use baove_security::Role;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "op-1".into(),
            role: Role::HotlineOperator,
            agency: String::new(),
            units: vec![],
            iat: 0,
            nbf: None,
            exp,
        }
    }

    #[test]
    fn given_a_session_when_its_token_expires_then_it_is_gone() {
        let sessions = Sessions::default();
        let live = sessions.open("t".into(), claims(now_secs() + 60));
        let dead = sessions.open("t".into(), claims(now_secs() - 1));
        assert!(sessions.get(&live).is_some());
        assert!(sessions.get(&dead).is_none());
        sessions.close(&live);
        assert!(sessions.get(&live).is_none());
    }

    #[test]
    fn given_cookies_then_the_named_one_is_read_and_set_cookie_is_strict() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            "a=1; baove_session=xyz; b=2"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(
            cookie_value(&headers, SESSION_COOKIE).as_deref(),
            Some("xyz")
        );
        assert_eq!(cookie_value(&headers, "c"), None);
        let set = set_cookie(SESSION_COOKIE, "v", true, 60);
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set_cookie(SESSION_COOKIE, "v", false, 60).contains("Secure"));
    }

    #[test]
    fn given_two_secrets_then_only_equal_non_empty_ones_match() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", ""));
    }
}
