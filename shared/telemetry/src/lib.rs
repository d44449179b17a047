//! Logs and traces for every service: JSON (or text) logs on stderr through `tracing`, and
//! OpenTelemetry spans, exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! Spans always get real trace ids (an SDK provider is installed even without an exporter), so
//! the W3C `traceparent` the bus puts into NATS headers ties ingress and processor together.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The subscriber crate the services log through, for tests that install their own capturing
/// subscriber (`services/ctl/tests/hygiene.rs`) with the same version and features.
pub use tracing_subscriber;

/// Keeps the tracer provider alive; dropping it flushes pending spans.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    /// `LOG_FORMAT=json|text`, else the given default.
    pub fn from_env_or(default: LogFormat) -> Self {
        match std::env::var("LOG_FORMAT").ok().as_deref() {
            Some("json") => Self::Json,
            Some("text") => Self::Text,
            _ => default,
        }
    }
}

/// Installs logging and tracing for the process. Safe to call more than once (tests, `sepayctl
/// up`): later calls leave the first subscriber in place.
pub fn init(service_name: &str, format: LogFormat) -> TelemetryGuard {
    init_logging_to(service_name, format, LogTarget::Stderr)
}

/// Where log lines go.
pub enum LogTarget {
    /// Standard error, coloured only when it is a terminal.
    Stderr,
    /// A file (appended to), never coloured: `sepay-dev up` keeps the terminal for its summary.
    File(std::fs::File),
}

/// Like [`init`], writing the log lines to `target`.
pub fn init_logging_to(service_name: &str, format: LogFormat, target: LogTarget) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let service_name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service_name.to_owned());
    let mut builder =
        SdkTracerProvider::builder().with_resource(Resource::builder().with_service_name(service_name.clone()).build());
    let mut export_error = None;
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        // the exporter reads OTEL_EXPORTER_OTLP_* itself (endpoint, headers, timeout)
        match opentelemetry_otlp::SpanExporter::builder().with_http().build() {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(err) => export_error = Some(err.to_string()),
        }
    }
    install(builder.build(), format, target, export_error)
}

/// Like [`init`] with a provider built by the caller (tests export to memory).
pub fn init_with_provider(provider: SdkTracerProvider, format: LogFormat) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    install(provider, format, LogTarget::Stderr, None)
}

fn install(
    provider: SdkTracerProvider,
    format: LogFormat,
    target: LogTarget,
    export_error: Option<String>,
) -> TelemetryGuard {
    use std::io::IsTerminal;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let tracer = provider.tracer("sepay");
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,opentelemetry=warn,opentelemetry_sdk=warn"));
    let (writer, ansi) = match target {
        LogTarget::Stderr => (BoxMakeWriter::new(std::io::stderr), std::io::stderr().is_terminal()),
        LogTarget::File(file) => (BoxMakeWriter::new(std::sync::Mutex::new(file)), false),
    };
    let fmt = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .compact()
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()
        .is_ok();
    if let Some(err) = export_error {
        tracing::warn!(error = %err, "OTLP exporter not started; traces stay local");
    }
    if installed {
        opentelemetry::global::set_tracer_provider(provider.clone());
        TelemetryGuard {
            provider: Some(provider),
        }
    } else {
        TelemetryGuard { provider: None }
    }
}

/// A token cancelled on SIGTERM or Ctrl-C: every service's graceful shutdown starts here.
pub fn shutdown_on_signals() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    trigger.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    token
}

/// Prometheus metrics: one process-wide recorder (`sepayctl up` runs every service in one
/// process, so one `/metrics` shows them all). Names are listed in docs/operations.md.
pub mod metrics {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
    use std::sync::OnceLock;
    use std::time::Duration;

    pub use ::metrics::{counter, gauge, histogram};

    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

    /// Latency buckets in seconds: 1 ms to 30 s.
    const LATENCY_BUCKETS: [f64; 14] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];

    /// How often the recorder's upkeep runs. Histograms keep every raw sample until upkeep
    /// folds it into their buckets, so without it memory grows with every request whenever
    /// nothing scrapes `/metrics`.
    pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

    /// Installs the recorder and its upkeep thread on first use; every service calls this at
    /// start.
    pub fn handle() -> &'static PrometheusHandle {
        HANDLE.get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .expect("static buckets are valid");
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // another recorder is global already (a test harness): render an empty registry
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            let upkeep = handle.clone();
            // a thread, not a task: it must run whichever runtime (or none) the caller has
            let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "metrics upkeep thread not started; memory grows until /metrics is scraped");
            }
            handle
        })
    }

    /// The text exposition format for `GET /metrics`.
    pub fn render() -> String {
        let handle = handle();
        handle.run_upkeep();
        handle.render()
    }

    /// An axum handler for `/metrics`.
    pub async fn endpoint() -> ([(&'static str, &'static str); 1], String) {
        ([("content-type", "text/plain; version=0.0.4")], render())
    }
}
