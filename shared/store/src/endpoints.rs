//! Webhook endpoints: hashed URL tokens and API keys, never the secrets themselves.

use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use sepay_core::Provider;
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

/// What the ingress needs to authenticate a delivery: SePay's key is checked against its hash;
/// Striga's signature needs the key itself, sealed (AAD: [`signing_key_aad`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointAuth {
    pub id: Uuid,
    pub ws_id: Uuid,
    #[sqlx(try_from = "String")]
    pub provider: Provider,
    pub api_key_hash: Vec<u8>,
    pub signing_key_ciphertext: Option<Vec<u8>>,
}

/// A sealed signing key is bound to its workspace: a ciphertext copied to another workspace's
/// endpoint does not open.
pub fn signing_key_aad(ws_id: Uuid) -> Vec<u8> {
    format!("striga-signing-key:{ws_id}").into_bytes()
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Endpoint {
    pub id: Uuid,
    pub ws_id: Uuid,
    #[sqlx(try_from = "String")]
    pub provider: Provider,
    pub wallet_id: Option<Uuid>,
    pub label: String,
    pub token_prefix: String,
    pub sepay_webhook_id: Option<i64>,
    pub bank_account_id: Option<String>,
    pub status: String,
    pub grace_until: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub(crate) const ENDPOINT_COLUMNS: &str = "id, ws_id, provider, wallet_id, label, token_prefix, sepay_webhook_id, bank_account_id, \
     status, grace_until, last_used_at, created_at";

/// Hashes of a new token and key; the caller shows the secrets once and drops them.
pub struct NewEndpoint<'a> {
    pub ws_id: Uuid,
    pub provider: Provider,
    /// Striga's: sealed by the caller.
    pub signing_key_ciphertext: Option<&'a [u8]>,
    pub wallet_id: Option<Uuid>,
    pub label: &'a str,
    pub token_hash: &'a [u8],
    pub token_prefix: &'a str,
    pub api_key_hash: &'a [u8],
    pub sepay_webhook_id: Option<i64>,
    pub bank_account_id: Option<&'a str>,
}

/// The endpoint a URL token opens: active, or rotating and still inside its grace period.
pub async fn find_by_token_hash(pool: &PgPool, token_hash: &[u8]) -> StoreResult<Option<EndpointAuth>> {
    Ok(sqlx::query_as(
        "select id, ws_id, provider, api_key_hash, signing_key_ciphertext from sepay_webhook_endpoints
         where token_hash = $1
           and (status = 'active' or (status = 'rotating' and grace_until > now()))",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?)
}

/// Where endpoint changes are announced (migration 000006); the payload is the endpoint id.
pub const CHANGES_CHANNEL: &str = "sepay_endpoints";

/// An endpoint that may post now, as the ingress keeps it in memory; `grace_until` is checked at
/// each use, so a rotation's old token stops at the exact moment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveEndpoint {
    pub id: Uuid,
    pub ws_id: Uuid,
    #[sqlx(try_from = "String")]
    pub provider: Provider,
    pub token_hash: Vec<u8>,
    pub api_key_hash: Vec<u8>,
    pub signing_key_ciphertext: Option<Vec<u8>>,
    pub grace_until: Option<DateTime<Utc>>,
}

const LIVE: &str = "select id, ws_id, provider, token_hash, api_key_hash, signing_key_ciphertext,
                           case when status = 'rotating' then grace_until end as grace_until
                      from sepay_webhook_endpoints
                     where (status = 'active' or (status = 'rotating' and grace_until > now()))";

pub async fn live_endpoints(pool: &PgPool) -> StoreResult<Vec<LiveEndpoint>> {
    Ok(sqlx::query_as(LIVE).fetch_all(pool).await?)
}

/// One endpoint if it may post now; `None` when it is gone, revoked or past its grace.
pub async fn live_endpoint(pool: &PgPool, id: Uuid) -> StoreResult<Option<LiveEndpoint>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!("{LIVE} and id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// A connection listening on [`CHANGES_CHANNEL`].
pub async fn listen_for_changes(pool: &PgPool) -> StoreResult<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}

pub async fn create(pool: &PgPool, new: &NewEndpoint<'_>) -> StoreResult<Endpoint> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "insert into sepay_webhook_endpoints
           (ws_id, wallet_id, label, token_hash, token_prefix, api_key_hash, sepay_webhook_id, bank_account_id,
            provider, signing_key_ciphertext)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         returning {ENDPOINT_COLUMNS}"
    )))
    .bind(new.ws_id)
    .bind(new.wallet_id)
    .bind(new.label)
    .bind(new.token_hash)
    .bind(new.token_prefix)
    .bind(new.api_key_hash)
    .bind(new.sepay_webhook_id)
    .bind(new.bank_account_id)
    .bind(new.provider.as_str())
    .bind(new.signing_key_ciphertext)
    .fetch_one(pool)
    .await?)
}

pub async fn get(pool: &PgPool, id: Uuid) -> StoreResult<Endpoint> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {ENDPOINT_COLUMNS} from sepay_webhook_endpoints where id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("endpoint"))
}

pub async fn list(pool: &PgPool, ws_id: Option<Uuid>) -> StoreResult<Vec<Endpoint>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "select {ENDPOINT_COLUMNS} from sepay_webhook_endpoints
         where $1::uuid is null or ws_id = $1 order by created_at"
    )))
    .bind(ws_id)
    .fetch_all(pool)
    .await?)
}

pub async fn revoke(pool: &PgPool, id: Uuid) -> StoreResult<Endpoint> {
    sqlx::query_as(AssertSqlSafe(format!(
        "update sepay_webhook_endpoints set status = 'revoked', grace_until = null, updated_at = now()
         where id = $1 returning {ENDPOINT_COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("endpoint"))
}

/// Replaces an endpoint's secrets without a delivery gap: a new endpoint takes over its wallet,
/// SePay webhook and bank account; the old one keeps working until `grace_until`.
pub async fn rotate(
    pool: &PgPool,
    old_id: Uuid,
    grace: std::time::Duration,
    token_hash: &[u8],
    token_prefix: &str,
    api_key_hash: &[u8],
) -> StoreResult<Endpoint> {
    let mut tx = pool.begin().await?;
    let old: Endpoint = sqlx::query_as(AssertSqlSafe(format!(
        "update sepay_webhook_endpoints
            set status = 'rotating', grace_until = now() + make_interval(secs => $2), updated_at = now()
          where id = $1 and status = 'active'
          returning {ENDPOINT_COLUMNS}"
    )))
    .bind(old_id)
    .bind(grace.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound("active endpoint"))?;
    // the successor is the same kind of endpoint: a Striga one keeps its sealed signing key
    let new: Endpoint = sqlx::query_as(AssertSqlSafe(format!(
        "insert into sepay_webhook_endpoints
           (ws_id, wallet_id, label, token_hash, token_prefix, api_key_hash, sepay_webhook_id, bank_account_id,
            provider, signing_key_ciphertext)
         select $1, $2, $3, $4, $5, $6, $7, $8, provider, signing_key_ciphertext
           from sepay_webhook_endpoints where id = $9
         returning {ENDPOINT_COLUMNS}"
    )))
    .bind(old.ws_id)
    .bind(old.wallet_id)
    .bind(&old.label)
    .bind(token_hash)
    .bind(token_prefix)
    .bind(api_key_hash)
    .bind(old.sepay_webhook_id)
    .bind(&old.bank_account_id)
    .bind(old.id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(new)
}

/// Ends the grace period of rotated endpoints whose time is up.
pub async fn expire_rotations(pool: &PgPool) -> StoreResult<u64> {
    Ok(sqlx::query(
        "update sepay_webhook_endpoints set status = 'revoked', updated_at = now()
         where status = 'rotating' and grace_until <= now()",
    )
    .execute(pool)
    .await?
    .rows_affected())
}
