//! `sepay-dev faults`: the fault suite. Each scenario runs the ingress in this process and the
//! processors as processes of their own, against a database of its own (`sepay_faults_<stamp>`,
//! dropped afterwards) and a bus prefix of its own, sends steady load, injects one fault, and checks that every accepted
//! delivery is booked exactly once (count and sum), that nothing is left `received`, and that AI
//! credit reservations balance. Bounded: every scenario has a settle deadline.
//!
//! 1. `sepay_retries`: every delivery posted 1..=8 times, copies concurrent with random delays;
//! 2. `processor_sigkill`: the processors (processes of their own, `sepay-dev serve processor`)
//!    killed with SIGKILL mid-batch and started again; JetStream redelivers what they held;
//! 3. `ingress_nats_outage`: the ingress reaches NATS through a TCP proxy that is cut for
//!    `--outage-secs`; rows are stored and answered, the relay publishes them afterwards;
//! 4. `postgres_outage`: the services reach Postgres through a TCP proxy that is cut; the load
//!    generator retries 503s with backoff up to 8 times, as SePay does;
//! 5. `postgres_restart`: a private Postgres cluster (initdb in a temporary directory) stopped
//!    with `-m immediate` (a crash: no checkpoint, WAL replay on start) and started again;
//! 6. `nats_restart`: a private nats-server (JetStream, store directory) stopped and started;
//! 7. `reconciliation`: sepay-sim sends the webhooks (one in five dropped, one in ten twice) while
//!    two reconcilers run back to back against the same ledger; every transaction the simulator
//!    holds must be booked once;
//! 8. `lost_webhooks_balance`: sepay-sim loses every webhook of one transaction in ten, with no
//!    reconciliation schedule: the running balance of the account's next delivery reveals each
//!    loss within seconds (a trailing one by the account's balance); reports the time from a lost
//!    transaction's creation to its booking;
//! 9. to 12. the provider's faults (`provider.rs`): every webhook deleted at SePay, a token-endpoint
//!    outage while tokens expire, a grant revoked with its webhooks deleted or kept.

mod provider;
mod reconciliation;
pub(crate) mod servers;

use crate::Cli;
use crate::serve::ServiceProcess;
use anyhow::Context;
use rust_decimal::prelude::ToPrimitive;
use sepay_ingress::IngressConfig;
use sepay_store::{DbConfig, PgPool, workspaces};
use serde_json::{Value, json};
use servers::{PrivateNats, PrivatePostgres, Proxy};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const SCENARIOS: [&str; 12] = [
    "sepay_retries",
    "processor_sigkill",
    "ingress_nats_outage",
    "postgres_outage",
    "postgres_restart",
    "nats_restart",
    "reconciliation",
    "lost_webhooks_balance",
    provider::SCENARIOS[0],
    provider::SCENARIOS[1],
    provider::SCENARIOS[2],
    provider::SCENARIOS[3],
];

#[derive(clap::Args)]
pub struct FaultsArgs {
    /// Distinct deliveries (SePay transactions) per scenario.
    #[arg(long, default_value_t = 500)]
    deliveries: usize,
    /// Length of the ingress's NATS outage; the Postgres outage and the NATS restart last at
    /// most 5 s of it.
    #[arg(long, default_value_t = 30)]
    outage_secs: u64,
    /// Run only these scenarios (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Processor replicas on the durable consumer.
    #[arg(long, default_value_t = 2)]
    processors: usize,
    /// Seconds a scenario may take to settle after its load ends before it fails.
    #[arg(long, default_value_t = 120)]
    settle_secs: u64,
    /// The ingress's stale TTL: a `received` event unbooked this long is re-driven by the relay.
    #[arg(long, default_value_t = 10)]
    stale_ttl_secs: u64,
    /// Seed of the random copies and delays (a run is repeatable in what it sends).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep the fault database.
    #[arg(long)]
    keep_db: bool,
    /// Length of SePay's token-endpoint outage (`provider_refresh_outage`).
    #[arg(long, default_value_t = 120)]
    token_outage_secs: u64,
    /// The provisioner's `WEBHOOK_HEALTH_INTERVAL_SECS` in the provider scenarios.
    #[arg(long, default_value_t = 10)]
    webhook_health_secs: u64,
}

/// SplitMix64: deterministic copies and delays without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

async fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host((host, port))
        .await?
        .next()
        .with_context(|| format!("cannot resolve {host}"))
}

/// The ingress (in this process) and the processors (processes of their own) of one scenario.
struct Services {
    processor_bus: sepay_bus::Bus,
    /// What a processor process connects to.
    processor_env: Vec<(&'static str, String)>,
    stop: CancellationToken,
    processors: Vec<ServiceProcess>,
    ingress: JoinHandle<anyhow::Result<()>>,
}

impl Services {
    async fn start_processors(&mut self, n: usize) -> anyhow::Result<()> {
        for _ in 0..n {
            self.processors
                .push(ServiceProcess::processor(&self.processor_env).await?);
        }
        Ok(())
    }

    /// SIGKILL: in-flight messages are left unacked; JetStream redelivers them after the ack wait.
    async fn kill_processors(&mut self) {
        for processor in self.processors.drain(..) {
            processor.sigkill().await;
        }
    }

    async fn stop(mut self) {
        self.stop.cancel();
        self.kill_processors().await;
        self.ingress.abort();
    }
}

/// What the load generator learned about one SePay transaction.
struct Sent {
    id: i64,
    amount: i64,
    copies: u32,
    posts: u32,
    accepted: bool,
}

/// Posts one copy, retrying a non-2xx answer with backoff up to 8 attempts (SePay's retries).
async fn post_with_retries(
    http: &reqwest::Client,
    url: &str,
    auth: &str,
    body: &Value,
    permits: &tokio::sync::Semaphore,
) -> (bool, u32) {
    let mut backoff = Duration::from_millis(250);
    for attempt in 1..=8u32 {
        let ok = {
            let _permit = permits.acquire().await;
            http.post(url)
                .header("authorization", auth)
                .json(body)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        };
        if ok {
            return (true, attempt);
        }
        if attempt < 8 {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(4));
        }
    }
    (false, 8)
}

fn payload(id: i64, amount: i64) -> Value {
    json!({
        "id": id, "gateway": "Vietcombank", "transactionDate": "2026-03-01 10:00:00", "accountNumber": ACCOUNT,
        "code": null, "content": format!("FAULT thanh toan {id}"), "transferType": if amount < 0 { "out" } else { "in" },
        "transferAmount": amount.abs(), "accumulated": 0, "subAccount": null, "referenceCode": format!("FT{id}"), "description": ""
    })
}

const ACCOUNT: &str = "0071000777777";

/// Open-loop load over `duration`: transaction n starts at n × duration / count, whatever the
/// answers before it; `max_copies` > 1 posts each transaction that many times at most (random),
/// concurrently, each after a random delay of up to 300 ms.
#[allow(clippy::too_many_arguments)]
async fn load(
    http: reqwest::Client,
    url: String,
    auth: String,
    first_id: i64,
    count: usize,
    duration: Duration,
    max_copies: u64,
    concurrency: usize,
    seed: u64,
) -> Vec<Sent> {
    let mut rng = Rng(seed);
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let gap = duration.div_f64(count.max(1) as f64);
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for n in 0..count {
        let id = first_id + n as i64;
        let magnitude = 1_000 + rng.below(5_000_000) as i64;
        let amount = if rng.below(3) == 0 { -magnitude } else { magnitude };
        let copies = 1 + rng.below(max_copies) as u32;
        let delays: Vec<Duration> = (0..copies)
            .map(|_| Duration::from_millis(if max_copies > 1 { rng.below(300) } else { 0 }))
            .collect();
        tokio::time::sleep_until(started + gap.mul_f64(n as f64)).await;
        let (http, url, auth, permits) = (http.clone(), url.clone(), auth.clone(), permits.clone());
        tasks.push(tokio::spawn(async move {
            let body = payload(id, amount);
            let answers = futures::future::join_all(delays.into_iter().map(|delay| {
                let (http, url, auth, body, permits) = (&http, &url, &auth, &body, &permits);
                async move {
                    tokio::time::sleep(delay).await;
                    post_with_retries(http, url, auth, body, permits).await
                }
            }))
            .await;
            Sent {
                id,
                amount,
                copies,
                posts: answers.iter().map(|(_, posts)| posts).sum(),
                accepted: answers.iter().any(|(ok, _)| *ok),
            }
        }));
    }
    let mut out = Vec::with_capacity(count);
    for task in tasks {
        if let Ok(sent) = task.await {
            out.push(sent);
        }
    }
    out
}

/// The ledger as Postgres sees it for one workspace.
struct Ledger {
    rows: i64,
    per_id: BTreeMap<i64, (i64, i64)>, // sepay id → (bookings, sum of amounts)
    received: i64,
    received_past_ttl: i64,
    failed: i64,
    credits: (i64, i64, i64), // credits reserved, committed, released
}

async fn ledger(db: &PgPool, ws_id: Uuid, ttl_secs: u64) -> anyhow::Result<Ledger> {
    let audit = sepay_store::ledger::audit(db, ws_id, Duration::from_secs(ttl_secs)).await?;
    // (balance, reserved, committed, released) in credits
    let (_, reserved, committed, released) = sepay_store::classification::credit_ledger(db, ws_id).await?;
    Ok(Ledger {
        rows: audit.rows,
        per_id: audit
            .per_sepay_id
            .into_iter()
            .map(|(id, n, sum)| (id.unwrap_or(-1), (n, sum.trunc().to_i64().unwrap_or(i64::MAX))))
            .collect(),
        received: audit.received,
        received_past_ttl: audit.received_past_stale,
        failed: audit.failed,
        credits: (reserved, committed, released),
    })
}

struct Ctx<'a> {
    cli: &'a Cli,
    args: &'a FaultsArgs,
    db: PgPool,
    db_url: String,
    stamp: i64,
    http: reqwest::Client,
}

/// One scenario from set-up to verdict; the row of the table as JSON.
async fn scenario(ctx: &Ctx<'_>, index: usize, name: &str) -> anyhow::Result<Value> {
    let args = ctx.args;
    let outage = Duration::from_secs(args.outage_secs.max(1));
    let short_outage = outage.min(Duration::from_secs(5));
    let lead = Duration::from_secs(1);
    let (fault_len, load_len) = match name {
        "ingress_nats_outage" => (outage, outage + lead * 2),
        "postgres_outage" | "postgres_restart" | "nats_restart" => (short_outage, short_outage + lead * 2),
        // faster than the processors book, so the replicas hold a backlog of unacked messages
        "processor_sigkill" => (
            Duration::ZERO,
            Duration::from_secs_f64((args.deliveries as f64 / 1000.0).clamp(0.25, 20.0)),
        ),
        _ => (
            Duration::ZERO,
            Duration::from_secs_f64((args.deliveries as f64 / 100.0).clamp(3.0, 20.0)),
        ),
    };

    // the paths that can fail
    let mut private_nats = None;
    let mut private_pg = None;
    let mut nats_proxy = None;
    let mut pg_proxy = None;
    let mut ingress_nats = ctx.cli.global.nats.nats_url.clone();
    let mut processor_nats = ingress_nats.clone();
    // `store` checks the books; the services reach Postgres at `service_db_url`
    let mut store = ctx.db.clone();
    let mut service_db_url = ctx.db_url.clone();
    match name {
        "nats_restart" => {
            let nats = PrivateNats::start().await?;
            ingress_nats = nats.url();
            processor_nats = nats.url();
            private_nats = Some(nats);
        }
        "ingress_nats_outage" => {
            let parsed = url::Url::parse(&ingress_nats).context("NATS_URL")?;
            let target = resolve(parsed.host_str().unwrap_or("127.0.0.1"), parsed.port().unwrap_or(4222)).await?;
            let proxy = Proxy::start(target).await?;
            ingress_nats = format!("nats://127.0.0.1:{}", proxy.port);
            nats_proxy = Some(proxy);
        }
        "postgres_outage" => {
            let mut parsed = url::Url::parse(&ctx.db_url).context("DATABASE_URL")?;
            let target = resolve(parsed.host_str().unwrap_or("127.0.0.1"), parsed.port().unwrap_or(5432)).await?;
            let proxy = Proxy::start(target).await?;
            parsed.set_host(Some("127.0.0.1")).map_err(|e| anyhow::anyhow!("{e}"))?;
            parsed
                .set_port(Some(proxy.port))
                .map_err(|_| anyhow::anyhow!("cannot set the port"))?;
            service_db_url = parsed.to_string();
            pg_proxy = Some(proxy);
        }
        "postgres_restart" => {
            let pg = PrivatePostgres::start().await?;
            service_db_url = pg.url("sepay_faults");
            store = sepay_store::connect(&DbConfig {
                database_url: service_db_url.clone(),
                db_max_connections: 4,
                db_acquire_timeout_ms: 5000,
                ..Default::default()
            })
            .await?;
            private_pg = Some(pg);
        }
        _ => {}
    }
    // requests get 503 within a second while Postgres is away
    let service_db = DbConfig {
        database_url: service_db_url.clone(),
        db_max_connections: 16,
        db_acquire_timeout_ms: 1000,
        ..Default::default()
    };
    let bus_prefix = format!("faults{}s{index}", ctx.stamp);
    let bus_config = |url: &str| sepay_bus::NatsConfig {
        nats_url: url.to_owned(),
        bus_prefix: bus_prefix.clone(),
        nats_publish_timeout_ms: 2000,
        ..Default::default()
    };
    let ingress_bus = sepay_bus::Bus::connect(&bus_config(&ingress_nats)).await?;
    let processor_bus = sepay_bus::Bus::connect(&bus_config(&processor_nats)).await?;

    // the workspace and its endpoint exist before the ingress loads its directory
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let ws = workspaces::create_workspace(&store, &format!("faults {name}")).await?;
    let wallet = workspaces::create_wallet(&store, ws.id, "faults", "VND").await?;
    workspaces::link_account(&store, ws.id, ACCOUNT, None, wallet.id).await?;
    let endpoint = sepay_store::endpoints::create_manual_endpoint(&store, &base, ws.id, None, name).await?;
    let stop = CancellationToken::new();
    let ingress_config = IngressConfig {
        stale_event_ttl_secs: args.stale_ttl_secs,
        ..IngressConfig::default()
    };
    let mut services = Services {
        processor_bus,
        processor_env: vec![
            ("DATABASE_URL", service_db.database_url.clone()),
            ("DB_ACQUIRE_TIMEOUT_MS", service_db.db_acquire_timeout_ms.to_string()),
            ("NATS_URL", processor_nats.clone()),
            ("BUS_PREFIX", bus_prefix.clone()),
            // the ack wait must cover the classification budget plus 5 s; it bounds how long
            // a killed replica's unacked messages wait for redelivery
            ("CLASSIFY_TIMEOUT_MS", "500".into()),
            ("PROCESSOR_ACK_WAIT_SECS", "6".into()),
        ],
        stop: stop.clone(),
        processors: Vec::new(),
        ingress: tokio::spawn(sepay_ingress::serve(
            listener,
            None,
            ingress_config,
            service_db.lazy_pool()?,
            ingress_bus,
            stop.clone(),
        )),
    };
    services.start_processors(args.processors).await?;

    let first_id = (ctx.stamp % 100_000) * 100_000_000 + index as i64 * 10_000_000 + 1;
    let seed = args.seed.wrapping_mul(31).wrapping_add(index as u64);
    let deliveries = args.deliveries;
    let load_task: JoinHandle<anyhow::Result<(Vec<Sent>, Value)>> = if name == "reconciliation" {
        let provisioner_bus = sepay_bus::Bus::connect(&bus_config(&processor_nats)).await?;
        let bank = reconciliation::SimBank::start(&store, provisioner_bus, ws.id, &base, |_, _| {}).await?;
        tokio::spawn(async move { bank.load(deliveries, load_len, seed).await })
    } else if name == "lost_webhooks_balance" {
        let provisioner_bus = sepay_bus::Bus::connect(&bus_config(&processor_nats)).await?;
        // the default grace (5 s) for deliveries out of order to close a gap by themselves
        let bank = reconciliation::SimBank::start(&store, provisioner_bus, ws.id, &base, |_, _| {}).await?;
        let store = store.clone();
        tokio::spawn(async move { bank.load_lost_by_balance(&store, deliveries, load_len, seed).await })
    } else if let Some(fault) = provider::ProviderFault::of(name) {
        let settings = provider::ProviderSettings {
            health_interval_secs: args.webhook_health_secs,
            token_outage: Duration::from_secs(args.token_outage_secs),
            settle: Duration::from_secs(args.settle_secs),
        };
        let provisioner_bus = sepay_bus::Bus::connect(&bus_config(&processor_nats)).await?;
        let service_bus = sepay_bus::Bus::connect(&bus_config(&processor_nats)).await?;
        let bank = provider::start_bank(&store, provisioner_bus, ws.id, &base, fault, settings).await?;
        let store = store.clone();
        tokio::spawn(async move {
            bank.load_provider_fault(&store, service_bus, fault, settings, deliveries, load_len, seed)
                .await
        })
    } else {
        let max_copies = if name == "sepay_retries" { 8 } else { 1 };
        let sending = load(
            ctx.http.clone(),
            endpoint.webhook_url.clone(),
            format!("Apikey {}", endpoint.api_key),
            first_id,
            deliveries,
            load_len,
            max_copies,
            args.concurrency,
            seed,
        );
        tokio::spawn(async move { Ok((sending.await, Value::Null)) })
    };

    // the fault
    let started = Instant::now();
    let mut in_flight_at_crash = 0;
    let fault_end = match name {
        "processor_sigkill" => {
            tokio::time::sleep(load_len.mul_f64(0.4)).await;
            // mid-batch: wait (2 s at most) until the replicas hold unacked messages
            let until = Instant::now() + Duration::from_secs(2);
            loop {
                let pending = services.processor_bus.consumer_state(sepay_processor::CONSUMER).await;
                let held = pending.map(|c| c.ack_pending).unwrap_or(0);
                if held > 0 || Instant::now() > until {
                    in_flight_at_crash = held;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            services.kill_processors().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            services.start_processors(args.processors).await?;
            Instant::now()
        }
        "ingress_nats_outage" | "postgres_outage" => {
            let proxy = nats_proxy.as_ref().or(pg_proxy.as_ref()).context("no proxy")?;
            tokio::time::sleep(lead).await;
            proxy.cut();
            tokio::time::sleep(fault_len).await;
            proxy.restore();
            Instant::now()
        }
        "postgres_restart" => {
            let pg = private_pg.as_ref().context("no private Postgres")?;
            tokio::time::sleep(lead).await;
            pg.crash().await?;
            tokio::time::sleep(fault_len).await;
            pg.resume().await?;
            Instant::now()
        }
        "nats_restart" => {
            let nats = private_nats.as_mut().context("no private NATS")?;
            tokio::time::sleep(lead).await;
            nats.stop().await;
            tokio::time::sleep(fault_len).await;
            nats.resume().await?;
            Instant::now()
        }
        _ => started,
    };
    let (sent, load_extra) = load_task.await??;
    let load_end = Instant::now();
    let fault_end = if matches!(name, "sepay_retries" | "reconciliation" | "lost_webhooks_balance")
        || provider::ProviderFault::of(name).is_some()
    {
        load_end
    } else {
        fault_end
    };

    let accepted: BTreeSet<i64> = sent.iter().filter(|s| s.accepted).map(|s| s.id).collect();
    let (state, settled_at) = settle(&store, ws.id, args, &accepted, load_end).await?;
    services.stop().await;
    drop((nats_proxy, pg_proxy));
    if private_pg.is_some() {
        store.close().await;
    }
    drop(private_pg);
    if let Some(mut nats) = private_nats {
        nats.stop().await;
    }

    let mut extra = json!({
        "unacked_at_crash": in_flight_at_crash,
        "fault_secs": fault_len.as_secs_f64(), "load_secs": (load_end - started).as_secs_f64(),
        "recovery_secs": settled_at.map(|at| at.saturating_duration_since(fault_end).as_secs_f64()),
    });
    if let (Some(extra), Value::Object(load_extra)) = (extra.as_object_mut(), load_extra) {
        extra.extend(load_extra);
    }
    Ok(verdict(name, &sent, &accepted, &state, settled_at.is_some(), extra))
}

/// Waits until every accepted id is booked and nothing is left `received` (`None`: not within
/// `--settle-secs`), then a moment more, in which a late duplicate would show.
async fn settle(
    store: &PgPool,
    ws_id: Uuid,
    args: &FaultsArgs,
    accepted: &BTreeSet<i64>,
    load_end: Instant,
) -> anyhow::Result<(Ledger, Option<Instant>)> {
    let deadline = load_end + Duration::from_secs(args.settle_secs);
    loop {
        let state = ledger(store, ws_id, args.stale_ttl_secs).await?;
        if accepted.iter().all(|id| state.per_id.contains_key(id)) && state.received == 0 {
            let settled_at = Instant::now();
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok((ledger(store, ws_id, args.stale_ttl_secs).await?, Some(settled_at)));
        }
        if Instant::now() > deadline {
            return Ok((state, None));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The scenario's row: every accepted transaction booked exactly once, with the amount sent.
fn verdict(name: &str, sent: &[Sent], accepted: &BTreeSet<i64>, state: &Ledger, settled: bool, extra: Value) -> Value {
    let booked_ids = state.per_id.len() as i64;
    let duplicates = state.per_id.values().filter(|(n, _)| *n > 1).count();
    let lost = accepted.iter().filter(|id| !state.per_id.contains_key(id)).count();
    let unexpected = state
        .per_id
        .keys()
        .filter(|id| !sent.iter().any(|s| s.id == **id))
        .count();
    let sent_sum: i64 = sent
        .iter()
        .filter(|s| state.per_id.contains_key(&s.id) || s.accepted)
        .map(|s| s.amount)
        .sum();
    let booked_sum: i64 = state.per_id.values().map(|(_, sum)| sum).sum();
    let posts: u32 = sent.iter().map(|s| s.posts).sum();
    let copies: u32 = sent.iter().map(|s| s.copies).sum();
    let ok = settled
        && duplicates == 0
        && lost == 0
        && unexpected == 0
        && sent_sum == booked_sum
        && state.rows == booked_ids
        && state.received_past_ttl == 0
        && state.credits.0 == 0
        // the provider scenarios' own checks (admin actions, connection states)
        && extra.get("provider_ok").is_none_or(|ok| *ok == json!(true));
    let mut row = json!({
        "fault": name, "ok": ok, "settled": settled,
        "transactions": sent.len(), "copies": copies, "posts": posts,
        "deliveries": accepted.len(), "rejected": sent.len() - accepted.len(),
        "booked": state.rows, "booked_ids": booked_ids, "duplicates": duplicates, "lost": lost,
        "booked_not_accepted": booked_ids - (accepted.len() - lost) as i64, "unexpected": unexpected,
        "sum_sent": sent_sum, "sum_booked": booked_sum, "sum_match": sent_sum == booked_sum,
        "received_left": state.received, "received_past_ttl": state.received_past_ttl, "failed_left": state.failed,
        "ai_credits": {"reserved": state.credits.0, "committed": state.credits.1, "released": state.credits.2},
    });
    if let (Some(row), Value::Object(extra)) = (row.as_object_mut(), extra) {
        row.extend(extra);
    }
    row
}

pub async fn run(cli: &Cli, args: &FaultsArgs) -> anyhow::Result<()> {
    for only in &args.only {
        anyhow::ensure!(
            SCENARIOS.contains(&only.as_str()),
            "unknown scenario {only:?}; one of {}",
            SCENARIOS.join(", ")
        );
    }
    let stamp = chrono::Utc::now().timestamp();
    let db_config = cli
        .global
        .db
        .sibling(&format!("sepay_faults_{stamp}_{}", std::process::id()), 10)
        .context("DATABASE_URL has no database name")?;
    let db = sepay_store::connect(&db_config).await?;
    let ctx = Ctx {
        cli,
        args,
        db: db.clone(),
        db_url: db_config.database_url.clone(),
        stamp,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency)
            .build()?,
    };
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut error = None;
    for (index, name) in SCENARIOS.iter().enumerate() {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == name) {
            continue;
        }
        match scenario(&ctx, index, name).await {
            Ok(row) => rows.push(row),
            Err(err) => {
                error = Some(err.context(format!("scenario {name}")));
                break;
            }
        }
    }
    db.close().await;
    if !args.keep_db {
        sepay_store::drop_database(&db_config.database_url).await?;
    }
    if let Some(err) = error {
        return Err(err);
    }
    let value = json!({
        "deliveries": args.deliveries, "outage_secs": args.outage_secs, "processors": args.processors,
        "debug_build": cfg!(debug_assertions), "seconds": started.elapsed().as_secs_f64(), "scenarios": rows,
    });
    sepay_runtime::cli::print(cli.global.json, &value, || table(args, &value));
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r["ok"] != json!(true))
        .filter_map(|r| r["fault"].as_str())
        .collect();
    anyhow::ensure!(failed.is_empty(), "fault scenarios failed: {}", failed.join(", "));
    Ok(())
}

fn table(args: &FaultsArgs, value: &Value) -> String {
    let mut out = format!(
        "sepay-dev faults: {} transactions per scenario, {} processors, outage {} s (debug build: {}), {:.0} s in all\n\n\
         | fault | deliveries | booked | duplicates | lost | sum sent = booked | left received | AI reserved | recovery s | ok |\n\
         |---|---:|---:|---:|---:|---|---:|---:|---:|---|\n",
        args.deliveries,
        args.processors,
        args.outage_secs,
        cfg!(debug_assertions),
        value["seconds"].as_f64().unwrap_or(0.0)
    );
    for r in value["scenarios"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "| {} | {} ({} posts) | {} | {} | {} | {} = {} | {} | {} | {:.1} | {} |\n",
            r["fault"].as_str().unwrap_or(""),
            r["deliveries"],
            r["posts"],
            r["booked"],
            r["duplicates"],
            r["lost"],
            r["sum_sent"],
            r["sum_booked"],
            r["received_left"],
            r["ai_credits"]["reserved"],
            r["recovery_secs"].as_f64().unwrap_or(0.0),
            if r["ok"] == json!(true) { "yes" } else { "NO" }
        ));
    }
    let provider: Vec<&Value> = value["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r.get("admin_actions").is_some())
        .collect();
    if !provider.is_empty() {
        let secs = |v: &Value| v.as_f64().map_or("-".to_owned(), |s| format!("{s:.1}"));
        out.push_str(
            "\n| provider fault | admin actions | missed by webhooks | all booked s | deliveries flow s | webhook back s | needs reconnect shown s | states after the fault |\n\
             |---|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for r in provider {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r["fault"].as_str().unwrap_or(""),
                r["admin_actions"],
                r["missed_by_webhooks"],
                secs(&r["missed_booked_secs"]),
                secs(&r["deliveries_flow_secs"]),
                secs(&r["webhook_back_secs"]),
                secs(&r["needs_reconnect_shown_secs"]),
                r["statuses_after_fault"]
                    .as_array()
                    .map(|s| s.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" → "))
                    .unwrap_or_default(),
            ));
        }
    }
    out
}
