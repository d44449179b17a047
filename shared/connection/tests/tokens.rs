//! Sealed tokens at rest, against the real Postgres: each column has its own associated data.

use sepay_api::{SepayClient, SepayConfig, TokenSet};
use sepay_connection::{TokenError, TokenField, Tokens};
use sepay_crypto::seal::Keyring;
use sepay_testkit::TestDb;
use std::sync::Arc;
use std::time::Duration;

async fn setup() -> (TestDb, Tokens, Arc<Keyring>, uuid::Uuid) {
    let db = TestDb::new().await;
    let keys = Arc::new(Keyring::parse(&Keyring::generate_spec("k1")).unwrap());
    let client = Arc::new(SepayClient::new(&SepayConfig::default()));
    let tokens = Tokens::new(db.pool.clone(), client, keys.clone());
    let ws = sepay_store::workspaces::create_workspace(&db.pool, "Shop")
        .await
        .unwrap();
    (db, tokens, keys, ws.id)
}

fn grant() -> TokenSet {
    TokenSet {
        access_token: "access-1".into(),
        refresh_token: Some("refresh-1".into()),
        expires_in: Some(Duration::from_secs(3600)),
        scopes: vec!["bank-account:read".into()],
    }
}

#[tokio::test]
async fn swapped_token_columns_do_not_open() {
    let (db, tokens, _keys, ws) = setup().await;
    tokens.store_grant(ws, &grant()).await.unwrap();
    assert_eq!(tokens.access_token(ws).await.unwrap(), "access-1");
    // a database writer swaps the columns: the refresh token must not be served as access token
    sqlx::query(
        "update sepay_connections set access_token_ciphertext = refresh_token_ciphertext,
                refresh_token_ciphertext = access_token_ciphertext where ws_id = $1",
    )
    .bind(ws)
    .execute(&db.pool)
    .await
    .unwrap();
    assert!(matches!(tokens.access_token(ws).await, Err(TokenError::Seal(_))));
}

#[tokio::test]
async fn legacy_seals_are_upgraded_once_at_start() {
    let (db, tokens, keys, ws) = setup().await;
    tokens.store_grant(ws, &grant()).await.unwrap();
    // as sealed before per-field associated data: AAD = the workspace id alone
    sqlx::query(
        "update sepay_connections set access_token_ciphertext = $2, refresh_token_ciphertext = $3 where ws_id = $1",
    )
    .bind(ws)
    .bind(keys.seal(ws.as_bytes(), b"access-legacy"))
    .bind(keys.seal(ws.as_bytes(), b"refresh-legacy"))
    .execute(&db.pool)
    .await
    .unwrap();
    assert!(
        matches!(tokens.access_token(ws).await, Err(TokenError::Seal(_))),
        "the legacy form no longer opens"
    );
    assert_eq!(tokens.upgrade_legacy_seals().await.unwrap(), 1);
    assert_eq!(tokens.upgrade_legacy_seals().await.unwrap(), 0, "idempotent");
    assert_eq!(tokens.access_token(ws).await.unwrap(), "access-legacy");
    let c = sepay_store::connections::get(&db.pool, ws).await.unwrap().unwrap();
    let refresh = keys
        .open(&TokenField::Refresh.aad(ws), &c.refresh_token_ciphertext.unwrap())
        .unwrap();
    assert_eq!(refresh, b"refresh-legacy");
}
