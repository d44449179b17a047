//! Running-balance gaps against the real Postgres: the chain checked pass by pass
//! (`sepay_provisioner::gaps::pass`), with points recorded as the processor records them.

use chrono::{DateTime, Duration as Span, Utc};
use rust_decimal::Decimal;
use sepay_core::balance::BalancePoint;
use sepay_provisioner::{Provisioner, ProvisionerConfig};
use sepay_store::balances;
use sepay_testkit::{TestDb, test_bus};
use std::sync::Arc;
use uuid::Uuid;

const ACCOUNT: &str = "0071000888888";

struct Chain {
    db: TestDb,
    p: Arc<Provisioner>,
    ws: Uuid,
    checked: i64,
    start: DateTime<Utc>,
}

impl Chain {
    /// A long grace: these tests look at detection and closing, not at reconciling.
    async fn new() -> Self {
        Self::with_grace(3600).await
    }

    async fn with_grace(balance_gap_grace_secs: u64) -> Self {
        let db = TestDb::new().await;
        let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
        let bus = sepay_bus::Bus::connect(&nats).await.unwrap();
        let config = ProvisionerConfig {
            balance_gap_grace_secs,
            ..Default::default()
        };
        let p = Provisioner::new(config, db.pool.clone(), bus).unwrap();
        let ws = sepay_store::workspaces::create_workspace(&db.pool, "Shop")
            .await
            .unwrap()
            .id;
        Self {
            db,
            p,
            ws,
            checked: 0,
            start: Utc::now() - Span::hours(1),
        }
    }

    /// Records SePay transaction `id`: `amount` (signed), leaving `balance`.
    async fn record(&self, account: &str, id: i64, amount: i64, balance: i64) {
        let point = BalancePoint {
            sepay_id: id,
            taken_at: self.start + Span::seconds(id),
            amount: Decimal::from(amount),
            accumulated: Decimal::from(balance),
        };
        balances::record_point(&self.db.pool, self.ws, account, &point)
            .await
            .unwrap();
    }

    async fn pass(&mut self) {
        sepay_provisioner::gaps::pass(&self.p, &mut self.checked).await.unwrap();
    }

    /// (after, before, status) of every gap.
    async fn gaps(&self) -> Vec<(i64, i64, String)> {
        sqlx::query_as("select after_sepay_id, before_sepay_id, status from sepay_balance_gaps order by id")
            .fetch_all(&self.db.pool)
            .await
            .unwrap()
    }
}

fn gap(after: i64, before: i64, status: &str) -> (i64, i64, String) {
    (after, before, status.to_owned())
}

#[tokio::test]
async fn a_missing_transaction_opens_a_gap_that_closes_when_it_arrives() {
    let mut c = Chain::new().await;
    c.record(ACCOUNT, 1, 1000, 1000).await;
    c.record(ACCOUNT, 2, 500, 1500).await;
    c.pass().await;
    assert_eq!(c.gaps().await, [], "continuous");
    // 3 (+200) is lost: 4 does not carry on from 2
    c.record(ACCOUNT, 4, -100, 1600).await;
    c.pass().await;
    assert_eq!(c.gaps().await, [gap(2, 4, "open")]);
    let (expected, seen): (Decimal, Decimal) =
        sqlx::query_as("select expected_before, seen_before from sepay_balance_gaps")
            .fetch_one(&c.db.pool)
            .await
            .unwrap();
    assert_eq!((expected, seen), (Decimal::from(1700), Decimal::from(1500)));
    // a pass with nothing new changes nothing
    c.pass().await;
    assert_eq!(c.gaps().await, [gap(2, 4, "open")]);
    // it arrives (late, or reconciled): the gap closes, and its neighbours are checked
    c.record(ACCOUNT, 3, 200, 1700).await;
    c.pass().await;
    assert_eq!(c.gaps().await, [gap(2, 4, "closed")]);
}

#[tokio::test]
async fn deliveries_out_of_order_are_checked_again_and_two_losses_stay_visible() {
    let mut c = Chain::new().await;
    c.record(ACCOUNT, 1, 100, 100).await;
    c.record(ACCOUNT, 5, 100, 600).await;
    c.pass().await;
    assert_eq!(c.gaps().await, [gap(1, 5, "open")]);
    // 3 arrives, 2 and 4 are still missing: 1–5 closes, 1–3 and 3–5 open
    c.record(ACCOUNT, 3, 100, 400).await;
    c.pass().await;
    assert_eq!(
        c.gaps().await,
        [gap(1, 5, "closed"), gap(1, 3, "open"), gap(3, 5, "open")]
    );
    c.record(ACCOUNT, 2, 200, 300).await;
    c.record(ACCOUNT, 4, 100, 500).await;
    c.pass().await;
    let open: Vec<_> = c.gaps().await.into_iter().filter(|g| g.2 != "closed").collect();
    assert_eq!(open, [], "every gap filled");
}

#[tokio::test]
async fn banks_without_balances_and_sub_accounts() {
    let mut c = Chain::new().await;
    // a bank that reports no balance sends 0 every time: never a gap
    for id in 1..=4 {
        c.record("NOBALANCE", id, 1000, 0).await;
    }
    // transactions on an account's virtual sub-accounts share its balance: one chain
    c.record(ACCOUNT, 10, 1000, 1000).await; // on the account
    c.record(ACCOUNT, 11, 250, 1250).await; // on sub-account VA1
    c.record(ACCOUNT, 12, -50, 1200).await; // on sub-account VA2
    // another account's chain is its own
    c.record("0000000000002", 13, 70, 70).await;
    c.pass().await;
    assert_eq!(c.gaps().await, []);
}

/// A gap whose reconciliation cannot run (here the workspace has no SePay connection; in the field
/// a token outage or a needed reconnect) is tried again within a minute and never flagged: only
/// reconciliations that ran and left it open count toward the flag.
#[tokio::test]
async fn a_gap_whose_reconciliation_fails_is_retried_soon_and_never_flagged() {
    let mut c = Chain::with_grace(1).await;
    c.record(ACCOUNT, 1, 100, 100).await;
    c.record(ACCOUNT, 3, 100, 300).await;
    c.pass().await;
    assert_eq!(c.gaps().await, [gap(1, 3, "open")]);
    for _ in 0..8 {
        // due now, as if its wait had passed
        sqlx::query("update sepay_balance_gaps set next_attempt_at = now()")
            .execute(&c.db.pool)
            .await
            .unwrap();
        c.pass().await;
    }
    let (status, attempts, wait, error): (String, i32, f64, Option<String>) = sqlx::query_as(
        "select status, attempts, extract(epoch from next_attempt_at - now())::float8, last_error
           from sepay_balance_gaps",
    )
    .fetch_one(&c.db.pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), attempts), ("open", 8));
    assert!(wait <= 60.0, "retried within a minute, not {wait} s");
    assert!(error.unwrap().contains("not connected"));
}
