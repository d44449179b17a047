//! `sepay-dev`: `up` (the demo with and without the simulator, a graceful stop), the simulator's
//! drivers, the benchmark.

mod common;

use common::{System, processed, sepay_dev, sepay_dev_command, sepayctl};
use sepay_store::workspaces;
use sepay_testkit::{TestDb, count, eventually, test_bus};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs the command to its end off the async threads (the test's services keep running), its
/// output captured.
async fn run_to_end(command: &mut Command) -> std::process::Output {
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn sepayctl_up_demo_books_a_delivery_with_and_without_the_simulator() {
    for extra in [None, Some("--no-sim")] {
        let db = TestDb::new().await;
        let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
        let mut args = vec!["--json", "up", "--demo", "--exit-after-demo"];
        args.extend(extra);
        let out = run_to_end(sepay_dev_command(&db, &nats).args(&args)).await;
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

/// What `up --demo` prints to a stdout that is not a terminal: the start summary, the demo's
/// table and nothing else (the log lines go to a file), no colour codes. Compared with
/// `tests/snapshots/up_demo.txt` with ports, tokens, ids, paths and timings masked.
#[tokio::test]
async fn up_demo_prints_a_quiet_summary_and_the_result_table() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let out = run_to_end(
        sepay_dev_command(&db, &nats)
            .args(["up", "--demo", "--exit-after-demo"])
            .env_remove("RUST_LOG"),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "log lines belong in the log file: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains('\u{1b}'), "no colour codes off a terminal: {stdout}");
    let masks = [
        (r"token=[A-Za-z0-9._-]+", "token=TOKEN"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:PORT"),
        (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID"),
        (r"/sepay_test_\w+", "/DATABASE"),
        (r"\S*/up\.log", "SEPAY_DEV_DIR/up.log"),
        (r"\b\d+ ms\b", "N ms"),
        // a repeat that arrives after its booking (a busy machine) is flagged, one before it not
        (r"\d+ flagged duplicate", "N flagged duplicate"),
    ];
    let mut masked = stdout.to_string();
    for (pattern, with) in masks {
        masked = regex::Regex::new(pattern)
            .unwrap()
            .replace_all(&masked, with)
            .into_owned();
    }
    let snapshot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/up_demo.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &masked).unwrap();
    }
    let expected = std::fs::read_to_string(&snapshot).unwrap_or_default();
    assert_eq!(masked, expected, "UPDATE_SNAPSHOTS=1 rewrites {}", snapshot.display());
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
    let mut child = sepay_dev_command(&db, &nats)
        .args(["up"])
        .env("INGRESS_ADDR", format!("127.0.0.1:{ingress_port}"))
        .env("INGRESS_ADMIN_ADDR", format!("127.0.0.1:{ingress_admin_port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    started(&mut child).await;
    let ready = reqwest::get(format!("http://127.0.0.1:{ingress_admin_port}/readyz"))
        .await
        .unwrap();
    assert!(ready.status().is_success());
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    stopped(&mut child).await;
}

/// Waits for `up`'s last start-up line, printed once every service is running.
async fn started(up: &mut std::process::Child) {
    let stdout = up.stdout.take().unwrap();
    let started = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("Ctrl-C stops everything"))
    });
    let started = tokio::time::timeout(Duration::from_secs(30), started).await;
    assert!(matches!(started, Ok(Ok(true))), "up never finished starting");
}

/// Waits for `up` to exit after SIGTERM; it must exit successfully.
async fn stopped(up: &mut std::process::Child) {
    let exited = eventually(Duration::from_secs(10), || {
        let status = up.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(exited.expect("still running 10 s after SIGTERM").success());
}

/// `sepayctl admin-token`, `endpoint create` and `sepay-dev demo` find a running `up`'s
/// addresses (here all on ports it picked) with nothing set; once it stops, the defaults again.
/// `demo` with no simulator to talk to says so in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_finds_a_running_up() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let dir = common::dev_dir(&db);
    let mut up = sepay_dev_command(&db, &nats)
        .args(["up"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    started(&mut up).await;
    let running: Value = serde_json::from_slice(&std::fs::read(dir.join("up.json")).unwrap()).unwrap();
    let (ingress, connector) = (
        running["public_base_url"].as_str().unwrap().to_owned(),
        running["connector_url"].as_str().unwrap().to_owned(),
    );
    assert_ne!(ingress, "http://127.0.0.1:8080", "up bound a port of its own");
    // what a person types, with none of the address settings
    let ctl = |args: &[&str]| {
        common::json_answer(
            Command::new(sepay_testkit::bin("sepayctl"))
                .arg("--json")
                .args(args)
                .env("DATABASE_URL", &db.config.database_url)
                .env("SEPAY_DEV_DIR", &dir)
                .env("SEPAY_DEV_MODE", "true")
                .env_remove("PUBLIC_BASE_URL")
                .env_remove("CONNECTOR_PUBLIC_URL"),
        )
    };
    let ws = workspaces::create_workspace(&db.pool, "Shop")
        .await
        .unwrap()
        .id
        .to_string();
    let token = ctl(&["admin-token", "--ws", &ws, "--user", "boss"]);
    assert!(
        token["login_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{connector}/login")),
        "{token}"
    );
    let endpoint = ctl(&["endpoint", "create", "--ws", &ws]);
    assert!(
        endpoint["webhook_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{ingress}/api/v1/webhooks/sepay/")),
        "{endpoint}"
    );
    // the demo finds the simulator and the ingress, and books its transaction
    let demo = run_to_end(
        Command::new(sepay_testkit::bin("sepay-dev"))
            .args(["--json", "demo"])
            .env("DATABASE_URL", &db.config.database_url)
            .env("SEPAY_DEV_DIR", &dir)
            .env_remove("SIM_URL")
            .env_remove("PUBLIC_BASE_URL"),
    )
    .await;
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    let report: Value = serde_json::from_slice(&demo.stdout).unwrap();
    assert_eq!(report["transaction"]["amount"], json!("2277000"), "{report}");
    // `up` stops: its file goes, and the defaults apply again
    assert!(
        Command::new("kill")
            .args(["-TERM", &up.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    stopped(&mut up).await;
    assert!(!dir.join("up.json").exists());
    let token = ctl(&["admin-token", "--ws", &ws, "--user", "boss"]);
    assert!(
        token["login_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:8082/login"),
        "{token}"
    );
    let nowhere = format!("http://127.0.0.1:{}", sepay_testkit::free_port());
    let out = run_to_end(
        Command::new(sepay_testkit::bin("sepay-dev"))
            .args(["demo", "--sim-url", &nowhere])
            .env("DATABASE_URL", &db.config.database_url)
            .env("SEPAY_DEV_DIR", &dir),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        stderr.trim(),
        format!(
            "sepay-dev: error: no SePay simulator answers at {nowhere}: start everything with `sepay-dev up --demo`, or point --sim-url (SIM_URL) at a running simulator"
        )
    );
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
    // the baselines: a plain insert, and the reference's Express handler where node and npm exist
    assert!(
        report["baselines"]["plain_insert_per_s"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(report["baselines"]["synchronous_commit"].is_string(), "{report}");
    assert!(
        report["ingress"]["vs_plain_insert"].as_f64().unwrap() > 0.0,
        "{}",
        report["ingress"]
    );
    let on_path = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if on_path("node") && on_path("npm") {
        let express = &report["express"];
        assert!(express["per_s"].as_f64().unwrap() > 0.0, "{report}");
        assert_eq!(report["baselines"]["express_per_s"], express["per_s"]);
        assert!(express["ack_ms"]["p99"].as_f64().unwrap() > 0.0, "{express}");
        // its key is accepted; it refuses only the deliveries without a SePay id (at this size
        // there are no repeats to race their first copy)
        assert!(express["without_id"].as_u64().unwrap() > 0, "{express}");
        assert_eq!(express["failed"], express["without_id"], "{express}");
        assert!(report["ingress"]["vs_express"].as_f64().unwrap() > 0.0);
    } else {
        assert_eq!(report["express"], Value::Null);
        assert!(!report["express_skipped"].as_str().unwrap().is_empty(), "{report}");
        assert_eq!(report["ingress"]["vs_express"], Value::Null);
    }
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
        assert!(round["vs_plain_insert"].as_f64().unwrap() > 0.0, "{round}");
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
