//! The whole delivery path — ingress, NATS, processor, Postgres: concurrent copies, a NATS outage,
//! a stale event re-driven.

mod common;

use common::{System, post, processed};
use sepay_testkit::{PrivateNats, Seeded, TestDb, count, delivery, eventually, test_bus};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test]
async fn eight_concurrent_copies_of_a_delivery_book_one_transaction() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let system = System::start(&db, &nats).await;
    let seed = Seeded::new(&db.pool).await;
    let body = delivery(4242, "in", json!(2277000));
    let statuses = futures::future::join_all((0..8).map(|_| post(&system.url, &seed, &body))).await;
    assert!(statuses.iter().all(|s| s.is_success()), "{statuses:?}");
    assert!(
        eventually(Duration::from_secs(10), || async {
            (processed(&db).await == 1).then_some(())
        })
        .await
        .is_some()
    );
    // later retries are answered as duplicates and book nothing
    let again = reqwest::Client::new()
        .post(format!("{}{}", system.url, seed.path()))
        .header("authorization", seed.authorization())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        json!({"success": true, "duplicate": true})
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&db.pool, "wallet_transactions").await, 1);
    assert_eq!(count(&db.pool, "sepay_webhook_events").await, 1);
}

#[tokio::test]
async fn deliveries_taken_while_nats_is_down_are_relayed_and_booked_once() {
    let db = TestDb::new().await;
    let mut server = PrivateNats::start();
    let (_, nats) = test_bus(&server.url()).await;
    let system = System::start(&db, &nats).await;
    let seed = Seeded::new(&db.pool).await;
    assert_eq!(post(&system.url, &seed, &delivery(1, "in", json!(1000))).await, 200);
    assert!(
        eventually(Duration::from_secs(10), || async {
            (processed(&db).await == 1).then_some(())
        })
        .await
        .is_some()
    );

    server.stop();
    for id in 2..=11 {
        let started = Instant::now();
        assert_eq!(
            post(&system.url, &seed, &delivery(id, "in", json!(1000 + id))).await,
            200,
            "delivery {id}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "answer waited on NATS");
    }
    let unpublished: i64 = sqlx::query_scalar(
        "select count(*) from sepay_webhook_events where status = 'received' and published_at is null",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(unpublished, 10, "every delivery is kept while NATS is down");
    assert_eq!(processed(&db).await, 1);

    server.resume();
    let all = eventually(Duration::from_secs(30), || async {
        (processed(&db).await == 11).then_some(())
    })
    .await;
    assert!(all.is_some(), "relayed events were not booked");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&db.pool, "wallet_transactions").await, 11);
}

#[tokio::test]
async fn a_stale_received_event_is_re_driven_without_a_sepay_retry() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let seed = Seeded::new(&db.pool).await;
    // a row left `received` by a crashed worker: published long ago, never booked
    sqlx::query(
        "insert into sepay_webhook_events (ws_id, endpoint_id, source, dedupe_key, payload, opened_at, published_at)
         values ($1, $2, 'webhook', 'sepay:31', $3, now() - interval '10 minutes', now() - interval '10 minutes')",
    )
    .bind(seed.ws_id)
    .bind(seed.endpoint_id)
    .bind(delivery(31, "in", json!(1000)))
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("insert into sepay_open_events select id, attempts, opened_at from sepay_webhook_events")
        .execute(&db.pool)
        .await
        .unwrap();
    let _system = System::start(&db, &nats).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            (processed(&db).await == 1).then_some(())
        })
        .await
        .is_some()
    );
    let attempts: i32 = sqlx::query_scalar("select attempts from sepay_webhook_events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 2);
}
