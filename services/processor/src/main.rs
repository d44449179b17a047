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
    let _telemetry = sepay_telemetry::init(
        "sepay-processor",
        sepay_telemetry::LogFormat::from_env_or(sepay_telemetry::LogFormat::Json),
    );
    let shutdown = sepay_telemetry::shutdown_on_signals();
    let result = async {
        let db = sepay_store::connect(&cli.db).await?;
        let bus = sepay_bus::Bus::connect(&cli.nats).await?;
        sepay_processor::run(cli.processor, db, bus, Arc::new(FallbackOnly), shutdown).await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sepay-processor: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
