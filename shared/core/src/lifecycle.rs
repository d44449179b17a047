//! The event lifecycle: every status a `sepay_webhook_events` row can have, every move between
//! them, and the retry rules. The store binds its statuses and the stale TTL from here, so this
//! file is the whole rule; nothing else spells a status.
//!
//! - **Delivery.** A new dedupe key makes a row `received`, attempt 1. A body that is not a JSON
//!   object is stored `failed` (`invalid_payload`) and never reopened.
//! - **Processing.** The processor books a `received` or `failed` row: `processed`; if another
//!   event already booked the same bank transaction, `duplicate`. A Striga settlement books
//!   nothing and is `processed` too. An attempt that cannot finish makes the row `failed`.
//!   `processed` and `duplicate` are final: a redelivered message is acked without effect.
//! - **Reopen** (a new attempt: `received`, attempt + 1, unpublished, failure cleared):
//!   - a repeat delivery of a `failed` row, at once;
//!   - a repeat delivery of a `received` row with no transaction whose attempt was opened at least
//!     `stale_after` ago (default 5 minutes; the clock is `opened_at`, so SePay's own retries
//!     cannot keep an event fresh);
//!   - the relay's sweep, for the same stale rows, without waiting for a repeat;
//!   - an operator's replay of a `failed` row.
//! - **Other repeats** change nothing: a fresh `received` row is in flight (200); a `processed`,
//!   `duplicate` or booked row is a duplicate (200 `duplicate: true`). An eventless payload
//!   repeated within `eventless_window` (2 minutes) is a duplicate whatever the status.
//! - **Processor retries.** A retryable failure (`FailureReason::is_retryable`) goes back to
//!   JetStream after [`processing_backoff`] (1, 2, 4 … 60 s) up to the delivery bound; then the
//!   row stays `failed` until a repeat delivery or a replay reopens it.

use crate::status::FailureReason;
use std::time::Duration;

crate::status::stored_enum!(
    /// `sepay_webhook_events.status`
    EventStatus {
        Received => "received",
        Processed => "processed",
        Failed => "failed",
        Duplicate => "duplicate",
    }
);

impl EventStatus {
    /// `received` or `failed`: the processor may still book or fail it. `processed` and
    /// `duplicate` are final.
    pub fn is_open(self) -> bool {
        Trigger::Book.from().contains(&self)
    }
}

/// Seconds a `received` row may wait unbooked before it is re-driven (the stale TTL).
pub const DEFAULT_STALE_AFTER_SECS: u64 = 5 * 60;
/// The same, as `RetryPolicy::stale_after` takes it.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(DEFAULT_STALE_AFTER_SECS);
/// Seconds within which an equal eventless payload is a duplicate.
pub const DEFAULT_EVENTLESS_WINDOW_SECS: u64 = 2 * 60;

/// The status of a new row: `received`, or `failed` for a body that is not a JSON object.
pub const fn first_status(json_object: bool) -> EventStatus {
    if json_object {
        EventStatus::Received
    } else {
        EventStatus::Failed
    }
}

/// Stored spellings, to bind as a `text[]` (`status = any($n)`).
pub fn spellings(statuses: &[EventStatus]) -> Vec<&'static str> {
    statuses.iter().map(|s| s.as_str()).collect()
}

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
            stale_after: DEFAULT_STALE_AFTER,
            eventless_window: Duration::from_secs(DEFAULT_EVENTLESS_WINDOW_SECS),
        }
    }
}

/// A stored row as the lifecycle sees it (for a repeat: the row the delivery collided with).
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

/// Whether an operator's replay can change something: the event is one a replay reopens and its
/// failure is one trying again can fix (a wallet linked since, a database error passed); a
/// malformed payload stays malformed. The store's replay reopens just these.
pub fn replay_can_fix(status: EventStatus, reason: Option<FailureReason>) -> bool {
    Trigger::Replay.from().contains(&status) && reason.is_none_or(|r| r.is_retryable())
}

/// The failure reasons a replay can fix (bound as a `text[]` by the store's replay).
pub fn replay_fixable_reasons() -> Vec<&'static str> {
    FailureReason::ALL
        .iter()
        .filter(|r| r.is_retryable())
        .map(|r| r.as_str())
        .collect()
}

/// What happens to a stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Another delivery with the same dedupe key.
    Repeat,
    /// The relay's sweep for abandoned attempts.
    Sweep,
    /// An operator's replay (`events replay`, the admin page).
    Replay,
    /// The processor could not finish the attempt.
    Fail,
    /// The processor booked the event, or found nothing to book (a Striga settlement).
    Book,
    /// The processor found the bank transaction already booked by another event.
    BookedElsewhere,
}

impl Trigger {
    /// The statuses this trigger can move an event from; on any other it changes nothing.
    pub const fn from(self) -> &'static [EventStatus] {
        use EventStatus::*;
        match self {
            Self::Repeat | Self::Fail | Self::Book | Self::BookedElsewhere => &[Received, Failed],
            Self::Sweep => &[Received],
            Self::Replay => &[Failed],
        }
    }

    /// The status the event has after the move (`received` for a reopen).
    pub const fn to(self) -> EventStatus {
        match self {
            Self::Repeat | Self::Sweep | Self::Replay => EventStatus::Received,
            Self::Fail => EventStatus::Failed,
            Self::Book => EventStatus::Processed,
            Self::BookedElsewhere => EventStatus::Duplicate,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A new attempt: `received`, attempt + 1, unpublished, failure cleared.
    Reopen,
    /// The status becomes this one.
    To(EventStatus),
    /// A repeat of an event being processed right now: acknowledge, change nothing.
    InFlight,
    /// A repeat of an event already booked (or a known duplicate): acknowledge with
    /// `duplicate: true`, replay nothing.
    Duplicate,
    /// Nothing changes.
    Unchanged,
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
    /// Every transition of the lifecycle.
    pub fn next(&self, event: &ExistingEvent, trigger: Trigger) -> Transition {
        if !trigger.from().contains(&event.status) {
            // final, or not this trigger's business
            return match trigger {
                Trigger::Repeat => Transition::Duplicate,
                _ => Transition::Unchanged,
            };
        }
        match trigger {
            Trigger::Repeat if event.eventless && event.since_last_delivery < self.eventless_window => {
                Transition::Duplicate
            }
            Trigger::Repeat if event.status == EventStatus::Failed => Transition::Reopen,
            Trigger::Repeat if event.has_transaction => Transition::Duplicate,
            Trigger::Repeat | Trigger::Sweep if self.is_stale(event) => Transition::Reopen,
            Trigger::Repeat => Transition::InFlight,
            Trigger::Sweep => Transition::Unchanged,
            Trigger::Replay => Transition::Reopen,
            Trigger::Fail | Trigger::Book | Trigger::BookedElsewhere => Transition::To(trigger.to()),
        }
    }

    /// The stale test (the store's sweep states it in SQL, with `stale_after` bound): unbooked,
    /// and the attempt opened at least `stale_after` ago.
    pub fn is_stale(&self, event: &ExistingEvent) -> bool {
        !event.has_transaction && event.opened_age >= self.stale_after
    }

    /// What to do when a delivery repeats an event we already hold.
    pub fn decide_repeat(&self, existing: &ExistingEvent) -> RepeatDecision {
        match self.next(existing, Trigger::Repeat) {
            Transition::Reopen => RepeatDecision::Reopen,
            Transition::InFlight => RepeatDecision::InFlight,
            _ => RepeatDecision::Duplicate,
        }
    }
}

/// Whether the processor retries a failed attempt through JetStream, and after how long: a
/// retryable failure, until the `delivered`-th delivery reaches `max_deliver`. `None`: ack; the
/// row stays `failed`.
pub fn processing_retry(reason: FailureReason, delivered: u64, max_deliver: i64) -> Option<Duration> {
    (reason.is_retryable() && (delivered as i64) < max_deliver).then(|| processing_backoff(delivered))
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
    use Transition::{Duplicate, InFlight, Reopen, To, Unchanged};
    use Trigger::{Book, BookedElsewhere, Fail, Repeat, Replay, Sweep};

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

    /// Every transition: (row, trigger, what happens).
    #[test]
    fn a_replay_can_fix_only_failures_a_new_attempt_can_fix() {
        use EventStatus::*;
        let cases = [
            (Failed, None, true),
            (Failed, Some(FailureReason::WalletNotLinked), true),
            (Failed, Some(FailureReason::ProcessingError), true),
            (Failed, Some(FailureReason::InvalidPayload), false),
            (Failed, Some(FailureReason::InvalidAmount), false),
            (Received, None, false),
            (Processed, None, false),
            (Duplicate, None, false),
        ];
        for (status, reason, can) in cases {
            assert_eq!(replay_can_fix(status, reason), can, "{status:?} {reason:?}");
        }
        assert!(replay_fixable_reasons().contains(&"wallet_not_linked"));
        assert!(!replay_fixable_reasons().contains(&"invalid_payload"));
    }

    #[test]
    fn every_transition() {
        // a new row
        assert_eq!(first_status(true), Received);
        assert_eq!(first_status(false), Failed);

        let p = RetryPolicy::default();
        let cases = [
            // repeats: processed and duplicate rows are never replayed
            (ev(Processed, 0, 0, true, false), Repeat, Duplicate),
            (ev(Processed, 60, 600, false, false), Repeat, Duplicate),
            (ev(Dup, 0, 0, false, false), Repeat, Duplicate),
            (ev(Dup, 60, 600, true, true), Repeat, Duplicate),
            // failed reopens at once
            (ev(Failed, 0, 0, false, false), Repeat, Reopen),
            (ev(Failed, 60, 600, false, false), Repeat, Reopen),
            // received: in flight until stale, then reopened
            (ev(Received, 0, 0, false, false), Repeat, InFlight),
            (ev(Received, 4, 240, false, false), Repeat, InFlight),
            (ev(Received, 5, 300, false, false), Repeat, Reopen),
            (ev(Received, 30, 5, false, false), Repeat, Reopen),
            (ev(Received, 30, 300, true, false), Repeat, Duplicate),
            // eventless payloads inside the 2-minute window are duplicates, whatever the status
            (ev(Failed, 0, 119, false, true), Repeat, Duplicate),
            (ev(Received, 30, 60, false, true), Repeat, Duplicate),
            // ... and outside it follow the ordinary rules (unique-key recovery)
            (ev(Failed, 3, 120, false, true), Repeat, Reopen),
            (ev(Received, 10, 600, false, true), Repeat, Reopen),
            (ev(Received, 2, 130, false, true), Repeat, InFlight),
            // the relay's sweep: stale unbooked received rows only
            (ev(Received, 5, 0, false, false), Sweep, Reopen),
            (ev(Received, 4, 600, false, false), Sweep, Unchanged),
            (ev(Received, 30, 0, true, false), Sweep, Unchanged),
            (ev(Failed, 30, 0, false, false), Sweep, Unchanged),
            (ev(Processed, 30, 0, false, false), Sweep, Unchanged),
            (ev(Dup, 30, 0, false, false), Sweep, Unchanged),
            // replay: failed rows only
            (ev(Failed, 0, 0, false, false), Replay, Reopen),
            (ev(Received, 30, 0, false, false), Replay, Unchanged),
            (ev(Processed, 0, 0, true, false), Replay, Unchanged),
            (ev(Dup, 0, 0, true, false), Replay, Unchanged),
            // the processor: open rows (received or failed) are booked or failed; settled ones stay
            (ev(Received, 0, 0, false, false), Book, To(Processed)),
            (ev(Failed, 0, 0, false, false), Book, To(Processed)),
            (ev(Processed, 0, 0, true, false), Book, Unchanged),
            (ev(Dup, 0, 0, true, false), Book, Unchanged),
            (ev(Received, 0, 0, false, false), BookedElsewhere, To(Dup)),
            (ev(Failed, 0, 0, false, false), BookedElsewhere, To(Dup)),
            (ev(Processed, 0, 0, true, false), BookedElsewhere, Unchanged),
            (ev(Received, 0, 0, false, false), Fail, To(Failed)),
            (ev(Failed, 0, 0, false, false), Fail, To(Failed)),
            (ev(Processed, 0, 0, true, false), Fail, Unchanged),
            (ev(Dup, 0, 0, true, false), Fail, Unchanged),
        ];
        for (existing, trigger, want) in cases {
            assert_eq!(p.next(&existing, trigger), want, "{existing:?} {trigger:?}");
            let repeat = match want {
                Reopen => RepeatDecision::Reopen,
                InFlight => RepeatDecision::InFlight,
                _ => RepeatDecision::Duplicate,
            };
            if trigger == Repeat {
                assert_eq!(p.decide_repeat(&existing), repeat, "{existing:?}");
            }
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
                                assert_eq!(d, RepeatDecision::Duplicate);
                            }
                            if d == RepeatDecision::Reopen {
                                assert!(!has_tx || *status == Failed);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn only_retryable_failures_are_retried_until_the_bound() {
        let secs = |reason, delivered| processing_retry(reason, delivered, 3).map(|d| d.as_secs());
        assert_eq!(secs(FailureReason::WalletNotLinked, 1), Some(1));
        assert_eq!(secs(FailureReason::ProcessingError, 2), Some(2));
        assert_eq!(secs(FailureReason::WalletNotLinked, 3), None);
        assert_eq!(secs(FailureReason::InvalidAmount, 1), None);
        assert!(
            EventStatus::ALL
                .iter()
                .all(|s| s.is_open() == matches!(s, Received | Failed))
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let secs: Vec<u64> = (1..=9).map(|n| processing_backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(processing_backoff(0).as_secs(), 1);
    }
}
