//! Running-balance continuity: how a missing SePay transaction is noticed within seconds.
//!
//! SePay sends `accumulated`, the bank account's balance after the transaction, with every
//! transaction. Per bank account (sub-accounts share their account's balance), taken in SePay's
//! order (its ids grow), each transaction must carry on from the one before:
//! `previous balance + signed amount = this balance`. A break means a transaction between the two
//! is missing or not here yet: a *gap*. Out-of-order deliveries close gaps by themselves, so a
//! gap is reconciled (SePay asked for the span between the two transactions) only after a grace
//! period, then again with backoff, and flagged after [`GAP_MAX_ATTEMPTS`]. A gap closes when a
//! transaction between its two ends is recorded. Banks that report no balance send 0: two
//! zero balances are never a break.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::time::Duration;

/// One booked SePay transaction as the balance sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BalancePoint {
    pub sepay_id: i64,
    pub taken_at: DateTime<Utc>,
    /// Signed: `in` positive, `out` negative.
    pub amount: Decimal,
    /// The account's balance after it.
    pub accumulated: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Continuity {
    /// `previous + amount = balance`.
    Continuous,
    /// The bank reports no balance (both 0): nothing to check.
    NoBalance,
    /// Something between the two is missing: the balance before `next` should have been
    /// `expected_before`, the one seen is `seen_before`.
    Gap {
        expected_before: Decimal,
        seen_before: Decimal,
    },
}

/// Whether `next` carries on from `previous`, its predecessor on the same account.
pub fn continuity(previous: &BalancePoint, next: &BalancePoint) -> Continuity {
    if previous.accumulated.is_zero() && next.accumulated.is_zero() {
        return Continuity::NoBalance;
    }
    let expected_before = next.accumulated - next.amount;
    if expected_before == previous.accumulated {
        Continuity::Continuous
    } else {
        Continuity::Gap {
            expected_before,
            seen_before: previous.accumulated,
        }
    }
}

/// A trailing loss: the account's balance SePay reports now differs from the balance after the
/// last transaction booked on it, so a transaction after that one never arrived (no later
/// delivery will reveal it). Unknown without a booked point or a reported balance, and never
/// for a bank that reports none (0).
pub fn trailing_loss(last: Option<&BalancePoint>, reported: Option<Decimal>) -> bool {
    match (last, reported) {
        (Some(last), Some(reported)) => !reported.is_zero() && reported != last.accumulated,
        _ => false,
    }
}

/// Reconciliations that ran and left a gap open before it is flagged for a person.
pub const GAP_MAX_ATTEMPTS: i32 = 5;
pub const DEFAULT_GAP_GRACE_SECS: u64 = 5;
/// The longest wait after a reconciliation that could not run: the outage, not the gap, was the
/// trouble, and the transaction must be booked soon after SePay answers again.
pub const GAP_FAILED_RETRY_CAP: Duration = Duration::from_secs(60);

/// How a gap's reconciliation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapAttempt {
    /// It ran (SePay listed the span); the gap may still be open.
    Ran,
    /// It failed: SePay could not be asked (token refresh failing, SePay down, a reconnect
    /// needed); the end of the outage or a reconnect makes a later try succeed.
    Failed,
}

/// After the `attempts`-th reconciliation of a gap: the wait before the next one (the grace, then
/// doubling: at most ten minutes after runs, at most a minute after failures), and
/// whether the gap is flagged. Only runs that left it open count toward the flag: a two-minute
/// token outage must not turn a late transaction into an admin's chore.
pub fn gap_next_attempt(grace: Duration, attempts: i32, outcome: GapAttempt) -> (Duration, bool) {
    let doubled = grace.saturating_mul(1u32 << attempts.clamp(0, 16));
    match outcome {
        GapAttempt::Ran => (doubled.min(Duration::from_secs(600)), attempts >= GAP_MAX_ATTEMPTS),
        GapAttempt::Failed => (doubled.min(GAP_FAILED_RETRY_CAP), false),
    }
}

/// The balance SePay reported, read leniently: a JSON number or numeric string (negative for an
/// overdraft); absent or unreadable, none.
pub fn accumulated_of(value: Option<&serde_json::Value>) -> Option<Decimal> {
    match value? {
        serde_json::Value::Number(n) => n.to_string().parse().ok(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(id: i64, amount: i64, accumulated: i64) -> BalancePoint {
        BalancePoint {
            sepay_id: id,
            taken_at: DateTime::UNIX_EPOCH,
            amount: amount.into(),
            accumulated: accumulated.into(),
        }
    }

    #[test]
    fn continuity_table() {
        let gap = |expected: i64, seen: i64| Continuity::Gap {
            expected_before: expected.into(),
            seen_before: seen.into(),
        };
        let cases = [
            // previous, next, verdict
            (point(1, 100, 1100), point(2, 200, 1300), Continuity::Continuous),
            (point(1, 100, 1100), point(2, -300, 800), Continuity::Continuous),
            // a 500 credit between them never arrived
            (point(1, 100, 1100), point(3, 200, 1800), gap(1600, 1100)),
            // a 400 debit between them
            (point(1, 100, 1100), point(3, -100, 600), gap(700, 1100)),
            // a bank without balances
            (point(1, 100, 0), point(2, 200, 0), Continuity::NoBalance),
            // a balance that reaches zero is still checked
            (point(1, 100, 300), point(2, -300, 0), Continuity::Continuous),
            (point(1, 100, 0), point(2, 300, 300), Continuity::Continuous),
            (point(1, 100, 500), point(2, -300, 0), gap(300, 500)),
        ];
        for (previous, next, want) in cases {
            assert_eq!(continuity(&previous, &next), want, "{previous:?} → {next:?}");
        }
    }

    #[test]
    fn trailing_losses_table() {
        let last = point(7, 100, 1100);
        let cases = [
            (Some(&last), Some(1100), false),
            (Some(&last), Some(1300), true),
            (Some(&last), Some(900), true),
            // a bank without balances, or nothing to compare with
            (Some(&last), Some(0), false),
            (Some(&last), None, false),
            (None, Some(1300), false),
        ];
        for (last, reported, want) in cases {
            assert_eq!(
                trailing_loss(last, reported.map(Decimal::from)),
                want,
                "{last:?} {reported:?}"
            );
        }
    }

    #[test]
    fn gaps_are_retried_with_backoff_and_flagged_only_after_runs() {
        let grace = Duration::from_secs(5);
        let ran: Vec<(u64, bool)> = (1..10)
            .map(|a| gap_next_attempt(grace, a, GapAttempt::Ran))
            .map(|(wait, flag)| (wait.as_secs(), flag))
            .collect();
        assert_eq!(
            ran,
            [
                (10, false),
                (20, false),
                (40, false),
                (80, false),
                (160, true),
                (320, true),
                (600, true),
                (600, true),
                (600, true)
            ]
        );
        let failed: Vec<(u64, bool)> = (1..10)
            .map(|a| gap_next_attempt(grace, a, GapAttempt::Failed))
            .map(|(wait, flag)| (wait.as_secs(), flag))
            .collect();
        assert_eq!(
            failed,
            [
                (10, false),
                (20, false),
                (40, false),
                (60, false),
                (60, false),
                (60, false),
                (60, false),
                (60, false),
                (60, false)
            ]
        );
    }

    #[test]
    fn accumulated_is_read_leniently() {
        use serde_json::json;
        let cases = [
            (Some(json!(19_077_000)), Some(Decimal::from(19_077_000))),
            (Some(json!("19077000")), Some(Decimal::from(19_077_000))),
            (Some(json!("-500.50")), Some(Decimal::new(-50050, 2))),
            (Some(json!(0)), Some(Decimal::ZERO)),
            (Some(json!(null)), None),
            (Some(json!("n/a")), None),
            (None, None),
        ];
        for (value, want) in cases {
            assert_eq!(accumulated_of(value.as_ref()), want, "{value:?}");
        }
    }
}
