//! A workspace's SePay connection: the token lifecycle every service that calls SePay shares
//! (the connector, the provisioner), kept apart from the HTTP client (`sepay-api`) because it is
//! persistence: tokens sealed at rest (AAD = the
//! field and the workspace id, so a ciphertext opens neither in another workspace's row nor in
//! the other token's column), refreshed before expiry under a row lock so concurrent refreshes
//! do not race, a failed refresh recorded on the connection.

use chrono::{DateTime, Utc};
use sepay_api::{ApiError, SepayClient, TokenSet};
use sepay_core::connection::{ConnectionStatus, is_definitive_oauth_error, refresh_retry_after};
use sepay_crypto::seal::{Keyring, SealError};
use sepay_store::connections::{self, Connection, Grant};
use sepay_store::{PgPool, StoreError};
use sepay_telemetry::metrics;
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
    /// The token expired while SePay's token endpoint is failing; the next refresh is due then.
    #[error("the SePay connection is degraded (token refresh failing); next try at {retry_at}")]
    Degraded { retry_at: DateTime<Utc> },
    #[error(transparent)]
    Api(ApiError),
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
        self.refresh(ws_id, None).await
    }

    /// Calls SePay with the workspace's access token. A 401 forces one refresh and one retry (the
    /// token may have been revoked or rotated at SePay); a second 401 is definitive: the
    /// connection needs a reconnect.
    pub async fn call<T, F, Fut>(&self, ws_id: Uuid, call: F) -> Result<T, TokenError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let token = self.access_token(ws_id).await?;
        match call(token.clone()).await {
            Err(ApiError::Unauthorized) => {}
            other => return other.map_err(TokenError::Api),
        }
        let token = self.refresh(ws_id, Some(&token)).await?;
        match call(token).await {
            Err(ApiError::Unauthorized) => {
                let reason = "SePay refused a freshly refreshed token (401): reconnect";
                connections::mark_needs_reconnect(&self.db, ws_id, reason).await?;
                metrics::counter!("sepay_connection_needs_reconnect_total", "reason" => "unauthorized").increment(1);
                tracing::warn!(%ws_id, "{reason}");
                Err(TokenError::Unusable {
                    status: ConnectionStatus::NeedsReconnect.as_str().into(),
                    reason: reason.into(),
                })
            }
            other => other.map_err(TokenError::Api),
        }
    }

    /// Refreshes under the connection's row lock (concurrent callers queue and the later ones
    /// find the new token). `rejected`: the access token SePay just refused with 401, which forces
    /// a refresh even if it looks fresh (unless another caller has replaced it meanwhile).
    async fn refresh(&self, ws_id: Uuid, rejected: Option<&str>) -> Result<String, TokenError> {
        let mut tx = self.db.begin().await.map_err(StoreError::from)?;
        let locked = connections::lock(&mut tx, ws_id)
            .await?
            .ok_or(TokenError::NotConnected)?;
        if let Some(token) = self.usable(&locked)?
            && rejected != Some(token.as_str())
        {
            return Ok(token);
        }
        let still_valid = self.still_valid(&locked)?.filter(|t| rejected != Some(t.as_str()));
        // a degraded connection waits out its backoff; its access token serves meanwhile
        if let Some(at) = locked.next_refresh_at.filter(|at| *at > Utc::now()) {
            return still_valid.ok_or(TokenError::Degraded { retry_at: at });
        }
        let Some(sealed) = &locked.refresh_token_ciphertext else {
            let reason = "no refresh token: reconnect";
            connections::mark_needs_reconnect(&mut *tx, ws_id, reason).await?;
            tx.commit().await.map_err(StoreError::from)?;
            return Err(TokenError::Unusable {
                status: ConnectionStatus::NeedsReconnect.as_str().into(),
                reason: reason.into(),
            });
        };
        let refresh = self.open(ws_id, TokenField::Refresh, sealed)?;
        // one attempt: a refresh SePay may have applied is never sent twice by us
        match self.client.refresh(&refresh).await {
            Ok(set) => {
                let access = self.seal(ws_id, TokenField::Access, &set.access_token);
                // a new refresh token is stored at once; an answer without one keeps the old
                let new_refresh = set
                    .refresh_token
                    .as_deref()
                    .map(|t| self.seal(ws_id, TokenField::Refresh, t));
                connections::store_refreshed(&mut tx, ws_id, &access, new_refresh.as_deref(), expires_at(&set)).await?;
                tx.commit().await.map_err(StoreError::from)?;
                tracing::info!(%ws_id, "SePay access token refreshed");
                Ok(set.access_token)
            }
            Err(ApiError::TokenRefused { code, description }) if is_definitive_oauth_error(&code) => {
                let reason = format!("SePay refused the grant ({code}): reconnect");
                connections::mark_needs_reconnect(&mut *tx, ws_id, &reason).await?;
                tx.commit().await.map_err(StoreError::from)?;
                metrics::counter!("sepay_connection_needs_reconnect_total", "reason" => code.clone()).increment(1);
                tracing::warn!(%ws_id, %code, %description, "SePay refused the grant: the connection needs a reconnect");
                Err(TokenError::Unusable {
                    status: ConnectionStatus::NeedsReconnect.as_str().into(),
                    reason,
                })
            }
            Err(err) => {
                let failures = u32::try_from(locked.refresh_failures).unwrap_or(0) + 1;
                // the workspace id spreads retries apart, replicas and workspaces alike
                let jitter = (ws_id.as_u128() % 1000) as f64 / 1000.0;
                let retry_at = Utc::now() + refresh_retry_after(failures, jitter);
                let reason = format!("token refresh failed ({err}); retrying");
                connections::mark_degraded(&mut tx, ws_id, &reason, retry_at).await?;
                tx.commit().await.map_err(StoreError::from)?;
                metrics::counter!("sepay_connection_refresh_failures_total", "cause" => err.code()).increment(1);
                tracing::warn!(%ws_id, error = %err, failures, %retry_at, "SePay token refresh failed; the connection is degraded");
                still_valid.ok_or(TokenError::Refresh(err))
            }
        }
    }

    /// The stored access token if the connection may be used and the token is not about to
    /// expire.
    fn usable(&self, c: &Connection) -> Result<Option<String>, TokenError> {
        let fresh = c
            .access_token_expires_at
            .is_none_or(|at| at > Utc::now() + chrono::Duration::seconds(REFRESH_MARGIN_SECS));
        match fresh {
            true => self.still_valid(c),
            false => {
                self.check_usable(c)?;
                Ok(None)
            }
        }
    }

    /// The stored access token if the connection may be used and the token has not expired
    /// (what a degraded connection serves while SePay's token endpoint is away).
    fn still_valid(&self, c: &Connection) -> Result<Option<String>, TokenError> {
        self.check_usable(c)?;
        let unexpired = c.access_token_expires_at.is_none_or(|at| at > Utc::now());
        match (&c.access_token_ciphertext, unexpired) {
            (Some(sealed), true) => Ok(Some(self.open(c.ws_id, TokenField::Access, sealed)?)),
            _ => Ok(None),
        }
    }

    fn check_usable(&self, c: &Connection) -> Result<(), TokenError> {
        match ConnectionStatus::parse(&c.status) {
            Some(status) if status.is_usable() => Ok(()),
            _ => Err(TokenError::Unusable {
                status: c.status.clone(),
                reason: c.last_error.clone().unwrap_or_default(),
            }),
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
