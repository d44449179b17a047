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
    #[command(flatten)]
    http: sepay_runtime::HttpLimits,
    #[command(flatten)]
    dev: sepay_runtime::DevMode,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut cli = Cli::parse();
    cli.connector.http = cli.http.clone();
    cli.connector.dev_mode = cli.dev.dev_mode;
    cli.sepay.dev_mode = cli.dev.dev_mode;
    sepay_runtime::run_service("sepay-connector", &cli.db, &cli.nats, |db, bus, shutdown| {
        sepay_connector::run(cli.connector, cli.sepay, db, bus, shutdown)
    })
    .await
}
