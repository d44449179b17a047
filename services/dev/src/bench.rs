//! `sepay-dev bench`: how fast, measured against a baseline in the same run. Loopback only,
//! bounded in count; a database and bus prefix of its own, dropped afterwards. The services run
//! as processes of their own (`sepay-dev serve …`, as their binaries would), so each one's peak
//! RSS is its own; this process is the load generator.
//!
//! 1. the insert limit: the ingress's own insert (`record_delivery`) straight into Postgres with
//!    the same concurrency, no HTTP, no NATS: the ceiling a durable ingress can reach;
//! 2. the ingress alone: POSTs answered (stored + published), ack latency from an HDR histogram;
//! 3. half the ingress's max load at a fixed rate, alone and then beside `--junk-rate` junk
//!    requests a second from another process (unknown tokens, wrong keys): ack latency, junk rows;
//! 4. end to end with 1, 2 and 4 processor replicas on one durable consumer: POST → booked;
//! 5. peak RSS (`VmHWM`) of each service process, read just before it is stopped, against the
//!    target "ingress < 50 MiB under load".

use crate::Cli;
use crate::serve::{ServiceProcess, free_port};
use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use sepay_core::{DedupeKey, Delivery, EventSource, Provider, RetryPolicy};
use sepay_store::events::{self, EventBody, NewEvent};
use sepay_store::{PgPool, workspaces};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Deliveries per phase.
    #[arg(long, default_value_t = 2000)]
    deliveries: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Share of deliveries that repeat an earlier one (SePay's retries).
    #[arg(long, default_value_t = 0.1)]
    repeat_share: f64,
    /// Share of deliveries without a SePay id.
    #[arg(long, default_value_t = 0.05)]
    eventless_share: f64,
    /// Processor replicas to measure end to end.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    replicas: Vec<usize>,
    /// Junk requests per second (unknown tokens, wrong keys) sent alongside honest load in the
    /// flood phase; 0 skips it.
    #[arg(long, default_value_t = 5000)]
    junk_rate: u64,
    /// Keep the benchmark database.
    #[arg(long)]
    keep_db: bool,
}

const ACCOUNT: &str = "0071000888888";

/// Realistic deliveries: unique ids, some repeats, some eventless; `seed` keeps phases apart.
fn deliveries(args: &BenchArgs, seed: i64) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(args.deliveries);
    for n in 0..args.deliveries {
        let fraction = (n % 100) as f64 / 100.0;
        if n > 10 && fraction < args.repeat_share {
            out.push(out[n * 7 % out.len()].clone());
            continue;
        }
        let id = seed * 10_000_000 + n as i64 + 1;
        let mut d = json!({
            "id": id, "gateway": "Vietcombank", "transactionDate": "2026-03-01 10:00:00", "accountNumber": ACCOUNT,
            "code": null, "content": format!("BENCH thanh toan {id}"), "transferType": if n % 3 == 0 { "out" } else { "in" },
            "transferAmount": 10_000 + n, "accumulated": 0, "subAccount": null, "referenceCode": format!("FT{id}"), "description": ""
        });
        if fraction >= args.repeat_share && fraction < args.repeat_share + args.eventless_share {
            d.as_object_mut().map(|o| o.remove("id"));
        }
        out.push(d);
    }
    out
}

fn unique(payloads: &[Value]) -> usize {
    let mut keys: Vec<String> = payloads.iter().map(|p| p.to_string()).collect();
    keys.sort();
    keys.dedup();
    keys.len()
}

struct Workspace {
    ws_id: Uuid,
    url: String,
    auth: String,
}

async fn workspace(db: &PgPool, base: &str) -> anyhow::Result<Workspace> {
    let ws = workspaces::create_workspace(db, "bench").await?;
    let wallet = workspaces::create_wallet(db, ws.id, "bench", "VND").await?;
    workspaces::link_account(db, ws.id, ACCOUNT, None, wallet.id).await?;
    let created = sepay_store::endpoints::create_manual_endpoint(db, base, ws.id, None, "bench").await?;
    Ok(Workspace {
        ws_id: ws.id,
        url: created.webhook_url,
        auth: format!("Apikey {}", created.api_key),
    })
}

/// Posts every payload with `concurrency` in flight; ack latencies in microseconds.
async fn post_all(
    http: &reqwest::Client,
    ws: &Workspace,
    payloads: &[Value],
    concurrency: usize,
) -> anyhow::Result<(Histogram<u64>, Duration, usize)> {
    let started = Instant::now();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut failed = 0;
    let mut answers = futures::stream::iter(payloads.iter().map(|p| {
        let request = http.post(&ws.url).header("authorization", &ws.auth).json(p);
        async move {
            let t = Instant::now();
            let ok = request.send().await.map(|r| r.status().is_success()).unwrap_or(false);
            (t.elapsed(), ok)
        }
    }))
    .buffer_unordered(concurrency);
    while let Some((took, ok)) = answers.next().await {
        hist.record(took.as_micros().max(1) as u64)?;
        failed += (!ok) as usize;
    }
    Ok((hist, started.elapsed(), failed))
}

/// Posts the payloads at a fixed rate (open loop: a slow answer does not delay the next
/// request); ack latencies in microseconds.
async fn post_at_rate(
    http: &reqwest::Client,
    ws: &Workspace,
    payloads: &[Value],
    rate: f64,
) -> anyhow::Result<(Histogram<u64>, Duration, usize)> {
    let gap = Duration::from_secs_f64(1.0 / rate);
    let started = tokio::time::Instant::now();
    let mut answers = Vec::with_capacity(payloads.len());
    for (n, p) in payloads.iter().enumerate() {
        tokio::time::sleep_until(started + gap.mul_f64(n as f64)).await;
        let request = http.post(&ws.url).header("authorization", &ws.auth).json(p);
        answers.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = request.send().await.map(|r| r.status().is_success()).unwrap_or(false);
            (t.elapsed(), ok)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut failed = 0;
    for answer in answers {
        let (took, ok) = answer.await?;
        hist.record(took.as_micros().max(1) as u64)?;
        failed += (!ok) as usize;
    }
    Ok((hist, started.elapsed(), failed))
}

/// `sepay-dev junk` in a child process: an attacker's load, not sharing this process's runtime.
struct Junk(tokio::process::Child);

impl Junk {
    fn start(base: &str, real_url: &str, rate: u64) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find sepay-dev itself")?;
        let child = tokio::process::Command::new(exe)
            .args([
                "--json",
                "junk",
                "--base",
                base,
                "--real-url",
                real_url,
                "--rate",
                &rate.to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the junk generator")?;
        Ok(Self(child))
    }

    /// Closes its stdin (its signal to stop) and reads its summary.
    async fn stop(&mut self) -> anyhow::Result<Value> {
        drop(self.0.stdin.take());
        let mut out = String::new();
        if let Some(mut stdout) = self.0.stdout.take() {
            tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out).await?;
        }
        self.0.wait().await?;
        serde_json::from_str(out.trim()).context("the junk generator's summary")
    }
}

#[derive(clap::Args)]
pub struct JunkArgs {
    /// The ingress (unknown tokens are posted under it).
    #[arg(long)]
    base: String,
    /// A real endpoint URL, posted with a wrong key.
    #[arg(long)]
    real_url: String,
    #[arg(long, default_value_t = 5000)]
    rate: u64,
}

/// Junk at `rate` a second until stdin closes (unknown tokens and a real token with a wrong key,
/// in turn) over raw keep-alive HTTP/1.1 connections, so the generator costs little CPU beside
/// the ingress on the same machine; prints how many were sent and the answers by status.
pub async fn junk(args: &JunkArgs) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            let _ = tokio::task::spawn_blocking(|| std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new()))
                .await;
            stop.cancel();
        }
    });
    let base = url::Url::parse(&args.base).context("--base")?;
    let real = url::Url::parse(&args.real_url).context("--real-url")?;
    let addr = format!(
        "{}:{}",
        base.host_str().unwrap_or("127.0.0.1"),
        base.port_or_known_default().unwrap_or(80)
    );
    let request = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Apikey spak_junk\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
        )
        .into_bytes()
    };
    let requests = Arc::new([
        request("/api/v1/webhooks/sepay/spwh_junk000000000000000000000000000000000000"),
        request(real.path()),
    ]);
    // tickets at the rate; each connection spends one a request
    let tickets = Arc::new(tokio::sync::Semaphore::new(0));
    let per_tick = args.rate.div_ceil(1000).max(1) as usize;
    let answers: Arc<std::sync::Mutex<std::collections::BTreeMap<u16, u64>>> = Default::default();
    let started = Instant::now();
    let mut connections = Vec::new();
    for n in 0..JUNK_CONNECTIONS {
        let (tickets, answers, requests, stop, addr) = (
            tickets.clone(),
            answers.clone(),
            requests.clone(),
            stop.clone(),
            addr.clone(),
        );
        connections.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.is_cancelled() {
                let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let mut buffer = Vec::with_capacity(1024);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return sent,
                        ticket = tickets.acquire() => match ticket {
                            Ok(t) => t.forget(),
                            Err(_) => return sent,
                        },
                    }
                    let body = &requests[(n + sent as usize) % 2];
                    sent += 1;
                    let status = match exchange(&mut stream, body, &mut buffer).await {
                        Some(status) => status,
                        None => break, // closed: reconnect
                    };
                    *answers
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(status)
                        .or_default() += 1;
                }
            }
            sent
        }));
    }
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut not_sent = 0u64;
    while !stop.is_cancelled() {
        tick.tick().await;
        // tickets nobody could use within a tick are dropped: the rate is what the ingress sees
        let unused = tickets.available_permits();
        not_sent += unused as u64;
        if let Ok(stale) = tickets.try_acquire_many(unused as u32) {
            stale.forget();
        }
        tickets.add_permits(per_tick);
    }
    tickets.close();
    let seconds = started.elapsed().as_secs_f64();
    let mut sent = 0;
    for c in connections {
        sent += c.await.unwrap_or(0);
    }
    let answers: serde_json::Map<String, Value> = answers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(status, n)| (status.to_string(), json!(n)))
        .collect();
    println!(
        "{}",
        json!({"sent": sent, "not_sent": not_sent, "seconds": seconds, "answers": answers})
    );
    Ok(())
}

const JUNK_CONNECTIONS: usize = 32;

/// One request and its response on a keep-alive connection; the status, or `None` when closed.
async fn exchange(stream: &mut tokio::net::TcpStream, request: &[u8], buffer: &mut Vec<u8>) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request).await.ok()?;
    buffer.clear();
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end]).ok()?;
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buffer.len() < end + 4 + length {
                if stream.read_buf(buffer).await.ok()? == 0 {
                    return None;
                }
            }
            return Some(status);
        }
        if stream.read_buf(buffer).await.ok()? == 0 {
            return None;
        }
    }
}

/// Peak resident memory (`VmHWM`) of this process, the load generator (and the insert-limit
/// phase's direct inserts), in MiB.
fn load_generator_peak_rss_mib() -> Option<f64> {
    crate::serve::peak_rss_kib("self").map(|kib| kib as f64 / 1024.0)
}

/// A service's peak resident memory so far, in MiB.
fn peak_rss_mib(service: &ServiceProcess) -> Option<f64> {
    service.peak_rss_kib().map(|kib| kib as f64 / 1024.0)
}

/// The ingress RSS target of the benchmark issue (under load).
const INGRESS_RSS_TARGET_MIB: f64 = 50.0;

/// A processor's pool (the production default).
const PROCESSOR_CONNECTIONS: usize = 10;

/// How long a stopped service may drain before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// Where the services (processes of their own, `sepay-dev serve …`) connect: the bench's database,
/// the same NATS server, a bus prefix per phase.
struct ServiceEnv {
    database_url: String,
    acquire_timeout_ms: u64,
    nats_url: String,
    /// The ingress's pool: the load's concurrency and a few for the relay and the publication
    /// marks (in-process, the services shared a pool of this size).
    ingress_connections: usize,
}

impl ServiceEnv {
    fn vars(&self, bus_prefix: &str) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("DB_ACQUIRE_TIMEOUT_MS", self.acquire_timeout_ms.to_string()),
            ("NATS_URL", self.nats_url.clone()),
            ("BUS_PREFIX", bus_prefix.to_owned()),
        ]
    }

    /// The ingress with its webhook route on `port`.
    async fn ingress(&self, bus_prefix: &str, port: u16) -> anyhow::Result<ServiceProcess> {
        let mut env = self.vars(bus_prefix);
        env.push(("DB_MAX_CONNECTIONS", self.ingress_connections.to_string()));
        ServiceProcess::ingress(port, &env).await
    }

    /// `n` processor replicas (production defaults, no model) on the prefix's durable consumer.
    async fn processors(&self, bus_prefix: &str, n: usize) -> anyhow::Result<Vec<ServiceProcess>> {
        let mut env = self.vars(bus_prefix);
        env.push(("DB_MAX_CONNECTIONS", PROCESSOR_CONNECTIONS.to_string()));
        let mut started = Vec::with_capacity(n);
        for _ in 0..n {
            started.push(ServiceProcess::processor(&env).await?);
        }
        Ok(started)
    }
}

/// Opens a service's database pool before the clock starts (`/readyz` pings Postgres through
/// it), as a service that has been running has it: a cold pool opens its connections inside the
/// first burst, dozens of Postgres backends forked at once on the measured requests' time.
async fn warm_up(http: &reqwest::Client, service: &ServiceProcess, connections: usize) {
    let url = format!("{}/readyz", service.health);
    futures::future::join_all((0..connections).map(|_| http.get(&url).send())).await;
}

/// Reads each service's peak RSS just before stopping it (SIGTERM, all at once).
async fn stop_measured(services: Vec<ServiceProcess>) -> Vec<Option<f64>> {
    let peaks = services.iter().map(peak_rss_mib).collect();
    futures::future::join_all(services.into_iter().map(|s| s.stop(STOP_LIMIT))).await;
    peaks
}

fn mib(value: Option<f64>) -> String {
    value.map_or("?".into(), |v| format!("{v:.1}"))
}

pub async fn run(cli: &Cli, args: &BenchArgs) -> anyhow::Result<()> {
    let stamp = chrono::Utc::now().timestamp();
    // a few connections for setting up and counting; the insert limit and the services have
    // pools of their own
    let db_config = cli
        .global
        .db
        .sibling(&format!("sepay_bench_{stamp}"), 4)
        .context("DATABASE_URL has no database name")?;
    let db = sepay_store::connect(&db_config).await?;
    let result = phases(cli, args, &db_config, &db, stamp).await;
    db.close().await;
    if !args.keep_db {
        sepay_store::drop_database(&db_config.database_url).await?;
    }
    let (value, table) = result?;
    sepay_runtime::cli::print(cli.global.json, &value, || table);
    Ok(())
}

async fn phases(
    cli: &Cli,
    args: &BenchArgs,
    db_config: &sepay_store::DbConfig,
    db: &PgPool,
    stamp: i64,
) -> anyhow::Result<(Value, String)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let services = ServiceEnv {
        database_url: db_config.database_url.clone(),
        acquire_timeout_ms: db_config.db_acquire_timeout_ms,
        nats_url: cli.global.nats.nats_url.clone(),
        ingress_connections: args.concurrency + 8,
    };
    // (phase, per second, detail, peak RSS of its services)
    let mut rows: Vec<(String, f64, String, String)> = Vec::new();
    let mut ingress_peaks: Vec<f64> = Vec::new();
    let mut processor_peaks: Vec<f64> = Vec::new();

    // 1. the insert limit, in this process, on a pool of the load's concurrency
    let insert_db = sepay_store::connect(&sepay_store::DbConfig {
        db_max_connections: args.concurrency as u32,
        ..db_config.clone()
    })
    .await?;
    let baseline_ws = workspaces::create_workspace(db, "bench-baseline").await?.id;
    let payloads = deliveries(args, 1);
    let policy = RetryPolicy::default();
    let started = Instant::now();
    futures::stream::iter(payloads.iter().map(|p| {
        let (policy, insert_db) = (policy, &insert_db);
        async move {
            let Delivery::Object(payload) = Delivery::from_value(p.clone()) else {
                return;
            };
            let key = DedupeKey::for_payload(&payload);
            let value = payload.clone().into_value();
            let new = NewEvent {
                ws_id: baseline_ws,
                provider: Provider::Sepay,
                endpoint_id: None,
                source: EventSource::Webhook,
                sepay_transaction_id: payload.sepay_id(),
                dedupe_key: &key,
                body: EventBody::Json(&value),
            };
            let _ = events::record_delivery(insert_db, &new, &policy).await;
        }
    }))
    .buffer_unordered(args.concurrency)
    .collect::<Vec<()>>()
    .await;
    let limit = args.deliveries as f64 / started.elapsed().as_secs_f64();
    insert_db.close().await;
    rows.push((
        "insert limit (record_delivery, no HTTP/NATS)".into(),
        limit,
        String::new(),
        String::new(),
    ));

    // 2. the ingress alone, a process of its own; its workspaces exist before it loads its
    //    endpoint directory
    let port = free_port()?;
    let ingress_url = format!("http://127.0.0.1:{port}");
    let ws = workspace(db, &ingress_url).await?;
    let flood_ws = match args.junk_rate {
        0 => None,
        _ => Some(workspace(db, &ingress_url).await?),
    };
    let ingress = services.ingress(&format!("bench{stamp}"), port).await?;
    warm_up(&http, &ingress, services.ingress_connections).await;
    let payloads = deliveries(args, 2);
    let (hist, took, failed) = post_all(&http, &ws, &payloads, args.concurrency).await?;
    let rate = args.deliveries as f64 / took.as_secs_f64();
    let full_load_rss = peak_rss_mib(&ingress);
    rows.push((
        "ingress: deliveries answered".into(),
        rate,
        format!(
            "ack p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, {failed} failed",
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0,
            hist.value_at_quantile(0.999) as f64 / 1000.0
        ),
        format!("ingress {}", mib(full_load_rss)),
    ));
    let mut value = json!({
        "deliveries": args.deliveries, "concurrency": args.concurrency,
        "insert_limit_per_s": limit,
        "ingress": {"per_s": rate, "ratio": rate / limit, "ack_ms": {"p50": hist.value_at_quantile(0.5) as f64 / 1000.0, "p99": hist.value_at_quantile(0.99) as f64 / 1000.0, "p999": hist.value_at_quantile(0.999) as f64 / 1000.0}, "failed": failed,
            "peak_rss_mib": full_load_rss},
        "end_to_end": [],
    });

    // 3. half of the ingress's max load at a fixed rate, alone and then beside a flood of junk
    //    from another process (as an attacker would be); the same ingress process
    if let Some(flood_ws) = flood_ws {
        let honest_rate = (rate * 0.5).max(1.0);
        let calm = deliveries(args, 20);
        let (calm_hist, _, calm_failed) = post_at_rate(&http, &flood_ws, &calm, honest_rate).await?;
        let calm_rss = peak_rss_mib(&ingress);
        // junk that got in would be stored in the workspace whose real URL it posts to
        let (before_junk, _) = events::count_for_workspace(db, ws.ws_id).await?;
        let mut junk = Junk::start(&ingress_url, &ws.url, args.junk_rate)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stormy = deliveries(args, 21);
        let (storm_hist, storm_took, storm_failed) = post_at_rate(&http, &flood_ws, &stormy, honest_rate).await?;
        let summary = junk.stop().await?;
        let storm_rss = peak_rss_mib(&ingress);
        let junk_rows = events::count_for_workspace(db, ws.ws_id).await?.0 - before_junk;
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let change = |q: f64| (ms(&storm_hist, q) / ms(&calm_hist, q) - 1.0) * 100.0;
        let junk_per_s = summary["sent"].as_f64().unwrap_or(0.0) / summary["seconds"].as_f64().unwrap_or(1.0);
        rows.push((
            format!("ingress at 50% load ({honest_rate:.0}/s), alone"),
            honest_rate,
            format!(
                "ack p50 {:.1} ms, p99 {:.1} ms, {calm_failed} failed",
                ms(&calm_hist, 0.5),
                ms(&calm_hist, 0.99)
            ),
            format!("ingress {}", mib(calm_rss)),
        ));
        rows.push((
            format!("ingress at 50% load beside {junk_per_s:.0} junk/s"),
            args.deliveries as f64 / storm_took.as_secs_f64(),
            format!(
                "ack p50 {:.1} ms ({:+.0}%), p99 {:.1} ms ({:+.0}%), {storm_failed} failed; junk answers {}; {junk_rows} junk rows",
                ms(&storm_hist, 0.5),
                change(0.5),
                ms(&storm_hist, 0.99),
                change(0.99),
                summary["answers"]
            ),
            format!("ingress {}", mib(storm_rss)),
        ));
        value["half_load"] = json!({"per_s": honest_rate, "ack_ms": {"p50": ms(&calm_hist, 0.5), "p99": ms(&calm_hist, 0.99)}, "failed": calm_failed,
            "ingress_peak_rss_mib": calm_rss});
        value["flood"] = json!({"junk_per_s": junk_per_s, "junk": summary, "ack_ms": {"p50": ms(&storm_hist, 0.5), "p99": ms(&storm_hist, 0.99)},
            "p50_change_pct": change(0.5), "p99_change_pct": change(0.99), "junk_rows": junk_rows, "failed": storm_failed,
            "ingress_peak_rss_mib": storm_rss});
    }
    ingress_peaks.extend(stop_measured(vec![ingress]).await.into_iter().flatten());

    // 4. end to end, N processor replicas on one durable consumer (a fresh workspace, bus prefix
    //    and set of processes each round)
    for (round, replicas) in args.replicas.iter().enumerate() {
        let bus_prefix = format!("bench{stamp}r{round}");
        let port = free_port()?;
        let ws = workspace(db, &format!("http://127.0.0.1:{port}")).await?;
        let ingress = services.ingress(&bus_prefix, port).await?;
        let processors = services.processors(&bus_prefix, *replicas).await?;
        warm_up(&http, &ingress, services.ingress_connections).await;
        for processor in &processors {
            warm_up(&http, processor, PROCESSOR_CONNECTIONS).await;
        }
        let payloads = deliveries(args, 3 + round as i64);
        let expected = unique(&payloads) as i64;
        let started = Instant::now();
        post_all(&http, &ws, &payloads, args.concurrency).await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, processed) = events::count_for_workspace(db, ws.ws_id).await?;
            if processed >= expected || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed();
        let mut peaks = stop_measured(std::iter::once(ingress).chain(processors).collect()).await;
        let processor_rss = peaks.split_off(1);
        let ingress_rss = peaks[0];
        ingress_peaks.extend(ingress_rss);
        processor_peaks.extend(processor_rss.iter().flatten());
        let (booked, p50, p99, p999) = events::booking_latency(db, ws.ws_id).await?;
        let rate = booked as f64 / took.as_secs_f64();
        rows.push((
            format!("end to end, {replicas} processor(s): booked"),
            rate,
            format!("{booked}/{expected} booked; POST→booked p50 {p50:.1} ms, p99 {p99:.1} ms, p99.9 {p999:.1} ms"),
            format!(
                "ingress {}; processors {}",
                mib(ingress_rss),
                processor_rss.iter().map(|p| mib(*p)).collect::<Vec<_>>().join(" / ")
            ),
        ));
        if let Some(rounds) = value["end_to_end"].as_array_mut() {
            rounds.push(json!({"replicas": replicas, "booked": booked, "expected": expected, "per_s": rate, "ratio": rate / limit,
                "latency_ms": {"p50": p50, "p99": p99, "p999": p999},
                "peak_rss_mib": {"ingress": ingress_rss, "processors": processor_rss}}));
        }
    }

    let max = |peaks: &[f64]| peaks.iter().copied().reduce(f64::max);
    let (ingress_max, processor_max) = (max(&ingress_peaks), max(&processor_peaks));
    let ingress_target_met = ingress_max.map(|m| m < INGRESS_RSS_TARGET_MIB);
    let load_generator = load_generator_peak_rss_mib();
    value["peak_rss_mib"] =
        json!({"ingress": ingress_max, "processor": processor_max, "load_generator": load_generator});
    value["targets"] =
        json!({"ingress_rss_mib": {"limit": INGRESS_RSS_TARGET_MIB, "peak": ingress_max, "met": ingress_target_met}});
    let mut table = format!(
        "sepay-dev bench: {} deliveries per phase, {} in flight, {:.0}% repeats, {:.0}% eventless (debug build: {})\n\n| phase | per second | × insert limit | detail | peak RSS MiB |\n|---|---:|---:|---|---|\n",
        args.deliveries,
        args.concurrency,
        args.repeat_share * 100.0,
        args.eventless_share * 100.0,
        cfg!(debug_assertions)
    );
    for (name, rate, detail, rss) in &rows {
        table.push_str(&format!(
            "| {name} | {rate:.0} | {:.2} | {detail} | {rss} |\n",
            rate / limit
        ));
    }
    table.push_str(&format!(
        "\npeak RSS per service (VmHWM of its process, read before it is stopped; the half-load and flood rows are the same ingress process as the ingress row, so cumulative): ingress {} MiB (target < {INGRESS_RSS_TARGET_MIB:.0} MiB: {}), processor {} MiB; the load generator (this process) {} MiB",
        mib(ingress_max),
        match ingress_target_met {
            Some(true) => "met",
            Some(false) => "missed",
            None => "not measured",
        },
        mib(processor_max),
        mib(load_generator)
    ));
    Ok((value, table))
}
