use clap::Parser;
use sepay_ingress::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut cli = Cli::parse();
    cli.ingress.http = cli.http.clone();
    cli.ingress.dev_mode = cli.dev.dev_mode;
    cli.ingress.sepay_token_keys = cli.sepay_token_keys.clone();
    sepay_runtime::run_service(
        "sepay-ingress",
        &cli.db.for_hot_path(),
        &cli.nats,
        |db, bus, shutdown| sepay_ingress::run(cli.ingress, db, bus, shutdown),
    )
    .await
}
