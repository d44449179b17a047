//! `sepay-dev`: the development tools. `up` runs every service in one process (with the SePay
//! simulator and a demo); `test` runs every test; both start Postgres and NATS where none answer
//! (`local.rs`). `demo` plays the demo against running services; `bench` and `faults` measure
//! and break a local system; `sim` drives the simulator. The only crate that depends on
//! every service; operators use `sepayctl`.

mod bench;
mod connector;
mod demo;
mod faults;
mod local;
mod serve;
mod sim;
mod test;
mod trigger;
mod up;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sepay-dev",
    version,
    about = "Run, demonstrate, measure and break the SePay integration locally"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: sepay_runtime::cli::GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run every service in this process (development mode), with the SePay simulator.
    Up(Box<up::UpArgs>),
    /// Seed a demo workspace on running services and show one simulated transaction booked
    /// (what `up --demo` does in process; compose runs it as its `demo` step).
    Demo {
        /// The simulator to create the demo bank account and transaction in. Default: a running
        /// `sepay-dev up`'s, else http://127.0.0.1:8090.
        #[arg(long, env = "SIM_URL")]
        sim_url: Option<String>,
    },
    /// Drive a running SePay simulator.
    Sim(sim::SimArgs),
    /// Send Striga's documented SEPA webhooks, signed, to a Striga endpoint (like `stripe trigger`).
    StrigaTrigger(trigger::TriggerArgs),
    /// Print a shell completion script (e.g. `sepay-dev completions zsh > ~/.zfunc/_sepay-dev`).
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run every test (`cargo nextest run --workspace --no-fail-fast`), with Postgres and NATS
    /// started first where none answer, and cargo-nextest installed if missing.
    Test(test::TestArgs),
    /// Measure the ingress and end-to-end booking against a plain insert and the reference's
    /// Express handler, in one run (loopback only).
    Bench(bench::BenchArgs),
    /// The fault suite: crashes and outages under load; every accepted delivery booked once.
    Faults(faults::FaultsArgs),
    /// The bench's junk generator (runs until stdin closes).
    #[command(hide = true)]
    Junk(bench::JunkArgs),
    /// One service alone (the bench and the fault suite run services as processes of their own).
    #[command(hide = true, subcommand)]
    Serve(serve::ServeCmd),
}

/// Runs the parsed command line; the exit code says whether it succeeded.
pub async fn run(cli: Cli) -> ExitCode {
    let json = cli.global.json;
    let result = match cli.command {
        Command::Serve(ref cmd) => return serve::run(&cli, cmd).await,
        Command::Up(ref args) => up::run(&cli, args).await,
        Command::Demo { ref sim_url } => up::demo_on_running(&cli, sim_url.as_deref()).await,
        Command::Sim(ref args) => sim::run(&cli.global, args).await,
        Command::StrigaTrigger(ref args) => trigger::run(json, args).await,
        Command::Completions { shell } => {
            sepay_runtime::cli::completions::<Cli>(shell, "sepay-dev");
            Ok(())
        }
        Command::Test(ref args) => return test::run(&cli, args).await,
        Command::Bench(ref args) => bench::run(&cli, args).await,
        Command::Junk(ref args) => bench::junk(args).await,
        Command::Faults(ref args) => faults::run(&cli, args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            sepay_runtime::cli::error("sepay-dev", json, &err);
            ExitCode::FAILURE
        }
    }
}
