//! The harness both processor test files use: events recorded and published the way the
//! ingress does it, and processors consuming them.
#![allow(dead_code)]

use sepay_bus::{Bus, EventReceived};
use sepay_core::{DedupeKey, Delivery, EventSource, EventStatus, RetryPolicy};
use sepay_processor::{Classifier, ProcessorConfig};
use sepay_store::PgPool;
use sepay_store::events::{self, EventBody, EventRef, NewEvent};
use sepay_testkit::{Seeded, TestDb, eventually, test_bus};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub struct Harness {
    pub db: TestDb,
    pub bus: Bus,
    pub stop: CancellationToken,
}

impl Harness {
    pub async fn new() -> Self {
        let db = TestDb::new().await;
        let (bus, _) = test_bus(&sepay_testkit::nats_url()).await;
        bus.ensure_events_stream().await.unwrap();
        Self {
            db,
            bus,
            stop: CancellationToken::new(),
        }
    }

    pub fn config() -> ProcessorConfig {
        ProcessorConfig {
            processor_concurrency: 8,
            processor_max_deliver: 3,
            classify_timeout_ms: 200,
            ..Default::default()
        }
    }

    pub fn start(&self, classifier: Arc<dyn Classifier>) {
        self.start_with(Self::config(), classifier);
    }

    pub fn start_with(&self, config: ProcessorConfig, classifier: Arc<dyn Classifier>) {
        tokio::spawn(sepay_processor::consume(
            config,
            self.db.pool.clone(),
            self.bus.clone(),
            classifier,
            self.stop.clone(),
        ));
    }

    /// Records and publishes a delivery as the ingress would.
    pub async fn ingest(&self, seed: &Seeded, body: &Value) -> EventRef {
        let Delivery::Object(payload) = Delivery::from_value(body.clone()) else {
            panic!("not an object")
        };
        let key = DedupeKey::for_payload(&payload);
        let value = payload.clone().into_value();
        let recorded = events::record_delivery(
            &self.db.pool,
            &NewEvent {
                provider: sepay_core::Provider::Sepay,
                ws_id: seed.ws_id,
                endpoint_id: Some(seed.endpoint_id),
                source: EventSource::Webhook,
                sepay_transaction_id: payload.sepay_id(),
                dedupe_key: &key,
                body: EventBody::Json(&value),
            },
            &RetryPolicy::default(),
        )
        .await
        .unwrap();
        let event = recorded.event();
        self.publish(&event).await;
        event
    }

    pub async fn publish(&self, event: &EventRef) {
        self.bus
            .publish_event_received(&EventReceived {
                event_id: event.id,
                ws_id: event.ws_id,
                attempt: event.attempts,
            })
            .await
            .unwrap();
    }

    pub async fn wait_status(&self, event_id: i64, want: EventStatus) -> EventRow {
        eventually(Duration::from_secs(20), || async {
            let row = event(&self.db.pool, event_id).await;
            (row.status == want).then_some(row)
        })
        .await
        .unwrap_or_else(|| panic!("event {event_id} never became {want}"))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct EventRow {
    #[sqlx(try_from = "String")]
    pub status: EventStatus,
    pub failure_reason: Option<String>,
    pub created_transaction_id: Option<Uuid>,
    pub payload: Option<Value>,
}

pub async fn event(db: &PgPool, id: i64) -> EventRow {
    sqlx::query_as(
        "select status, failure_reason, created_transaction_id, payload from sepay_webhook_events where id = $1",
    )
    .bind(id)
    .fetch_one(db)
    .await
    .unwrap()
}
