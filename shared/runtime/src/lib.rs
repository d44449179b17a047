//! What every service binary shares: one start-up sequence, the HTTP serving limits and one set
//! of health endpoints, served on an admin listener apart from public traffic.

pub mod cli;
pub mod dev_dir;
pub mod group_commit;
pub mod http;

pub use http::HttpLimits;

/// Where SePay reaches the ingress on a developer machine (`PUBLIC_BASE_URL`'s default).
pub const DEFAULT_PUBLIC_BASE_URL: &str = "http://127.0.0.1:8080";

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use sepay_bus::{Bus, NatsConfig};
use sepay_store::{DbConfig, PgPool};
use serde_json::json;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// `--sepay-dev-mode` (or `--dev-mode`) / `SEPAY_DEV_MODE`: lets unset secrets fall back to public development values.
/// Off, a service without its real secrets refuses to start.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct DevMode {
    /// Development mode: unset secrets (SEPAY_TOKEN_KEYS, ADMIN_JWT_SECRET) fall back to public
    /// development values. Local development only; `up` turns it on.
    #[arg(
        long = "sepay-dev-mode",
        visible_alias = "dev-mode",
        env = "SEPAY_DEV_MODE",
        global = true
    )]
    pub dev_mode: bool,
}

/// Telemetry, Postgres (created and migrated), NATS, signal handling, then `service`; a start-up
/// failure is one line on stderr and exit code 1.
///
/// The service's own future runs here, which in a binary is `#[tokio::main]`'s: polled by the main
/// thread, outside tokio's worker pool. That suits an accept loop (the connections it spawns from
/// outside the pool are spread over the workers), not a loop doing the work itself: the
/// processor runs its consumer loop as a task of its own.
pub async fn run_service<F, Fut>(name: &str, db: &DbConfig, nats: &NatsConfig, service: F) -> ExitCode
where
    F: FnOnce(PgPool, Bus, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let _telemetry = sepay_telemetry::init(
        name,
        sepay_telemetry::LogFormat::from_env_or(sepay_telemetry::LogFormat::Json),
    );
    let shutdown = sepay_telemetry::shutdown_on_signals();
    let result = async {
        let db = sepay_store::connect(db).await?;
        let bus = Bus::connect(nats).await?;
        service(db, bus, shutdown).await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{name}: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone)]
struct Health {
    db: PgPool,
    bus: Bus,
    consumer: Option<Arc<AtomicBool>>,
    postgres: Arc<tokio::sync::Mutex<Option<(Instant, bool)>>>,
}

/// How long one Postgres ping answers `/readyz`: a probe flood costs one query a second.
pub const READINESS_CACHE: Duration = Duration::from_secs(1);

impl Health {
    /// Postgres answered a ping within the last [`READINESS_CACHE`]; concurrent probes wait for
    /// one ping instead of sending their own.
    async fn postgres_ready(&self) -> bool {
        let mut cached = self.postgres.lock().await;
        match *cached {
            Some((at, ready)) if at.elapsed() < READINESS_CACHE => ready,
            _ => {
                let ready = sepay_store::ping(&self.db).await;
                *cached = Some((Instant::now(), ready));
                ready
            }
        }
    }
}

/// `/healthz` (alive), `/readyz` (Postgres, NATS and, for consumers, the consumer attached) and
/// `/metrics`: the admin listener's routes, never on a public port.
pub fn health_router(db: PgPool, bus: Bus, consumer_ready: Option<Arc<AtomicBool>>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(sepay_telemetry::metrics::endpoint))
        .with_state(Health {
            db,
            bus,
            consumer: consumer_ready,
            postgres: Arc::default(),
        })
}

/// Serves [`health_router`] on the admin listener until `shutdown`.
pub async fn serve_health(
    listener: tokio::net::TcpListener,
    db: PgPool,
    bus: Bus,
    consumer_ready: Option<Arc<AtomicBool>>,
    limits: &HttpLimits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    http::serve(listener, health_router(db, bus, consumer_ready), limits, shutdown).await
}

/// Binds a listener, naming the setting in the error.
pub async fn bind(addr: std::net::SocketAddr, setting: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({setting}): {e}"))
}

async fn ready(State(h): State<Health>) -> impl IntoResponse {
    let postgres = h.postgres_ready().await;
    let nats = h.bus.is_connected();
    let mut body = json!({"postgres": postgres, "nats": nats});
    let mut ok = postgres && nats;
    if let Some(consumer) = &h.consumer {
        let attached = consumer.load(Ordering::Relaxed);
        body["consumer"] = json!(attached);
        ok &= attached;
    }
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(body),
    )
}

/// Publishes an open event for processing and notes the publication on its row. An error leaves
/// the row unpublished: the ingress relay publishes it later (the message id dedupes a double).
pub async fn publish_event(db: &PgPool, bus: &Bus, event: &sepay_store::events::EventRef) -> anyhow::Result<()> {
    announce_event(bus, event).await?;
    if let Err(err) = sepay_store::events::mark_published(db, event).await {
        sepay_telemetry::metrics::counter!("sepay_events_publish_failed_total").increment(1);
        return Err(err.into());
    }
    Ok(())
}

/// Publishes an open event for processing, without noting it on the row (the ingress notes its
/// publications in batches).
pub async fn announce_event(bus: &Bus, event: &sepay_store::events::EventRef) -> anyhow::Result<()> {
    let message = sepay_bus::EventReceived {
        event_id: event.id,
        ws_id: event.ws_id,
        attempt: event.attempts,
    };
    if let Err(err) = bus.publish_event_received(&message).await {
        sepay_telemetry::metrics::counter!("sepay_events_publish_failed_total").increment(1);
        return Err(err.into());
    }
    Ok(())
}
