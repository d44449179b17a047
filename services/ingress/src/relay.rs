//! The relay: publishes what the request path could not. It re-drives rows whose publication
//! failed or never happened, and `received` rows left unbooked past the stale TTL (a crashed
//! worker, a lost message) — SePay's own retries would only be answered "in flight". It finds
//! them on its work list, `sepay_open_events`, which it also prunes of events no longer open.

use crate::IngressConfig;
use sepay_bus::Bus;
use sepay_store::PgPool;
use sepay_store::events;
use sepay_telemetry::metrics;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct RelayConfig {
    interval: Duration,
    min_age: Duration,
    stale_after: Duration,
    batch: i64,
}

impl From<&IngressConfig> for RelayConfig {
    fn from(c: &IngressConfig) -> Self {
        Self {
            interval: Duration::from_millis(c.relay_interval_ms),
            min_age: Duration::from_millis(c.relay_min_age_ms),
            stale_after: Duration::from_secs(c.stale_event_ttl_secs),
            batch: c.relay_batch,
        }
    }
}

/// Work-list rows a prune pass reads at most: above the booking rate of the design's peak
/// (1,160/s) at one pass a second, and about 50 ms of Postgres however long the list (a million
/// open rows: 48 ms, against 1.17 s for a pass over the whole list).
const PRUNE_WINDOW: i64 = 10_000;
/// The backlog gauge counts no further (a capped count took 0.11 s at a million waiting).
const BACKLOG_COUNTED_UP_TO: i64 = 100_000;

pub async fn run(config: RelayConfig, db: PgPool, bus: Bus, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune_after = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // the work list's closed rows, whether or not NATS is there; a window a pass
        match events::prune_open(&db, prune_after, PRUNE_WINDOW).await {
            Ok(pruned) => prune_after = pruned.next_after,
            Err(err) => tracing::warn!(error = %err, "relay could not prune its work list"),
        }
        if !bus.is_connected() {
            if let Ok(backlog) = events::relay_backlog(&db, BACKLOG_COUNTED_UP_TO).await {
                metrics::gauge!("sepay_relay_backlog").set(backlog as f64);
            }
            continue;
        }
        match pass(&config, &db, &bus).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(published = n, "relay published events"),
            Err(err) => tracing::warn!(error = %err, "relay pass failed"),
        }
    }
}

/// One pass; returns how many events it published.
async fn pass(config: &RelayConfig, db: &PgPool, bus: &Bus) -> anyhow::Result<usize> {
    let reopened = events::reopen_stale(db, config.stale_after, config.batch).await?;
    if reopened > 0 {
        metrics::counter!("sepay_relay_reopened_stale_total").increment(reopened);
        tracing::warn!(reopened, "stale received events re-driven");
    }
    sepay_store::endpoints::expire_rotations(db).await?;
    let pending = events::unpublished(db, config.min_age, config.batch).await?;
    if !pending.is_empty() {
        // the stream may be missing if NATS was down when the ingress started
        bus.ensure_events_stream().await?;
    }
    let mut published = 0;
    for event in pending {
        sepay_runtime::publish_event(db, bus, &event).await?;
        metrics::counter!("sepay_relay_published_total").increment(1);
        published += 1;
    }
    metrics::gauge!("sepay_relay_backlog").set(events::relay_backlog(db, BACKLOG_COUNTED_UP_TO).await? as f64);
    Ok(published)
}
