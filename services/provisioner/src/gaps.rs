//! Running-balance gaps (`sepay_core::balance`): every `BALANCE_CHECK_INTERVAL_MS` the chain
//! points booked since the last pass are checked against their neighbours; a break opens a gap,
//! and a gap still open after `BALANCE_GAP_GRACE_SECS` is reconciled over just its span (SePay's
//! transactions between its two ends; a workspace's due gaps share one listing), again with backoff (`sepay_core::balance::gap_next_attempt`: a failed reconciliation, SePay or its token
//! unreachable, is retried within a minute and never flags), flagged after `GAP_MAX_ATTEMPTS` runs. A
//! transaction recorded inside a gap closes it. This turns a lost webhook into one late by seconds.
//!
//! The last transaction of a quiet account has no later delivery to reveal its loss: every
//! `BALANCE_TRAILING_CHECK_SECS` each connected account's balance as SePay reports it now is
//! compared with the balance after its last booking, and a difference is reconciled from then.

use crate::Provisioner;
use crate::reconcile::{ReconcileOutcome, reconcile, reconcile_spans};
use chrono::Utc;
use sepay_connection::TokenError;
use sepay_core::balance::{Continuity, GapAttempt, accumulated_of, continuity, gap_next_attempt, trailing_loss};
use sepay_core::provisioning::Window;
use sepay_store::balances;
use sepay_telemetry::metrics;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Gaps reconciled per pass: those of one workspace share one listing of its transactions.
const GAPS_PER_PASS: i64 = 200;
/// How often the gauges are read from the database.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a claimed gap is left to the replica that claimed it.
const CLAIM_HOLD: Duration = Duration::from_secs(120);

pub async fn watch(p: Arc<Provisioner>, shutdown: CancellationToken) {
    if p.config.balance_check_interval_ms == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(p.config.balance_check_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let trailing_every = Duration::from_secs(p.config.balance_trailing_check_secs);
    let mut trailing_due = tokio::time::Instant::now() + trailing_every;
    let mut gauges_due = tokio::time::Instant::now();
    // from 0: the first pass checks the recent chain whole (points recorded while no one watched)
    let mut checked_up_to = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(err) = pass(&p, &mut checked_up_to).await {
            tracing::warn!(error = %format!("{err:#}"), "balance continuity check failed");
        }
        if tokio::time::Instant::now() >= gauges_due {
            gauges_due = tokio::time::Instant::now() + GAUGE_INTERVAL;
            if let Err(err) = record_gauges(&p).await {
                tracing::warn!(error = %format!("{err:#}"), "balance and connection gauges not updated");
            }
        }
        if !trailing_every.is_zero() && tokio::time::Instant::now() >= trailing_due {
            trailing_due = tokio::time::Instant::now() + trailing_every;
            if let Err(err) = trailing_pass(&p).await {
                tracing::warn!(error = %format!("{err:#}"), "trailing balance check failed");
            }
        }
    }
}

/// Compares every connected account's balance SePay reports now with the balance after its last
/// booking; reconciles from that booking to now where they differ. How many were reconciled.
pub async fn trailing_pass(p: &Provisioner) -> anyhow::Result<usize> {
    let mut reconciled = 0;
    for ws_id in sepay_store::connections::active_workspaces(&p.db).await? {
        // one workspace's trouble (a refused token) does not stop the others' checks
        match trailing_check(p, ws_id).await {
            Ok(n) => reconciled += n,
            Err(err) => tracing::warn!(%ws_id, error = %format!("{err:#}"), "trailing balance check failed"),
        }
    }
    Ok(reconciled)
}

async fn trailing_check(p: &Provisioner, ws_id: uuid::Uuid) -> anyhow::Result<usize> {
    let mut reconciled = 0;
    let last_points = balances::last_points(&p.db, ws_id).await?;
    if last_points.is_empty() {
        return Ok(0);
    }
    let client = p.tokens.client();
    let accounts = p
        .tokens
        .call(ws_id, |token| async move { client.list_bank_accounts(&token).await })
        .await?;
    for account in accounts {
        let last = last_points
            .iter()
            .find(|(number, _)| *number == account.account_number)
            .map(|(_, point)| point);
        let reported = accumulated_of(account.accumulated.as_ref());
        let Some(last) = last.filter(|last| trailing_loss(Some(last), reported)) else {
            continue;
        };
        metrics::counter!("sepay_balance_trailing_mismatches_total").increment(1);
        tracing::info!(
            %ws_id,
            account = %account.account_number,
            after = last.sepay_id,
            booked_balance = %last.accumulated,
            reported_balance = ?reported,
            "account balance moved past the last booking: reconciling since it"
        );
        let window = Window {
            from: last.taken_at,
            to: Utc::now(),
        };
        reconcile(p, ws_id, window, "balance").await?;
        reconciled += 1;
    }
    Ok(reconciled)
}

/// One pass: open gaps for new breaks, close filled ones, reconcile the due ones.
pub async fn pass(p: &Provisioner, checked_up_to: &mut i64) -> anyhow::Result<()> {
    let grace = Duration::from_secs(p.config.balance_gap_grace_secs);
    let (pairs, high) = balances::neighbours_since(&p.db, *checked_up_to).await?;
    for pair in &pairs {
        if let Continuity::Gap {
            expected_before,
            seen_before,
        } = continuity(&pair.previous, &pair.next)
        {
            let first_attempt = Utc::now() + grace;
            if balances::open_gap(&p.db, pair, expected_before, seen_before, first_attempt).await? {
                metrics::counter!("sepay_balance_gaps_opened_total").increment(1);
                tracing::info!(
                    ws_id = %pair.ws_id,
                    account = %pair.account_number,
                    after = pair.previous.sepay_id,
                    before = pair.next.sepay_id,
                    missing = %(expected_before - seen_before),
                    "balance gap: a transaction is missing or late"
                );
            }
        }
    }
    // only a newly recorded point can fill a gap
    if high > *checked_up_to {
        let closed = balances::close_filled_gaps(&p.db).await?;
        if closed > 0 {
            metrics::counter!("sepay_balance_gaps_closed_total").increment(closed);
        }
    }
    *checked_up_to = high;
    let due = balances::claim_due_gaps(&p.db, GAPS_PER_PASS, CLAIM_HOLD).await?;
    // one listing of SePay's transactions per workspace, however many of its gaps are due
    let mut by_workspace: BTreeMap<Uuid, Vec<&balances::Gap>> = BTreeMap::new();
    for gap in &due {
        by_workspace.entry(gap.ws_id).or_default().push(gap);
    }
    for (ws_id, gaps) in by_workspace {
        let spans: Vec<Window> = gaps
            .iter()
            .map(|gap| Window {
                from: gap.after_at,
                to: gap.before_at,
            })
            .collect();
        let result = reconcile_spans(p, ws_id, &spans, "gap").await;
        for gap in gaps {
            record_attempt(p, gap, grace, &result).await?;
        }
    }
    Ok(())
}

/// Notes one reconciliation of `gap`: when to try again, and whether it is flagged for an admin.
async fn record_attempt(
    p: &Provisioner,
    gap: &balances::Gap,
    grace: Duration,
    result: &anyhow::Result<ReconcileOutcome>,
) -> anyhow::Result<()> {
    let attempts = gap.attempts + 1;
    let outcome = if result.is_ok() {
        GapAttempt::Ran
    } else {
        GapAttempt::Failed
    };
    let (wait, flag) = gap_next_attempt(grace, attempts, outcome);
    let error = result.as_ref().err().map(|e| format!("{e:#}"));
    if flag {
        metrics::counter!("sepay_balance_gaps_flagged_total").increment(1);
        tracing::warn!(
            ws_id = %gap.ws_id,
            account = %gap.account_number,
            after = gap.after_sepay_id,
            before = gap.before_sepay_id,
            attempts,
            "balance gap still open after reconciling: flagged for an admin"
        );
    }
    // a degraded connection says when its token is next refreshed: try again right then
    let refresh_due = result.as_ref().err().and_then(|err| {
        err.chain().find_map(|e| match e.downcast_ref::<TokenError>() {
            Some(TokenError::Degraded { retry_at }) => Some(*retry_at),
            _ => None,
        })
    });
    let next = refresh_due.map_or(Utc::now() + wait, |at| at.min(Utc::now() + wait));
    balances::record_gap_attempt(&p.db, gap.id, next, flag, error.as_deref()).await?;
    Ok(())
}

/// The gauges alerts watch: connections by state (`needs_reconnect`, a long `degraded`) and gaps
/// not closed. Every few seconds, not every pass.
async fn record_gauges(p: &Provisioner) -> anyhow::Result<()> {
    let connections = sepay_store::connections::status_counts(&p.db).await?;
    for status in sepay_core::connection::ConnectionStatus::ALL {
        let count = connections
            .iter()
            .find(|(s, _)| s == status.as_str())
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("sepay_connections", "status" => status.as_str()).set(count as f64);
    }
    let counts = balances::gap_counts(&p.db).await?;
    for status in ["open", "flagged"] {
        let count = counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
        metrics::gauge!("sepay_balance_gaps", "status" => status).set(count as f64);
    }
    Ok(())
}
