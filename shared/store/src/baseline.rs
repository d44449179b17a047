//! The bench's baselines (`sepay-dev bench`): what a durable store of an event costs with nothing
//! of ours around it, as pgbench would measure it. Not used by any service.

use crate::error::StoreResult;
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

/// One connection of its own (the baseline's clients are plain connections, no pool).
pub async fn connect(database_url: &str) -> StoreResult<PgConnection> {
    Ok(PgConnection::connect(database_url).await?)
}

/// One autocommit INSERT of an event row as the ingress stores it: a commit, and a WAL flush,
/// per row.
pub async fn insert_event_row(
    connection: &mut PgConnection,
    ws_id: Uuid,
    endpoint_id: Uuid,
    sepay_id: Option<i64>,
    dedupe_key: &str,
    payload: &Value,
) -> StoreResult<()> {
    sqlx::query(
        "insert into sepay_webhook_events
           (ws_id, endpoint_id, source, provider, sepay_transaction_id, dedupe_key, payload)
         values ($1, $2, 'webhook', 'sepay', $3, $4, $5)",
    )
    .bind(ws_id)
    .bind(endpoint_id)
    .bind(sepay_id)
    .bind(dedupe_key)
    .bind(payload)
    .execute(connection)
    .await?;
    Ok(())
}

/// Removes a measured phase's event rows (a workspace's): left `received`, the plain insert's
/// unpublished rows would be published by a later phase's relay and booked on its time, and any
/// phase's would be scanned by every relay pass after it.
pub async fn remove_event_rows(pool: &PgPool, ws_id: Uuid) -> StoreResult<u64> {
    Ok(sqlx::query("delete from sepay_webhook_events where ws_id = $1")
        .bind(ws_id)
        .execute(pool)
        .await?
        .rows_affected())
}

/// `synchronous_commit` as the server has it (the bench reports it: a figure with it off would
/// not be durable).
pub async fn synchronous_commit(pool: &PgPool) -> StoreResult<String> {
    Ok(sqlx::query_scalar("show synchronous_commit").fetch_one(pool).await?)
}
