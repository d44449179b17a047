//! The processor's in-memory booking settings against a real Postgres: a change made by an admin
//! (a new link, a relinked account, a new rule) applies to the very next event, because Postgres
//! announces it and the cache forgets the workspace.

use sepay_processor::BookingSettings;
use sepay_store::workspaces;
use sepay_testkit::{TestDb, eventually};
use std::time::Duration;

async fn listening(settings: &BookingSettings) {
    let ready = eventually(Duration::from_secs(5), || async {
        settings.is_listening().then_some(())
    })
    .await;
    assert!(ready.is_some(), "the cache listens for changes");
}

/// Polls until `read` gives `want` (an announcement arrives within milliseconds).
async fn until<T: PartialEq + std::fmt::Debug, F: std::future::Future<Output = T>>(want: T, read: impl Fn() -> F) {
    let got = eventually(Duration::from_secs(5), || async {
        let got = read().await;
        (got == want).then_some(())
    })
    .await;
    assert!(got.is_some(), "expected {want:?}, still {:?}", read().await);
}

#[tokio::test]
async fn wallet_links_and_rules_apply_at_once_after_a_change() {
    let db = TestDb::new().await;
    let settings = BookingSettings::start(db.pool.clone());
    listening(&settings).await;
    let ws = workspaces::create_workspace(&db.pool, "Shop").await.unwrap().id;
    let account = "0071000888888";
    // nothing linked: read, cached as "none"
    assert_eq!(settings.wallet(ws, None, account, None).await.unwrap(), None);
    let first = workspaces::create_wallet(&db.pool, ws, "Main", "VND").await.unwrap();
    workspaces::link_account(&db.pool, ws, account, None, first.id)
        .await
        .unwrap();
    let read = || async { settings.wallet(ws, None, account, None).await.unwrap() };
    until(Some((first.id, "VND".to_owned())), read).await;
    // relinked to another wallet: the next read follows
    let second = workspaces::create_wallet(&db.pool, ws, "Second", "VND").await.unwrap();
    workspaces::link_account(&db.pool, ws, account, None, second.id)
        .await
        .unwrap();
    until(Some((second.id, "VND".to_owned())), read).await;

    // rules: none, then one added
    assert!(settings.rules(ws).await.unwrap().is_empty());
    sepay_store::classification::add_rule(
        &db.pool,
        &sepay_store::classification::NewRule {
            ws_id: ws,
            name: "rides",
            match_all: true,
            conditions: &serde_json::json!([{"field": "content", "op": "contains", "value": "grab"}]),
            category_id: None,
            tags: &["ride".to_owned()],
            stop_processing: false,
        },
    )
    .await
    .unwrap();
    until(1, || async { settings.rules(ws).await.unwrap().len() }).await;
}
