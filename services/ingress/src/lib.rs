//! `sepay-ingress`: authenticates SePay's webhook deliveries, stores each raw event, publishes it
//! to JetStream and answers. Nothing else happens on the request path (no wallet lookup, no
//! classification, no SePay call), so answers are fast and an authenticated delivery is never lost.

mod error;
mod relay;
mod routes;

use sepay_bus::Bus;
use sepay_core::RetryPolicy;
use sepay_store::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use error::IngressError;
pub use routes::router;

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, clap::Args)]
pub struct IngressConfig {
    /// Address the ingress listens on.
    #[arg(long, env = "INGRESS_ADDR", default_value = "127.0.0.1:8080")]
    pub ingress_addr: SocketAddr,
    /// A `received` event unbooked this long after it was opened is re-driven.
    #[arg(long, env = "STALE_EVENT_TTL_SECS", default_value_t = 300)]
    pub stale_event_ttl_secs: u64,
    /// An eventless payload equal to one delivered this recently is a duplicate.
    #[arg(long, env = "EVENTLESS_DEDUPE_WINDOW_SECS", default_value_t = 120)]
    pub eventless_dedupe_window_secs: u64,
    /// How often the relay looks for unpublished and stale events.
    #[arg(long, env = "RELAY_INTERVAL_MS", default_value_t = 1000)]
    pub relay_interval_ms: u64,
    /// The relay leaves rows younger than this to the request that wrote them.
    #[arg(long, env = "RELAY_MIN_AGE_MS", default_value_t = 2000)]
    pub relay_min_age_ms: u64,
    /// Events the relay publishes per pass.
    #[arg(long, env = "RELAY_BATCH", default_value_t = 500)]
    pub relay_batch: i64,
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            ingress_addr: ([127, 0, 0, 1], 8080).into(),
            stale_event_ttl_secs: 300,
            eventless_dedupe_window_secs: 120,
            relay_interval_ms: 1000,
            relay_min_age_ms: 2000,
            relay_batch: 500,
        }
    }
}

impl IngressConfig {
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            stale_after: Duration::from_secs(self.stale_event_ttl_secs),
            eventless_window: Duration::from_secs(self.eventless_dedupe_window_secs),
        }
    }
}

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub bus: Bus,
    pub policy: RetryPolicy,
}

/// Serves until `shutdown` is cancelled, then drains in-flight requests.
pub async fn run(config: IngressConfig, db: PgPool, bus: Bus, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.ingress_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.ingress_addr))?;
    serve(listener, config, db, bus, shutdown).await
}

/// Like [`run`] on an already bound listener (tests bind port 0).
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: IngressConfig,
    db: PgPool,
    bus: Bus,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if let Err(err) = bus.ensure_events_stream().await {
        // not fatal: events are stored and the relay publishes them once NATS is back
        tracing::warn!(error = %err, "events stream not ensured at start-up");
    }
    sepay_telemetry::metrics::handle();
    let state = Arc::new(AppState {
        db: db.clone(),
        bus: bus.clone(),
        policy: config.retry_policy(),
    });
    let relay = tokio::spawn(relay::run(relay::RelayConfig::from(&config), db, bus, shutdown.clone()));
    tracing::info!(addr = %listener.local_addr()?, "sepay-ingress listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    relay.await?;
    Ok(())
}
