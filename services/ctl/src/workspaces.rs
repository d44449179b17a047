//! `sepayctl workspace|wallet|link-account|links`: workspaces, their wallets, and which wallet
//! each bank account books into.

use crate::text::{or_dash, table};
use crate::{Cli, LinksCmd, WalletCmd, WorkspaceCmd};
use sepay_runtime::cli::print;
use sepay_store::PgPool;
use sepay_store::connections::{self, ConnectionView};
use sepay_store::workspaces::{self as store, WorkspaceSummary};
use serde::Serialize;
use uuid::Uuid;

#[derive(clap::Args)]
pub struct LinkArgs {
    #[arg(long, help = crate::WS_HELP)]
    pub ws: Uuid,
    /// The bank account number SePay reports (`accountNumber`).
    #[arg(long)]
    pub account_number: String,
    /// A sub (virtual) account (`subAccount`). Without one, the link also covers the account's
    /// sub accounts that have no link of their own.
    #[arg(long)]
    pub sub_account: Option<String>,
    /// The wallet the account's transactions book into (a VND wallet of the same workspace).
    #[arg(long)]
    pub wallet: Uuid,
}

/// `workspace show --json`: the summary and the SePay connection (`null` if never connected).
#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    workspace: WorkspaceSummary,
    connection: Option<ConnectionView>,
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub async fn workspace(cli: &Cli, db: &PgPool, cmd: &WorkspaceCmd) -> anyhow::Result<()> {
    let json = cli.global.json;
    match cmd {
        WorkspaceCmd::Create { name } => {
            let ws = store::create_workspace(db, name).await?;
            print(json, &ws, || format!("workspace {} ({})", ws.id, ws.name));
        }
        WorkspaceCmd::List => {
            let rows = store::list_workspaces(db).await?;
            print(json, &rows, || {
                table(
                    ["ID", "NAME", "CREATED", "WALLETS", "LINKS", "LIVE ENDPOINTS"],
                    rows.iter().map(|w| {
                        [
                            w.id.to_string(),
                            w.name.clone(),
                            time(w.created_at),
                            w.wallets.to_string(),
                            w.links.to_string(),
                            w.live_endpoints.to_string(),
                        ]
                    }),
                    "no workspaces; create one with `sepayctl workspace create --name <name>`",
                )
            });
        }
        WorkspaceCmd::Show { ws } => {
            let shown = Shown {
                workspace: store::workspace_summary(db, *ws).await?,
                connection: connections::connection_view(db, *ws).await?,
            };
            print(json, &shown, || {
                let w = &shown.workspace;
                let connection = match &shown.connection {
                    Some(c) => format!(
                        "{}, last synced {}",
                        c.status,
                        c.last_synced_at.map_or("never".into(), time)
                    ),
                    None => "not connected".into(),
                };
                [
                    ("workspace", w.id.to_string()),
                    ("name", w.name.clone()),
                    ("created", time(w.created_at)),
                    ("wallets", w.wallets.to_string()),
                    ("links", w.links.to_string()),
                    ("endpoints", format!("{} live", w.live_endpoints)),
                    ("connection", connection),
                ]
                .iter()
                .map(|(label, value)| format!("{label:<12}{value}"))
                .collect::<Vec<_>>()
                .join("\n")
            });
        }
    }
    Ok(())
}

pub async fn wallet(cli: &Cli, db: &PgPool, cmd: &WalletCmd) -> anyhow::Result<()> {
    let json = cli.global.json;
    match cmd {
        WalletCmd::Create { ws, name, currency } => {
            let wallet = store::create_wallet(db, *ws, name, currency).await?;
            print(json, &wallet, || {
                format!("wallet {} ({}, {})", wallet.id, wallet.name, wallet.currency)
            });
        }
        WalletCmd::List { ws } => {
            let rows = store::wallets(db, *ws).await?;
            print(json, &rows, || {
                table(
                    ["ID", "NAME", "CURRENCY"],
                    rows.iter()
                        .map(|w| [w.id.to_string(), w.name.clone(), w.currency.clone()]),
                    "no wallets",
                )
            });
        }
    }
    Ok(())
}

fn account(number: &str, sub_account: Option<&str>) -> String {
    match sub_account {
        Some(sub) => format!("{number}/{sub}"),
        None => number.to_owned(),
    }
}

pub async fn link_account(cli: &Cli, db: &PgPool, args: &LinkArgs) -> anyhow::Result<()> {
    let link = store::link_account(
        db,
        args.ws,
        &args.account_number,
        args.sub_account.as_deref(),
        args.wallet,
    )
    .await?;
    print(cli.global.json, &link, || {
        format!(
            "account {} → wallet {}",
            account(&link.account_number, link.sub_account.as_deref()),
            args.wallet
        )
    });
    Ok(())
}

pub async fn links(cli: &Cli, db: &PgPool, cmd: &LinksCmd) -> anyhow::Result<()> {
    let json = cli.global.json;
    match cmd {
        LinksCmd::List { ws } => {
            let rows = store::wallet_links(db, *ws).await?;
            print(json, &rows, || {
                table(
                    ["ACCOUNT", "SUB ACCOUNT", "WALLET", "WALLET NAME", "BANK", "STATE"],
                    rows.iter().map(|l| {
                        [
                            l.account_number.clone(),
                            or_dash(l.sub_account.as_deref()),
                            l.wallet_id.map_or("-".into(), |w| w.to_string()),
                            or_dash(l.wallet_name.as_deref()),
                            or_dash(l.bank_short_name.as_deref()),
                            if l.active { "active" } else { "inactive" }.into(),
                        ]
                    }),
                    "no links; make one with `sepayctl link-account`",
                )
            });
        }
        LinksCmd::Remove {
            ws,
            account_number,
            sub_account,
        } => {
            let removed = store::unlink_account(db, *ws, account_number, sub_account.as_deref()).await?;
            print(json, &removed, || {
                format!(
                    "account {} unlinked (it booked into wallet {})",
                    account(&removed.account_number, removed.sub_account.as_deref()),
                    removed.wallet_id.map_or("-".into(), |w| w.to_string())
                )
            });
        }
    }
    Ok(())
}
