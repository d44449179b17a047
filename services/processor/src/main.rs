use clap::Parser;
use sepay_bus::NatsConfig;
use sepay_processor::ProcessorConfig;
use sepay_store::DbConfig;

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
    #[command(flatten)]
    http: sepay_runtime::HttpLimits,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut cli = Cli::parse();
    cli.processor.http = cli.http.clone();
    sepay_runtime::run_service("sepay-processor", &cli.db, &cli.nats, |db, bus, shutdown| {
        let classifier = sepay_processor::default_classifier(&cli.processor, &db);
        sepay_processor::run(cli.processor, db, bus, classifier, shutdown)
    })
    .await
}
