//! Publications noted in batches: after JetStream acknowledges a delivery's message, its row's
//! `published_at` is set with many others in one statement, so a delivery costs one commit, not
//! two. A mark that is late or lost only means the relay publishes the row again once it is
//! `RELAY_MIN_AGE_MS` old and still unbooked; JetStream drops that copy by its message id.

use sepay_store::PgPool;
use sepay_store::events::EventRef;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Marks waiting to be written; past this, new ones are left to the relay.
const QUEUE: usize = 20_000;
/// Marks written per statement at most.
const BATCH: usize = 1_000;
/// How long a mark may wait for others.
const LINGER: Duration = Duration::from_millis(20);

#[derive(Clone)]
pub struct PublishedMarks(mpsc::Sender<(i64, i32)>);

impl PublishedMarks {
    /// The queue and the task that writes it until `shutdown` (then what is queued).
    pub fn start(db: PgPool, shutdown: CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self(tx), tokio::spawn(write_marks(db, rx, shutdown)))
    }

    pub fn note(&self, event: &EventRef) {
        // full: the relay will publish it again (deduplicated), nothing is lost
        let _ = self.0.try_send((event.id, event.attempts));
    }
}

async fn write_marks(db: PgPool, mut rx: mpsc::Receiver<(i64, i32)>, shutdown: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = tokio::select! {
            biased;
            mark = rx.recv() => mark,
            _ = shutdown.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { return };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(mark)) => batch.push(mark),
                _ => break,
            }
        }
        if let Err(err) = sepay_store::events::mark_published_many(&db, &batch).await {
            tracing::warn!(error = %err, marks = batch.len(), "publications not noted; the relay will republish");
        }
        batch.clear();
    }
}
