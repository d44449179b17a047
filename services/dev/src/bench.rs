//! `sepay-dev bench`: how fast, measured against a baseline in the same run. Loopback only,
//! bounded in count; a database and bus prefix of its own, dropped afterwards. The services run
//! as processes of their own (`sepay-dev serve …`, as their binaries would), so each one's peak
//! RSS is its own; this process is the load generator.
//!
//! 1. two baselines every figure is divided by: (a) the plain durable insert, one event row per
//!    autocommit INSERT on `--concurrency` connections, as pgbench would measure it; (b) the
//!    SePay reference's Node/Express handler (`bench/express-baseline`: SELECT, then INSERT)
//!    under the same load generator as the ingress;
//! 2. the ingress alone: POSTs answered (stored + published), ack latency from an HDR histogram;
//! 3. half the ingress's max load at a fixed rate, alone and then beside `--junk-rate` junk
//!    requests a second from another process (unknown tokens, wrong keys): ack latency, junk rows;
//! 4. end to end with 1, 2 and 4 processor replicas on one durable consumer: booked per second
//!    from the first POST to the last booking;
//! 5. peak RSS (`VmHWM`) of each service process, read just before it is stopped, against the
//!    target "ingress < 50 MiB under load".

use crate::Cli;
use crate::serve::{ServiceProcess, free_port};
use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use sepay_core::{DedupeKey, Delivery};
use sepay_store::events;
use sepay_store::{PgPool, workspaces};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// The Express baseline (`npm ci` runs there when `node_modules` is missing).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/express-baseline"))]
    express_dir: PathBuf,
}

const ACCOUNT: &str = "0071000888888";

/// The deliveries of a phase, with `--repeat-share` repeats.
fn deliveries(args: &BenchArgs, seed: i64) -> Vec<Value> {
    payloads(args, seed, args.repeat_share, args.deliveries)
}

/// Untimed deliveries a server answers before it is measured, as a server that has been running
/// has: Node's JIT compiles the Express handler only after a few thousand requests (the handler
/// measured 2,100–2,600/s over 2,000 cold requests and 4,400/s warm), and the ingress's pool and
/// caches fill. Both get the same.
const WARM_UP: usize = 3000;

/// Posts a server's [`WARM_UP`] deliveries (new ones, `seed` keeps them apart), untimed.
async fn post_warm_up(
    http: &reqwest::Client,
    url: &str,
    auth: &str,
    args: &BenchArgs,
    seed: i64,
) -> anyhow::Result<()> {
    post_all(http, url, auth, &payloads(args, seed, 0.0, WARM_UP), args.concurrency).await?;
    Ok(())
}

/// Realistic deliveries: unique ids, `repeat_share` of repeats (0: every one new), some
/// eventless; `seed` keeps phases apart.
fn payloads(args: &BenchArgs, seed: i64, repeat_share: f64, count: usize) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(count);
    for n in 0..count {
        let fraction = (n % 100) as f64 / 100.0;
        if n > 10 && fraction < repeat_share {
            out.push(out[n * 7 % out.len()].clone());
            continue;
        }
        let id = seed * 10_000_000 + n as i64 + 1;
        let mut d = json!({
            "id": id, "gateway": "Vietcombank", "transactionDate": "2026-03-01 10:00:00", "accountNumber": ACCOUNT,
            "code": null, "content": format!("BENCH thanh toan {id}"), "transferType": if n % 3 == 0 { "out" } else { "in" },
            "transferAmount": 10_000 + n, "accumulated": 0, "subAccount": null, "referenceCode": format!("FT{id}"), "description": ""
        });
        if fraction >= repeat_share && fraction < repeat_share + args.eventless_share {
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
    endpoint_id: Uuid,
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
        endpoint_id: created.endpoint.id,
        url: created.webhook_url,
        auth: format!("Apikey {}", created.api_key),
    })
}

/// Posts every payload to `url` with `concurrency` in flight; ack latencies in microseconds.
async fn post_all(
    http: &reqwest::Client,
    url: &str,
    auth: &str,
    payloads: &[Value],
    concurrency: usize,
) -> anyhow::Result<(Histogram<u64>, Duration, usize)> {
    let started = Instant::now();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut failed = 0;
    let mut answers = futures::stream::iter(payloads.iter().map(|p| {
        let request = http.post(url).header("authorization", auth).json(p);
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

/// (a) The plain durable insert limit, as pgbench would measure it: `concurrency` connections,
/// each inserting event rows as the ingress stores them (`payloads` all new), one autocommit
/// INSERT at a time: a commit, and a WAL flush, per row. No HTTP, no NATS, no ingress code.
async fn plain_insert_per_s(
    database_url: &str,
    ws: &Workspace,
    payloads: &[Value],
    concurrency: usize,
) -> anyhow::Result<f64> {
    use sepay_store::baseline;
    let rows: Vec<(Option<i64>, String, Value)> = payloads
        .iter()
        .filter_map(|p| match Delivery::from_value(p.clone()) {
            Delivery::Object(payload) => Some((
                payload.sepay_id(),
                DedupeKey::for_payload(&payload).as_str().to_owned(),
                payload.into_value(),
            )),
            _ => None,
        })
        .collect();
    let mut connections = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        connections.push(
            baseline::connect(database_url)
                .await
                .context("plain insert: cannot connect to Postgres")?,
        );
    }
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    futures::future::try_join_all(connections.iter_mut().map(|connection| async {
        while let Some((sepay_id, key, payload)) = rows.get(next.fetch_add(1, Ordering::Relaxed)) {
            baseline::insert_event_row(connection, ws.ws_id, ws.endpoint_id, *sepay_id, key, payload).await?;
        }
        Ok::<_, sepay_store::StoreError>(())
    }))
    .await
    .context("plain insert")?;
    let rate = rows.len() as f64 / started.elapsed().as_secs_f64();
    for connection in connections {
        drop(connection);
    }
    Ok(rate)
}

/// (b) The SePay reference's Node/Express handler (`bench/express-baseline/server.js`) as a
/// child process of this one; killed on drop.
struct Express {
    child: tokio::process::Child,
    url: String,
    auth: String,
    log: PathBuf,
}

impl Express {
    /// Installs its packages (`npm ci`) if `node_modules` is missing, starts `node server.js` on a
    /// free port against the bench's database and returns once it listens. An error says why it
    /// cannot run here.
    async fn start(dir: &Path, database_url: &str, pool: usize) -> anyhow::Result<Self> {
        for tool in ["node", "npm"] {
            let found = tokio::process::Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
            anyhow::ensure!(found.is_ok_and(|s| s.success()), "`{tool}` not found on PATH");
        }
        if !dir.join("node_modules").is_dir() {
            let out = tokio::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(dir)
                .output()
                .await
                .with_context(|| format!("cannot run npm ci in {}", dir.display()))?;
            anyhow::ensure!(
                out.status.success(),
                "npm ci in {} failed: {}",
                dir.display(),
                tail(&String::from_utf8_lossy(&out.stderr))
            );
        }
        let port = free_port()?;
        let api_key = format!("spak_{}", Uuid::new_v4().simple());
        let log = std::env::temp_dir().join(format!("sepay-dev-express-{}-{port}.log", std::process::id()));
        let child = tokio::process::Command::new("node")
            .arg("server.js")
            .current_dir(dir)
            .env("PORT", port.to_string())
            .env("DATABASE_URL", database_url)
            .env("PG_POOL_MAX", pool.to_string())
            .env("SEPAY_API_KEY", &api_key)
            .env("NODE_ENV", "production")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start node server.js")?;
        let mut express = Self {
            child,
            url: format!("http://127.0.0.1:{port}/webhook/sepay"),
            auth: format!("Apikey {api_key}"),
            log,
        };
        // it listens once its table exists and its pool is open
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Some(status) = express.child.try_wait()? {
                anyhow::bail!("node server.js exited ({status}): {}", express.log_tail());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "node server.js not listening within 30 s: {}",
                express.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(express)
    }

    fn log_tail(&self) -> String {
        tail(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Its peak resident memory so far, in MiB.
    fn peak_rss_mib(&self) -> Option<f64> {
        let pid = self.child.id()?;
        crate::serve::peak_rss_kib(&pid.to_string()).map(|kib| kib as f64 / 1024.0)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Express {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The last lines of a child's output, on one line.
fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
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

/// Peak resident memory (`VmHWM`) of this process, the load generator (and the plain-insert
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

fn ack_ms(hist: &Histogram<u64>) -> Value {
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    json!({"p50": ms(0.5), "p99": ms(0.99), "p999": ms(0.999)})
}

fn ack_detail(hist: &Histogram<u64>, failed: usize) -> String {
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "ack p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, {failed} failed",
        ms(0.5),
        ms(0.99),
        ms(0.999)
    )
}

fn mib(value: Option<f64>) -> String {
    value.map_or("?".into(), |v| format!("{v:.1}"))
}

pub async fn run(cli: &Cli, args: &BenchArgs) -> anyhow::Result<()> {
    let stamp = chrono::Utc::now().timestamp();
    // a few connections for setting up and counting; the plain insert and the services have
    // connections of their own
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

    // 1a. the plain durable insert, in this process, with the load's concurrency
    let synchronous_commit = sepay_store::baseline::synchronous_commit(db)
        .await
        .context("reading synchronous_commit")?;
    let baseline_ws = workspace(db, "http://127.0.0.1").await?;
    let plain = plain_insert_per_s(
        &db_config.database_url,
        &baseline_ws,
        &payloads(args, 1, 0.0, args.deliveries),
        args.concurrency,
    )
    .await?;
    sepay_store::baseline::remove_event_rows(db, baseline_ws.ws_id).await?;
    rows.push((
        "plain insert: one event row per autocommit INSERT (no HTTP, no NATS)".into(),
        plain,
        format!(
            "{} connections, synchronous_commit {synchronous_commit}",
            args.concurrency
        ),
        String::new(),
    ));

    // 1b. the reference's Express handler under the load generator the ingress gets next; it
    //     is skipped, not fatal, where it cannot run
    let (express, express_rate, express_skipped) =
        match Express::start(&args.express_dir, &db_config.database_url, args.concurrency).await {
            Ok(server) => {
                post_warm_up(&http, &server.url, &server.auth, args, 11).await?;
                let payloads = deliveries(args, 10);
                let without_id = payloads.iter().filter(|p| p.get("id").is_none()).count();
                let measured = post_all(&http, &server.url, &server.auth, &payloads, args.concurrency).await;
                let rss = server.peak_rss_mib();
                server.stop().await;
                let (hist, took, failed) = measured?;
                let rate = args.deliveries as f64 / took.as_secs_f64();
                rows.push((
                    "Express + pg handler (the reference's: SELECT, then INSERT)".into(),
                    rate,
                    format!(
                        "{} ({without_id} without an id, refused 400)",
                        ack_detail(&hist, failed)
                    ),
                    format!("node {}", mib(rss)),
                ));
                let value = json!({"per_s": rate, "vs_plain_insert": rate / plain, "ack_ms": ack_ms(&hist),
                    "failed": failed, "without_id": without_id, "peak_rss_mib": rss});
                (value, Some(rate), None)
            }
            Err(err) => {
                let reason = format!("{err:#}");
                eprintln!("sepay-dev: bench: the Express baseline is skipped: {reason}");
                (Value::Null, None, Some(reason))
            }
        };
    let vs_express = |rate: f64| express_rate.map(|e| rate / e);

    // 2. the ingress alone, a process of its own; its workspaces exist before it loads its
    //    endpoint directory
    let port = free_port()?;
    let ingress_url = format!("http://127.0.0.1:{port}");
    let ws = workspace(db, &ingress_url).await?;
    let flood_ws = match args.junk_rate {
        0 => None,
        _ => Some(workspace(db, &ingress_url).await?),
    };
    let flood_ws_id = flood_ws.as_ref().map(|w| w.ws_id);
    let ingress = services.ingress(&format!("bench{stamp}"), port).await?;
    warm_up(&http, &ingress, services.ingress_connections).await;
    post_warm_up(&http, &ws.url, &ws.auth, args, 12).await?;
    let payloads = deliveries(args, 2);
    let (hist, took, failed) = post_all(&http, &ws.url, &ws.auth, &payloads, args.concurrency).await?;
    let rate = args.deliveries as f64 / took.as_secs_f64();
    let full_load_rss = peak_rss_mib(&ingress);
    rows.push((
        "ingress: deliveries answered".into(),
        rate,
        ack_detail(&hist, failed),
        format!("ingress {}", mib(full_load_rss)),
    ));
    let mut value = json!({
        "deliveries": args.deliveries, "concurrency": args.concurrency,
        "baselines": {"plain_insert_per_s": plain, "express_per_s": express_rate, "synchronous_commit": synchronous_commit},
        "express": express, "express_skipped": express_skipped,
        "ingress": {"per_s": rate, "vs_plain_insert": rate / plain, "vs_express": vs_express(rate), "ack_ms": ack_ms(&hist), "failed": failed,
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
    // measured: left `received` (no processor ran), they would be scanned by every relay pass of
    // the end-to-end rounds, a backlog no running system has
    for ws_id in std::iter::once(ws.ws_id).chain(flood_ws_id) {
        sepay_store::baseline::remove_event_rows(db, ws_id).await?;
    }

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
        let first_post = chrono::Utc::now();
        post_all(&http, &ws.url, &ws.auth, &payloads, args.concurrency).await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, processed) = events::count_for_workspace(db, ws.ws_id).await?;
            if processed >= expected || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut peaks = stop_measured(std::iter::once(ingress).chain(processors).collect()).await;
        let processor_rss = peaks.split_off(1);
        let ingress_rss = peaks[0];
        ingress_peaks.extend(ingress_rss);
        processor_peaks.extend(processor_rss.iter().flatten());
        let (booked, p50, p99, p999) = events::booking_latency(db, ws.ws_id).await?;
        // from the first POST to the last booking's own time, not to the poll that saw it
        let last_booked = events::last_processed_at(db, ws.ws_id)
            .await
            .context("the last booking's time")?;
        let seconds = last_booked.map_or(0.0, |t| (t - first_post).as_seconds_f64());
        let rate = if seconds > 0.0 { booked as f64 / seconds } else { 0.0 };
        rows.push((
            format!("end to end, {replicas} processor(s): booked"),
            rate,
            format!(
                "{booked}/{expected} booked in {seconds:.1} s from the first POST; POST→booked p50 {p50:.1} ms, p99 {p99:.1} ms, p99.9 {p999:.1} ms"
            ),
            format!(
                "ingress {}; processors {}",
                mib(ingress_rss),
                processor_rss.iter().map(|p| mib(*p)).collect::<Vec<_>>().join(" / ")
            ),
        ));
        if let Some(rounds) = value["end_to_end"].as_array_mut() {
            rounds.push(
                json!({"replicas": replicas, "booked": booked, "expected": expected, "per_s": rate,
                "vs_plain_insert": rate / plain, "vs_express": vs_express(rate), "seconds": seconds,
                "latency_ms": {"p50": p50, "p99": p99, "p999": p999},
                "peak_rss_mib": {"ingress": ingress_rss, "processors": processor_rss}}),
            );
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
        "sepay-dev bench: {} deliveries per phase, {} in flight, {:.0}% repeats, {:.0}% eventless (debug build: {})\n",
        args.deliveries,
        args.concurrency,
        args.repeat_share * 100.0,
        args.eventless_share * 100.0,
        cfg!(debug_assertions)
    );
    if let Some(reason) = &express_skipped {
        table.push_str(&format!("the Express baseline is skipped: {reason}\n"));
    }
    table.push_str(
        "\n| phase | per second | × plain insert | × Express | detail | peak RSS MiB |\n|---|---:|---:|---:|---|---|\n",
    );
    for (name, rate, detail, rss) in &rows {
        let express = vs_express(*rate).map_or("–".into(), |x| format!("{x:.2}"));
        table.push_str(&format!(
            "| {name} | {rate:.0} | {:.2} | {express} | {detail} | {rss} |\n",
            rate / plain
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
