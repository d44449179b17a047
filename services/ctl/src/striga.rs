//! `sepayctl striga …`: Striga endpoints, which wallet each Striga account books into, payouts
//! and balance mismatches.

use crate::Cli;
use anyhow::Context;
use clap::Subcommand;
use sepay_crypto::seal::Keyring;
use sepay_runtime::cli::print;
use sepay_store::PgPool;
use sepay_store::endpoints::signing_key_aad;
use sepay_store::striga as store;
use uuid::Uuid;

#[derive(clap::Args)]
pub struct StrigaArgs {
    /// Keys that seal Striga API keys (the services' shared token keyring; required unless
    /// SEPAY_DEV_MODE).
    #[arg(long, env = "SEPAY_TOKEN_KEYS", hide_env_values = true, global = true)]
    sepay_token_keys: Option<String>,
    #[command(subcommand)]
    command: StrigaCmd,
}

#[derive(Subcommand)]
pub enum StrigaCmd {
    /// Create an endpoint for Striga's webhooks; prints the URL to give Striga once.
    Endpoint {
        #[arg(long, help = crate::WS_HELP)]
        ws: Uuid,
        /// The API key Striga signs webhooks with (from the environment, so it stays out of
        /// process lists and shell history).
        #[arg(long = "striga-api-key", env = "STRIGA_API_KEY", hide_env_values = true)]
        api_key: String,
        /// Book events no account link names into this wallet (an EUR wallet).
        #[arg(long)]
        wallet: Option<Uuid>,
        /// A name for the endpoint in lists.
        #[arg(long, default_value = "striga")]
        label: String,
    },
    /// Book the events of a Striga `accountId` (or `syncedOwnerId`) into a wallet.
    Link {
        #[arg(long, help = crate::WS_HELP)]
        ws: Uuid,
        /// A Striga accountId, or a syncedOwnerId for events that carry no accountId.
        #[arg(long = "account")]
        striga_ref: String,
        /// The EUR wallet its events book into.
        #[arg(long)]
        wallet: Uuid,
    },
    /// A workspace's Striga account → wallet links.
    Links {
        #[arg(long, help = crate::WS_HELP)]
        ws: Uuid,
    },
    /// Payouts and their status (initiated, settled, failed, denied; an outcome may arrive first).
    Payouts {
        #[arg(long, help = crate::WS_HELP)]
        ws: Uuid,
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Events whose balanceBefore + credit − debit was not their balanceAfter.
    Mismatches {
        #[arg(long, help = crate::WS_HELP)]
        ws: Uuid,
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

impl StrigaArgs {
    pub fn workspace(&self) -> Uuid {
        match &self.command {
            StrigaCmd::Endpoint { ws, .. }
            | StrigaCmd::Link { ws, .. }
            | StrigaCmd::Links { ws }
            | StrigaCmd::Payouts { ws, .. }
            | StrigaCmd::Mismatches { ws, .. } => *ws,
        }
    }

    pub fn wallet(&self) -> Option<Uuid> {
        match &self.command {
            StrigaCmd::Endpoint { wallet, .. } => *wallet,
            StrigaCmd::Link { wallet, .. } => Some(*wallet),
            StrigaCmd::Links { .. } | StrigaCmd::Payouts { .. } | StrigaCmd::Mismatches { .. } => None,
        }
    }
}

pub async fn run(cli: &Cli, db: &PgPool, args: &StrigaArgs) -> anyhow::Result<()> {
    let json = cli.global.json;
    match &args.command {
        StrigaCmd::Endpoint {
            ws,
            api_key,
            wallet,
            label,
        } => {
            anyhow::ensure!(!api_key.trim().is_empty(), "STRIGA_API_KEY is empty");
            let keyring = Keyring::configured(args.sepay_token_keys.as_deref(), cli.global.dev.dev_mode)
                .context("SEPAY_TOKEN_KEYS")?;
            let sealed = keyring.seal(&signing_key_aad(*ws), api_key.trim().as_bytes());
            let created =
                store::create_endpoint(db, &cli.global.public_base_url(), *ws, *wallet, label, &sealed).await?;
            print(json, &created, || {
                format!(
                    "Striga endpoint {}\nwebhook URL (give it to Striga; transactions go to <url>/tx): {}",
                    created.endpoint.id, created.webhook_url
                )
            });
        }
        StrigaCmd::Link { ws, striga_ref, wallet } => {
            store::link_wallet(db, *ws, striga_ref, *wallet).await?;
            let links = store::wallet_links(db, *ws).await?;
            let link = links.iter().find(|l| l.striga_ref == striga_ref.trim());
            print(json, &link, || {
                format!("Striga {} → wallet {wallet}", striga_ref.trim())
            });
        }
        StrigaCmd::Links { ws } => {
            let links = store::wallet_links(db, *ws).await?;
            print(json, &links, || {
                links
                    .iter()
                    .map(|l| format!("{} → {} ({}, {})", l.striga_ref, l.wallet_id, l.wallet_name, l.currency))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        StrigaCmd::Payouts { ws, limit } => {
            let payouts = store::payouts(db, *ws, *limit).await?;
            print(json, &payouts, || {
                payouts
                    .iter()
                    .map(|p| {
                        let amount = |a: Option<rust_decimal::Decimal>| a.map_or("-".into(), |a| a.to_string());
                        format!(
                            "{}  {:<32}  debit {:>12}  reversal {:>12}",
                            p.payout_id,
                            p.status,
                            amount(p.debit),
                            amount(p.reversal)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        StrigaCmd::Mismatches { ws, limit } => {
            let rows = store::balance_mismatches(db, *ws, *limit).await?;
            print(json, &rows, || {
                rows.iter()
                    .map(|m| {
                        format!(
                            "event {}: balanceAfter {} where {} was expected",
                            m.event_id, m.actual, m.expected
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}
