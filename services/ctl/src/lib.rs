//! `sepayctl`: the operator CLI, the commands an operator runs against production. Every
//! command takes `--json` for scripting. The development tools (`up`, `demo`, `bench`, `faults`,
//! the simulator's drivers) are `sepay-dev`'s.

mod admin;
mod commands;
mod control;
mod rules;
mod striga;

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "sepayctl", version, about = "Operate the SePay integration")]
pub struct Cli {
    #[command(flatten)]
    pub global: sepay_runtime::cli::GlobalOptions,
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
    /// Striga (SEPA) webhooks: endpoints, account → wallet links, payouts, balance mismatches.
    Striga(striga::StrigaArgs),
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
        /// ISO 4217 code (VND for SePay's accounts, EUR for Striga's).
        #[arg(long, default_value = sepay_core::SEPAY_CURRENCY, value_parser = sepay_core::currency_code)]
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

/// Runs the parsed command line; the exit code says whether it succeeded.
pub async fn run(cli: Cli) -> ExitCode {
    let json = cli.global.json;
    let result = match cli.command {
        Command::Striga(ref args) => striga::run(&cli, args).await,
        Command::AdminToken(ref args) => admin::admin_token(&cli, args).await,
        Command::Sync { ws } => control::sync(&cli, ws).await,
        Command::Rules(ref cmd) => rules::rules(&cli, cmd).await,
        Command::Credits(ref cmd) => rules::credits(&cli, cmd).await,
        Command::Reconcile(ref args) => control::reconcile(&cli, args).await,
        _ => commands::run(&cli).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            sepay_runtime::cli::error("sepayctl", json, &err);
            ExitCode::FAILURE
        }
    }
}
