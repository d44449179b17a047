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
                "60",
                // the provider scenarios: health checks every 3 s, a 10 s token outage
                "--webhook-health-secs",
                "3",
                "--token-outage-secs",
                "10",
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
            "lost_webhooks_balance",
            "provider_webhook_deleted",
            "provider_refresh_outage",
            "provider_grant_revoked",
            "provider_grant_revoked_webhooks_kept"
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
    let provider = |name: &str| scenarios.iter().find(|s| s["fault"] == name).unwrap();
    let states = |s: &Value| -> Vec<String> {
        s["statuses_after_fault"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    // webhooks deleted at SePay: repaired by the health schedule, what they missed reconciled, and
    // new transactions delivered by webhook again, without an admin
    let deleted = provider("provider_webhook_deleted");
    assert_eq!(deleted["admin_actions"], json!(0), "{deleted}");
    assert!(deleted["missed_by_webhooks"].as_u64().unwrap() > 0, "{deleted}");
    assert!(deleted["webhook_repairs"].as_u64().unwrap() >= 1, "{deleted}");
    assert!(deleted["webhook_back_secs"].is_number(), "{deleted}");
    assert!(deleted["deliveries_flow_secs"].is_number(), "{deleted}");
    assert_eq!(states(deleted), ["active"], "{deleted}");
    // a token outage: degraded, never needing a reconnect; the account added meanwhile provisioned
    // and what webhooks lost meanwhile booked once tokens refresh again
    let outage = provider("provider_refresh_outage");
    assert_eq!(outage["admin_actions"], json!(0), "{outage}");
    assert_eq!(states(outage), ["active", "degraded", "active"], "{outage}");
    assert!(outage["missed_by_webhooks"].as_u64().unwrap() > 0, "{outage}");
    assert!(
        outage["new_account_provisioned_after_outage_secs"].is_number(),
        "{outage}"
    );
    // a revoked grant: shown as needing a reconnect; after the scripted reconnect everything is
    // booked, whether SePay deleted the client's webhooks (repaired at the reconnect's sync) or not
    for name in ["provider_grant_revoked", "provider_grant_revoked_webhooks_kept"] {
        let revoked = provider(name);
        assert_eq!(revoked["admin_actions"], json!(1), "{revoked}");
        assert_eq!(states(revoked), ["active", "needs_reconnect", "active"], "{revoked}");
        assert!(revoked["needs_reconnect_shown_secs"].is_number(), "{revoked}");
    }
    assert!(
        provider("provider_grant_revoked")["missed_by_webhooks"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(
        provider("provider_grant_revoked_webhooks_kept")["missed_by_webhooks"],
        json!(0)
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // about 60 s alone on 2 cores (debug); the bound leaves room for a busy machine
    assert!(started.elapsed().as_secs() < 240, "took {:?}", started.elapsed());
}
