//! Workspaces, wallets and the account → wallet links.

use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Workspace {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// IANA name the admin pages show times in.
    pub time_zone: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Wallet {
    pub id: Uuid,
    pub ws_id: Uuid,
    pub name: String,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WalletLink {
    pub id: Uuid,
    pub ws_id: Uuid,
    pub wallet_id: Option<Uuid>,
    pub account_number: String,
    pub sub_account: Option<String>,
    pub active: bool,
}

pub async fn create_workspace(pool: &PgPool, name: &str) -> StoreResult<Workspace> {
    Ok(
        sqlx::query_as("insert into workspaces (name) values ($1) returning id, name, created_at, time_zone")
            .bind(name)
            .fetch_one(pool)
            .await?,
    )
}

/// A wallet in `currency`, an ISO 4217 code in any case (`eur` is EUR); another is refused.
pub async fn create_wallet(pool: &PgPool, ws_id: Uuid, name: &str, currency: &str) -> StoreResult<Wallet> {
    let currency = sepay_core::currency_code(currency).map_err(|e| StoreError::Rejected { message: e.to_string() })?;
    Ok(sqlx::query_as(
        "insert into wallets (ws_id, name, currency) values ($1, $2, $3)
         returning id, ws_id, name, currency, created_at",
    )
    .bind(ws_id)
    .bind(name)
    .bind(&currency)
    .fetch_one(pool)
    .await?)
}

/// Maps an account number (+ sub account) to a wallet; re-linking moves the mapping.
pub async fn link_account(
    pool: &PgPool,
    ws_id: Uuid,
    account_number: &str,
    sub_account: Option<&str>,
    wallet_id: Uuid,
) -> StoreResult<WalletLink> {
    Ok(sqlx::query_as(
        "insert into sepay_wallet_links (ws_id, account_number, sub_account, wallet_id)
         values ($1, $2, $3, $4)
         on conflict (ws_id, account_number, (coalesce(sub_account, '')))
         do update set wallet_id = excluded.wallet_id, active = true, updated_at = now()
         returning id, ws_id, wallet_id, account_number, sub_account, active",
    )
    .bind(ws_id)
    .bind(account_number)
    .bind(sub_account)
    .bind(wallet_id)
    .fetch_one(pool)
    .await?)
}

/// The wallet a transaction on (account, sub account) books into: the exact link first, else
/// the account's own link (a virtual sub account books into its main account's wallet).
/// The wallet a transaction books into, with its currency: the endpoint's own wallet if it has
/// one, else the link of (account, sub account), falling back to the account's link without a
/// sub account. One query.
pub async fn wallet_for(
    pool: &PgPool,
    ws_id: Uuid,
    endpoint_id: Option<Uuid>,
    account_number: &str,
    sub_account: Option<&str>,
) -> StoreResult<Option<(Uuid, String)>> {
    Ok(sqlx::query_as(
        "select w.id, w.currency from wallets w
          where w.ws_id = $1 and w.id = coalesce(
           (select wallet_id from sepay_webhook_endpoints where id = $4 and ws_id = $1),
           (select wallet_id from sepay_wallet_links
             where ws_id = $1 and account_number = $2 and active and wallet_id is not null
               and (sub_account is null or sub_account = $3)
             order by (sub_account is not distinct from $3) desc
             limit 1))",
    )
    .bind(ws_id)
    .bind(account_number)
    .bind(sub_account)
    .bind(endpoint_id)
    .fetch_optional(pool)
    .await?)
}

pub async fn workspace_exists(pool: &PgPool, ws_id: Uuid) -> StoreResult<bool> {
    Ok(
        sqlx::query_scalar("select exists (select 1 from workspaces where id = $1)")
            .bind(ws_id)
            .fetch_one(pool)
            .await?,
    )
}

/// The workspace a wallet belongs to; `None` when there is no such wallet.
pub async fn wallet_workspace(pool: &PgPool, wallet_id: Uuid) -> StoreResult<Option<Uuid>> {
    Ok(sqlx::query_scalar("select ws_id from wallets where id = $1")
        .bind(wallet_id)
        .fetch_optional(pool)
        .await?)
}

/// A workspace with how much it holds: what an operator looks for before picking one.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WorkspaceSummary {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub wallets: i64,
    /// Active account → wallet links.
    pub links: i64,
    /// Endpoints that accept deliveries: active, or rotating inside their grace period (as
    /// `endpoints::live_endpoints` selects them).
    pub live_endpoints: i64,
}

const SUMMARY: &str = "select w.id, w.name, w.created_at,
        (select count(*) from wallets where ws_id = w.id) as wallets,
        (select count(*) from sepay_wallet_links where ws_id = w.id and active) as links,
        (select count(*) from sepay_webhook_endpoints
          where ws_id = w.id and (status = 'active' or (status = 'rotating' and grace_until > now())))
          as live_endpoints
   from workspaces w";

/// Every workspace, oldest first.
pub async fn list_workspaces(pool: &PgPool) -> StoreResult<Vec<WorkspaceSummary>> {
    Ok(
        sqlx::query_as(AssertSqlSafe(format!("{SUMMARY} order by w.created_at, w.id")))
            .fetch_all(pool)
            .await?,
    )
}

pub async fn workspace_summary(pool: &PgPool, ws_id: Uuid) -> StoreResult<WorkspaceSummary> {
    sqlx::query_as(AssertSqlSafe(format!("{SUMMARY} where w.id = $1")))
        .bind(ws_id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound("workspace"))
}

pub async fn get_workspace(pool: &PgPool, ws_id: Uuid) -> StoreResult<Workspace> {
    sqlx::query_as("select id, name, created_at, time_zone from workspaces where id = $1")
        .bind(ws_id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound("workspace"))
}

/// Sets the time zone the pages show the workspace's times in (an IANA name, checked by the
/// caller).
pub async fn set_time_zone(pool: &PgPool, ws_id: Uuid, time_zone: &str) -> StoreResult<()> {
    sqlx::query("update workspaces set time_zone = $2 where id = $1")
        .bind(ws_id)
        .bind(time_zone)
        .execute(pool)
        .await?;
    Ok(())
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

/// Removes the link of (account, sub account) — the inverse of [`link_account`]. The account's
/// deliveries then book by the account's link without a sub account, if any, else fail as
/// `wallet_not_linked`.
pub async fn unlink_account(
    pool: &PgPool,
    ws_id: Uuid,
    account_number: &str,
    sub_account: Option<&str>,
) -> StoreResult<WalletLink> {
    sqlx::query_as(
        "delete from sepay_wallet_links
          where ws_id = $1 and account_number = $2 and coalesce(sub_account, '') = coalesce($3, '')
         returning id, ws_id, wallet_id, account_number, sub_account, active",
    )
    .bind(ws_id)
    .bind(account_number)
    .bind(sub_account)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("bank account link"))
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
