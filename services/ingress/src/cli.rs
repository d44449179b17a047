use crate::IngressConfig;
use sepay_bus::NatsConfig;
use sepay_runtime::{DevMode, HttpLimits};
use sepay_store::DbConfig;

/// sepay-ingress: receives SePay webhook deliveries.
#[derive(clap::Parser)]
#[command(name = "sepay-ingress", version)]
pub struct Cli {
    #[command(flatten)]
    pub ingress: IngressConfig,
    #[command(flatten)]
    pub db: DbConfig,
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(flatten)]
    pub http: HttpLimits,
    #[command(flatten)]
    pub dev: DevMode,
    /// Keys that sealed the Striga endpoints' signing keys (`kid:base64(32 bytes)[,…]`, the
    /// services' shared token keyring); required outside development mode.
    #[arg(long, env = "SEPAY_TOKEN_KEYS", hide_env_values = true)]
    pub sepay_token_keys: Option<String>,
}
