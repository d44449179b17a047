use clap::Parser;
use sepay_bus::NatsConfig;
use sepay_processor::{FallbackOnly, ProcessorConfig};
use sepay_store::DbConfig;
use std::sync::Arc;

/// sepay-processor: books SePay events into wallet transactions.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    processor: ProcessorConfig,
    #[command(flatten)]
    db: DbConfig,
    #[command(flatten)]
    nats: NatsConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    sepay_runtime::run_service("sepay-processor", &cli.db, &cli.nats, |db, bus, shutdown| {
        sepay_processor::run(cli.processor, db, bus, Arc::new(FallbackOnly), shutdown)
    })
    .await
}
