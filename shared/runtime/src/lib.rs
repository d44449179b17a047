//! What every service binary shares: one start-up sequence and one set of health endpoints.

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
use tokio_util::sync::CancellationToken;

/// Telemetry, Postgres (created and migrated), NATS, signal handling, then `service`; a start-up
/// failure is one line on stderr and exit code 1.
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
}

/// `/healthz` (alive), `/readyz` (Postgres, NATS and, for consumers, the consumer attached) and
/// `/metrics`.
pub fn health_router(db: PgPool, bus: Bus, consumer_ready: Option<Arc<AtomicBool>>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(sepay_telemetry::metrics::endpoint))
        .with_state(Health {
            db,
            bus,
            consumer: consumer_ready,
        })
}

/// Serves [`health_router`] until `shutdown`.
pub async fn serve_health(
    listener: tokio::net::TcpListener,
    db: PgPool,
    bus: Bus,
    consumer_ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, health_router(db, bus, Some(consumer_ready)))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

async fn ready(State(h): State<Health>) -> impl IntoResponse {
    let postgres = sepay_store::ping(&h.db).await;
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
