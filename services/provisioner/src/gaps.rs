//! Running-balance gaps (`sepay_core::balance`): every `BALANCE_CHECK_INTERVAL_MS` the chain
//! points booked since the last pass are checked against their neighbours; a break opens a gap,
//! and a gap still open after `BALANCE_GAP_GRACE_SECS` is reconciled over just its span (SePay's
//! transactions between its two ends), again with backoff, flagged after `GAP_MAX_ATTEMPTS`. A
//! transaction recorded inside a gap closes it. This turns a lost webhook into one late by seconds.

use crate::Provisioner;
use crate::reconcile::reconcile;
use chrono::Utc;
use sepay_core::balance::{Continuity, GAP_MAX_ATTEMPTS, continuity, gap_retry_after};
use sepay_core::provisioning::Window;
use sepay_store::balances;
use sepay_telemetry::metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Gaps reconciled per pass (each is one small reconciliation).
const GAPS_PER_PASS: i64 = 20;
/// How long a claimed gap is left to the replica that claimed it.
const CLAIM_HOLD: Duration = Duration::from_secs(120);

pub async fn watch(p: Arc<Provisioner>, shutdown: CancellationToken) {
    if p.config.balance_check_interval_ms == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(p.config.balance_check_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
    }
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
    *checked_up_to = high;
    let closed = balances::close_filled_gaps(&p.db).await?;
    if closed > 0 {
        metrics::counter!("sepay_balance_gaps_closed_total").increment(closed);
    }
    for gap in balances::claim_due_gaps(&p.db, GAPS_PER_PASS, CLAIM_HOLD).await? {
        let window = Window {
            from: gap.after_at,
            to: gap.before_at,
        };
        let result = reconcile(p, gap.ws_id, window, "gap").await;
        let attempts = gap.attempts + 1;
        let flag = attempts >= GAP_MAX_ATTEMPTS;
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
        let next = Utc::now() + gap_retry_after(grace, attempts);
        balances::record_gap_attempt(&p.db, gap.id, next, flag, error.as_deref()).await?;
    }
    let counts = balances::gap_counts(&p.db).await?;
    for status in ["open", "flagged"] {
        let count = counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
        metrics::gauge!("sepay_balance_gaps", "status" => status).set(count as f64);
    }
    Ok(())
}
