//! Postgres access: the only crate with SQL. Every function takes a pool (or a transaction) and
//! returns typed rows; the decisions it applies come from `sepay-core`.

/// What every statement that closes an event (booked, failed, a duplicate) sets besides its
/// status: the event was published, since the processor had its message. A publication mark
/// still to come then skips the row (`events::mark_published_many`), so it gets no extra version.
macro_rules! note_published_on_close {
    () => {
        "published_at = coalesce(published_at, now())"
    };
}

pub mod balances;
pub mod baseline;
pub mod classification;
pub mod connections;
pub mod deliveries;
pub mod endpoints;
mod error;
pub mod events;
pub mod ledger;
pub mod members;
pub mod overview;
mod pool;
pub mod provisioning;
pub mod striga;
pub mod workspaces;

pub use error::{StoreError, StoreResult};
pub use pool::{
    DEFAULT_DATABASE_URL, DEFAULT_DB_ACQUIRE_TIMEOUT_MS, DEFAULT_DB_MAX_CONNECTIONS, DbConfig, MIGRATOR, connect,
    drop_database, migrate,
};
pub use sqlx::PgPool;

/// True when Postgres answers a trivial query.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query("select 1").execute(pool).await.is_ok()
}
