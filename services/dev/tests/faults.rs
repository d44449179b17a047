//! The fault suite (`sepay-dev faults`) with small sizes: every scenario books every accepted
//! delivery exactly once, with matching sums, nothing left `received` and no AI credit reserved.

use serde_json::{Value, json};
use std::process::Command;

#[tokio::test]
async fn every_fault_scenario_books_every_accepted_delivery_exactly_once() {
    let (_, nats) = sepay_testkit::test_bus(&sepay_testkit::nats_url()).await;
    let database_url = sepay_testkit::admin_database_url();
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sepay-dev"))
            .args([
                "--json",
                "faults",
                "--deliveries",
                "100",
                "--outage-secs",
                "2",
                "--settle-secs",
                "30",
            ])
            .env("DATABASE_URL", database_url)
            .env("NATS_URL", &nats.nats_url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "sepay-dev faults printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let scenarios = report["scenarios"]
        .as_array()
        .unwrap_or_else(|| panic!("no scenarios: {report}\n{}", String::from_utf8_lossy(&out.stderr)));
    let names: Vec<&str> = scenarios.iter().map(|s| s["fault"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "sepay_retries",
            "processor_sigkill",
            "ingress_nats_outage",
            "postgres_outage",
            "postgres_restart",
            "nats_restart",
            "reconciliation",
            "lost_webhooks_balance"
        ]
    );
    // every webhook SePay lost was found by the running balance (or the trailing check) and booked
    let lost = scenarios
        .iter()
        .find(|s| s["fault"] == "lost_webhooks_balance")
        .unwrap();
    assert!(lost["webhooks_lost"].as_u64().unwrap() > 0, "{lost}");
    assert_eq!(lost["lost_booked"], lost["webhooks_lost"], "{lost}");
    assert_eq!(lost["gaps_flagged"], json!(0), "{lost}");
    for s in scenarios {
        assert_eq!(s["settled"], json!(true), "{s}");
        assert_eq!(s["deliveries"], json!(100), "every transaction accepted: {s}");
        assert_eq!(s["lost"], json!(0), "{s}");
        assert_eq!(s["duplicates"], json!(0), "{s}");
        assert_eq!(s["booked"], json!(100), "{s}");
        assert_eq!(s["sum_match"], json!(true), "{s}");
        assert_eq!(s["received_left"], json!(0), "{s}");
        assert_eq!(s["ai_credits"]["reserved"], json!(0), "{s}");
        assert_eq!(s["ok"], json!(true), "{s}");
    }
    assert!(
        scenarios[0]["posts"].as_u64().unwrap() > 100,
        "SePay's retries post copies: {}",
        scenarios[0]
    );
    let reconciliation = &scenarios[6];
    assert!(
        reconciliation["webhooks_dropped"].as_u64().unwrap() > 0
            && reconciliation["reconciliation_runs_during_load"].as_u64().unwrap() > 1,
        "webhooks were lost and reconciliation ran during the load: {reconciliation}"
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // about 30 s alone on 2 cores (debug); the bound leaves room for a busy machine
    assert!(started.elapsed().as_secs() < 120, "took {:?}", started.elapsed());
}
