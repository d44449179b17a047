//! Booking: the one transaction that turns an event into a `wallet_transactions` row.

use crate::error::StoreResult;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sepay_core::EventStatus;
use sepay_core::balance::BalancePoint;
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

/// One booking, owned so it can wait in a batch (`book_many`).
#[derive(Debug, Clone)]
pub struct Booking {
    pub event_id: i64,
    pub ws_id: Uuid,
    pub wallet_id: Uuid,
    pub amount: Decimal,
    pub description: String,
    pub taken_at: DateTime<Utc>,
    pub source: &'static str,
    pub external_ref: String,
    /// The bank transaction's identity across paths (`DedupeKey::identity`), when it has one.
    pub identity_key: Option<String>,
    pub category: CategoryChoice,
    pub classified_by: String,
    pub confidence: Option<f32>,
    pub tags: Vec<String>,
    /// A second row booked with this one, all or nothing: a fee the provider charged beside the
    /// amount (Striga, where its balances show it).
    pub fee: Option<FeeRow>,
    /// The transaction's point on its account's balance chain (`balances`): the account and the
    /// point, recorded in the same statement whatever the outcome (a redelivery records it again,
    /// harmlessly).
    pub balance_point: Option<(String, BalancePoint)>,
}

impl Booking {
    fn category_parts(&self) -> (Option<Uuid>, Option<&str>, Option<bool>) {
        match &self.category {
            CategoryChoice::Existing(id) => (Some(*id), None, None),
            CategoryChoice::Fallback { name, is_expense } => (None, Some(name.as_str()), Some(*is_expense)),
        }
    }
}

/// A fee row: negative, in the booking's wallet, at its time, under its own reference.
#[derive(Debug, Clone)]
pub struct FeeRow {
    pub amount: Decimal,
    pub description: String,
    pub external_ref: String,
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

/// Locks the event (never its key: the attempt log's foreign key checks pass), inserts the
/// transaction with its tags (and fee row) and marks the event processed: one statement, so one
/// round trip and all or nothing (a batch of one of [`book_many`]'s statement). A concurrent
/// booking of the same event waits on the row lock and then finds it processed.
pub async fn book(pool: &PgPool, b: &Booking) -> StoreResult<Booked> {
    let (open, created) = book_together(pool, &[b]).await?[0];
    settle_outcome(pool, b, open, created).await
}

/// What a booking statement's `(the event was open, the row it created)` means; an open event
/// that created nothing met a bank transaction booked by another event and is its duplicate.
async fn settle_outcome(pool: &PgPool, b: &Booking, open: bool, created: Option<Uuid>) -> StoreResult<Booked> {
    match (open, created) {
        (false, _) => Ok(Booked::AlreadyProcessed),
        (true, Some(id)) => Ok(Booked::Created(id)),
        (true, None) => {
            let duplicate_of: Option<Uuid> = sqlx::query_scalar(concat!(
                "update sepay_webhook_events e
                    set status = $5, created_transaction_id = t.id, wallet_id = $4, processed_at = now(),
                        failure_reason = null, failure_detail = null, ",
                note_published_on_close!(),
                " from wallet_transactions t
                  where e.id = $1 and e.status = any($6) and t.ws_id = $2
                    and (t.external_ref = $3 or t.identity_key = $7)
                 returning t.id"
            ))
            .bind(b.event_id)
            .bind(b.ws_id)
            .bind(&b.external_ref)
            .bind(b.wallet_id)
            .bind(Trigger::BookedElsewhere.to().as_str())
            .bind(lifecycle::spellings(Trigger::BookedElsewhere.from()))
            .bind(&b.identity_key)
            .fetch_optional(pool)
            .await?;
            Ok(duplicate_of.map_or(Booked::AlreadyProcessed, Booked::DuplicateOf))
        }
    }
}

/// Books many events in one statement (one round trip, one commit), all or nothing, with the same
/// outcomes as [`book`] one by one, in order. A second booking of a reference already in the batch
/// (the same event redelivered, or two events of one bank transaction) cannot share the
/// statement: it is booked after it with [`book`], and then sees the first one's row.
pub async fn book_many(pool: &PgPool, bookings: &[Booking]) -> StoreResult<Vec<Booked>> {
    let mut together: Vec<usize> = Vec::with_capacity(bookings.len());
    let mut after: Vec<usize> = Vec::new();
    let mut refs = std::collections::HashSet::new();
    for (i, b) in bookings.iter().enumerate() {
        if refs.insert((b.ws_id, b.external_ref.as_str())) {
            together.push(i);
        } else {
            after.push(i);
        }
    }
    let mut outcomes: Vec<Option<Booked>> = vec![None; bookings.len()];
    if !together.is_empty() {
        let batch: Vec<&Booking> = together.iter().map(|&i| &bookings[i]).collect();
        let rows = book_together(pool, &batch).await?;
        for (&i, (open, created)) in together.iter().zip(rows) {
            outcomes[i] = Some(settle_outcome(pool, &bookings[i], open, created).await?);
        }
    }
    for i in after {
        outcomes[i] = Some(book(pool, &bookings[i]).await?);
    }
    Ok(outcomes.into_iter().flatten().collect())
}

/// The booking statement for bookings of distinct references: per booking, in
/// order, whether its event was open and the row it created. Events are locked in id order (as
/// the ingress's publication marks lock them) and tags upserted in name order, so concurrent
/// batches meet in one order; the lock leaves the key alone, so the attempt log's foreign key
/// checks never wait on it.
async fn book_together(pool: &PgPool, bookings: &[&Booking]) -> StoreResult<Vec<(bool, Option<Uuid>)>> {
    let n = bookings.len();
    let mut cols = BatchColumns::with_capacity(n);
    for b in bookings {
        cols.push(b);
    }
    let rows: Vec<(i32, bool, Option<Uuid>)> = sqlx::query_as(concat!(
        "with input as (
           select * from unnest($1::int[], $2::bigint[], $3::uuid[], $4::uuid[], $5::numeric[], $6::text[],
                                $7::uuid[], $8::text[], $9::bool[], $10::timestamptz[], $11::text[], $12::text[],
                                $13::text[], $14::real[], $15::text[], $16::text[], $17::bigint[],
                                $18::timestamptz[], $19::numeric[], $20::numeric[], $25::numeric[],
                                $26::text[], $27::text[])
             as i(ord, event_id, ws_id, wallet_id, amount, description, category_id, fallback_name,
                  fallback_is_expense, taken_at, source, external_ref, classified_by, confidence,
                  identity_key, point_account, point_sepay_id, point_taken_at, point_amount,
                  point_accumulated, fee_amount, fee_description, fee_ref)),
         event as (
           select id from sepay_webhook_events
            where id = any($2) and status = any($23) order by id for no key update),
         -- each fallback category looked up once a batch, not once a row
         fallback as (
           select ws_id, name, is_expense, ensure_fallback_category(ws_id, name, is_expense) as id
             from (select distinct ws_id, fallback_name as name, fallback_is_expense as is_expense
                     from input where category_id is null and event_id in (select id from event)) as wanted),
         created as (
           insert into wallet_transactions
             (ws_id, wallet_id, amount, description, category_id, taken_at, source, external_ref,
              classified_by, classification_confidence, identity_key)
           select i.ws_id, i.wallet_id, i.amount, i.description, coalesce(i.category_id, f.id),
                  i.taken_at, i.source, i.external_ref, i.classified_by, i.confidence, i.identity_key
             from input i
             left join fallback f
               on i.category_id is null and f.ws_id = i.ws_id and f.name = i.fallback_name
              and f.is_expense = i.fallback_is_expense
            where i.event_id in (select id from event)
            order by i.ord
           -- the same reference, or the same identity reached by another path: booked already
           on conflict do nothing
           returning id, ws_id, external_ref),
         booked as (
           select i.event_id, i.ws_id, i.wallet_id, c.id
             from input i join created c on c.ws_id = i.ws_id and c.external_ref = i.external_ref),
         fee as (
           insert into wallet_transactions
             (ws_id, wallet_id, amount, description, category_id, taken_at, source, external_ref, classified_by)
           select i.ws_id, i.wallet_id, i.fee_amount, i.fee_description,
                  ensure_fallback_category(i.ws_id, $28, true), i.taken_at, i.source, i.fee_ref, 'fee'
             from input i join booked b on b.event_id = i.event_id
            where i.fee_amount is not null
           on conflict do nothing),
         point as (
           insert into sepay_balance_points (ws_id, account_number, sepay_id, taken_at, amount, accumulated)
           select ws_id, point_account, point_sepay_id, point_taken_at, point_amount, point_accumulated
             from input where point_sepay_id is not null
           on conflict (ws_id, account_number, sepay_id) do nothing),
         tag_of as (
           select t.event_id, t.name from unnest($21::bigint[], $22::text[]) as t(event_id, name)),
         tag as (
           insert into transaction_tags (ws_id, name)
           select distinct b.ws_id, t.name from tag_of t join booked b on b.event_id = t.event_id
            order by 1, 2
           on conflict (ws_id, name) do update set name = excluded.name
           returning id, ws_id, name),
         tagged as (
           insert into wallet_transaction_tags (transaction_id, tag_id)
           select b.id, tag.id from tag_of t join booked b on b.event_id = t.event_id
             join tag on tag.ws_id = b.ws_id and tag.name = t.name
           on conflict do nothing),
         marked as (
           update sepay_webhook_events e
              set status = $24, created_transaction_id = b.id, wallet_id = b.wallet_id,
                  processed_at = now(), failure_reason = null, failure_detail = null, ",
        note_published_on_close!(),
        "
             from booked b where e.id = b.event_id
           returning e.id)
         select i.ord, i.event_id in (select id from event), b.id
           from input i left join booked b on b.event_id = i.event_id
          order by i.ord"
    ))
    .bind(cols.ord)
    .bind(cols.event_id)
    .bind(cols.ws_id)
    .bind(cols.wallet_id)
    .bind(cols.amount)
    .bind(cols.description)
    .bind(cols.category_id)
    .bind(cols.fallback_name)
    .bind(cols.fallback_is_expense)
    .bind(cols.taken_at)
    .bind(cols.source)
    .bind(cols.external_ref)
    .bind(cols.classified_by)
    .bind(cols.confidence)
    .bind(cols.identity_key)
    .bind(cols.point_account)
    .bind(cols.point_sepay_id)
    .bind(cols.point_taken_at)
    .bind(cols.point_amount)
    .bind(cols.point_accumulated)
    .bind(cols.tag_event)
    .bind(cols.tag_name)
    .bind(lifecycle::spellings(Trigger::Book.from()))
    .bind(Trigger::Book.to().as_str())
    .bind(cols.fee_amount)
    .bind(cols.fee_description)
    .bind(cols.fee_ref)
    .bind(FEE_CATEGORY)
    .fetch_all(pool)
    .await?;
    if rows.len() != n {
        let answer = format!("the batch booking answered {} rows for {n} bookings", rows.len());
        return Err(crate::StoreError::Db(sqlx::Error::Protocol(answer)));
    }
    Ok(rows.into_iter().map(|(_, open, created)| (open, created)).collect())
}

/// [`book_together`]'s parameters, a column each.
#[derive(Default)]
struct BatchColumns<'a> {
    ord: Vec<i32>,
    event_id: Vec<i64>,
    ws_id: Vec<Uuid>,
    wallet_id: Vec<Uuid>,
    amount: Vec<Decimal>,
    description: Vec<&'a str>,
    category_id: Vec<Option<Uuid>>,
    fallback_name: Vec<Option<&'a str>>,
    fallback_is_expense: Vec<Option<bool>>,
    taken_at: Vec<DateTime<Utc>>,
    source: Vec<&'a str>,
    external_ref: Vec<&'a str>,
    classified_by: Vec<&'a str>,
    confidence: Vec<Option<f32>>,
    identity_key: Vec<Option<&'a str>>,
    point_account: Vec<Option<&'a str>>,
    point_sepay_id: Vec<Option<i64>>,
    point_taken_at: Vec<Option<DateTime<Utc>>>,
    point_amount: Vec<Option<Decimal>>,
    point_accumulated: Vec<Option<Decimal>>,
    fee_amount: Vec<Option<Decimal>>,
    fee_description: Vec<Option<&'a str>>,
    fee_ref: Vec<Option<&'a str>>,
    tag_event: Vec<i64>,
    tag_name: Vec<&'a str>,
}

impl<'a> BatchColumns<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            ord: Vec::with_capacity(n),
            ..Default::default()
        }
    }

    fn push(&mut self, b: &'a Booking) {
        let (category_id, fallback_name, fallback_is_expense) = b.category_parts();
        let point = b.balance_point.as_ref();
        self.ord.push(self.ord.len() as i32);
        self.event_id.push(b.event_id);
        self.ws_id.push(b.ws_id);
        self.wallet_id.push(b.wallet_id);
        self.amount.push(b.amount);
        self.description.push(&b.description);
        self.category_id.push(category_id);
        self.fallback_name.push(fallback_name);
        self.fallback_is_expense.push(fallback_is_expense);
        self.taken_at.push(b.taken_at);
        self.source.push(b.source);
        self.external_ref.push(&b.external_ref);
        self.classified_by.push(&b.classified_by);
        self.confidence.push(b.confidence);
        self.identity_key.push(b.identity_key.as_deref());
        self.point_account.push(point.map(|(account, _)| account.as_str()));
        self.point_sepay_id.push(point.map(|(_, p)| p.sepay_id));
        self.point_taken_at.push(point.map(|(_, p)| p.taken_at));
        self.point_amount.push(point.map(|(_, p)| p.amount));
        self.point_accumulated.push(point.map(|(_, p)| p.accumulated));
        self.fee_amount.push(b.fee.as_ref().map(|f| f.amount));
        self.fee_description
            .push(b.fee.as_ref().map(|f| f.description.as_str()));
        self.fee_ref.push(b.fee.as_ref().map(|f| f.external_ref.as_str()));
        for tag in &b.tags {
            self.tag_event.push(b.event_id);
            self.tag_name.push(tag);
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
