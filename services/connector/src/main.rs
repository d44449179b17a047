use clap::Parser;
use sepay_api::SepayConfig;
use sepay_bus::NatsConfig;
use sepay_connector::ConnectorConfig;
use sepay_store::DbConfig;

/// sepay-connector: connects workspaces to SePay and serves the workspace admin pages.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    connector: ConnectorConfig,
    #[command(flatten)]
    sepay: SepayConfig,
    #[command(flatten)]
    db: DbConfig,
    #[command(flatten)]
    nats: NatsConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _telemetry = sepay_telemetry::init(
        "sepay-connector",
        sepay_telemetry::LogFormat::from_env_or(sepay_telemetry::LogFormat::Json),
    );
    let shutdown = sepay_telemetry::shutdown_on_signals();
    let result = async {
        let db = sepay_store::connect(&cli.db).await?;
        let bus = sepay_bus::Bus::connect(&cli.nats).await?;
        sepay_connector::run(cli.connector, cli.sepay, db, bus, shutdown).await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sepay-connector: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
