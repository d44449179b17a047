//! Secrets and hashes: random tokens, SHA-256, constant-time comparison. Built on `ring`.
//!
//! Tokens are 256 random bits, so a plain SHA-256 is enough to store them (no slow KDF needed):
//! nobody can brute-force a 256-bit preimage.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

/// Prefix of every webhook URL token.
pub const WEBHOOK_TOKEN_PREFIX: &str = "spwh_";
/// Prefix of every per-endpoint API key.
pub const API_KEY_PREFIX: &str = "spak_";
/// Characters of a token kept for display (prefix included).
const DISPLAY_PREFIX_LEN: usize = 12;

/// A freshly generated secret: the value is shown once, only the hash is stored.
pub struct Secret {
    value: String,
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.value
    }
    pub fn sha256(&self) -> [u8; 32] {
        sha256(self.value.as_bytes())
    }
    /// A short, non-secret prefix that lets an admin recognise the token.
    pub fn display_prefix(&self) -> String {
        self.value.chars().take(DISPLAY_PREFIX_LEN).collect()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({}…)", self.display_prefix())
    }
}

/// `prefix` + 256 random bits, base64url without padding.
pub fn generate_secret(prefix: &str) -> Secret {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random source failed");
    Secret {
        value: format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)),
    }
}

pub fn generate_webhook_token() -> Secret {
    generate_secret(WEBHOOK_TOKEN_PREFIX)
}

pub fn generate_api_key() -> Secret {
    generate_secret(API_KEY_PREFIX)
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

/// True when `presented` hashes to `stored_hash`, compared in constant time.
pub fn verify_secret(presented: &str, stored_hash: &[u8]) -> bool {
    constant_time_eq(&sha256(presented.as_bytes()), stored_hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_unique_and_long() {
        let a = generate_webhook_token();
        let b = generate_webhook_token();
        assert!(a.expose().starts_with("spwh_"));
        assert_ne!(a.expose(), b.expose());
        // 32 bytes base64url without padding = 43 characters
        assert_eq!(a.expose().len(), 5 + 43);
        assert_eq!(a.display_prefix().len(), 12);
        assert!(!format!("{a:?}").contains(&a.expose()[12..]));
    }

    #[test]
    fn verify_secret_accepts_only_the_same_value() {
        let key = generate_api_key();
        let hash = key.sha256();
        assert!(verify_secret(key.expose(), &hash));
        assert!(!verify_secret("spak_wrong", &hash));
        assert!(!verify_secret("", &hash));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
