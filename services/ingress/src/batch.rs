//! Group commit of deliveries: concurrent deliveries are written together, one multi-row statement
//! and one commit per batch (`events::insert_many`), instead of a transaction of four round trips
//! each, by `sepay_runtime::group_commit` (at most [`BATCH_MAX`] a batch, [`WRITERS`] batches in
//! flight). Each delivery is answered after its own row is committed (its publication follows the
//! answer: `publisher`). The repeats of a batch (keys already stored) go through the repeat rules
//! together (`events::record_repeats`); a batch that fails is written again row by row, so a row
//! Postgres refuses fails only its own delivery.

use crate::IngressError;
use sepay_core::{DedupeKey, EventSource, Provider, RetryPolicy};
use sepay_runtime::group_commit::{self, Limits};
use sepay_store::events::{self, EventBody, NewEvent, Recorded};
use sepay_store::{PgPool, StoreResult};
use sepay_telemetry::metrics;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Deliveries per statement at most.
const BATCH_MAX: usize = 256;
/// Batches being committed at once (each holds one database connection).
const WRITERS: usize = 1;
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

/// Deliveries, stored by the group commit (`sepay_runtime::group_commit`).
#[derive(Clone)]
pub struct GroupCommit(group_commit::GroupCommit<Delivery, StoreResult<Recorded>>);

impl GroupCommit {
    /// The queue and its dispatcher, which ends once every sender is dropped (after the server
    /// has drained) and the batches in flight are written.
    pub fn start(db: PgPool, policy: RetryPolicy) -> (Self, tokio::task::JoinHandle<()>) {
        let limits = Limits {
            max_batch: BATCH_MAX,
            writers: WRITERS,
            queue: QUEUE,
        };
        let mut touched: HashMap<Uuid, Instant> = HashMap::new();
        let (group, dispatcher) = group_commit::GroupCommit::start(limits, move |batch: Vec<Delivery>| {
            let now = Instant::now();
            let mut touch: Vec<Uuid> = Vec::new();
            for delivery in &batch {
                let endpoint = delivery.endpoint_id;
                if touched.get(&endpoint).is_none_or(|at| now - *at >= TOUCH_EVERY) {
                    touched.insert(endpoint, now);
                    touch.push(endpoint);
                }
            }
            let db = db.clone();
            async move { write(&db, &policy, batch, &touch).await }
        });
        (Self(group), dispatcher)
    }

    /// Stores the delivery and says what it was (new, a repeat and its decision, not an object).
    pub async fn record(&self, delivery: Delivery) -> Result<Recorded, IngressError> {
        // stopped only while the ingress stops: the sender retries
        Ok(self.0.submit(delivery).await.map_err(|_| IngressError::Unavailable)??)
    }
}

async fn write(db: &PgPool, policy: &RetryPolicy, batch: Vec<Delivery>, touch: &[Uuid]) -> Vec<StoreResult<Recorded>> {
    metrics::histogram!("sepay_ingress_batch_size").record(batch.len() as f64);
    let events: Vec<NewEvent<'_>> = batch.iter().map(Delivery::new_event).collect();
    let rows = events::insert_many(db, &events, touch).await;
    match rows {
        Ok(rows) => {
            // a repeat of a stored key: the repeat rules decide, for all of the batch's together
            let repeats: Vec<&NewEvent<'_>> = events
                .iter()
                .zip(&rows)
                .filter(|(_, row)| row.is_none())
                .map(|(e, _)| e)
                .collect();
            let mut repeated = events::record_repeats(db, &repeats, policy).await.into_iter();
            events
                .iter()
                .zip(rows)
                .map(|(event, row)| match row {
                    Some(inserted) => Ok(match event.body {
                        EventBody::Json(_) => Recorded::New(inserted),
                        EventBody::Invalid(_) => Recorded::Invalid(inserted),
                    }),
                    None => repeated
                        .next()
                        .unwrap_or(Err(sepay_store::StoreError::NotFound("event"))),
                })
                .collect()
        }
        Err(err) if events.len() == 1 => vec![Err(err)],
        Err(err) => {
            tracing::warn!(error = %err, rows = events.len(), "batch not written; writing its rows one by one");
            futures::future::join_all(events.iter().map(|event| events::record_delivery(db, event, policy))).await
        }
    }
}
