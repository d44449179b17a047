use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sepayctl::run(sepayctl::Cli::parse()).await
}
