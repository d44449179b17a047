//! The `reconciliation` scenario's bank: sepay-sim holds the transactions and sends the
//! webhooks (some dropped, some sent twice) to the provisioned endpoint, while two reconcilers
//! run over and over against the same ledger. Every transaction SePay knows must be booked
//! once, whichever path brought it first.

use super::{Rng, Sent};
use anyhow::Context;
use sepay_api::{SepayClient, SepayConfig};
use sepay_bus::{Bus, ControlRequest};
use sepay_provisioner::{Provisioner, ProvisionerConfig};
use sepay_sim::client::SimClient;
use sepay_store::PgPool;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A workspace connected to a simulator of its own, its webhook provisioned to the ingress.
pub struct SimBank {
    pub(super) sim: SimClient,
    pub(super) account: Value,
    pub(super) company: Value,
    pub(super) client_id: String,
    pub(super) provisioner: Arc<Provisioner>,
    pub(super) ws_id: Uuid,
    pub(super) stop: CancellationToken,
}

impl Drop for SimBank {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl SimBank {
    /// `tune` sets the simulator's and the provisioner's settings the scenario needs (the
    /// balance gap's grace, short-lived access tokens, a webhook health schedule).
    pub async fn start(
        db: &PgPool,
        bus: Bus,
        ws_id: Uuid,
        ingress_base: &str,
        tune: impl FnOnce(&mut sepay_sim::SimConfig, &mut ProvisionerConfig),
    ) -> anyhow::Result<Self> {
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let sim_url = format!("http://{}", listener.local_addr()?);
        let mut sim_config = sepay_sim::SimConfig {
            sim_auto_approve: true,
            sim_rate_limit_per_sec: 1000,
            ..Default::default()
        };
        let mut config = ProvisionerConfig {
            public_base_url: ingress_base.to_owned(),
            ..Default::default()
        };
        tune(&mut sim_config, &mut config);
        tokio::spawn(sepay_sim::serve(listener, sim_config, stop.clone()));
        let sim = SimClient {
            base: sim_url.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        };
        let company = sim.post("/sim/companies", json!({"name": "Faults"})).await?["id"].clone();
        let client = sim
            .post(
                "/sim/oauth-clients",
                json!({"company_id": company, "redirect_uris": [REDIRECT]}),
            )
            .await?;
        let account = sim.post("/sim/bank-accounts", json!({"company_id": company})).await?;
        config.sepay = SepayConfig {
            sepay_base_url: sim_url,
            sepay_client_id: client["client_id"].as_str().context("client_id")?.into(),
            sepay_client_secret: client["client_secret"].as_str().context("client_secret")?.into(),
            sepay_requests_per_sec: 200,
            sepay_max_retry_wait_secs: 2,
            ..config.sepay
        };
        let provisioner = Provisioner::new(config, db.clone(), bus)?;
        let bank = Self {
            sim,
            account,
            company,
            client_id: provisioner.config.sepay.sepay_client_id.clone(),
            provisioner,
            ws_id,
            stop,
        };
        bank.connect().await?;
        sepay_provisioner::sync_and_provision(&bank.provisioner, ws_id).await?;
        Ok(bank)
    }

    /// A transfer of a random amount on `account` (a third of them out), made at SePay.
    pub(super) async fn random_transfer(&self, account: &Value, rng: &mut Rng) -> anyhow::Result<Sent> {
        let magnitude = 1_000 + rng.below(5_000_000) as i64;
        let out = rng.below(3) == 0;
        let tx = self
            .sim
            .post(
                "/sim/transactions",
                json!({"bank_account_id": account["id"], "transfer_type": if out { "out" } else { "in" }, "amount": magnitude}),
            )
            .await?;
        Ok(Sent {
            id: tx["id"].as_i64().context("transaction id")?,
            amount: if out { -magnitude } else { magnitude },
            copies: 1,
            posts: 0,
            // SePay holds it: it must be booked, by its webhook or by reconciliation
            accepted: true,
        })
    }

    /// The scenario is over: its connection is revoked, so later scenarios' provisioners (which
    /// serve every connected workspace of the fault database) leave it and its stopped simulator
    /// alone.
    pub(super) async fn close(&self) -> anyhow::Result<()> {
        sepay_store::connections::mark_revoked(&self.provisioner.db, self.ws_id).await?;
        Ok(())
    }

    /// The admin's OAuth code flow, consent approved at once by the simulator; the grant stored
    /// as the connector's callback stores it.
    pub(super) async fn connect(&self) -> anyhow::Result<()> {
        let api = SepayClient::new(&self.provisioner.config.sepay);
        let request = api.authorize_request(REDIRECT)?;
        let redirect = self.sim.http.get(&request.url).send().await?;
        let location = redirect
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .context("authorize gave no redirect")?;
        let pairs: HashMap<String, String> = url::Url::parse(location)?.query_pairs().into_owned().collect();
        let code = pairs.get("code").context("authorize gave no code")?;
        let grant = api.exchange_code(code, &request.pkce_verifier, REDIRECT).await?;
        self.provisioner.tokens.store_grant(self.ws_id, &grant).await?;
        Ok(())
    }

    /// `count` transactions over `duration`, one in five webhooks dropped and one in ten sent
    /// twice, while two reconcilers run back to back; one more reconciliation after the load (the
    /// schedule's). The extra JSON says what each path did.
    pub async fn load(&self, count: usize, duration: Duration, seed: u64) -> anyhow::Result<(Vec<Sent>, Value)> {
        let mut rng = Rng(seed);
        let runs = Arc::new(AtomicUsize::new(0));
        let inserted = Arc::new(AtomicUsize::new(0));
        let load_done = CancellationToken::new();
        let reconcilers: Vec<_> = (0..2)
            .map(|_| {
                let (p, ws_id, runs, inserted, done) = (
                    self.provisioner.clone(),
                    self.ws_id,
                    runs.clone(),
                    inserted.clone(),
                    load_done.clone(),
                );
                tokio::spawn(async move {
                    while !done.is_cancelled() {
                        let outcome =
                            sepay_provisioner::reconcile_requested(&p, &ControlRequest::workspace(ws_id)).await?;
                        runs.fetch_add(1, Ordering::Relaxed);
                        inserted.fetch_add(outcome.inserted, Ordering::Relaxed);
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        let gap = duration.div_f64(count.max(1) as f64);
        let started = tokio::time::Instant::now();
        let mut sent = Vec::with_capacity(count);
        for n in 0..count {
            tokio::time::sleep_until(started + gap.mul_f64(n as f64)).await;
            match rng.below(10) {
                0 | 1 => self.sim.post("/sim/faults", json!({"drop_deliveries": 1})).await?,
                2 => self.sim.post("/sim/faults", json!({"duplicate_deliveries": 1})).await?,
                _ => Value::Null,
            };
            sent.push(self.random_transfer(&self.account, &mut rng).await?);
        }
        load_done.cancel();
        for reconciler in reconcilers {
            reconciler.await??;
        }
        let last =
            sepay_provisioner::reconcile_requested(&self.provisioner, &ControlRequest::workspace(self.ws_id)).await?;
        let deliveries = self.sim.get("/sim/deliveries").await?;
        let deliveries = deliveries.as_array().map(Vec::as_slice).unwrap_or_default();
        for s in &mut sent {
            s.posts = deliveries.iter().filter(|d| d["transaction_id"] == s.id).count() as u32;
        }
        let dropped = deliveries
            .iter()
            .filter(|d| d["error"] == "dropped by fault injection")
            .count();
        let extra = json!({
            "webhooks_dropped": dropped,
            "reconciliation_runs_during_load": runs.load(Ordering::Relaxed),
            "inserted_by_reconciliation_during_load": inserted.load(Ordering::Relaxed),
            "inserted_by_final_reconciliation": last.inserted,
        });
        self.close().await?;
        Ok((sent, extra))
    }

    /// `count` transactions over `duration`, every webhook of one in ten dropped (every attempt),
    /// no reconciliation schedule: the running balance of the next delivery on the account
    /// reveals each loss, the gap's reconciliation books it; a loss at the very end is found by
    /// the trailing balance check. Reports how long each lost transaction took to be booked.
    pub async fn load_lost_by_balance(
        &self,
        store: &PgPool,
        count: usize,
        duration: Duration,
        seed: u64,
    ) -> anyhow::Result<(Vec<Sent>, Value)> {
        let mut rng = Rng(seed);
        let gap = duration.div_f64(count.max(1) as f64);
        let started = tokio::time::Instant::now();
        let mut sent = Vec::with_capacity(count);
        // (id, made at) of every transaction whose webhook SePay lost
        let mut lost: Vec<(i64, tokio::time::Instant)> = Vec::new();
        let watching = CancellationToken::new();
        let watcher = tokio::spawn({
            let (p, done) = (self.provisioner.clone(), watching.clone());
            async move {
                let mut checked = 0;
                while !done.is_cancelled() {
                    sepay_provisioner::gaps::pass(&p, &mut checked).await?;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                anyhow::Ok(checked)
            }
        });
        let mut booked_at: HashMap<i64, tokio::time::Instant> = HashMap::new();
        for n in 0..count {
            tokio::time::sleep_until(started + gap.mul_f64(n as f64)).await;
            let dropped = rng.below(10) == 0;
            if dropped {
                self.sim.post("/sim/faults", json!({"drop_deliveries": 1})).await?;
            }
            let transfer = self.random_transfer(&self.account, &mut rng).await?;
            if dropped {
                lost.push((transfer.id, tokio::time::Instant::now()));
            }
            sent.push(transfer);
            note_booked(store, self.ws_id, &lost, &mut booked_at).await?;
        }
        // the last loss has no later delivery: the trailing check finds it
        let load_end = tokio::time::Instant::now();
        let mut trailing_reconciled = 0;
        let deadline = load_end + Duration::from_secs(120);
        // as the provisioner's schedule does, but every 10 s rather than every 5 minutes
        let mut trailing_due = load_end + Duration::from_secs(10);
        while booked_at.len() < lost.len() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            note_booked(store, self.ws_id, &lost, &mut booked_at).await?;
            if tokio::time::Instant::now() > trailing_due && booked_at.len() < lost.len() {
                trailing_due = tokio::time::Instant::now() + Duration::from_secs(10);
                trailing_reconciled += sepay_provisioner::gaps::trailing_pass(&self.provisioner).await?;
            }
        }
        watching.cancel();
        watcher.await??;
        let mut latencies: Vec<f64> = lost
            .iter()
            .filter_map(|(id, made)| booked_at.get(id).map(|at| (*at - *made).as_secs_f64()))
            .collect();
        latencies.sort_by(f64::total_cmp);
        let quantile = |q: f64| -> Option<f64> {
            (!latencies.is_empty()).then(|| latencies[((latencies.len() - 1) as f64 * q).round() as usize])
        };
        let gaps = sepay_store::balances::gap_summary(store, self.ws_id).await?;
        let extra = json!({
            "webhooks_lost": lost.len(),
            "lost_booked": booked_at.len(),
            "detection_p50_secs": quantile(0.5),
            "detection_p99_secs": quantile(0.99),
            "detection_max_secs": latencies.last(),
            "gaps_opened": gaps.0,
            "gaps_flagged": gaps.1,
            "trailing_reconciliations": trailing_reconciled,
        });
        self.close().await?;
        Ok((sent, extra))
    }
}

/// Notes when each lost transaction is first seen booked.
async fn note_booked(
    store: &PgPool,
    ws_id: Uuid,
    lost: &[(i64, tokio::time::Instant)],
    booked_at: &mut HashMap<i64, tokio::time::Instant>,
) -> anyhow::Result<()> {
    let waiting: Vec<String> = lost
        .iter()
        .filter(|(id, _)| !booked_at.contains_key(id))
        .map(|(id, _)| format!("sepay:{id}"))
        .collect();
    if waiting.is_empty() {
        return Ok(());
    }
    let booked = sepay_store::ledger::booked_refs(store, ws_id, &waiting).await?;
    let now = tokio::time::Instant::now();
    for reference in booked {
        if let Some(id) = reference.strip_prefix("sepay:").and_then(|id| id.parse().ok()) {
            booked_at.entry(id).or_insert(now);
        }
    }
    Ok(())
}
