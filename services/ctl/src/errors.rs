//! Every failure as one line in the operator's terms: what went wrong and what to do. The store's
//! errors are worded here, in one place, and never show a constraint's name.

use crate::Cli;
use sepay_store::{DbConfig, PgPool, StoreError};
use std::error::Error;
use std::time::Duration;
use uuid::Uuid;

/// What `sepayctl` finds wrong before the database would.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("no workspace {0}; list them with `sepayctl workspace list`")]
    NoWorkspace(Uuid),
    #[error("no wallet {wallet}; list the workspace's wallets with `sepayctl wallet list --ws {ws}`")]
    NoWallet { wallet: Uuid, ws: Uuid },
    #[error(
        "wallet {wallet} belongs to another workspace ({owner}); list this one's wallets with `sepayctl wallet list --ws {ws}`"
    )]
    ForeignWallet { wallet: Uuid, ws: Uuid, owner: Uuid },
    #[error("nothing answers at {url}; start Postgres there or set DATABASE_URL to where it runs")]
    NoPostgres { url: String },
    #[error("Postgres at {url} refused the connection; check the role, password and database name in DATABASE_URL")]
    PostgresRefused { url: String },
}

/// Connects as the services do (creating and migrating the database); when that fails, says
/// whether nothing listens at DATABASE_URL's address or the server there refused it.
pub async fn connect(config: &DbConfig) -> anyhow::Result<PgPool> {
    match sepay_store::connect(config).await {
        Err(StoreError::Unavailable(_)) => {
            let url = config.redacted_url();
            let address = url::Url::parse(&url)
                .ok()
                .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port()?)));
            let answers = match address {
                Some(address) => {
                    let probe = tokio::net::TcpStream::connect(address);
                    matches!(tokio::time::timeout(Duration::from_secs(2), probe).await, Ok(Ok(_)))
                }
                None => false,
            };
            Err(if answers {
                Problem::PostgresRefused { url }.into()
            } else {
                Problem::NoPostgres { url }.into()
            })
        }
        connected => Ok(connected?),
    }
}

/// The line printed for a failed command.
pub fn message(cli: &Cli, err: &anyhow::Error) -> String {
    let Some(store) = err.downcast_ref::<StoreError>() else {
        return one_line(err.chain());
    };
    match store {
        StoreError::NotFound(what) => {
            let ws = cli.command.workspace().map_or("<ws>".into(), |ws| ws.to_string());
            let list = match *what {
                "bank account link" => format!("sepayctl links list --ws {ws}"),
                "endpoint" | "active endpoint" => "sepayctl endpoint list".into(),
                "event" => "sepayctl events list".into(),
                "rule" => format!("sepayctl rules list --ws {ws}"),
                _ => return format!("no such {what}"),
            };
            format!("no such {what}; list them with `{list}`")
        }
        StoreError::Unavailable(_) => format!(
            "lost the connection to Postgres at {}; check that it runs, then run the command again",
            cli.global.db.redacted_url()
        ),
        StoreError::Conflict { .. } => "that already exists".into(),
        // a check written for people (a trigger's) says what is wrong; a constraint's only names it
        StoreError::Rejected { message } if !message.contains(" constraint \"") => message.clone(),
        StoreError::Rejected { .. } => {
            "the database refused the change: an id names nothing there, or a value is out of range".into()
        }
        StoreError::Unstorable { .. } | StoreError::Db(_) => one_line(err.chain()),
    }
}

/// An error and its causes joined by ": ", each text once: a cause whose text the line already
/// holds (`database unavailable: X` over `X`) is left out.
fn one_line<'a>(causes: impl Iterator<Item = &'a (dyn Error + 'static)>) -> String {
    let mut line = String::new();
    for cause in causes {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_repeated_by_its_wrapper_is_printed_once() {
        let io = std::io::Error::other("connection refused");
        let err = anyhow::Error::new(io)
            .context("cannot reach NATS: connection refused")
            .context("sync");
        assert_eq!(one_line(err.chain()), "sync: cannot reach NATS: connection refused");
    }
}
