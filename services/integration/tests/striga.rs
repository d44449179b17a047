//! Striga through the whole path (ingress, NATS, processor, Postgres): seed 003's samples as
//! Striga sends them, payouts out of order, repeats, bad signatures, and Striga beside SePay in
//! one workspace.

mod common;

use common::System;
use rust_decimal::Decimal;
use sepay_crypto::hmac::striga_signature;
use sepay_crypto::seal::{DEV_KEYS, Keyring};
use sepay_store::endpoints::signing_key_aad;
use sepay_testkit::striga_samples::{
    ALL, PAYIN_COMPLETED, PAYOUT_COMPLETED, PAYOUT_DENIED, PAYOUT_FAILED, PAYOUT_INITIATED,
};
use sepay_testkit::{Seeded, TestDb, count, delivery, eventually, test_bus};
use serde_json::{Value, json};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

const API_KEY: &str = "striga-application-secret";

/// A workspace with a Striga endpoint booking into an EUR wallet, and a second EUR wallet
/// ("Savings") linked to the payin sample's `accountId`.
struct Workspace {
    ws_id: Uuid,
    wallet: Uuid,
    savings: Uuid,
    token: String,
}

impl Workspace {
    async fn new(db: &TestDb) -> Self {
        use sepay_store::workspaces;
        let ws = workspaces::create_workspace(&db.pool, "EU and VN").await.unwrap();
        Self::in_workspace(db, ws.id).await
    }

    async fn in_workspace(db: &TestDb, ws_id: Uuid) -> Self {
        use sepay_store::workspaces;
        let wallet = workspaces::create_wallet(&db.pool, ws_id, "Striga EUR", "EUR")
            .await
            .unwrap();
        let savings = workspaces::create_wallet(&db.pool, ws_id, "Savings", "EUR")
            .await
            .unwrap();
        sepay_store::striga::link_wallet(&db.pool, ws_id, "0148ae0856b1457ff3b59f2ac965b58e", savings.id)
            .await
            .unwrap();
        let sealed = Keyring::parse(DEV_KEYS)
            .unwrap()
            .seal(&signing_key_aad(ws_id), API_KEY.as_bytes());
        let created = sepay_store::striga::create_endpoint(
            &db.pool,
            "http://127.0.0.1:9",
            ws_id,
            Some(wallet.id),
            "striga",
            &sealed,
        )
        .await
        .unwrap();
        assert!(
            created
                .webhook_url
                .ends_with(&format!("/api/v1/webhooks/striga/{}", created.token))
        );
        Self {
            ws_id,
            wallet: wallet.id,
            savings: savings.id,
            token: created.token,
        }
    }

    /// Posts `body` to `<url>/<suffix>` signed with `signature` (`None`: signed right).
    async fn post(&self, system: &System, suffix: &str, body: &[u8], signature: Option<&str>) -> (u16, Value) {
        let right = striga_signature(API_KEY.as_bytes(), body);
        let res = reqwest::Client::new()
            .post(format!("{}/api/v1/webhooks/striga/{}{suffix}", system.url, self.token))
            .header("content-type", "application/json")
            .header("signature", signature.unwrap_or(&right))
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    async fn tx(&self, system: &System, body: &Value) -> u16 {
        self.post(system, "/tx", body.to_string().as_bytes(), None).await.0
    }
}

async fn settled_events(db: &TestDb) -> i64 {
    sqlx::query_scalar("select count(*) from sepay_webhook_events where status in ('processed', 'duplicate', 'failed')")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn wait_settled(db: &TestDb, n: i64) {
    let settled = eventually(Duration::from_secs(15), || async {
        (settled_events(db).await >= n).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "{n} events settled; {} did",
        settled_events(db).await
    );
}

/// (external ref, wallet, amount) of every booking, sorted.
async fn bookings(db: &TestDb, ws_id: Uuid) -> Vec<(String, Uuid, Decimal)> {
    sqlx::query_as(
        "select external_ref, wallet_id, amount from wallet_transactions where ws_id = $1 order by external_ref",
    )
    .bind(ws_id)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

async fn payout_status(db: &TestDb, ws_id: Uuid, payout: &str) -> String {
    sepay_store::striga::payouts(&db.pool, ws_id, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.payout_id == payout)
        .map(|p| p.status.to_owned())
        .unwrap_or_default()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn with_id(sample: &str, id: &str) -> Value {
    let mut v: Value = serde_json::from_str(sample).unwrap();
    v["id"] = json!(id);
    v
}

/// The sample with every amount written the other way (numbers as strings and back) and the
/// zero side left out, as Striga also sends them.
fn rewritten(sample: &str, id: &str) -> Value {
    let mut v = with_id(sample, id);
    for side in ["credit", "debit"] {
        if v.get(side).is_some_and(|a| a == &json!(0) || a == &json!("0")) {
            v.as_object_mut().unwrap().remove(side);
        }
    }
    let swap = |a: &mut Value| {
        *a = match a.take() {
            Value::String(s) => json!(s.parse::<u64>().unwrap()),
            Value::Number(n) => json!(n.to_string()),
            other => other,
        }
    };
    for side in ["credit", "debit"] {
        if let Some(a) = v.get_mut(side) {
            swap(a);
        }
    }
    for balance in ["balanceBefore", "balanceAfter"] {
        swap(&mut v[balance]["amount"]);
    }
    v
}

#[tokio::test]
async fn every_seed_sample_books_as_documented_verbatim_and_rewritten() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let system = System::start(&db, &nats).await;
    let w = Workspace::new(&db).await;
    // verbatim: the bytes as documented, signed as they are
    for sample in ALL {
        assert_eq!(w.post(&system, "/tx", sample.as_bytes(), None).await.0, 200);
    }
    // the same events again, rewritten, under ids of their own (the payout's two events share one)
    for sample in ALL {
        let id = format!("{}-rewritten", with_id(sample, "")["type"].as_str().unwrap());
        let id = if sample == PAYOUT_COMPLETED || sample == PAYOUT_INITIATED {
            "payout-rewritten".to_owned()
        } else {
            id
        };
        assert_eq!(w.tx(&system, &rewritten(sample, &id)).await, 200);
    }
    wait_settled(&db, 10).await;
    let booked = bookings(&db, w.ws_id).await;
    let expected = [
        ("striga:345c58d7-4f83-4fe1-afd2-24960a5b1e8e:reversal", w.wallet, "0.22"),
        ("striga:60c12078-456f-460a-8cbe-8657edd9b3e2:payout", w.wallet, "-1.00"),
        (
            "striga:6c92c163-938b-4984-9152-d2377bc4d8fb:reversal",
            w.wallet,
            "401.20",
        ),
        ("striga:SEPA_PAYIN_COMPLETED-rewritten:payin", w.savings, "5.00"),
        ("striga:SEPA_PAYOUT_DENIED-rewritten:reversal", w.wallet, "0.22"),
        ("striga:SEPA_PAYOUT_FAILED-rewritten:reversal", w.wallet, "401.20"),
        ("striga:ad8b61cf-ea28-4f2f-a0ee-170b47d3d136:payin", w.savings, "5.00"),
        ("striga:payout-rewritten:payout", w.wallet, "-1.00"),
    ];
    let expected: Vec<(String, Uuid, Decimal)> = expected
        .iter()
        .map(|(r, wallet, a)| (r.to_string(), *wallet, dec(a)))
        .collect();
    assert_eq!(booked, expected);
    let statuses: Vec<&str> =
        sqlx::query_scalar::<_, String>("select status from sepay_webhook_events where ws_id = $1 order by id")
            .bind(w.ws_id)
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|s| if s == "processed" { "p" } else { "x" })
            .collect();
    assert_eq!(statuses, ["p"; 10], "every event processed (settlements book nothing)");
    assert_eq!(
        payout_status(&db, w.ws_id, "60c12078-456f-460a-8cbe-8657edd9b3e2").await,
        "settled"
    );
    assert_eq!(payout_status(&db, w.ws_id, "payout-rewritten").await, "settled");
    assert_eq!(
        payout_status(&db, w.ws_id, "6c92c163-938b-4984-9152-d2377bc4d8fb").await,
        "failed, awaiting initiation"
    );
    assert_eq!(
        payout_status(&db, w.ws_id, "345c58d7-4f83-4fe1-afd2-24960a5b1e8e").await,
        "denied, awaiting initiation"
    );
    // every sample's balances add up: nothing recorded
    assert_eq!(count(&db.pool, "striga_balance_mismatches").await, 0);
}

#[tokio::test]
async fn payout_events_out_of_order_end_consistent() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let system = System::start(&db, &nats).await;
    let w = Workspace::new(&db).await;
    // settled: COMPLETED arrives before INITIATED
    assert_eq!(w.tx(&system, &with_id(PAYOUT_COMPLETED, "late-start")).await, 200);
    wait_settled(&db, 1).await;
    assert_eq!(
        payout_status(&db, w.ws_id, "late-start").await,
        "completed, awaiting initiation"
    );
    assert_eq!(w.tx(&system, &with_id(PAYOUT_INITIATED, "late-start")).await, 200);
    // failed: FAILED (the money back) before INITIATED (the money out), same amount
    let mut failed = with_id(PAYOUT_FAILED, "bounced");
    failed["credit"] = json!("100");
    failed["balanceBefore"]["amount"] = json!("199900");
    failed["balanceAfter"]["amount"] = json!("200000");
    assert_eq!(w.tx(&system, &failed).await, 200);
    assert_eq!(w.tx(&system, &with_id(PAYOUT_INITIATED, "bounced")).await, 200);
    // and INITIATED again: a repeat
    assert_eq!(w.tx(&system, &with_id(PAYOUT_INITIATED, "bounced")).await, 200);
    wait_settled(&db, 4).await;
    assert_eq!(payout_status(&db, w.ws_id, "late-start").await, "settled");
    assert_eq!(payout_status(&db, w.ws_id, "bounced").await, "failed");
    let booked = bookings(&db, w.ws_id).await;
    let refs: Vec<(&str, Decimal)> = booked.iter().map(|(r, _, a)| (r.as_str(), *a)).collect();
    assert_eq!(
        refs,
        [
            ("striga:bounced:payout", dec("-1.00")),
            ("striga:bounced:reversal", dec("1.00")),
            ("striga:late-start:payout", dec("-1.00")),
        ]
    );
    let net: Decimal = booked
        .iter()
        .filter(|(r, ..)| r.contains("bounced"))
        .map(|(.., a)| a)
        .sum();
    assert!(net.is_zero(), "a failed payout nets to zero: {net}");
}

/// Striga's fee (`feeEur`): its own row, linked to the event by reference, only where the balances
/// show it left the wallet beside the debit; a fee inside the debit is not booked again, and a
/// repeat of the event books neither row twice.
#[tokio::test]
async fn a_fee_outside_the_debit_is_booked_once_as_its_own_row() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let system = System::start(&db, &nats).await;
    let w = Workspace::new(&db).await;
    // 1.00 out, 0.25 fee beside it: 2000.00 → 1998.75
    let mut beside = with_id(PAYOUT_INITIATED, "fee-beside");
    beside["feeEur"] = json!(25);
    beside["balanceAfter"]["amount"] = json!(199875);
    // 1.25 out with the 0.25 fee inside it: 2000.00 → 1998.75
    let mut inside = with_id(PAYOUT_INITIATED, "fee-inside");
    inside["debit"] = json!(125);
    inside["feeEur"] = json!("25");
    inside["balanceAfter"]["amount"] = json!(199875);
    for body in [&beside, &inside] {
        assert_eq!(w.tx(&system, body).await, 200);
    }
    wait_settled(&db, 2).await;
    // Striga repeats the first (a second delivery of the stored event): nothing more is booked
    assert_eq!(w.tx(&system, &beside).await, 200);
    let booked = bookings(&db, w.ws_id).await;
    let refs: Vec<(&str, Decimal)> = booked.iter().map(|(r, _, a)| (r.as_str(), *a)).collect();
    assert_eq!(
        refs,
        [
            ("striga:fee-beside:SEPA_PAYOUT_INITIATED:fee", dec("-0.25")),
            ("striga:fee-beside:payout", dec("-1.00")),
            ("striga:fee-inside:payout", dec("-1.25")),
        ]
    );
    assert!(booked.iter().all(|(_, wallet, _)| *wallet == w.wallet));
    let (category, classified_by): (String, String) = sqlx::query_as(
        "select c.name, t.classified_by from wallet_transactions t join transaction_categories c on c.id = t.category_id
          where t.external_ref like '%:fee'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((category.as_str(), classified_by.as_str()), ("Bank fees", "fee"));
    // the balances agree with the fee row: no mismatch recorded
    let mismatches: i64 = sqlx::query_scalar("select count(*) from striga_balance_mismatches")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(mismatches, 0);
}

/// `sepay-dev striga-trigger`: the documented webhooks, signed as Striga signs them, posted to an
/// endpoint: all five book as documented; `--new-id` books a payin again as a new transaction.
// multi-threaded: the blocking `sepay-dev` calls must not stall the in-process ingress
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn striga_trigger_sends_the_documented_webhooks_signed() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let system = System::start(&db, &nats).await;
    let w = Workspace::new(&db).await;
    let url = format!("{}/api/v1/webhooks/striga/{}", system.url, w.token);
    let sent = common::sepay_dev(
        &db,
        &nats,
        &["striga-trigger", "all", "--url", &url, "--striga-api-key", API_KEY],
    );
    let statuses: Vec<u64> = sent["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200; 5], "{sent}");
    wait_settled(&db, 5).await;
    assert_eq!(bookings(&db, w.ws_id).await.len(), 4);
    let again = common::sepay_dev(
        &db,
        &nats,
        &[
            "striga-trigger",
            "payin-completed",
            "--new-id",
            "--url",
            &url,
            "--striga-api-key",
            API_KEY,
        ],
    );
    assert_ne!(
        again["sent"][0]["id"],
        json!("ad8b61cf-ea28-4f2f-a0ee-170b47d3d136"),
        "{again}"
    );
    wait_settled(&db, 6).await;
    assert_eq!(bookings(&db, w.ws_id).await.len(), 5);
    // a wrong key: refused, and the command says so
    let refused = std::process::Command::new(sepay_testkit::bin("sepay-dev"))
        .args([
            "striga-trigger",
            "payin-completed",
            "--url",
            &url,
            "--striga-api-key",
            "not-the-key",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refused"));
}

#[tokio::test]
async fn repeats_are_booked_once_and_bad_signatures_store_nothing() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let system = System::start(&db, &nats).await;
    let w = Workspace::new(&db).await;
    let sepay = Seeded::new(&db.pool).await;

    // eight concurrent copies, then a late one
    let body = PAYIN_COMPLETED.as_bytes();
    let answers = futures::future::join_all((0..8).map(|_| w.post(&system, "/tx", body, None))).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    wait_settled(&db, 1).await;
    assert_eq!(
        w.post(&system, "/tx", body, None).await,
        (200, json!({"success": true, "duplicate": true}))
    );
    assert_eq!(count(&db.pool, "wallet_transactions").await, 1);

    // refused, and nothing stored: wrong key, tampered body, no signature, garbage signature
    let events_before = count(&db.pool, "sepay_webhook_events").await;
    let other = with_id(PAYIN_COMPLETED, "never-stored").to_string();
    let wrong_key = striga_signature(b"another key", other.as_bytes());
    let tampered = striga_signature(API_KEY.as_bytes(), PAYIN_COMPLETED.as_bytes());
    for signature in [wrong_key.as_str(), tampered.as_str(), "", "zz", &"a".repeat(4_000)] {
        let (status, answer) = w.post(&system, "/tx", other.as_bytes(), Some(signature)).await;
        assert_eq!(status, 401, "{signature:.20}: {answer}");
        assert_eq!(answer["error"]["code"], "unauthorized");
    }
    // a head over the 8 KiB every listener reads is refused before any handler runs
    let (status, _) = w
        .post(&system, "/tx", other.as_bytes(), Some(&"a".repeat(10_000)))
        .await;
    assert_eq!(status, 431);
    // a SePay token on the Striga route, and the Striga token on SePay's, are unknown tokens
    let (status, _) = Workspace {
        token: sepay.token.clone(),
        ..w.clone_ids()
    }
    .post(&system, "/tx", other.as_bytes(), None)
    .await;
    assert_eq!(status, 401);
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/sepay/{}", system.url, w.token))
        .header("authorization", sepay.authorization())
        .json(&delivery(1, "in", json!(1000)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(count(&db.pool, "sepay_webhook_events").await, events_before);

    // Striga's sample receiver signs the compact JSON: a pretty-printed body signed so is accepted
    let pretty = serde_json::to_string_pretty(&with_id(PAYIN_COMPLETED, "pretty")).unwrap();
    let compact = with_id(PAYIN_COMPLETED, "pretty").to_string();
    let signature = striga_signature(API_KEY.as_bytes(), compact.as_bytes());
    let (status, _) = w.post(&system, "/tx", pretty.as_bytes(), Some(&signature)).await;
    assert_eq!(status, 200, "signed over the compact form, sent pretty");
    // the whitespace variants one signature covers are the same JSON: the same event, never a
    // second booking (the only bytes a signature over the compact form leaves free)
    let tabbed = pretty.replace("  ", "\t");
    assert_ne!(tabbed, pretty);
    let events = count(&db.pool, "sepay_webhook_events").await;
    let (status, _) = w.post(&system, "/tx", tabbed.as_bytes(), Some(&signature)).await;
    assert_eq!(status, 200, "a repeat (in flight or a duplicate), not a new event");
    assert_eq!(count(&db.pool, "sepay_webhook_events").await, events);
    // a variant that changes anything but whitespace is refused
    let altered = compact.replacen("\"pretty\"", "\"pretty2\"", 1);
    assert_ne!(altered, compact);
    assert_eq!(
        w.post(&system, "/tx", altered.as_bytes(), Some(&signature)).await.0,
        401
    );

    // the dashboard's ping: answered when signed, never stored
    let before = count(&db.pool, "sepay_webhook_events").await;
    assert_eq!(
        w.post(&system, "/ping", b"{\"ping\":true}", None).await,
        (200, json!({"success": true}))
    );
    assert_eq!(w.post(&system, "/ping", b"{\"ping\":true}", Some("00")).await.0, 401);
    assert_eq!(count(&db.pool, "sepay_webhook_events").await, before);

    // a signed body that is not JSON is kept (nothing authenticated is lost) and refused
    let (status, answer) = w.post(&system, "/tx", b"not json", None).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_payload"))
    );
}

impl Workspace {
    fn clone_ids(&self) -> Self {
        Self {
            ws_id: self.ws_id,
            wallet: self.wallet,
            savings: self.savings,
            token: self.token.clone(),
        }
    }
}

#[tokio::test]
async fn an_unlinked_or_wrong_currency_wallet_fails_the_event_and_a_mismatch_is_recorded() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let system = System::start(&db, &nats).await;
    let w = Workspace::new(&db).await;
    let vnd = sepay_store::workspaces::create_wallet(&db.pool, w.ws_id, "VND", "VND")
        .await
        .unwrap();
    // a VND wallet cannot be linked (nor be an endpoint's default) ...
    let refused = sepay_store::striga::link_wallet(&db.pool, w.ws_id, "c667bd515ad34f1ef53c2d4b253dc51c", vnd.id).await;
    assert!(
        matches!(refused, Err(sepay_store::StoreError::Rejected { .. })),
        "{refused:?}"
    );
    // ... and one linked before that check (here by hand) fails the event rather than book cents as dong
    sqlx::query("insert into striga_wallet_links (ws_id, striga_ref, wallet_id) values ($1, $2, $3)")
        .bind(w.ws_id)
        .bind("c667bd515ad34f1ef53c2d4b253dc51c")
        .bind(vnd.id)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(w.tx(&system, &serde_json::from_str(PAYOUT_FAILED).unwrap()).await, 200);
    // a denial whose balances do not add up is booked as sent, and the mismatch recorded
    let mut denied: Value = serde_json::from_str(PAYOUT_DENIED).unwrap();
    denied["balanceAfter"]["amount"] = json!("10074549");
    assert_eq!(w.tx(&system, &denied).await, 200);
    let failure = eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, Option<String>>(
            "select failure_reason from sepay_webhook_events where dedupe_key like '%SEPA_PAYOUT_FAILED'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(failure.as_deref(), Some("wallet_currency_mismatch"));
    wait_settled(&db, 2).await;
    let mismatches = sepay_store::striga::balance_mismatches(&db.pool, w.ws_id, 10)
        .await
        .unwrap();
    assert_eq!(
        mismatches.iter().map(|m| (m.expected, m.actual)).collect::<Vec<_>>(),
        [(dec("100745.48"), dec("100745.49"))]
    );
    assert_eq!(
        bookings(&db, w.ws_id).await,
        [(
            "striga:345c58d7-4f83-4fe1-afd2-24960a5b1e8e:reversal".to_owned(),
            w.wallet,
            dec("0.22")
        )]
    );
}

#[tokio::test]
async fn sepay_and_striga_deliveries_book_side_by_side_into_one_workspace() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let system = System::start(&db, &nats).await;
    let sepay = Seeded::new(&db.pool).await;
    let w = Workspace::in_workspace(&db, sepay.ws_id).await;
    const N: i64 = 100;
    let http = reqwest::Client::new();
    let sepay_posts = (1..=N).map(|n| {
        let (http, url) = (http.clone(), format!("{}{}", system.url, sepay.path()));
        let auth = sepay.authorization();
        async move {
            let res = http
                .post(url)
                .header("authorization", auth)
                .json(&delivery(900_000 + n, "in", json!(1000 * n)))
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        }
    });
    let striga_posts = (1..=N).map(|n| {
        let mut payin = with_id(PAYIN_COMPLETED, &format!("mixed-{n}"));
        payin["credit"] = json!(n.to_string());
        payin["balanceAfter"]["amount"] = json!((979_900 + n).to_string());
        let (w, system) = (&w, &system);
        async move { w.tx(system, &payin).await }
    });
    // interleaved, 16 in flight (a sender's bound, not a flood)
    use futures::StreamExt;
    let posts: Vec<futures::future::BoxFuture<'_, u16>> = sepay_posts
        .map(|f| Box::pin(f) as futures::future::BoxFuture<'_, u16>)
        .zip(striga_posts.map(|f| Box::pin(f) as futures::future::BoxFuture<'_, u16>))
        .flat_map(|(a, b)| [a, b])
        .collect();
    let statuses: Vec<u16> = futures::stream::iter(posts).buffer_unordered(16).collect().await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    wait_settled(&db, 2 * N).await;
    let per_wallet: Vec<(Uuid, i64, Decimal)> = sqlx::query_as(
        "select wallet_id, count(*), sum(amount) from wallet_transactions where ws_id = $1 group by 1 order by 2, 3",
    )
    .bind(sepay.ws_id)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    // VND: 1000 × (1 + … + 100); EUR (Savings, linked by accountId): (1 + … + 100) cents
    let mut expected = vec![
        (sepay.wallet_id, N, Decimal::from(1000 * N * (N + 1) / 2)),
        (w.savings, N, Decimal::new(N * (N + 1) / 2, 2)),
    ];
    expected.sort_by_key(|(_, n, sum)| (*n, *sum));
    assert_eq!(per_wallet, expected);
    let sources: Vec<(String, i64)> =
        sqlx::query_as("select source, count(*) from wallet_transactions group by 1 order by 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(sources, [("sepay".to_owned(), N), ("striga".to_owned(), N)]);
}

/// `sepayctl striga …` as an operator uses it: an endpoint from STRIGA_API_KEY, an account
/// link, then the payouts and mismatches the deliveries left.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_creates_an_endpoint_links_an_account_and_shows_payouts() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let system = System::start(&db, &nats).await;
    let ws = sepay_store::workspaces::create_workspace(&db.pool, "CLI")
        .await
        .unwrap();
    let wallet = sepay_store::workspaces::create_wallet(&db.pool, ws.id, "EUR", "EUR")
        .await
        .unwrap();
    let sepayctl = |args: &[&str]| {
        common::json_answer(
            std::process::Command::new(sepay_testkit::bin("sepayctl"))
                .env("SEPAY_DEV_MODE", "true")
                .arg("--json")
                .args(args)
                .env("DATABASE_URL", &db.config.database_url)
                .env("PUBLIC_BASE_URL", &system.url)
                .env("STRIGA_API_KEY", API_KEY)
                .env_remove("SEPAY_TOKEN_KEYS"),
        )
    };
    let (ws_id, wallet_id) = (ws.id.to_string(), wallet.id.to_string());
    let created = sepayctl(&["striga", "endpoint", "--ws", &ws_id]);
    let url = created["webhook_url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/api/v1/webhooks/striga/", system.url)),
        "{url}"
    );
    assert!(created.get("api_key").is_none(), "no key of ours to show: {created}");
    let owner = "eda728dc-ed0f-48d9-8d81-57dbdc669a46";
    sepayctl(&[
        "striga",
        "link",
        "--ws",
        &ws_id,
        "--account",
        owner,
        "--wallet",
        &wallet_id,
    ]);
    assert_eq!(sepayctl(&["striga", "links", "--ws", &ws_id])[0]["striga_ref"], owner);
    for sample in [PAYOUT_INITIATED, PAYOUT_COMPLETED] {
        let res = reqwest::Client::new()
            .post(format!("{url}/tx"))
            .header("signature", striga_signature(API_KEY.as_bytes(), sample.as_bytes()))
            .body(sample)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    wait_settled(&db, 2).await;
    let payouts = sepayctl(&["striga", "payouts", "--ws", &ws_id]);
    assert_eq!(payouts[0]["payout_id"], "60c12078-456f-460a-8cbe-8657edd9b3e2");
    assert_eq!(payouts[0]["status"], "settled");
    assert_eq!(payouts[0]["debit"], "-1.00");
    assert_eq!(sepayctl(&["striga", "mismatches", "--ws", &ws_id]), json!([]));
    // a rotation gives a new URL and nothing else to paste into Striga
    let endpoint_id = created["endpoint"]["id"].as_str().unwrap().to_owned();
    let rotated = sepayctl(&["endpoint", "rotate", &endpoint_id]);
    let new_url = rotated["webhook_url"].as_str().unwrap();
    assert!(
        new_url.contains("/api/v1/webhooks/striga/") && new_url != url,
        "{rotated}"
    );
    assert!(rotated.get("api_key").is_none(), "{rotated}");
    // and Striga's signatures keep working on it: the successor kept the sealed key
    let res = reqwest::Client::new()
        .post(format!("{new_url}/tx"))
        .header(
            "signature",
            striga_signature(API_KEY.as_bytes(), PAYIN_COMPLETED.as_bytes()),
        )
        .body(PAYIN_COMPLETED)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
}
