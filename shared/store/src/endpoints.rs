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
    /// When its SePay webhook was last found healthy at SePay (provisioned endpoints).
    pub last_verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub(crate) const ENDPOINT_COLUMNS: &str = "id, ws_id, provider, wallet_id, label, token_prefix, sepay_webhook_id, bank_account_id, \
     status, grace_until, last_used_at, last_verified_at, created_at";

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

/// An endpoint of `ws_id` (another workspace's id is "not found").
pub async fn endpoint_of(pool: &PgPool, ws_id: Uuid, id: Uuid) -> StoreResult<Endpoint> {
    match get(pool, id).await {
        Ok(e) if e.ws_id == ws_id => Ok(e),
        Ok(_) => Err(StoreError::NotFound("endpoint")),
        Err(err) => Err(err),
    }
}

/// A new endpoint's secrets, shown once and never stored. `Debug` hides them.
#[derive(Serialize)]
pub struct CreatedEndpoint {
    pub endpoint: Endpoint,
    pub webhook_url: String,
    pub token: String,
    pub api_key: String,
    pub authorization_header: String,
}

impl std::fmt::Debug for CreatedEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedEndpoint")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl CreatedEndpoint {
    fn new(endpoint: Endpoint, public_base_url: &str, secrets: &EndpointSecrets) -> Self {
        Self {
            webhook_url: webhook_url(public_base_url, endpoint.provider, secrets.token.expose()),
            endpoint,
            token: secrets.token.expose().to_owned(),
            api_key: secrets.key.expose().to_owned(),
            authorization_header: format!("Apikey {}", secrets.key.expose()),
        }
    }
}

struct EndpointSecrets {
    token: sepay_crypto::Secret,
    key: sepay_crypto::Secret,
}

impl EndpointSecrets {
    fn generate() -> Self {
        Self {
            token: sepay_crypto::generate_webhook_token(),
            key: sepay_crypto::generate_api_key(),
        }
    }
}

/// The URL the provider posts to for `token`, on the ingress's public base URL (Striga appends
/// `/tx` for transactions and `/ping` for its dashboard's test by itself).
pub fn webhook_url(public_base_url: &str, provider: Provider, token: &str) -> String {
    format!(
        "{}/api/v1/webhooks/{provider}/{token}",
        public_base_url.trim_end_matches('/')
    )
}

/// A new Striga endpoint: the URL to give Striga, shown once. Striga signs with its own API key,
/// so there is no key of ours to show.
#[derive(Serialize)]
pub struct CreatedStrigaEndpoint {
    pub endpoint: Endpoint,
    pub webhook_url: String,
    pub token: String,
}

/// A created or rotated Striga endpoint: Striga signs with its own key, so only the URL is news.
impl From<CreatedEndpoint> for CreatedStrigaEndpoint {
    fn from(created: CreatedEndpoint) -> Self {
        Self {
            endpoint: created.endpoint,
            webhook_url: created.webhook_url,
            token: created.token,
        }
    }
}

impl std::fmt::Debug for CreatedStrigaEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedStrigaEndpoint")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// A manual endpoint (an admin pastes its URL and key into SePay's dashboard).
pub async fn create_manual_endpoint(
    pool: &PgPool,
    public_base_url: &str,
    ws_id: Uuid,
    wallet_id: Option<Uuid>,
    label: &str,
) -> StoreResult<CreatedEndpoint> {
    create_with_new_secrets(pool, public_base_url, ws_id, wallet_id, label, Provider::Sepay, None).await
}

/// An endpoint with a fresh URL token and API key (a Striga endpoint's key is never used: Striga
/// signs with its own, sealed in `signing_key_ciphertext`).
pub(crate) async fn create_with_new_secrets(
    pool: &PgPool,
    public_base_url: &str,
    ws_id: Uuid,
    wallet_id: Option<Uuid>,
    label: &str,
    provider: Provider,
    signing_key_ciphertext: Option<&[u8]>,
) -> StoreResult<CreatedEndpoint> {
    let secrets = EndpointSecrets::generate();
    let endpoint = create(
        pool,
        &NewEndpoint {
            ws_id,
            provider,
            signing_key_ciphertext,
            wallet_id,
            label,
            token_hash: &secrets.token.sha256(),
            token_prefix: &secrets.token.display_prefix(),
            api_key_hash: &secrets.key.sha256(),
            sepay_webhook_id: None,
            bank_account_id: None,
        },
    )
    .await?;
    Ok(CreatedEndpoint::new(endpoint, public_base_url, &secrets))
}

/// Rotates an endpoint here (new token and key; the old ones work until the grace ends). For a
/// SePay-provisioned endpoint SePay must learn the new URL first: that is the provisioner's job.
pub async fn rotate_locally(
    pool: &PgPool,
    public_base_url: &str,
    id: Uuid,
    grace: std::time::Duration,
) -> StoreResult<CreatedEndpoint> {
    let secrets = EndpointSecrets::generate();
    let endpoint = rotate(
        pool,
        id,
        grace,
        &secrets.token.sha256(),
        &secrets.token.display_prefix(),
        &secrets.key.sha256(),
    )
    .await?;
    Ok(CreatedEndpoint::new(endpoint, public_base_url, &secrets))
}
