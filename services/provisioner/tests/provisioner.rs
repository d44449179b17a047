//! The provisioner against sepay-sim, the real Postgres and NATS, and (for the delivery loops)
//! the real ingress and processor.

use sepay_api::{SepayClient, SepayConfig};
use sepay_bus::{ControlRequest, ControlSubject, NatsConfig};
use sepay_provisioner::{Provisioner, ProvisionerConfig};
use sepay_sim::{RetryAfterStyle, SimConfig};
use sepay_testkit::{TestDb, count, eventually, test_bus};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const REDIRECT: &str = "http://127.0.0.1:9/callback";

struct World {
    db: TestDb,
    nats: NatsConfig,
    sim: String,
    http: reqwest::Client,
    company: i64,
    ws_id: Uuid,
    config: ProvisionerConfig,
    stop: CancellationToken,
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl World {
    /// A simulator with a company and OAuth client, a workspace connected to it through the real
    /// code flow (PKCE, `oauth2` crate), and a provisioner configuration pointing at both.
    async fn new(sim_config: SimConfig) -> Self {
        Self::start(sim_config, None).await
    }

    /// Like `new`, for a company the simulator's fixture already holds.
    async fn new_for_company(sim_config: SimConfig, company: i64) -> Self {
        Self::start(sim_config, Some(company)).await
    }

    async fn start(sim_config: SimConfig, existing_company: Option<i64>) -> Self {
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = format!("http://{}", listener.local_addr().unwrap());
        let sim_config = SimConfig {
            sim_auto_approve: true,
            sim_time_scale: 0.001,
            ..sim_config
        };
        tokio::spawn(sepay_sim::serve(listener, sim_config, stop.clone()));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let control = sepay_sim::client::SimClient {
            base: sim.clone(),
            http: http.clone(),
        };
        let post = |path: &'static str, body: Value| {
            let control = &control;
            async move { control.post(path, body).await.unwrap() }
        };
        let company = match existing_company {
            Some(id) => id,
            None => post("/sim/companies", json!({"name": "Cty Demo"})).await["id"]
                .as_i64()
                .unwrap(),
        };
        let client = post(
            "/sim/oauth-clients",
            json!({"company_id": company, "redirect_uris": [REDIRECT]}),
        )
        .await;
        let db = TestDb::new().await;
        let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
        let ws_id = sepay_store::workspaces::create_workspace(&db.pool, "Shop")
            .await
            .unwrap()
            .id;
        let sepay = SepayConfig {
            sepay_base_url: sim.clone(),
            sepay_client_id: client["client_id"].as_str().unwrap().into(),
            sepay_client_secret: client["client_secret"].as_str().unwrap().into(),
            sepay_requests_per_sec: 200,
            sepay_max_retry_wait_secs: 2,
            ..Default::default()
        };
        let config = ProvisionerConfig {
            public_base_url: "http://127.0.0.1:9".into(),
            sepay,
            ..Default::default()
        };
        let world = Self {
            db,
            nats,
            sim,
            http,
            company,
            ws_id,
            config,
            stop,
        };
        world.connect().await;
        world
    }

    async fn connect(&self) {
        let client = SepayClient::new(&self.config.sepay);
        let request = client.authorize_request(REDIRECT).unwrap();
        let redirect = self.http.get(&request.url).send().await.unwrap();
        let location = url::Url::parse(redirect.headers()["location"].to_str().unwrap()).unwrap();
        let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
        assert_eq!(pairs.get("state"), Some(&request.state));
        let tokens = client
            .exchange_code(&pairs["code"], &request.pkce_verifier, REDIRECT)
            .await
            .unwrap();
        let provisioner = self.provisioner().await;
        provisioner.tokens.store_grant(self.ws_id, &tokens).await.unwrap();
    }

    async fn provisioner(&self) -> Arc<Provisioner> {
        let bus = sepay_bus::Bus::connect(&self.nats).await.unwrap();
        Provisioner::new(self.config.clone(), self.db.pool.clone(), bus).unwrap()
    }

    /// The simulator's control API, through the client `sepay-dev sim` uses.
    fn sim_client(&self) -> sepay_sim::client::SimClient {
        sepay_sim::client::SimClient {
            base: self.sim.clone(),
            http: self.http.clone(),
        }
    }

    async fn sim_post(&self, path: &str, body: Value) -> Value {
        self.sim_client().post(path, body).await.unwrap()
    }

    async fn sim_state(&self) -> Value {
        self.sim_client().get("/sim/state").await.unwrap()
    }

    async fn accounts(&self, n: usize) -> Vec<i64> {
        let mut ids = Vec::new();
        for i in 0..n {
            let body = json!({"company_id": self.company, "account_number": format!("0071{i:09}"), "bank_short_name": "MBBank"});
            ids.push(self.sim_post("/sim/bank-accounts", body).await["id"].as_i64().unwrap());
        }
        ids
    }

    async fn live_endpoints(&self) -> i64 {
        sqlx::query_scalar(
            "select count(*) from sepay_webhook_endpoints where status = 'active' and sepay_webhook_id is not null",
        )
        .fetch_one(&self.db.pool)
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn sync_pages_through_every_account_and_provisions_one_webhook_each_idempotently() {
    for n in [0usize, 1, 100, 101, 250] {
        let w = World::new(SimConfig {
            sim_rate_limit_per_sec: 1000,
            ..Default::default()
        })
        .await;
        w.accounts(n).await;
        let p = w.provisioner().await;
        let first = sepay_provisioner::sync_and_provision(&p, w.ws_id).await.unwrap();
        assert_eq!(
            (first.accounts, first.wallets_created, first.provisioned),
            (n, n, n),
            "{n} accounts"
        );
        assert_eq!(count(&w.db.pool, "sepay_wallet_links").await, n as i64);
        assert_eq!(w.live_endpoints().await, n as i64);
        assert_eq!(w.sim_state().await["webhooks"].as_array().unwrap().len(), n);
        // again: nothing new, no second webhook
        let again = sepay_provisioner::sync_and_provision(&p, w.ws_id).await.unwrap();
        assert_eq!(
            (again.provisioned, again.already_provisioned, again.wallets_created),
            (0, n, 0),
            "{n} accounts, rerun"
        );
        assert_eq!(w.sim_state().await["webhooks"].as_array().unwrap().len(), n);
        if n == 1 {
            let hook = &w.sim_state().await["webhooks"][0];
            assert_eq!(
                (hook["authen_type"].as_str(), hook["event_type"].as_str()),
                (Some("Api_Key"), Some("All"))
            );
            assert_eq!(hook["request_content_type"], "Json");
            assert!(
                hook["webhook_url"]
                    .as_str()
                    .unwrap()
                    .starts_with("http://127.0.0.1:9/api/v1/webhooks/sepay/spwh_")
            );
            let name: String = sqlx::query_scalar("select name from wallets")
                .fetch_one(&w.db.pool)
                .await
                .unwrap();
            assert_eq!(name, "MBBank 0000");
            let synced: Option<chrono::DateTime<chrono::Utc>> =
                sqlx::query_scalar("select last_synced_at from sepay_connections")
                    .fetch_one(&w.db.pool)
                    .await
                    .unwrap();
            assert!(synced.is_some());
        }
    }
}

#[tokio::test]
async fn sync_honours_429_in_both_header_forms_and_fails_with_a_reason_when_it_persists() {
    for style in [RetryAfterStyle::V1, RetryAfterStyle::V2] {
        let w = World::new(SimConfig {
            sim_retry_after_style: style,
            sim_rate_limit_per_sec: 1000,
            ..Default::default()
        })
        .await;
        w.accounts(2).await;
        w.sim_post("/sim/faults", json!({"api_429": 2})).await;
        let started = std::time::Instant::now();
        let outcome = sepay_provisioner::sync_and_provision(&*w.provisioner().await, w.ws_id)
            .await
            .unwrap();
        assert_eq!(outcome.provisioned, 2, "{style:?}");
        // the simulator asks for 1 s per 429
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "{style:?}: waited {:?}",
            started.elapsed()
        );
    }
    let w = World::new(SimConfig {
        sim_rate_limit_per_sec: 1000,
        ..Default::default()
    })
    .await;
    w.accounts(1).await;
    w.sim_post("/sim/faults", json!({"api_429": 50})).await;
    let err = sepay_provisioner::sync_and_provision(&*w.provisioner().await, w.ws_id)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("429"), "{err:#}");
    let reason: Option<String> = sqlx::query_scalar("select last_sync_error from sepay_connections")
        .fetch_one(&w.db.pool)
        .await
        .unwrap();
    assert!(reason.unwrap().contains("rate limit"));
}

#[tokio::test]
async fn ten_thousand_accounts_are_listed_page_by_page() {
    let path = std::env::temp_dir().join(format!("sim-10k-{}.json", Uuid::new_v4()));
    let accounts: Vec<Value> = (1..=10_000)
        .map(|i| json!({"id": i, "company_id": 1, "account_number": format!("99{i:08}")}))
        .collect();
    std::fs::write(
        &path,
        json!({"companies": [{"id": 1, "name": "Big Co"}], "bank_accounts": accounts}).to_string(),
    )
    .unwrap();
    let sim_config = SimConfig {
        sim_rate_limit_per_sec: 10_000,
        sim_fixture: Some(path.clone()),
        ..Default::default()
    };
    let w = World::new_for_company(sim_config, 1).await;
    let p = w.provisioner().await;
    let token = p.tokens.access_token(w.ws_id).await.unwrap();
    let started = std::time::Instant::now();
    let listed = p.tokens.client().list_bank_accounts(&token).await.unwrap();
    assert_eq!(listed.len(), 10_000);
    assert_eq!(listed.last().unwrap().account_number, "9900010000");
    println!("10 000 accounts in 100 pages listed in {:?}", started.elapsed());
    std::fs::remove_file(path).ok();
}

#[tokio::test]
async fn accounts_gone_from_sepay_are_marked_inactive_not_deleted() {
    let w = World::new(SimConfig {
        sim_rate_limit_per_sec: 1000,
        ..Default::default()
    })
    .await;
    let ids = w.accounts(3).await;
    let p = w.provisioner().await;
    sepay_provisioner::sync_and_provision(&p, w.ws_id).await.unwrap();
    let closed = w
        .http
        .delete(format!("{}/sim/bank-accounts/{}", w.sim, ids[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 204);
    let outcome = sepay_provisioner::sync_and_provision(&p, w.ws_id).await.unwrap();
    assert_eq!(outcome.deactivated, 1);
    let links: Vec<(String, bool)> =
        sqlx::query_as("select sepay_bank_account_id, active from sepay_wallet_links order by sepay_bank_account_id")
            .fetch_all(&w.db.pool)
            .await
            .unwrap();
    assert_eq!(
        links,
        [
            (ids[0].to_string(), true),
            (ids[1].to_string(), false),
            (ids[2].to_string(), true)
        ]
    );
}

#[tokio::test]
async fn an_admin_mapping_survives_a_resync() {
    let w = World::new(SimConfig {
        sim_rate_limit_per_sec: 1000,
        ..Default::default()
    })
    .await;
    w.accounts(1).await;
    let p = w.provisioner().await;
    sepay_provisioner::sync_and_provision(&p, w.ws_id).await.unwrap();
    let chosen = sepay_store::workspaces::create_wallet(&w.db.pool, w.ws_id, "Chosen", "VND")
        .await
        .unwrap();
    sqlx::query("update sepay_wallet_links set wallet_id = $1")
        .bind(chosen.id)
        .execute(&w.db.pool)
        .await
        .unwrap();
    sepay_provisioner::sync_and_provision(&p, w.ws_id).await.unwrap();
    let wallet: Uuid = sqlx::query_scalar("select wallet_id from sepay_wallet_links")
        .fetch_one(&w.db.pool)
        .await
        .unwrap();
    assert_eq!(wallet, chosen.id);
}

#[tokio::test]
async fn a_remote_webhook_is_deleted_when_it_cannot_be_stored_locally() {
    let w = World::new(SimConfig {
        sim_rate_limit_per_sec: 1000,
        ..Default::default()
    })
    .await;
    w.accounts(1).await;
    // make local persistence fail (a real Postgres error, from a trigger this test installs)
    sqlx::raw_sql(
        "create function refuse() returns trigger language plpgsql as $$ begin raise exception 'disk full'; end $$;
         create trigger refuse before insert on sepay_webhook_endpoints for each row execute function refuse();",
    )
    .execute(&w.db.pool)
    .await
    .unwrap();
    let p = w.provisioner().await;
    let err = sepay_provisioner::sync_and_provision(&p, w.ws_id).await.unwrap_err();
    assert!(format!("{err:#}").contains("could not be provisioned"), "{err:#}");
    assert_eq!(
        w.sim_state().await["webhooks"],
        json!([]),
        "the remote webhook was deleted"
    );
    sqlx::raw_sql("drop trigger refuse on sepay_webhook_endpoints")
        .execute(&w.db.pool)
        .await
        .unwrap();
    assert_eq!(
        sepay_provisioner::sync_and_provision(&p, w.ws_id)
            .await
            .unwrap()
            .provisioned,
        1
    );
    assert_eq!(w.sim_state().await["webhooks"].as_array().unwrap().len(), 1);
}

/// The real ingress and processor, with the provisioner's public URL pointing at the ingress.
async fn start_pipeline(w: &mut World) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    w.config.public_base_url = format!("http://{}", listener.local_addr().unwrap());
    let bus = sepay_bus::Bus::connect(&w.nats).await.unwrap();
    let ingress = sepay_ingress::IngressConfig {
        relay_interval_ms: 100,
        relay_min_age_ms: 200,
        ..Default::default()
    };
    tokio::spawn(sepay_ingress::serve(
        listener,
        None,
        ingress,
        w.db.pool.clone(),
        bus.clone(),
        w.stop.clone(),
    ));
    let processor = sepay_processor::ProcessorConfig::default();
    tokio::spawn(sepay_processor::consume(
        processor,
        w.db.pool.clone(),
        bus,
        Arc::new(sepay_processor::FallbackOnly),
        w.stop.clone(),
    ));
}

async fn booked(w: &World) -> i64 {
    count(&w.db.pool, "wallet_transactions").await
}

async fn wait_booked(w: &World, n: i64) {
    let done = eventually(Duration::from_secs(15), || async {
        (booked(w).await >= n).then_some(())
    })
    .await;
    assert!(done.is_some(), "expected {n} bookings, have {}", booked(w).await);
}

#[tokio::test]
async fn rotation_keeps_deliveries_flowing_and_the_old_token_works_until_its_grace_ends() {
    let (w, account, p) = provisioned_world(|_| {}).await;
    let before = w.sim_state().await["webhooks"][0].clone();
    let tx = |amount: i64| {
        w.sim_post(
            "/sim/transactions",
            json!({"bank_account_id": account, "transfer_type": "in", "amount": amount}),
        )
    };
    for amount in 1..=3 {
        tx(amount).await;
    }
    let old_endpoint: Uuid = sqlx::query_scalar("select id from sepay_webhook_endpoints")
        .fetch_one(&w.db.pool)
        .await
        .unwrap();
    sepay_provisioner::rotate(&p, w.ws_id, old_endpoint).await.unwrap();
    for amount in 4..=6 {
        tx(amount).await;
    }
    wait_booked(&w, 6).await;
    let after = w.sim_state().await["webhooks"][0].clone();
    assert_eq!(after["id"], before["id"], "the same SePay webhook, patched");
    assert_ne!(after["webhook_url"], before["webhook_url"]);
    assert_ne!(after["api_key"], before["api_key"]);
    // the old token and key still work during the grace period
    let mut direct = sepay_testkit::delivery(990_001, "in", json!(5));
    direct["accountNumber"] = json!("0071000000000");
    let old_post = || {
        w.http
            .post(before["webhook_url"].as_str().unwrap())
            .header(
                "authorization",
                format!("Apikey {}", before["api_key"].as_str().unwrap()),
            )
            .json(&direct)
            .send()
    };
    assert_eq!(old_post().await.unwrap().status(), 200);
    sqlx::query("update sepay_webhook_endpoints set grace_until = now() - interval '1 second' where id = $1")
        .bind(old_endpoint)
        .execute(&w.db.pool)
        .await
        .unwrap();
    // the ingress's in-memory directory learns of it by LISTEN/NOTIFY within a second
    let refused = sepay_testkit::eventually(Duration::from_secs(1), || async {
        (old_post().await.unwrap().status() == 401).then_some(())
    })
    .await;
    assert!(refused.is_some(), "the old token still works after its grace");
    let deliveries: Vec<Value> = w
        .http
        .get(format!("{}/sim/deliveries", w.sim))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        deliveries.iter().all(|d| d["status"] == 200),
        "no delivery lost: {deliveries:?}"
    );
    wait_booked(&w, 7).await;
}

#[tokio::test]
async fn reconciliation_recovers_dropped_webhooks_without_double_booking_late_ones() {
    let (w, account, p) = provisioned_world(|_| {}).await;
    let tx = |amount: i64| {
        w.sim_post(
            "/sim/transactions",
            json!({"bank_account_id": account, "transfer_type": "out", "amount": amount}),
        )
    };
    // two deliveries lost, three delivered
    w.sim_post("/sim/faults", json!({"drop_deliveries": 2})).await;
    for amount in 1..=5 {
        tx(amount).await;
    }
    wait_booked(&w, 3).await;
    // two more that will arrive late: after reconciliation has booked them
    w.sim_post("/sim/faults", json!({"delay_deliveries_ms": 1500})).await;
    for amount in 6..=7 {
        tx(amount).await;
    }
    let outcome = sepay_provisioner::reconcile_requested(&p, &ControlRequest::workspace(w.ws_id))
        .await
        .unwrap();
    assert_eq!((outcome.fetched, outcome.inserted), (7, 4));
    wait_booked(&w, 7).await;
    // the late deliveries land as duplicates
    let late = eventually(Duration::from_secs(10), || async {
        let deliveries: Vec<Value> = w
            .http
            .get(format!("{}/sim/deliveries", w.sim))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let answered: Vec<&Value> = deliveries.iter().filter(|d| d["status"] == 200).collect();
        (answered.len() == 5).then(|| {
            answered
                .iter()
                .filter(|d| d["response_body"].as_str().unwrap_or("").contains("duplicate"))
                .count()
        })
    })
    .await;
    assert_eq!(late, Some(2), "both late webhooks answered as duplicates");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(booked(&w).await, 7);
    let total = booked_sum(&w).await;
    assert_eq!(total, rust_decimal::Decimal::from(-28));
    let run = sepay_store::provisioning::get_run(&w.db.pool, outcome.run_id)
        .await
        .unwrap();
    assert_eq!((run.status.as_str(), run.fetched, run.inserted), ("succeeded", 7, 4));
    // a second run finds nothing missing
    let again = sepay_provisioner::reconcile_requested(&p, &ControlRequest::workspace(w.ws_id))
        .await
        .unwrap();
    assert_eq!(again.inserted, 0);
}

/// A world with the ingress and processor running, one bank account and its webhook
/// provisioned, the provisioner's settings adjusted by `tweak` first.
async fn provisioned_world(tweak: impl FnOnce(&mut ProvisionerConfig)) -> (World, i64, Arc<Provisioner>) {
    let mut w = World::new(SimConfig {
        sim_rate_limit_per_sec: 1000,
        ..Default::default()
    })
    .await;
    start_pipeline(&mut w).await;
    tweak(&mut w.config);
    let account = w.accounts(1).await[0];
    let p = w.provisioner().await;
    sepay_provisioner::sync_and_provision(&p, w.ws_id).await.unwrap();
    (w, account, p)
}

/// An incoming (`in`) or outgoing (`out`) transfer on `account`, made at the simulated bank.
async fn transfer(w: &World, account: i64, kind: &str, amount: i64) {
    w.sim_post(
        "/sim/transactions",
        json!({"bank_account_id": account, "transfer_type": kind, "amount": amount}),
    )
    .await;
}

/// A provisioned account whose gaps are reconciled at once (no grace) and no scheduled
/// reconciliation: only the balance check can find a lost webhook.
async fn gap_world() -> (World, i64, Arc<Provisioner>) {
    provisioned_world(|c| {
        c.reconcile_interval_secs = 0;
        c.balance_gap_grace_secs = 0;
    })
    .await
}

/// The sum of every booked amount.
async fn booked_sum(w: &World) -> rust_decimal::Decimal {
    sqlx::query_scalar("select sum(amount) from wallet_transactions")
        .fetch_one(&w.db.pool)
        .await
        .unwrap()
}

/// SePay loses a webhook: the next delivery on that account shows a break in the running
/// balance, and the gap's reconciliation (just that span) books the lost transaction; no hourly
/// schedule needed.
#[tokio::test]
async fn a_lost_webhook_is_found_by_the_balance_of_the_next_one() {
    let (w, account, p) = gap_world().await;
    let tx = |amount: i64| transfer(&w, account, "in", amount);
    tx(1000).await;
    wait_booked(&w, 1).await;
    w.sim_post("/sim/faults", json!({"drop_deliveries": 1})).await;
    tx(2000).await; // lost
    tx(3000).await; // reveals it
    wait_booked(&w, 2).await;
    // what the provisioner's watch does every second
    let (mut checked, deadline) = (0, std::time::Instant::now() + Duration::from_secs(20));
    let found = loop {
        sepay_provisioner::gaps::pass(&p, &mut checked).await.unwrap();
        let (gaps, open): (i64, i64) =
            sqlx::query_as("select count(*), count(*) filter (where status <> 'closed') from sepay_balance_gaps")
                .fetch_one(&w.db.pool)
                .await
                .unwrap();
        if booked(&w).await == 3 && gaps == 1 && open == 0 {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        found,
        "the lost transaction booked and its gap closed; {} booked",
        booked(&w).await
    );
    let total = booked_sum(&w).await;
    assert_eq!(total, rust_decimal::Decimal::from(6000));
    let gap_runs: i64 = sqlx::query_scalar("select count(*) from sepay_reconciliation_runs where trigger = 'gap'")
        .fetch_one(&w.db.pool)
        .await
        .unwrap();
    assert!(gap_runs >= 1);
}

/// Two webhooks lost on one account, two gaps due together: one reconciliation, one listing of
/// SePay's transactions, books both (a burst of losses costs one listing, not one per gap).
#[tokio::test]
async fn a_workspaces_due_gaps_share_one_reconciliation() {
    let (w, account, p) = gap_world().await;
    let tx = |amount: i64| transfer(&w, account, "in", amount);
    tx(1000).await;
    wait_booked(&w, 1).await;
    for (lost, reveals) in [(2000, 3000), (4000, 5000)] {
        w.sim_post("/sim/faults", json!({"drop_deliveries": 1})).await;
        tx(lost).await;
        tx(reveals).await;
    }
    wait_booked(&w, 3).await;
    let mut checked = 0;
    sepay_provisioner::gaps::pass(&p, &mut checked).await.unwrap();
    let (gaps, runs): (i64, i64) = sqlx::query_as(
        "select (select count(*) from sepay_balance_gaps),
                (select count(*) from sepay_reconciliation_runs where trigger = 'gap')",
    )
    .fetch_one(&w.db.pool)
    .await
    .unwrap();
    assert_eq!((gaps, runs), (2, 1), "two gaps, one reconciliation");
    wait_booked(&w, 5).await;
    let total = booked_sum(&w).await;
    assert_eq!(total, rust_decimal::Decimal::from(15000));
}

/// The last transaction of a quiet account is lost: no later delivery reveals it, but the
/// account's balance at SePay has moved past the last booking, and the trailing check
/// reconciles from there. A check with nothing missing reconciles nothing.
#[tokio::test]
async fn a_lost_last_transaction_is_found_by_the_account_balance() {
    let (w, account, p) = provisioned_world(|c| c.reconcile_interval_secs = 0).await;
    let tx = |amount: i64| transfer(&w, account, "in", amount);
    tx(1000).await;
    wait_booked(&w, 1).await;
    assert_eq!(
        sepay_provisioner::gaps::trailing_pass(&p).await.unwrap(),
        0,
        "nothing missing"
    );
    w.sim_post("/sim/faults", json!({"drop_deliveries": 1})).await;
    tx(2500).await; // lost, and the last
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(booked(&w).await, 1);
    assert_eq!(sepay_provisioner::gaps::trailing_pass(&p).await.unwrap(), 1);
    wait_booked(&w, 2).await;
    let runs: i64 = sqlx::query_scalar("select count(*) from sepay_reconciliation_runs where trigger = 'balance'")
        .fetch_one(&w.db.pool)
        .await
        .unwrap();
    assert_eq!(runs, 1);
    // booked and on the chain: the balances agree again
    let agreed = eventually(Duration::from_secs(5), || async {
        (sepay_provisioner::gaps::trailing_pass(&p).await.unwrap() == 0).then_some(())
    })
    .await;
    assert!(agreed.is_some());
}

/// The provisioned webhook's id at SePay.
async fn remote_webhook(w: &World) -> (i64, Value) {
    let state: Value = w.sim_state().await;
    let hooks = state["webhooks"].as_array().cloned().unwrap_or_default();
    let hook = hooks.into_iter().next().expect("a webhook at SePay");
    (hook["id"].as_i64().unwrap(), hook)
}

/// A webhook deleted in SePay's dashboard is provisioned again by the health check, what SePay
/// could not deliver meanwhile is reconciled and booked, and new transactions arrive by webhook.
#[tokio::test]
async fn a_webhook_deleted_at_sepay_is_provisioned_again_and_the_gap_reconciled() {
    let mut w = World::new(SimConfig {
        sim_rate_limit_per_sec: 1000,
        ..Default::default()
    })
    .await;
    start_pipeline(&mut w).await;
    w.config.reconcile_interval_secs = 0;
    let account = w.accounts(1).await[0];
    let p = w.provisioner().await;
    sepay_provisioner::sync_and_provision(&p, w.ws_id).await.unwrap();
    let healthy = sepay_provisioner::health::check(&p, w.ws_id).await.unwrap();
    assert_eq!((healthy.verified, healthy.repaired), (1, 0));
    let verified = sepay_store::endpoints::list(&w.db.pool, Some(w.ws_id)).await.unwrap();
    assert!(
        verified[0].last_verified_at.is_some(),
        "the page shows when it was verified"
    );
    let (remote_id, _) = remote_webhook(&w).await;
    w.sim_post(&format!("/sim/webhooks/{remote_id}/delete"), json!({}))
        .await;
    let tx = |amount: i64| {
        w.sim_post(
            "/sim/transactions",
            json!({"bank_account_id": account, "transfer_type": "in", "amount": amount}),
        )
    };
    tx(1000).await;
    tx(2000).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(booked(&w).await, 0, "nothing delivered while the webhook is gone");
    let repaired = sepay_provisioner::health::check(&p, w.ws_id).await.unwrap();
    assert_eq!(repaired.repaired, 1);
    wait_booked(&w, 2).await;
    let (new_id, _) = remote_webhook(&w).await;
    assert_ne!(new_id, remote_id);
    assert_eq!(
        sepay_store::provisioning::live_endpoint_count(&w.db.pool, w.ws_id)
            .await
            .unwrap(),
        1
    );
    tx(3000).await;
    wait_booked(&w, 3).await;
    let repairs = sepay_store::provisioning::list_repairs(&w.db.pool, w.ws_id, 10)
        .await
        .unwrap();
    assert_eq!(repairs.len(), 1);
    assert_eq!(repairs[0].kind, "missing");
    assert_eq!(sepay_provisioner::health::check(&p, w.ws_id).await.unwrap().repaired, 0);
}

/// A bank account added at SePay gets its webhook from the provisioner's schedule (the sync that
/// runs with every webhook health check), with no sync request: none is sent when an admin adds
/// an account in SePay's dashboard, and one sent during an outage is given up after its retries.
#[tokio::test]
async fn an_account_added_at_sepay_is_provisioned_by_the_schedule() {
    let (w, _, _) = provisioned_world(|c| {
        c.reconcile_interval_secs = 0;
        c.webhook_health_interval_secs = 1;
    })
    .await;
    assert_eq!(w.live_endpoints().await, 1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bus = sepay_bus::Bus::connect(&w.nats).await.unwrap();
    tokio::spawn(sepay_provisioner::serve(
        listener,
        w.config.clone(),
        w.db.pool.clone(),
        bus,
        w.stop.clone(),
    ));
    let body = json!({"company_id": w.company, "account_number": "0071999999999", "bank_short_name": "MBBank"});
    w.sim_post("/sim/bank-accounts", body).await;
    let provisioned = eventually(Duration::from_secs(10), || async {
        (w.live_endpoints().await == 2).then_some(())
    })
    .await;
    assert!(provisioned.is_some(), "the new account's webhook was provisioned");
}

/// Revoking a provisioned endpoint deletes its webhook at SePay (at the next check), and the next
/// sync provisions exactly one replacement.
#[tokio::test]
async fn a_revoked_endpoint_loses_its_webhook_at_sepay_and_gets_one_replacement() {
    let w = World::new(SimConfig {
        sim_rate_limit_per_sec: 1000,
        ..Default::default()
    })
    .await;
    w.accounts(1).await;
    let p = w.provisioner().await;
    sepay_provisioner::sync_and_provision(&p, w.ws_id).await.unwrap();
    let (remote_id, _) = remote_webhook(&w).await;
    let endpoint = sepay_store::endpoints::list(&w.db.pool, Some(w.ws_id))
        .await
        .unwrap()
        .remove(0);
    sepay_store::endpoints::revoke(&w.db.pool, endpoint.id).await.unwrap();
    let checked = sepay_provisioner::health::check(&p, w.ws_id).await.unwrap();
    assert_eq!(checked.deleted, 1);
    let state: Value = w.sim_state().await;
    assert!(
        state["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["id"] != json!(remote_id))
    );
    sepay_provisioner::sync_and_provision(&p, w.ws_id).await.unwrap();
    let state: Value = w.sim_state().await;
    assert_eq!(
        state["webhooks"].as_array().unwrap().len(),
        1,
        "exactly one replacement"
    );
    assert_eq!(sepay_provisioner::health::check(&p, w.ws_id).await.unwrap().deleted, 0);
}

/// Disabled or changed in the dashboard (here: only incoming transactions): enabled again, set
/// back, each recorded.
#[tokio::test]
async fn a_webhook_disabled_or_changed_at_sepay_is_set_back() {
    let (w, account, p) = provisioned_world(|_| {}).await;
    let (remote_id, _) = remote_webhook(&w).await;
    w.sim_post(&format!("/sim/webhooks/{remote_id}/disable"), json!({}))
        .await;
    assert_eq!(sepay_provisioner::health::check(&p, w.ws_id).await.unwrap().repaired, 1);
    let (_, hook) = remote_webhook(&w).await;
    assert_eq!(hook["active"], json!(1));
    let patched = w
        .http
        .patch(format!("{}/sim/webhooks/{remote_id}", w.sim))
        .json(&json!({"event_type": "In_only"}))
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success());
    assert_eq!(sepay_provisioner::health::check(&p, w.ws_id).await.unwrap().repaired, 1);
    let (_, hook) = remote_webhook(&w).await;
    assert_eq!(hook["event_type"], json!("All"));
    // an outgoing transfer is delivered again, to the set-back URL
    w.sim_post(
        "/sim/transactions",
        json!({"bank_account_id": account, "transfer_type": "out", "amount": 500}),
    )
    .await;
    wait_booked(&w, 1).await;
    let kinds: Vec<String> = sepay_store::provisioning::list_repairs(&w.db.pool, w.ws_id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds, ["drifted", "disabled"]);
}

/// A webhook without SePay's `id` (keyed by its fields) and the same transaction fetched by
/// reconciliation (keyed by its id) are two events of one bank transaction: booked once.
#[tokio::test]
async fn an_eventless_webhook_and_its_reconciled_copy_book_once() {
    let (w, account, p) = provisioned_world(|_| {}).await;
    // SePay's own delivery is lost; the same transaction reaches us as a webhook without `id`
    w.sim_post("/sim/faults", json!({"drop_deliveries": 1})).await;
    let created = w
        .sim_post(
            "/sim/transactions",
            json!({"bank_account_id": account, "transfer_type": "in", "amount": 250000}),
        )
        .await;
    let tx: sepay_sim::model::Transaction = serde_json::from_value(created).unwrap();
    let mut body = tx.webhook_body();
    body.as_object_mut().unwrap().remove("id");
    let manual =
        sepay_store::endpoints::create_manual_endpoint(&w.db.pool, &w.config.public_base_url, w.ws_id, None, "no id")
            .await
            .unwrap();
    let answer = w
        .http
        .post(&manual.webhook_url)
        .header("authorization", &manual.authorization_header)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    wait_booked(&w, 1).await;
    // reconciliation fetches it with its id: a second event, never a second booking
    let outcome = sepay_provisioner::reconcile_requested(&p, &ControlRequest::workspace(w.ws_id))
        .await
        .unwrap();
    assert_eq!((outcome.fetched, outcome.inserted), (1, 1));
    let settled = eventually(Duration::from_secs(10), || async {
        let duplicates: i64 = sqlx::query_scalar(
            "select count(*) from sepay_webhook_events where status = 'duplicate' and created_transaction_id is not null",
        )
        .fetch_one(&w.db.pool)
        .await
        .unwrap();
        (duplicates == 1).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "the reconciled copy is the first booking's duplicate"
    );
    assert_eq!(booked(&w).await, 1);
}

#[tokio::test]
async fn a_window_that_hits_the_row_limit_is_split_by_day() {
    let mut w = World::new(SimConfig {
        sim_rate_limit_per_sec: 1000,
        ..Default::default()
    })
    .await;
    w.config.reconcile_window_row_limit = 5;
    let account = w.accounts(1).await[0];
    for (day, n) in [("2026-03-01", 3), ("2026-03-02", 4), ("2026-03-03", 2)] {
        for i in 0..n {
            let body = json!({"bank_account_id": account, "transfer_type": "in", "amount": 10 + i, "transaction_date": format!("{day} 10:0{i}:00")});
            w.sim_post("/sim/transactions", body).await;
        }
    }
    let p = w.provisioner().await;
    let request = ControlRequest {
        from: Some("2026-02-28T17:00:00Z".into()),
        to: Some("2026-03-03T16:59:59Z".into()),
        ..ControlRequest::workspace(w.ws_id)
    };
    let outcome = sepay_provisioner::reconcile_requested(&p, &request).await.unwrap();
    assert_eq!((outcome.fetched, outcome.inserted), (9, 9));
    let sources: Vec<String> = sqlx::query_scalar("select distinct source from sepay_webhook_events")
        .fetch_all(&w.db.pool)
        .await
        .unwrap();
    assert_eq!(sources, ["reconciliation"]);
}

#[tokio::test]
async fn disconnect_deletes_remote_webhooks_revokes_endpoints_and_tokens() {
    let w = World::new(SimConfig {
        sim_rate_limit_per_sec: 1000,
        ..Default::default()
    })
    .await;
    w.accounts(2).await;
    let p = w.provisioner().await;
    sepay_provisioner::sync_and_provision(&p, w.ws_id).await.unwrap();
    let token = p.tokens.access_token(w.ws_id).await.unwrap();
    sepay_provisioner::disconnect(&p, w.ws_id).await.unwrap();
    assert_eq!(w.sim_state().await["webhooks"], json!([]));
    assert_eq!(w.live_endpoints().await, 0);
    let status: String = sqlx::query_scalar("select status from sepay_connections")
        .fetch_one(&w.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "revoked");
    let res = w
        .http
        .get(format!("{}/api/v1/bank-accounts", w.sim))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "the token was revoked at SePay");
    assert!(p.tokens.access_token(w.ws_id).await.is_err());
}

#[tokio::test]
async fn the_provisioner_acts_on_control_messages() {
    let w = World::new(SimConfig {
        sim_rate_limit_per_sec: 1000,
        ..Default::default()
    })
    .await;
    w.accounts(3).await;
    let bus = sepay_bus::Bus::connect(&w.nats).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let health = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sepay_provisioner::serve(
        listener,
        w.config.clone(),
        w.db.pool.clone(),
        bus.clone(),
        w.stop.clone(),
    ));
    bus.ensure_control_stream().await.unwrap();
    bus.publish_control(
        ControlSubject::ConnectionConnected,
        "connected-1",
        &ControlRequest::workspace(w.ws_id),
    )
    .await
    .unwrap();
    let provisioned = eventually(Duration::from_secs(15), || async {
        (w.live_endpoints().await == 3).then_some(())
    })
    .await;
    assert!(provisioned.is_some());
    let ready = reqwest::get(format!("{health}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    bus.publish_control(
        ControlSubject::ReconcileRequested,
        "reconcile-1",
        &ControlRequest::workspace(w.ws_id),
    )
    .await
    .unwrap();
    let ran = eventually(Duration::from_secs(15), || async {
        let runs = sepay_store::provisioning::list_runs(&w.db.pool, w.ws_id, 5)
            .await
            .unwrap();
        runs.first().filter(|r| r.status == "succeeded").map(|_| ())
    })
    .await;
    assert!(ran.is_some());
    bus.publish_control(
        ControlSubject::ConnectionDisconnected,
        "disconnected-1",
        &ControlRequest::workspace(w.ws_id),
    )
    .await
    .unwrap();
    let gone = eventually(Duration::from_secs(15), || async {
        (w.live_endpoints().await == 0).then_some(())
    })
    .await;
    assert!(gone.is_some());
}
