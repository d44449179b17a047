use clap::Parser;
use sepay_bus::NatsConfig;
use sepay_provisioner::ProvisionerConfig;
use sepay_store::DbConfig;

/// sepay-provisioner: account sync, webhook provisioning, rotation, reconciliation.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    provisioner: ProvisionerConfig,
    #[command(flatten)]
    db: DbConfig,
    #[command(flatten)]
    nats: NatsConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _telemetry = sepay_telemetry::init(
        "sepay-provisioner",
        sepay_telemetry::LogFormat::from_env_or(sepay_telemetry::LogFormat::Json),
    );
    let shutdown = sepay_telemetry::shutdown_on_signals();
    let result = async {
        let db = sepay_store::connect(&cli.db).await?;
        let bus = sepay_bus::Bus::connect(&cli.nats).await?;
        sepay_provisioner::run(cli.provisioner, db, bus, shutdown).await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sepay-provisioner: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
