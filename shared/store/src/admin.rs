//! What the workspace admin pages (the connector) and `sepayctl` read and change: members and
//! roles, the connection's state, account → wallet links, manual endpoints, events by page,
//! reconciliation runs, and single-use OAuth states.

use crate::endpoints::{self, Endpoint, NewEndpoint};
use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use sepay_core::Provider;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// The role of `user_id` in `ws_id`, if a member.
pub async fn member_role(pool: &PgPool, ws_id: Uuid, user_id: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("select role from workspace_members where ws_id = $1 and user_id = $2")
            .bind(ws_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?,
    )
}

/// Makes `user_id` an admin of `ws_id`: adds the member, or promotes a `member`; an owner stays owner.
pub async fn grant_admin(pool: &PgPool, ws_id: Uuid, user_id: &str) -> StoreResult<()> {
    sqlx::query(
        "insert into workspace_members (ws_id, user_id, role) values ($1, $2, 'admin')
         on conflict (ws_id, user_id) do update set role = 'admin' where workspace_members.role = 'member'",
    )
    .bind(ws_id)
    .bind(user_id)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AdminWorkspace {
    pub id: Uuid,
    pub name: String,
    pub role: String,
}

/// Workspaces where `user_id` is an owner or admin, oldest first.
pub async fn admin_workspaces(pool: &PgPool, user_id: &str) -> StoreResult<Vec<AdminWorkspace>> {
    Ok(sqlx::query_as(
        "select w.id, w.name, m.role from workspace_members m join workspaces w on w.id = m.ws_id
          where m.user_id = $1 and m.role in ('owner', 'admin') order by w.created_at, w.id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

/// The connection as the status page shows it (no ciphertexts).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ConnectionView {
    pub status: String,
    pub scopes: Vec<String>,
    pub access_token_expires_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_sync_error: Option<String>,
    pub last_reconciled_at: Option<DateTime<Utc>>,
    pub disconnect_requested_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

pub async fn connection_view(pool: &PgPool, ws_id: Uuid) -> StoreResult<Option<ConnectionView>> {
    Ok(sqlx::query_as(
        "select status, scopes, access_token_expires_at, last_error, last_synced_at, last_sync_error,
                last_reconciled_at, disconnect_requested_at, updated_at
           from sepay_connections where ws_id = $1",
    )
    .bind(ws_id)
    .fetch_optional(pool)
    .await?)
}

/// Records a disconnect request (`false` clears it, on reconnect). Returns whether a connection exists.
pub async fn set_disconnect_requested(pool: &PgPool, ws_id: Uuid, requested: bool) -> StoreResult<bool> {
    Ok(sqlx::query(
        "update sepay_connections
            set disconnect_requested_at = case when $2 then now() else null end
          where ws_id = $1",
    )
    .bind(ws_id)
    .bind(requested)
    .execute(pool)
    .await?
    .rows_affected()
        > 0)
}

/// Marks an OAuth state as used. False when it already was: the callback is a replay.
pub async fn consume_oauth_state(pool: &PgPool, ws_id: Uuid, state_hash: &[u8]) -> StoreResult<bool> {
    // states live 10 minutes; a day of history is more than enough to refuse any replay
    sqlx::query("delete from sepay_oauth_used_states where used_at < now() - interval '1 day'")
        .execute(pool)
        .await?;
    Ok(sqlx::query(
        "insert into sepay_oauth_used_states (state_hash, ws_id) values ($1, $2) on conflict (state_hash) do nothing",
    )
    .bind(state_hash)
    .bind(ws_id)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WalletLinkView {
    pub id: Uuid,
    pub account_number: String,
    pub sub_account: Option<String>,
    pub bank_short_name: Option<String>,
    pub holder_name: Option<String>,
    pub label: Option<String>,
    pub active: bool,
    pub wallet_id: Option<Uuid>,
    pub wallet_name: Option<String>,
}

pub async fn wallet_links(pool: &PgPool, ws_id: Uuid) -> StoreResult<Vec<WalletLinkView>> {
    Ok(sqlx::query_as(
        "select l.id, l.account_number, l.sub_account, l.bank_short_name, l.holder_name, l.label, l.active,
                l.wallet_id, w.name as wallet_name
           from sepay_wallet_links l left join wallets w on w.id = l.wallet_id
          where l.ws_id = $1 order by l.account_number, l.sub_account nulls first",
    )
    .bind(ws_id)
    .fetch_all(pool)
    .await?)
}

/// Points a link of `ws_id` at one of its wallets (or at none).
pub async fn set_link_wallet(pool: &PgPool, ws_id: Uuid, link_id: Uuid, wallet_id: Option<Uuid>) -> StoreResult<()> {
    let updated =
        sqlx::query("update sepay_wallet_links set wallet_id = $3, updated_at = now() where ws_id = $1 and id = $2")
            .bind(ws_id)
            .bind(link_id)
            .bind(wallet_id)
            .execute(pool)
            .await?
            .rows_affected();
    match updated {
        0 => Err(StoreError::NotFound("bank account link")),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WalletRow {
    pub id: Uuid,
    pub name: String,
    pub currency: String,
}

pub async fn wallets(pool: &PgPool, ws_id: Uuid) -> StoreResult<Vec<WalletRow>> {
    Ok(
        sqlx::query_as("select id, name, currency from wallets where ws_id = $1 order by name, id")
            .bind(ws_id)
            .fetch_all(pool)
            .await?,
    )
}

/// An event row of the events page: what an admin needs to see, not the payload.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub provider: Provider,
    pub source: String,
    /// The provider's id of the transaction (SePay's number, Striga's `id`).
    pub provider_id: Option<String>,
    pub status: String,
    pub failure_reason: Option<String>,
    pub attempts: i32,
    pub delivery_count: i32,
    pub received_at: DateTime<Utc>,
    /// As sent (text: never a float). SePay: `transferType`, `transferAmount`, `accountNumber`;
    /// Striga: `type`, the moving side in cents (`credit`, else `debit`), `accountId` (else
    /// `syncedOwnerId`).
    pub transfer_type: Option<String>,
    pub amount: Option<String>,
    pub account_number: Option<String>,
}

/// One page of a workspace's events, newest first, keyset on id (`before` = the last id shown).
pub async fn events_page(
    pool: &PgPool,
    ws_id: Uuid,
    status: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<EventRow>> {
    Ok(sqlx::query_as(
        "select id, provider, source, coalesce(sepay_transaction_id::text, payload->>'id') as provider_id, status,
                failure_reason, attempts, delivery_count, received_at,
                coalesce(payload->>'transferType', payload->>'type') as transfer_type,
                coalesce(payload->>'transferAmount',
                         case when provider = 'striga' then coalesce(nullif(payload->>'credit', '0'), payload->>'debit') end)
                  as amount,
                coalesce(payload->>'accountNumber', payload->>'accountId', payload->>'syncedOwnerId') as account_number
           from sepay_webhook_events
          where ws_id = $1 and ($2::text is null or status = $2) and ($3::bigint is null or id < $3)
          order by id desc limit $4",
    )
    .bind(ws_id)
    .bind(status)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// An endpoint of `ws_id` (another workspace's id is "not found").
pub async fn endpoint_of(pool: &PgPool, ws_id: Uuid, id: Uuid) -> StoreResult<Endpoint> {
    match endpoints::get(pool, id).await {
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
    let endpoint = endpoints::create(
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
    let endpoint = endpoints::rotate(
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
