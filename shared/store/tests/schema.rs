//! Rules the schema itself enforces, against a real Postgres.

use sepay_store::StoreError;
use sepay_testkit::{Seeded, TestDb, count};
use uuid::Uuid;

#[tokio::test]
async fn twenty_concurrent_first_uses_of_the_fallback_category_make_one_row() {
    let db = TestDb::new().await;
    let seed = Seeded::new(&db.pool).await;
    let calls = (0..20).map(|i| {
        let pool = db.pool.clone();
        let is_expense = i % 2 == 1;
        let name = if is_expense {
            "Uncategorized Expense"
        } else {
            "Uncategorized Income"
        };
        tokio::spawn(async move {
            (
                is_expense,
                sepay_store::ledger::ensure_fallback_category(&pool, seed.ws_id, name, is_expense)
                    .await
                    .unwrap(),
            )
        })
    });
    let ids: Vec<(bool, Uuid)> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    for direction in [false, true] {
        let mut seen: Vec<Uuid> = ids.iter().filter(|(d, _)| *d == direction).map(|(_, id)| *id).collect();
        seen.dedup();
        assert_eq!(seen.len(), 1, "is_expense={direction}: {seen:?}");
    }
    assert_eq!(count(&db.pool, "transaction_categories").await, 2);
}

#[tokio::test]
async fn an_endpoint_cannot_move_to_another_workspace() {
    let db = TestDb::new().await;
    let a = Seeded::new(&db.pool).await;
    let b = Seeded::new(&db.pool).await;
    let moved = sqlx::query("update sepay_webhook_endpoints set ws_id = $1 where id = $2")
        .bind(b.ws_id)
        .bind(a.endpoint_id)
        .execute(&db.pool)
        .await
        .map_err(StoreError::from);
    match moved {
        Err(StoreError::Rejected { message }) => {
            assert!(message.contains("immutable"), "{message}")
        }
        other => panic!("expected the trigger to refuse, got {other:?}"),
    }
    // other columns still change
    sqlx::query("update sepay_webhook_endpoints set label = 'renamed', ws_id = ws_id where id = $1")
        .bind(a.endpoint_id)
        .execute(&db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_event_cannot_name_an_endpoint_of_another_workspace() {
    let db = TestDb::new().await;
    let a = Seeded::new(&db.pool).await;
    let b = Seeded::new(&db.pool).await;
    let insert = sqlx::query(
        "insert into sepay_webhook_events (ws_id, endpoint_id, source, dedupe_key, payload) values ($1, $2, 'webhook', 'k', '{}')",
    )
    .bind(a.ws_id)
    .bind(b.endpoint_id)
    .execute(&db.pool)
    .await
    .map_err(StoreError::from);
    assert!(matches!(insert, Err(StoreError::Rejected { .. })), "{insert:?}");
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDb::new().await;
    sepay_store::migrate(&db.pool).await.unwrap();
    sepay_store::connect(&db.config).await.unwrap();
}

#[tokio::test]
async fn links_are_unique_per_account_and_sub_account() {
    let db = TestDb::new().await;
    let seed = Seeded::new(&db.pool).await;
    let store = &db.pool;
    let other = sepay_store::workspaces::create_wallet(store, seed.ws_id, "Other", "VND")
        .await
        .unwrap();
    // re-linking the same account moves it rather than adding a row
    sepay_store::workspaces::link_account(store, seed.ws_id, sepay_testkit::ACCOUNT, None, other.id)
        .await
        .unwrap();
    sepay_store::workspaces::link_account(store, seed.ws_id, sepay_testkit::ACCOUNT, Some("VA1"), other.id)
        .await
        .unwrap();
    assert_eq!(count(store, "sepay_wallet_links").await, 2);
    let wallet = sepay_store::workspaces::linked_wallet(store, seed.ws_id, sepay_testkit::ACCOUNT, None)
        .await
        .unwrap();
    assert_eq!(wallet, Some(other.id));
    // a wallet of another workspace cannot be linked
    let foreign = Seeded::new(store).await;
    let err = sepay_store::workspaces::link_account(store, seed.ws_id, "123", None, foreign.wallet_id)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
}
