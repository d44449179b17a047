//! `sepay_connections`: one OAuth connection per workspace, tokens sealed (never plaintext).

use crate::error::StoreResult;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Connection {
    pub id: Uuid,
    pub ws_id: Uuid,
    pub status: String,
    #[serde(skip)]
    pub access_token_ciphertext: Option<Vec<u8>>,
    #[serde(skip)]
    pub refresh_token_ciphertext: Option<Vec<u8>>,
    pub scopes: Vec<String>,
    pub access_token_expires_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Refreshes failed in a row (a degraded connection), and when the next may be tried.
    pub refresh_failures: i32,
    pub next_refresh_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, ws_id, status, access_token_ciphertext, refresh_token_ciphertext, scopes, \
     access_token_expires_at, last_error, refresh_failures, next_refresh_at, created_at, updated_at";

/// Sealed tokens of a fresh OAuth grant.
pub struct Grant<'a> {
    pub access_token_ciphertext: &'a [u8],
    pub refresh_token_ciphertext: Option<&'a [u8]>,
    pub scopes: &'a [String],
    pub access_token_expires_at: Option<DateTime<Utc>>,
}

/// Stores a (re)connection: status `active`, the error cleared.
pub async fn upsert_connected(pool: &PgPool, ws_id: Uuid, grant: &Grant<'_>) -> StoreResult<Connection> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into sepay_connections
           (ws_id, status, access_token_ciphertext, refresh_token_ciphertext, scopes, access_token_expires_at)
         values ($1, 'active', $2, $3, $4, $5)
         on conflict (ws_id) do update set
           status = 'active', refresh_failures = 0, next_refresh_at = null,
           access_token_ciphertext = excluded.access_token_ciphertext,
           refresh_token_ciphertext = coalesce(excluded.refresh_token_ciphertext, sepay_connections.refresh_token_ciphertext),
           scopes = excluded.scopes, access_token_expires_at = excluded.access_token_expires_at,
           last_error = null, updated_at = now()
         returning {COLUMNS}"
    )))
    .bind(ws_id)
    .bind(grant.access_token_ciphertext)
    .bind(grant.refresh_token_ciphertext)
    .bind(grant.scopes)
    .bind(grant.access_token_expires_at)
    .fetch_one(pool)
    .await?)
}

pub async fn get(pool: &PgPool, ws_id: Uuid) -> StoreResult<Option<Connection>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from sepay_connections where ws_id = $1"
    )))
    .bind(ws_id)
    .fetch_optional(pool)
    .await?)
}

/// Locks the connection row for a token refresh (concurrent refreshers wait, then see the new token).
pub async fn lock(tx: &mut Transaction<'_, Postgres>, ws_id: Uuid) -> StoreResult<Option<Connection>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from sepay_connections where ws_id = $1 for update"
    )))
    .bind(ws_id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Stores refreshed tokens; a missing refresh token keeps the old one (SePay may omit it).
pub async fn store_refreshed(
    tx: &mut Transaction<'_, Postgres>,
    ws_id: Uuid,
    access_token_ciphertext: &[u8],
    refresh_token_ciphertext: Option<&[u8]>,
    expires_at: Option<DateTime<Utc>>,
) -> StoreResult<()> {
    sqlx::query(
        "update sepay_connections set access_token_ciphertext = $2,
                refresh_token_ciphertext = coalesce($3, refresh_token_ciphertext),
                access_token_expires_at = $4, last_error = null, updated_at = now(),
                status = 'active', refresh_failures = 0, next_refresh_at = null
          where ws_id = $1",
    )
    .bind(ws_id)
    .bind(access_token_ciphertext)
    .bind(refresh_token_ciphertext)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A refresh that failed for a passing reason: `degraded`, the failures counted, the next try
/// not before `next_refresh_at`.
pub async fn mark_degraded(
    tx: &mut Transaction<'_, Postgres>,
    ws_id: Uuid,
    error: &str,
    next_refresh_at: DateTime<Utc>,
) -> StoreResult<i32> {
    Ok(sqlx::query_scalar(
        "update sepay_connections
            set status = 'degraded', last_error = $2, refresh_failures = refresh_failures + 1,
                next_refresh_at = $3, updated_at = now()
          where ws_id = $1 returning refresh_failures",
    )
    .bind(ws_id)
    .bind(error)
    .bind(next_refresh_at)
    .fetch_one(&mut **tx)
    .await?)
}

/// A definitive refusal: `needs_reconnect` with the reason, until an admin connects again.
pub async fn mark_needs_reconnect(executor: impl sqlx::PgExecutor<'_>, ws_id: Uuid, error: &str) -> StoreResult<()> {
    sqlx::query(
        "update sepay_connections set status = 'needs_reconnect', last_error = $2, next_refresh_at = null,
                updated_at = now()
          where ws_id = $1 and status <> 'revoked'",
    )
    .bind(ws_id)
    .bind(error)
    .execute(executor)
    .await?;
    Ok(())
}

/// Disconnect: tokens dropped, history kept.
pub async fn mark_revoked(pool: &PgPool, ws_id: Uuid) -> StoreResult<()> {
    sqlx::query(
        "update sepay_connections set status = 'revoked', access_token_ciphertext = null,
                refresh_token_ciphertext = null, updated_at = now() where ws_id = $1",
    )
    .bind(ws_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Connections by status, for the gauge alerts watch.
pub async fn status_counts(pool: &PgPool) -> StoreResult<Vec<(String, i64)>> {
    Ok(
        sqlx::query_as("select status, count(*) from sepay_connections group by status")
            .fetch_all(pool)
            .await?,
    )
}

/// Workspaces whose connection may be used: active, or degraded (its refresh is retried by the
/// very calls these schedules make).
pub async fn active_workspaces(pool: &PgPool) -> StoreResult<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "select ws_id from sepay_connections where status in ('active', 'degraded') order by created_at",
    )
    .fetch_all(pool)
    .await?)
}

/// Every connection's sealed tokens (the start-up re-seal of legacy ciphertexts).
pub async fn sealed_tokens(pool: &PgPool) -> StoreResult<Vec<(Uuid, Option<Vec<u8>>, Option<Vec<u8>>)>> {
    Ok(sqlx::query_as(
        "select ws_id, access_token_ciphertext, refresh_token_ciphertext from sepay_connections
          where access_token_ciphertext is not null or refresh_token_ciphertext is not null",
    )
    .fetch_all(pool)
    .await?)
}

/// Replaces both ciphertexts if they are still `old` (a refresh meanwhile wins); `true` when
/// replaced.
pub async fn reseal(
    pool: &PgPool,
    ws_id: Uuid,
    old: (Option<&[u8]>, Option<&[u8]>),
    new: (Option<&[u8]>, Option<&[u8]>),
) -> StoreResult<bool> {
    let updated = sqlx::query(
        "update sepay_connections set access_token_ciphertext = $4, refresh_token_ciphertext = $5
          where ws_id = $1 and access_token_ciphertext is not distinct from $2
            and refresh_token_ciphertext is not distinct from $3",
    )
    .bind(ws_id)
    .bind(old.0)
    .bind(old.1)
    .bind(new.0)
    .bind(new.1)
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
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
    /// A degraded connection's next token refresh.
    pub next_refresh_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

pub async fn connection_view(pool: &PgPool, ws_id: Uuid) -> StoreResult<Option<ConnectionView>> {
    Ok(sqlx::query_as(
        "select status, scopes, access_token_expires_at, last_error, last_synced_at, last_sync_error,
                last_reconciled_at, disconnect_requested_at, next_refresh_at, updated_at
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
