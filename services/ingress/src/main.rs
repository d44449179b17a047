use clap::Parser;
use sepay_bus::NatsConfig;
use sepay_ingress::IngressConfig;
use sepay_store::DbConfig;

/// sepay-ingress: receives SePay webhook deliveries.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    ingress: IngressConfig,
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
    cli.ingress.http = cli.http.clone();
    cli.ingress.dev_mode = cli.dev.dev_mode;
    sepay_runtime::run_service("sepay-ingress", &cli.db, &cli.nats, |db, bus, shutdown| {
        sepay_ingress::run(cli.ingress, db, bus, shutdown)
    })
    .await
}
