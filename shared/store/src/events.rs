//! `sepay_webhook_events`: the record of every delivery and its processing state.

use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use sepay_core::lifecycle::{self, ExistingEvent, RepeatDecision, RetryPolicy, Trigger};
use sepay_core::{DedupeKey, EventSource, EventStatus, FailureReason, Provider};
use serde::Serialize;
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgExecutor, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// The amount as the provider sent it: SePay's `transferAmount`, Striga's moving side in cents
/// (`credit`, else `debit`). Text: never a float.
macro_rules! sent_amount {
    () => {
        "coalesce(payload->>'transferAmount',
                  case when provider = 'striga' then coalesce(nullif(payload->>'credit', '0'), payload->>'debit') end)"
    };
}

/// The account a delivery is for: SePay's `accountNumber`, Striga's `accountId` (else
/// `syncedOwnerId`).
macro_rules! account {
    () => {
        "coalesce(payload->>'accountNumber', payload->>'accountId', payload->>'syncedOwnerId')"
    };
}

/// Puts the `received` rows of the data-modifying CTE `$rows` on the relay's work list
/// (`sepay_open_events`), as a CTE of the statement that opens them, so an open event always has
/// its row there (`$received`: the parameter holding `received`). A reopen's row replaces the
/// earlier attempt's, if the relay has not pruned it yet.
macro_rules! open_rows {
    ($rows:literal, $received:literal) => {
        concat!(
            "opened as (
               insert into sepay_open_events (event_id, attempts, opened_at)
               select id, attempts, opened_at from ",
            $rows,
            " where status = ",
            $received,
            "
               on conflict (event_id) do update set attempts = excluded.attempts, opened_at = excluded.opened_at)"
        )
    };
}

/// What one event's publication carries: enough for the processor to find the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRef {
    pub id: i64,
    pub ws_id: Uuid,
    /// The processing attempt this publication belongs to (part of the bus message id).
    pub attempts: i32,
}

/// A delivery to record. `payload` for JSON objects; `raw_body` for anything else.
pub struct NewEvent<'a> {
    pub ws_id: Uuid,
    pub provider: Provider,
    pub endpoint_id: Option<Uuid>,
    pub source: EventSource,
    pub sepay_transaction_id: Option<i64>,
    pub dedupe_key: &'a DedupeKey,
    pub body: EventBody<'a>,
}

pub enum EventBody<'a> {
    Json(&'a Value),
    /// Not a JSON object: stored verbatim and failed at once as `invalid_payload`.
    Invalid(&'a str),
}

impl<'a> EventBody<'a> {
    /// The row's `payload`, `raw_body` and `failure_reason`: a body that is not an object is
    /// stored verbatim and failed at once.
    fn columns(&self) -> (Option<&'a Value>, Option<&'a str>, Option<&'static str>) {
        match *self {
            EventBody::Json(v) => (Some(v), None, None),
            EventBody::Invalid(raw) => (None, Some(raw), Some(FailureReason::InvalidPayload.as_str())),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new event, open for processing: publish it.
    New(EventRef),
    /// A repeat that reopened the event: publish it again.
    Reopened(EventRef),
    /// A repeat of an event being processed now.
    InFlight(EventRef),
    /// A repeat of an event already booked (or a known duplicate).
    Duplicate(EventRef),
    /// A body that is not a JSON object, stored (once) as failed.
    Invalid(EventRef),
}

impl Recorded {
    pub fn event(&self) -> EventRef {
        match *self {
            Self::New(e) | Self::Reopened(e) | Self::InFlight(e) | Self::Duplicate(e) | Self::Invalid(e) => e,
        }
    }
    /// Whether the event must now be published for processing.
    pub fn needs_publish(&self) -> bool {
        matches!(self, Self::New(_) | Self::Reopened(_))
    }
}

#[derive(sqlx::FromRow)]
struct ExistingRow {
    id: i64,
    ws_id: Uuid,
    attempts: i32,
    status: String,
    opened_age_secs: f64,
    since_last_delivery_secs: f64,
    has_transaction: bool,
    is_raw: bool,
}

impl ExistingRow {
    /// The repeat rules' decision for a delivery of this row's key (`None`: a stored body that is
    /// not a JSON object, only counted).
    fn decide(&self, eventless: bool, policy: &RetryPolicy) -> StoreResult<Option<RepeatDecision>> {
        if self.is_raw {
            return Ok(None);
        }
        let status = EventStatus::parse(&self.status).ok_or(StoreError::Rejected {
            message: format!("unknown event status {}", self.status),
        })?;
        Ok(Some(policy.decide_repeat(&ExistingEvent {
            status,
            opened_age: secs(self.opened_age_secs),
            since_last_delivery: secs(self.since_last_delivery_secs),
            has_transaction: self.has_transaction,
            eventless,
        })))
    }

    fn event(&self) -> EventRef {
        EventRef {
            id: self.id,
            ws_id: self.ws_id,
            attempts: self.attempts,
        }
    }
}

/// Records a delivery exactly once per (workspace, dedupe key) and applies the repeat rules of
/// `RetryPolicy` to a delivery that collides with an existing row, in one transaction.
pub async fn record_delivery(pool: &PgPool, new: &NewEvent<'_>, policy: &RetryPolicy) -> StoreResult<Recorded> {
    let (payload, raw_body, reason) = new.body.columns();
    let status = lifecycle::first_status(payload.is_some());
    let mut tx = pool.begin().await?;
    if let Some(endpoint_id) = new.endpoint_id {
        // last-use is informational: write it at most once a minute per endpoint
        sqlx::query(
            "update sepay_webhook_endpoints set last_used_at = now()
             where id = $1 and (last_used_at is null or last_used_at < now() - interval '1 minute')",
        )
        .bind(endpoint_id)
        .execute(&mut *tx)
        .await?;
    }
    let inserted: Option<EventRef> = sqlx::query_as(concat!(
        "with inserted as (
           insert into sepay_webhook_events
             (ws_id, endpoint_id, source, sepay_transaction_id, dedupe_key, payload, raw_body, status,
              failure_reason, failure_detail, provider)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                   case when $9::text is null then null else 'the body is not a JSON object' end, $10)
           on conflict (ws_id, dedupe_key) do nothing
           returning id, ws_id, attempts, status, opened_at), ",
        open_rows!("inserted", "$11"),
        " select id, ws_id, attempts from inserted"
    ))
    .bind(new.ws_id)
    .bind(new.endpoint_id)
    .bind(new.source.as_str())
    .bind(new.sepay_transaction_id)
    .bind(new.dedupe_key.as_str())
    .bind(payload)
    .bind(raw_body)
    .bind(status.as_str())
    .bind(reason)
    .bind(new.provider.as_str())
    .bind(EventStatus::Received.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(event) = inserted {
        tx.commit().await?;
        return Ok(match new.body {
            EventBody::Json(_) => Recorded::New(event),
            EventBody::Invalid(_) => Recorded::Invalid(event),
        });
    }

    // A repeat: lock the canonical row and decide.
    let row: ExistingRow = sqlx::query_as(
        "select id, ws_id, attempts, status,
                extract(epoch from now() - opened_at)::float8 as opened_age_secs,
                extract(epoch from now() - last_received_at)::float8 as since_last_delivery_secs,
                created_transaction_id is not null as has_transaction,
                payload is null as is_raw
           from sepay_webhook_events where ws_id = $1 and dedupe_key = $2 for no key update",
    )
    .bind(new.ws_id)
    .bind(new.dedupe_key.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let mut event = row.event();
    let decision = row.decide(new.dedupe_key.is_eventless(), policy)?;
    if decision == Some(RepeatDecision::Reopen) {
        let reopened = reopen(&mut *tx, &Reopen::Repeat(row.id)).await?;
        event.attempts = reopened.first().ok_or(StoreError::NotFound("event"))?.attempts;
    } else {
        sqlx::query(
            "update sepay_webhook_events
                set delivery_count = delivery_count + 1, last_received_at = now() where id = $1",
        )
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(match decision {
        None => Recorded::Invalid(event),
        Some(RepeatDecision::Reopen) => Recorded::Reopened(event),
        Some(RepeatDecision::InFlight) => Recorded::InFlight(event),
        Some(RepeatDecision::Duplicate) => Recorded::Duplicate(event),
    })
}

/// Inserts many deliveries in one statement (one round trip, one commit: the ingress's group
/// commit), and notes their endpoints' use (`touch`: endpoints not noted in the last minute; the
/// mark is informational). By position: the new event, or `None` where its key was there already
/// (then [`record_delivery`] applies the repeat rules). A key twice in one batch is inserted once,
/// for its first position. All or nothing: an error fails the whole statement.
pub async fn insert_many(pool: &PgPool, new: &[NewEvent<'_>], touch: &[Uuid]) -> StoreResult<Vec<Option<EventRef>>> {
    let mut columns = InsertColumns::default();
    for event in new {
        columns.push(event);
    }
    let inserted: Vec<(i64, Uuid, i32, String)> = sqlx::query_as(concat!(
        "with touched as (
           update sepay_webhook_endpoints set last_used_at = now()
            where id = any($11) and (last_used_at is null or last_used_at < now() - interval '1 minute')),
         inserted as (
           insert into sepay_webhook_events
             (ws_id, endpoint_id, source, sepay_transaction_id, dedupe_key, payload, raw_body, status,
              failure_reason, failure_detail, provider)
           select ws_id, endpoint_id, source, sepay_transaction_id, dedupe_key, payload, raw_body, status,
                  failure_reason, case when failure_reason is null then null else 'the body is not a JSON object' end,
                  provider
             from unnest($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::text[], $6::jsonb[], $7::text[],
                         $8::text[], $9::text[], $10::text[])
               as i(ws_id, endpoint_id, source, sepay_transaction_id, dedupe_key, payload, raw_body, status,
                    failure_reason, provider)
           on conflict (ws_id, dedupe_key) do nothing
           returning id, ws_id, attempts, dedupe_key, status, opened_at), ",
        open_rows!("inserted", "$12"),
        " select id, ws_id, attempts, dedupe_key from inserted"
    ))
    .bind(columns.ws_id)
    .bind(columns.endpoint_id)
    .bind(columns.source)
    .bind(columns.sepay_transaction_id)
    .bind(columns.dedupe_key)
    .bind(columns.payload)
    .bind(columns.raw_body)
    .bind(columns.status)
    .bind(columns.failure_reason)
    .bind(columns.provider)
    .bind(touch)
    .bind(EventStatus::Received.as_str())
    .fetch_all(pool)
    .await?;
    let mut by_key: std::collections::HashMap<(Uuid, &str), EventRef> = inserted
        .iter()
        .map(|(id, ws_id, attempts, key)| {
            let event = EventRef {
                id: *id,
                ws_id: *ws_id,
                attempts: *attempts,
            };
            ((*ws_id, key.as_str()), event)
        })
        .collect();
    // the first position with a key takes its row; a later one is a repeat
    Ok(new
        .iter()
        .map(|event| by_key.remove(&(event.ws_id, event.dedupe_key.as_str())))
        .collect())
}

/// Repeats of stored keys (the rows `insert_many` did not insert), decided together: their rows
/// are read in one query without a lock, and those the repeat rules only count (in flight, a
/// duplicate, a body that is not an object) are counted in one statement, on condition that the
/// row has not moved since it was read. The rest, a reopen or a row that moved, go through
/// [`record_delivery`] one by one, which locks and decides again. One outcome per delivery, in
/// order.
pub async fn record_repeats(
    pool: &PgPool,
    repeats: &[&NewEvent<'_>],
    policy: &RetryPolicy,
) -> Vec<StoreResult<Recorded>> {
    if repeats.is_empty() {
        return Vec::new();
    }
    let mut outcomes: Vec<Option<StoreResult<Recorded>>> = repeats.iter().map(|_| None).collect();
    if let Err(err) = count_repeats(pool, repeats, policy, &mut outcomes).await {
        tracing::warn!(error = %err, repeats = repeats.len(), "repeats not counted together; one by one");
    }
    let mut results = Vec::with_capacity(repeats.len());
    for (new, outcome) in repeats.iter().zip(outcomes) {
        results.push(match outcome {
            Some(outcome) => outcome,
            None => record_delivery(pool, new, policy).await,
        });
    }
    results
}

/// [`record_repeats`]'s shared path: fills the outcome of every repeat it counted.
async fn count_repeats(
    pool: &PgPool,
    repeats: &[&NewEvent<'_>],
    policy: &RetryPolicy,
    outcomes: &mut [Option<StoreResult<Recorded>>],
) -> StoreResult<()> {
    let ws_ids: Vec<Uuid> = repeats.iter().map(|r| r.ws_id).collect();
    let keys: Vec<&str> = repeats.iter().map(|r| r.dedupe_key.as_str()).collect();
    let rows: Vec<(i64, ExistingRow)> = sqlx::query_as::<_, ExistingRowAt>(
        "select i.ord, e.id, e.ws_id, e.attempts, e.status,
                extract(epoch from now() - e.opened_at)::float8 as opened_age_secs,
                extract(epoch from now() - e.last_received_at)::float8 as since_last_delivery_secs,
                e.created_transaction_id is not null as has_transaction,
                e.payload is null as is_raw
           from unnest($1::uuid[], $2::text[]) with ordinality as i(ws_id, dedupe_key, ord)
           join sepay_webhook_events e on e.ws_id = i.ws_id and e.dedupe_key = i.dedupe_key",
    )
    .bind(&ws_ids)
    .bind(&keys)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.ord, r.row))
    .collect();
    // (position, row, what it becomes) of each repeat the rules only count
    let mut counted: Vec<(usize, EventRef, String, Recorded)> = Vec::new();
    for (ord, row) in rows {
        let Some(position) = usize::try_from(ord - 1).ok().filter(|p| *p < repeats.len()) else {
            continue;
        };
        let event = row.event();
        let recorded = match row.decide(repeats[position].dedupe_key.is_eventless(), policy)? {
            None => Recorded::Invalid(event),
            Some(RepeatDecision::InFlight) => Recorded::InFlight(event),
            Some(RepeatDecision::Duplicate) => Recorded::Duplicate(event),
            Some(RepeatDecision::Reopen) => continue,
        };
        counted.push((position, event, row.status, recorded));
    }
    if counted.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = counted.iter().map(|(_, e, _, _)| e.id).collect();
    let statuses: Vec<&str> = counted.iter().map(|(_, _, status, _)| status.as_str()).collect();
    let attempts: Vec<i32> = counted.iter().map(|(_, e, _, _)| e.attempts).collect();
    // rows locked in id order, as everywhere else, so batches never deadlock
    let counted_ids: std::collections::HashSet<i64> = sqlx::query_scalar::<_, i64>(
        "with wanted as (
           select id, status, attempts, count(*)::int as deliveries
             from unnest($1::bigint[], $2::text[], $3::int[]) as w(id, status, attempts) group by 1, 2, 3),
         unmoved as (
           select e.id, w.deliveries from sepay_webhook_events e
             join wanted w on e.id = w.id and e.status = w.status and e.attempts = w.attempts
            order by e.id for no key update of e)
         update sepay_webhook_events e
            set delivery_count = delivery_count + unmoved.deliveries, last_received_at = now()
           from unmoved where e.id = unmoved.id
         returning e.id",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&attempts)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    for (position, event, _, recorded) in counted {
        if counted_ids.contains(&event.id) {
            outcomes[position] = Some(Ok(recorded));
        }
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ExistingRowAt {
    ord: i64,
    #[sqlx(flatten)]
    row: ExistingRow,
}

/// The batch as one array per column (`unnest`).
#[derive(Default)]
struct InsertColumns<'a> {
    ws_id: Vec<Uuid>,
    endpoint_id: Vec<Option<Uuid>>,
    source: Vec<&'static str>,
    sepay_transaction_id: Vec<Option<i64>>,
    dedupe_key: Vec<&'a str>,
    payload: Vec<Option<&'a Value>>,
    raw_body: Vec<Option<&'a str>>,
    status: Vec<&'static str>,
    failure_reason: Vec<Option<&'static str>>,
    provider: Vec<&'static str>,
}

impl<'a> InsertColumns<'a> {
    fn push(&mut self, new: &NewEvent<'a>) {
        let (payload, raw_body, reason) = new.body.columns();
        self.ws_id.push(new.ws_id);
        self.endpoint_id.push(new.endpoint_id);
        self.source.push(new.source.as_str());
        self.sepay_transaction_id.push(new.sepay_transaction_id);
        self.dedupe_key.push(new.dedupe_key.as_str());
        self.payload.push(payload);
        self.raw_body.push(raw_body);
        self.status.push(lifecycle::first_status(payload.is_some()).as_str());
        self.failure_reason.push(reason);
        self.provider.push(new.provider.as_str());
    }
}

fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::MAX)
}

/// Which events a reopen starts a new attempt for (the lifecycle's `Transition::Reopen`).
enum Reopen<'a> {
    /// The row a repeat delivery collided with, locked by the caller; the delivery is counted too.
    Repeat(i64),
    /// `received` rows unbooked past the stale TTL, oldest first (the relay's sweep).
    Stale { stale_after: Duration, limit: i64 },
    /// `failed` rows a replay can change (a JSON payload, a failure that is retryable:
    /// `FailureReason::is_retryable`): `ids`, or with none every one of `ws_id` (or of every
    /// workspace).
    Failed { ws_id: Option<Uuid>, ids: &'a [i64] },
}

/// Starts a new processing attempt: `received`, attempt + 1, unpublished, failure cleared. Every
/// reopen goes through this one statement; only the choice of rows differs.
async fn reopen<'c>(db: impl PgExecutor<'c>, which: &Reopen<'_>) -> StoreResult<Vec<EventRef>> {
    let (trigger, rows) = match which {
        Reopen::Repeat(_) => (Trigger::Repeat, "id = $4"),
        // the lifecycle's `RetryPolicy::is_stale` in SQL; skip locked: a row being booked is left to it
        Reopen::Stale { .. } => (
            Trigger::Sweep,
            "id in (select e.id from sepay_open_events o join sepay_webhook_events e on e.id = o.event_id
                     where e.status = any($3) and e.created_transaction_id is null
                       and o.opened_at < now() - make_interval(secs => $4)
                     order by o.opened_at limit $5
                     for update of e skip locked)",
        ),
        Reopen::Failed { .. } => (
            Trigger::Replay,
            "payload is not null and ($4::uuid is null or ws_id = $4)
             and (cardinality($5::bigint[]) = 0 or id = any($5))
             and (failure_reason is null or failure_reason = any($6))",
        ),
    };
    let repeat = matches!(which, Reopen::Repeat(_));
    let query = sqlx::query_as(AssertSqlSafe(format!(
        "with reopened as (
           update sepay_webhook_events
              set status = $1, attempts = attempts + 1, opened_at = now(), published_at = null,
                  failure_reason = null, failure_detail = null,
                  delivery_count = delivery_count + case when $2 then 1 else 0 end,
                  last_received_at = case when $2 then now() else last_received_at end
            where status = any($3) and {rows}
            returning id, ws_id, attempts, status, opened_at), {}
         select id, ws_id, attempts from reopened",
        open_rows!("reopened", "$1")
    )))
    .bind(trigger.to().as_str())
    .bind(repeat)
    .bind(lifecycle::spellings(trigger.from()));
    let query = match *which {
        Reopen::Repeat(id) => query.bind(id),
        Reopen::Stale { stale_after, limit } => query.bind(stale_after.as_secs_f64()).bind(limit),
        Reopen::Failed { ws_id, ids } => query.bind(ws_id).bind(ids).bind(lifecycle::replay_fixable_reasons()),
    };
    Ok(query.fetch_all(db).await?)
}

/// Inserts an event only if its dedupe key is new (reconciliation: what is already there, in any
/// state, is left alone). Returns the new row.
pub async fn insert_missing(pool: &PgPool, new: &NewEvent<'_>) -> StoreResult<Option<EventRef>> {
    let EventBody::Json(payload) = new.body else {
        return Err(StoreError::Rejected {
            message: "only JSON payloads are reconciled".into(),
        });
    };
    Ok(sqlx::query_as(concat!(
        "with inserted as (
           insert into sepay_webhook_events
             (ws_id, endpoint_id, source, sepay_transaction_id, dedupe_key, payload, provider, status)
           values ($1, $2, $3, $4, $5, $6, $7, $8)
           on conflict (ws_id, dedupe_key) do nothing
           returning id, ws_id, attempts, status, opened_at), ",
        open_rows!("inserted", "$8"),
        " select id, ws_id, attempts from inserted"
    ))
    .bind(new.ws_id)
    .bind(new.endpoint_id)
    .bind(new.source.as_str())
    .bind(new.sepay_transaction_id)
    .bind(new.dedupe_key.as_str())
    .bind(payload)
    .bind(new.provider.as_str())
    .bind(lifecycle::first_status(true).as_str())
    .fetch_optional(pool)
    .await?)
}

/// Notes that the publication of attempt `attempts` reached the bus.
pub async fn mark_published(pool: &PgPool, event: &EventRef) -> StoreResult<()> {
    mark_published_many(pool, &[(event.id, event.attempts)]).await?;
    Ok(())
}

/// Notes many publications in one statement (the ingress batches them: one commit per batch,
/// not per delivery). A row reopened since (a new attempt) is left unpublished. A row already
/// closed is left alone: the processor's update noted its publication, and another version of
/// the row would cost more than the mark is worth. Rows are locked in id order, the order the
/// processor's batches lock them in, so the two never deadlock.
pub async fn mark_published_many(pool: &PgPool, events: &[(i64, i32)]) -> StoreResult<u64> {
    let (ids, attempts): (Vec<i64>, Vec<i32>) = events.iter().copied().unzip();
    Ok(sqlx::query(
        "with marked as (
           select e.id from sepay_webhook_events e
             join unnest($1::bigint[], $2::int[]) as m(id, attempts) on e.id = m.id and e.attempts = m.attempts
            where e.published_at is null and e.status = $3
            order by e.id for no key update of e)
         update sepay_webhook_events e set published_at = now() from marked where e.id = marked.id",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(EventStatus::Received.as_str())
    .execute(pool)
    .await?
    .rows_affected())
}

/// Reopens `received` rows that have sat unbooked past the stale TTL (a worker died, a message
/// was lost): they get a new attempt and become unpublished, so the relay drives them again.
/// `stale_after` is the policy's (`RetryPolicy::stale_after`).
pub async fn reopen_stale(pool: &PgPool, stale_after: Duration, limit: i64) -> StoreResult<u64> {
    Ok(reopen(pool, &Reopen::Stale { stale_after, limit }).await?.len() as u64)
}

/// `received` rows never published (a publish failed, or the process died before it), older
/// than `min_age` so the ingress's own publish is not raced.
pub async fn unpublished(pool: &PgPool, min_age: Duration, limit: i64) -> StoreResult<Vec<EventRef>> {
    Ok(sqlx::query_as(
        "select e.id, e.ws_id, e.attempts
           from sepay_open_events o join sepay_webhook_events e on e.id = o.event_id
          where e.status = $3 and e.published_at is null
            and o.opened_at < now() - make_interval(secs => $1)
          order by o.opened_at limit $2",
    )
    .bind(min_age.as_secs_f64())
    .bind(limit)
    .bind(EventStatus::Received.as_str())
    .fetch_all(pool)
    .await?)
}

/// `received` rows the relay has still to publish, counted up to `up_to`: during a long NATS
/// outage every new event waits, and a full count each relay pass costs Postgres O(backlog)
/// (0.67 s at a million).
pub async fn relay_backlog(pool: &PgPool, up_to: i64) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "select count(*) from (
           select 1 from sepay_open_events o join sepay_webhook_events e on e.id = o.event_id
            where e.status = $1 and e.published_at is null
            limit $2) as waiting",
    )
    .bind(EventStatus::Received.as_str())
    .bind(up_to)
    .fetch_one(pool)
    .await?)
}

/// One pass of [`prune_open`]: how many rows it removed, and where the next pass starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePass {
    pub removed: u64,
    /// The next pass reads the list after this event id; 0 once this pass reached its end.
    pub next_after: i64,
}

/// Removes from the relay's work list the rows of events no longer open (booked, failed, a
/// duplicate, or deleted): the booking does not, so that it stays one update of the event row.
/// A row being reopened is skipped (locked) or kept (its attempt is newer than the event row
/// this statement read).
///
/// A pass reads at most `window` rows of the list, those after event id `after`, so its cost is
/// bounded when the list is long (a NATS outage leaves every new event open); passes that follow
/// each other's `next_after` go round the whole list.
pub async fn prune_open(pool: &PgPool, after: i64, window: i64) -> StoreResult<PrunePass> {
    let (removed, read, last): (i64, i64, Option<i64>) = sqlx::query_as(
        "with scanned as (
           select event_id from sepay_open_events where event_id > $2 order by event_id limit $3),
         removed as (
           delete from sepay_open_events where event_id in (
             select o.event_id from sepay_open_events o
               left join sepay_webhook_events e on e.id = o.event_id
              where o.event_id in (select event_id from scanned)
                and (e.id is null or (e.status <> $1 and e.attempts = o.attempts))
              order by o.event_id for update of o skip locked)
           returning 1)
         select (select count(*) from removed), (select count(*) from scanned), (select max(event_id) from scanned)",
    )
    .bind(EventStatus::Received.as_str())
    .bind(after)
    .bind(window)
    .fetch_one(pool)
    .await?;
    Ok(PrunePass {
        removed: removed as u64,
        next_after: if read < window { 0 } else { last.unwrap_or(0) },
    })
}

/// One event as the processor and the CLI see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Event {
    pub id: i64,
    pub ws_id: Uuid,
    #[sqlx(try_from = "String")]
    pub provider: Provider,
    pub endpoint_id: Option<Uuid>,
    pub source: String,
    pub sepay_transaction_id: Option<i64>,
    pub dedupe_key: String,
    pub payload: Option<Value>,
    pub raw_body: Option<String>,
    pub status: String,
    pub failure_reason: Option<String>,
    pub failure_detail: Option<String>,
    pub attempts: i32,
    pub delivery_count: i32,
    pub received_at: DateTime<Utc>,
    pub last_received_at: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    pub processed_at: Option<DateTime<Utc>>,
    pub wallet_id: Option<Uuid>,
    pub created_transaction_id: Option<Uuid>,
}

const EVENT_COLUMNS: &str = "id, ws_id, provider, endpoint_id, source, sepay_transaction_id, dedupe_key, payload, raw_body, \
     status, failure_reason, failure_detail, attempts, delivery_count, received_at, last_received_at, \
     opened_at, published_at, processed_at, wallet_id, created_transaction_id";

pub async fn get(pool: &PgPool, id: i64) -> StoreResult<Event> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {EVENT_COLUMNS} from sepay_webhook_events where id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("event"))
}

/// The events of `ids` that exist, in one query (the processor reads a batch of messages' rows).
pub async fn get_many(pool: &PgPool, ids: &[i64]) -> StoreResult<Vec<Event>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "select {EVENT_COLUMNS} from sepay_webhook_events where id = any($1)"
    )))
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

/// An event with the amount as sent, read as the events page reads it (an event's page).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventDetail {
    #[sqlx(flatten)]
    pub event: Event,
    pub sent_amount: Option<String>,
}

/// Event `id` of `ws_id`, with its amount as sent.
pub async fn detail_in_workspace(pool: &PgPool, ws_id: Uuid, id: i64) -> StoreResult<Option<EventDetail>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "select {EVENT_COLUMNS}, {} as sent_amount from sepay_webhook_events where id = $1 and ws_id = $2",
        sent_amount!()
    )))
    .bind(id)
    .bind(ws_id)
    .fetch_optional(pool)
    .await?)
}

/// An event of `ws_id` (another workspace's is as absent as a missing one).
pub async fn get_in_workspace(pool: &PgPool, ws_id: Uuid, id: i64) -> StoreResult<Option<Event>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "select {EVENT_COLUMNS} from sepay_webhook_events where id = $1 and ws_id = $2"
    )))
    .bind(id)
    .bind(ws_id)
    .fetch_optional(pool)
    .await?)
}

#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub ws_id: Option<Uuid>,
    pub status: Option<EventStatus>,
    pub limit: i64,
}

/// Newest first.
pub async fn list(pool: &PgPool, filter: &EventFilter) -> StoreResult<Vec<Event>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "select {EVENT_COLUMNS} from sepay_webhook_events
          where ($1::uuid is null or ws_id = $1) and ($2::text is null or status = $2)
          order by id desc limit $3"
    )))
    .bind(filter.ws_id)
    .bind(filter.status.map(|s| s.as_str()))
    .bind(filter.limit)
    .fetch_all(pool)
    .await?)
}

/// Marks an open event failed; a row already booked is left alone.
pub async fn mark_failed(pool: &PgPool, id: i64, reason: FailureReason, detail: &str) -> StoreResult<()> {
    sqlx::query(concat!(
        "update sepay_webhook_events set status = $4, failure_reason = $2, failure_detail = $3, ",
        note_published_on_close!(),
        " where id = $1 and status = any($5)"
    ))
    .bind(id)
    .bind(reason.as_str())
    .bind(detail)
    .bind(Trigger::Fail.to().as_str())
    .bind(lifecycle::spellings(Trigger::Fail.from()))
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks an event processed that books nothing (a Striga payout's settlement); false when it was
/// not open (a redelivery).
pub async fn mark_processed_without_booking(pool: &PgPool, id: i64) -> StoreResult<bool> {
    let done = sqlx::query(concat!(
        "update sepay_webhook_events
                set status = $2, processed_at = now(), failure_reason = null, failure_detail = null, ",
        note_published_on_close!(),
        " where id = $1 and status = any($3)"
    ))
    .bind(id)
    .bind(Trigger::Book.to().as_str())
    .bind(lifecycle::spellings(Trigger::Book.from()))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Reopens `failed` events with a JSON payload for another processing attempt. `ids` empty means
/// every failed event of `ws_id` (or of every workspace).
pub async fn reopen_failed(pool: &PgPool, ws_id: Option<Uuid>, ids: &[i64]) -> StoreResult<Vec<EventRef>> {
    reopen(pool, &Reopen::Failed { ws_id, ids }).await
}

/// POST→booked latency of a workspace's processed events: (count, p50, p99, p99.9) in milliseconds.
pub async fn booking_latency(pool: &PgPool, ws_id: Uuid) -> StoreResult<(i64, f64, f64, f64)> {
    Ok(sqlx::query_as(
        "select count(*),
                coalesce(percentile_cont(0.5) within group (order by ms), 0)::float8,
                coalesce(percentile_cont(0.99) within group (order by ms), 0)::float8,
                coalesce(percentile_cont(0.999) within group (order by ms), 0)::float8
           from (select extract(epoch from processed_at - received_at) * 1000 as ms
                   from sepay_webhook_events where ws_id = $1 and status = $2) l",
    )
    .bind(ws_id)
    .bind(EventStatus::Processed.as_str())
    .fetch_one(pool)
    .await?)
}

/// Events of a workspace, booked or not.
pub async fn count_for_workspace(pool: &PgPool, ws_id: Uuid) -> StoreResult<(i64, i64)> {
    Ok(sqlx::query_as(
        "select count(*), count(*) filter (where status = $2) from sepay_webhook_events where ws_id = $1",
    )
    .bind(ws_id)
    .bind(EventStatus::Processed.as_str())
    .fetch_one(pool)
    .await?)
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

/// What the events page filters by; every field optional. Amounts are in the currency's unit
/// (VND; EUR for Striga, whose cents are divided by 100); times are instants.
#[derive(Debug, Default, Clone)]
pub struct EventSearch {
    pub provider: Option<Provider>,
    pub status: Option<EventStatus>,
    /// The bank account (SePay `accountNumber`) or Striga account, exactly.
    pub account: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub min_amount: Option<rust_decimal::Decimal>,
    pub max_amount: Option<rust_decimal::Decimal>,
    /// In the transfer's content, description, code or reference, case-insensitive.
    pub text: Option<String>,
}

/// Which page of a search: the newest, older than an id, or newer than an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventPage {
    Newest,
    Before(i64),
    After(i64),
}

/// The columns of an [`EventRow`].
const EVENT_ROW_COLUMNS: &str = concat!(
    "id, provider, source, coalesce(sepay_transaction_id::text, payload->>'id') as provider_id, status,
        failure_reason, attempts, delivery_count, received_at,
        coalesce(payload->>'transferType', payload->>'type') as transfer_type, ",
    sent_amount!(),
    " as amount, ",
    account!(),
    " as account_number"
);

/// The search's conditions on `sepay_webhook_events` ($1 the workspace, $2… the filters). The
/// amount filters compare the sent amount in the currency's unit (Striga's cents / 100); a value
/// that is not a plain number compares as nothing rather than failing the query.
const EVENT_SEARCH: &str = concat!(
    "ws_id = $1
    and ($2::text is null or provider = $2)
    and ($3::text is null or status = $3)
    and ($4::text is null or ",
    account!(),
    " = $4 or payload->>'subAccount' = $4)
    and ($5::timestamptz is null or received_at >= $5)
    and ($6::timestamptz is null or received_at < $6)
    and (($7::numeric is null and $8::numeric is null) or (
         select a between coalesce($7, a) and coalesce($8, a) from (select
           case when ",
    sent_amount!(),
    " ~ '^-?[0-9]{1,30}(\\.[0-9]{1,10})?$'
                then (",
    sent_amount!(),
    ")::numeric / case when provider = 'striga' then 100 else 1 end
           end as a) amounts))
    and ($9::text is null or concat_ws(' ', payload->>'content', payload->>'description', payload->>'code',
                                       payload->>'referenceCode', payload->>'reference', payload->>'memo')
                             ilike '%' || $9 || '%' escape '\\')"
);

/// `text` for an `ilike` pattern: its `%`, `_` and `\` match themselves.
fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

fn bind_search<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ws_id: Uuid,
    search: &'q EventSearch,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(ws_id)
        .bind(search.provider.map(|p| p.as_str()))
        .bind(search.status.map(|s| s.as_str()))
        .bind(search.account.as_deref())
        .bind(search.from)
        .bind(search.to)
        .bind(search.min_amount)
        .bind(search.max_amount)
        .bind(search.text.as_deref().map(like_literal))
}

/// One page of a workspace's events matching `search`, newest first, keyset on id: at most
/// `limit`, older than or newer than the given id.
pub async fn search_events(
    pool: &PgPool,
    ws_id: Uuid,
    search: &EventSearch,
    page: EventPage,
    limit: i64,
) -> StoreResult<Vec<EventRow>> {
    let (keyset, order) = match page {
        EventPage::Newest => ("true", "desc"),
        EventPage::Before(_) => ("id < $10", "desc"),
        EventPage::After(_) => ("id > $10", "asc"),
    };
    let sql = format!(
        "select {EVENT_ROW_COLUMNS} from sepay_webhook_events
          where {EVENT_SEARCH} and ($10::bigint is null or {keyset})
          order by id {order} limit $11"
    );
    let cursor = match page {
        EventPage::Newest => None,
        EventPage::Before(id) | EventPage::After(id) => Some(id),
    };
    let mut rows: Vec<EventRow> = bind_search(sqlx::query_as(AssertSqlSafe(sql)), ws_id, search)
        .bind(cursor)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    if matches!(page, EventPage::After(_)) {
        rows.reverse();
    }
    Ok(rows)
}

/// How many events match `search`, counted up to `cap` (a count past it says "more than").
pub async fn count_events(pool: &PgPool, ws_id: Uuid, search: &EventSearch, cap: i64) -> StoreResult<i64> {
    let sql = format!("select count(*) from (select 1 from sepay_webhook_events where {EVENT_SEARCH} limit $10) m");
    let (count,): (i64,) = bind_search(sqlx::query_as(AssertSqlSafe(sql)), ws_id, search)
        .bind(cap)
        .fetch_one(pool)
        .await?;
    Ok(count)
}

/// The ids of the failed events matching `search` that a replay can change (at most `limit`).
pub async fn replayable_ids(pool: &PgPool, ws_id: Uuid, search: &EventSearch, limit: i64) -> StoreResult<Vec<i64>> {
    let sql = format!(
        "select id from sepay_webhook_events
          where {EVENT_SEARCH} and status = $10 and payload is not null
            and (failure_reason is null or failure_reason = any($11))
          order by id limit $12"
    );
    let rows: Vec<(i64,)> = bind_search(sqlx::query_as(AssertSqlSafe(sql)), ws_id, search)
        .bind(EventStatus::Failed.as_str())
        .bind(lifecycle::replay_fixable_reasons())
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// When the workspace's last event was booked (the bench's end-to-end clock).
pub async fn last_processed_at(pool: &PgPool, ws_id: Uuid) -> StoreResult<Option<DateTime<Utc>>> {
    Ok(
        sqlx::query_scalar("select max(processed_at) from sepay_webhook_events where ws_id = $1 and status = $2")
            .bind(ws_id)
            .bind(EventStatus::Processed.as_str())
            .fetch_one(pool)
            .await?,
    )
}
