//! `sepay-ingress`: authenticates the providers' webhook deliveries (SePay: URL token and API
//! key; Striga: URL token and body signature), stores each raw event, answers once it is
//! committed, then publishes it to JetStream (the relay publishes what that misses). Nothing else
//! happens on the request path (no wallet lookup, no classification, no SePay call), so answers
//! are fast and an authenticated delivery is never lost.

mod background;
mod batch;
mod cli;
mod directory;
mod error;
mod guard;
mod publisher;
mod relay;
mod routes;

use sepay_bus::Bus;
use sepay_core::RetryPolicy;
use sepay_crypto::seal::Keyring;
use sepay_store::PgPool;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use cli::Cli;
pub use error::IngressError;
pub use guard::{GuardConfigError, SEPAY_SOURCE_ADDRESSES};
pub use routes::router;

/// `INGRESS_ADDR` (`0.0.0.0:8080` in containers).
pub const DEFAULT_INGRESS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// `INGRESS_ADMIN_ADDR` (`0.0.0.0:9080` in containers).
pub const DEFAULT_INGRESS_ADMIN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9080);
/// `EVENTLESS_DEDUPE_WINDOW_SECS`
pub use sepay_core::lifecycle::DEFAULT_EVENTLESS_WINDOW_SECS as DEFAULT_EVENTLESS_DEDUPE_WINDOW_SECS;
/// `RELAY_INTERVAL_MS`
pub const DEFAULT_RELAY_INTERVAL_MS: u64 = 1000;
/// `RELAY_MIN_AGE_MS`
pub const DEFAULT_RELAY_MIN_AGE_MS: u64 = 2000;
/// `RELAY_BATCH`
pub const DEFAULT_RELAY_BATCH: i64 = 500;
/// `ENDPOINT_REFRESH_SECS`
pub const DEFAULT_ENDPOINT_REFRESH_SECS: u64 = 30;
/// `INGRESS_TRUST_SOCKET_ADDRESS`: a proxy is assumed in front.
pub const DEFAULT_INGRESS_TRUST_SOCKET_ADDRESS: bool = false;
/// `INGRESS_AUTH_FAILURES_PER_SEC`
pub const DEFAULT_INGRESS_AUTH_FAILURES_PER_SEC: u32 = 5;
/// `INGRESS_AUTH_FAILURE_BURST`
pub const DEFAULT_INGRESS_AUTH_FAILURE_BURST: u32 = 20;
/// `INGRESS_AUTH_FAILURES_GLOBAL_PER_SEC`
pub const DEFAULT_INGRESS_AUTH_FAILURES_GLOBAL_PER_SEC: u32 = 500;

/// `DELIVERY_LOG_RETENTION_DAYS`
pub const DEFAULT_DELIVERY_LOG_RETENTION_DAYS: u32 = 30;

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, clap::Args)]
pub struct IngressConfig {
    /// Address the ingress listens on (the providers' webhooks only).
    #[arg(long, env = "INGRESS_ADDR", default_value_t = DEFAULT_INGRESS_ADDR)]
    pub ingress_addr: SocketAddr,
    /// Address of /healthz, /readyz and /metrics (probes and Prometheus, never published).
    #[arg(long, env = "INGRESS_ADMIN_ADDR", default_value_t = DEFAULT_INGRESS_ADMIN_ADDR)]
    pub ingress_admin_addr: SocketAddr,
    /// A `received` event unbooked this long after it was opened is re-driven.
    #[arg(long, env = "STALE_EVENT_TTL_SECS", default_value_t = sepay_core::lifecycle::DEFAULT_STALE_AFTER_SECS)]
    pub stale_event_ttl_secs: u64,
    /// An eventless payload equal to one delivered this recently is a duplicate.
    #[arg(long, env = "EVENTLESS_DEDUPE_WINDOW_SECS", default_value_t = DEFAULT_EVENTLESS_DEDUPE_WINDOW_SECS)]
    pub eventless_dedupe_window_secs: u64,
    /// How often the relay looks for unpublished and stale events.
    #[arg(long, env = "RELAY_INTERVAL_MS", default_value_t = DEFAULT_RELAY_INTERVAL_MS)]
    pub relay_interval_ms: u64,
    /// The relay leaves rows younger than this to the request that wrote them.
    #[arg(long, env = "RELAY_MIN_AGE_MS", default_value_t = DEFAULT_RELAY_MIN_AGE_MS)]
    pub relay_min_age_ms: u64,
    /// Events the relay publishes per pass.
    #[arg(long, env = "RELAY_BATCH", default_value_t = DEFAULT_RELAY_BATCH)]
    pub relay_batch: i64,
    /// Full reload of the in-memory endpoint directory (changes arrive at once by LISTEN/NOTIFY;
    /// this is the safety net).
    #[arg(long, env = "ENDPOINT_REFRESH_SECS", default_value_t = DEFAULT_ENDPOINT_REFRESH_SECS)]
    pub endpoint_refresh_secs: u64,
    /// Header a trusted proxy puts the client address in (its last entry is used), e.g.
    /// `X-Forwarded-For`; unset: the socket peer.
    #[arg(
        long = "ingress-client-ip-header",
        alias = "client-ip-header",
        env = "INGRESS_CLIENT_IP_HEADER"
    )]
    pub client_ip_header: Option<String>,
    /// Only these sources may post: addresses and networks, comma-separated; `sepay` = SePay's
    /// documented addresses. Unset: any source (authentication still applies).
    #[arg(
        long = "ingress-source-allowlist",
        alias = "source-allowlist",
        env = "INGRESS_SOURCE_ALLOWLIST"
    )]
    pub source_allowlist: Option<String>,
    /// No proxy in front: the allow-list may use the socket peer.
    #[arg(
        long = "ingress-trust-socket-address",
        alias = "trust-socket-address",
        env = "INGRESS_TRUST_SOCKET_ADDRESS",
        default_value_t = DEFAULT_INGRESS_TRUST_SOCKET_ADDRESS,
        action = clap::ArgAction::Set
    )]
    pub trust_socket_address: bool,
    /// Keys that sealed the Striga endpoints' signing keys (`kid:base64(32 bytes)[,…]`, the
    /// services' shared token keyring); required outside development mode. Set by the binary
    /// from its `--sepay-token-keys` (`up` passes the SePay client's: one flag per variable).
    #[arg(skip)]
    pub sepay_token_keys: Option<String>,
    /// Development mode (`SEPAY_DEV_MODE`, set by the binary; `up` turns it on): unset secrets
    /// fall back to public development values instead of stopping the start.
    #[arg(skip)]
    pub dev_mode: bool,
    /// Failed authentications allowed per source address and second (then 429).
    #[arg(
        long = "ingress-auth-failures-per-sec",
        alias = "auth-failures-per-sec",
        env = "INGRESS_AUTH_FAILURES_PER_SEC",
        default_value_t = DEFAULT_INGRESS_AUTH_FAILURES_PER_SEC
    )]
    pub auth_failures_per_sec: u32,
    /// Failed authentications a source may make in a burst before the rate applies.
    #[arg(
        long = "ingress-auth-failure-burst",
        alias = "auth-failure-burst",
        env = "INGRESS_AUTH_FAILURE_BURST",
        default_value_t = DEFAULT_INGRESS_AUTH_FAILURE_BURST
    )]
    pub auth_failure_burst: u32,
    /// Failed authentications allowed per second from all sources together (then 429 for
    /// everyone failing; honest deliveries never fail authentication).
    #[arg(
        long = "ingress-auth-failures-global-per-sec",
        alias = "auth-failures-global-per-sec",
        env = "INGRESS_AUTH_FAILURES_GLOBAL_PER_SEC",
        default_value_t = DEFAULT_INGRESS_AUTH_FAILURES_GLOBAL_PER_SEC
    )]
    pub auth_failures_global_per_sec: u32,
    /// Days each delivery of an event is kept in the attempt log (shown on the event's page);
    /// 0 keeps no log.
    #[arg(long, env = "DELIVERY_LOG_RETENTION_DAYS", default_value_t = DEFAULT_DELIVERY_LOG_RETENTION_DAYS)]
    pub delivery_log_retention_days: u32,
    /// HTTP limits (`HTTP_*`, set by the binary).
    #[arg(skip)]
    pub http: sepay_runtime::HttpLimits,
}

/// The development configuration (tests, `up`): development mode on.
impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            ingress_addr: DEFAULT_INGRESS_ADDR,
            ingress_admin_addr: DEFAULT_INGRESS_ADMIN_ADDR,
            stale_event_ttl_secs: sepay_core::lifecycle::DEFAULT_STALE_AFTER_SECS,
            eventless_dedupe_window_secs: DEFAULT_EVENTLESS_DEDUPE_WINDOW_SECS,
            relay_interval_ms: DEFAULT_RELAY_INTERVAL_MS,
            relay_min_age_ms: DEFAULT_RELAY_MIN_AGE_MS,
            relay_batch: DEFAULT_RELAY_BATCH,
            endpoint_refresh_secs: DEFAULT_ENDPOINT_REFRESH_SECS,
            client_ip_header: None,
            source_allowlist: None,
            trust_socket_address: DEFAULT_INGRESS_TRUST_SOCKET_ADDRESS,
            sepay_token_keys: None,
            dev_mode: true,
            auth_failures_per_sec: DEFAULT_INGRESS_AUTH_FAILURES_PER_SEC,
            auth_failure_burst: DEFAULT_INGRESS_AUTH_FAILURE_BURST,
            auth_failures_global_per_sec: DEFAULT_INGRESS_AUTH_FAILURES_GLOBAL_PER_SEC,
            delivery_log_retention_days: DEFAULT_DELIVERY_LOG_RETENTION_DAYS,
            http: sepay_runtime::HttpLimits::default(),
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

    pub fn keyring(&self) -> anyhow::Result<Keyring> {
        Keyring::configured(self.sepay_token_keys.as_deref(), self.dev_mode)
            .map_err(|e| anyhow::anyhow!("SEPAY_TOKEN_KEYS: {e}"))
    }

    pub fn source_guard(&self) -> Result<guard::SourceGuard, GuardConfigError> {
        guard::SourceGuard::new(&guard::GuardSettings {
            client_ip_header: self.client_ip_header.as_deref(),
            allowlist: self.source_allowlist.as_deref(),
            trust_socket_address: self.trust_socket_address,
            failures_per_sec: self.auth_failures_per_sec,
            failure_burst: self.auth_failure_burst,
            global_failures_per_sec: self.auth_failures_global_per_sec,
        })
    }
}

/// What every request handler shares.
pub struct AppState {
    pub db: PgPool,
    pub bus: Bus,
    pub policy: RetryPolicy,
    directory: Arc<directory::Directory>,
    guard: guard::SourceGuard,
    /// Opens the Striga endpoints' sealed signing keys.
    keyring: Keyring,
    /// Publishes stored events after their answer.
    publisher: publisher::Publisher,
    /// `None` when no log is kept (`DELIVERY_LOG_RETENTION_DAYS=0`).
    delivery_log: Option<background::DeliveryLog>,
    /// Writes deliveries in batches (group commit).
    writer: batch::GroupCommit,
}

/// Serves until `shutdown` is cancelled, then drains in-flight requests.
pub async fn run(config: IngressConfig, db: PgPool, bus: Bus, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = sepay_runtime::bind(config.ingress_addr, "INGRESS_ADDR").await?;
    let admin = sepay_runtime::bind(config.ingress_admin_addr, "INGRESS_ADMIN_ADDR").await?;
    serve(listener, Some(admin), config, db, bus, shutdown).await
}

/// Like [`run`] on already bound listeners (tests bind port 0); without an admin listener,
/// health and metrics are not served.
pub async fn serve(
    listener: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
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
    let directory = Arc::new(directory::Directory::default());
    // stopped after the server has drained, so the last requests' marks are written
    let marks_stop = CancellationToken::new();
    let (marks, marks_writer) = background::PublishedMarks::start_marks(db.clone(), marks_stop.clone());
    let (delivery_log, log_writer) = match config.delivery_log_retention_days {
        0 => (None, None),
        _ => {
            let (log, writer) = background::DeliveryLog::start_log(db.clone(), marks_stop.clone());
            (Some(log), Some(writer))
        }
    };
    let (writer, batches) = batch::GroupCommit::start(db.clone(), config.retry_policy());
    let (publisher, publications) = publisher::Publisher::start(bus.clone(), marks);
    let state = Arc::new(AppState {
        db: db.clone(),
        bus: bus.clone(),
        policy: config.retry_policy(),
        directory: directory.clone(),
        guard: config.source_guard()?,
        keyring: config.keyring()?,
        publisher,
        delivery_log,
        writer,
    });
    let refresh = Duration::from_secs(config.endpoint_refresh_secs.max(1));
    let fresh = tokio::spawn({
        let (db, shutdown) = (db.clone(), shutdown.clone());
        async move { directory.keep_fresh(db, refresh, shutdown).await }
    });
    let forget = tokio::spawn(forget_idle_sources(state.clone(), shutdown.clone()));
    let retention = tokio::spawn(forget_old_deliveries(
        db.clone(),
        config.delivery_log_retention_days,
        shutdown.clone(),
    ));
    let health = admin.map(|admin| {
        tracing::info!(addr = ?admin.local_addr().ok(), "sepay-ingress health and metrics listening");
        let (db, bus, limits, shutdown) = (db.clone(), bus.clone(), config.http.clone(), shutdown.clone());
        tokio::spawn(async move { sepay_runtime::serve_health(admin, db, bus, None, &limits, shutdown).await })
    });
    let relay = tokio::spawn(relay::run(relay::RelayConfig::from(&config), db, bus, shutdown.clone()));
    tracing::info!(addr = %listener.local_addr()?, "sepay-ingress listening");
    sepay_runtime::http::serve(listener, router(state.clone()), &config.http, shutdown).await?;
    if let Some(health) = health {
        health.await??;
    }
    // the last batches written and published before their marks
    drop(state);
    batches.await?;
    publications.await?;
    marks_stop.cancel();
    marks_writer.await?;
    if let Some(log_writer) = log_writer {
        log_writer.await?;
    }
    retention.await?;
    relay.await?;
    fresh.await?;
    forget.await?;
    Ok(())
}

/// Deletes attempt-log rows older than the retention, every few minutes, in bounded chunks.
async fn forget_old_deliveries(db: PgPool, retention_days: u32, shutdown: CancellationToken) {
    const CHUNK: i64 = 10_000;
    if retention_days == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let before = chrono::Utc::now() - chrono::Duration::days(i64::from(retention_days));
        loop {
            match sepay_store::deliveries::delete_older_than(&db, before, CHUNK).await {
                Ok(n) if n as i64 == CHUNK && !shutdown.is_cancelled() => continue,
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "old deliveries not deleted; next time");
                    break;
                }
            }
        }
    }
}

async fn forget_idle_sources(state: Arc<AppState>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => state.guard.forget_idle(),
        }
    }
}
