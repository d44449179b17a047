//! Admin sessions: the platform's signed session token (a JWT: HS256 with a shared secret, or
//! keys from a JWKS URL) in the session cookie or `Authorization: Bearer`, and the per-session
//! CSRF token every form carries. The workspace role is checked against `workspace_members` by
//! the routes, never taken from the token.

use crate::ConnectorConfig;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// The cookie holding the session token.
pub const SESSION_COOKIE: &str = "sepay_admin_session";
/// Longer tokens are refused before any parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// A JWKS is fetched again for an unknown key id at most this often.
const JWKS_REFETCH: Duration = Duration::from_secs(30);
/// A fixed, public secret for development only (`SEPAY_DEV_MODE`, which `up` turns on).
const DEV_ADMIN_JWT_SECRET: &str = "sepay-development-admin-secret-not-for-production";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The platform's user id (`workspace_members.user_id`).
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no session token")]
    Missing,
    #[error("session token refused: {0}")]
    Invalid(String),
    #[error("the JWKS cannot be read: {0}")]
    Jwks(String),
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("ADMIN_JWT_SECRET is not set: set it (or ADMIN_JWKS_URL), or SEPAY_DEV_MODE=true for local development only")]
pub struct JwtSecretMissing;

/// The HS256 secret to use: the configured one; unset, the public development secret in
/// development mode only (with it anyone can mint an admin session).
pub fn jwt_secret(configured: Option<&str>, dev_mode: bool) -> Result<String, JwtSecretMissing> {
    match configured {
        Some(secret) => Ok(secret.to_owned()),
        None if dev_mode => Ok(DEV_ADMIN_JWT_SECRET.to_owned()),
        None => Err(JwtSecretMissing),
    }
}

/// A session token for `user_id`, valid for `ttl` (what the platform issues; `sepayctl admin-token`).
pub fn mint_admin_token(secret: &str, user_id: &str, ttl: Duration) -> Result<String, jsonwebtoken::errors::Error> {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: user_id.to_owned(),
        iat: now,
        exp: now + ttl.as_secs() as i64,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}

enum Keys {
    Hs256(DecodingKey),
    Jwks(Jwks),
}

struct Jwks {
    url: String,
    http: reqwest::Client,
    cache: RwLock<Option<(Instant, JwkSet)>>,
}

impl Jwks {
    async fn fetch(&self) -> Result<JwkSet, AuthError> {
        let failed = |e: reqwest::Error| AuthError::Jwks(e.without_url().to_string());
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(failed)?
            .error_for_status()
            .map_err(failed)?;
        response.json().await.map_err(failed)
    }

    /// The key for `kid`, fetching the set when it is unknown (key rotation), at most every 30 s.
    async fn key(&self, kid: Option<&str>) -> Result<jsonwebtoken::jwk::Jwk, AuthError> {
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let stale = {
            let cache = self.cache.read().await;
            if let Some((_, set)) = cache.as_ref()
                && let Some(key) = find(set)
            {
                return Ok(key);
            }
            cache.as_ref().is_none_or(|(at, _)| at.elapsed() >= JWKS_REFETCH)
        };
        if stale {
            let set = self.fetch().await?;
            let key = find(&set);
            *self.cache.write().await = Some((Instant::now(), set));
            if let Some(key) = key {
                return Ok(key);
            }
        }
        Err(AuthError::Invalid("unknown key id".into()))
    }
}

/// Verifies session tokens and derives CSRF tokens.
pub struct AdminAuth {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
    csrf_key: ring::hmac::Key,
}

/// An authenticated admin session (the role in a workspace is checked separately).
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    /// The CSRF token of this session, for forms.
    pub csrf: String,
}

impl AdminAuth {
    pub fn from_config(config: &ConnectorConfig) -> anyhow::Result<Self> {
        let keys = match &config.admin_jwks_url {
            Some(url) => Keys::Jwks(Jwks {
                url: url.clone(),
                http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?,
                cache: RwLock::new(None),
            }),
            None => Keys::Hs256(DecodingKey::from_secret(
                jwt_secret(config.admin_jwt_secret.as_deref(), config.dev_mode)?.as_bytes(),
            )),
        };
        let rng = ring::rand::SystemRandom::new();
        let csrf_key = match &config.connector_csrf_secret {
            Some(secret) => ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
            None => ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
                .map_err(|_| anyhow::anyhow!("no randomness for the CSRF key"))?,
        };
        Ok(Self {
            keys,
            issuer: config.admin_jwt_issuer.clone(),
            audience: config.admin_jwt_audience.clone(),
            csrf_key,
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = 30;
        // a token the platform dated for later (`nbf`) is not valid yet (within the same leeway)
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "sub"]);
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
        }
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        v
    }

    /// The claims of a valid, unexpired token.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Invalid("malformed".into()));
        }
        let invalid = |e: jsonwebtoken::errors::Error| AuthError::Invalid(e.to_string());
        let data = match &self.keys {
            Keys::Hs256(key) => jsonwebtoken::decode::<Claims>(token, key, &self.validation(Algorithm::HS256)),
            Keys::Jwks(jwks) => {
                let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
                // a public key must never be used as an HMAC secret
                if matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                    return Err(AuthError::Invalid("HMAC tokens are not accepted with a JWKS".into()));
                }
                let jwk = jwks.key(header.kid.as_deref()).await?;
                if let Some(declared) = jwk.common.key_algorithm {
                    let declared = serde_json::to_value(declared).ok();
                    if declared.as_ref().and_then(|v| v.as_str()) != Some(format!("{:?}", header.alg).as_str()) {
                        return Err(AuthError::Invalid("algorithm does not match the key".into()));
                    }
                }
                let key = DecodingKey::from_jwk(&jwk).map_err(invalid)?;
                jsonwebtoken::decode::<Claims>(token, &key, &self.validation(header.alg))
            }
        };
        let claims = data.map_err(invalid)?.claims;
        if claims.sub.is_empty() {
            return Err(AuthError::Invalid("empty subject".into()));
        }
        Ok(claims)
    }

    /// The session of a request: `Authorization: Bearer` first, else the session cookie.
    pub async fn session(&self, headers: &HeaderMap) -> Result<Session, AuthError> {
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let token = bearer
            .or_else(|| cookie(headers, SESSION_COOKIE))
            .ok_or(AuthError::Missing)?;
        let claims = self.verify(token).await?;
        Ok(Session {
            user_id: claims.sub,
            csrf: self.csrf_token(token),
        })
    }

    /// HMAC of the session token: one CSRF token per session, nothing stored.
    pub fn csrf_token(&self, session_token: &str) -> String {
        URL_SAFE_NO_PAD.encode(ring::hmac::sign(&self.csrf_key, session_token.as_bytes()).as_ref())
    }
}

/// The value of cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| sepay_crypto::cookie::cookie_value(v, name))
}

/// A `Set-Cookie` value: HttpOnly always, Secure outside local development.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age_secs: i64, same_site: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite={same_site}{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(secret: &str) -> AdminAuth {
        AdminAuth::from_config(&ConnectorConfig {
            admin_jwt_secret: Some(secret.into()),
            ..Default::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn minted_tokens_verify_and_others_do_not() {
        let a = auth("s3cret");
        let token = mint_admin_token("s3cret", "user-1", Duration::from_secs(60)).unwrap();
        assert_eq!(a.verify(&token).await.unwrap().sub, "user-1");
        let other = mint_admin_token("other", "user-1", Duration::from_secs(60)).unwrap();
        assert!(matches!(a.verify(&other).await, Err(AuthError::Invalid(_))));
        let mut tampered = token.clone();
        tampered.insert(tampered.len() - 3, 'x');
        assert!(a.verify(&tampered).await.is_err());
        assert!(a.verify("").await.is_err());
        assert!(a.verify("not.a.jwt").await.is_err());
        assert!(a.verify(&"a".repeat(MAX_TOKEN_LEN + 1)).await.is_err());
    }

    #[tokio::test]
    async fn expired_tokens_are_refused() {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: "u".into(),
            iat: now - 7200,
            exp: now - 3600,
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(b"k")).unwrap();
        assert!(auth("k").verify(&token).await.is_err());
    }

    fn hs256(claims: &serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(&Header::default(), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    #[tokio::test]
    async fn tokens_not_valid_yet_are_refused() {
        let a = auth("k");
        let now = chrono::Utc::now().timestamp();
        let claims = |nbf: i64| serde_json::json!({"sub": "u", "iat": now, "exp": now + 3600, "nbf": nbf});
        // beyond the 30 s leeway
        let future = hs256(&claims(now + 120), "k");
        assert!(matches!(a.verify(&future).await, Err(AuthError::Invalid(_))));
        assert!(a.verify(&hs256(&claims(now + 3000), "k")).await.is_err());
        // in the past, now, or inside the leeway (clock skew)
        for nbf in [now - 600, now, now + 10] {
            assert_eq!(a.verify(&hs256(&claims(nbf), "k")).await.unwrap().sub, "u", "nbf {nbf}");
        }
        // without nbf, as before
        let plain = serde_json::json!({"sub": "u", "exp": now + 60});
        assert!(a.verify(&hs256(&plain, "k")).await.is_ok());
    }

    #[test]
    fn csrf_tokens_are_per_session() {
        let a = auth("k");
        assert_eq!(a.csrf_token("session-a"), a.csrf_token("session-a"));
        assert_ne!(a.csrf_token("session-a"), a.csrf_token("session-b"));
        // another process without a configured key derives other tokens
        assert_ne!(a.csrf_token("session-a"), auth("k").csrf_token("session-a"));
    }

    /// A platform with an Ed25519 key behind a JWKS URL.
    async fn jwks_platform() -> (AdminAuth, Vec<u8>, Vec<u8>) {
        use ring::signature::KeyPair;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let public = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
        let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                                                 "kid": "k1", "x": URL_SAFE_NO_PAD.encode(&public)}]});
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || async move { axum::Json(jwks) }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let auth = AdminAuth::from_config(&ConnectorConfig {
            admin_jwks_url: Some(url),
            ..Default::default()
        })
        .unwrap();
        (auth, pkcs8.as_ref().to_vec(), public)
    }

    fn signed(alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: "platform-user".into(),
            iat: now,
            exp: now + 60,
        };
        let header = Header {
            kid: kid.map(str::to_owned),
            ..Header::new(alg)
        };
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    #[tokio::test]
    async fn jwks_keys_verify_platform_tokens() {
        let (auth, pkcs8, public) = jwks_platform().await;
        let key = EncodingKey::from_ed_der(&pkcs8);
        assert_eq!(
            auth.verify(&signed(Algorithm::EdDSA, Some("k1"), &key))
                .await
                .unwrap()
                .sub,
            "platform-user"
        );
        // a single key also serves tokens without a kid
        assert!(auth.verify(&signed(Algorithm::EdDSA, None, &key)).await.is_ok());
        assert!(
            auth.verify(&signed(Algorithm::EdDSA, Some("unknown"), &key))
                .await
                .is_err()
        );
        // the public key used as an HMAC secret (algorithm confusion) is refused
        let confused = signed(Algorithm::HS256, Some("k1"), &EncodingKey::from_secret(&public));
        assert!(matches!(auth.verify(&confused).await, Err(AuthError::Invalid(_))));
        // another Ed25519 key under the same kid
        let rng = ring::rand::SystemRandom::new();
        let other = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let forged = signed(Algorithm::EdDSA, Some("k1"), &EncodingKey::from_ed_der(other.as_ref()));
        assert!(auth.verify(&forged).await.is_err());
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=1; sepay_admin_session=tok; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&h, "missing"), None);
        let c = set_cookie("n", "v", "/p", 600, "Lax", true);
        assert_eq!(c, "n=v; Path=/p; Max-Age=600; HttpOnly; SameSite=Lax; Secure");
    }
}
