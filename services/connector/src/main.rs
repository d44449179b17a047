use clap::Parser;
use sepay_connector::Cli;

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
