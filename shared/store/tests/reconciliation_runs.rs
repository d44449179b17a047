//! What a finished reconciliation run says of its connection: scheduled runs cover the time since
//! the last success and back off when failing; a gap's run covers only its span.

use chrono::{Duration, Utc};
use sepay_store::connections::{self, Grant};
use sepay_store::provisioning;
use sepay_testkit::TestDb;
use std::time::Duration as Wait;

#[tokio::test]
async fn runs_record_coverage_failures_and_backoff() {
    let db = TestDb::new().await;
    let ws = sepay_store::workspaces::create_workspace(&db.pool, "Shop")
        .await
        .unwrap()
        .id;
    let grant = Grant {
        access_token_ciphertext: b"sealed",
        refresh_token_ciphertext: None,
        scopes: &[],
        access_token_expires_at: None,
    };
    connections::upsert_connected(&db.pool, ws, &grant).await.unwrap();
    let hourly = Wait::from_secs(3600);
    let due = |through: Option<chrono::DateTime<Utc>>| vec![(ws, through)];
    assert_eq!(
        provisioning::due_for_reconciliation(&db.pool, hourly).await.unwrap(),
        due(None)
    );
    // a degraded connection (its token refresh failing for now) is still reconciled and checked:
    // those calls are what retry its refresh; one that needs a reconnect is not
    for (status, listed) in [("degraded", true), ("needs_reconnect", false)] {
        sqlx::query("update sepay_connections set status = $2 where ws_id = $1")
            .bind(ws)
            .bind(status)
            .execute(&db.pool)
            .await
            .unwrap();
        let due_now = provisioning::due_for_reconciliation(&db.pool, hourly).await.unwrap();
        assert_eq!(due_now.len() == 1, listed, "{status}");
        assert_eq!(
            connections::active_workspaces(&db.pool).await.unwrap() == vec![ws],
            listed,
            "{status}"
        );
    }
    connections::upsert_connected(&db.pool, ws, &grant).await.unwrap();

    // a gap's run, however successful, neither marks the connection reconciled nor covers it
    let now = Utc::now();
    let gap = provisioning::start_run(&db.pool, ws, "gap", now - Duration::minutes(1), now)
        .await
        .unwrap();
    assert_eq!(provisioning::finish_run(&db.pool, gap, 1, 1, None).await.unwrap(), 0);
    assert_eq!(
        provisioning::due_for_reconciliation(&db.pool, hourly).await.unwrap(),
        due(None)
    );

    // two failing scheduled runs count, and back off until the retry time
    for expected in [1, 2] {
        let run = provisioning::start_run(&db.pool, ws, "schedule", now - Duration::hours(24), now)
            .await
            .unwrap();
        let failures = provisioning::finish_run(&db.pool, run, 0, 0, Some("SePay answered 500"))
            .await
            .unwrap();
        assert_eq!(failures, expected);
    }
    provisioning::set_reconcile_retry(&db.pool, ws, now + Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(
        provisioning::due_for_reconciliation(&db.pool, hourly).await.unwrap(),
        vec![]
    );
    provisioning::set_reconcile_retry(&db.pool, ws, now - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        provisioning::due_for_reconciliation(&db.pool, hourly).await.unwrap(),
        due(None)
    );

    // a scheduled success resets the failures and records how far it covered
    let run = provisioning::start_run(&db.pool, ws, "schedule", now - Duration::hours(24), now)
        .await
        .unwrap();
    assert_eq!(provisioning::finish_run(&db.pool, run, 3, 0, None).await.unwrap(), 0);
    assert_eq!(
        provisioning::due_for_reconciliation(&db.pool, hourly).await.unwrap(),
        vec![]
    );
    let covered = provisioning::due_for_reconciliation(&db.pool, Wait::ZERO)
        .await
        .unwrap();
    let through = covered[0].1.expect("covered");
    assert!((through - now).num_milliseconds().abs() < 1, "{through} vs {now}");
}
