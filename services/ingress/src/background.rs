//! Writes that need not delay an answer, queued and written in batches by one task each:
//!
//! - **Publication marks.** After JetStream acknowledges a delivery's message, its row's
//!   `published_at` is set with many others in one statement, so a delivery costs one commit, not
//!   two. A mark that is late or lost only means the relay publishes the row again once it is
//!   `RELAY_MIN_AGE_MS` old and still unbooked; JetStream drops that copy by its message id.
//! - **The delivery attempt log** (`sepay_delivery_attempts`): what each delivery became, its
//!   status code and latency, known only once it is answered. Informational: one that cannot be
//!   queued (the queue full, Postgres down) is counted and dropped; the event itself is safe.

use sepay_store::deliveries::DeliveryAttempt;
use sepay_store::events::EventRef;
use sepay_store::{PgPool, StoreResult};
use sepay_telemetry::metrics;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Items waiting to be written; past this, new ones are dropped (see the module's text).
const QUEUE: usize = 20_000;
/// Items written per statement at most.
const BATCH: usize = 1_000;
/// How long an item may wait for others.
const LINGER: Duration = Duration::from_millis(20);

/// A queue of `T` written in batches by its own task until `shutdown` (then what is queued).
#[derive(Clone)]
pub struct Background<T>(mpsc::Sender<T>);

impl<T: Send + 'static> Background<T> {
    pub fn start<W, F>(
        db: PgPool,
        what: &'static str,
        write: W,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>)
    where
        W: Fn(PgPool, Vec<T>) -> F + Send + 'static,
        F: Future<Output = StoreResult<u64>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self(tx), tokio::spawn(write_batches(db, what, rx, write, shutdown)))
    }

    fn push(&self, what: &'static str, item: T) {
        if self.0.try_send(item).is_err() {
            metrics::counter!("sepay_ingress_background_dropped_total", "what" => what).increment(1);
        }
    }
}

pub type PublishedMarks = Background<(i64, i32)>;
pub type DeliveryLog = Background<DeliveryAttempt>;

pub const MARKS: &str = "published_marks";
pub const DELIVERY_LOG: &str = "delivery_log";

impl PublishedMarks {
    pub fn start_marks(db: PgPool, shutdown: CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        Self::start(
            db,
            MARKS,
            |db, marks| async move { sepay_store::events::mark_published_many(&db, &marks).await },
            shutdown,
        )
    }

    /// Full: the relay will publish it again (deduplicated), nothing is lost.
    pub fn note(&self, event: &EventRef) {
        self.push(MARKS, (event.id, event.attempts));
    }
}

impl DeliveryLog {
    pub fn start_log(db: PgPool, shutdown: CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        Self::start(
            db,
            DELIVERY_LOG,
            |db, attempts| async move { sepay_store::deliveries::insert_many(&db, &attempts).await },
            shutdown,
        )
    }

    pub fn log(&self, attempt: DeliveryAttempt) {
        self.push(DELIVERY_LOG, attempt);
    }
}

async fn write_batches<T, W, F>(
    db: PgPool,
    what: &'static str,
    mut rx: mpsc::Receiver<T>,
    write: W,
    shutdown: CancellationToken,
) where
    W: Fn(PgPool, Vec<T>) -> F,
    F: Future<Output = StoreResult<u64>>,
{
    loop {
        let first = tokio::select! {
            biased;
            item = rx.recv() => item,
            _ = shutdown.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { return };
        let mut batch = Vec::with_capacity(BATCH);
        batch.push(first);
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(item)) => batch.push(item),
                _ => break,
            }
        }
        let count = batch.len();
        if let Err(err) = write(db.clone(), batch).await {
            metrics::counter!("sepay_ingress_background_dropped_total", "what" => what).increment(count as u64);
            tracing::warn!(error = %err, what, count, "background writes lost (informational; the relay covers publications)");
        }
    }
}
