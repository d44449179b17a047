//! `sepay-sim`: plays SePay for development, tests and rehearsing failures.
//!
//! It follows the providers' documented shapes (`shared/reference/provider-api-facts.md` beside the
//! repository): the OAuth2 server, the OAuth2 API (`/api/v1`), the legacy API-token API
//! (`/userapi`), the 3 requests/second rate limit, and a webhook sender with SePay's retry
//! schedule. `/sim/...` is the control API: create companies, accounts, clients and transactions,
//! arm faults, and act as a dashboard admin (delete, disable or edit a webhook, revoke a grant).
//! State lives in memory; ids are deterministic.

mod api;
mod cli;
pub mod client;
mod control;
mod error;
pub mod model;
mod oauth;
mod sender;
mod userapi;

use axum::Router;
use model::World;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub use cli::Cli;
pub use control::Fixture;
pub use error::SimError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RetryAfterStyle {
    /// `x-sepay-userapi-retry-after: <seconds>` (API v1)
    V1,
    /// `Retry-After: <seconds>` (API v2)
    V2,
}

/// `SIM_ADDR`
pub const DEFAULT_SIM_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8090);
/// `SIM_AUTO_APPROVE`: a consent page asks.
pub const DEFAULT_SIM_AUTO_APPROVE: bool = false;
/// `SIM_ACCESS_TOKEN_TTL_SECS`: an hour.
pub const DEFAULT_SIM_ACCESS_TOKEN_TTL_SECS: u64 = 3600;
/// `SIM_REFRESH_TOKEN_TTL_SECS`: 30 days.
pub const DEFAULT_SIM_REFRESH_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;
/// `SIM_CODE_TTL_SECS`
pub const DEFAULT_SIM_CODE_TTL_SECS: u64 = 300;
/// `SIM_TIME_SCALE`: SePay's own schedule.
pub const DEFAULT_SIM_TIME_SCALE: f64 = 1.0;
/// `SIM_DELIVERY_TIMEOUT_MS`
pub const DEFAULT_SIM_DELIVERY_TIMEOUT_MS: u64 = 30_000;
/// `SIM_RATE_LIMIT_PER_SEC`: SePay's 3 requests a second.
pub const DEFAULT_SIM_RATE_LIMIT_PER_SEC: usize = 3;
/// `SIM_RETRY_AFTER_STYLE`
pub const DEFAULT_SIM_RETRY_AFTER_STYLE: RetryAfterStyle = RetryAfterStyle::V1;
/// `SIM_ROTATE_REFRESH_TOKENS`: the refresh response omits the refresh token, as SePay may.
pub const DEFAULT_SIM_ROTATE_REFRESH_TOKENS: bool = false;

#[derive(Debug, Clone, clap::Args)]
pub struct SimConfig {
    /// Address the simulator listens on.
    #[arg(long, env = "SIM_ADDR", default_value_t = DEFAULT_SIM_ADDR)]
    pub sim_addr: SocketAddr,
    /// Approve every OAuth consent at once (tests); otherwise a consent page asks.
    #[arg(long, env = "SIM_AUTO_APPROVE", default_value_t = DEFAULT_SIM_AUTO_APPROVE)]
    pub sim_auto_approve: bool,
    /// Lifetime of access tokens.
    #[arg(long, env = "SIM_ACCESS_TOKEN_TTL_SECS", default_value_t = DEFAULT_SIM_ACCESS_TOKEN_TTL_SECS)]
    pub sim_access_token_ttl_secs: u64,
    /// Lifetime of refresh tokens (a month).
    #[arg(long, env = "SIM_REFRESH_TOKEN_TTL_SECS", default_value_t = DEFAULT_SIM_REFRESH_TOKEN_TTL_SECS)]
    pub sim_refresh_token_ttl_secs: u64,
    /// Lifetime of authorization codes.
    #[arg(long, env = "SIM_CODE_TTL_SECS", default_value_t = DEFAULT_SIM_CODE_TTL_SECS)]
    pub sim_code_ttl_secs: u64,
    /// Multiplies the webhook retry schedule (0.001 turns minutes into 60 ms).
    #[arg(long, env = "SIM_TIME_SCALE", default_value_t = DEFAULT_SIM_TIME_SCALE)]
    pub sim_time_scale: f64,
    /// How long a webhook receiver may take to answer.
    #[arg(long, env = "SIM_DELIVERY_TIMEOUT_MS", default_value_t = DEFAULT_SIM_DELIVERY_TIMEOUT_MS)]
    pub sim_delivery_timeout_ms: u64,
    /// API requests per second per token before 429.
    #[arg(long, env = "SIM_RATE_LIMIT_PER_SEC", default_value_t = DEFAULT_SIM_RATE_LIMIT_PER_SEC)]
    pub sim_rate_limit_per_sec: usize,
    /// Which header a 429 carries.
    #[arg(long, env = "SIM_RETRY_AFTER_STYLE", value_enum, default_value_t = DEFAULT_SIM_RETRY_AFTER_STYLE)]
    pub sim_retry_after_style: RetryAfterStyle,
    /// Return a new refresh token on refresh (by default the response omits it, as SePay may).
    #[arg(long, env = "SIM_ROTATE_REFRESH_TOKENS", default_value_t = DEFAULT_SIM_ROTATE_REFRESH_TOKENS)]
    pub sim_rotate_refresh_tokens: bool,
    /// JSON fixture with companies, bank accounts, OAuth clients and webhooks to start with.
    #[arg(long, env = "SIM_FIXTURE")]
    pub sim_fixture: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            sim_addr: DEFAULT_SIM_ADDR,
            sim_auto_approve: DEFAULT_SIM_AUTO_APPROVE,
            sim_access_token_ttl_secs: DEFAULT_SIM_ACCESS_TOKEN_TTL_SECS,
            sim_refresh_token_ttl_secs: DEFAULT_SIM_REFRESH_TOKEN_TTL_SECS,
            sim_code_ttl_secs: DEFAULT_SIM_CODE_TTL_SECS,
            sim_time_scale: DEFAULT_SIM_TIME_SCALE,
            sim_delivery_timeout_ms: DEFAULT_SIM_DELIVERY_TIMEOUT_MS,
            sim_rate_limit_per_sec: DEFAULT_SIM_RATE_LIMIT_PER_SEC,
            sim_retry_after_style: DEFAULT_SIM_RETRY_AFTER_STYLE,
            sim_rotate_refresh_tokens: DEFAULT_SIM_ROTATE_REFRESH_TOKENS,
            sim_fixture: None,
        }
    }
}

/// The running simulator.
pub struct Sim {
    pub config: SimConfig,
    pub world: Mutex<World>,
    rate: Mutex<HashMap<String, VecDeque<Instant>>>,
    jwt_key: ring::hmac::Key,
    http: reqwest::Client,
    /// Base URL the simulator is reached at (the JWT `iss`).
    pub base_url: String,
    shutdown: CancellationToken,
}

impl Sim {
    pub fn new(config: SimConfig, base_url: String, shutdown: CancellationToken) -> anyhow::Result<Arc<Self>> {
        let rng = ring::rand::SystemRandom::new();
        let jwt_key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .map_err(|_| anyhow::anyhow!("no randomness for the JWT key"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.sim_delivery_timeout_ms))
            .build()?;
        let sim = Arc::new(Self {
            config,
            world: Mutex::new(World::default()),
            rate: Mutex::new(HashMap::new()),
            jwt_key,
            http,
            base_url,
            shutdown,
        });
        if let Some(path) = &sim.config.sim_fixture {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read SIM_FIXTURE {}: {e}", path.display()))?;
            let fixture: Fixture = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("SIM_FIXTURE {} is not a valid fixture: {e}", path.display()))?;
            control::load_fixture(&sim, fixture).map_err(|e| anyhow::anyhow!("SIM_FIXTURE {}: {e}", path.display()))?;
        }
        Ok(sim)
    }

    /// Locks the world; never held across an await.
    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sliding one-second window per token.
    fn admit(&self, token: &str) -> bool {
        let mut rate = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let window = rate.entry(token.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= self.config.sim_rate_limit_per_sec {
            return false;
        }
        window.push_back(now);
        true
    }
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .merge(oauth::routes())
        .merge(api::routes())
        .merge(userapi::routes())
        .merge(control::routes())
        .route(
            "/healthz",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .with_state(sim)
}

/// Serves on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: SimConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let base_url = format!("http://{}", listener.local_addr()?);
    let sim = Sim::new(config, base_url.clone(), shutdown.clone())?;
    tracing::info!(url = %base_url, "sepay-sim listening");
    axum::serve(listener, router(sim))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

pub async fn run(config: SimConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.sim_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.sim_addr))?;
    serve(listener, config, shutdown).await
}
