use clap::Parser;
use sepay_provisioner::Cli;

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
