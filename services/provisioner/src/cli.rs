use crate::{DEFAULT_PUBLIC_BASE_URL, ProvisionerConfig};
use sepay_api::SepayConfig;
use sepay_bus::NatsConfig;
use sepay_runtime::{DevMode, HttpLimits};
use sepay_store::DbConfig;

/// sepay-provisioner: account sync, webhook provisioning, rotation, reconciliation.
#[derive(clap::Parser)]
#[command(name = "sepay-provisioner", version)]
pub struct Cli {
    #[command(flatten)]
    pub provisioner: ProvisionerConfig,
    #[command(flatten)]
    pub sepay: SepayConfig,
    /// Base URL SePay reaches the ingress at (webhook URLs are built from it).
    #[arg(long, env = "PUBLIC_BASE_URL", default_value = DEFAULT_PUBLIC_BASE_URL)]
    pub public_base_url: String,
    #[command(flatten)]
    pub db: DbConfig,
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(flatten)]
    pub http: HttpLimits,
    #[command(flatten)]
    pub dev: DevMode,
}
