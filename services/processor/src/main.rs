use clap::Parser;
use sepay_processor::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut cli = Cli::parse();
    cli.processor.http = cli.http.clone();
    sepay_runtime::run_service(
        "sepay-processor",
        &cli.db.for_hot_path(),
        &cli.nats,
        |db, bus, shutdown| {
            let classifier = sepay_processor::default_classifier(&cli.processor, &db);
            sepay_processor::run(cli.processor, db, bus, classifier, shutdown)
        },
    )
    .await
}
