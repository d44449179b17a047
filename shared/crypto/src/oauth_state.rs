//! The pending OAuth authorization between "Connect SePay" and the callback (the connector's
//! `state` module re-exports this; it lives here, with no web stack, so it can be fuzzed).
//!
//! The opaque state, the PKCE verifier, the workspace and the start time travel in one cookie,
//! sealed with AES-256-GCM (the token keyring) under an AAD naming the workspace: the browser can
//! neither read the verifier nor move the cookie to another workspace, and a changed byte does not
//! open. The callback compares the returned state in constant time, refuses it after 10 minutes,
//! and records it as used in Postgres so the same cookie and state never work twice.

use crate::seal::Keyring;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The cookie's name; it is scoped to the callback path.
pub const STATE_COOKIE: &str = "sepay_oauth_state";
/// How long a started connection may take to come back.
pub const STATE_TTL_SECS: i64 = 600;

#[derive(Serialize, Deserialize)]
pub struct PendingAuth {
    pub ws_id: Uuid,
    pub state: String,
    pub pkce_verifier: String,
    /// Unix seconds.
    pub issued_at: i64,
}

impl std::fmt::Debug for PendingAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuth")
            .field("ws_id", &self.ws_id)
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Missing, malformed, tampered with, or sealed for another workspace or key.
    #[error("the OAuth state cookie is missing or invalid")]
    BadCookie,
    #[error("the returned state does not match")]
    Mismatch,
    #[error("the authorization took longer than {STATE_TTL_SECS} s")]
    Expired,
}

fn aad(ws_id: Uuid) -> Vec<u8> {
    // its own context, so no other sealed value of the workspace opens as a state cookie
    [b"sepay-oauth-state:".as_slice(), ws_id.as_bytes()].concat()
}

/// `<ws_id>.<sealed JSON, base64url>`: the workspace in clear says which AAD opens it.
pub fn seal(keys: &Keyring, pending: &PendingAuth) -> String {
    let json = serde_json::to_vec(pending).unwrap_or_default();
    format!(
        "{}.{}",
        pending.ws_id,
        URL_SAFE_NO_PAD.encode(keys.seal(&aad(pending.ws_id), &json))
    )
}

pub fn open(keys: &Keyring, cookie: &str) -> Result<PendingAuth, StateError> {
    let (ws, sealed) = cookie.split_once('.').ok_or(StateError::BadCookie)?;
    let ws_id = Uuid::parse_str(ws).map_err(|_| StateError::BadCookie)?;
    // only the exact form `seal` writes (`Uuid::parse_str` also takes upper case, braces, `urn:`
    // and no hyphens): one sealed state has one cookie value (found by fuzz/oauth_callback)
    if ws != ws_id.hyphenated().to_string() {
        return Err(StateError::BadCookie);
    }
    let sealed = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| StateError::BadCookie)?;
    let json = keys.open(&aad(ws_id), &sealed).map_err(|_| StateError::BadCookie)?;
    let pending: PendingAuth = serde_json::from_slice(&json).map_err(|_| StateError::BadCookie)?;
    if pending.ws_id != ws_id {
        return Err(StateError::BadCookie);
    }
    Ok(pending)
}

/// The returned `state` is the one we sent (constant time) and still fresh at `now`.
pub fn verify(pending: &PendingAuth, returned_state: &str, now: i64) -> Result<(), StateError> {
    if !crate::constant_time_eq(pending.state.as_bytes(), returned_state.as_bytes()) {
        return Err(StateError::Mismatch);
    }
    // saturating: no clock reading or sealed time can overflow (found by fuzz/oauth_callback)
    if now.saturating_sub(pending.issued_at) > STATE_TTL_SECS || now < pending.issued_at.saturating_sub(60) {
        return Err(StateError::Expired);
    }
    Ok(())
}

/// What the used-states table stores (never the state itself).
pub fn state_hash(state: &str) -> [u8; 32] {
    crate::sha256(state.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keyring {
        Keyring::parse(&Keyring::generate_spec("k1")).unwrap()
    }

    fn pending(ws_id: Uuid, issued_at: i64) -> PendingAuth {
        PendingAuth {
            ws_id,
            state: "st4te".into(),
            pkce_verifier: "verifier".into(),
            issued_at,
        }
    }

    #[test]
    fn a_sealed_state_opens_and_verifies() {
        let k = keys();
        let ws = Uuid::new_v4();
        let cookie = seal(&k, &pending(ws, 1000));
        assert!(
            !cookie.contains("st4te") && !cookie.contains("verifier"),
            "the cookie is opaque"
        );
        let opened = open(&k, &cookie).unwrap();
        assert_eq!((opened.ws_id, opened.pkce_verifier.as_str()), (ws, "verifier"));
        assert_eq!(verify(&opened, "st4te", 1000 + STATE_TTL_SECS), Ok(()));
    }

    #[test]
    fn tampered_cookies_do_not_open() {
        let k = keys();
        let cookie = seal(&k, &pending(Uuid::new_v4(), 1000));
        let (ws, body) = cookie.split_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("{ws}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(open(&k, &tampered).unwrap_err(), StateError::BadCookie);
        for junk in ["", ".", "nodot", "not-a-uuid.AAAA", &format!("{ws}.***")] {
            assert_eq!(open(&k, junk).unwrap_err(), StateError::BadCookie, "{junk:?}");
        }
        // another keyring (another deployment, a dropped key) cannot open it
        assert_eq!(open(&keys(), &cookie).unwrap_err(), StateError::BadCookie);
    }

    #[test]
    fn only_the_sealed_spelling_of_the_workspace_opens() {
        let k = keys();
        let ws = Uuid::parse_str("a3a1aa72-a1a1-a1a1-a1a1-a1a1a1a1a1a1").unwrap();
        let cookie = seal(&k, &pending(ws, 1000));
        assert!(open(&k, &cookie).is_ok());
        let (_, body) = cookie.split_once('.').unwrap();
        for spelling in [
            ws.hyphenated().to_string().to_uppercase(),
            ws.simple().to_string(),
            ws.braced().to_string(),
            ws.urn().to_string(),
        ] {
            assert_eq!(
                open(&k, &format!("{spelling}.{body}")).unwrap_err(),
                StateError::BadCookie,
                "{spelling}"
            );
        }
    }

    #[test]
    fn verify_never_overflows() {
        for (issued_at, now) in [(i64::MIN, 0), (i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (0, i64::MIN)] {
            assert_eq!(
                verify(&pending(Uuid::nil(), issued_at), "st4te", now),
                Err(StateError::Expired)
            );
        }
        assert_eq!(verify(&pending(Uuid::nil(), i64::MAX), "st4te", i64::MAX), Ok(()));
        assert_eq!(verify(&pending(Uuid::nil(), i64::MIN), "st4te", i64::MIN), Ok(()));
    }

    #[test]
    fn a_cookie_moved_to_another_workspace_does_not_open() {
        let k = keys();
        let cookie = seal(&k, &pending(Uuid::new_v4(), 1000));
        let (_, body) = cookie.split_once('.').unwrap();
        let moved = format!("{}.{body}", Uuid::new_v4());
        assert_eq!(open(&k, &moved).unwrap_err(), StateError::BadCookie);
    }

    #[test]
    fn wrong_or_expired_states_are_refused() {
        let p = pending(Uuid::new_v4(), 1000);
        assert_eq!(verify(&p, "st4tf", 1001), Err(StateError::Mismatch));
        assert_eq!(verify(&p, "", 1001), Err(StateError::Mismatch));
        assert_eq!(verify(&p, "st4te-longer", 1001), Err(StateError::Mismatch));
        assert_eq!(verify(&p, "st4te", 1000 + STATE_TTL_SECS + 1), Err(StateError::Expired));
        assert_eq!(verify(&p, "st4te", 0), Err(StateError::Expired), "issued in the future");
    }

    #[test]
    fn replays_are_recognised_by_the_state_hash() {
        // the table keys on this hash: the same state always maps to the same row
        assert_eq!(state_hash("a"), state_hash("a"));
        assert_ne!(state_hash("a"), state_hash("b"));
    }
}
