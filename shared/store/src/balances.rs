//! Running-balance continuity (`sepay_core::balance`): the points booked SePay transactions leave
//! on their account's chain, and the gaps between neighbours that do not carry on.

use crate::error::StoreResult;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sepay_core::balance::BalancePoint;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// How far back the chain is read when checking neighbours: older points are settled history.
const CHAIN_LOOKBACK_DAYS: i32 = 7;

/// Records a booked transaction's point (once per SePay id: repeats and duplicates add nothing).
pub async fn record_point(pool: &PgPool, ws_id: Uuid, account_number: &str, point: &BalancePoint) -> StoreResult<()> {
    sqlx::query(
        "insert into sepay_balance_points (ws_id, account_number, sepay_id, taken_at, amount, accumulated)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (ws_id, account_number, sepay_id) do nothing",
    )
    .bind(ws_id)
    .bind(account_number)
    .bind(point.sepay_id)
    .bind(point.taken_at)
    .bind(point.amount)
    .bind(point.accumulated)
    .execute(pool)
    .await?;
    Ok(())
}

/// Two neighbours on an account's chain.
#[derive(Debug, Clone)]
pub struct Neighbours {
    pub ws_id: Uuid,
    pub account_number: String,
    pub previous: BalancePoint,
    pub next: BalancePoint,
}

#[derive(sqlx::FromRow)]
struct NeighboursRow {
    ws_id: Uuid,
    account_number: String,
    sepay_id: i64,
    taken_at: DateTime<Utc>,
    amount: Decimal,
    accumulated: Decimal,
    prev_id: i64,
    prev_at: DateTime<Utc>,
    prev_amount: Decimal,
    prev_accumulated: Decimal,
}

/// The neighbour pairs a point recorded after `seq` is part of (as the later or the earlier
/// one: a late point changes its successor's predecessor too), and the highest `seq` seen.
pub async fn neighbours_since(pool: &PgPool, seq: i64) -> StoreResult<(Vec<Neighbours>, i64)> {
    let high: Option<i64> = sqlx::query_scalar("select max(seq) from sepay_balance_points")
        .fetch_one(pool)
        .await?;
    let Some(high) = high.filter(|h| *h > seq) else {
        return Ok((Vec::new(), seq));
    };
    let rows: Vec<NeighboursRow> = sqlx::query_as(
        "with touched as (
           select distinct ws_id, account_number from sepay_balance_points where seq > $1 and seq <= $2),
         chain as (
           select p.ws_id, p.account_number, p.seq, p.sepay_id, p.taken_at, p.amount, p.accumulated,
                  lag(p.seq) over w as prev_seq, lag(p.sepay_id) over w as prev_id,
                  lag(p.taken_at) over w as prev_at, lag(p.amount) over w as prev_amount,
                  lag(p.accumulated) over w as prev_accumulated
             from sepay_balance_points p join touched t using (ws_id, account_number)
            where p.seq <= $2 and p.taken_at > now() - make_interval(days => $3)
           window w as (partition by p.ws_id, p.account_number order by p.sepay_id))
         select ws_id, account_number, sepay_id, taken_at, amount, accumulated,
                prev_id, prev_at, prev_amount, prev_accumulated
           from chain
          where prev_seq is not null and (seq > $1 or prev_seq > $1)",
    )
    .bind(seq)
    .bind(high)
    .bind(CHAIN_LOOKBACK_DAYS)
    .fetch_all(pool)
    .await?;
    let pairs = rows
        .into_iter()
        .map(|r| Neighbours {
            ws_id: r.ws_id,
            account_number: r.account_number,
            previous: BalancePoint {
                sepay_id: r.prev_id,
                taken_at: r.prev_at,
                amount: r.prev_amount,
                accumulated: r.prev_accumulated,
            },
            next: BalancePoint {
                sepay_id: r.sepay_id,
                taken_at: r.taken_at,
                amount: r.amount,
                accumulated: r.accumulated,
            },
        })
        .collect();
    Ok((pairs, high))
}

/// Opens a gap between two neighbours (once), first reconciled at `first_attempt_at`. True when
/// it is new.
pub async fn open_gap(
    pool: &PgPool,
    pair: &Neighbours,
    expected_before: Decimal,
    seen_before: Decimal,
    first_attempt_at: DateTime<Utc>,
) -> StoreResult<bool> {
    let opened = sqlx::query(
        "insert into sepay_balance_gaps
           (ws_id, account_number, after_sepay_id, before_sepay_id, after_at, before_at,
            expected_before, seen_before, next_attempt_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         on conflict (ws_id, account_number, after_sepay_id, before_sepay_id) do nothing",
    )
    .bind(pair.ws_id)
    .bind(&pair.account_number)
    .bind(pair.previous.sepay_id)
    .bind(pair.next.sepay_id)
    .bind(pair.previous.taken_at)
    .bind(pair.next.taken_at)
    .bind(expected_before)
    .bind(seen_before)
    .bind(first_attempt_at)
    .execute(pool)
    .await?;
    Ok(opened.rows_affected() == 1)
}

/// Closes every gap a recorded transaction now lies inside; how many closed.
pub async fn close_filled_gaps(pool: &PgPool) -> StoreResult<u64> {
    let closed = sqlx::query(
        "update sepay_balance_gaps g set status = 'closed', closed_at = now()
          where g.status <> 'closed'
            and exists (select 1 from sepay_balance_points p
                         where p.ws_id = g.ws_id and p.account_number = g.account_number
                           and p.sepay_id > g.after_sepay_id and p.sepay_id < g.before_sepay_id)",
    )
    .execute(pool)
    .await?;
    Ok(closed.rows_affected())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Gap {
    pub id: i64,
    pub ws_id: Uuid,
    pub account_number: String,
    pub after_sepay_id: i64,
    pub before_sepay_id: i64,
    pub after_at: DateTime<Utc>,
    pub before_at: DateTime<Utc>,
    pub expected_before: Decimal,
    pub seen_before: Decimal,
    pub status: String,
    pub attempts: i32,
    pub opened_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

const GAP_COLUMNS: &str = "id, ws_id, account_number, after_sepay_id, before_sepay_id, after_at, before_at, \
     expected_before, seen_before, status, attempts, opened_at, next_attempt_at, closed_at, last_error";

/// Open gaps due for reconciliation, claimed for `hold` (another provisioner replica skips them
/// meanwhile).
pub async fn claim_due_gaps(pool: &PgPool, limit: i64, hold: std::time::Duration) -> StoreResult<Vec<Gap>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update sepay_balance_gaps set next_attempt_at = now() + make_interval(secs => $2)
          where id in (select id from sepay_balance_gaps
                        where status = 'open' and next_attempt_at <= now()
                        order by next_attempt_at limit $1 for update skip locked)
         returning {GAP_COLUMNS}"
    )))
    .bind(limit)
    .bind(hold.as_secs_f64())
    .fetch_all(pool)
    .await?)
}

/// After a reconciliation of the gap: its attempts, the next one's time, or flagged for a person
/// (still closed by a transaction that fills it later).
pub async fn record_gap_attempt(
    pool: &PgPool,
    id: i64,
    next_attempt_at: DateTime<Utc>,
    flag: bool,
    error: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "update sepay_balance_gaps
            set attempts = attempts + 1, next_attempt_at = $2, last_error = $4,
                status = case when $3 and status = 'open' then 'flagged' else status end
          where id = $1",
    )
    .bind(id)
    .bind(next_attempt_at)
    .bind(flag)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// The last point of each of a workspace's accounts (the highest SePay id), by account number.
pub async fn last_points(pool: &PgPool, ws_id: Uuid) -> StoreResult<Vec<(String, BalancePoint)>> {
    let rows: Vec<(String, i64, DateTime<Utc>, Decimal, Decimal)> = sqlx::query_as(
        "select distinct on (account_number) account_number, sepay_id, taken_at, amount, accumulated
           from sepay_balance_points where ws_id = $1
          order by account_number, sepay_id desc",
    )
    .bind(ws_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(account, sepay_id, taken_at, amount, accumulated)| {
            (
                account,
                BalancePoint {
                    sepay_id,
                    taken_at,
                    amount,
                    accumulated,
                },
            )
        })
        .collect())
}

/// A workspace's gaps that are not closed, oldest first (pages, CLI).
pub async fn unclosed_gaps(pool: &PgPool, ws_id: Uuid) -> StoreResult<Vec<Gap>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {GAP_COLUMNS} from sepay_balance_gaps where ws_id = $1 and status <> 'closed' order by opened_at, id"
    )))
    .bind(ws_id)
    .fetch_all(pool)
    .await?)
}

/// Gaps by status across workspaces, for the gauge.
pub async fn gap_counts(pool: &PgPool) -> StoreResult<Vec<(String, i64)>> {
    Ok(
        sqlx::query_as("select status, count(*) from sepay_balance_gaps where status <> 'closed' group by status")
            .fetch_all(pool)
            .await?,
    )
}

/// A workspace's gaps that are not closed: how many are open, and how many flagged (the overview).
pub async fn unclosed_gap_counts(pool: &PgPool, ws_id: Uuid) -> StoreResult<(i64, i64)> {
    Ok(sqlx::query_as(
        "select count(*) filter (where status = 'open'), count(*) filter (where status = 'flagged')
           from sepay_balance_gaps where ws_id = $1",
    )
    .bind(ws_id)
    .fetch_one(pool)
    .await?)
}

/// A workspace's gaps: how many were opened, and how many of them are flagged.
pub async fn gap_summary(pool: &PgPool, ws_id: Uuid) -> StoreResult<(i64, i64)> {
    Ok(sqlx::query_as(
        "select count(*), count(*) filter (where status = 'flagged') from sepay_balance_gaps where ws_id = $1",
    )
    .bind(ws_id)
    .fetch_one(pool)
    .await?)
}
