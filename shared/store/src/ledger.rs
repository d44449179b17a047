//! Booking: the one transaction that turns an event into a `wallet_transactions` row.

use crate::error::StoreResult;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sepay_core::EventStatus;
use sepay_core::lifecycle::{self, Trigger};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// The category to book under: chosen by a classifier, or the workspace's fallback.
#[derive(Debug, Clone, PartialEq)]
pub enum CategoryChoice {
    Existing(Uuid),
    /// Created on first use through `ensure_fallback_category`.
    Fallback {
        name: String,
        is_expense: bool,
    },
}

pub struct Booking<'a> {
    pub event_id: i64,
    pub ws_id: Uuid,
    pub wallet_id: Uuid,
    pub amount: Decimal,
    pub description: &'a str,
    pub taken_at: DateTime<Utc>,
    pub source: &'a str,
    pub external_ref: &'a str,
    /// The bank transaction's identity across paths (`DedupeKey::identity`), when it has one.
    pub identity_key: Option<&'a str>,
    pub category: &'a CategoryChoice,
    pub classified_by: &'a str,
    pub confidence: Option<f32>,
    pub tags: &'a [String],
    /// A second row booked with this one, all or nothing: a fee the provider charged beside the
    /// amount (Striga, where its balances show it).
    pub fee: Option<FeeRow<'a>>,
    /// The transaction's point on its account's balance chain (`balances`), recorded in the same
    /// statement whatever the outcome (a redelivery records it again, harmlessly).
    pub balance_point: Option<(&'a str, &'a sepay_core::balance::BalancePoint)>,
}

/// A fee row: negative, in the booking's wallet, at its time, under its own reference.
#[derive(Debug, Clone, Copy)]
pub struct FeeRow<'a> {
    pub amount: Decimal,
    pub description: &'a str,
    pub external_ref: &'a str,
}

/// The category fee rows get (created as an expense category when the workspace has none).
pub const FEE_CATEGORY: &str = "Bank fees";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booked {
    /// A new wallet transaction.
    Created(Uuid),
    /// The event was already processed (a redelivery): nothing written.
    AlreadyProcessed,
    /// Another event had booked the same bank transaction: this one is marked `duplicate`.
    DuplicateOf(Uuid),
}

/// Locks the event, inserts the transaction with its tags and marks the event processed: one
/// statement, so one round trip and all or nothing. A concurrent booking of the same event waits
/// on the row lock and then finds it processed.
pub async fn book(pool: &PgPool, b: &Booking<'_>) -> StoreResult<Booked> {
    let (existing, fallback) = match b.category {
        CategoryChoice::Existing(id) => (Some(*id), None),
        CategoryChoice::Fallback { name, is_expense } => (None, Some((name.as_str(), *is_expense))),
    };
    let (open, created): (bool, Option<Uuid>) = sqlx::query_as(
        "with event as (
           select id from sepay_webhook_events
            where id = $1 and status = any($15) for update),
         created as (
           insert into wallet_transactions
             (ws_id, wallet_id, amount, description, category_id, taken_at, source, external_ref,
              classified_by, classification_confidence, identity_key)
           select $2, $3, $4, $5, coalesce($6, ensure_fallback_category($2, $7, $8)), $9, $10, $11, $12, $13, $17
            where exists (select 1 from event)
           -- the same reference, or the same identity reached by another path: booked already
           on conflict do nothing
           returning id),
         point as (
           insert into sepay_balance_points (ws_id, account_number, sepay_id, taken_at, amount, accumulated)
           select $2, $22, $23, $24, $25, $26 where $23::bigint is not null
           on conflict (ws_id, account_number, sepay_id) do nothing),
         fee as (
           insert into wallet_transactions
             (ws_id, wallet_id, amount, description, category_id, taken_at, source, external_ref, classified_by)
           select $2, $3, $18, $19, ensure_fallback_category($2, $21, true), $9, $10, $20, 'fee'
            where exists (select 1 from created) and $18 is not null
           on conflict do nothing),
         tag as (
           insert into transaction_tags (ws_id, name)
           select distinct $2::uuid, name from unnest($14::text[]) as name where exists (select 1 from created)
           on conflict (ws_id, name) do update set name = excluded.name
           returning id),
         tagged as (
           insert into wallet_transaction_tags (transaction_id, tag_id)
           select created.id, tag.id from created, tag
           on conflict do nothing),
         marked as (
           update sepay_webhook_events
              set status = $16, created_transaction_id = (select id from created), wallet_id = $3,
                  processed_at = now(), failure_reason = null, failure_detail = null
            where id = $1 and exists (select 1 from created)
           returning id)
         select exists (select 1 from event), (select id from created)",
    )
    .bind(b.event_id)
    .bind(b.ws_id)
    .bind(b.wallet_id)
    .bind(b.amount)
    .bind(b.description)
    .bind(existing)
    .bind(fallback.map(|(name, _)| name))
    .bind(fallback.map(|(_, is_expense)| is_expense))
    .bind(b.taken_at)
    .bind(b.source)
    .bind(b.external_ref)
    .bind(b.classified_by)
    .bind(b.confidence)
    .bind(b.tags)
    .bind(lifecycle::spellings(Trigger::Book.from()))
    .bind(Trigger::Book.to().as_str())
    .bind(b.identity_key)
    .bind(b.fee.map(|f| f.amount))
    .bind(b.fee.map(|f| f.description))
    .bind(b.fee.map(|f| f.external_ref))
    .bind(FEE_CATEGORY)
    .bind(b.balance_point.map(|(account, _)| account))
    .bind(b.balance_point.map(|(_, p)| p.sepay_id))
    .bind(b.balance_point.map(|(_, p)| p.taken_at))
    .bind(b.balance_point.map(|(_, p)| p.amount))
    .bind(b.balance_point.map(|(_, p)| p.accumulated))
    .fetch_one(pool)
    .await?;
    match (open, created) {
        (false, _) => Ok(Booked::AlreadyProcessed),
        (true, Some(id)) => Ok(Booked::Created(id)),
        // the bank transaction was booked by another event: this one is its duplicate
        (true, None) => {
            let duplicate_of: Option<Uuid> = sqlx::query_scalar(
                "update sepay_webhook_events e
                    set status = $5, created_transaction_id = t.id, wallet_id = $4, processed_at = now(),
                        failure_reason = null, failure_detail = null
                   from wallet_transactions t
                  where e.id = $1 and e.status = any($6) and t.ws_id = $2
                    and (t.external_ref = $3 or t.identity_key = $7)
                 returning t.id",
            )
            .bind(b.event_id)
            .bind(b.ws_id)
            .bind(b.external_ref)
            .bind(b.wallet_id)
            .bind(Trigger::BookedElsewhere.to().as_str())
            .bind(lifecycle::spellings(Trigger::BookedElsewhere.from()))
            .bind(b.identity_key)
            .fetch_optional(pool)
            .await?;
            Ok(duplicate_of.map_or(Booked::AlreadyProcessed, Booked::DuplicateOf))
        }
    }
}

/// Which of these external references a workspace has booked (the fault suite's detection timing).
pub async fn booked_refs(pool: &PgPool, ws_id: Uuid, refs: &[String]) -> StoreResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("select external_ref from wallet_transactions where ws_id = $1 and external_ref = any($2)")
            .bind(ws_id)
            .bind(refs)
            .fetch_all(pool)
            .await?,
    )
}

pub async fn ensure_fallback_category(pool: &PgPool, ws_id: Uuid, name: &str, is_expense: bool) -> StoreResult<Uuid> {
    Ok(sqlx::query_scalar("select ensure_fallback_category($1, $2, $3)")
        .bind(ws_id)
        .bind(name)
        .bind(is_expense)
        .fetch_one(pool)
        .await?)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WalletTransaction {
    pub id: Uuid,
    pub ws_id: Uuid,
    pub wallet_id: Uuid,
    pub amount: Decimal,
    pub description: String,
    pub category_id: Option<Uuid>,
    pub category_name: Option<String>,
    pub taken_at: DateTime<Utc>,
    pub source: String,
    pub external_ref: String,
    pub classified_by: Option<String>,
}

/// A booked transaction as an event's page shows it: its wallet, category and tags.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct BookedTransaction {
    pub id: Uuid,
    pub wallet_id: Uuid,
    pub wallet_name: String,
    pub currency: String,
    pub amount: Decimal,
    pub description: String,
    pub category_name: Option<String>,
    pub tags: Vec<String>,
    pub taken_at: DateTime<Utc>,
    pub classified_by: Option<String>,
}

/// The transaction `id` of `ws_id`, if any.
pub async fn booked_transaction(pool: &PgPool, ws_id: Uuid, id: Uuid) -> StoreResult<Option<BookedTransaction>> {
    Ok(sqlx::query_as(
        "select t.id, t.wallet_id, w.name as wallet_name, w.currency, t.amount, t.description,
                c.name as category_name,
                array(select g.name from wallet_transaction_tags wt join transaction_tags g on g.id = wt.tag_id
                       where wt.transaction_id = t.id order by g.name) as tags,
                t.taken_at, t.classified_by
           from wallet_transactions t
           join wallets w on w.id = t.wallet_id
           left join transaction_categories c on c.id = t.category_id
          where t.ws_id = $1 and t.id = $2",
    )
    .bind(ws_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// A wallet with its count of transactions and its balance (the wallets page).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WalletBalance {
    pub id: Uuid,
    pub name: String,
    pub currency: String,
    pub transactions: i64,
    pub balance: Decimal,
}

/// Every wallet of a workspace with its count and balance, in one query.
pub async fn wallet_balances(pool: &PgPool, ws_id: Uuid) -> StoreResult<Vec<WalletBalance>> {
    Ok(sqlx::query_as(
        "select w.id, w.name, w.currency, count(t.id) as transactions, coalesce(sum(t.amount), 0) as balance
           from wallets w left join wallet_transactions t on t.wallet_id = w.id
          where w.ws_id = $1 group by w.id order by w.name, w.id",
    )
    .bind(ws_id)
    .fetch_all(pool)
    .await?)
}

/// A line of a wallet's statement: the transaction and the wallet's balance after it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StatementLine {
    pub id: Uuid,
    pub taken_at: DateTime<Utc>,
    pub amount: Decimal,
    pub description: String,
    pub category_name: Option<String>,
    pub tags: Vec<String>,
    pub source: String,
    /// The sum of the wallet's transactions up to this one (by time, then id).
    pub balance: Decimal,
}

/// A wallet's transactions taken in `[from, to)`, newest first, at most `limit`, older than
/// transaction `before` when given; each with the running balance.
pub async fn statement(
    pool: &PgPool,
    ws_id: Uuid,
    wallet_id: Uuid,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    before: Option<Uuid>,
    limit: i64,
) -> StoreResult<Vec<StatementLine>> {
    Ok(sqlx::query_as(
        "select r.id, r.taken_at, r.amount, r.description, c.name as category_name,
                array(select g.name from wallet_transaction_tags wt join transaction_tags g on g.id = wt.tag_id
                       where wt.transaction_id = r.id order by g.name) as tags,
                r.source, r.balance
           from (select t.*, sum(t.amount) over (order by t.taken_at, t.id) as balance
                   from wallet_transactions t where t.ws_id = $1 and t.wallet_id = $2) r
           left join transaction_categories c on c.id = r.category_id
          where ($3::timestamptz is null or r.taken_at >= $3) and ($4::timestamptz is null or r.taken_at < $4)
            and ($5::uuid is null or (r.taken_at, r.id) < (select taken_at, id from wallet_transactions where id = $5))
          order by r.taken_at desc, r.id desc limit $6",
    )
    .bind(ws_id)
    .bind(wallet_id)
    .bind(from)
    .bind(to)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Newest first.
pub async fn list_transactions(pool: &PgPool, ws_id: Uuid, limit: i64) -> StoreResult<Vec<WalletTransaction>> {
    Ok(sqlx::query_as(
        "select t.id, t.ws_id, t.wallet_id, t.amount, t.description, t.category_id, c.name as category_name,
                t.taken_at, t.source, t.external_ref, t.classified_by
           from wallet_transactions t left join transaction_categories c on c.id = t.category_id
          where t.ws_id = $1 order by t.created_at desc limit $2",
    )
    .bind(ws_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// How many wallet transactions a workspace has, and their sum.
pub async fn totals(pool: &PgPool, ws_id: Uuid) -> StoreResult<(i64, Decimal)> {
    Ok(
        sqlx::query_as("select count(*), coalesce(sum(amount), 0) from wallet_transactions where ws_id = $1")
            .bind(ws_id)
            .fetch_one(pool)
            .await?,
    )
}

/// How many wallet transactions a wallet has, and their sum.
pub async fn wallet_totals(pool: &PgPool, wallet_id: Uuid) -> StoreResult<(i64, Decimal)> {
    Ok(
        sqlx::query_as("select count(*), coalesce(sum(amount), 0) from wallet_transactions where wallet_id = $1")
            .bind(wallet_id)
            .fetch_one(pool)
            .await?,
    )
}

/// What a workspace's books say, for checking "nothing lost, nothing booked twice" after faults.
#[derive(Debug, Clone)]
pub struct Audit {
    /// Wallet transactions of the workspace.
    pub rows: i64,
    /// Per SePay transaction id (`None`: eventless): bookings and the sum of their amounts.
    pub per_sepay_id: Vec<(Option<i64>, i64, Decimal)>,
    /// Events still `received`, of them past `stale_after`, and `failed`.
    pub received: i64,
    pub received_past_stale: i64,
    pub failed: i64,
}

pub async fn audit(pool: &PgPool, ws_id: Uuid, stale_after: std::time::Duration) -> StoreResult<Audit> {
    let rows: i64 = sqlx::query_scalar("select count(*) from wallet_transactions where ws_id = $1")
        .bind(ws_id)
        .fetch_one(pool)
        .await?;
    let per_sepay_id = sqlx::query_as(
        "select e.sepay_transaction_id, count(*), coalesce(sum(t.amount), 0)
           from wallet_transactions t
           -- the event that made it (a `duplicate` event points at it too: not counted)
           join sepay_webhook_events e on e.created_transaction_id = t.id and e.status = $2
          where t.ws_id = $1 group by 1",
    )
    .bind(ws_id)
    .bind(EventStatus::Processed.as_str())
    .fetch_all(pool)
    .await?;
    let (received, received_past_stale, failed) = sqlx::query_as(
        "select count(*) filter (where status = $3),
                count(*) filter (where status = $3 and opened_at < now() - make_interval(secs => $2)),
                count(*) filter (where status = $4)
           from sepay_webhook_events where ws_id = $1",
    )
    .bind(ws_id)
    .bind(stale_after.as_secs_f64())
    .bind(EventStatus::Received.as_str())
    .bind(EventStatus::Failed.as_str())
    .fetch_one(pool)
    .await?;
    Ok(Audit {
        rows,
        per_sepay_id,
        received,
        received_past_stale,
        failed,
    })
}
