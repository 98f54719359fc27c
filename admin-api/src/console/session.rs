//! Console sessions: a signed-in person is a random session id in an HttpOnly, SameSite=Strict
//! cookie; the token they signed in with stays here, in memory, and is sent to the API as the
//! bearer of every call the console makes for them. Sessions expire; each carries the CSRF
//! token its forms must send back.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use ssn_ledger::Role;

use super::i18n::Lang;
use crate::error::ApiResult;
use crate::support::random_bytes;

/// How long a session lasts after sign-in (a working day).
pub const SESSION_SECONDS: i64 = 8 * 3600;
/// Sessions held at most; past it the expired ones go, then the oldest.
pub const SESSIONS_MAX: usize = 10_000;
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "konsol_sesi";
/// The cookie that carries the sign-in form's CSRF token (before there is a session).
pub const SIGN_IN_COOKIE: &str = "konsol_masuk";
/// The language cookie's name (`id` or `en`).
pub const LANG_COOKIE: &str = "konsol_bahasa";

/// A signed-in person.
#[derive(Clone)]
pub struct Session {
    /// The bearer secret sent to the API on their behalf; never leaves the process.
    pub secret: String,
    /// The token's name, shown in the header (the audit log has it from the API).
    pub name: String,
    /// The token's role: which menus the console shows.
    pub role: Role,
    /// The CSRF token every form of this session sends back.
    pub csrf: String,
    /// When the session ends (UTC seconds).
    pub expires_at: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The sessions of this process (a restart signs everyone out).
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session; its id, for the cookie.
    pub fn start(&self, secret: String, name: String, role: Role, now: i64) -> ApiResult<String> {
        let id = random_hex()?;
        let session = Session {
            secret,
            name,
            role,
            csrf: random_hex()?,
            expires_at: now + SESSION_SECONDS,
        };
        let mut by_id = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        if by_id.len() >= SESSIONS_MAX {
            by_id.retain(|_, s| s.expires_at > now);
        }
        if by_id.len() >= SESSIONS_MAX
            && let Some(oldest) = by_id
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(id, _)| id.clone())
        {
            by_id.remove(&oldest);
        }
        by_id.insert(id.clone(), session);
        Ok(id)
    }

    /// The live session of `id`; an expired one is forgotten.
    pub fn get(&self, id: &str, now: i64) -> Option<Session> {
        let mut by_id = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        match by_id.get(id) {
            Some(session) if session.expires_at > now => Some(session.clone()),
            Some(_) => {
                by_id.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `id`.
    pub fn end(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// 32 random bytes as hex.
pub fn random_hex() -> ApiResult<String> {
    let bytes: [u8; 32] = random_bytes()?;
    Ok(ssn_ledger::hex(&bytes))
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value for the console: HttpOnly, SameSite=Strict, the console's path,
/// `Secure` when the admin listener is TLS; `max_age_seconds` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age_seconds: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/console; Max-Age={max_age_seconds}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The language the request asks for (its cookie), Indonesian by default.
pub fn lang(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE).map_or(Lang::Id, Lang::from_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_until_it_expires_and_ends_at_sign_out() {
        let sessions = Sessions::default();
        let id = sessions
            .start("secret".into(), "ops".into(), Role::Dinsos, 1_000)
            .unwrap();
        let session = sessions.get(&id, 1_000 + SESSION_SECONDS - 1).unwrap();
        assert_eq!((session.role, session.name.as_str()), (Role::Dinsos, "ops"));
        assert_eq!(session.csrf.len(), 64);
        assert!(sessions.get(&id, 1_000 + SESSION_SECONDS).is_none());
        assert!(
            sessions.get(&id, 1_000).is_none(),
            "an expired session is forgotten"
        );
        let id = sessions
            .start("secret".into(), "ops".into(), Role::Dinsos, 1_000)
            .unwrap();
        sessions.end(&id);
        assert!(sessions.get(&id, 1_000).is_none());
        assert!(sessions.get("not-an-id", 1_000).is_none());
    }

    #[test]
    fn cookies_are_found_by_name_and_set_strict_and_http_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            "a=1; konsol_sesi=abc; konsol_bahasa=en".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "b"), None);
        assert_eq!(lang(&headers), Lang::En);
        assert_eq!(
            set_cookie(SESSION_COOKIE, "abc", 60, true),
            "konsol_sesi=abc; Path=/console; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(!set_cookie(SESSION_COOKIE, "abc", 60, false).contains("Secure"));
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
