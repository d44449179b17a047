//! What to do when a delivery repeats an event we already hold, and how long to wait before
//! processing a failed event again.

use crate::status::EventStatus;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// A `received` row with no transaction this long after it was opened is presumed abandoned.
    pub stale_after: Duration,
    /// An eventless payload equal to one delivered this recently is a duplicate.
    pub eventless_window: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            stale_after: Duration::from_secs(5 * 60),
            eventless_window: Duration::from_secs(2 * 60),
        }
    }
}

/// The stored row a repeat delivery collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExistingEvent {
    pub status: EventStatus,
    /// Time since the current processing attempt was opened.
    pub opened_age: Duration,
    /// Time since the previous delivery of the same event.
    pub since_last_delivery: Duration,
    pub has_transaction: bool,
    pub eventless: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepeatDecision {
    /// Open the event for processing again and re-publish it.
    Reopen,
    /// Being processed right now: acknowledge, change nothing.
    InFlight,
    /// Already booked (or known duplicate): acknowledge with `duplicate: true`, replay nothing.
    Duplicate,
}

impl RetryPolicy {
    pub fn decide_repeat(&self, existing: &ExistingEvent) -> RepeatDecision {
        use EventStatus::*;
        match existing.status {
            Processed | Duplicate => RepeatDecision::Duplicate,
            _ if existing.eventless && existing.since_last_delivery < self.eventless_window => {
                RepeatDecision::Duplicate
            }
            Failed => RepeatDecision::Reopen,
            Received if existing.has_transaction => RepeatDecision::Duplicate,
            Received if existing.opened_age >= self.stale_after => RepeatDecision::Reopen,
            Received => RepeatDecision::InFlight,
        }
    }
}

/// Delay before the `delivered`-th attempt (1-based) of a failed event: 1 s, 2 s, 4 s … capped at a minute.
pub fn processing_backoff(delivered: u64) -> Duration {
    let exponent = delivered.saturating_sub(1).min(6) as u32;
    Duration::from_secs(2u64.pow(exponent)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventStatus::{Duplicate as Dup, Failed, Processed, Received};
    use RepeatDecision::{Duplicate, InFlight, Reopen};

    const MIN: u64 = 60;

    fn ev(status: EventStatus, opened_mins: u64, last_secs: u64, has_tx: bool, eventless: bool) -> ExistingEvent {
        ExistingEvent {
            status,
            opened_age: Duration::from_secs(opened_mins * MIN),
            since_last_delivery: Duration::from_secs(last_secs),
            has_transaction: has_tx,
            eventless,
        }
    }

    #[test]
    fn repeat_decisions_table() {
        let p = RetryPolicy::default();
        let cases = [
            // processed and duplicate rows are never replayed
            (ev(Processed, 0, 0, true, false), Duplicate),
            (ev(Processed, 60, 600, false, false), Duplicate),
            (ev(Dup, 0, 0, false, false), Duplicate),
            (ev(Dup, 60, 600, true, true), Duplicate),
            // failed reopens at once
            (ev(Failed, 0, 0, false, false), Reopen),
            (ev(Failed, 60, 600, false, false), Reopen),
            // received: in flight until stale, then reopened
            (ev(Received, 0, 0, false, false), InFlight),
            (ev(Received, 4, 240, false, false), InFlight),
            (ev(Received, 5, 300, false, false), Reopen),
            (ev(Received, 30, 5, false, false), Reopen),
            (ev(Received, 30, 300, true, false), Duplicate),
            // eventless payloads inside the 2-minute window are duplicates, whatever the status
            (ev(Failed, 0, 119, false, true), Duplicate),
            (ev(Received, 30, 60, false, true), Duplicate),
            // ... and outside it follow the ordinary rules (unique-key recovery)
            (ev(Failed, 3, 120, false, true), Reopen),
            (ev(Received, 10, 600, false, true), Reopen),
            (ev(Received, 2, 130, false, true), InFlight),
        ];
        for (existing, want) in cases {
            assert_eq!(p.decide_repeat(&existing), want, "{existing:?}");
        }
    }

    #[test]
    fn repeat_decision_is_total() {
        let p = RetryPolicy::default();
        for status in EventStatus::ALL {
            for opened in [0, 1, 4, 5, 6, 600] {
                for last in [0, 60, 119, 120, 121, 100_000] {
                    for has_tx in [false, true] {
                        for eventless in [false, true] {
                            let d = p.decide_repeat(&ev(*status, opened, last, has_tx, eventless));
                            if matches!(status, Processed | Dup) {
                                assert_eq!(d, Duplicate);
                            }
                            if d == Reopen {
                                assert!(!has_tx || *status == Failed);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let secs: Vec<u64> = (1..=9).map(|n| processing_backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(processing_backoff(0).as_secs(), 1);
    }
}
