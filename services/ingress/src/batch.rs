//! Group commit: concurrent deliveries are written together, one multi-row statement and one
//! commit per batch (`events::insert_many`), instead of a transaction of four round trips each.
//!
//! No fixed linger: a batch is whatever queued while earlier batches were committing, up to
//! [`BATCH_MAX`], with at most [`WRITERS`] batches in flight. A lone delivery is written at once;
//! under load the batches grow by themselves, and the commits are shared. Each delivery is
//! answered after its own row is committed (then published, as before). A repeat (its key already
//! stored) goes through `record_delivery` and its repeat rules; a batch that fails is written
//! again row by row, so a row Postgres refuses fails only its own delivery.

use crate::IngressError;
use sepay_core::{DedupeKey, EventSource, Provider, RetryPolicy};
use sepay_store::events::{self, EventBody, NewEvent, Recorded};
use sepay_store::{PgPool, StoreResult};
use sepay_telemetry::metrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

/// Deliveries per statement at most.
const BATCH_MAX: usize = 256;
/// Batches being committed at once (each holds one database connection).
const WRITERS: usize = 4;
/// Deliveries waiting for a writer; past this, requests wait to queue (back-pressure).
const QUEUE: usize = 4096;
/// An endpoint's `last_used_at` is informational: noted at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// One authenticated delivery to store.
pub struct Delivery {
    pub ws_id: Uuid,
    pub provider: Provider,
    pub endpoint_id: Uuid,
    pub sepay_transaction_id: Option<i64>,
    pub dedupe_key: DedupeKey,
    pub body: StoredBody,
}

pub enum StoredBody {
    Json(serde_json::Value),
    /// Not a JSON object: kept verbatim.
    Invalid(String),
}

impl Delivery {
    fn new_event(&self) -> NewEvent<'_> {
        NewEvent {
            ws_id: self.ws_id,
            provider: self.provider,
            endpoint_id: Some(self.endpoint_id),
            source: EventSource::Webhook,
            sepay_transaction_id: self.sepay_transaction_id,
            dedupe_key: &self.dedupe_key,
            body: match &self.body {
                StoredBody::Json(value) => EventBody::Json(value),
                StoredBody::Invalid(raw) => EventBody::Invalid(raw),
            },
        }
    }
}

struct Pending {
    delivery: Delivery,
    reply: oneshot::Sender<StoreResult<Recorded>>,
}

#[derive(Clone)]
pub struct GroupCommit(mpsc::Sender<Pending>);

impl GroupCommit {
    /// The queue and its dispatcher, which ends once every sender is dropped (after the server
    /// has drained) and the batches in flight are written.
    pub fn start(db: PgPool, policy: RetryPolicy) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self(tx), tokio::spawn(dispatch(db, policy, rx)))
    }

    /// Stores the delivery and says what it was (new, a repeat and its decision, not an object).
    pub async fn record(&self, delivery: Delivery) -> Result<Recorded, IngressError> {
        let (reply, answer) = oneshot::channel();
        // closed only while the ingress stops: the sender retries
        self.0
            .send(Pending { delivery, reply })
            .await
            .map_err(|_| IngressError::Unavailable)?;
        Ok(answer.await.map_err(|_| IngressError::Unavailable)??)
    }
}

async fn dispatch(db: PgPool, policy: RetryPolicy, mut rx: mpsc::Receiver<Pending>) {
    let writers = Arc::new(Semaphore::new(WRITERS));
    let mut touched: HashMap<Uuid, Instant> = HashMap::new();
    let mut in_flight = tokio::task::JoinSet::new();
    while let Some(first) = rx.recv().await {
        // a free writer first: what queues meanwhile joins this batch
        let Ok(permit) = writers.clone().acquire_owned().await else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        let mut touch: Vec<Uuid> = Vec::new();
        for pending in &batch {
            let endpoint = pending.delivery.endpoint_id;
            if touched.get(&endpoint).is_none_or(|at| now - *at >= TOUCH_EVERY) {
                touched.insert(endpoint, now);
                touch.push(endpoint);
            }
        }
        let (db, policy) = (db.clone(), policy);
        in_flight.spawn(async move {
            write(&db, &policy, batch, &touch).await;
            drop(permit);
        });
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

async fn write(db: &PgPool, policy: &RetryPolicy, batch: Vec<Pending>, touch: &[Uuid]) {
    metrics::histogram!("sepay_ingress_batch_size").record(batch.len() as f64);
    let events: Vec<NewEvent<'_>> = batch.iter().map(|p| p.delivery.new_event()).collect();
    let rows = events::insert_many(db, &events, touch).await;
    let results: Vec<StoreResult<Recorded>> = match rows {
        Ok(rows) => {
            futures::future::join_all(events.iter().zip(rows).map(|(event, row)| async move {
                match row {
                    Some(inserted) => Ok(match event.body {
                        EventBody::Json(_) => Recorded::New(inserted),
                        EventBody::Invalid(_) => Recorded::Invalid(inserted),
                    }),
                    // a repeat of a stored key: the repeat rules decide
                    None => events::record_delivery(db, event, policy).await,
                }
            }))
            .await
        }
        Err(err) if events.len() == 1 => vec![Err(err)],
        Err(err) => {
            tracing::warn!(error = %err, rows = events.len(), "batch not written; writing its rows one by one");
            futures::future::join_all(events.iter().map(|event| events::record_delivery(db, event, policy))).await
        }
    };
    drop(events);
    for (pending, result) in batch.into_iter().zip(results) {
        // a requester that went away (timeout) is answered by nothing: its row is stored
        let _ = pending.reply.send(result);
    }
}
