//! Secrets and hashes: random tokens, SHA-256, constant-time comparison. Built on `ring`.
//! Also the pure parts of the OAuth state cookie ([`oauth_state`]), cookie lookup ([`cookie`]) and
//! webhook signatures ([`hmac`]), kept here, free of IO and of any web stack, so they can be fuzzed
//! (`fuzz/`).
//!
//! Tokens are 256 random bits, so a plain SHA-256 is enough to store them (no slow KDF needed):
//! nobody can brute-force a 256-bit preimage.

pub mod cookie;
pub mod hmac;
pub mod oauth_state;

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

/// AES-256-GCM sealing of secrets at rest (SePay tokens), bound to a workspace.
///
/// Layout: `1` (format) · key-id length · key id · 12-byte random nonce · ciphertext+tag. The AAD
/// is the workspace id, so a ciphertext copied to another workspace's row does not open. The key
/// id lets keys rotate: new seals use the first key, any listed key opens.
pub mod seal {
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
    use ring::rand::{SecureRandom, SystemRandom};

    const FORMAT: u8 = 1;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum SealError {
        /// The configured keys could not be read.
        BadKeys(String),
        /// No keys are configured and development mode is off.
        NotConfigured,
        /// The ciphertext is malformed, tampered with, sealed for another workspace or under an
        /// unknown key.
        Unopenable,
    }

    impl std::fmt::Display for SealError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Self::BadKeys(why) => write!(f, "token keys: {why}"),
                Self::NotConfigured => f.write_str(
                    "not set: give the sealing keys (kid:base64 of 32 random bytes), or SEPAY_DEV_MODE=true \
                     for local development only",
                ),
                Self::Unopenable => {
                    f.write_str("sealed secret cannot be opened (tampered, another workspace, or unknown key)")
                }
            }
        }
    }

    impl std::error::Error for SealError {}

    pub struct Keyring {
        keys: Vec<(String, LessSafeKey)>,
    }

    impl std::fmt::Debug for Keyring {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
            write!(f, "Keyring({ids:?})")
        }
    }

    /// A fixed, public key for development only (`SEPAY_DEV_MODE`, which `up` turns on).
    pub const DEV_KEYS: &str = "dev:ZGV2ZWxvcG1lbnQta2V5LW5vdC1mb3ItcHJvZHVjdGk=";

    impl Keyring {
        /// The configured keys (`SEPAY_TOKEN_KEYS`). Unset, only development mode may fall back
        /// to the public development key: anyone holding a database dump could open every
        /// token sealed with it.
        pub fn configured(spec: Option<&str>, dev_mode: bool) -> Result<Self, SealError> {
            match spec {
                Some(spec) => Self::parse(spec),
                None if dev_mode => Self::parse(DEV_KEYS),
                None => Err(SealError::NotConfigured),
            }
        }

        /// `kid:base64(32 bytes)[,kid:base64…]`; the first key seals.
        pub fn parse(spec: &str) -> Result<Self, SealError> {
            use base64::Engine;
            let mut keys = Vec::new();
            for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (id, b64) = part
                    .split_once(':')
                    .ok_or_else(|| SealError::BadKeys("expected kid:base64key".into()))?;
                if id.is_empty() || id.len() > 32 {
                    return Err(SealError::BadKeys("key id must be 1 to 32 characters".into()));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| SealError::BadKeys(format!("key {id} is not base64")))?;
                let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
                    .map_err(|_| SealError::BadKeys(format!("key {id} must be 32 bytes")))?;
                keys.push((id.to_owned(), LessSafeKey::new(unbound)));
            }
            if keys.is_empty() {
                return Err(SealError::BadKeys("no key given".into()));
            }
            Ok(Self { keys })
        }

        /// A fresh random key spec (`sepayctl` prints one for operators).
        pub fn generate_spec(id: &str) -> String {
            use base64::Engine;
            let mut bytes = [0u8; 32];
            SystemRandom::new()
                .fill(&mut bytes)
                .expect("the operating system's random source failed");
            format!("{id}:{}", base64::engine::general_purpose::STANDARD.encode(bytes))
        }

        pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
            let (id, key) = &self.keys[0];
            let mut nonce = [0u8; NONCE_LEN];
            SystemRandom::new()
                .fill(&mut nonce)
                .expect("the operating system's random source failed");
            let mut body = plaintext.to_vec();
            key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
                .expect("AES-GCM sealing cannot fail for in-memory sizes");
            let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + body.len());
            out.push(FORMAT);
            out.push(id.len() as u8);
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&nonce);
            out.extend_from_slice(&body);
            out
        }

        pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
            let (&format, rest) = sealed.split_first().ok_or(SealError::Unopenable)?;
            let (&id_len, rest) = rest.split_first().ok_or(SealError::Unopenable)?;
            if format != FORMAT || rest.len() < id_len as usize + NONCE_LEN {
                return Err(SealError::Unopenable);
            }
            let (id, rest) = rest.split_at(id_len as usize);
            let (nonce, body) = rest.split_at(NONCE_LEN);
            let key = self
                .keys
                .iter()
                .find(|(k, _)| k.as_bytes() == id)
                .map(|(_, key)| key)
                .ok_or(SealError::Unopenable)?;
            let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Unopenable)?;
            let mut body = body.to_vec();
            let plain = key
                .open_in_place(nonce, Aad::from(aad), &mut body)
                .map_err(|_| SealError::Unopenable)?;
            Ok(plain.to_vec())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_development_key_is_used_only_in_development_mode() {
            assert_eq!(Keyring::configured(None, false).err(), Some(SealError::NotConfigured));
            let dev = Keyring::configured(None, true).unwrap();
            assert_eq!(format!("{dev:?}"), r#"Keyring(["dev"])"#);
            // configured keys win in either mode
            let real = Keyring::generate_spec("k1");
            for dev_mode in [false, true] {
                let ring = Keyring::configured(Some(&real), dev_mode).unwrap();
                assert_eq!(format!("{ring:?}"), r#"Keyring(["k1"])"#);
            }
        }

        #[test]
        fn seals_open_only_with_the_same_workspace_and_a_known_key() {
            let old = Keyring::generate_spec("k1");
            let new = Keyring::generate_spec("k2");
            let ring1 = Keyring::parse(&old).unwrap();
            let sealed = ring1.seal(b"ws-a", b"access-token");
            assert_eq!(ring1.open(b"ws-a", &sealed).unwrap(), b"access-token");
            assert_eq!(
                ring1.open(b"ws-b", &sealed),
                Err(SealError::Unopenable),
                "another workspace"
            );
            let mut tampered = sealed.clone();
            *tampered.last_mut().unwrap() ^= 1;
            assert_eq!(ring1.open(b"ws-a", &tampered), Err(SealError::Unopenable), "tampered");
            assert_eq!(
                ring1.open(b"ws-a", &sealed[..10]),
                Err(SealError::Unopenable),
                "truncated"
            );
            assert_eq!(ring1.open(b"ws-a", &[]), Err(SealError::Unopenable));
            // rotation: the new ring seals with k2 and still opens k1's ciphertexts
            let rotated = Keyring::parse(&format!("{new},{old}")).unwrap();
            assert_eq!(rotated.open(b"ws-a", &sealed).unwrap(), b"access-token");
            let resealed = rotated.seal(b"ws-a", b"x");
            assert_eq!(&resealed[2..4], b"k2");
            assert_eq!(
                ring1.open(b"ws-a", &resealed),
                Err(SealError::Unopenable),
                "unknown key id"
            );
            // two seals of the same secret differ (random nonce)
            assert_ne!(ring1.seal(b"ws-a", b"s"), ring1.seal(b"ws-a", b"s"));
        }

        #[test]
        fn bad_key_specs_are_refused() {
            for spec in ["", "nokey", "k1:notbase64!", "k1:c2hvcnQ=", ":AAAA"] {
                assert!(matches!(Keyring::parse(spec), Err(SealError::BadKeys(_))), "{spec:?}");
            }
            assert!(!format!("{:?}", Keyring::parse(&Keyring::generate_spec("k1")).unwrap()).contains('='));
        }
    }
}
