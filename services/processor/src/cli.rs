use crate::ProcessorConfig;
use sepay_bus::NatsConfig;
use sepay_runtime::HttpLimits;
use sepay_store::DbConfig;

/// sepay-processor: books SePay events into wallet transactions.
#[derive(clap::Parser)]
#[command(name = "sepay-processor", version)]
pub struct Cli {
    #[command(flatten)]
    pub processor: ProcessorConfig,
    #[command(flatten)]
    pub db: DbConfig,
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(flatten)]
    pub http: HttpLimits,
}
