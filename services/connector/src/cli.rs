use crate::ConnectorConfig;
use sepay_api::SepayConfig;
use sepay_bus::NatsConfig;
use sepay_runtime::{DevMode, HttpLimits};
use sepay_store::DbConfig;

/// sepay-connector: connects workspaces to SePay and serves the workspace admin pages.
#[derive(clap::Parser)]
#[command(name = "sepay-connector", version)]
pub struct Cli {
    #[command(flatten)]
    pub connector: ConnectorConfig,
    #[command(flatten)]
    pub sepay: SepayConfig,
    #[command(flatten)]
    pub db: DbConfig,
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(flatten)]
    pub http: HttpLimits,
    #[command(flatten)]
    pub dev: DevMode,
}
