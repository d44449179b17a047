//! `sepayctl sync` and `sepayctl reconcile`: requests to the provisioner over SEPAY_CONTROL.

use crate::Cli;
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use sepay_bus::{Bus, ControlRequest, ControlSubject};
use sepay_runtime::cli::print;
use sepay_store::{PgPool, provisioning};
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long `reconcile` follows a run before leaving it to the provisioner.
const FOLLOW_LIMIT: Duration = Duration::from_secs(600);

#[derive(clap::Args)]
pub struct ReconcileArgs {
    #[arg(long, help = crate::WS_HELP)]
    pub ws: Uuid,
    /// Look back this long, e.g. 30m, 6h, 2d (default: the provisioner's RECONCILE_WINDOW_HOURS).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub since: Option<String>,
    /// Window start, RFC 3339 (e.g. 2026-03-01T00:00:00+07:00).
    #[arg(long, requires = "to")]
    pub from: Option<DateTime<Utc>>,
    /// Window end, RFC 3339.
    #[arg(long, requires = "from")]
    pub to: Option<DateTime<Utc>>,
    /// Return at once instead of following the run.
    #[arg(long)]
    pub no_wait: bool,
}

async fn publish(cli: &Cli, subject: ControlSubject, request: &ControlRequest) -> anyhow::Result<()> {
    let bus = Bus::connect(&cli.global.nats).await?;
    bus.ensure_control_stream().await?;
    let id = format!(
        "{}-{}-{}",
        subject.as_str(),
        request.ws_id,
        Utc::now().timestamp_micros()
    );
    bus.publish_control(subject, &id, request).await?;
    Ok(())
}

pub async fn sync(cli: &Cli, ws: Uuid) -> anyhow::Result<()> {
    publish(cli, ControlSubject::SyncRequested, &ControlRequest::workspace(ws)).await?;
    print(cli.global.json, &json!({"sync_requested": ws}), || {
        format!("account sync of workspace {ws} requested")
    });
    Ok(())
}

/// "30m", "6h", "2d" → a duration.
fn parse_since(text: &str) -> anyhow::Result<chrono::Duration> {
    let (number, unit) = text.trim().split_at(text.trim().len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .with_context(|| format!("--since {text:?}: use a number and m, h or d"))?;
    match unit {
        "m" => Ok(chrono::Duration::minutes(n)),
        "h" => Ok(chrono::Duration::hours(n)),
        "d" => Ok(chrono::Duration::days(n)),
        _ => bail!("--since {text:?}: use a number and m, h or d"),
    }
}

pub async fn reconcile(cli: &Cli, db: &PgPool, args: &ReconcileArgs) -> anyhow::Result<()> {
    let (from, to) = match (&args.since, args.from, args.to) {
        (Some(since), _, _) => {
            let to = Utc::now();
            (Some(to - parse_since(since)?), Some(to))
        }
        (None, Some(from), Some(to)) if from <= to => (Some(from), Some(to)),
        (None, Some(_), Some(_)) => bail!("--from must not be after --to"),
        _ => (None, None),
    };
    let last = provisioning::list_runs(db, args.ws, 1)
        .await?
        .first()
        .map(|r| r.id)
        .unwrap_or(0);
    let request = ControlRequest {
        from: from.map(|t| t.to_rfc3339()),
        to: to.map(|t| t.to_rfc3339()),
        ..ControlRequest::workspace(args.ws)
    };
    publish(cli, ControlSubject::ReconcileRequested, &request).await?;
    if args.no_wait {
        print(cli.global.json, &json!({"reconcile_requested": args.ws}), || {
            "reconciliation requested".into()
        });
        return Ok(());
    }
    // follow the run the provisioner starts for this request
    let started = Instant::now();
    let mut shown = (-1, -1);
    loop {
        let run = provisioning::list_runs(db, args.ws, 1)
            .await?
            .into_iter()
            .next()
            .filter(|r| r.id > last);
        match run {
            Some(run) if run.status != "running" => {
                print(cli.global.json, &run, || {
                    format!(
                        "reconciliation {} {}: {} fetched, {} missing inserted{}",
                        run.id,
                        run.status,
                        run.fetched,
                        run.inserted,
                        run.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
                    )
                });
                if run.status == "failed" {
                    bail!("reconciliation {} failed", run.id);
                }
                return Ok(());
            }
            Some(run) if !cli.global.json && (run.fetched, run.inserted) != shown => {
                shown = (run.fetched, run.inserted);
                eprintln!(
                    "reconciliation {} running: {} fetched, {} inserted so far",
                    run.id, run.fetched, run.inserted
                );
            }
            _ => {}
        }
        if started.elapsed() > FOLLOW_LIMIT {
            bail!(
                "no finished reconciliation after {} s: is sepay-provisioner running?",
                FOLLOW_LIMIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_table() {
        assert_eq!(parse_since("30m").unwrap(), chrono::Duration::minutes(30));
        assert_eq!(parse_since("6h").unwrap(), chrono::Duration::hours(6));
        assert_eq!(parse_since("2d").unwrap(), chrono::Duration::days(2));
        for bad in ["", "h", "5", "5w", "x5h"] {
            assert!(parse_since(bad).is_err(), "{bad:?}");
        }
    }
}
