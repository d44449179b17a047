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

#[tokio::test]
async fn a_batchs_repeats_are_decided_together_as_one_by_one() {
    use sepay_core::{FailureReason, RetryPolicy};
    use sepay_store::events::Recorded;
    let db = TestDb::new().await;
    let seed = Seeded::new(&db.pool).await;
    let policy = RetryPolicy::default();
    let bodies: Vec<Value> = (1..=3)
        .map(|id| json!({"id": id, "transferAmount": 1000, "accountNumber": "0071000888888"}))
        .collect();
    let keys: Vec<DedupeKey> = bodies.iter().map(key_of).collect();
    let raw_key = DedupeKey::for_raw_body(b"not json");
    let mut stored = Vec::new();
    for (key, body) in keys.iter().zip(&bodies) {
        stored.push(
            events::insert_many(&db.pool, &[new_event(&seed, key, EventBody::Json(body))], &[])
                .await
                .unwrap()[0]
                .unwrap(),
        );
    }
    let raw = events::insert_many(
        &db.pool,
        &[new_event(&seed, &raw_key, EventBody::Invalid("not json"))],
        &[],
    )
    .await
    .unwrap()[0]
        .unwrap();
    // 1 is booked, 2 is being processed, 3 failed
    assert!(
        events::mark_processed_without_booking(&db.pool, stored[0].id)
            .await
            .unwrap()
    );
    events::mark_failed(&db.pool, stored[2].id, FailureReason::WalletNotLinked, "no wallet")
        .await
        .unwrap();
    let batch = [
        new_event(&seed, &keys[0], EventBody::Json(&bodies[0])),
        new_event(&seed, &keys[1], EventBody::Json(&bodies[1])),
        new_event(&seed, &raw_key, EventBody::Invalid("not json")),
        new_event(&seed, &keys[2], EventBody::Json(&bodies[2])),
        new_event(&seed, &keys[1], EventBody::Json(&bodies[1])),
    ];
    let repeats: Vec<&NewEvent> = batch.iter().collect();
    let outcomes: Vec<Recorded> = events::record_repeats(&db.pool, &repeats, &policy)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(outcomes[0], Recorded::Duplicate(stored[0]));
    assert_eq!(outcomes[1], Recorded::InFlight(stored[1]));
    assert_eq!(outcomes[2], Recorded::Invalid(raw));
    // a failed event is reopened (locked, one by one): a new attempt
    assert!(
        matches!(outcomes[3], Recorded::Reopened(e) if e.id == stored[2].id && e.attempts == stored[2].attempts + 1),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[4], Recorded::InFlight(stored[1]));
    let counts: Vec<(i64, i32)> = sqlx::query_as("select id, delivery_count from sepay_webhook_events order by id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let by_id: std::collections::HashMap<i64, i32> = counts.into_iter().collect();
    assert_eq!(
        [stored[0].id, stored[1].id, raw.id, stored[2].id].map(|id| by_id[&id]),
        [2, 3, 2, 2],
        "each delivery counted once, two repeats of one key both"
    );
}
