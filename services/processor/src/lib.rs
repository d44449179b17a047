//! `sepay-processor`: a durable JetStream pull consumer that books each event exactly once.
//!
//! Per message: load the event, normalize, resolve the wallet, classify (bounded in time, outside
//! any transaction), then in ONE statement lock the event, insert the wallet transaction and
//! mark the event processed; ack after the commit. The loads and the bookings of the messages in
//! flight are batched (`sepay_runtime::group_commit`, at most `PROCESSOR_BATCH_SIZE`): one query
//! reads them and one statement books them, one by one again if a batch fails. Redeliveries of processed events are acked
//! without effect; failures mark the row `failed` with a reason and are retried with backoff.

pub mod classify;
mod cli;
mod settings;
pub use settings::BookingSettings;
mod worker;

use sepay_bus::{Bus, ConsumerSettings};
use sepay_store::PgPool;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use classify::{
    Chain, Classification, Classifier, ClassifyInput, FallbackOnly, Learned, LlmConfig, LlmEnricher, LlmTagger, Rules,
};
pub use cli::Cli;

/// The production chain: rules → learned → language model (when configured) → fallback, with
/// the model tagger (when configured) alongside.
pub fn default_classifier(config: &ProcessorConfig, db: &PgPool) -> Arc<dyn Classifier> {
    let mut links: Vec<Box<dyn Classifier>> = vec![
        Box::new(Rules {
            settings: settings::BookingSettings::start(db.clone()),
        }),
        Box::new(Learned::new(
            db.clone(),
            config.learned_min_confidence,
            config.learned_min_examples,
        )),
    ];
    if let Some(llm) = LlmEnricher::new(db.clone(), config.llm.clone()) {
        links.push(Box::new(llm));
    }
    let mut taggers: Vec<Box<dyn Classifier>> = vec![];
    if let Some(tagger) = LlmTagger::new(db.clone(), config.llm.clone()) {
        taggers.push(Box::new(tagger));
    }
    Arc::new(Chain::new(links).with_taggers(taggers))
}

/// The durable consumer's name on SEPAY_EVENTS.
pub const CONSUMER: &str = "sepay-processor";

/// `PROCESSOR_ADDR`
pub const DEFAULT_PROCESSOR_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8081);
/// `PROCESSOR_CONCURRENCY`
pub const DEFAULT_PROCESSOR_CONCURRENCY: usize = 64;
/// `PROCESSOR_BATCH_SIZE`
pub const DEFAULT_PROCESSOR_BATCH_SIZE: usize = 64;
/// `PROCESSOR_MAX_DELIVER`
pub const DEFAULT_PROCESSOR_MAX_DELIVER: i64 = 8;
/// `PROCESSOR_ACK_WAIT_SECS`: at least [`DEFAULT_CLASSIFY_TIMEOUT_MS`] plus the booking allowance.
pub const DEFAULT_PROCESSOR_ACK_WAIT_SECS: u64 = 30;
/// `PROCESSOR_MAX_ACK_PENDING`
pub const DEFAULT_PROCESSOR_MAX_ACK_PENDING: i64 = 1000;
/// `CLASSIFY_TIMEOUT_MS`
pub const DEFAULT_CLASSIFY_TIMEOUT_MS: u64 = 4000;
/// `LEARNED_MIN_CONFIDENCE`
pub const DEFAULT_LEARNED_MIN_CONFIDENCE: f64 = 0.8;
/// `LEARNED_MIN_EXAMPLES`
pub const DEFAULT_LEARNED_MIN_EXAMPLES: usize = 20;

#[derive(Debug, Clone, clap::Args)]
pub struct ProcessorConfig {
    /// Address of /healthz and /readyz.
    #[arg(long, env = "PROCESSOR_ADDR", default_value_t = DEFAULT_PROCESSOR_ADDR)]
    pub processor_addr: SocketAddr,
    /// Messages processed at once by this replica.
    #[arg(long, env = "PROCESSOR_CONCURRENCY", default_value_t = DEFAULT_PROCESSOR_CONCURRENCY)]
    pub processor_concurrency: usize,
    /// Events read in one query, and booked in one statement and commit, at most: the messages in
    /// flight that are ready at the same moment (never more than PROCESSOR_CONCURRENCY).
    #[arg(long, env = "PROCESSOR_BATCH_SIZE", default_value_t = DEFAULT_PROCESSOR_BATCH_SIZE)]
    pub processor_batch_size: usize,
    /// Deliveries of one message before JetStream gives up (the row stays `failed`, replayable).
    #[arg(long, env = "PROCESSOR_MAX_DELIVER", default_value_t = DEFAULT_PROCESSOR_MAX_DELIVER)]
    pub processor_max_deliver: i64,
    /// Seconds JetStream waits for an ack before redelivering.
    #[arg(long, env = "PROCESSOR_ACK_WAIT_SECS", default_value_t = DEFAULT_PROCESSOR_ACK_WAIT_SECS)]
    pub processor_ack_wait_secs: u64,
    /// Unacked messages across all replicas (≥ replicas × concurrency).
    #[arg(long, env = "PROCESSOR_MAX_ACK_PENDING", default_value_t = DEFAULT_PROCESSOR_MAX_ACK_PENDING)]
    pub processor_max_ack_pending: i64,
    /// Time budget of the whole classification chain; booking never waits longer.
    #[arg(long, env = "CLASSIFY_TIMEOUT_MS", default_value_t = DEFAULT_CLASSIFY_TIMEOUT_MS)]
    pub classify_timeout_ms: u64,
    /// The learned classifier's answer counts from this posterior probability.
    #[arg(long, env = "LEARNED_MIN_CONFIDENCE", default_value_t = DEFAULT_LEARNED_MIN_CONFIDENCE)]
    pub learned_min_confidence: f64,
    /// Categorized bookings a workspace needs before its learned classifier is used.
    #[arg(long, env = "LEARNED_MIN_EXAMPLES", default_value_t = DEFAULT_LEARNED_MIN_EXAMPLES)]
    pub learned_min_examples: usize,
    #[command(flatten)]
    pub llm: LlmConfig,
    /// HTTP limits of the health listener (`HTTP_*`, set by the binary).
    #[arg(skip)]
    pub http: sepay_runtime::HttpLimits,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            processor_addr: DEFAULT_PROCESSOR_ADDR,
            processor_concurrency: DEFAULT_PROCESSOR_CONCURRENCY,
            processor_batch_size: DEFAULT_PROCESSOR_BATCH_SIZE,
            processor_max_deliver: DEFAULT_PROCESSOR_MAX_DELIVER,
            processor_ack_wait_secs: DEFAULT_PROCESSOR_ACK_WAIT_SECS,
            processor_max_ack_pending: DEFAULT_PROCESSOR_MAX_ACK_PENDING,
            classify_timeout_ms: DEFAULT_CLASSIFY_TIMEOUT_MS,
            learned_min_confidence: DEFAULT_LEARNED_MIN_CONFIDENCE,
            learned_min_examples: DEFAULT_LEARNED_MIN_EXAMPLES,
            llm: LlmConfig::default(),
            http: sepay_runtime::HttpLimits::default(),
        }
    }
}

impl ProcessorConfig {
    fn consumer_settings(&self) -> ConsumerSettings {
        let ack_wait = Duration::from_secs(self.processor_ack_wait_secs);
        ConsumerSettings {
            ack_wait,
            max_deliver: self.processor_max_deliver,
            max_ack_pending: self.processor_max_ack_pending,
        }
    }

    /// Two batches read and two booked at once, each on a connection of its own.
    fn batch_limits(&self) -> sepay_runtime::group_commit::Limits {
        sepay_runtime::group_commit::Limits {
            max_batch: self.processor_batch_size.max(1),
            writers: 2,
            queue: self.processor_concurrency.max(1),
        }
    }

    /// JetStream redelivers a message unacked for `ack_wait`: it must outlast classification
    /// and booking, or a slow message gets a second, concurrent attempt.
    pub fn validate(&self) -> anyhow::Result<()> {
        let needed = Duration::from_millis(self.classify_timeout_ms) + BOOKING_ALLOWANCE;
        anyhow::ensure!(
            Duration::from_secs(self.processor_ack_wait_secs) >= needed,
            "PROCESSOR_ACK_WAIT_SECS ({}) must be at least CLASSIFY_TIMEOUT_MS plus {} s ({} s)",
            self.processor_ack_wait_secs,
            BOOKING_ALLOWANCE.as_secs(),
            needed.as_secs_f64().ceil()
        );
        Ok(())
    }
}

/// Time a message may take beyond classification (load, resolve, book, ack).
const BOOKING_ALLOWANCE: Duration = Duration::from_secs(5);

/// Consumes until `shutdown` is cancelled; in-flight messages finish first.
pub async fn run(
    config: ProcessorConfig,
    db: PgPool,
    bus: Bus,
    classifier: Arc<dyn Classifier>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.processor_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.processor_addr))?;
    serve(listener, config, db, bus, classifier, shutdown).await
}

/// Like [`run`] with the health listener already bound (port 0 in tests and `sepayctl up`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ProcessorConfig,
    db: PgPool,
    bus: Bus,
    classifier: Arc<dyn Classifier>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    sepay_telemetry::metrics::handle();
    let consumer_ready = Arc::new(AtomicBool::new(false));
    let health = tokio::spawn({
        let (db, bus, ready, shutdown) = (db.clone(), bus.clone(), consumer_ready.clone(), shutdown.clone());
        let limits = config.http.clone();
        async move { sepay_runtime::serve_health(listener, db, bus, Some(ready), &limits, shutdown).await }
    });
    consume_with(config, db, bus, classifier, consumer_ready, shutdown).await?;
    health.await??;
    Ok(())
}

/// The consumer loop alone, without the health server (tests run several on one consumer).
pub async fn consume(
    config: ProcessorConfig,
    db: PgPool,
    bus: Bus,
    classifier: Arc<dyn Classifier>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    consume_with(config, db, bus, classifier, Arc::new(AtomicBool::new(false)), shutdown).await
}

async fn consume_with(
    config: ProcessorConfig,
    db: PgPool,
    bus: Bus,
    classifier: Arc<dyn Classifier>,
    consumer_ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate()?;
    let db_for_sweeper = db.clone();
    let (loader, booker) = worker::start_batches(&db, config.batch_limits());
    let worker = Arc::new(worker::Worker {
        loader,
        booker,
        settings: settings::BookingSettings::start(db.clone()),
        db,
        classifier,
        classify_budget: Duration::from_millis(config.classify_timeout_ms),
        max_deliver: config.processor_max_deliver,
    });
    tracing::info!(concurrency = config.processor_concurrency, "sepay-processor consuming");
    tokio::spawn(worker::report_consumer(bus.clone(), shutdown.clone()));
    tokio::spawn(worker::sweep_reservations(db_for_sweeper, shutdown.clone()));
    // a task of its own: the caller's future may be `#[tokio::main]`'s, polled by the main thread
    // outside the worker pool, where every message's wake-up would cross threads. Dropping the
    // caller's future stops it, as when the loop ran inside it.
    tokio_util::task::AbortOnDropHandle::new(tokio::spawn(worker::consume_loop(
        worker,
        bus,
        config.consumer_settings(),
        config.processor_concurrency,
        consumer_ready,
        shutdown,
    )))
    .await
    .map_err(|e| anyhow::anyhow!("the consumer loop ended abnormally: {e}"))?
}
