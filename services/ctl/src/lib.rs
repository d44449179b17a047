//! `sepayctl`: the operator CLI, the commands an operator runs against production. Every
//! command takes `--json` for scripting. The development tools (`up`, `demo`, `bench`, `faults`,
//! the simulator's drivers) are `sepay-dev`'s.

mod admin;
mod commands;
mod control;
mod errors;
mod rules;
mod striga;
mod text;
mod workspaces;

use anyhow::bail;
use clap::{Parser, Subcommand};
use errors::Problem;
use sepay_store::PgPool;
use std::process::ExitCode;
use uuid::Uuid;

/// The help of every `--ws` that names the workspace a command acts on.
const WS_HELP: &str = "The workspace's id (see `sepayctl workspace list`)";

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
    /// Workspaces: create, list, show.
    #[command(subcommand)]
    Workspace(WorkspaceCmd),
    /// Wallets, the books a workspace's transactions are booked into.
    #[command(subcommand)]
    Wallet(WalletCmd),
    /// Map a bank account number (+ sub account) to a wallet; linking it again moves the link.
    LinkAccount(workspaces::LinkArgs),
    /// Bank account → wallet links: list and remove them (`link-account` makes them).
    #[command(subcommand)]
    Links(LinksCmd),
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
        #[arg(long, help = WS_HELP)]
        ws: Uuid,
    },
    /// Ask the provisioner to reconcile a workspace with SePay and follow the run.
    Reconcile(control::ReconcileArgs),
    /// Striga (SEPA) webhooks: endpoints, account → wallet links, payouts, balance mismatches.
    Striga(striga::StrigaArgs),
    /// Print a shell completion script (e.g. `sepayctl completions bash > /etc/bash_completion.d/sepayctl`).
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
pub enum WorkspaceCmd {
    /// Create a workspace; prints its id.
    Create {
        /// The workspace's name, as people know it.
        #[arg(long)]
        name: String,
    },
    /// Every workspace, with its wallets, links and live endpoints counted.
    List,
    /// One workspace: its counts and its SePay connection.
    Show {
        #[arg(long, help = WS_HELP)]
        ws: Uuid,
    },
}

#[derive(Subcommand)]
pub enum WalletCmd {
    /// Create a wallet in a workspace; prints its id.
    Create {
        #[arg(long, help = WS_HELP)]
        ws: Uuid,
        /// The wallet's name, e.g. the bank account it books.
        #[arg(long)]
        name: String,
        /// ISO 4217 code (VND for SePay's accounts, EUR for Striga's).
        #[arg(long, default_value = sepay_core::SEPAY_CURRENCY, value_parser = sepay_core::currency_code)]
        currency: String,
    },
    /// A workspace's wallets: id, name, currency.
    List {
        #[arg(long, help = WS_HELP)]
        ws: Uuid,
    },
}

#[derive(Subcommand)]
pub enum LinksCmd {
    /// A workspace's bank account → wallet links.
    List {
        #[arg(long, help = WS_HELP)]
        ws: Uuid,
    },
    /// Remove the link of an account (+ sub account): its deliveries then book by the account's
    /// own link, if any, else fail as wallet_not_linked.
    Remove {
        #[arg(long, help = WS_HELP)]
        ws: Uuid,
        /// The linked bank account number.
        #[arg(long)]
        account_number: String,
        /// The linked sub account (omit it to remove the account's own link).
        #[arg(long)]
        sub_account: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum EndpointCmd {
    /// Create a manual endpoint; prints the webhook URL, token and API key once.
    Create {
        #[arg(long, help = WS_HELP)]
        ws: Uuid,
        /// Book every delivery of this endpoint into this wallet (else by account link).
        #[arg(long)]
        wallet: Option<Uuid>,
        /// A name for the endpoint in lists.
        #[arg(long, default_value = "manual")]
        label: String,
    },
    /// Endpoints and their status (never their secrets).
    List {
        /// Only this workspace's endpoints (its id).
        #[arg(long)]
        ws: Option<Uuid>,
    },
    /// New token and key; the old ones keep working for the grace period.
    Rotate {
        /// The endpoint's id (see `sepayctl endpoint list`).
        id: Uuid,
        /// Hours the old token stays valid (SePay retries for up to 5 hours).
        #[arg(long, default_value_t = 6)]
        grace_hours: u64,
    },
    /// Revoke an endpoint: its deliveries are refused (401) at once.
    Revoke {
        /// The endpoint's id (see `sepayctl endpoint list`).
        id: Uuid,
    },
}

#[derive(Subcommand)]
pub enum EventsCmd {
    /// Received webhook events, newest first.
    List {
        /// Only this workspace's events (its id).
        #[arg(long)]
        ws: Option<Uuid>,
        /// received | processed | failed | duplicate
        #[arg(long)]
        status: Option<String>,
        /// How many events to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// One event in full, with its payload.
    Show {
        /// The event's id (see `sepayctl events list`).
        id: i64,
    },
    /// Re-drive failed events (all failed ones of --ws, or the given ids).
    Replay {
        /// The failed events' ids.
        ids: Vec<i64>,
        /// Replay every failed event of this workspace (its id).
        #[arg(long)]
        ws: Option<Uuid>,
    },
}

#[derive(Subcommand)]
pub enum TransactionsCmd {
    /// A workspace's booked transactions, newest first.
    List {
        #[arg(long, help = WS_HELP)]
        ws: Uuid,
        /// How many transactions to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

impl Command {
    /// The workspace the command names, checked before it runs.
    fn workspace(&self) -> Option<Uuid> {
        match self {
            Command::Migrate
            | Command::Completions { .. }
            | Command::Workspace(WorkspaceCmd::Create { .. } | WorkspaceCmd::List) => None,
            Command::Workspace(WorkspaceCmd::Show { ws })
            | Command::Wallet(WalletCmd::Create { ws, .. } | WalletCmd::List { ws })
            | Command::Links(LinksCmd::List { ws } | LinksCmd::Remove { ws, .. })
            | Command::Endpoint(EndpointCmd::Create { ws, .. })
            | Command::Transactions(TransactionsCmd::List { ws, .. })
            | Command::Sync { ws } => Some(*ws),
            Command::Endpoint(EndpointCmd::List { ws })
            | Command::Events(EventsCmd::List { ws, .. } | EventsCmd::Replay { ws, .. }) => *ws,
            Command::Endpoint(EndpointCmd::Rotate { .. } | EndpointCmd::Revoke { .. })
            | Command::Events(EventsCmd::Show { .. }) => None,
            Command::LinkAccount(args) => Some(args.ws),
            Command::AdminToken(args) => Some(args.ws),
            Command::Rules(cmd) => cmd.workspace(),
            Command::Credits(cmd) => Some(cmd.workspace()),
            Command::Reconcile(args) => Some(args.ws),
            Command::Striga(args) => Some(args.workspace()),
        }
    }

    /// The wallet the command names; it must be one of the command's workspace.
    fn wallet(&self) -> Option<Uuid> {
        match self {
            Command::LinkAccount(args) => Some(args.wallet),
            Command::Endpoint(EndpointCmd::Create { wallet, .. }) => *wallet,
            Command::Striga(args) => args.wallet(),
            _ => None,
        }
    }
}

/// Runs the parsed command line; the exit code says whether it succeeded.
pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = errors::message(&cli, &err);
            sepay_runtime::cli::error("sepayctl", cli.global.json, &anyhow::Error::msg(message));
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: &Cli) -> anyhow::Result<()> {
    if let Command::Completions { shell } = cli.command {
        sepay_runtime::cli::completions::<Cli>(shell, "sepayctl");
        return Ok(());
    }
    if let Command::AdminToken(args) = &cli.command
        && !args.grant
    {
        // signing a login link needs no database
        return admin::admin_token(cli, args);
    }
    let db = errors::connect(&cli.global.db).await?;
    check_ids(&db, &cli.command).await?;
    match &cli.command {
        Command::Striga(args) => striga::run(cli, &db, args).await,
        Command::AdminToken(args) => {
            sepay_store::members::grant_admin(&db, args.ws, &args.user).await?;
            admin::admin_token(cli, args)
        }
        Command::Sync { ws } => control::sync(cli, *ws).await,
        Command::Rules(cmd) => rules::rules(cli, &db, cmd).await,
        Command::Credits(cmd) => rules::credits(cli, &db, cmd).await,
        Command::Reconcile(args) => control::reconcile(cli, &db, args).await,
        Command::Workspace(cmd) => workspaces::workspace(cli, &db, cmd).await,
        Command::Wallet(cmd) => workspaces::wallet(cli, &db, cmd).await,
        Command::LinkAccount(args) => workspaces::link_account(cli, &db, args).await,
        Command::Links(cmd) => workspaces::links(cli, &db, cmd).await,
        Command::Migrate => {
            commands::migrate(cli);
            Ok(())
        }
        // answered before the database is opened
        Command::Completions { .. } => Ok(()),
        Command::Endpoint(cmd) => commands::endpoint(cli, &db, cmd).await,
        Command::Events(cmd) => commands::events(cli, &db, cmd).await,
        Command::Transactions(cmd) => commands::transactions(cli, &db, cmd).await,
    }
}

/// Refuses a workspace or wallet id that names nothing (or another workspace's wallet) before
/// the command runs, where the database would answer with a constraint's name or an empty list.
async fn check_ids(db: &PgPool, command: &Command) -> anyhow::Result<()> {
    let Some(ws) = command.workspace() else {
        return Ok(());
    };
    if !sepay_store::workspaces::workspace_exists(db, ws).await? {
        bail!(Problem::NoWorkspace(ws));
    }
    if let Some(wallet) = command.wallet() {
        match sepay_store::workspaces::wallet_workspace(db, wallet).await? {
            Some(owner) if owner == ws => {}
            Some(owner) => bail!(Problem::ForeignWallet { wallet, ws, owner }),
            None => bail!(Problem::NoWallet { wallet, ws }),
        }
    }
    Ok(())
}
