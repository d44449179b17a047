//! `sepayctl`: the operator CLI. Every command takes `--json` for scripting; `up` runs every
//! service in one process.

mod admin;
mod bench;
mod commands;
mod control;
mod demo;
mod faults;
mod output;
mod rules;
mod serve;
mod sim;
mod striga;
mod up;

use clap::{Parser, Subcommand};
use sepay_bus::NatsConfig;
use sepay_store::DbConfig;
use std::process::ExitCode;
use uuid::Uuid;

pub const DEFAULT_PUBLIC_BASE_URL: &str = "http://127.0.0.1:8080";

#[derive(Parser)]
#[command(name = "sepayctl", version, about = "Operate the SePay integration")]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbConfig,
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(flatten)]
    pub dev: sepay_runtime::DevMode,
    /// Base URL SePay reaches the ingress at (webhook URLs are built from it).
    #[arg(
        long,
        env = "PUBLIC_BASE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub public_base_url: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create the database if missing and apply migrations.
    Migrate,
    /// Workspaces.
    #[command(subcommand)]
    Workspace(WorkspaceCmd),
    /// Wallets.
    #[command(subcommand)]
    Wallet(WalletCmd),
    /// Map a bank account number (+ sub account) to a wallet.
    LinkAccount {
        #[arg(long)]
        ws: Uuid,
        #[arg(long)]
        account_number: String,
        #[arg(long)]
        sub_account: Option<String>,
        #[arg(long)]
        wallet: Uuid,
    },
    /// Webhook endpoints (URL token + API key).
    #[command(subcommand)]
    Endpoint(EndpointCmd),
    /// Received webhook events.
    #[command(subcommand)]
    Events(EventsCmd),
    /// Booked wallet transactions.
    #[command(subcommand)]
    Transactions(TransactionsCmd),
    /// Run every service in this process.
    Up(Box<up::UpArgs>),
    /// Mint an admin session token and print the connector's login link (local use).
    AdminToken(admin::AdminTokenArgs),
    /// Classification rules (applied in order before the learned classifier and the model).
    #[command(subcommand)]
    Rules(rules::RulesCmd),
    /// Workspace AI credits (paid by model calls).
    #[command(subcommand)]
    Credits(rules::CreditsCmd),
    /// Ask the provisioner to sync a workspace's bank accounts (and provision webhooks).
    Sync {
        #[arg(long)]
        ws: Uuid,
    },
    /// Ask the provisioner to reconcile a workspace with SePay and follow the run.
    Reconcile(control::ReconcileArgs),
    /// Measure the insert limit, the ingress and end-to-end booking in one run (loopback only).
    Bench(bench::BenchArgs),
    /// The fault suite: crashes and outages under load; every accepted delivery booked once.
    Faults(faults::FaultsArgs),
    /// The bench's junk generator (runs until stdin closes).
    #[command(hide = true)]
    Junk(bench::JunkArgs),
    /// One service alone (the bench and the fault suite run services as processes of their own).
    #[command(hide = true, subcommand)]
    Serve(serve::ServeCmd),
    /// Striga (SEPA) webhooks: endpoints, account → wallet links, payouts, balance mismatches.
    Striga(striga::StrigaArgs),
    /// Drive a running SePay simulator.
    Sim(sim::SimArgs),
    /// Seed a demo workspace on running services and show one simulated transaction booked
    /// (what `up --demo` does in process; compose runs it as its `demo` step).
    Demo {
        /// The simulator to create the demo bank account and transaction in.
        #[arg(long, env = "SIM_URL", default_value = "http://127.0.0.1:8090")]
        sim_url: String,
    },
}

#[derive(Subcommand)]
pub enum WorkspaceCmd {
    Create {
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum WalletCmd {
    Create {
        #[arg(long)]
        ws: Uuid,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "VND")]
        currency: String,
    },
}

#[derive(Subcommand)]
pub enum EndpointCmd {
    /// Create a manual endpoint; prints the webhook URL, token and API key once.
    Create {
        #[arg(long)]
        ws: Uuid,
        /// Book every delivery of this endpoint into this wallet (else by account link).
        #[arg(long)]
        wallet: Option<Uuid>,
        #[arg(long, default_value = "manual")]
        label: String,
    },
    List {
        #[arg(long)]
        ws: Option<Uuid>,
    },
    /// New token and key; the old ones keep working for the grace period.
    Rotate {
        id: Uuid,
        /// Hours the old token stays valid (SePay retries for up to 5 hours).
        #[arg(long, default_value_t = 6)]
        grace_hours: u64,
    },
    Revoke {
        id: Uuid,
    },
}

#[derive(Subcommand)]
pub enum EventsCmd {
    List {
        #[arg(long)]
        ws: Option<Uuid>,
        /// received | processed | failed | duplicate
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    Show {
        id: i64,
    },
    /// Re-drive failed events (all failed ones of --ws, or the given ids).
    Replay {
        ids: Vec<i64>,
        #[arg(long)]
        ws: Option<Uuid>,
    },
}

#[derive(Subcommand)]
pub enum TransactionsCmd {
    List {
        #[arg(long)]
        ws: Uuid,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    if let Command::Serve(ref cmd) = cli.command {
        return serve::run(&cli, cmd).await;
    }
    let result = match cli.command {
        Command::Up(ref args) => up::run(&cli, args).await,
        Command::Sim(ref args) => sim::run(json, args).await,
        Command::Bench(ref args) => bench::run(&cli, args).await,
        Command::Junk(ref args) => bench::junk(args).await,
        Command::Faults(ref args) => faults::run(&cli, args).await,
        Command::Striga(ref args) => striga::run(&cli, args).await,
        Command::AdminToken(ref args) => admin::admin_token(&cli, args).await,
        Command::Sync { ws } => control::sync(&cli, ws).await,
        Command::Rules(ref cmd) => rules::rules(&cli, cmd).await,
        Command::Credits(ref cmd) => rules::credits(&cli, cmd).await,
        Command::Reconcile(ref args) => control::reconcile(&cli, args).await,
        Command::Demo { ref sim_url } => up::demo_on_running(&cli, sim_url).await,
        _ => commands::run(&cli).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            output::error(json, &err);
            ExitCode::FAILURE
        }
    }
}
