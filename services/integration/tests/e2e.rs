//! The whole path — ingress, NATS, processor, Postgres — and the `sepayctl` binary.

mod common;

use common::System;
use sepay_bus::NatsConfig;
use sepay_processor::ProcessorConfig;
use sepay_testkit::{PrivateNats, Seeded, TestDb, count, delivery, eventually, test_bus};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn post(url: &str, seed: &Seeded, body: &Value) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{url}{}", seed.path()))
        .header("authorization", seed.authorization())
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn processed(db: &TestDb) -> i64 {
    sqlx::query_scalar("select count(*) from sepay_webhook_events where status = 'processed'")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn eight_concurrent_copies_of_a_delivery_book_one_transaction() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let system = System::start(&db, &nats).await;
    let seed = Seeded::new(&db.pool).await;
    let body = delivery(4242, "in", json!(2277000));
    let statuses = futures::future::join_all((0..8).map(|_| post(&system.url, &seed, &body))).await;
    assert!(statuses.iter().all(|s| s.is_success()), "{statuses:?}");
    assert!(
        eventually(Duration::from_secs(10), || async {
            (processed(&db).await == 1).then_some(())
        })
        .await
        .is_some()
    );
    // later retries are answered as duplicates and book nothing
    let again = reqwest::Client::new()
        .post(format!("{}{}", system.url, seed.path()))
        .header("authorization", seed.authorization())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        json!({"success": true, "duplicate": true})
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&db.pool, "wallet_transactions").await, 1);
    assert_eq!(count(&db.pool, "sepay_webhook_events").await, 1);
}

#[tokio::test]
async fn deliveries_taken_while_nats_is_down_are_relayed_and_booked_once() {
    let db = TestDb::new().await;
    let mut server = PrivateNats::start();
    let (_, nats) = test_bus(&server.url()).await;
    let system = System::start(&db, &nats).await;
    let seed = Seeded::new(&db.pool).await;
    assert_eq!(post(&system.url, &seed, &delivery(1, "in", json!(1000))).await, 200);
    assert!(
        eventually(Duration::from_secs(10), || async {
            (processed(&db).await == 1).then_some(())
        })
        .await
        .is_some()
    );

    server.stop();
    for id in 2..=11 {
        let started = Instant::now();
        assert_eq!(
            post(&system.url, &seed, &delivery(id, "in", json!(1000 + id))).await,
            200,
            "delivery {id}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "answer waited on NATS");
    }
    let unpublished: i64 = sqlx::query_scalar(
        "select count(*) from sepay_webhook_events where status = 'received' and published_at is null",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(unpublished, 10, "every delivery is kept while NATS is down");
    assert_eq!(processed(&db).await, 1);

    server.resume();
    let all = eventually(Duration::from_secs(30), || async {
        (processed(&db).await == 11).then_some(())
    })
    .await;
    assert!(all.is_some(), "relayed events were not booked");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&db.pool, "wallet_transactions").await, 11);
}

#[tokio::test]
async fn a_stale_received_event_is_re_driven_without_a_sepay_retry() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let seed = Seeded::new(&db.pool).await;
    // a row left `received` by a crashed worker: published long ago, never booked
    sqlx::query(
        "insert into sepay_webhook_events (ws_id, endpoint_id, source, dedupe_key, payload, opened_at, published_at)
         values ($1, $2, 'webhook', 'sepay:31', $3, now() - interval '10 minutes', now() - interval '10 minutes')",
    )
    .bind(seed.ws_id)
    .bind(seed.endpoint_id)
    .bind(delivery(31, "in", json!(1000)))
    .execute(&db.pool)
    .await
    .unwrap();
    let _system = System::start(&db, &nats).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            (processed(&db).await == 1).then_some(())
        })
        .await
        .is_some()
    );
    let attempts: i32 = sqlx::query_scalar("select attempts from sepay_webhook_events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 2);
}

fn sepayctl(db: &TestDb, nats: &NatsConfig, args: &[&str]) -> Value {
    cli("sepayctl", db, nats, args)
}

fn sepay_dev(db: &TestDb, nats: &NatsConfig, args: &[&str]) -> Value {
    cli("sepay-dev", db, nats, args)
}

/// `program --json args…` against the test's database and bus; its JSON answer.
fn cli(program: &str, db: &TestDb, nats: &NatsConfig, args: &[&str]) -> Value {
    let out = Command::new(sepay_testkit::bin(program))
        .arg("--json")
        .args(args)
        .env("DATABASE_URL", &db.config.database_url)
        .env("NATS_URL", &nats.nats_url)
        .env("BUS_PREFIX", &nats.bus_prefix)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{program} {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test]
async fn a_delivery_to_an_endpoint_made_with_sepayctl_is_booked_and_listed() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let system = System::start(&db, &nats).await;
    let ws = sepayctl(&db, &nats, &["workspace", "create", "--name", "Shop"]);
    let ws_id = ws["id"].as_str().unwrap();
    let wallet = sepayctl(&db, &nats, &["wallet", "create", "--ws", ws_id, "--name", "VCB"]);
    let wallet_id = wallet["id"].as_str().unwrap();
    sepayctl(
        &db,
        &nats,
        &[
            "link-account",
            "--ws",
            ws_id,
            "--account-number",
            sepay_testkit::ACCOUNT,
            "--wallet",
            wallet_id,
        ],
    );
    let endpoint = sepayctl(
        &db,
        &nats,
        &["--public-base-url", &system.url, "endpoint", "create", "--ws", ws_id],
    );
    let url = endpoint["webhook_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/api/v1/webhooks/sepay/spwh_", system.url)),
        "{url}"
    );

    let started = Instant::now();
    let answer = reqwest::Client::new()
        .post(url)
        .header("authorization", endpoint["authorization_header"].as_str().unwrap())
        .json(&delivery(92704, "out", json!(2277000)))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let booked = eventually(Duration::from_secs(5), || async {
        (processed(&db).await == 1).then_some(())
    })
    .await;
    assert!(booked.is_some());
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "booked in {elapsed:?}");

    let events = sepayctl(&db, &nats, &["events", "list", "--ws", ws_id]);
    assert_eq!(events[0]["status"], json!("processed"));
    assert_eq!(events[0]["dedupe_key"], json!("sepay:92704"));
    let txs = sepayctl(&db, &nats, &["transactions", "list", "--ws", ws_id]);
    assert_eq!(txs[0]["amount"], json!("-2277000"));
    assert_eq!(txs[0]["category_name"], json!("Uncategorized Expense"));
    // the list shows the endpoint without secrets
    let listed = sepayctl(&db, &nats, &["endpoint", "list", "--ws", ws_id]);
    let text = listed.to_string();
    assert!(
        !text.contains(endpoint["token"].as_str().unwrap()) && !text.contains(endpoint["api_key"].as_str().unwrap())
    );
}

#[tokio::test]
async fn sepayctl_replays_failed_events_and_reports_bad_input_in_one_line() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let system = System::start(&db, &nats).await;
    let seed = Seeded::with_link(&db.pool, false).await;
    assert_eq!(post(&system.url, &seed, &delivery(5, "in", json!(1000))).await, 200);
    let failed = eventually(Duration::from_secs(10), || async {
        let failed = sepayctl(&db, &nats, &["events", "list", "--status", "failed"]);
        (failed.as_array().unwrap().len() == 1).then_some(failed)
    })
    .await
    .unwrap();
    assert_eq!(failed[0]["failure_reason"], json!("wallet_not_linked"));
    let ws = seed.ws_id.to_string();
    let wallet = seed.wallet_id.to_string();
    sepayctl(
        &db,
        &nats,
        &[
            "link-account",
            "--ws",
            &ws,
            "--account-number",
            sepay_testkit::ACCOUNT,
            "--wallet",
            &wallet,
        ],
    );
    let replayed = sepayctl(&db, &nats, &["events", "replay", "--ws", &ws]);
    assert_eq!(replayed["replayed"].as_array().unwrap().len(), 1);
    assert!(
        eventually(Duration::from_secs(10), || async {
            (processed(&db).await == 1).then_some(())
        })
        .await
        .is_some()
    );

    let out = Command::new(sepay_testkit::bin("sepayctl"))
        .args(["events", "list", "--status", "bogus"])
        .env("DATABASE_URL", &db.config.database_url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("unknown status"), "{stderr}");
}

#[tokio::test]
async fn sepayctl_up_demo_books_a_delivery_with_and_without_the_simulator() {
    for extra in [None, Some("--no-sim")] {
        let db = TestDb::new().await;
        let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
        let mut args = vec!["--json", "up", "--demo", "--exit-after-demo"];
        args.extend(extra);
        let child = Command::new(sepay_testkit::bin("sepay-dev"))
            .args(&args)
            .env("DATABASE_URL", &db.config.database_url)
            .env("NATS_URL", &nats.nats_url)
            .env("BUS_PREFIX", &nats.bus_prefix)
            .env("INGRESS_ADDR", "127.0.0.1:0")
            .env("INGRESS_ADMIN_ADDR", "127.0.0.1:0")
            .env("PROCESSOR_ADDR", "127.0.0.1:0")
            .env("SIM_ADDR", "127.0.0.1:0")
            .env("CONNECTOR_ADDR", "127.0.0.1:0")
            .env("CONNECTOR_ADMIN_ADDR", "127.0.0.1:0")
            .env("PROVISIONER_ADDR", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        // two JSON documents: the start-up summary, then the demo report
        let docs: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
            .into_iter()
            .map(|d| d.unwrap())
            .collect();
        assert_eq!(docs.len(), 2, "{stdout}");
        assert!(docs[0]["ingress"].as_str().unwrap().starts_with("http://127.0.0.1:"));
        assert_eq!(docs[0]["sim"].is_string(), extra.is_none());
        if extra.is_none() {
            // the full loop: OAuth connect, provisioning, a burst with repeated and lost webhooks, reconciliation
            assert_eq!(docs[1]["booked"], json!(20), "{}", docs[1]);
            assert_eq!(docs[1]["sum_sent"], docs[1]["sum_booked"]);
            assert_eq!(docs[1]["lost"], json!(1));
            assert_eq!(docs[1]["reconciliation"]["inserted"], json!(1));
            // then Striga's five documented webhooks: four bookings (one payout settles)
            assert_eq!(docs[1]["striga"]["booked"], json!(4), "{}", docs[1]);
            assert_eq!(docs[1]["striga"]["sum_eur"], json!("405.42"));
            assert_eq!(count(&db.pool, "wallet_transactions").await, 24);
        } else {
            assert!(
                docs[1]["delivery"]
                    .as_str()
                    .unwrap()
                    .starts_with("posted in SePay's shape"),
                "{}",
                docs[1]
            );
            assert_eq!(docs[1]["transaction"]["amount"], json!("2277000"));
            assert_eq!(count(&db.pool, "wallet_transactions").await, 1);
        }
    }
}

// multi-threaded: the blocking `sepayctl` calls must not stall the in-process simulator
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_driven_by_sepayctl_delivers_to_a_manual_endpoint() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let system = System::start(&db, &nats).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_url = format!("http://{}", listener.local_addr().unwrap());
    let sim_config = sepay_sim::SimConfig {
        sim_time_scale: 0.001,
        ..Default::default()
    };
    tokio::spawn(sepay_sim::serve(listener, sim_config, system.stop.clone()));
    let sim = |args: &[&str]| {
        let mut all = vec!["sim", "--sim-url", &sim_url];
        all.extend_from_slice(args);
        sepay_dev(&db, &nats, &all)
    };
    let company = sim(&["company", "--name", "Cty Demo"]);
    let company_id = company["id"].to_string();
    let account = sim(&[
        "bank-account",
        "--company",
        &company_id,
        "--account-number",
        "0071000888888",
    ]);
    let account_id = account["id"].to_string();

    let ws = sepayctl(&db, &nats, &["workspace", "create", "--name", "Shop"]);
    let ws_id = ws["id"].as_str().unwrap();
    let wallet = sepayctl(&db, &nats, &["wallet", "create", "--ws", ws_id, "--name", "VCB"]);
    let endpoint = sepayctl(
        &db,
        &nats,
        &[
            "--public-base-url",
            &system.url,
            "endpoint",
            "create",
            "--ws",
            ws_id,
            "--wallet",
            wallet["id"].as_str().unwrap(),
        ],
    );
    sim(&[
        "webhook",
        "--company",
        &company_id,
        "--bank-account",
        &account_id,
        "--url",
        endpoint["webhook_url"].as_str().unwrap(),
        "--api-key",
        endpoint["api_key"].as_str().unwrap(),
    ]);
    // one lost delivery (the fault) and three delivered ones
    sim(&["fault", "--drop-deliveries", "1"]);
    for amount in ["1000", "2000", "3000", "4000"] {
        sim(&["tx", "--bank-account", &account_id, "--type", "out", "--amount", amount]);
    }
    let booked = eventually(Duration::from_secs(10), || async {
        (processed(&db).await == 3).then_some(())
    })
    .await;
    assert!(booked.is_some(), "three deliveries should be booked");
    let deliveries = sim(&["deliveries"]);
    let dropped = deliveries
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["error"] == "dropped by fault injection")
        .count();
    assert_eq!(dropped, 1);
    let total: rust_decimal::Decimal = sqlx::query_scalar("select sum(amount) from wallet_transactions")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(total, rust_decimal::Decimal::from(-9000));
}

#[tokio::test]
async fn sepayctl_up_stops_gracefully_on_sigterm() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let ingress_port = sepay_testkit::free_port();
    let ingress_admin_port = sepay_testkit::free_port();
    let mut child = Command::new(sepay_testkit::bin("sepay-dev"))
        .args(["up"])
        .env("DATABASE_URL", &db.config.database_url)
        .env("NATS_URL", &nats.nats_url)
        .env("BUS_PREFIX", &nats.bus_prefix)
        .env("INGRESS_ADDR", format!("127.0.0.1:{ingress_port}"))
        .env("INGRESS_ADMIN_ADDR", format!("127.0.0.1:{ingress_admin_port}"))
        .env("PROCESSOR_ADDR", "127.0.0.1:0")
        .env("SIM_ADDR", "127.0.0.1:0")
        .env("CONNECTOR_ADDR", "127.0.0.1:0")
        .env("CONNECTOR_ADMIN_ADDR", "127.0.0.1:0")
        .env("CONNECTOR_ADMIN_ADDR", "127.0.0.1:0")
        .env("PROVISIONER_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `up` prints its last start-up line once every service is running
    let stdout = child.stdout.take().unwrap();
    let started = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("Ctrl-C stops everything"))
    });
    let started = tokio::time::timeout(Duration::from_secs(30), started).await;
    assert!(matches!(started, Ok(Ok(true))), "sepayctl up never finished starting");
    let ready = reqwest::get(format!("http://127.0.0.1:{ingress_admin_port}/readyz"))
        .await
        .unwrap();
    assert!(ready.status().is_success());
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exited = eventually(Duration::from_secs(10), || {
        let status = child.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(exited.expect("still running 10 s after SIGTERM").success());
}

#[tokio::test]
async fn rules_and_credits_are_managed_with_sepayctl() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let seed = Seeded::new(&db.pool).await;
    let ws = seed.ws_id.to_string();
    let bad = Command::new(sepay_testkit::bin("sepayctl"))
        .args(["rules", "add", "--ws", &ws, "--name", "x", "--when", "colour is red"])
        .env("DATABASE_URL", &db.config.database_url)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown field"));
    sepayctl(
        &db,
        &nats,
        &[
            "rules",
            "add",
            "--ws",
            &ws,
            "--name",
            "rides",
            "--when",
            "content contains grab",
            "--category",
            "Transport",
            "--expense",
            "--tag",
            "ride",
        ],
    );
    let listed = sepayctl(&db, &nats, &["rules", "list", "--ws", &ws]);
    assert_eq!(listed[0]["category_name"], json!("Transport"));
    let credits = sepayctl(&db, &nats, &["credits", "grant", "--ws", &ws, "--amount", "25"]);
    assert_eq!(credits["balance"], json!(25));

    // the running processor applies the rule at once
    let classifier = sepay_processor::default_classifier(&ProcessorConfig::default(), &db.pool);
    let system = System::start_with(&db, &nats, classifier).await;
    let mut body = delivery(77, "out", json!(85000));
    body["content"] = json!("GRAB chuyen xe");
    assert_eq!(post(&system.url, &seed, &body).await, 200);
    assert!(
        eventually(Duration::from_secs(10), || async {
            (processed(&db).await == 1).then_some(())
        })
        .await
        .is_some()
    );
    let txs = sepayctl(&db, &nats, &["transactions", "list", "--ws", &ws]);
    assert_eq!(txs[0]["category_name"], json!("Transport"));
    assert_eq!(txs[0]["classified_by"], json!("rules"));
}

/// A workspace connected to an in-process simulator through the real OAuth code flow, with the
/// provisioner running: what `sepayctl sync` and `sepayctl reconcile` talk to.
async fn connected_workspace(db: &TestDb, nats: &NatsConfig, stop: &CancellationToken) -> (Uuid, String, i64) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = format!("http://{}", listener.local_addr().unwrap());
    let config = sepay_sim::SimConfig {
        sim_auto_approve: true,
        sim_rate_limit_per_sec: 1000,
        ..Default::default()
    };
    tokio::spawn(sepay_sim::serve(listener, config, stop.clone()));
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
    let company = post("/sim/companies", json!({"name": "Cty"})).await["id"].clone();
    let account = post("/sim/bank-accounts", json!({"company_id": company})).await["id"]
        .as_i64()
        .unwrap();
    let redirect = "http://127.0.0.1:9/callback";
    let client = post(
        "/sim/oauth-clients",
        json!({"company_id": company, "redirect_uris": [redirect]}),
    )
    .await;
    let sepay = sepay_api::SepayConfig {
        sepay_base_url: sim.clone(),
        sepay_client_id: client["client_id"].as_str().unwrap().into(),
        sepay_client_secret: client["client_secret"].as_str().unwrap().into(),
        sepay_requests_per_sec: 100,
        ..Default::default()
    };
    let api = sepay_api::SepayClient::new(&sepay);
    let request = api.authorize_request(redirect).unwrap();
    let location = http.get(&request.url).send().await.unwrap().headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let grant = api
        .exchange_code(&code, &request.pkce_verifier, redirect)
        .await
        .unwrap();
    let ws = sepay_store::workspaces::create_workspace(&db.pool, "Shop")
        .await
        .unwrap()
        .id;
    let bus = sepay_bus::Bus::connect(nats).await.unwrap();
    let config = sepay_provisioner::ProvisionerConfig {
        sepay,
        // webhooks point nowhere reachable (port 9, discard), whatever else runs on this machine
        public_base_url: "http://127.0.0.1:9".into(),
        ..Default::default()
    };
    let provisioner = sepay_provisioner::Provisioner::new(config.clone(), db.pool.clone(), bus.clone()).unwrap();
    provisioner.tokens.store_grant(ws, &grant).await.unwrap();
    let health = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    tokio::spawn(sepay_provisioner::serve(
        health,
        config,
        db.pool.clone(),
        bus,
        stop.clone(),
    ));
    (ws, sim, account)
}

// multi-threaded: the blocking `sepayctl` calls must not stall the in-process provisioner
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sepayctl_sync_and_reconcile_drive_the_provisioner() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let stop = CancellationToken::new();
    let (ws, sim, account) = connected_workspace(&db, &nats, &stop).await;
    let ws_text = ws.to_string();
    sepayctl(&db, &nats, &["sync", "--ws", &ws_text]);
    let synced = eventually(Duration::from_secs(15), || async {
        (sepay_store::provisioning::live_endpoint_count(&db.pool, ws)
            .await
            .unwrap()
            == 1)
            .then_some(())
    })
    .await;
    assert!(synced.is_some(), "sync did not provision the account's webhook");
    // two transfers SePay never delivered (the webhook points nowhere reachable)
    for amount in [1000, 2000] {
        reqwest::Client::new()
            .post(format!("{sim}/sim/transactions"))
            .json(&json!({"bank_account_id": account, "transfer_type": "in", "amount": amount}))
            .send()
            .await
            .unwrap();
    }
    let run = sepayctl(&db, &nats, &["reconcile", "--ws", &ws_text, "--since", "1h"]);
    assert_eq!(
        (
            run["status"].as_str(),
            run["fetched"].as_i64(),
            run["inserted"].as_i64()
        ),
        (Some("succeeded"), Some(2), Some(2))
    );
    let again = sepayctl(&db, &nats, &["reconcile", "--ws", &ws_text, "--since", "1h"]);
    assert_eq!(again["inserted"], json!(0));
    stop.cancel();
}

#[tokio::test]
async fn the_benchmark_runs_and_books_every_distinct_delivery() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let report = tokio::task::spawn_blocking(move || {
        sepay_dev(
            &db,
            &nats,
            &[
                "bench",
                "--deliveries",
                "60",
                "--concurrency",
                "8",
                "--replicas",
                "1,2",
                "--junk-rate",
                "500",
            ],
        )
    })
    .await
    .unwrap();
    assert!(report["insert_limit_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(report["ingress"]["failed"], json!(0));
    assert_eq!(report["flood"]["junk_rows"], json!(0), "{}", report["flood"]);
    assert!(
        report["flood"]["junk"]["sent"].as_u64().unwrap() > 0,
        "{}",
        report["flood"]
    );
    // every service ran as a process of its own; its peak RSS was read before it stopped
    let positive = |v: &Value| v.as_f64().is_some_and(|mib| mib > 0.0);
    assert!(positive(&report["ingress"]["peak_rss_mib"]), "{}", report["ingress"]);
    assert!(
        positive(&report["flood"]["ingress_peak_rss_mib"]),
        "{}",
        report["flood"]
    );
    for round in report["end_to_end"].as_array().unwrap() {
        assert_eq!(round["booked"], round["expected"], "{round}");
        assert!(positive(&round["peak_rss_mib"]["ingress"]), "{round}");
        let processors = round["peak_rss_mib"]["processors"].as_array().unwrap();
        assert_eq!(processors.len() as u64, round["replicas"].as_u64().unwrap(), "{round}");
        assert!(processors.iter().all(positive), "{round}");
    }
    let peaks = &report["peak_rss_mib"];
    for service in ["ingress", "processor", "load_generator"] {
        assert!(positive(&peaks[service]), "{peaks}");
    }
    assert_eq!(
        report["targets"]["ingress_rss_mib"]["met"].as_bool(),
        Some(peaks["ingress"].as_f64().unwrap() < 50.0),
        "{}",
        report["targets"]
    );
}
