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
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _telemetry = sepay_telemetry::init(
        "sepay-ingress",
        sepay_telemetry::LogFormat::from_env_or(sepay_telemetry::LogFormat::Json),
    );
    let shutdown = sepay_telemetry::shutdown_on_signals();
    let result = async {
        let db = sepay_store::connect(&cli.db).await?;
        let bus = sepay_bus::Bus::connect(&cli.nats).await?;
        sepay_ingress::run(cli.ingress, db, bus, shutdown).await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sepay-ingress: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
