//! Publication after the answer: a delivery is answered once its row is committed (durably left
//! for the relay, which publishes any open row still unpublished after `RELAY_MIN_AGE_MS`), and
//! its message is published here, many at once on the one NATS connection, each noted on its
//! row once JetStream acknowledges it (`background::PublishedMarks`). A request waits only when
//! [`QUEUE`] publications are already waiting (back-pressure), so memory stays bounded.

use crate::background::PublishedMarks;
use futures::StreamExt;
use sepay_bus::Bus;
use sepay_store::events::EventRef;
use sepay_telemetry::metrics;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Publications waiting for a slot; past this, requests wait to queue theirs.
const QUEUE: usize = 4096;
/// Publications awaiting JetStream's acknowledgement at once.
const IN_FLIGHT: usize = 512;

#[derive(Clone)]
pub struct Publisher(mpsc::Sender<(EventRef, tracing::Span)>);

impl Publisher {
    /// The queue and its task, which ends once every sender is dropped (after the server has
    /// drained) and the publications in flight are acknowledged or failed.
    pub fn start(bus: Bus, marks: PublishedMarks) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self(tx), tokio::spawn(publish_queued(bus, marks, rx)))
    }

    /// Queues the event's publication, in the request's trace.
    pub async fn queue(&self, event: EventRef) {
        if self.0.send((event, tracing::Span::current())).await.is_err() {
            // stopping: the row is stored, the relay publishes it
            tracing::warn!(event_id = event.id, "publisher stopped; the relay will publish");
        }
    }
}

/// Publishes what is queued, [`IN_FLIGHT`] at once, until the queue is closed and drained.
async fn publish_queued(bus: Bus, marks: PublishedMarks, rx: mpsc::Receiver<(EventRef, tracing::Span)>) {
    let queued = futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|item| (item, rx)) });
    queued
        .for_each_concurrent(IN_FLIGHT, |(event, span)| {
            let (bus, marks) = (&bus, &marks);
            async move { publish(bus, marks, &event).await }.instrument(span)
        })
        .await;
}

/// A failure is logged, not returned: the row is safe and the relay publishes it once NATS
/// answers again.
async fn publish(bus: &Bus, marks: &PublishedMarks, event: &EventRef) {
    if !bus.is_connected() {
        metrics::counter!("sepay_events_publish_failed_total").increment(1);
        tracing::warn!(event_id = event.id, "NATS disconnected; the relay will publish");
        return;
    }
    match sepay_runtime::announce_event(bus, event).await {
        Ok(()) => marks.note(event),
        Err(err) => tracing::warn!(event_id = event.id, error = %err, "publish failed; the relay will retry"),
    }
}
