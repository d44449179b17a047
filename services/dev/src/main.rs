use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sepay_dev::run(sepay_dev::Cli::parse()).await
}
