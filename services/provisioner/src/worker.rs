//! The SEPAY_CONTROL consumer: one message at a time per subject handler, acked after the work.

use crate::Provisioner;
use async_nats::jetstream::AckKind;
use futures::StreamExt;
use sepay_bus::{ConsumerSettings, ControlRequest, ControlSubject, Message};
use sepay_core::lifecycle::processing_backoff;
use sepay_telemetry::metrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Control messages handled at once (different workspaces proceed side by side).
const CONCURRENCY: usize = 4;

pub async fn consume(
    p: Arc<Provisioner>,
    settings: ConsumerSettings,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        ready.store(false, Ordering::Relaxed);
        let messages = match p.bus.control_consumer(crate::CONSUMER, &settings).await {
            Ok(c) => c.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let messages = match messages {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(error = %err, "control consumer not ready; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        ready.store(true, Ordering::Relaxed);
        messages
            .take_until(shutdown.cancelled())
            .for_each_concurrent(CONCURRENCY, |item| {
                let p = p.clone();
                async move {
                    match item {
                        Ok(message) => handle(&p, message).await,
                        Err(err) => tracing::warn!(error = %err, "control consumer stream error"),
                    }
                }
            })
            .await;
    }
    ready.store(false, Ordering::Relaxed);
}

async fn handle(p: &Provisioner, message: Message) {
    let span = tracing::info_span!(
        "sepay.control process",
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = %message.subject,
        ws_id = tracing::field::Empty,
    );
    sepay_bus::continue_trace(&span, message.headers.as_ref());
    // instrumented, never entered across an await: an entered guard stays on the thread the task
    // leaves, so other messages' lines landed in this span (another workspace's ws_id) and the
    // registry could clone a closed span (a panic in debug builds)
    settle(p, message, &span).instrument(span.clone()).await
}

async fn settle(p: &Provisioner, message: Message, span: &tracing::Span) {
    let delivered = message.info().map(|i| i.delivered as u64).unwrap_or(1);
    let subject = p.bus.names().control_subject_of(&message.subject);
    let request = serde_json::from_slice::<ControlRequest>(&message.payload);
    let (Some(subject), Ok(request)) = (subject, request) else {
        tracing::error!(subject = %message.subject, "undecodable control message");
        let _ = message.ack_with(AckKind::Term).await;
        return;
    };
    span.record("ws_id", tracing::field::display(request.ws_id));
    let result = match subject {
        ControlSubject::ConnectionConnected | ControlSubject::SyncRequested => {
            crate::sync::sync_and_provision(p, request.ws_id)
                .await
                .map(|o| tracing::info!(?o, "synced"))
        }
        ControlSubject::EndpointRotateRequested => match request.endpoint_id {
            Some(endpoint) => crate::sync::rotate(p, request.ws_id, endpoint).await,
            None => Err(anyhow::anyhow!("rotation request without endpoint_id")),
        },
        ControlSubject::ConnectionDisconnected => crate::sync::disconnect(p, request.ws_id).await,
        ControlSubject::ReconcileRequested => crate::reconcile::requested(p, &request)
            .await
            .map(|o| tracing::info!(?o, "reconciled")),
    };
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!("sepay_control_handled_total", "subject" => subject.as_str(), "outcome" => outcome).increment(1);
    let ack = match result {
        Ok(()) => message.double_ack().await,
        Err(err) => {
            tracing::warn!(error = %err, subject = subject.as_str(), delivered, "control request failed");
            message
                .ack_with(AckKind::Nak(Some(
                    processing_backoff(delivered).max(Duration::from_secs(2)),
                )))
                .await
        }
    };
    if let Err(err) = ack {
        tracing::warn!(error = %err, "ack not confirmed");
    }
}
