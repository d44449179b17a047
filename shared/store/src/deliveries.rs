//! The delivery attempt log (`sepay_delivery_attempts`): every authenticated delivery of an event
//! as the ingress answered it. Written in batches after the answer; read by the event's page.

use crate::error::StoreResult;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

/// One delivery, as answered.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DeliveryAttempt {
    pub event_id: i64,
    pub received_at: DateTime<Utc>,
    pub source_addr: Option<String>,
    /// `new`, `reopened`, `in_flight`, `duplicate` or `invalid_payload`.
    pub outcome: String,
    pub status_code: i16,
    pub latency_ms: f32,
}

/// Writes many attempts in one statement.
pub async fn insert_many(pool: &PgPool, attempts: &[DeliveryAttempt]) -> StoreResult<u64> {
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for a in attempts {
        columns.0.push(a.event_id);
        columns.1.push(a.received_at);
        columns.2.push(a.source_addr.clone());
        columns.3.push(a.outcome.clone());
        columns.4.push(a.status_code);
        columns.5.push(a.latency_ms);
    }
    Ok(sqlx::query(
        "insert into sepay_delivery_attempts (event_id, received_at, source_addr, outcome, status_code, latency_ms)
         select * from unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::smallint[], $6::real[])",
    )
    .bind(&columns.0)
    .bind(&columns.1)
    .bind(&columns.2)
    .bind(&columns.3)
    .bind(&columns.4)
    .bind(&columns.5)
    .execute(pool)
    .await?
    .rows_affected())
}

/// An event's deliveries, oldest first (at most `limit`, the newest kept).
pub async fn for_event(pool: &PgPool, event_id: i64, limit: i64) -> StoreResult<Vec<DeliveryAttempt>> {
    Ok(sqlx::query_as(
        "select * from (
            select event_id, received_at, source_addr, outcome, status_code, latency_ms
              from sepay_delivery_attempts where event_id = $1 order by received_at desc, id desc limit $2
         ) newest order by received_at, latency_ms",
    )
    .bind(event_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Deletes attempts received before `before`, at most `limit` per call; how many.
pub async fn delete_older_than(pool: &PgPool, before: DateTime<Utc>, limit: i64) -> StoreResult<u64> {
    Ok(sqlx::query(
        "delete from sepay_delivery_attempts
          where id = any(array(select id from sepay_delivery_attempts where received_at < $1 limit $2))",
    )
    .bind(before)
    .bind(limit)
    .execute(pool)
    .await?
    .rows_affected())
}
