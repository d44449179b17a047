//! `sepayctl` against the running services: endpoints, events and replay, rules and credits,
//! sync and reconciliation through the provisioner.

mod common;

use common::{System, post, processed, sepayctl};
use sepay_bus::NatsConfig;
use sepay_processor::ProcessorConfig;
use sepay_testkit::{Seeded, TestDb, delivery, eventually, test_bus};
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

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

/// `sepayctl --json rules list | head`: the reader goes away before the answer is written; the
/// command ends quietly (exit 0, nothing on stderr) instead of panicking on the broken pipe.
#[tokio::test]
async fn a_reader_that_goes_away_ends_the_command_quietly() {
    let db = TestDb::new().await;
    let seed = Seeded::new(&db.pool).await;
    let mut child = Command::new(sepay_testkit::bin("sepayctl"))
        .args(["--json", "rules", "list", "--ws", &seed.ws_id.to_string()])
        .env("DATABASE_URL", &db.config.database_url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{:?}: {stderr}", out.status);
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

/// Wallet currencies are ISO 4217 codes and a SePay account books only into VND: refused with a
/// line that says so, nothing written.
#[tokio::test]
async fn sepayctl_refuses_wrong_currencies_in_one_line() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let ws = sepayctl(&db, &nats, &["workspace", "create", "--name", "Shop"]);
    let ws_id = ws["id"].as_str().unwrap();
    let fails = |args: &[&str]| {
        let out = Command::new(sepay_testkit::bin("sepayctl"))
            .args(args)
            .env("DATABASE_URL", &db.config.database_url)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        stderr
    };
    let euro = fails(&["wallet", "create", "--ws", ws_id, "--name", "E", "--currency", "euro"]);
    assert!(euro.contains("\"euro\" is not an ISO 4217 currency code"), "{euro}");
    let eur = sepayctl(
        &db,
        &nats,
        &["wallet", "create", "--ws", ws_id, "--name", "E", "--currency", "eur"],
    );
    assert_eq!(eur["currency"], json!("EUR"));
    let linked = fails(&[
        "link-account",
        "--ws",
        ws_id,
        "--account-number",
        sepay_testkit::ACCOUNT,
        "--wallet",
        eur["id"].as_str().unwrap(),
    ]);
    assert_eq!(linked.lines().count(), 1, "{linked}");
    assert!(linked.contains("a SePay account books VND"), "{linked}");
}

/// `sepayctl args…` against `database_url`, as an operator runs it.
fn run_sepayctl(database_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(sepay_testkit::bin("sepayctl"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .output()
        .unwrap()
}

/// What a succeeding command printed.
fn text(db: &TestDb, args: &[&str]) -> String {
    let out = run_sepayctl(&db.config.database_url, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The one stderr line of a failing command (exit code 1), which never names a constraint.
fn error_line(database_url: &str, args: &[&str]) -> String {
    let out = run_sepayctl(database_url, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(!stderr.contains("constraint") && !stderr.contains("_fkey"), "{stderr}");
    stderr.trim_end().to_owned()
}

#[tokio::test]
async fn workspaces_wallets_and_links_are_listed_and_links_removed() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let ctl = |args: &[&str]| sepayctl(&db, &nats, args);
    let ws = ctl(&["workspace", "create", "--name", "Shop"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ctl(&["workspace", "create", "--name", "Empty"]);
    let wallet = ctl(&["wallet", "create", "--ws", &ws, "--name", "VCB"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = |sub: &[&str]| {
        let args = [
            &[
                "link-account",
                "--ws",
                &ws,
                "--account-number",
                "0071000888888",
                "--wallet",
                &wallet,
            ],
            sub,
        ]
        .concat();
        ctl(&args)
    };
    link(&[]);
    link(&["--sub-account", "VA1"]);
    ctl(&["endpoint", "create", "--ws", &ws]);

    let listed = ctl(&["workspace", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let shop = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == json!(ws))
        .unwrap();
    assert_eq!(
        (&shop["name"], &shop["wallets"], &shop["links"], &shop["live_endpoints"]),
        (&json!("Shop"), &json!(1), &json!(2), &json!(1))
    );
    let table = text(&db, &["workspace", "list"]);
    assert!(table.starts_with("ID ") && table.contains("LIVE ENDPOINTS"), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with(&ws) && l.contains("Shop")),
        "{table}"
    );

    let shown = ctl(&["workspace", "show", "--ws", &ws]);
    assert_eq!((&shown["name"], &shown["connection"]), (&json!("Shop"), &Value::Null));
    let shown = text(&db, &["workspace", "show", "--ws", &ws]);
    assert!(shown.contains("connection  not connected"), "{shown}");

    assert_eq!(
        ctl(&["wallet", "list", "--ws", &ws]),
        json!([{"id": wallet, "name": "VCB", "currency": "VND"}])
    );
    let wallets = text(&db, &["wallet", "list", "--ws", &ws]);
    assert!(
        wallets.starts_with("ID ") && wallets.contains("VCB") && wallets.contains("VND"),
        "{wallets}"
    );

    let links = ctl(&["links", "list", "--ws", &ws]);
    let subs: Vec<&Value> = links.as_array().unwrap().iter().map(|l| &l["sub_account"]).collect();
    assert_eq!(subs, [&Value::Null, &json!("VA1")]);
    let table = text(&db, &["links", "list", "--ws", &ws]);
    assert!(
        table.starts_with("ACCOUNT ") && table.contains("VA1") && table.contains("VCB"),
        "{table}"
    );
    let endpoints = text(&db, &["endpoint", "list", "--ws", &ws]);
    assert!(
        endpoints.starts_with("ID ") && endpoints.contains("active"),
        "{endpoints}"
    );

    // removing the sub account's link leaves the account's own
    let remove = [
        "links",
        "remove",
        "--ws",
        &ws,
        "--account-number",
        "0071000888888",
        "--sub-account",
        "VA1",
    ];
    assert_eq!(ctl(&remove)["sub_account"], json!("VA1"));
    let links = ctl(&["links", "list", "--ws", &ws]);
    assert_eq!(links.as_array().unwrap().len(), 1, "{links}");
    assert_eq!(links[0]["sub_account"], Value::Null);
    assert_eq!(
        error_line(&db.config.database_url, &remove),
        format!("sepayctl: error: no such bank account link; list them with `sepayctl links list --ws {ws}`")
    );
    let empty = ctl(&["workspace", "list"]);
    let empty = empty
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == json!("Empty"))
        .unwrap();
    assert_eq!(
        ctl(&["wallet", "list", "--ws", empty["id"].as_str().unwrap()]),
        json!([])
    );
}

/// Unknown ids, a wallet of another workspace and a database that is not there or refuses: one
/// line each, saying what to do, never a constraint's name or a hint that does not fit.
#[tokio::test]
async fn errors_are_one_line_in_the_operators_terms() {
    let db = TestDb::new().await;
    let url = &db.config.database_url;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let ws = sepayctl(&db, &nats, &["workspace", "create", "--name", "Shop"]);
    let ws = ws["id"].as_str().unwrap();
    let other = sepayctl(&db, &nats, &["workspace", "create", "--name", "Other"]);
    let foreign = sepayctl(
        &db,
        &nats,
        &["wallet", "create", "--ws", other["id"].as_str().unwrap(), "--name", "B"],
    );
    let foreign = foreign["id"].as_str().unwrap();

    let unknown = Uuid::new_v4().to_string();
    let no_workspace = format!("sepayctl: error: no workspace {unknown}; list them with `sepayctl workspace list`");
    for args in [
        &["wallet", "create", "--ws", &unknown, "--name", "x"][..],
        &["credits", "grant", "--ws", &unknown, "--amount", "5"],
        &["transactions", "list", "--ws", &unknown],
    ] {
        assert_eq!(error_line(url, args), no_workspace, "{args:?}");
    }
    // --json also answers the line as JSON on stdout
    let out = run_sepayctl(url, &["--json", "wallet", "list", "--ws", &unknown]);
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answer["error"],
        json!(no_workspace.trim_start_matches("sepayctl: error: "))
    );

    let link = [
        "link-account",
        "--ws",
        ws,
        "--account-number",
        "0071000888888",
        "--wallet",
        foreign,
    ];
    assert_eq!(
        error_line(url, &link),
        format!(
            "sepayctl: error: wallet {foreign} belongs to another workspace ({}); list this one's wallets with `sepayctl wallet list --ws {ws}`",
            other["id"].as_str().unwrap()
        )
    );

    let nothing = error_line("postgres://postgres@127.0.0.1:1/x", &["workspace", "list"]);
    assert_eq!(
        nothing,
        "sepayctl: error: nothing answers at postgres://postgres@127.0.0.1:1/x; start Postgres there or set DATABASE_URL to where it runs"
    );
    let mut wrong_role = url::Url::parse(url).unwrap();
    wrong_role.set_username("sepayctl_no_such_role").unwrap();
    let refused = error_line(wrong_role.as_str(), &["workspace", "list"]);
    assert!(
        refused.contains("refused the connection; check the role, password and database name in DATABASE_URL"),
        "{refused}"
    );
    assert!(!refused.contains("pg_ctlcluster"), "{refused}");
}
