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
    sepay: sepay_api::SepayConfig,
    /// Base URL SePay reaches the ingress at (webhook URLs are built from it).
    #[arg(long, env = "PUBLIC_BASE_URL", default_value = "http://127.0.0.1:8080")]
    public_base_url: String,
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
    cli.sepay.dev_mode = cli.dev.dev_mode;
    cli.provisioner.sepay = cli.sepay.clone();
    cli.provisioner.http = cli.http.clone();
    cli.provisioner.public_base_url = cli.public_base_url.clone();
    sepay_runtime::run_service("sepay-provisioner", &cli.db, &cli.nats, |db, bus, shutdown| {
        sepay_provisioner::run(cli.provisioner, db, bus, shutdown)
    })
    .await
}
