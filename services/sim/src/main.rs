use clap::Parser;
use sepay_sim::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _telemetry = sepay_telemetry::init(
        "sepay-sim",
        sepay_telemetry::LogFormat::from_env_or(sepay_telemetry::LogFormat::Text),
    );
    let shutdown = sepay_telemetry::shutdown_on_signals();
    match sepay_sim::run(cli.sim, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sepay-sim: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
