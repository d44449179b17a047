//! `sepay-provisioner`: after a workspace connects, nothing needs SePay's dashboard. It consumes
//! SEPAY_CONTROL: syncs bank accounts into `sepay_wallet_links`, provisions one SePay webhook per
//! numeric bank account, rotates endpoints without a delivery gap, cleans up on disconnect, and
//! reconciles (on request and on a schedule) so no transaction is missed when webhooks are lost.

mod cli;
pub mod gaps;
pub mod health;
mod reconcile;
mod sync;
mod worker;

use sepay_api::{SepayClient, SepayConfig};
use sepay_bus::{Bus, ConsumerSettings};
use sepay_connection::Tokens;
use sepay_store::PgPool;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use cli::Cli;
pub use reconcile::{ReconcileOutcome, reconcile, requested as reconcile_requested};
pub use sync::{SyncOutcome, disconnect, provision, rotate, sync_and_provision};

/// The durable consumer's name on SEPAY_CONTROL.
pub const CONSUMER: &str = "sepay-provisioner";

/// `PROVISIONER_ADDR`
pub const DEFAULT_PROVISIONER_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8083);
/// `PUBLIC_BASE_URL`: the ingress on a developer machine (shared with sepayctl).
pub use sepay_runtime::DEFAULT_PUBLIC_BASE_URL;
/// `RECONCILE_INTERVAL_SECS`: hourly.
pub const DEFAULT_RECONCILE_INTERVAL_SECS: u64 = 3600;
/// `RECONCILE_WINDOW_HOURS`
pub const DEFAULT_RECONCILE_WINDOW_HOURS: u64 = 24;
/// `RECONCILE_WINDOW_ROW_LIMIT`: SePay's transaction list caps at 5000 rows.
pub const DEFAULT_RECONCILE_WINDOW_ROW_LIMIT: usize = 5000;
/// `ROTATION_GRACE_HOURS`: beyond SePay's 5 hours of retries.
pub const DEFAULT_ROTATION_GRACE_HOURS: u64 = 6;
/// `BALANCE_CHECK_INTERVAL_MS`
pub const DEFAULT_BALANCE_CHECK_INTERVAL_MS: u64 = 1000;
/// `WEBHOOK_HEALTH_INTERVAL_SECS`: every five minutes.
pub const DEFAULT_WEBHOOK_HEALTH_INTERVAL_SECS: u64 = 300;
/// `BALANCE_TRAILING_CHECK_SECS`: every five minutes.
pub const DEFAULT_BALANCE_TRAILING_CHECK_SECS: u64 = 300;
/// `BALANCE_GAP_GRACE_SECS`
pub use sepay_core::balance::DEFAULT_GAP_GRACE_SECS as DEFAULT_BALANCE_GAP_GRACE_SECS;

#[derive(Debug, Clone, clap::Args)]
pub struct ProvisionerConfig {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "PROVISIONER_ADDR", default_value_t = DEFAULT_PROVISIONER_ADDR)]
    pub provisioner_addr: SocketAddr,
    /// Base URL SePay reaches the ingress at (`PUBLIC_BASE_URL`; set by the binary, shared with sepayctl).
    #[arg(skip = String::from(DEFAULT_PUBLIC_BASE_URL))]
    pub public_base_url: String,
    /// Seconds between scheduled reconciliations of a connection (0 turns the schedule off).
    #[arg(long, env = "RECONCILE_INTERVAL_SECS", default_value_t = DEFAULT_RECONCILE_INTERVAL_SECS)]
    pub reconcile_interval_secs: u64,
    /// How far back a scheduled or default reconciliation looks.
    #[arg(long, env = "RECONCILE_WINDOW_HOURS", default_value_t = DEFAULT_RECONCILE_WINDOW_HOURS)]
    pub reconcile_window_hours: u64,
    /// Rows at which a reconciliation window is split (SePay's transaction list caps at 5000).
    #[arg(long, env = "RECONCILE_WINDOW_ROW_LIMIT", default_value_t = DEFAULT_RECONCILE_WINDOW_ROW_LIMIT)]
    pub reconcile_window_row_limit: usize,
    /// Hours a rotated endpoint's old token keeps working (SePay retries for 5 hours).
    #[arg(long, env = "ROTATION_GRACE_HOURS", default_value_t = DEFAULT_ROTATION_GRACE_HOURS)]
    pub rotation_grace_hours: u64,
    /// How often booked balances are checked for gaps (0 turns the check off).
    #[arg(long, env = "BALANCE_CHECK_INTERVAL_MS", default_value_t = DEFAULT_BALANCE_CHECK_INTERVAL_MS)]
    pub balance_check_interval_ms: u64,
    /// Seconds a balance gap may close by itself (a delivery out of order) before that span is
    /// reconciled; later attempts back off from it.
    #[arg(long, env = "BALANCE_GAP_GRACE_SECS", default_value_t = DEFAULT_BALANCE_GAP_GRACE_SECS)]
    pub balance_gap_grace_secs: u64,
    /// Seconds between comparisons of each account's balance at SePay with the balance after its
    /// last booking (a lost last transaction; 0 turns them off).
    #[arg(long, env = "BALANCE_TRAILING_CHECK_SECS", default_value_t = DEFAULT_BALANCE_TRAILING_CHECK_SECS)]
    pub balance_trailing_check_secs: u64,
    /// Seconds between checks of every provisioned webhook at SePay (deleted, disabled or changed
    /// ones are repaired; 0 turns the checks off).
    #[arg(long, env = "WEBHOOK_HEALTH_INTERVAL_SECS", default_value_t = DEFAULT_WEBHOOK_HEALTH_INTERVAL_SECS)]
    pub webhook_health_interval_secs: u64,
    /// The SePay client's settings (`SEPAY_*`; flattened by the binary, shared with the connector).
    #[arg(skip)]
    pub sepay: SepayConfig,
    /// HTTP limits of the health listener (`HTTP_*`, set by the binary).
    #[arg(skip)]
    pub http: sepay_runtime::HttpLimits,
}

impl Default for ProvisionerConfig {
    fn default() -> Self {
        Self {
            provisioner_addr: DEFAULT_PROVISIONER_ADDR,
            public_base_url: DEFAULT_PUBLIC_BASE_URL.into(),
            reconcile_interval_secs: DEFAULT_RECONCILE_INTERVAL_SECS,
            reconcile_window_hours: DEFAULT_RECONCILE_WINDOW_HOURS,
            reconcile_window_row_limit: DEFAULT_RECONCILE_WINDOW_ROW_LIMIT,
            rotation_grace_hours: DEFAULT_ROTATION_GRACE_HOURS,
            balance_check_interval_ms: DEFAULT_BALANCE_CHECK_INTERVAL_MS,
            balance_gap_grace_secs: DEFAULT_BALANCE_GAP_GRACE_SECS,
            balance_trailing_check_secs: DEFAULT_BALANCE_TRAILING_CHECK_SECS,
            webhook_health_interval_secs: DEFAULT_WEBHOOK_HEALTH_INTERVAL_SECS,
            sepay: SepayConfig::default(),
            http: sepay_runtime::HttpLimits::default(),
        }
    }
}

/// Everything a handler needs.
pub struct Provisioner {
    pub db: PgPool,
    pub bus: Bus,
    pub tokens: Tokens,
    pub config: ProvisionerConfig,
}

impl Provisioner {
    pub fn new(config: ProvisionerConfig, db: PgPool, bus: Bus) -> anyhow::Result<Arc<Self>> {
        let keys = config
            .sepay
            .keyring()
            .map_err(|e| anyhow::anyhow!("SEPAY_TOKEN_KEYS: {e}"))?;
        let client = SepayClient::new(&config.sepay);
        let tokens = Tokens::new(db.clone(), Arc::new(client), Arc::new(keys));
        Ok(Arc::new(Self {
            db,
            bus,
            tokens,
            config,
        }))
    }

    fn webhook_url(&self, token: &str) -> String {
        sepay_store::endpoints::webhook_url(&self.config.public_base_url, sepay_core::Provider::Sepay, token)
    }
}

pub async fn run(config: ProvisionerConfig, db: PgPool, bus: Bus, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.provisioner_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.provisioner_addr))?;
    serve(listener, config, db, bus, shutdown).await
}

/// Consumes SEPAY_CONTROL and runs the reconciliation schedule until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ProvisionerConfig,
    db: PgPool,
    bus: Bus,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    sepay_telemetry::metrics::handle();
    let limits = config.http.clone();
    let provisioner = Provisioner::new(config, db.clone(), bus.clone())?;
    if let Err(err) = provisioner.tokens.upgrade_legacy_seals().await {
        tracing::warn!(error = %err, "legacy token seals not upgraded");
    }
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let health = tokio::spawn({
        let (ready, shutdown) = (ready.clone(), shutdown.clone());
        async move { sepay_runtime::serve_health(listener, db, bus, Some(ready), &limits, shutdown).await }
    });
    let schedule = tokio::spawn(reconcile::schedule(provisioner.clone(), shutdown.clone()));
    let balances = tokio::spawn(gaps::watch(provisioner.clone(), shutdown.clone()));
    let webhooks = tokio::spawn(health::watch(provisioner.clone(), shutdown.clone()));
    let settings = ConsumerSettings {
        // a reconciliation of a long window may take minutes
        ack_wait: Duration::from_secs(300),
        max_deliver: 5,
        max_ack_pending: 100,
    };
    worker::consume(provisioner, settings, ready, shutdown).await;
    let _ = schedule.await;
    let _ = balances.await;
    let _ = webhooks.await;
    health.await??;
    Ok(())
}
