//! A workspace's SePay connection: the token lifecycle every service that calls SePay shares
//! (the connector, the provisioner), kept apart from the HTTP client (`sepay-api`) because it is
//! persistence: tokens sealed at rest (AAD = the
//! field and the workspace id, so a ciphertext opens neither in another workspace's row nor in
//! the other token's column), refreshed before expiry under a row lock so concurrent refreshes
//! do not race, a failed refresh recorded on the connection.

use chrono::{DateTime, Utc};
use sepay_api::{ApiError, SepayClient, TokenSet};
use sepay_crypto::seal::{Keyring, SealError};
use sepay_store::connections::{self, Connection, Grant};
use sepay_store::{PgPool, StoreError};
use std::sync::Arc;
use uuid::Uuid;

/// Refresh this long before the access token expires.
const REFRESH_MARGIN_SECS: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("workspace is not connected to SePay")]
    NotConnected,
    #[error("the SePay connection is {status}: {reason}")]
    Unusable { status: String, reason: String },
    #[error("token refresh failed: {0}")]
    Refresh(ApiError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Tokens {
    db: PgPool,
    client: Arc<SepayClient>,
    keys: Arc<Keyring>,
}

impl Tokens {
    pub fn new(db: PgPool, client: Arc<SepayClient>, keys: Arc<Keyring>) -> Self {
        Self { db, client, keys }
    }

    pub fn client(&self) -> &SepayClient {
        &self.client
    }

    fn seal(&self, ws_id: Uuid, field: TokenField, secret: &str) -> Vec<u8> {
        self.keys.seal(&field.aad(ws_id), secret.as_bytes())
    }

    fn open(&self, ws_id: Uuid, field: TokenField, sealed: &[u8]) -> Result<String, SealError> {
        let plain = self.keys.open(&field.aad(ws_id), sealed)?;
        String::from_utf8(plain).map_err(|_| SealError::Unopenable)
    }

    /// Re-seals tokens sealed before each field had its own associated data (AAD = the
    /// workspace id alone, which let a database writer swap the two columns). Run at start by
    /// every service holding tokens; afterwards only the per-field form opens. Returns the
    /// connections re-sealed.
    pub async fn upgrade_legacy_seals(&self) -> Result<usize, TokenError> {
        let mut upgraded = 0;
        for (ws_id, access, refresh) in connections::sealed_tokens(&self.db).await? {
            let reseal = |field: TokenField, sealed: &Option<Vec<u8>>| -> Option<Vec<u8>> {
                let sealed = sealed.as_deref()?;
                if self.keys.open(&field.aad(ws_id), sealed).is_ok() {
                    return None;
                }
                let plain = self.keys.open(ws_id.as_bytes(), sealed).ok()?;
                Some(self.keys.seal(&field.aad(ws_id), &plain))
            };
            let (new_access, new_refresh) = (
                reseal(TokenField::Access, &access),
                reseal(TokenField::Refresh, &refresh),
            );
            if new_access.is_none() && new_refresh.is_none() {
                continue;
            }
            let old = (access.as_deref(), refresh.as_deref());
            let new = (
                new_access.as_deref().or(access.as_deref()),
                new_refresh.as_deref().or(refresh.as_deref()),
            );
            if connections::reseal(&self.db, ws_id, old, new).await? {
                upgraded += 1;
            }
        }
        if upgraded > 0 {
            tracing::info!(
                connections = upgraded,
                "SePay tokens re-sealed with per-field associated data"
            );
        }
        Ok(upgraded)
    }

    /// Seals and stores a fresh grant (the connect callback).
    pub async fn store_grant(&self, ws_id: Uuid, set: &TokenSet) -> Result<Connection, TokenError> {
        let access = self.seal(ws_id, TokenField::Access, &set.access_token);
        let refresh = set
            .refresh_token
            .as_deref()
            .map(|t| self.seal(ws_id, TokenField::Refresh, t));
        let grant = Grant {
            access_token_ciphertext: &access,
            refresh_token_ciphertext: refresh.as_deref(),
            scopes: &set.scopes,
            access_token_expires_at: expires_at(set),
        };
        Ok(connections::upsert_connected(&self.db, ws_id, &grant).await?)
    }

    /// A usable access token for `ws_id`, refreshed first when it expires within a minute.
    pub async fn access_token(&self, ws_id: Uuid) -> Result<String, TokenError> {
        let current = connections::get(&self.db, ws_id)
            .await?
            .ok_or(TokenError::NotConnected)?;
        if let Some(token) = self.usable(&current)? {
            return Ok(token);
        }
        // the row lock makes concurrent refreshers queue; the second finds the new token
        let mut tx = self.db.begin().await.map_err(StoreError::from)?;
        let locked = connections::lock(&mut tx, ws_id)
            .await?
            .ok_or(TokenError::NotConnected)?;
        if let Some(token) = self.usable(&locked)? {
            return Ok(token);
        }
        let refresh = match &locked.refresh_token_ciphertext {
            Some(sealed) => self.open(ws_id, TokenField::Refresh, sealed)?,
            None => {
                connections::mark_error(&mut tx, ws_id, "no refresh token").await?;
                tx.commit().await.map_err(StoreError::from)?;
                return Err(TokenError::Unusable {
                    status: "error".into(),
                    reason: "no refresh token".into(),
                });
            }
        };
        match self.client.refresh(&refresh).await {
            Ok(set) => {
                let access = self.seal(ws_id, TokenField::Access, &set.access_token);
                let new_refresh = set
                    .refresh_token
                    .as_deref()
                    .map(|t| self.seal(ws_id, TokenField::Refresh, t));
                connections::store_refreshed(&mut tx, ws_id, &access, new_refresh.as_deref(), expires_at(&set)).await?;
                tx.commit().await.map_err(StoreError::from)?;
                tracing::info!(%ws_id, "SePay access token refreshed");
                Ok(set.access_token)
            }
            Err(err) => {
                connections::mark_error(&mut tx, ws_id, &format!("token refresh failed: {err}")).await?;
                tx.commit().await.map_err(StoreError::from)?;
                Err(TokenError::Refresh(err))
            }
        }
    }

    /// The stored access token if the connection is active and the token is not about to expire.
    fn usable(&self, c: &Connection) -> Result<Option<String>, TokenError> {
        if c.status != "active" {
            return Err(TokenError::Unusable {
                status: c.status.clone(),
                reason: c.last_error.clone().unwrap_or_default(),
            });
        }
        let fresh = c
            .access_token_expires_at
            .is_none_or(|at| at > Utc::now() + chrono::Duration::seconds(REFRESH_MARGIN_SECS));
        match (&c.access_token_ciphertext, fresh) {
            (Some(sealed), true) => Ok(Some(self.open(c.ws_id, TokenField::Access, sealed)?)),
            _ => Ok(None),
        }
    }

    /// Disconnect: revoke at SePay (best effort), drop the tokens, keep the history.
    pub async fn disconnect(&self, ws_id: Uuid) -> Result<(), TokenError> {
        if let Some(c) = connections::get(&self.db, ws_id).await? {
            let sealed = [
                (TokenField::Access, &c.access_token_ciphertext),
                (TokenField::Refresh, &c.refresh_token_ciphertext),
            ];
            for (field, sealed) in sealed.into_iter().filter_map(|(f, s)| Some((f, s.as_ref()?))) {
                if let Ok(token) = self.open(ws_id, field, sealed) {
                    self.client.revoke(&token).await;
                }
            }
        }
        connections::mark_revoked(&self.db, ws_id).await?;
        Ok(())
    }
}

/// Which sealed column a token lives in: each has its own associated data.
#[derive(Debug, Clone, Copy)]
pub enum TokenField {
    Access,
    Refresh,
}

impl TokenField {
    pub fn aad(self, ws_id: Uuid) -> Vec<u8> {
        let field = match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        };
        format!("sepay-{field}-token:{ws_id}").into_bytes()
    }
}

fn expires_at(set: &TokenSet) -> Option<DateTime<Utc>> {
    set.expires_in
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| Utc::now() + d)
}
