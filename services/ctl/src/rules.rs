//! `sepayctl rules …` and `sepayctl credits …`: the classification chain's admin inputs.

use crate::Cli;
use clap::Subcommand;
use sepay_core::classify::RuleDraft;
use sepay_runtime::cli::print;
use sepay_store::PgPool;
use sepay_store::classification as store;
use serde_json::json;
use uuid::Uuid;

#[derive(Subcommand)]
pub enum RulesCmd {
    /// Append a rule: `--when "content contains grab" --when "amount gte 100000" --category Transport --expense`.
    Add {
        #[arg(long, help = crate::WS_HELP)]
        ws: Uuid,
        /// The rule's name, shown in lists.
        #[arg(long)]
        name: String,
        /// `<content|amount|direction|account> <contains|is|regex|one_of|gte|lte> <value>`
        #[arg(long = "when", required = true)]
        conditions: Vec<String>,
        /// Match when any condition holds (default: all).
        #[arg(long)]
        any: bool,
        /// Category to assign (created if missing).
        #[arg(long)]
        category: Option<String>,
        /// The category is an expense (else income).
        #[arg(long, requires = "category")]
        expense: bool,
        /// A tag to add (repeat for several).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Let later rules add their tags too.
        #[arg(long = "continue")]
        keep_going: bool,
    },
    /// A workspace's rules, in the order they apply.
    List {
        #[arg(long, help = crate::WS_HELP)]
        ws: Uuid,
    },
    /// Delete a rule.
    Delete {
        /// The rule's id (see `sepayctl rules list`).
        id: Uuid,
    },
}

#[derive(Subcommand)]
pub enum CreditsCmd {
    /// Add AI credits to a workspace.
    Grant {
        #[arg(long, help = crate::WS_HELP)]
        ws: Uuid,
        /// Credits to add (positive).
        #[arg(long)]
        amount: i64,
    },
    /// Balance and reservations (reserved, committed, released).
    Show {
        #[arg(long, help = crate::WS_HELP)]
        ws: Uuid,
    },
}

impl RulesCmd {
    pub fn workspace(&self) -> Option<Uuid> {
        match self {
            RulesCmd::Add { ws, .. } | RulesCmd::List { ws } => Some(*ws),
            RulesCmd::Delete { .. } => None,
        }
    }
}

impl CreditsCmd {
    pub fn workspace(&self) -> Uuid {
        match self {
            CreditsCmd::Grant { ws, .. } | CreditsCmd::Show { ws } => *ws,
        }
    }
}

pub async fn rules(cli: &Cli, db: &PgPool, cmd: &RulesCmd) -> anyhow::Result<()> {
    match cmd {
        RulesCmd::Add {
            ws,
            name,
            conditions,
            any,
            category,
            expense,
            tags,
            keep_going,
        } => {
            let draft = RuleDraft::parse(
                name,
                conditions.iter().map(String::as_str),
                !any,
                category.as_deref(),
                *expense,
                tags.iter().map(String::as_str),
                !keep_going,
            )?;
            let id = store::create_rule(db, *ws, &draft).await?;
            print(cli.global.json, &json!({"id": id}), || format!("rule {id} added"));
        }
        RulesCmd::List { ws } => {
            let rows = store::rules(db, *ws).await?;
            print(cli.global.json, &rows, || {
                rows.iter()
                    .map(|r| {
                        format!(
                            "{:>3}. {}  {}  when {} of [{}]  → {}  tags {:?}{}",
                            r.position,
                            r.id,
                            r.name,
                            if r.match_all { "all" } else { "any" },
                            r.condition_texts().join("; "),
                            r.category_name.as_deref().unwrap_or("-"),
                            r.tags,
                            if r.stop_processing { "" } else { "  (continues)" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        RulesCmd::Delete { id } => {
            store::delete_rule(db, None, *id).await?;
            print(cli.global.json, &json!({"deleted": id}), || {
                format!("rule {id} deleted")
            });
        }
    }
    Ok(())
}

pub async fn credits(cli: &Cli, db: &PgPool, cmd: &CreditsCmd) -> anyhow::Result<()> {
    if let CreditsCmd::Grant { ws, amount } = cmd {
        anyhow::ensure!(*amount > 0, "--amount must be positive");
        store::grant_credits(db, *ws, *amount).await?;
    }
    let ws = cmd.workspace();
    let (balance, reserved, committed, released) = store::credit_ledger(db, ws).await?;
    let value =
        json!({"ws": ws, "balance": balance, "reserved": reserved, "committed": committed, "released": released});
    print(cli.global.json, &value, || {
        format!("balance {balance}; reserved {reserved}, committed {committed}, released {released}")
    });
    Ok(())
}
