use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use sepay_bus::Bus;
use sepay_store::PgPool;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;

pub async fn serve(
    listener: tokio::net::TcpListener,
    db: PgPool,
    bus: Bus,
    consumer_ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(sepay_telemetry::metrics::endpoint))
        .with_state((db, bus, consumer_ready));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

async fn ready(State((db, bus, consumer)): State<(PgPool, Bus, Arc<AtomicBool>)>) -> impl IntoResponse {
    let postgres = sepay_store::ping(&db).await;
    let nats = bus.is_connected();
    let consumer = consumer.load(Ordering::Relaxed);
    let status = if postgres && nats && consumer {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"postgres": postgres, "nats": nats, "consumer": consumer})),
    )
}
