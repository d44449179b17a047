//! Traces across the queue, metrics, readiness: ingress and processor in this process against
//! the real Postgres and NATS.

use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use sepay_ingress::IngressConfig;
use sepay_processor::{FallbackOnly, ProcessorConfig};
use sepay_testkit::{PrivateNats, Seeded, TcpProxy, TestDb, delivery, eventually, test_bus};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Services {
    ingress: String,
    processor: String,
    /// The ingress's health and metrics.
    ingress_admin: String,
    stop: CancellationToken,
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(pool: sepay_store::PgPool, nats: &sepay_bus::NatsConfig) -> Services {
    let stop = CancellationToken::new();
    let (ingress, ingress_admin, health) = (
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let urls = (
        format!("http://{}", ingress.local_addr().unwrap()),
        format!("http://{}", health.local_addr().unwrap()),
        format!("http://{}", ingress_admin.local_addr().unwrap()),
    );
    let bus = sepay_bus::Bus::connect(nats).await.unwrap();
    let config = IngressConfig {
        relay_interval_ms: 100,
        relay_min_age_ms: 200,
        ..Default::default()
    };
    tokio::spawn(sepay_ingress::serve(
        ingress,
        Some(ingress_admin),
        config,
        pool.clone(),
        bus.clone(),
        stop.clone(),
    ));
    tokio::spawn(sepay_processor::serve(
        health,
        ProcessorConfig::default(),
        pool,
        bus,
        Arc::new(FallbackOnly),
        stop.clone(),
    ));
    Services {
        ingress: urls.0,
        processor: urls.1,
        ingress_admin: urls.2,
        stop,
    }
}

async fn deliver(url: &str, seed: &Seeded, id: i64) {
    let res = reqwest::Client::new()
        .post(format!("{url}{}", seed.path()))
        .header("authorization", seed.authorization())
        .json(&delivery(id, "in", json!(1000)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn wait_processed(db: &TestDb, n: i64) {
    let done = eventually(Duration::from_secs(10), || async {
        let processed: i64 = sqlx::query_scalar("select count(*) from sepay_webhook_events where status = 'processed'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (processed >= n).then_some(())
    })
    .await;
    assert!(done.is_some(), "not processed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_holds_the_delivery_and_its_booking_and_no_secret() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let _telemetry = sepay_telemetry::init_with_provider(provider.clone(), sepay_telemetry::LogFormat::Text);
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let services = start(db.pool.clone(), &nats).await;
    let seed = Seeded::new(&db.pool).await;
    deliver(&services.ingress, &seed, 4711).await;
    wait_processed(&db, 1).await;
    let spans = eventually(Duration::from_secs(5), || {
        let _ = provider.force_flush();
        let spans = exporter.get_finished_spans().unwrap();
        let found = spans.iter().any(|s| s.name == "sepay.events.received process");
        async move { found.then_some(spans) }
    })
    .await
    .expect("the processor's span was exported");
    let server = spans
        .iter()
        .find(|s| s.name == "POST /api/v1/webhooks/sepay/{token}")
        .expect("ingress span");
    let consumer = spans
        .iter()
        .find(|s| s.name == "sepay.events.received process")
        .unwrap();
    assert_eq!(
        consumer.span_context.trace_id(),
        server.span_context.trace_id(),
        "one trace"
    );
    assert_eq!(
        consumer.parent_span_id,
        server.span_context.span_id(),
        "the consumer continues the delivery's span"
    );
    let kinds: Vec<String> = [server, consumer]
        .iter()
        .map(|s| format!("{:?}", s.span_kind))
        .collect();
    assert_eq!(kinds, ["Server", "Consumer"]);
    for span in &spans {
        for kv in &span.attributes {
            let value = kv.value.as_str();
            for secret in [&seed.token, &seed.api_key] {
                assert!(
                    !value.contains(secret.as_str()),
                    "span {} attribute {} carries a secret",
                    span.name,
                    kv.key
                );
            }
        }
    }
}

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(url: &str) -> String {
    let res = reqwest::get(format!("{url}/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

#[tokio::test]
async fn metrics_move_as_deliveries_are_taken_rejected_and_booked() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let services = start(db.pool.clone(), &nats).await;
    let seed = Seeded::new(&db.pool).await;
    let before = scrape(&services.ingress_admin).await;
    deliver(&services.ingress, &seed, 1).await;
    deliver(&services.ingress, &seed, 2).await;
    let wrong = reqwest::Client::new()
        .post(format!("{}{}", services.ingress, seed.path()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    wait_processed(&db, 2).await;
    let after = eventually(Duration::from_secs(5), || async {
        let text = scrape(&services.processor).await;
        // the processing histogram is recorded after the ack, a moment after the settled counter
        let settled = sample(&text, r#"sepay_events_settled_total{outcome="booked"}"#) >= 2.0;
        (settled && sample(&text, "sepay_processing_seconds_count") >= 2.0).then_some(text)
    })
    .await
    .expect("booked counter and processing histogram");
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        moved(r#"sepay_webhook_deliveries_total{provider="sepay",outcome="new"}"#),
        2.0
    );
    assert_eq!(moved(r#"sepay_webhook_rejected_total{reason="unauthorized"}"#), 1.0);
    assert_eq!(moved(r#"sepay_events_settled_total{outcome="booked"}"#), 2.0);
    assert!(sample(&after, r#"sepay_webhook_ack_seconds_count{status="200"}"#) >= 2.0);
    assert!(sample(&after, "sepay_event_end_to_end_seconds_count") >= 2.0);
    assert!(sample(&after, "sepay_processing_seconds_count") >= 2.0);
    assert!(
        after.contains("# TYPE sepay_event_end_to_end_seconds histogram"),
        "histograms, not summaries"
    );
}

async fn ready(url: &str) -> (u16, Value) {
    match reqwest::get(format!("{url}/readyz")).await {
        Ok(res) => (res.status().as_u16(), res.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

async fn wait_ready(url: &str, want: u16) -> Value {
    eventually(Duration::from_secs(15), || async {
        let (status, body) = ready(url).await;
        (status == want).then_some(body)
    })
    .await
    .unwrap_or_else(|| panic!("{url}/readyz never answered {want}"))
}

#[tokio::test]
async fn readiness_follows_postgres_and_nats_going_away_and_coming_back() {
    let db = TestDb::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let config = sepay_store::DbConfig {
        database_url: proxy.database_url(&db.config.database_url),
        db_max_connections: 4,
        db_acquire_timeout_ms: 1000,
        ..Default::default()
    };
    let pool = sepay_store::connect(&config).await.unwrap();
    let mut server = PrivateNats::start();
    let (_, nats) = test_bus(&server.url()).await;
    let services = start(pool, &nats).await;
    for url in [&services.ingress_admin, &services.processor] {
        wait_ready(url, 200).await;
    }
    assert_eq!(
        wait_ready(&services.processor, 200).await,
        json!({"postgres": true, "nats": true, "consumer": true})
    );

    proxy.cut();
    for url in [&services.ingress_admin, &services.processor] {
        assert_eq!(wait_ready(url, 503).await["postgres"], json!(false), "{url}");
    }
    proxy.restore();
    for url in [&services.ingress_admin, &services.processor] {
        wait_ready(url, 200).await;
    }

    server.stop();
    for url in [&services.ingress_admin, &services.processor] {
        assert_eq!(wait_ready(url, 503).await["nats"], json!(false), "{url}");
    }
    server.resume();
    for url in [&services.ingress_admin, &services.processor] {
        wait_ready(url, 200).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_request_continues_the_publishers_trace_in_the_provisioner() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let _telemetry = sepay_telemetry::init_with_provider(provider.clone(), sepay_telemetry::LogFormat::Text);
    let db = TestDb::new().await;
    let (bus, _) = test_bus(&sepay_testkit::nats_url()).await;
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = sepay_provisioner::ProvisionerConfig {
        reconcile_interval_secs: 0,
        ..Default::default()
    };
    tokio::spawn(sepay_provisioner::serve(
        listener,
        config,
        db.pool.clone(),
        bus.clone(),
        stop.clone(),
    ));
    bus.ensure_control_stream().await.unwrap();
    // what the connector does when an admin presses "Sync now"
    let page = tracing::info_span!("POST /ws/{ws}/sync");
    let trace_id = {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        page.context().span().span_context().trace_id()
    };
    {
        use tracing::Instrument;
        let request = sepay_bus::ControlRequest::workspace(uuid::Uuid::new_v4());
        bus.publish_control(sepay_bus::ControlSubject::SyncRequested, "trace-1", &request)
            .instrument(page.clone())
            .await
            .unwrap();
    }
    drop(page);
    let spans = eventually(Duration::from_secs(10), || {
        let _ = provider.force_flush();
        let spans = exporter.get_finished_spans().unwrap();
        async move { spans.iter().any(|s| s.name == "sepay.control process").then_some(spans) }
    })
    .await
    .expect("the provisioner's span was exported");
    let consumer = spans.iter().find(|s| s.name == "sepay.control process").unwrap();
    assert_eq!(
        consumer.span_context.trace_id(),
        trace_id,
        "one trace from the page to the provisioner"
    );
    stop.cancel();
}
