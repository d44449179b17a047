//! The ingress's group commit (`events::insert_many`) against a real Postgres: one statement for
//! a batch, a row per new key, by position; a key already stored or repeated within the batch is
//! left to the repeat rules; a body that is not an object is stored failed; endpoint use noted.

use sepay_core::{DedupeKey, Delivery, EventSource, Provider};
use sepay_store::events::{self, EventBody, NewEvent};
use sepay_testkit::{Seeded, TestDb, count};
use serde_json::{Value, json};
use uuid::Uuid;

fn new_event<'a>(seed: &Seeded, key: &'a DedupeKey, body: EventBody<'a>) -> NewEvent<'a> {
    NewEvent {
        ws_id: seed.ws_id,
        provider: Provider::Sepay,
        endpoint_id: Some(seed.endpoint_id),
        source: EventSource::Webhook,
        sepay_transaction_id: None,
        dedupe_key: key,
        body,
    }
}

fn key_of(payload: &Value) -> DedupeKey {
    let Delivery::Object(object) = Delivery::from_value(payload.clone()) else {
        panic!("an object")
    };
    DedupeKey::for_payload(&object)
}

#[tokio::test]
async fn a_batch_inserts_each_new_key_once_by_position() {
    let db = TestDb::new().await;
    let seed = Seeded::new(&db.pool).await;
    let bodies: Vec<Value> = [1, 2, 1, 3]
        .iter()
        .map(|id| json!({"id": id, "transferAmount": 1000, "accountNumber": "0071000888888"}))
        .collect();
    let keys: Vec<DedupeKey> = bodies.iter().map(key_of).collect();
    let raw_key = DedupeKey::for_raw_body(b"not json");
    // 3 is stored already: the batch leaves it to the repeat rules
    let first = events::insert_many(
        &db.pool,
        &[new_event(&seed, &keys[3], EventBody::Json(&bodies[3]))],
        &[],
    )
    .await
    .unwrap();
    assert!(first[0].is_some());
    let mut batch: Vec<NewEvent> = (0..4)
        .map(|i| new_event(&seed, &keys[i], EventBody::Json(&bodies[i])))
        .collect();
    batch.push(new_event(&seed, &raw_key, EventBody::Invalid("not json")));
    let touch: Vec<Uuid> = vec![seed.endpoint_id];
    let rows = events::insert_many(&db.pool, &batch, &touch).await.unwrap();
    let inserted: Vec<bool> = rows.iter().map(Option::is_some).collect();
    assert_eq!(
        inserted,
        [true, true, false, false, true],
        "new keys only, the first of a repeated one"
    );
    assert_eq!(count(&db.pool, "sepay_webhook_events").await, 4);
    let (status, reason): (String, Option<String>) =
        sqlx::query_as("select status, failure_reason from sepay_webhook_events where id = $1")
            .bind(rows[4].unwrap().id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("failed", Some("invalid_payload"))
    );
    let used: bool = sqlx::query_scalar("select last_used_at is not null from sepay_webhook_endpoints where id = $1")
        .bind(seed.endpoint_id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(used, "the endpoint's use noted in the same statement");
}
