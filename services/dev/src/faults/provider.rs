//! The provider's faults. The provisioner runs as a service (its sync and webhook health
//! schedule, balance watch and control consumer) with the scheduled reconciliation off, against
//! a simulator that sends the webhooks; the fault strikes when 40 % of the load is made:
//!
//! - `provider_webhook_deleted`: every webhook of the company deleted at SePay, as a dashboard
//!   admin would;
//! - `provider_refresh_outage`: SePay's token endpoint fails (503) for `--token-outage-secs`
//!   while access tokens live 30 s (half the outage when shorter), so the token expires during
//!   it; meanwhile one webhook in ten is lost (only a reconciliation, which needs the API, can
//!   recover it) and, once the token has expired, a bank account is added at SePay (its webhook
//!   needs the API too);
//! - `provider_grant_revoked`: the grant is revoked at SePay, which deletes the webhooks the
//!   client made; `provider_grant_revoked_webhooks_kept`: the same, webhooks kept (SePay's docs
//!   do not say which). The script reconnects as an admin would, once the page says so.
//!
//! Each reports what an admin had to do (only the reconnect after a revoked grant), how long the
//! connection took to show its state, and how long until deliveries flowed again.

use super::reconciliation::SimBank;
use super::{Rng, Sent};
use chrono::{DateTime, Utc};
use sepay_bus::{Bus, ControlRequest, ControlSubject};
use sepay_store::PgPool;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const SCENARIOS: [&str; 4] = [
    "provider_webhook_deleted",
    "provider_refresh_outage",
    "provider_grant_revoked",
    "provider_grant_revoked_webhooks_kept",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderFault {
    WebhookDeleted,
    RefreshOutage,
    GrantRevoked { delete_webhooks: bool },
}

impl ProviderFault {
    pub fn of(name: &str) -> Option<Self> {
        match name {
            "provider_webhook_deleted" => Some(Self::WebhookDeleted),
            "provider_refresh_outage" => Some(Self::RefreshOutage),
            "provider_grant_revoked" => Some(Self::GrantRevoked { delete_webhooks: true }),
            "provider_grant_revoked_webhooks_kept" => Some(Self::GrantRevoked { delete_webhooks: false }),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ProviderSettings {
    /// `WEBHOOK_HEALTH_INTERVAL_SECS` of the provisioner (the acceptance's 10 s by default).
    pub health_interval_secs: u64,
    pub token_outage: Duration,
    /// How long the scenario waits for what it measures before it gives up.
    pub settle: Duration,
}

/// Access tokens this short-lived are refreshed on every call (the client refreshes a token
/// expiring within a minute), so an outage of the token endpoint is felt at once; a token still
/// valid is used meanwhile, so a shorter outage gets a shorter life (half the outage).
const OUTAGE_ACCESS_TOKEN_TTL_SECS: u64 = 30;

impl ProviderSettings {
    /// Expired halfway through the outage, whatever its length.
    fn access_token_ttl(&self) -> Duration {
        Duration::from_secs((self.token_outage.as_secs() / 2).clamp(2, OUTAGE_ACCESS_TOKEN_TTL_SECS))
    }
}

/// The scenario's bank: the provisioner's schedules set as the acceptance says.
pub async fn start_bank(
    store: &PgPool,
    bus: Bus,
    ws_id: Uuid,
    ingress_base: &str,
    fault: ProviderFault,
    settings: ProviderSettings,
) -> anyhow::Result<SimBank> {
    SimBank::start(store, bus, ws_id, ingress_base, |sim, provisioner| {
        provisioner.reconcile_interval_secs = 0;
        provisioner.webhook_health_interval_secs = settings.health_interval_secs;
        provisioner.balance_trailing_check_secs = 10;
        if fault == ProviderFault::RefreshOutage {
            // expired before the outage ends, whatever its length
            sim.sim_access_token_ttl_secs =
                (settings.token_outage.as_secs() / 2).clamp(2, OUTAGE_ACCESS_TOKEN_TTL_SECS);
        }
    })
    .await
}

/// What the watcher saw, polled every 200 ms.
#[derive(Default)]
struct Seen {
    /// Every transaction made, with when it was made.
    made: Vec<(i64, DateTime<Utc>)>,
    booked_at: HashMap<i64, DateTime<Utc>>,
    /// The connection's status at each change.
    statuses: Vec<(DateTime<Utc>, String)>,
    /// The company's webhooks at SePay at each change of their number.
    webhooks: Vec<(DateTime<Utc>, usize)>,
}

impl Seen {
    /// The first time at or after `after` the connection was in `status` (the status in effect
    /// at `after` counts).
    fn first_status_after(&self, status: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let in_effect = self.statuses.iter().rev().find(|(at, _)| *at <= after);
        if in_effect.is_some_and(|(_, s)| s == status) {
            return Some(after);
        }
        self.statuses
            .iter()
            .find(|(at, s)| *at > after && s == status)
            .map(|(at, _)| *at)
    }
}

fn secs(from: DateTime<Utc>, to: Option<DateTime<Utc>>) -> Option<f64> {
    to.map(|to| (to - from).num_milliseconds() as f64 / 1000.0)
}

async fn watch(
    bank_sim: sepay_sim::client::SimClient,
    company: Value,
    store: PgPool,
    ws_id: Uuid,
    seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let waiting: Vec<String> = {
            let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.made
                .iter()
                .filter(|(id, _)| !seen.booked_at.contains_key(id))
                .map(|(id, _)| format!("sepay:{id}"))
                .collect()
        };
        let booked = sepay_store::ledger::booked_refs(&store, ws_id, &waiting)
            .await
            .unwrap_or_default();
        let status = sepay_store::connections::get(&store, ws_id)
            .await
            .ok()
            .flatten()
            .map(|c| c.status);
        let webhooks = bank_sim.get("/sim/state").await.ok().map(|state| {
            state["webhooks"]
                .as_array()
                .map_or(0, |all| all.iter().filter(|w| w["company_id"] == company).count())
        });
        let now = Utc::now();
        {
            let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            for reference in booked {
                if let Some(id) = reference.strip_prefix("sepay:").and_then(|id| id.parse().ok()) {
                    seen.booked_at.entry(id).or_insert(now);
                }
            }
            if let Some(status) = status.filter(|s| seen.statuses.last().is_none_or(|(_, last)| last != s)) {
                seen.statuses.push((now, status));
            }
            if let Some(n) = webhooks.filter(|n| seen.webhooks.last().is_none_or(|(_, last)| last != n)) {
                seen.webhooks.push((now, n));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl ProviderFault {
    /// Whether deliveries stop until the system repairs the webhooks.
    fn stops_webhooks(self) -> bool {
        matches!(
            self,
            Self::WebhookDeleted | Self::GrantRevoked { delete_webhooks: true }
        )
    }
}

/// When the company's webhooks were listed at SePay again after all had gone, after the fault.
fn webhook_back_at(seen: &Seen, struck_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let gone = seen.webhooks.iter().find(|(at, n)| *at >= struck_at && *n == 0)?.0;
    seen.webhooks
        .iter()
        .find(|(at, n)| *at > gone && *n > 0)
        .map(|(at, _)| *at)
}

/// What the script does as an admin: only a reconnect, once the page shows one is needed.
#[derive(Default)]
struct Admin {
    actions: u32,
    reconnected_at: Option<DateTime<Utc>>,
}

impl Admin {
    async fn tend(
        &mut self,
        bank: &SimBank,
        bus: &Bus,
        fault: ProviderFault,
        seen: &Mutex<Seen>,
        struck_at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        if !matches!(fault, ProviderFault::GrantRevoked { .. }) || self.reconnected_at.is_some() {
            return Ok(());
        }
        let shown = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first_status_after("needs_reconnect", struck_at);
        if shown.is_some() {
            bank.reconnect(bus).await?;
            self.actions += 1;
            self.reconnected_at = Some(Utc::now());
        }
        Ok(())
    }
}

impl SimBank {
    /// The fault itself.
    async fn strike(&self, fault: ProviderFault, settings: ProviderSettings) -> anyhow::Result<()> {
        match fault {
            ProviderFault::WebhookDeleted => {
                for id in self.webhook_ids().await? {
                    self.sim.post(&format!("/sim/webhooks/{id}/delete"), json!({})).await?;
                }
            }
            ProviderFault::RefreshOutage => {
                self.sim
                    .post(
                        "/sim/faults",
                        json!({"token_failures": {"seconds": settings.token_outage.as_secs(), "kind": "5xx"}}),
                    )
                    .await?;
            }
            ProviderFault::GrantRevoked { delete_webhooks } => {
                self.sim
                    .post(
                        "/sim/grants/revoke",
                        json!({"client_id": self.client_id, "delete_webhooks": delete_webhooks}),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn make_transaction(&self, account: &Value, rng: &mut Rng, seen: &Mutex<Seen>) -> anyhow::Result<Sent> {
        let transfer = self.random_transfer(account, rng).await?;
        seen.lock()
            .unwrap_or_else(|p| p.into_inner())
            .made
            .push((transfer.id, Utc::now()));
        Ok(transfer)
    }

    async fn webhook_ids(&self) -> anyhow::Result<Vec<i64>> {
        let state = self.sim.get("/sim/state").await?;
        Ok(state["webhooks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|w| w["company_id"] == self.company)
            .filter_map(|w| w["id"].as_i64())
            .collect())
    }

    /// The admin's reconnect after the page says "needs reconnect": the OAuth flow again, and the
    /// connector's `sepay.connection.connected`.
    async fn reconnect(&self, bus: &Bus) -> anyhow::Result<()> {
        self.connect().await?;
        bus.publish_control(
            ControlSubject::ConnectionConnected,
            &format!("faults-reconnect-{}", Uuid::new_v4()),
            &ControlRequest::workspace(self.ws_id),
        )
        .await?;
        Ok(())
    }

    /// `count` transactions over `duration` on the account SePay sends webhooks for; the fault
    /// when 40 % are made. Returns when every transaction is booked (or `settings.settle` has
    /// passed since the load and the fault ended), with the scenario's figures.
    #[allow(clippy::too_many_arguments)]
    pub async fn load_provider_fault(
        &self,
        store: &PgPool,
        bus: Bus,
        fault: ProviderFault,
        settings: ProviderSettings,
        count: usize,
        duration: Duration,
        seed: u64,
    ) -> anyhow::Result<(Vec<Sent>, Value)> {
        let stop = self.stop.child_token();
        let _stop_on_return = stop.clone().drop_guard();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let service = tokio::spawn(sepay_provisioner::serve(
            listener,
            self.provisioner.config.clone(),
            store.clone(),
            bus.clone(),
            stop.clone(),
        ));
        let seen = Arc::new(Mutex::new(Seen::default()));
        tokio::spawn(watch(
            self.sim.clone(),
            self.company.clone(),
            store.clone(),
            self.ws_id,
            seen.clone(),
            stop.clone(),
        ));

        let mut rng = Rng(seed);
        // the bank account added at SePay during a token outage gets the last transactions
        let tail = if fault == ProviderFault::RefreshOutage {
            (count / 10).clamp(1, 10)
        } else {
            0
        };
        let main = count - tail;
        let fault_at = main * 2 / 5;
        // where webhooks stopped, the last fifth is made once they are back: new transactions must
        // arrive by webhook again
        let resume_at = main * 4 / 5;
        let gap = duration.div_f64(main.max(1) as f64);
        let mut started = tokio::time::Instant::now();
        let mut sent = Vec::with_capacity(count);
        let mut struck_at = Utc::now();
        let mut admin = Admin::default();
        let mut new_account_provisioned_at = None;
        let after = |from: DateTime<Utc>, span: Duration| from + chrono::Duration::from_std(span).unwrap_or_default();
        for n in 0..main {
            tokio::time::sleep_until(started + gap.mul_f64(n as f64)).await;
            if n == fault_at {
                struck_at = Utc::now();
                self.strike(fault, settings).await?;
            }
            if n == resume_at && fault.stops_webhooks() {
                let paused = tokio::time::Instant::now();
                while webhook_back_at(&seen.lock().unwrap_or_else(|p| p.into_inner()), struck_at).is_none() {
                    admin.tend(self, &bus, fault, &seen, struck_at).await?;
                    anyhow::ensure!(
                        Utc::now() < after(struck_at, settings.settle),
                        "the webhooks never came back"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                started += paused.elapsed();
            }
            let outage = fault == ProviderFault::RefreshOutage
                && n >= fault_at
                && Utc::now() < after(struck_at, settings.token_outage);
            if outage && rng.below(10) == 0 {
                self.sim.post("/sim/faults", json!({"drop_deliveries": 1})).await?;
            }
            sent.push(self.make_transaction(&self.account, &mut rng, &seen).await?);
            admin.tend(self, &bus, fault, &seen, struck_at).await?;
        }
        // a token outage: once the access token has expired, a bank account is added at SePay;
        // its webhook needs the API, so it is provisioned only after the outage
        if fault == ProviderFault::RefreshOutage {
            let expired = after(struck_at, settings.access_token_ttl() + Duration::from_secs(1));
            if let Ok(wait) = (expired - Utc::now()).to_std() {
                tokio::time::sleep(wait).await;
            }
            let account = &self
                .sim
                .post("/sim/bank-accounts", json!({"company_id": self.company}))
                .await?;
            let end = after(struck_at, settings.token_outage);
            if let Ok(wait) = (end - Utc::now()).to_std() {
                tokio::time::sleep(wait).await;
            }
            // its webhook is provisioned by the sync schedule once tokens refresh again
            loop {
                let state = self.sim.get("/sim/state").await?;
                let provisioned = state["webhooks"]
                    .as_array()
                    .is_some_and(|all| all.iter().any(|w| w["bank_account_id"] == account["id"]));
                if provisioned {
                    break;
                }
                anyhow::ensure!(
                    Utc::now() < after(end, settings.settle),
                    "the bank account added during the outage never got a webhook"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            new_account_provisioned_at = Some(Utc::now());
            for _ in 0..tail {
                sent.push(self.make_transaction(account, &mut rng, &seen).await?);
            }
        }
        // done when everything is booked and the connection is active again (after the outage,
        // after the reconnect, which waits for the revocation to show)
        let load_end = Utc::now();
        let active_since = match fault {
            ProviderFault::RefreshOutage => after(struck_at, settings.token_outage),
            _ => struck_at,
        };
        loop {
            admin.tend(self, &bus, fault, &seen, struck_at).await?;
            let done = {
                let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                let active_from = admin.reconnected_at.unwrap_or(active_since);
                // a revoked grant is done only once the admin has reconnected (with its webhooks
                // kept, everything may be booked before the revocation is even noticed)
                let reconnected =
                    admin.reconnected_at.is_some() || !matches!(fault, ProviderFault::GrantRevoked { .. });
                reconnected
                    && seen.booked_at.len() >= sent.len()
                    && seen.first_status_after("active", active_from).is_some()
            };
            if done || Utc::now() > after(load_end, settings.settle) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        stop.cancel();
        let _ = service.await;

        // the simulator's delivery log: which transactions no webhook ever brought
        let deliveries = self.sim.get("/sim/deliveries").await?;
        let deliveries = deliveries.as_array().map(Vec::as_slice).unwrap_or_default();
        for s in &mut sent {
            s.posts = deliveries.iter().filter(|d| d["transaction_id"] == s.id).count() as u32;
        }
        let repairs = sepay_store::provisioning::list_repairs(store, self.ws_id, 1000).await?;
        let extra = {
            let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            figures(
                &seen,
                fault,
                settings,
                &sent,
                deliveries,
                Taken {
                    struck_at,
                    admin_actions: admin.actions,
                    reconnected_at: admin.reconnected_at,
                    new_account_provisioned_at,
                    repairs: repairs.len(),
                },
            )
        };
        self.close().await?;
        Ok((sent, extra))
    }
}

/// What the script did and when, beside what the watcher saw.
struct Taken {
    struck_at: DateTime<Utc>,
    admin_actions: u32,
    reconnected_at: Option<DateTime<Utc>>,
    new_account_provisioned_at: Option<DateTime<Utc>>,
    repairs: usize,
}

/// The scenario's figures and its own verdict (`provider_ok`).
fn figures(
    seen: &Seen,
    fault: ProviderFault,
    settings: ProviderSettings,
    sent: &[Sent],
    deliveries: &[Value],
    taken: Taken,
) -> Value {
    let Taken {
        struck_at,
        admin_actions,
        reconnected_at,
        new_account_provisioned_at,
        repairs,
    } = taken;
    let after = |from: DateTime<Utc>, span: Duration| from + chrono::Duration::from_std(span).unwrap_or_default();
    let delivered: BTreeSet<i64> = deliveries
        .iter()
        .filter(|d| d["success"] == true)
        .filter_map(|d| d["transaction_id"].as_i64())
        .collect();
    let made_at: HashMap<i64, DateTime<Utc>> = seen.made.iter().copied().collect();
    let missed: Vec<i64> = sent.iter().map(|s| s.id).filter(|id| !delivered.contains(id)).collect();
    let missed_booked_at = missed.iter().filter_map(|id| seen.booked_at.get(id)).max().copied();
    // deliveries flow again: the first webhook delivered for a transaction made after the fault
    let flowing_at = deliveries
        .iter()
        .filter(|d| d["success"] == true)
        .filter(|d| {
            d["transaction_id"]
                .as_i64()
                .and_then(|id| made_at.get(&id))
                .is_some_and(|made| *made > struck_at)
        })
        .filter_map(|d| d["at"].as_str().and_then(|at| at.parse::<DateTime<Utc>>().ok()))
        .min();
    let webhook_back_at = webhook_back_at(seen, struck_at);
    // the status when the fault struck, then each change
    let statuses: Vec<&str> = seen
        .statuses
        .iter()
        .skip(
            seen.statuses
                .iter()
                .filter(|(at, _)| *at < struck_at)
                .count()
                .saturating_sub(1),
        )
        .map(|(_, s)| s.as_str())
        .collect();
    let needs_reconnect_at = seen.first_status_after("needs_reconnect", struck_at);
    let mut extra = json!({
        "admin_actions": admin_actions,
        "statuses_after_fault": statuses,
        "webhook_repairs": repairs,
        "missed_by_webhooks": missed.len(),
        "missed_booked_secs": secs(struck_at, missed_booked_at),
        "deliveries_flow_secs": secs(struck_at, flowing_at),
    });
    let provider_ok = match fault {
        ProviderFault::WebhookDeleted => {
            extra["webhook_back_secs"] = json!(secs(struck_at, webhook_back_at));
            admin_actions == 0 && webhook_back_at.is_some() && needs_reconnect_at.is_none()
        }
        ProviderFault::RefreshOutage => {
            let end = after(struck_at, settings.token_outage);
            extra["token_outage_secs"] = json!(settings.token_outage.as_secs());
            extra["degraded_seen"] = json!(statuses.contains(&"degraded"));
            let active_again = seen.first_status_after("active", end);
            extra["active_again_after_outage_secs"] = json!(secs(end, active_again));
            extra["new_account_provisioned_after_outage_secs"] = json!(secs(end, new_account_provisioned_at));
            extra["missed_booked_after_outage_secs"] = json!(secs(end, missed_booked_at));
            admin_actions == 0 && needs_reconnect_at.is_none() && active_again.is_some()
        }
        ProviderFault::GrantRevoked { delete_webhooks } => {
            extra["webhooks_deleted_with_grant"] = json!(delete_webhooks);
            extra["needs_reconnect_shown_secs"] = json!(secs(struck_at, needs_reconnect_at));
            extra["reconnected_secs"] = json!(secs(struck_at, reconnected_at));
            extra["webhook_back_secs"] = json!(secs(struck_at, webhook_back_at));
            let active_again = reconnected_at.and_then(|at| seen.first_status_after("active", at));
            admin_actions == 1 && needs_reconnect_at.is_some() && active_again.is_some()
        }
    };
    extra["provider_ok"] = json!(provider_ok);
    extra
}
