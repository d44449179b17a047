//! What the provisioner writes: synced account links, provisioned endpoints, reconciliation runs.

use crate::endpoints::{ENDPOINT_COLUMNS, Endpoint};
use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// A bank account as SePay lists it.
pub struct SyncedAccount<'a> {
    pub sepay_bank_account_id: &'a str,
    pub account_number: &'a str,
    pub bank_short_name: Option<&'a str>,
    pub holder_name: Option<&'a str>,
    pub label: Option<&'a str>,
    /// Name of the wallet to create when the account has none yet.
    pub new_wallet_name: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncedLink {
    pub link_id: Uuid,
    pub wallet_id: Uuid,
    pub wallet_created: bool,
}

/// Upserts the link of one synced account. An account without a wallet (new, or never mapped)
/// gets a new wallet; a wallet the admin mapped is kept.
pub async fn upsert_synced_account(
    pool: &PgPool,
    ws_id: Uuid,
    connection_id: Uuid,
    a: &SyncedAccount<'_>,
) -> StoreResult<SyncedLink> {
    let mut tx = pool.begin().await?;
    let (link_id, wallet_id): (Uuid, Option<Uuid>) = sqlx::query_as(
        "insert into sepay_wallet_links
           (ws_id, connection_id, sepay_bank_account_id, account_number, bank_short_name, holder_name, label, active)
         values ($1, $2, $3, $4, $5, $6, $7, true)
         on conflict (ws_id, account_number, (coalesce(sub_account, ''))) do update set
           connection_id = excluded.connection_id, sepay_bank_account_id = excluded.sepay_bank_account_id,
           bank_short_name = excluded.bank_short_name, holder_name = excluded.holder_name,
           label = excluded.label, active = true, updated_at = now()
         returning id, wallet_id",
    )
    .bind(ws_id)
    .bind(connection_id)
    .bind(a.sepay_bank_account_id)
    .bind(a.account_number)
    .bind(a.bank_short_name)
    .bind(a.holder_name)
    .bind(a.label)
    .fetch_one(&mut *tx)
    .await?;
    let (wallet_id, wallet_created) = match wallet_id {
        Some(w) => (w, false),
        None => {
            let w: Uuid = sqlx::query_scalar("insert into wallets (ws_id, name) values ($1, $2) returning id")
                .bind(ws_id)
                .bind(a.new_wallet_name)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query("update sepay_wallet_links set wallet_id = $2 where id = $1")
                .bind(link_id)
                .bind(w)
                .execute(&mut *tx)
                .await?;
            (w, true)
        }
    };
    tx.commit().await?;
    Ok(SyncedLink {
        link_id,
        wallet_id,
        wallet_created,
    })
}

/// Accounts SePay no longer lists are marked inactive, never deleted. Returns how many.
pub async fn deactivate_missing(pool: &PgPool, ws_id: Uuid, listed: &[String]) -> StoreResult<u64> {
    Ok(sqlx::query(
        "update sepay_wallet_links set active = false, updated_at = now()
          where ws_id = $1 and active and sepay_bank_account_id is not null
            and not (sepay_bank_account_id = any($2))",
    )
    .bind(ws_id)
    .bind(listed)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Records the outcome of a sync on the connection.
pub async fn record_sync(pool: &PgPool, ws_id: Uuid, error: Option<&str>) -> StoreResult<()> {
    sqlx::query(
        "update sepay_connections set last_sync_error = $2,
                last_synced_at = case when $2::text is null then now() else last_synced_at end, updated_at = now()
          where ws_id = $1",
    )
    .bind(ws_id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// The live SePay-provisioned endpoint of a bank account, if any.
pub async fn live_endpoint(pool: &PgPool, ws_id: Uuid, bank_account_id: &str) -> StoreResult<Option<Endpoint>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {ENDPOINT_COLUMNS} from sepay_webhook_endpoints
          where ws_id = $1 and provider = 'sepay' and bank_account_id = $2 and status = 'active'
            and sepay_webhook_id is not null"
    )))
    .bind(ws_id)
    .bind(bank_account_id)
    .fetch_optional(pool)
    .await?)
}

/// Revokes every SePay endpoint of a workspace (disconnecting SePay leaves Striga's alone);
/// returns them, the ones SePay knows about included.
pub async fn revoke_workspace_endpoints(pool: &PgPool, ws_id: Uuid) -> StoreResult<Vec<Endpoint>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update sepay_webhook_endpoints set status = 'revoked', grace_until = null, updated_at = now()
          where ws_id = $1 and provider = 'sepay' and status <> 'revoked' returning {ENDPOINT_COLUMNS}"
    )))
    .bind(ws_id)
    .fetch_all(pool)
    .await?)
}

pub async fn connection_id(pool: &PgPool, ws_id: Uuid) -> StoreResult<Uuid> {
    sqlx::query_scalar("select id from sepay_connections where ws_id = $1")
        .bind(ws_id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound("connection"))
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ReconciliationRun {
    pub id: i64,
    pub ws_id: Uuid,
    pub trigger: String,
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    pub status: String,
    pub fetched: i32,
    pub inserted: i32,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const RUN_COLUMNS: &str =
    "id, ws_id, trigger, window_from, window_to, status, fetched, inserted, error, started_at, finished_at";

pub async fn start_run(
    pool: &PgPool,
    ws_id: Uuid,
    trigger: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "insert into sepay_reconciliation_runs (ws_id, trigger, window_from, window_to) values ($1, $2, $3, $4) returning id",
    )
    .bind(ws_id)
    .bind(trigger)
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?)
}

/// Progress of a running reconciliation (the CLI shows it).
pub async fn progress_run(pool: &PgPool, run_id: i64, fetched: i32, inserted: i32) -> StoreResult<()> {
    sqlx::query("update sepay_reconciliation_runs set fetched = $2, inserted = $3 where id = $1")
        .bind(run_id)
        .bind(fetched)
        .bind(inserted)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records a run's end. A schedule or request run that succeeded marks the connection reconciled
/// (a scheduled one also how far); one that failed counts a failure. Returns the connection's
/// consecutive failures (0 after a success, or for a gap's or balance's run).
pub async fn finish_run(
    pool: &PgPool,
    run_id: i64,
    fetched: i32,
    inserted: i32,
    error: Option<&str>,
) -> StoreResult<i32> {
    let mut tx = pool.begin().await?;
    let (ws_id, trigger, window_to): (Uuid, String, DateTime<Utc>) = sqlx::query_as(
        "update sepay_reconciliation_runs set fetched = $2, inserted = $3, error = $4, finished_at = now(),
                status = case when $4::text is null then 'succeeded' else 'failed' end
          where id = $1 returning ws_id, trigger, window_to",
    )
    .bind(run_id)
    .bind(fetched)
    .bind(inserted)
    .bind(error)
    .fetch_one(&mut *tx)
    .await?;
    // a gap's or a balance's run covers a span only: it says nothing of the whole window
    let whole_window = matches!(trigger.as_str(), "schedule" | "request");
    let failures = if !whole_window {
        0
    } else if error.is_none() {
        // a scheduled run went from the last success to its end: everything before is covered
        sqlx::query(
            "update sepay_connections
                set last_reconciled_at = now(), reconcile_failures = 0, reconcile_retry_at = null,
                    reconciled_through = case when $2 = 'schedule'
                        then greatest(coalesce(reconciled_through, $3), $3) else reconciled_through end
              where ws_id = $1",
        )
        .bind(ws_id)
        .bind(&trigger)
        .bind(window_to)
        .execute(&mut *tx)
        .await?;
        0
    } else {
        sqlx::query_scalar(
            "update sepay_connections set reconcile_failures = reconcile_failures + 1
              where ws_id = $1 returning reconcile_failures",
        )
        .bind(ws_id)
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(0)
    };
    tx.commit().await?;
    Ok(failures)
}

/// When the next scheduled reconciliation of a failing connection may run.
pub async fn set_reconcile_retry(pool: &PgPool, ws_id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("update sepay_connections set reconcile_retry_at = $2 where ws_id = $1")
        .bind(ws_id)
        .bind(at)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn get_run(pool: &PgPool, run_id: i64) -> StoreResult<ReconciliationRun> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {RUN_COLUMNS} from sepay_reconciliation_runs where id = $1"
    )))
    .bind(run_id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("reconciliation run"))
}

/// Newest first.
pub async fn list_runs(pool: &PgPool, ws_id: Uuid, limit: i64) -> StoreResult<Vec<ReconciliationRun>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {RUN_COLUMNS} from sepay_reconciliation_runs where ws_id = $1 order by id desc limit $2"
    )))
    .bind(ws_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Active connections whose last reconciliation is older than `every` (or never happened).
/// Active connections whose last successful reconciliation is older than `every` and that are not
/// backing off, with the end of what their scheduled runs have covered.
pub async fn due_for_reconciliation(
    pool: &PgPool,
    every: std::time::Duration,
) -> StoreResult<Vec<(Uuid, Option<DateTime<Utc>>)>> {
    Ok(sqlx::query_as(
        "select ws_id, reconciled_through from sepay_connections
          where status in ('active', 'degraded')
            and (last_reconciled_at is null or last_reconciled_at < now() - make_interval(secs => $1))
            and (reconcile_retry_at is null or reconcile_retry_at <= now())
          order by last_reconciled_at nulls first",
    )
    .bind(every.as_secs_f64())
    .fetch_all(pool)
    .await?)
}

/// Active SePay-provisioned endpoints of a workspace.
pub async fn live_endpoint_count(pool: &PgPool, ws_id: Uuid) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "select count(*) from sepay_webhook_endpoints
          where ws_id = $1 and provider = 'sepay' and status = 'active' and sepay_webhook_id is not null",
    )
    .bind(ws_id)
    .fetch_one(pool)
    .await?)
}

/// A provisioned webhook's endpoint, as its health check needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProvisionedEndpoint {
    pub id: Uuid,
    pub sepay_webhook_id: i64,
    pub bank_account_id: String,
    pub token_hash: Vec<u8>,
    /// Since when it is known to have been healthy (last verified, else created).
    pub healthy_since: DateTime<Utc>,
}

/// A workspace's live provisioned endpoints.
pub async fn provisioned_endpoints(pool: &PgPool, ws_id: Uuid) -> StoreResult<Vec<ProvisionedEndpoint>> {
    Ok(sqlx::query_as(
        "select id, sepay_webhook_id, bank_account_id, token_hash, coalesce(last_verified_at, created_at) as healthy_since
           from sepay_webhook_endpoints
          where ws_id = $1 and provider = 'sepay' and status = 'active'
            and sepay_webhook_id is not null and bank_account_id is not null
          order by created_at",
    )
    .bind(ws_id)
    .fetch_all(pool)
    .await?)
}

pub async fn mark_verified(pool: &PgPool, endpoint_ids: &[Uuid]) -> StoreResult<()> {
    if endpoint_ids.is_empty() {
        return Ok(());
    }
    sqlx::query("update sepay_webhook_endpoints set last_verified_at = now() where id = any($1)")
        .bind(endpoint_ids)
        .execute(pool)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WebhookRepair {
    pub id: i64,
    pub endpoint_id: Option<Uuid>,
    pub bank_account_id: Option<String>,
    pub kind: String,
    pub detail: String,
    pub repaired_at: DateTime<Utc>,
}

pub async fn record_repair(
    pool: &PgPool,
    ws_id: Uuid,
    endpoint_id: Uuid,
    bank_account_id: &str,
    kind: &str,
    detail: &str,
) -> StoreResult<()> {
    sqlx::query(
        "insert into sepay_webhook_repairs (ws_id, endpoint_id, bank_account_id, kind, detail) values ($1, $2, $3, $4, $5)",
    )
    .bind(ws_id)
    .bind(endpoint_id)
    .bind(bank_account_id)
    .bind(kind)
    .bind(detail)
    .execute(pool)
    .await?;
    Ok(())
}

/// A workspace's latest webhook repairs (the page).
pub async fn list_repairs(pool: &PgPool, ws_id: Uuid, limit: i64) -> StoreResult<Vec<WebhookRepair>> {
    Ok(sqlx::query_as(
        "select id, endpoint_id, bank_account_id, kind, detail, repaired_at from sepay_webhook_repairs
          where ws_id = $1 order by id desc limit $2",
    )
    .bind(ws_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// How many of a workspace's webhooks were repaired since `since` (the overview).
pub async fn repairs_since(pool: &PgPool, ws_id: Uuid, since: DateTime<Utc>) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("select count(*) from sepay_webhook_repairs where ws_id = $1 and repaired_at >= $2")
            .bind(ws_id)
            .bind(since)
            .fetch_one(pool)
            .await?,
    )
}

/// SePay webhooks of a workspace's revoked endpoints that no live endpoint uses any more: left
/// posting to a dead URL until deleted at SePay.
pub async fn orphaned_webhook_ids(pool: &PgPool, ws_id: Uuid) -> StoreResult<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "select distinct sepay_webhook_id from sepay_webhook_endpoints
          where ws_id = $1 and provider = 'sepay' and status = 'revoked' and sepay_webhook_id is not null
            and sepay_webhook_id not in (
              select sepay_webhook_id from sepay_webhook_endpoints
               where ws_id = $1 and status in ('active', 'rotating') and sepay_webhook_id is not null)",
    )
    .bind(ws_id)
    .fetch_all(pool)
    .await?)
}
