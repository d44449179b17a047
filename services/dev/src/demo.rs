//! The whole loop on the simulator, as `sepay-dev up --demo` shows it: connect a workspace
//! through the real OAuth flow, let the provisioner sync and provision, fire a burst of
//! transactions (with duplicated and lost webhooks), reconcile, and account for every one; then
//! Striga's five documented SEPA webhooks, signed as Striga signs them, into the same workspace.

use anyhow::{Context, bail};
use sepay_api::{SepayClient, SepayConfig};
use sepay_bus::{Bus, ControlRequest, ControlSubject};
use sepay_connection::Tokens;
use sepay_sim::client::SimClient;
use sepay_store::PgPool;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const BURST: usize = 20;

pub struct Report {
    pub value: Value,
    pub table: String,
}

async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if started.elapsed() > limit {
            bail!("demo: {what} did not happen within {} s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `ws_id`: the (new, empty) demo workspace. `sepay` is the OAuth client the connector registered at the simulator (so the provisioner,
/// which shares it, can refresh the demo's tokens); `redirect` its registered callback.
/// `ingress_url`: where the Striga step posts.
pub async fn run(
    db: &PgPool,
    bus: &Bus,
    ws_id: Uuid,
    sim_url: &str,
    ingress_url: &str,
    sepay: &SepayConfig,
    redirect: &str,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let sim = SimClient {
        base: sim_url.to_owned(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
    };
    let state = sim.get("/sim/state").await?;
    let company = state["oauth_clients"]
        .as_array()
        .and_then(|clients| {
            clients
                .iter()
                .find(|c| c["client_id"] == sepay.sepay_client_id.as_str())
        })
        .map(|c| c["company_id"].clone())
        .context("the simulator does not know the connector's OAuth client")?;
    let mut accounts = Vec::new();
    for bank in ["Vietcombank", "MBBank"] {
        accounts.push(
            sim.post(
                "/sim/bank-accounts",
                json!({"company_id": company, "bank_short_name": bank}),
            )
            .await?,
        );
    }
    let sepay = sepay.clone();
    let company_accounts = sim.get("/sim/state").await?["bank_accounts"]
        .as_array()
        .map(|all| all.iter().filter(|a| a["company_id"] == company).count())
        .unwrap_or(accounts.len()) as i64;

    // 1. connect through the real OAuth flow: authorize (PKCE), approve on the consent form, exchange
    let api = Arc::new(SepayClient::new(&sepay));
    let request = api.authorize_request(redirect)?;
    let query: Vec<(String, String)> = url::Url::parse(&request.url)?.query_pairs().into_owned().collect();
    let mut form = vec![("decision".to_owned(), "approve".to_owned())];
    form.extend(query);
    let approved = sim
        .http
        .post(format!("{sim_url}/oauth/authorize/decision"))
        .form(&form)
        .send()
        .await?;
    let location = approved
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .context("consent gave no redirect")?;
    let pairs: std::collections::HashMap<String, String> =
        url::Url::parse(location)?.query_pairs().into_owned().collect();
    if pairs.get("state") != Some(&request.state) {
        bail!("demo: the OAuth state came back altered");
    }
    let code = pairs.get("code").context("consent gave no code")?;
    let grant = api.exchange_code(code, &request.pkce_verifier, redirect).await?;
    let tokens = Tokens::new(db.clone(), api, Arc::new(sepay.keyring()?));
    tokens.store_grant(ws_id, &grant).await?;
    bus.ensure_control_stream().await?;
    bus.publish_control(
        ControlSubject::ConnectionConnected,
        &format!("demo-connected-{}", ws_id),
        &ControlRequest::workspace(ws_id),
    )
    .await?;
    let connected_ms = started.elapsed().as_millis();

    // 2. the provisioner syncs the accounts and provisions one webhook each
    let provisioned = wait_for(
        "webhook provisioning (is sepay-provisioner running?)",
        Duration::from_secs(20),
        || async {
            let live = sepay_store::provisioning::live_endpoint_count(db, ws_id).await?;
            // every account of the company gets one, not only the two made here
            Ok((live >= company_accounts).then_some(live))
        },
    )
    .await?;
    let provisioned_ms = started.elapsed().as_millis();

    // 3. a burst: two webhooks delivered twice (SePay's retries), one lost
    sim.post("/sim/faults", json!({"duplicate_deliveries": 2, "drop_deliveries": 1}))
        .await?;
    let mut sent_total = rust_decimal::Decimal::ZERO;
    for n in 0..BURST {
        let account = &accounts[n % accounts.len()];
        let (kind, amount) = if n % 4 == 3 {
            ("out", 50_000 + n as i64)
        } else {
            ("in", 100_000 + n as i64)
        };
        sent_total += if kind == "in" {
            amount.into()
        } else {
            rust_decimal::Decimal::from(-amount)
        };
        sim.post(
            "/sim/transactions",
            json!({"bank_account_id": account["id"], "transfer_type": kind, "amount": amount, "content": format!("DEMO DH{n:04}")}),
        )
        .await?;
    }
    let booked = |ws: Uuid| async move { Ok::<_, anyhow::Error>(sepay_store::ledger::totals(db, ws).await?.0) };
    wait_for("webhook bookings", Duration::from_secs(20), || async {
        Ok((booked(ws_id).await? >= BURST as i64 - 1).then_some(()))
    })
    .await?;
    let booked_by_webhooks = booked(ws_id).await?;
    let burst_ms = started.elapsed().as_millis();

    // 4. reconciliation finds the lost one
    bus.publish_control(
        ControlSubject::ReconcileRequested,
        &format!("demo-reconcile-{}", ws_id),
        &ControlRequest::workspace(ws_id),
    )
    .await?;
    let run = wait_for("reconciliation", Duration::from_secs(20), || async {
        let runs = sepay_store::provisioning::list_runs(db, ws_id, 1).await?;
        Ok(runs.into_iter().next().filter(|r| r.status != "running"))
    })
    .await?;
    wait_for("the recovered booking", Duration::from_secs(20), || async {
        Ok((booked(ws_id).await? >= BURST as i64).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let deliveries: Vec<Value> = serde_json::from_value(sim.get("/sim/deliveries").await?)?;
    let ours: Vec<&Value> = deliveries
        .iter()
        .filter(|d| d["attempt"].as_i64() != Some(0) || d["error"].is_string())
        .collect();
    let delivered = ours.iter().filter(|d| d["success"] == true).count();
    let answered_duplicate = ours
        .iter()
        .filter(|d| d["response_body"].as_str().is_some_and(|b| b.contains("duplicate")))
        .count();
    let lost = ours
        .iter()
        .filter(|d| d["error"] == "dropped by fault injection")
        .count();
    // SePay's books, before Striga's are added to the workspace
    let (booked_total, booked_sum) = sepay_store::ledger::totals(db, ws_id).await?;
    let striga = striga_step(db, ws_id, ingress_url, &sepay).await?;
    let total_ms = started.elapsed().as_millis();
    let value = json!({
        "workspace": ws_id, "webhooks_provisioned": provisioned, "sent": BURST, "webhook_deliveries_2xx": delivered,
        "answered_duplicate": answered_duplicate, "lost": lost, "booked_by_webhooks": booked_by_webhooks,
        "reconciliation": {"run": run.id, "fetched": run.fetched, "inserted": run.inserted, "status": run.status},
        "booked": booked_total, "sum_sent": sent_total.to_string(), "sum_booked": booked_sum.to_string(),
        "striga": striga.value,
        "ms": {"connected": connected_ms, "provisioned": provisioned_ms, "burst_booked": burst_ms, "total": total_ms},
    });
    let table = format!(
        "demo (full loop, workspace {ws_id}):\n\
         | step | result |\n|---|---|\n\
         | OAuth connect (PKCE, consent approved) | {connected_ms} ms |\n\
         | accounts synced, one webhook each | {provisioned} at {provisioned_ms} ms |\n\
         | transactions sent | {BURST} (sum {sent_total} VND) |\n\
         | webhook deliveries answered 2xx | {delivered} ({repeats} repeats of a transaction, answered without booking; {answered_duplicate} flagged duplicate) |\n\
         | webhooks lost | {lost} |\n\
         | booked from webhooks | {booked_by_webhooks} |\n\
         | reconciliation run {run_id} | fetched {fetched}, inserted {inserted} ({status}) |\n\
         | booked in all | {booked_total} (sum {booked_sum} VND) — {verdict} |\n\
         | Striga: the five documented SEPA webhooks, signed, into an EUR wallet | {striga} |\n\
         | total | {total_ms} ms |",
        striga = striga.summary,
        ws_id = ws_id,
        run_id = run.id,
        fetched = run.fetched,
        inserted = run.inserted,
        status = run.status,
        repeats = delivered as i64 - booked_by_webhooks,
        verdict = if booked_total == BURST as i64 && booked_sum == sent_total {
            "every transaction exactly once"
        } else {
            "MISMATCH"
        },
    );
    if booked_total != BURST as i64 || booked_sum != sent_total {
        bail!("demo: booked {booked_total} for {BURST} sent (sum {booked_sum} vs {sent_total})\n{table}");
    }
    Ok(Report { value, table })
}

struct StrigaOutcome {
    value: Value,
    summary: String,
}

/// An EUR wallet and a Striga endpoint in the demo workspace; seed 003's five webhooks posted as
/// Striga posts them (to `<url>/tx`, `signature` = HMAC-SHA256 of the body under the API key).
async fn striga_step(
    db: &PgPool,
    ws_id: Uuid,
    ingress_url: &str,
    sepay: &SepayConfig,
) -> anyhow::Result<StrigaOutcome> {
    use sepay_core::striga::samples::ALL as SAMPLES;
    let wallet = sepay_store::workspaces::create_wallet(db, ws_id, "Striga EUR", sepay_core::striga::CURRENCY).await?;
    let api_key = sepay_crypto::generate_api_key();
    let sealed = sepay.keyring()?.seal(
        &sepay_store::endpoints::signing_key_aad(ws_id),
        api_key.expose().as_bytes(),
    );
    let endpoint =
        sepay_store::striga::create_endpoint(db, ingress_url, ws_id, Some(wallet.id), "demo", &sealed).await?;
    let http = reqwest::Client::new();
    for body in SAMPLES {
        let signature = sepay_crypto::hmac::striga_signature(api_key.expose().as_bytes(), body.as_bytes());
        let res = http
            .post(format!("{}/tx", endpoint.webhook_url))
            .header("signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if !res.status().is_success() {
            bail!(
                "demo: a Striga webhook was refused: {} {}",
                res.status(),
                res.text().await?
            );
        }
    }
    // four book (payin, payout debit, two reversals); the payout's COMPLETED settles it
    let (n, sum) = wait_for("the Striga bookings", Duration::from_secs(20), || async {
        let (n, sum) = sepay_store::ledger::wallet_totals(db, wallet.id).await?;
        let payouts = sepay_store::striga::payouts(db, ws_id, 10).await?;
        let settled = payouts.iter().any(|p| p.status == "settled");
        Ok((n >= 4 && settled).then_some((n, sum)))
    })
    .await?;
    let mut payouts = sepay_store::striga::payouts(db, ws_id, 10).await?;
    // by id: the ones updated in the same instant come in either order
    payouts.sort_by(|a, b| a.payout_id.cmp(&b.payout_id));
    let statuses: Vec<String> = payouts
        .iter()
        .map(|p| format!("{}… {}", p.payout_id.chars().take(8).collect::<String>(), p.status))
        .collect();
    if n != 4 || sum != rust_decimal::Decimal::new(40542, 2) {
        bail!("demo: Striga booked {n} for 4 (sum {sum} EUR, 405.42 expected)");
    }
    Ok(StrigaOutcome {
        value: json!({"webhooks": SAMPLES.len(), "booked": n, "sum_eur": sum.to_string(), "payouts": statuses}),
        summary: format!(
            "5 accepted; {n} booked (+5.00, −1.00, +401.20, +0.22 = {sum} EUR); payouts: {}",
            statuses.join(", ")
        ),
    })
}
