//! `sepay-connector`: connects a workspace to SePay (OAuth2 code flow with PKCE) and serves the
//! workspace admin pages: integration status, bank accounts and their wallets, webhook endpoints,
//! events (replay), reconciliation runs. Server-rendered HTML; every form is a CSRF-checked POST.
//!
//! It talks to SePay only for the code exchange; everything else SePay-facing is the
//! provisioner's, asked for over SEPAY_CONTROL.

pub mod auth;
mod chart;
mod cli;
mod error;
mod pages;
mod routes;
pub mod state;

use sepay_api::{SepayClient, SepayConfig};
use sepay_bus::Bus;
use sepay_connection::Tokens;
use sepay_store::PgPool;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use auth::{AdminAuth, Claims, mint_admin_token};
pub use cli::Cli;
pub use error::ConnectorError;
pub use pages::{COPY_SCRIPT, script_hash};
pub use routes::router;

/// `CONNECTOR_ADDR`
pub const DEFAULT_CONNECTOR_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8082);
/// `CONNECTOR_ADMIN_ADDR`
pub const DEFAULT_CONNECTOR_ADMIN_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9082);
/// `CONNECTOR_PUBLIC_URL`: the connector at [`DEFAULT_CONNECTOR_ADDR`].
pub const DEFAULT_CONNECTOR_PUBLIC_URL: &str = "http://127.0.0.1:8082";
/// `INGRESS_PUBLIC_URL`: the ingress on a developer machine (the provisioner's and sepayctl's
/// `PUBLIC_BASE_URL` default too).
pub const DEFAULT_INGRESS_PUBLIC_URL: &str = sepay_runtime::DEFAULT_PUBLIC_BASE_URL;
/// `ENDPOINT_ROTATION_GRACE_HOURS`: beyond SePay's 5 hours of retries.
pub const DEFAULT_ENDPOINT_ROTATION_GRACE_HOURS: u64 = 6;

/// Path of the OAuth callback on the connector's origin (register `<origin>` + this at SePay).
pub const CALLBACK_PATH: &str = "/oauth/sepay/callback";

#[derive(Debug, Clone, clap::Args)]
pub struct ConnectorConfig {
    /// Address the connector listens on (the admin pages and the OAuth callback).
    #[arg(long, env = "CONNECTOR_ADDR", default_value_t = DEFAULT_CONNECTOR_ADDR)]
    pub connector_addr: SocketAddr,
    /// Address of /healthz, /readyz and /metrics (probes and Prometheus, never published).
    #[arg(long, env = "CONNECTOR_ADMIN_ADDR", default_value_t = DEFAULT_CONNECTOR_ADMIN_ADDR)]
    pub connector_admin_addr: SocketAddr,
    /// The connector's public origin: the OAuth callback and every redirect are built on it;
    /// `https` turns on Secure cookies.
    #[arg(long, env = "CONNECTOR_PUBLIC_URL", default_value = DEFAULT_CONNECTOR_PUBLIC_URL)]
    pub connector_public_url: String,
    /// Base URL SePay reaches the ingress at (the URL of manual endpoints).
    #[arg(long, env = "INGRESS_PUBLIC_URL", default_value = DEFAULT_INGRESS_PUBLIC_URL)]
    pub ingress_public_url: String,
    /// HS256 secret of the platform's admin session tokens; this or a JWKS URL is required
    /// outside development mode.
    #[arg(long, env = "ADMIN_JWT_SECRET", hide_env_values = true)]
    pub admin_jwt_secret: Option<String>,
    /// JWKS URL of the platform's session token keys (RS/ES/PS/EdDSA); replaces the HS256 secret.
    #[arg(long, env = "ADMIN_JWKS_URL", conflicts_with = "admin_jwt_secret")]
    pub admin_jwks_url: Option<String>,
    /// Required `iss` of session tokens, if set.
    #[arg(long, env = "ADMIN_JWT_ISSUER")]
    pub admin_jwt_issuer: Option<String>,
    /// Required `aud` of session tokens, if set.
    #[arg(long, env = "ADMIN_JWT_AUDIENCE")]
    pub admin_jwt_audience: Option<String>,
    /// Key of the per-session CSRF tokens; unset: random at start (forms rendered before a restart
    /// or by another replica are refused, so set it when running replicas).
    #[arg(long, env = "CONNECTOR_CSRF_SECRET", hide_env_values = true)]
    pub connector_csrf_secret: Option<String>,
    /// Hours a manually rotated endpoint's old token keeps working (SePay retries for 5 hours).
    #[arg(long, env = "ENDPOINT_ROTATION_GRACE_HOURS", default_value_t = DEFAULT_ENDPOINT_ROTATION_GRACE_HOURS)]
    pub endpoint_rotation_grace_hours: u64,
    /// Development mode (`SEPAY_DEV_MODE`, set by the binary; `up` turns it on): unset secrets
    /// fall back to public development values instead of stopping the start.
    #[arg(skip)]
    pub dev_mode: bool,
    /// HTTP limits (`HTTP_*`, set by the binary).
    #[arg(skip)]
    pub http: sepay_runtime::HttpLimits,
}

/// The development configuration (tests, `up`): development mode on.
impl Default for ConnectorConfig {
    fn default() -> Self {
        Self {
            connector_addr: DEFAULT_CONNECTOR_ADDR,
            connector_admin_addr: DEFAULT_CONNECTOR_ADMIN_ADDR,
            connector_public_url: DEFAULT_CONNECTOR_PUBLIC_URL.into(),
            ingress_public_url: DEFAULT_INGRESS_PUBLIC_URL.into(),
            admin_jwt_secret: None,
            admin_jwks_url: None,
            admin_jwt_issuer: None,
            admin_jwt_audience: None,
            connector_csrf_secret: None,
            endpoint_rotation_grace_hours: DEFAULT_ENDPOINT_ROTATION_GRACE_HOURS,
            dev_mode: true,
            http: sepay_runtime::HttpLimits::default(),
        }
    }
}

impl ConnectorConfig {
    /// The public origin without a trailing slash.
    pub fn origin(&self) -> &str {
        self.connector_public_url.trim_end_matches('/')
    }

    pub fn callback_url(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.origin())
    }

    /// Cookies are Secure unless the connector is served over plain http (local development).
    pub fn secure_cookies(&self) -> bool {
        self.connector_public_url.starts_with("https://")
    }
}

/// The login link for a session token: opens `ws`'s integration page signed in.
pub fn login_url(origin: &str, token: &str, ws_id: Uuid) -> String {
    // a JWT is base64url and dots: nothing to escape
    format!("{}/login?token={token}&ws={ws_id}", origin.trim_end_matches('/'))
}

/// What every handler shares.
pub struct AppState {
    pub config: ConnectorConfig,
    pub db: PgPool,
    pub bus: Bus,
    pub client: Arc<SepayClient>,
    pub tokens: Tokens,
    pub keys: Arc<sepay_crypto::seal::Keyring>,
    pub auth: AdminAuth,
    /// The SePay origin forms may end up at (the connect button redirects there).
    pub sepay_origin: String,
    /// No OAuth client is configured: connecting cannot work.
    pub sepay_client_id_missing: bool,
}

impl AppState {
    pub fn new(config: ConnectorConfig, sepay: &SepayConfig, db: PgPool, bus: Bus) -> anyhow::Result<Arc<Self>> {
        url::Url::parse(config.origin())
            .map_err(|e| anyhow::anyhow!("CONNECTOR_PUBLIC_URL {:?} is not a URL: {e}", config.origin()))?;
        let sepay_origin = url::Url::parse(&sepay.sepay_base_url)
            .map_err(|e| anyhow::anyhow!("SEPAY_BASE_URL is not a URL: {e}"))?
            .origin()
            .ascii_serialization();
        let sepay_client_id_missing = sepay.sepay_client_id.is_empty();
        if sepay_client_id_missing {
            tracing::warn!("SEPAY_CLIENT_ID is not set: \"Connect SePay\" answers 503 until it is configured");
        }
        let keys = Arc::new(sepay.keyring().map_err(|e| anyhow::anyhow!("SEPAY_TOKEN_KEYS: {e}"))?);
        let client = Arc::new(SepayClient::new(sepay));
        let tokens = Tokens::new(db.clone(), client.clone(), keys.clone());
        let auth = AdminAuth::from_config(&config)?;
        Ok(Arc::new(Self {
            config,
            db,
            bus,
            client,
            tokens,
            keys,
            auth,
            sepay_origin,
            sepay_client_id_missing,
        }))
    }
}

/// Serves until `shutdown` is cancelled.
pub async fn run(
    config: ConnectorConfig,
    sepay: SepayConfig,
    db: PgPool,
    bus: Bus,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = sepay_runtime::bind(config.connector_addr, "CONNECTOR_ADDR").await?;
    let admin = sepay_runtime::bind(config.connector_admin_addr, "CONNECTOR_ADMIN_ADDR").await?;
    serve(listener, Some(admin), config, sepay, db, bus, shutdown).await
}

/// Like [`run`] on already bound listeners (tests and `sepayctl up` bind first); without an
/// admin listener, health and metrics are not served.
pub async fn serve(
    listener: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
    config: ConnectorConfig,
    sepay: SepayConfig,
    db: PgPool,
    bus: Bus,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if let Err(err) = bus.ensure_control_stream().await {
        // not fatal: pages work; buttons that publish answer an error until NATS is back
        tracing::warn!(error = %err, "control stream not ensured at start-up");
    }
    let state = AppState::new(config, &sepay, db, bus)?;
    if let Err(err) = state.tokens.upgrade_legacy_seals().await {
        tracing::warn!(error = %err, "legacy token seals not upgraded");
    }
    let limits = state.config.http.clone();
    let health = admin.map(|admin| {
        let (db, bus, limits, shutdown) = (state.db.clone(), state.bus.clone(), limits.clone(), shutdown.clone());
        tokio::spawn(async move { sepay_runtime::serve_health(admin, db, bus, None, &limits, shutdown).await })
    });
    tracing::info!(addr = %listener.local_addr()?, origin = state.config.origin(), "sepay-connector listening");
    sepay_runtime::http::serve(listener, router(state), &limits, shutdown).await?;
    if let Some(health) = health {
        health.await??;
    }
    Ok(())
}
