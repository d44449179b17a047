//! Rules the schema itself enforces, against a real Postgres.

use sepay_core::EventStatus;
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
    let wallet = sepay_store::workspaces::wallet_for(store, seed.ws_id, None, sepay_testkit::ACCOUNT, None)
        .await
        .unwrap();
    assert_eq!(wallet.map(|(id, _)| id), Some(other.id));
    // a wallet of another workspace cannot be linked
    let foreign = Seeded::new(store).await;
    let err = sepay_store::workspaces::link_account(store, seed.ws_id, "123", None, foreign.wallet_id)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
}

/// A booking of `event_id` under `external_ref`, in the fallback category, tagged a and b.
fn sample_booking(seed: &Seeded, event_id: i64, external_ref: String) -> sepay_store::ledger::Booking {
    sepay_store::ledger::Booking {
        event_id,
        ws_id: seed.ws_id,
        wallet_id: seed.wallet_id,
        amount: 1000.into(),
        description: "x".into(),
        taken_at: chrono::Utc::now(),
        source: "sepay",
        external_ref,
        identity_key: None,
        category: sepay_store::ledger::CategoryChoice::Fallback {
            name: "Uncategorized Income".into(),
            is_expense: false,
        },
        classified_by: "fallback".into(),
        confidence: None,
        tags: vec!["a".into(), "b".into()],
        fee: None,
        balance_point: None,
    }
}

#[tokio::test]
async fn a_batch_books_like_one_by_one_each_case_in_one_statement() {
    use sepay_core::balance::BalancePoint;
    use sepay_store::ledger::{Booked, CategoryChoice, FeeRow, book, book_many};
    let db = TestDb::new().await;
    let seed = Seeded::new(&db.pool).await;
    let category = sepay_store::classification::category(&db.pool, seed.ws_id, "Salary", false)
        .await
        .unwrap();
    let mut events = Vec::new();
    for id in 1..=7 {
        events.push(recorded_event(&db.pool, &seed, id).await);
    }
    let booking = |i: usize| sample_booking(&seed, events[i].0, events[i].1.clone());
    // booked before the batch: a redelivery of it finds it processed
    let Booked::Created(earlier) = book(&db.pool, &booking(0)).await.unwrap() else {
        panic!("the first booking creates")
    };
    let new_plain = booking(1);
    let new_categorized = sepay_store::ledger::Booking {
        category: CategoryChoice::Existing(category),
        tags: vec!["b".into(), "c".into()],
        balance_point: Some((
            sepay_testkit::ACCOUNT.into(),
            BalancePoint {
                sepay_id: 3,
                taken_at: chrono::Utc::now(),
                amount: 1000.into(),
                accumulated: 5000.into(),
            },
        )),
        ..booking(2)
    };
    // event 4 carries event 1's bank transaction under another reference (its identity)
    let same_identity = sepay_store::ledger::Booking {
        identity_key: Some("identity-1".into()),
        ..booking(3)
    };
    let first_of_identity = sepay_store::ledger::Booking {
        identity_key: Some("identity-1".into()),
        ..booking(4)
    };
    // the same event twice in one batch (a redelivery while the first is in flight)
    let twice = booking(5);
    let with_fee = sepay_store::ledger::Booking {
        fee: Some(FeeRow {
            amount: (-10).into(),
            description: "fee".into(),
            external_ref: format!("{}:fee", events[6].1),
        }),
        ..booking(6)
    };
    let batch = vec![
        booking(0),
        new_plain,
        new_categorized,
        first_of_identity,
        same_identity,
        twice.clone(),
        twice,
        with_fee,
    ];
    let outcomes = book_many(&db.pool, &batch).await.unwrap();
    assert_eq!(outcomes.len(), batch.len());
    assert_eq!(outcomes[0], Booked::AlreadyProcessed, "{outcomes:?}");
    for i in [1, 2, 3, 5, 7] {
        assert!(matches!(outcomes[i], Booked::Created(_)), "booking {i}: {outcomes:?}");
    }
    let Booked::Created(identity_row) = outcomes[3] else {
        unreachable!()
    };
    assert_eq!(outcomes[4], Booked::DuplicateOf(identity_row), "{outcomes:?}");
    assert_eq!(
        outcomes[6],
        Booked::AlreadyProcessed,
        "the second copy of an event: {outcomes:?}"
    );
    assert_ne!(outcomes[1], Booked::Created(earlier));
    // six transactions and one fee row; each created row is its event's
    assert_eq!(count(&db.pool, "wallet_transactions").await, 7);
    let linked: Vec<(i64, String, Option<Uuid>)> = sqlx::query_as(
        "select id, status, created_transaction_id from sepay_webhook_events where ws_id = $1 order by id",
    )
    .bind(seed.ws_id)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    for (event, status, created) in &linked {
        let expected = match events.iter().position(|(id, _)| id == event) {
            Some(4) => EventStatus::Processed,
            Some(3) => EventStatus::Duplicate,
            _ => EventStatus::Processed,
        };
        assert_eq!(EventStatus::parse(status), Some(expected), "event {event}");
        assert!(created.is_some(), "event {event} points at its transaction");
    }
    let (category_of, tags): (Option<Uuid>, Vec<String>) = sqlx::query_as(
        "select t.category_id, array(select g.name from wallet_transaction_tags wt
                join transaction_tags g on g.id = wt.tag_id where wt.transaction_id = t.id order by g.name)
           from wallet_transactions t where t.external_ref = $1",
    )
    .bind(&events[2].1)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((category_of, tags), (Some(category), vec!["b".into(), "c".into()]));
    assert_eq!(count(&db.pool, "transaction_tags").await, 3, "tags a, b, c once each");
    assert_eq!(count(&db.pool, "sepay_balance_points").await, 1);
    // the whole batch again, eight times at once: nothing more is written
    let again = futures::future::join_all((0..8).map(|_| book_many(&db.pool, &batch))).await;
    for outcomes in again {
        let outcomes = outcomes.unwrap();
        assert!(outcomes.iter().all(|o| *o == Booked::AlreadyProcessed), "{outcomes:?}");
    }
    assert_eq!(count(&db.pool, "wallet_transactions").await, 7);
}

/// An event recorded as the ingress does, for booking.
async fn recorded_event(db: &sepay_store::PgPool, seed: &Seeded, id: i64) -> (i64, String) {
    use sepay_core::{DedupeKey, Delivery, EventSource, RetryPolicy};
    let body = sepay_testkit::delivery(id, "in", serde_json::json!(1000));
    let Delivery::Object(payload) = Delivery::from_value(body) else {
        unreachable!()
    };
    let key = DedupeKey::for_payload(&payload);
    let value = payload.clone().into_value();
    let new = sepay_store::events::NewEvent {
        provider: sepay_core::Provider::Sepay,
        ws_id: seed.ws_id,
        endpoint_id: Some(seed.endpoint_id),
        source: EventSource::Webhook,
        sepay_transaction_id: payload.sepay_id(),
        dedupe_key: &key,
        body: sepay_store::events::EventBody::Json(&value),
    };
    let recorded = sepay_store::events::record_delivery(db, &new, &RetryPolicy::default())
        .await
        .unwrap();
    (recorded.event().id, key.as_str().to_owned())
}

#[tokio::test]
async fn booking_is_one_statement_exactly_once_with_its_tags_or_a_duplicate() {
    use sepay_store::ledger::{Booked, book};
    let db = TestDb::new().await;
    let seed = Seeded::new(&db.pool).await;
    let (event_id, key) = recorded_event(&db.pool, &seed, 1).await;
    let booking = |event_id: i64, external_ref: String| {
        let (pool, booking) = (db.pool.clone(), sample_booking(&seed, event_id, external_ref));
        async move { book(&pool, &booking).await.unwrap() }
    };
    // eight workers booking the same event at once: one creates, the others find it processed
    let outcomes = futures::future::join_all((0..8).map(|_| booking(event_id, key.clone()))).await;
    let created: Vec<&Booked> = outcomes.iter().filter(|o| matches!(o, Booked::Created(_))).collect();
    assert_eq!(created.len(), 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Booked::Created(_) | Booked::AlreadyProcessed))
    );
    assert_eq!(count(&db.pool, "wallet_transactions").await, 1);
    assert_eq!(
        count(&db.pool, "wallet_transaction_tags").await,
        2,
        "tags in the same statement"
    );
    let status: String = sqlx::query_scalar("select status from sepay_webhook_events where id = $1")
        .bind(event_id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(EventStatus::parse(&status), Some(EventStatus::Processed));

    // another event whose bank transaction is already booked becomes its duplicate
    let (second, _) = recorded_event(&db.pool, &seed, 2).await;
    let Booked::Created(first_tx) = created[0] else {
        unreachable!()
    };
    assert_eq!(booking(second, key.clone()).await, Booked::DuplicateOf(*first_tx));
    let (status, points_to): (String, Option<Uuid>) =
        sqlx::query_as("select status, created_transaction_id from sepay_webhook_events where id = $1")
            .bind(second)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (EventStatus::parse(&status), points_to),
        (Some(EventStatus::Duplicate), Some(*first_tx))
    );
    assert_eq!(count(&db.pool, "wallet_transactions").await, 1);
    assert_eq!(
        booking(second, key).await,
        Booked::AlreadyProcessed,
        "settled events stay settled"
    );
}

#[tokio::test]
async fn a_striga_endpoint_needs_a_signing_key_and_survives_a_sepay_disconnect() {
    let db = TestDb::new().await;
    let seed = Seeded::new(&db.pool).await;
    // the schema refuses a Striga endpoint without its sealed key
    let refused = sqlx::query(
        "insert into sepay_webhook_endpoints (ws_id, token_hash, token_prefix, api_key_hash, provider)
         values ($1, '\\x01', 'spwh_x', '\\x02', 'striga')",
    )
    .bind(seed.ws_id)
    .execute(&db.pool)
    .await;
    let code = refused
        .err()
        .and_then(|e| e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()));
    assert_eq!(
        code.as_deref(),
        Some("23514"),
        "a check violation: a Striga endpoint without a signing key"
    );
    let striga = sepay_store::striga::create_endpoint(&db.pool, "http://x", seed.ws_id, None, "eu", b"sealed")
        .await
        .unwrap();
    let revoked = sepay_store::provisioning::revoke_workspace_endpoints(&db.pool, seed.ws_id)
        .await
        .unwrap();
    let revoked: Vec<Uuid> = revoked.iter().map(|e| e.id).collect();
    assert_eq!(
        revoked,
        [seed.endpoint_id],
        "disconnecting SePay revokes SePay's endpoints only"
    );
    let left = sepay_store::endpoints::get(&db.pool, striga.endpoint.id).await.unwrap();
    assert_eq!((left.provider.as_str(), left.status.as_str()), ("striga", "active"));
}

#[tokio::test]
async fn the_hot_path_pools_plan_once_and_the_others_per_execution() {
    let db = TestDb::new().await;
    for (config, expected) in [
        (db.config.for_hot_path(), "force_generic_plan"),
        (db.config.clone(), "auto"),
    ] {
        let pool = sepay_store::connect(&config).await.unwrap();
        let mode: String = sqlx::query_scalar("show plan_cache_mode")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(mode, expected);
    }
}
