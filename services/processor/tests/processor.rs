//! The processor against real Postgres and NATS: events are recorded and published the way the
//! ingress does it, then consumed and booked.

mod common;

use common::{Harness, event};

use rust_decimal::Decimal;
use sepay_core::EventStatus;
use sepay_processor::{Classification, Classifier, ClassifyInput, FallbackOnly, ProcessorConfig};
use sepay_store::PgPool;
use sepay_store::events::{self, EventRef};
use sepay_testkit::{Seeded, count, delivery, eventually};
use serde_json::json;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
struct TxRow {
    amount: Decimal,
    wallet_id: Uuid,
    taken_at: chrono::DateTime<chrono::Utc>,
    category: String,
    classified_by: Option<String>,
    description: String,
}

async fn transaction(db: &PgPool, id: Uuid) -> TxRow {
    sqlx::query_as(
        "select t.amount, t.wallet_id, t.taken_at, c.name as category, t.classified_by, t.description
           from wallet_transactions t join transaction_categories c on c.id = t.category_id where t.id = $1",
    )
    .bind(id)
    .fetch_one(db)
    .await
    .unwrap()
}

#[tokio::test]
async fn in_and_out_are_booked_with_the_sign_of_the_transfer_type() {
    let h = Harness::new().await;
    let seed = Seeded::new(&h.db.pool).await;
    h.start(Arc::new(FallbackOnly));
    let cases = [
        (1, "in", json!(2277000), "2277000", "Uncategorized Income"),
        (2, "out", json!("150000.50"), "-150000.5", "Uncategorized Expense"),
        (3, "in", json!(-500), "500", "Uncategorized Income"),
        (4, "out", json!(-500), "-500", "Uncategorized Expense"),
        (5, "OUT", json!("42"), "-42", "Uncategorized Expense"),
    ];
    for (id, kind, amount, want, category) in cases {
        let e = h.ingest(&seed, &delivery(id, kind, amount)).await;
        let row = h.wait_status(e.id, EventStatus::Processed).await;
        let tx = transaction(&h.db.pool, row.created_transaction_id.unwrap()).await;
        assert_eq!(tx.amount, Decimal::from_str(want).unwrap(), "case {id}");
        assert_eq!(tx.category, category, "case {id}");
        assert_eq!(tx.wallet_id, seed.wallet_id);
        assert_eq!(tx.taken_at.to_rfc3339(), "2023-03-25T07:02:37+00:00");
        assert_eq!(tx.classified_by.as_deref(), Some("fallback"));
        assert_eq!(tx.description, format!("payment {id}"));
    }
    assert_eq!(count(&h.db.pool, "wallet_transactions").await, 5);
    // one fallback category per direction, shared by all bookings
    assert_eq!(count(&h.db.pool, "transaction_categories").await, 2);
}

#[tokio::test]
async fn a_malformed_payload_fails_with_its_reason_and_keeps_the_raw_payload() {
    let h = Harness::new().await;
    let seed = Seeded::new(&h.db.pool).await;
    h.start(Arc::new(FallbackOnly));
    let cases = [
        (delivery(1, "in", json!("abc")), "invalid_amount"),
        (delivery(2, "sideways", json!(100)), "invalid_transfer_type"),
        (
            {
                let mut d = delivery(3, "in", json!(100));
                d["transactionDate"] = json!("yesterday");
                d
            },
            "invalid_transaction_date",
        ),
        (
            {
                let mut d = delivery(4, "in", json!(100));
                d["accountNumber"] = json!(null);
                d
            },
            "missing_account_number",
        ),
    ];
    for (body, reason) in cases {
        let e = h.ingest(&seed, &body).await;
        let row = h.wait_status(e.id, EventStatus::Failed).await;
        assert_eq!(row.failure_reason.as_deref(), Some(reason));
        assert_eq!(row.payload.as_ref(), Some(&body));
        assert!(row.created_transaction_id.is_none());
    }
    assert_eq!(count(&h.db.pool, "wallet_transactions").await, 0);
}

#[tokio::test]
async fn an_unlinked_account_fails_then_books_after_link_and_replay() {
    let h = Harness::new().await;
    let seed = Seeded::with_link(&h.db.pool, false).await;
    h.start(Arc::new(FallbackOnly));
    let e = h.ingest(&seed, &delivery(77, "in", json!(1000))).await;
    let row = h.wait_status(e.id, EventStatus::Failed).await;
    assert_eq!(row.failure_reason.as_deref(), Some("wallet_not_linked"));
    sepay_store::workspaces::link_account(&h.db.pool, seed.ws_id, sepay_testkit::ACCOUNT, None, seed.wallet_id)
        .await
        .unwrap();
    // what `sepayctl events replay` does
    let reopened = events::reopen_failed(&h.db.pool, Some(seed.ws_id), &[]).await.unwrap();
    assert_eq!(reopened.len(), 1);
    h.publish(&reopened[0]).await;
    let row = h.wait_status(e.id, EventStatus::Processed).await;
    assert_eq!(
        transaction(&h.db.pool, row.created_transaction_id.unwrap())
            .await
            .wallet_id,
        seed.wallet_id
    );
}

/// A link to a wallet of another currency made before the store refused them (the migration
/// deactivates those it finds; this one is forced in past the trigger): the delivery fails with
/// `wallet_currency_mismatch` and books nothing, instead of booking VND into an EUR wallet.
#[tokio::test]
async fn a_vnd_delivery_never_books_into_a_wallet_of_another_currency() {
    let h = Harness::new().await;
    let seed = Seeded::with_link(&h.db.pool, false).await;
    let eur = sepay_store::workspaces::create_wallet(&h.db.pool, seed.ws_id, "Euro", "EUR")
        .await
        .unwrap();
    let mut conn = h.db.pool.acquire().await.unwrap();
    sqlx::query("set session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("insert into sepay_wallet_links (ws_id, account_number, wallet_id) values ($1, $2, $3)")
        .bind(seed.ws_id)
        .bind(sepay_testkit::ACCOUNT)
        .bind(eur.id)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("set session_replication_role = origin")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    h.start(Arc::new(FallbackOnly));
    let e = h.ingest(&seed, &delivery(78, "in", json!(100000))).await;
    let row = h.wait_status(e.id, EventStatus::Failed).await;
    assert_eq!(row.failure_reason.as_deref(), Some("wallet_currency_mismatch"));
    assert_eq!(count(&h.db.pool, "wallet_transactions").await, 0);
}

/// A date no bank transaction can have fails the event on its first try, with its own reason;
/// retrying could not fix it.
#[tokio::test]
async fn a_transaction_date_out_of_range_fails_at_once() {
    let h = Harness::new().await;
    let seed = Seeded::new(&h.db.pool).await;
    h.start(Arc::new(FallbackOnly));
    let mut body = delivery(79, "in", json!(1000));
    body["transactionDate"] = json!("1990-01-01 00:00:00");
    let e = h.ingest(&seed, &body).await;
    let row = h.wait_status(e.id, EventStatus::Failed).await;
    assert_eq!(row.failure_reason.as_deref(), Some("transaction_date_out_of_range"));
    assert!(!sepay_core::FailureReason::TransactionDateOutOfRange.is_retryable());
    assert_eq!(count(&h.db.pool, "wallet_transactions").await, 0);
}

#[tokio::test]
async fn a_redelivered_processed_event_books_nothing() {
    let h = Harness::new().await;
    let seed = Seeded::new(&h.db.pool).await;
    h.start(Arc::new(FallbackOnly));
    let e = h.ingest(&seed, &delivery(9, "in", json!(1000))).await;
    let first = h.wait_status(e.id, EventStatus::Processed).await;
    // publish it again under new message ids, as a relay re-drive or a replay would
    for attempt in 2..=4 {
        h.publish(&EventRef { attempts: attempt, ..e }).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = event(&h.db.pool, e.id).await;
    assert_eq!(again.created_transaction_id, first.created_transaction_id);
    assert_eq!(count(&h.db.pool, "wallet_transactions").await, 1);
}

#[tokio::test]
async fn two_processors_on_one_consumer_book_every_event_exactly_once() {
    let h = Harness::new().await;
    let seed = Seeded::new(&h.db.pool).await;
    h.start(Arc::new(FallbackOnly));
    h.start(Arc::new(FallbackOnly));
    let mut ids = Vec::new();
    for id in 1..=150 {
        let e = h
            .ingest(
                &seed,
                &delivery(id, if id % 3 == 0 { "out" } else { "in" }, json!(1000 + id)),
            )
            .await;
        // every event also published a second time, as a racing relay would
        h.publish(&EventRef { attempts: 2, ..e }).await;
        ids.push(e.id);
    }
    let all = eventually(Duration::from_secs(30), || async {
        let processed: i64 = sqlx::query_scalar("select count(*) from sepay_webhook_events where status = $1")
            .bind(EventStatus::Processed.as_str())
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
        (processed == 150).then_some(())
    })
    .await;
    assert!(all.is_some(), "not every event was processed");
    assert_eq!(count(&h.db.pool, "wallet_transactions").await, 150);
    let distinct: i64 = sqlx::query_scalar("select count(distinct created_transaction_id) from sepay_webhook_events")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(distinct, 150);
}

#[tokio::test]
async fn the_endpoint_wallet_wins_and_sub_accounts_fall_back_to_their_account() {
    let h = Harness::new().await;
    let seed = Seeded::new(&h.db.pool).await;
    let db = &h.db.pool;
    let va_wallet = sepay_store::workspaces::create_wallet(db, seed.ws_id, "VA wallet", "VND")
        .await
        .unwrap();
    sepay_store::workspaces::link_account(db, seed.ws_id, sepay_testkit::ACCOUNT, Some("VA1"), va_wallet.id)
        .await
        .unwrap();
    h.start(Arc::new(FallbackOnly));
    let with_sub = |id: i64, sub: &str| {
        let mut d = delivery(id, "in", json!(100));
        d["subAccount"] = json!(sub);
        d
    };
    for (body, want) in [(with_sub(1, "VA1"), va_wallet.id), (with_sub(2, "VA2"), seed.wallet_id)] {
        let e = h.ingest(&seed, &body).await;
        let row = h.wait_status(e.id, EventStatus::Processed).await;
        assert_eq!(
            transaction(db, row.created_transaction_id.unwrap()).await.wallet_id,
            want
        );
    }
    // an endpoint bound to a wallet books there whatever the account
    let pinned = sepay_store::workspaces::create_wallet(db, seed.ws_id, "Pinned", "VND")
        .await
        .unwrap();
    sqlx::query("update sepay_webhook_endpoints set wallet_id = $1 where id = $2")
        .bind(pinned.id)
        .bind(seed.endpoint_id)
        .execute(db)
        .await
        .unwrap();
    let e = h.ingest(&seed, &with_sub(3, "VA1")).await;
    let row = h.wait_status(e.id, EventStatus::Processed).await;
    assert_eq!(
        transaction(db, row.created_transaction_id.unwrap()).await.wallet_id,
        pinned.id
    );
}

struct Slow;
#[async_trait::async_trait]
impl Classifier for Slow {
    async fn classify(&self, _: &ClassifyInput<'_>) -> anyhow::Result<Option<Classification>> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(None)
    }
}

struct Broken;
#[async_trait::async_trait]
impl Classifier for Broken {
    async fn classify(&self, _: &ClassifyInput<'_>) -> anyhow::Result<Option<Classification>> {
        anyhow::bail!("model unavailable")
    }
}

struct Fixed(Uuid);
#[async_trait::async_trait]
impl Classifier for Fixed {
    async fn classify(&self, _: &ClassifyInput<'_>) -> anyhow::Result<Option<Classification>> {
        Ok(Some(Classification {
            category_id: Some(self.0),
            decided_by: "rules".into(),
            confidence: Some(1.0),
            tags: vec!["pinned".into()],
        }))
    }
}

#[tokio::test]
async fn classification_never_blocks_booking() {
    for (name, classifier) in [
        ("slow", Arc::new(Slow) as Arc<dyn Classifier>),
        ("broken", Arc::new(Broken)),
    ] {
        let h = Harness::new().await;
        let seed = Seeded::new(&h.db.pool).await;
        h.start(classifier);
        let started = std::time::Instant::now();
        let e = h.ingest(&seed, &delivery(1, "in", json!(100))).await;
        let row = h.wait_status(e.id, EventStatus::Processed).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name} classifier held booking back"
        );
        let tx = transaction(&h.db.pool, row.created_transaction_id.unwrap()).await;
        assert_eq!(
            (tx.category.as_str(), tx.classified_by.as_deref()),
            ("Uncategorized Income", Some("fallback")),
            "{name}"
        );
    }
    let h = Harness::new().await;
    let seed = Seeded::new(&h.db.pool).await;
    let groceries: Uuid = sqlx::query_scalar(
        "insert into transaction_categories (ws_id, name, is_expense) values ($1, 'Sales', false) returning id",
    )
    .bind(seed.ws_id)
    .fetch_one(&h.db.pool)
    .await
    .unwrap();
    h.start(Arc::new(Fixed(groceries)));
    let e = h.ingest(&seed, &delivery(1, "in", json!(100))).await;
    let row = h.wait_status(e.id, EventStatus::Processed).await;
    let tx = transaction(&h.db.pool, row.created_transaction_id.unwrap()).await;
    assert_eq!(
        (tx.category.as_str(), tx.classified_by.as_deref()),
        ("Sales", Some("rules"))
    );
}

/// Counts its calls and takes its time (under the budget).
struct Deliberate(Arc<std::sync::atomic::AtomicUsize>);
#[async_trait::async_trait]
impl Classifier for Deliberate {
    async fn classify(&self, _: &ClassifyInput<'_>) -> anyhow::Result<Option<Classification>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        Ok(None)
    }
}

#[tokio::test]
async fn a_message_still_being_worked_on_is_not_delivered_again() {
    let h = Harness::new().await;
    let seed = Seeded::new(&h.db.pool).await;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let config = ProcessorConfig {
        classify_timeout_ms: 3000,
        ..Harness::config()
    };
    h.start_with(config, Arc::new(Deliberate(calls.clone())));
    let e = h.ingest(&seed, &delivery(1, "in", json!(100))).await;
    h.wait_status(e.id, EventStatus::Processed).await;
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one attempt: JetStream must not redeliver while the worker is classifying"
    );
}

#[test]
fn the_ack_wait_must_outlast_classification() {
    let config = ProcessorConfig {
        processor_ack_wait_secs: 6,
        classify_timeout_ms: 4000,
        ..Default::default()
    };
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("PROCESSOR_ACK_WAIT_SECS (6) must be at least"), "{err}");
    assert!(ProcessorConfig::default().validate().is_ok());
}
