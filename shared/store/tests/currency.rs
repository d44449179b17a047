//! Currency integrity, as the store enforces it: ISO 4217 wallet currencies, and a wallet a
//! provider books into holds that provider's currency (VND for SePay, EUR for Striga).

use sepay_store::{StoreError, endpoints, workspaces};
use sepay_testkit::{ACCOUNT, Seeded, TestDb};

#[tokio::test]
async fn wallets_hold_iso_4217_currencies_and_keep_them() {
    let db = TestDb::new().await;
    let seed = Seeded::new(&db.pool).await;
    let eur = workspaces::create_wallet(&db.pool, seed.ws_id, "Euro", "eur")
        .await
        .unwrap();
    assert_eq!(eur.currency, "EUR", "stored upper-case");
    for bad in ["euro", "XYZW", ""] {
        let err = workspaces::create_wallet(&db.pool, seed.ws_id, "Bad", bad)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Rejected { message } if message.contains("ISO 4217")),
            "{bad:?}: {err:?}"
        );
    }
    // the schema keeps the shape whoever writes, and a currency never changes
    let raw = sqlx::query("insert into wallets (ws_id, name, currency) values ($1, 'x', 'euro')")
        .bind(seed.ws_id)
        .execute(&db.pool)
        .await;
    assert!(raw.is_err());
    let changed = sqlx::query("update wallets set currency = 'USD' where id = $1")
        .bind(eur.id)
        .execute(&db.pool)
        .await
        .map_err(StoreError::from)
        .unwrap_err();
    assert!(matches!(changed, StoreError::Rejected { .. }), "{changed:?}");
}

#[tokio::test]
async fn a_sepay_account_or_endpoint_books_only_into_a_vnd_wallet() {
    let db = TestDb::new().await;
    let seed = Seeded::new(&db.pool).await;
    let eur = workspaces::create_wallet(&db.pool, seed.ws_id, "Euro", "EUR")
        .await
        .unwrap();
    let vnd = workspaces::create_wallet(&db.pool, seed.ws_id, "Dong", "VND")
        .await
        .unwrap();
    let err = workspaces::link_account(&db.pool, seed.ws_id, ACCOUNT, None, eur.id)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Rejected { message } if message.contains("SePay account books VND")),
        "{err:?}"
    );
    workspaces::link_account(&db.pool, seed.ws_id, ACCOUNT, None, vnd.id)
        .await
        .unwrap();
    // moving an existing link to an EUR wallet is refused the same way
    let links = workspaces::wallet_links(&db.pool, seed.ws_id).await.unwrap();
    let err = workspaces::set_link_wallet(&db.pool, seed.ws_id, links[0].id, Some(eur.id))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
    // a SePay endpoint's own wallet too
    let err = endpoints::create_manual_endpoint(&db.pool, "http://x", seed.ws_id, Some(eur.id), "eur")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Rejected { message } if message.contains("a sepay endpoint books VND")),
        "{err:?}"
    );
    endpoints::create_manual_endpoint(&db.pool, "http://x", seed.ws_id, Some(vnd.id), "vnd")
        .await
        .unwrap();
}

/// A value Postgres cannot hold is its own error (the processor fails such an event at once
/// instead of retrying it eight times); a wrong reference is still a plain rejection.
#[tokio::test]
async fn values_postgres_cannot_store_are_told_apart() {
    let db = TestDb::new().await;
    let seed = Seeded::new(&db.pool).await;
    let err = workspaces::create_wallet(&db.pool, seed.ws_id, "nul \u{0} name", "VND")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unstorable { .. }), "{err:?}");
    let err = sqlx::query("select $1::numeric(5, 0)")
        .bind(rust_decimal::Decimal::from(10_000_000))
        .execute(&db.pool)
        .await
        .map_err(StoreError::from)
        .unwrap_err();
    assert!(matches!(err, StoreError::Unstorable { .. }), "{err:?}");
}
