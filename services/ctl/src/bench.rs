//! `sepayctl bench`: how fast, measured against a baseline in the same run. Loopback only,
//! bounded in count; a database and bus prefix of its own, dropped afterwards.
//!
//! 1. the insert limit: the ingress's own insert (`record_delivery`) straight into Postgres with
//!    the same concurrency, no HTTP, no NATS: the ceiling a durable ingress can reach;
//! 2. the ingress alone: POSTs answered (stored + published), ack latency from an HDR histogram;
//! 3. the ingress under a flood: the same honest load with `--junk-rate` junk requests a second
//!    alongside (unknown tokens and wrong keys): honest ack latency against phase 2, junk rows;
//! 4. end to end with 1, 2 and 4 processor replicas on one durable consumer: POST → booked.

use crate::Cli;
use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use sepay_core::{DedupeKey, Delivery, EventSource, RetryPolicy};
use sepay_ingress::IngressConfig;
use sepay_processor::{FallbackOnly, ProcessorConfig};
use sepay_store::events::{self, EventBody, NewEvent};
use sepay_store::{DbConfig, PgPool, workspaces};
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
    let created = sepay_store::admin::create_manual_endpoint(db, base, ws.id, None, "bench").await?;
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

/// Junk at `rate` a second until `stop`: unknown tokens and a real token with a wrong key, in
/// turn. Returns how many were sent and the answers by status.
async fn flood(
    http: reqwest::Client,
    real_url: String,
    base: String,
    rate: u64,
    stop: CancellationToken,
) -> (u64, String) {
    let unknown = format!("{base}/api/v1/webhooks/sepay/spwh_junk000000000000000000000000000000000000");
    let in_flight = Arc::new(tokio::sync::Semaphore::new(512));
    let answers: Arc<std::sync::Mutex<std::collections::BTreeMap<u16, u64>>> = Default::default();
    let per_tick = rate.div_ceil(1000).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut sent = 0u64;
    while !stop.is_cancelled() {
        tick.tick().await;
        for _ in 0..per_tick {
            // a full pipe drops junk rather than queueing it: the rate is what the ingress sees
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                continue;
            };
            let url = if sent % 2 == 0 { &unknown } else { &real_url };
            let request = http.post(url).header("authorization", "Apikey spak_junk").body("{}");
            let answers = answers.clone();
            sent += 1;
            tokio::spawn(async move {
                let status = request.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                *answers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(status)
                    .or_default() += 1;
                drop(permit);
            });
        }
    }
    let _ = in_flight.acquire_many(512).await;
    let by_status = answers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(status, n)| format!("{status}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    (sent, by_status)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

pub async fn run(cli: &Cli, args: &BenchArgs) -> anyhow::Result<()> {
    let stamp = chrono::Utc::now().timestamp();
    let base = cli
        .db
        .database_url
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .context("DATABASE_URL has no database name")?;
    let db_config = DbConfig {
        database_url: format!("{base}/sepay_bench_{stamp}"),
        db_max_connections: 40,
        ..cli.db.clone()
    };
    let db = sepay_store::connect(&db_config).await?;
    let result = phases(cli, args, &db, stamp).await;
    db.close().await;
    if !args.keep_db {
        sepay_store::drop_database(&db_config.database_url).await?;
    }
    let (value, table) = result?;
    crate::output::print(cli.json, &value, || table);
    Ok(())
}

async fn phases(cli: &Cli, args: &BenchArgs, db: &PgPool, stamp: i64) -> anyhow::Result<(Value, String)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let mut rows: Vec<(String, f64, String)> = Vec::new();

    // 1. the insert limit
    let baseline_ws = workspaces::create_workspace(db, "bench-baseline").await?.id;
    let payloads = deliveries(args, 1);
    let policy = RetryPolicy::default();
    let started = Instant::now();
    futures::stream::iter(payloads.iter().map(|p| {
        let policy = policy;
        async move {
            let Delivery::Object(payload) = Delivery::parse(p.to_string().as_bytes()) else {
                return;
            };
            let key = DedupeKey::for_payload(&payload);
            let value = payload.clone().into_value();
            let new = NewEvent {
                ws_id: baseline_ws,
                endpoint_id: None,
                source: EventSource::Webhook,
                sepay_transaction_id: payload.sepay_id(),
                dedupe_key: &key,
                body: EventBody::Json(&value),
            };
            let _ = events::record_delivery(db, &new, &policy).await;
        }
    }))
    .buffer_unordered(args.concurrency)
    .collect::<Vec<()>>()
    .await;
    let limit = args.deliveries as f64 / started.elapsed().as_secs_f64();
    rows.push((
        "insert limit (record_delivery, no HTTP/NATS)".into(),
        limit,
        String::new(),
    ));

    // 2. the ingress alone
    let stop = CancellationToken::new();
    let nats = sepay_bus::NatsConfig {
        bus_prefix: format!("bench{stamp}"),
        ..cli.nats.clone()
    };
    let bus = sepay_bus::Bus::connect(&nats).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ingress_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(sepay_ingress::serve(
        listener,
        IngressConfig::default(),
        db.clone(),
        bus.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ws = workspace(db, &ingress_url).await?;
    let payloads = deliveries(args, 2);
    let (hist, took, failed) = post_all(&http, &ws, &payloads, args.concurrency).await?;
    let rate = args.deliveries as f64 / took.as_secs_f64();
    rows.push((
        "ingress: deliveries answered".into(),
        rate,
        format!(
            "ack p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, {failed} failed",
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0,
            hist.value_at_quantile(0.999) as f64 / 1000.0
        ),
    ));
    let mut value = json!({
        "deliveries": args.deliveries, "concurrency": args.concurrency,
        "insert_limit_per_s": limit,
        "ingress": {"per_s": rate, "ratio": rate / limit, "ack_ms": {"p50": hist.value_at_quantile(0.5) as f64 / 1000.0, "p99": hist.value_at_quantile(0.99) as f64 / 1000.0, "p999": hist.value_at_quantile(0.999) as f64 / 1000.0}, "failed": failed},
        "end_to_end": [],
    });

    // 3. the same ingress under a flood of junk
    if args.junk_rate > 0 {
        let flood_ws = workspace(db, &ingress_url).await?;
        let honest = deliveries(args, 20);
        let expected = unique(&honest) as i64;
        let junk_stop = CancellationToken::new();
        let junk = tokio::spawn(flood(
            http.clone(),
            ws.url.clone(),
            ingress_url.clone(),
            args.junk_rate,
            junk_stop.clone(),
        ));
        let (flood_hist, flood_took, flood_failed) = post_all(&http, &flood_ws, &honest, args.concurrency).await?;
        junk_stop.cancel();
        let (sent, by_status) = junk.await?;
        let (stored, _) = events::count_for_workspace(db, flood_ws.ws_id).await?;
        let junk_rows = stored - expected;
        let flood_rate = args.deliveries as f64 / flood_took.as_secs_f64();
        let (p50, p99) = (hist.value_at_quantile(0.5) as f64, hist.value_at_quantile(0.99) as f64);
        let (fp50, fp99) = (
            flood_hist.value_at_quantile(0.5) as f64,
            flood_hist.value_at_quantile(0.99) as f64,
        );
        let junk_per_s = sent as f64 / flood_took.as_secs_f64();
        rows.push((
            format!("ingress with {junk_per_s:.0} junk/s alongside: deliveries answered"),
            flood_rate,
            format!(
                "ack p50 {:.1} ms ({:+.0}%), p99 {:.1} ms ({:+.0}%), {flood_failed} failed; junk answers {by_status}; {junk_rows} junk rows",
                fp50 / 1000.0,
                (fp50 / p50 - 1.0) * 100.0,
                fp99 / 1000.0,
                (fp99 / p99 - 1.0) * 100.0,
            ),
        ));
        value["flood"] = json!({"junk_per_s": junk_per_s, "junk_sent": sent, "junk_answers": by_status, "per_s": flood_rate,
            "ack_ms": {"p50": fp50 / 1000.0, "p99": fp99 / 1000.0}, "p50_change": fp50 / p50 - 1.0, "p99_change": fp99 / p99 - 1.0,
            "junk_rows": junk_rows, "failed": flood_failed});
    }

    // 4. end to end, N processor replicas on one durable consumer (a fresh workspace each round)
    for (round, replicas) in args.replicas.iter().enumerate() {
        let round_stop = CancellationToken::new();
        let round_nats = sepay_bus::NatsConfig {
            bus_prefix: format!("bench{stamp}r{round}"),
            ..cli.nats.clone()
        };
        let round_bus = sepay_bus::Bus::connect(&round_nats).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(sepay_ingress::serve(
            listener,
            IngressConfig::default(),
            db.clone(),
            round_bus.clone(),
            round_stop.clone(),
        ));
        for _ in 0..*replicas {
            tokio::spawn(sepay_processor::consume(
                ProcessorConfig::default(),
                db.clone(),
                round_bus.clone(),
                Arc::new(FallbackOnly),
                round_stop.clone(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ws = workspace(db, &url).await?;
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
        let (booked, p50, p99, p999) = events::booking_latency(db, ws.ws_id).await?;
        let rate = booked as f64 / took.as_secs_f64();
        rows.push((
            format!("end to end, {replicas} processor(s): booked"),
            rate,
            format!("{booked}/{expected} booked; POST→booked p50 {p50:.1} ms, p99 {p99:.1} ms, p99.9 {p999:.1} ms"),
        ));
        value["end_to_end"].as_array_mut().map(|a| a.push(json!({"replicas": replicas, "booked": booked, "expected": expected, "per_s": rate, "ratio": rate / limit, "latency_ms": {"p50": p50, "p99": p99, "p999": p999}})));
        round_stop.cancel();
    }
    stop.cancel();
    let rss = peak_rss_mib();
    value["peak_rss_mib_all_services_one_process"] = json!(rss);
    let mut table = format!(
        "sepayctl bench: {} deliveries per phase, {} in flight, {:.0}% repeats, {:.0}% eventless (debug build: {})\n\n| phase | per second | × insert limit | detail |\n|---|---:|---:|---|\n",
        args.deliveries,
        args.concurrency,
        args.repeat_share * 100.0,
        args.eventless_share * 100.0,
        cfg!(debug_assertions)
    );
    for (name, rate, detail) in &rows {
        table.push_str(&format!("| {name} | {rate:.0} | {:.2} | {detail} |\n", rate / limit));
    }
    table.push_str(&format!(
        "\npeak RSS of this process (every service in one): {rss:.0} MiB"
    ));
    Ok((value, table))
}
