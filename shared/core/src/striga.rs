//! Striga SEPA webhooks: from raw bytes to a checked event, the booking it makes, and the payout
//! lifecycle folded over deliveries that may arrive in any order.
//!
//! One transaction id is shared by a payout's INITIATED event and its COMPLETED, FAILED or DENIED
//! outcome: events are deduplicated on (id, type) and a payout's events are linked by id.

use crate::dedupe::{DedupeKey, encode_id};
use crate::money::{Amount, Direction};
use crate::payload::NormalizedTransaction;
use crate::status::FailureReason;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use std::fmt;

/// Largest amount accepted, in minor units (10^13 EUR): far beyond any wallet, and a bound on
/// what a malformed body can put in the books.
const MAX_MINOR_UNITS: u64 = 1_000_000_000_000_000;
/// The currency of Striga's SEPA accounts: what "cents" are hundredths of, and what a wallet
/// must hold to book them.
pub const CURRENCY: &str = "EUR";
/// Decimal places of the one minor unit Striga reports, "cents".
const CENTS_SCALE: u32 = 2;
/// Longest id accepted, in bytes (UUIDs have 36): keys built from it must fit a database index.
const MAX_ID_LEN: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrigaEventType {
    PayinCompleted,
    PayoutInitiated,
    PayoutCompleted,
    PayoutFailed,
    PayoutDenied,
}

impl StrigaEventType {
    pub const ALL: [Self; 5] = [
        Self::PayinCompleted,
        Self::PayoutInitiated,
        Self::PayoutCompleted,
        Self::PayoutFailed,
        Self::PayoutDenied,
    ];

    /// The wire spelling (`type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PayinCompleted => "SEPA_PAYIN_COMPLETED",
            Self::PayoutInitiated => "SEPA_PAYOUT_INITIATED",
            Self::PayoutCompleted => "SEPA_PAYOUT_COMPLETED",
            Self::PayoutFailed => "SEPA_PAYOUT_FAILED",
            Self::PayoutDenied => "SEPA_PAYOUT_DENIED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

impl fmt::Display for StrigaEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Striga transaction webhook as checked by [`StrigaEvent::parse`]. Amounts are exact decimals
/// in the wallet's currency (minor units / 100, scale 2).
#[derive(Debug, Clone, PartialEq)]
pub struct StrigaEvent {
    pub id: String,
    pub event_type: StrigaEventType,
    /// Absent in some samples (payout INITIATED and COMPLETED).
    pub account_id: Option<String>,
    /// The wallet owner: present in every sample, the one field that always says whose money it is.
    pub synced_owner_id: String,
    /// Zero when absent or null.
    pub credit: Decimal,
    pub debit: Decimal,
    pub balance_before: Option<Decimal>,
    pub balance_after: Option<Decimal>,
    /// `feeEur`, read as cents like every other amount of the webhook (every documented sample
    /// sends 0, so the unit is an assumption, docs/striga.md); zero when absent.
    pub fee: Decimal,
    /// `nonFpFeeBaseCurrency` and `exchangeRate` as sent (a number or a string): kept and shown,
    /// never booked.
    pub fee_base_currency: Option<String>,
    pub exchange_rate: Option<String>,
    pub timestamp: DateTime<Utc>,
    /// memo, bankingTransactionReference, bankingSenderName and bankingTransactionShortId, the
    /// distinct non-empty ones joined by " · ".
    pub description: String,
    /// The body as received, for storage.
    pub raw: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrigaError {
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("{0} is missing or not a non-empty string")]
    Missing(&'static str),
    #[error("id is longer than {MAX_ID_LEN} bytes")]
    IdTooLong,
    /// A type this code does not know: stored (nothing authenticated is lost) and failed as
    /// `invalid_transfer_type`, replayable once a release knows it.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("{field} must be a whole number of minor units from 0 to 10^15, got {value}")]
    Amount { field: &'static str, value: String },
    #[error("{field} must be an object with an amount, got {value}")]
    Balance { field: &'static str, value: String },
    #[error("{field}.currency must be \"cents\", got {unit}")]
    Unit { field: &'static str, unit: String },
    #[error("timestamp must be RFC 3339, got {0}")]
    Timestamp(String),
    #[error("{event_type} must have {rule}, got credit {credit} and debit {debit}")]
    Inconsistent {
        event_type: StrigaEventType,
        rule: &'static str,
        credit: Decimal,
        debit: Decimal,
    },
}

impl StrigaError {
    /// The stored failure code; the message goes beside it.
    pub fn reason(&self) -> FailureReason {
        match self {
            Self::UnknownType(_) => FailureReason::InvalidTransferType,
            Self::Amount { .. } | Self::Balance { .. } | Self::Unit { .. } | Self::Inconsistent { .. } => {
                FailureReason::InvalidAmount
            }
            Self::Timestamp(_) => FailureReason::InvalidTransactionDate,
            Self::NotAnObject | Self::Missing(_) | Self::IdTooLong => FailureReason::InvalidPayload,
        }
    }
}

/// What an event books in the wallet: a signed amount, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrigaEffect {
    /// PAYIN_COMPLETED: +credit.
    Credit(Decimal),
    /// PAYOUT_INITIATED: −debit, the money leaves here.
    Debit(Decimal),
    /// PAYOUT_COMPLETED: confirms the payout of the same id; books nothing.
    Settle,
    /// PAYOUT_FAILED or DENIED: +credit, the payout of the same id comes back.
    Reversal(Decimal),
}

impl StrigaEffect {
    /// The signed amount booked; `None` for [`StrigaEffect::Settle`].
    pub fn amount(self) -> Option<Decimal> {
        match self {
            Self::Credit(a) | Self::Debit(a) | Self::Reversal(a) => Some(a),
            Self::Settle => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceCheck {
    /// balanceBefore + credit − debit = balanceAfter.
    Consistent,
    Mismatch {
        expected: Decimal,
        actual: Decimal,
    },
    /// One balance or both are absent.
    NotReported,
}

impl StrigaEvent {
    /// Reads and checks every field booking needs; the sides' amounts must fit the type.
    pub fn parse(body: &[u8]) -> Result<Self, StrigaError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(raw)) => Self::from_object(raw),
            _ => Err(StrigaError::NotAnObject),
        }
    }

    /// Like [`parse`](Self::parse), for a body already read as a JSON object (a stored event).
    pub fn from_object(raw: Map<String, Value>) -> Result<Self, StrigaError> {
        let id = text(&raw, "id").ok_or(StrigaError::Missing("id"))?;
        if id.len() > MAX_ID_LEN {
            return Err(StrigaError::IdTooLong);
        }
        let type_text = text(&raw, "type").ok_or(StrigaError::Missing("type"))?;
        let event_type =
            StrigaEventType::parse(&type_text).ok_or_else(|| StrigaError::UnknownType(truncate(&type_text)))?;
        let synced_owner_id = text(&raw, "syncedOwnerId").ok_or(StrigaError::Missing("syncedOwnerId"))?;
        let credit = optional_units(&raw, "credit")?;
        let debit = optional_units(&raw, "debit")?;
        check_sides(event_type, credit, debit)?;
        let timestamp = match raw.get("timestamp") {
            Some(Value::String(s)) => DateTime::parse_from_rfc3339(s.trim()).ok(),
            _ => None,
        }
        .ok_or_else(|| StrigaError::Timestamp(truncate(&value_text(raw.get("timestamp")))))?;
        Ok(Self {
            id,
            event_type,
            account_id: text(&raw, "accountId"),
            synced_owner_id,
            credit,
            debit,
            balance_before: balance(&raw, "balanceBefore", "balanceBefore.amount")?,
            balance_after: balance(&raw, "balanceAfter", "balanceAfter.amount")?,
            fee: optional_units(&raw, "feeEur")?,
            fee_base_currency: shown(&raw, "nonFpFeeBaseCurrency"),
            exchange_rate: shown(&raw, "exchangeRate"),
            timestamp: timestamp.with_timezone(&Utc),
            description: description(&raw),
            raw,
        })
    }

    pub fn effect(&self) -> StrigaEffect {
        match self.event_type {
            StrigaEventType::PayinCompleted => StrigaEffect::Credit(self.credit),
            StrigaEventType::PayoutInitiated => StrigaEffect::Debit(-self.debit),
            StrigaEventType::PayoutCompleted => StrigaEffect::Settle,
            StrigaEventType::PayoutFailed | StrigaEventType::PayoutDenied => StrigaEffect::Reversal(self.credit),
        }
    }

    /// balanceBefore + credit − debit = balanceAfter, or, where a fee left the wallet beside the
    /// debit ([`fee_booking`](Self::fee_booking)), that less the fee.
    pub fn balance_check(&self) -> BalanceCheck {
        match (self.balance_before, self.balance_after) {
            (Some(before), Some(actual)) => {
                let expected = before + self.credit - self.debit;
                if expected == actual || self.fee_booking().is_some() {
                    BalanceCheck::Consistent
                } else {
                    BalanceCheck::Mismatch { expected, actual }
                }
            }
            _ => BalanceCheck::NotReported,
        }
    }

    /// The fee to book apart (−fee), where the balances show it is not inside the debit:
    /// balanceBefore + credit − debit − fee = balanceAfter. `None` without a fee, where the
    /// identity holds without it (the fee is part of the debit, or was taken elsewhere), and where
    /// the balances are not reported or explain neither (shown, never guessed into the books): a
    /// fee is never counted twice.
    pub fn fee_booking(&self) -> Option<Decimal> {
        let (before, after) = (self.balance_before?, self.balance_after?);
        let without_fee = before + self.credit - self.debit;
        (self.fee > Decimal::ZERO && without_fee != after && without_fee - self.fee == after).then_some(self.fee)
    }

    /// The fee row's `external_ref`: the event's key and `:fee`, one per event.
    pub fn fee_ref(&self) -> String {
        format!("{}:fee", self.dedupe_key().as_str())
    }

    /// `striga:<id>:<TYPE>`.
    pub fn dedupe_key(&self) -> DedupeKey {
        DedupeKey::for_striga(&self.id, self.event_type.as_str())
    }

    /// The booked wallet transaction's `external_ref`, one per effect: `striga:<id>:payin`,
    /// `…:payout` or `…:reversal`; `None` for a settlement, which books nothing. FAILED and DENIED
    /// of one payout share the reversal's ref, so a provider contradiction cannot refund twice.
    pub fn external_ref(&self) -> Option<String> {
        let effect = match self.effect() {
            StrigaEffect::Credit(_) => "payin",
            StrigaEffect::Debit(_) => "payout",
            StrigaEffect::Reversal(_) => "reversal",
            StrigaEffect::Settle => return None,
        };
        Some(format!("striga:{}:{effect}", encode_id(&self.id)))
    }
}

/// The key a delivery is stored under, read from the body alone (the ingress does no more):
/// `striga:<id>:<TYPE>` when it names an id and a known type; `None` otherwise (the caller keys
/// it by its bytes and the processor records why it cannot be booked).
pub fn dedupe_key_of(payload: &Map<String, Value>) -> Option<DedupeKey> {
    let id = text(payload, "id").filter(|id| id.len() <= MAX_ID_LEN)?;
    let event_type = StrigaEventType::parse(&text(payload, "type")?)?;
    Some(DedupeKey::for_striga(&id, event_type.as_str()))
}

impl StrigaEvent {
    /// The transaction to classify and book, in the shape every provider's bookings share;
    /// `None` for a settlement, which books nothing.
    pub fn normalize(&self) -> Option<NormalizedTransaction> {
        let signed = self.effect().amount()?;
        let direction = if signed.is_sign_negative() {
            Direction::Out
        } else {
            Direction::In
        };
        // parse checked the side is positive and at most 10^13: always a valid amount
        let amount = Amount::parse(&signed.abs().to_string()).ok()?;
        Some(NormalizedTransaction {
            sepay_id: None,
            direction,
            amount,
            // exact cents, scale kept: a EUR booking reads 5.00, not 5
            signed_amount: signed,
            taken_at: self.timestamp,
            account_number: self.wallet_refs()[0].to_owned(),
            sub_account: None,
            description: self.description.clone(),
            reference_code: text(&self.raw, "bankingTransactionShortId"),
            gateway: Some("Striga".to_owned()),
            // Striga's balances are checked per event (`balance_check`), not as a running chain
            accumulated: None,
        })
    }

    /// The fee row ([`fee_booking`](Self::fee_booking)): −fee, at the event's time, on its account.
    pub fn fee_transaction(&self) -> Option<NormalizedTransaction> {
        let fee = self.fee_booking()?;
        let amount = Amount::parse(&fee.to_string()).ok()?;
        Some(NormalizedTransaction {
            sepay_id: None,
            direction: Direction::Out,
            amount,
            signed_amount: -fee,
            taken_at: self.timestamp,
            account_number: self.wallet_refs()[0].to_owned(),
            sub_account: None,
            description: if self.description.is_empty() {
                "Striga fee".to_owned()
            } else {
                format!("Striga fee · {}", self.description)
            },
            reference_code: text(&self.raw, "bankingTransactionShortId"),
            gateway: Some("Striga".to_owned()),
            accumulated: None,
        })
    }

    /// The `external_ref` of the other half of this event's payout (the reversal of a debit, the
    /// debit of a reversal): the two book into one wallet, whichever arrived first.
    pub fn counterpart_ref(&self) -> Option<String> {
        let other = match self.effect() {
            StrigaEffect::Debit(_) => "reversal",
            StrigaEffect::Reversal(_) => "payout",
            StrigaEffect::Credit(_) | StrigaEffect::Settle => return None,
        };
        Some(format!("striga:{}:{other}", encode_id(&self.id)))
    }

    /// The id as it appears in keys and refs (percent-encoded where not plain; UUIDs as they are):
    /// a payout's stored id, so `striga:<payout_ref>:payout` finds its debit.
    pub fn payout_ref(&self) -> String {
        encode_id(&self.id)
    }

    /// What a wallet link may name, most specific first: `accountId` (absent from some payout
    /// events), then `syncedOwnerId`.
    pub fn wallet_refs(&self) -> Vec<&str> {
        self.account_id
            .iter()
            .map(String::as_str)
            .chain([self.synced_owner_id.as_str()])
            .collect()
    }
}

/// Each type moves money on one side only; anything else is refused rather than booked as a guess.
fn check_sides(event_type: StrigaEventType, credit: Decimal, debit: Decimal) -> Result<(), StrigaError> {
    let (ok, rule) = match event_type {
        StrigaEventType::PayinCompleted | StrigaEventType::PayoutFailed | StrigaEventType::PayoutDenied => {
            (credit > Decimal::ZERO && debit.is_zero(), "a credit and no debit")
        }
        StrigaEventType::PayoutInitiated => (debit > Decimal::ZERO && credit.is_zero(), "a debit and no credit"),
        // a confirmation: an amount here would be money moved that nothing books
        StrigaEventType::PayoutCompleted => (credit.is_zero() && debit.is_zero(), "neither credit nor debit"),
    };
    if ok {
        Ok(())
    } else {
        Err(StrigaError::Inconsistent {
            event_type,
            rule,
            credit,
            debit,
        })
    }
}

/// `field`'s amount, zero when absent or null.
fn optional_units(raw: &Map<String, Value>, field: &'static str) -> Result<Decimal, StrigaError> {
    match raw.get(field) {
        None | Some(Value::Null) => Ok(Decimal::new(0, CENTS_SCALE)),
        Some(value) => units(value, field),
    }
}

/// A whole number of cents, as a JSON integer or a string of digits, as an exact decimal. Signs,
/// fractions and exponents are refused (`1.5`, `1e3` and `1.0` arrive as f64 and are not integers).
fn units(value: &Value, field: &'static str) -> Result<Decimal, StrigaError> {
    let units = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    };
    match units {
        Some(u) if u <= MAX_MINOR_UNITS => Ok(Decimal::new(u as i64, CENTS_SCALE)),
        _ => Err(StrigaError::Amount {
            field,
            value: truncate(&value.to_string()),
        }),
    }
}

/// `{amount, currency}`; absent or null is not reported. A missing currency is taken as cents,
/// the only unit Striga sends; another unit is refused rather than guessed.
fn balance(
    raw: &Map<String, Value>,
    field: &'static str,
    amount_field: &'static str,
) -> Result<Option<Decimal>, StrigaError> {
    let balance = match raw.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(balance)) if balance.contains_key("amount") => balance,
        Some(other) => {
            return Err(StrigaError::Balance {
                field,
                value: truncate(&other.to_string()),
            });
        }
    };
    match balance.get("currency") {
        None | Some(Value::Null) => {}
        Some(Value::String(unit)) if unit.trim().eq_ignore_ascii_case("cents") => {}
        Some(other) => {
            return Err(StrigaError::Unit {
                field,
                unit: truncate(&other.to_string()),
            });
        }
    }
    units(&balance["amount"], amount_field).map(Some)
}

/// A field kept as sent, for showing: a number or a non-blank string (at most 40 characters).
fn shown(raw: &Map<String, Value>, field: &str) -> Option<String> {
    match raw.get(field)? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(truncate(s.trim())),
        _ => None,
    }
}

fn description(raw: &Map<String, Value>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for field in [
        "memo",
        "bankingTransactionReference",
        "bankingSenderName",
        "bankingTransactionShortId",
    ] {
        if let Some(part) = text(raw, field).filter(|p| !parts.contains(p)) {
            parts.push(part);
        }
    }
    parts.join(" · ")
}

/// A non-blank string field, trimmed.
fn text(raw: &Map<String, Value>, field: &str) -> Option<String> {
    match raw.get(field)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

fn value_text(value: Option<&Value>) -> String {
    value.map_or_else(|| "nothing".to_owned(), Value::to_string)
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

/// How a payout's outcome events rank when the provider contradicts itself: a failure or denial
/// beats a completion (its credit says the money came back), a denial beats a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PayoutOutcome {
    Completed,
    Failed,
    Denied,
}

impl StrigaEventType {
    /// What a payout event adds to its payout's stored progress: (INITIATED seen, outcome rank:
    /// 1 completed, 2 failed, 3 denied, 0 none). `None` for a payin. Stored as `initiated or …`
    /// and `greatest(…)`, so the progress, like [`PayoutStatus::apply`], ignores order and repeats.
    pub fn payout_progress(self) -> Option<(bool, i16)> {
        match self {
            Self::PayinCompleted => None,
            Self::PayoutInitiated => Some((true, 0)),
            Self::PayoutCompleted => Some((false, 1)),
            Self::PayoutFailed => Some((false, 2)),
            Self::PayoutDenied => Some((false, 3)),
        }
    }
}

/// A payout's status, from the set of its events seen so far, whatever their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayoutStatus {
    Initiated,
    Settled,
    Failed,
    Denied,
    /// An outcome arrived before INITIATED: its debit is not booked yet.
    AwaitingInitiation(PayoutOutcome),
}

impl PayoutStatus {
    /// Folds one more event in. The status is a join over (INITIATED seen, highest outcome seen),
    /// so any order of the same events, repeats included, ends in the same status. A payin is no
    /// payout event and leaves `current` as it is.
    pub fn apply(current: Option<Self>, event_type: StrigaEventType) -> Option<Self> {
        let Some((initiated, rank)) = event_type.payout_progress() else {
            return current;
        };
        let (was_initiated, was_rank) = current.map_or((false, 0), Self::progress);
        Self::from_progress(was_initiated || initiated, was_rank.max(rank))
    }

    /// The status of stored progress (see [`StrigaEventType::payout_progress`]).
    pub fn from_progress(initiated: bool, outcome_rank: i16) -> Option<Self> {
        let outcome = match outcome_rank {
            1 => Some(PayoutOutcome::Completed),
            2 => Some(PayoutOutcome::Failed),
            3 => Some(PayoutOutcome::Denied),
            _ => None,
        };
        match (initiated, outcome) {
            (false, None) => None,
            (false, Some(outcome)) => Some(Self::AwaitingInitiation(outcome)),
            (true, None) => Some(Self::Initiated),
            (true, Some(PayoutOutcome::Completed)) => Some(Self::Settled),
            (true, Some(PayoutOutcome::Failed)) => Some(Self::Failed),
            (true, Some(PayoutOutcome::Denied)) => Some(Self::Denied),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initiated => "initiated",
            Self::Settled => "settled",
            Self::Failed => "failed",
            Self::Denied => "denied",
            Self::AwaitingInitiation(PayoutOutcome::Completed) => "completed, awaiting initiation",
            Self::AwaitingInitiation(PayoutOutcome::Failed) => "failed, awaiting initiation",
            Self::AwaitingInitiation(PayoutOutcome::Denied) => "denied, awaiting initiation",
        }
    }

    fn progress(self) -> (bool, i16) {
        match self {
            Self::Initiated => (true, 0),
            Self::Settled => (true, 1),
            Self::Failed => (true, 2),
            Self::Denied => (true, 3),
            Self::AwaitingInitiation(PayoutOutcome::Completed) => (false, 1),
            Self::AwaitingInitiation(PayoutOutcome::Failed) => (false, 2),
            Self::AwaitingInitiation(PayoutOutcome::Denied) => (false, 3),
        }
    }
}

/// Striga's five documented SEPA webhooks (seed 003), verbatim: payin completed, payout
/// initiated, completed (of the same payout), failed and denied. The demo sends them; tests too.
pub mod samples {
    pub const PAYIN_COMPLETED: &str = include_str!("../tests/fixtures/striga/payin_completed.json");
    pub const PAYOUT_INITIATED: &str = include_str!("../tests/fixtures/striga/payout_initiated.json");
    pub const PAYOUT_COMPLETED: &str = include_str!("../tests/fixtures/striga/payout_completed.json");
    pub const PAYOUT_FAILED: &str = include_str!("../tests/fixtures/striga/payout_failed.json");
    pub const PAYOUT_DENIED: &str = include_str!("../tests/fixtures/striga/payout_denied.json");
    pub const ALL: [&str; 5] = [
        PAYIN_COMPLETED,
        PAYOUT_INITIATED,
        PAYOUT_COMPLETED,
        PAYOUT_FAILED,
        PAYOUT_DENIED,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    /// A payin of 5.00 with `changes` applied (`null` removes a field).
    fn payin(changes: Value) -> Result<StrigaEvent, StrigaError> {
        let mut body = json!({
            "type": "SEPA_PAYIN_COMPLETED", "id": "tx-1", "syncedOwnerId": "owner-1", "credit": "500",
            "timestamp": "2023-08-22T09:05:53.615Z",
            "balanceBefore": {"amount": "1000", "currency": "cents"},
            "balanceAfter": {"amount": "1500", "currency": "cents"}
        });
        for (field, value) in changes.as_object().unwrap() {
            match value {
                Value::Null => body.as_object_mut().unwrap().remove(field),
                v => body.as_object_mut().unwrap().insert(field.clone(), v.clone()),
            };
        }
        StrigaEvent::parse(body.to_string().as_bytes())
    }

    /// A payout of `debit` cents with fee `fee` (cents), from 2000.00 to `after` cents.
    fn payout(debit: u64, fee: Value, after: Value) -> StrigaEvent {
        let mut body = json!({
            "type": "SEPA_PAYOUT_INITIATED", "id": "p-1", "syncedOwnerId": "owner-1", "credit": 0, "debit": debit,
            "timestamp": "2022-08-29T10:09:12.207Z", "nonFpFeeBaseCurrency": 0, "feeEur": fee, "exchangeRate": "1.0832",
            "balanceBefore": {"amount": 200000, "currency": "cents"},
            "balanceAfter": {"amount": after, "currency": "cents"}
        });
        if after.is_null() {
            body.as_object_mut().unwrap().remove("balanceAfter");
        }
        StrigaEvent::parse(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_fee_is_booked_apart_only_where_the_balances_show_it_outside_the_debit() {
        let cases = [
            // (debit, feeEur, balanceAfter, fee row, balance check)
            (100, json!(0), json!(199900), None, BalanceCheck::Consistent),
            (100, json!(null), json!(199900), None, BalanceCheck::Consistent),
            // the fee left beside the debit: booked apart
            (100, json!(25), json!(199875), Some("0.25"), BalanceCheck::Consistent),
            (
                100,
                json!("25"),
                json!("199875"),
                Some("0.25"),
                BalanceCheck::Consistent,
            ),
            // the fee is inside the debit: the debit row says it all
            (125, json!(25), json!(199875), None, BalanceCheck::Consistent),
            // no balance to tell: shown, never guessed into the books
            (100, json!(25), json!(null), None, BalanceCheck::NotReported),
            // explained by neither: a mismatch, no fee row
            (
                100,
                json!(25),
                json!(190000),
                None,
                BalanceCheck::Mismatch {
                    expected: dec("1999.00"),
                    actual: dec("1900.00"),
                },
            ),
        ];
        for (debit, fee, after, want_fee, want_check) in cases {
            let event = payout(debit, fee.clone(), after.clone());
            let what = format!("debit {debit}, fee {fee}, after {after}");
            assert_eq!(event.fee_booking(), want_fee.map(dec), "{what}");
            assert_eq!(event.balance_check(), want_check, "{what}");
            let row = event.fee_transaction();
            assert_eq!(
                row.as_ref().map(|r| r.signed_amount),
                want_fee.map(|f| -dec(f)),
                "{what}"
            );
        }
        let event = payout(100, json!(25), json!(199875));
        assert_eq!(event.fee_ref(), "striga:p-1:SEPA_PAYOUT_INITIATED:fee");
        assert_eq!(event.exchange_rate.as_deref(), Some("1.0832"));
        assert_eq!(event.fee_base_currency.as_deref(), Some("0"));
        let row = event.fee_transaction().unwrap();
        assert_eq!((row.direction, row.taken_at), (Direction::Out, event.timestamp));
        // a fee is cents like every amount: fractions and signs refused
        for bad in [json!(-1), json!(1.5), json!("1e3")] {
            let body = json!({"type": "SEPA_PAYOUT_INITIATED", "id": "p", "syncedOwnerId": "o", "debit": 1,
                "timestamp": "2022-08-29T10:09:12.207Z", "feeEur": bad});
            assert!(matches!(
                StrigaEvent::parse(body.to_string().as_bytes()),
                Err(StrigaError::Amount { field: "feeEur", .. })
            ));
        }
    }

    #[test]
    fn event_types_round_trip() {
        for t in StrigaEventType::ALL {
            assert_eq!(StrigaEventType::parse(t.as_str()), Some(t));
        }
        for text in ["sepa_payin_completed", "SEPA_PAYIN", "", "PING"] {
            assert_eq!(StrigaEventType::parse(text), None, "{text}");
        }
    }

    #[test]
    fn minor_units_table() {
        let ok: &[(Value, &str)] = &[
            (json!("500"), "5.00"),
            (json!(500), "5.00"),
            (json!("0500"), "5.00"),
            (json!(1), "0.01"),
            (json!(1_000_000_000_000_000u64), "10000000000000.00"),
        ];
        for (credit, want) in ok {
            let event = payin(json!({ "credit": credit })).unwrap();
            assert_eq!(event.credit.to_string(), *want, "{credit}");
        }
        for credit in [
            json!(-500),
            json!("-500"),
            json!("+500"),
            json!(" 500"),
            json!(""),
            json!("5.00"),
            json!(1.5),
            json!(500.0),
            json!("1e3"),
            json!(true),
            json!([500]),
            json!({"amount": 500}),
            json!(1_000_000_000_000_001u64),
            json!(u64::MAX),
            json!("99999999999999999999999999"),
        ] {
            let got = payin(json!({ "credit": credit }));
            assert!(
                matches!(&got, Err(StrigaError::Amount { field: "credit", .. })),
                "{credit}: {got:?}"
            );
        }
        // huge JSON numbers and exponents arrive as floats: not integers either
        let body = br#"{"type":"SEPA_PAYIN_COMPLETED","id":"a","syncedOwnerId":"o","credit":1e3,"timestamp":"2023-08-22T09:05:53Z"}"#;
        assert!(matches!(StrigaEvent::parse(body), Err(StrigaError::Amount { .. })));
    }

    #[test]
    fn each_type_moves_money_on_its_side_only() {
        use StrigaEventType::*;
        // (type, credit, debit, accepted)
        let cases = [
            (PayinCompleted, json!("500"), json!(null), true),
            (PayinCompleted, json!("500"), json!(0), true),
            (PayinCompleted, json!(0), json!(null), false),
            (PayinCompleted, json!(null), json!(null), false),
            (PayinCompleted, json!("500"), json!(1), false),
            (PayoutInitiated, json!(null), json!(100), true),
            (PayoutInitiated, json!(0), json!(0), false),
            (PayoutInitiated, json!(1), json!(100), false),
            (PayoutCompleted, json!(0), json!(0), true),
            (PayoutCompleted, json!(null), json!(null), true),
            (PayoutCompleted, json!(0), json!(100), false),
            (PayoutCompleted, json!(5), json!(0), false),
            (PayoutFailed, json!("40120"), json!(null), true),
            (PayoutFailed, json!(0), json!(null), false),
            (PayoutDenied, json!("22"), json!(0), true),
            (PayoutDenied, json!("22"), json!(22), false),
        ];
        for (event_type, credit, debit, accepted) in cases {
            let got = payin(json!({"type": event_type.as_str(), "credit": credit, "debit": debit}));
            match got {
                Ok(_) => assert!(accepted, "{event_type} {credit} {debit}"),
                Err(e) => {
                    assert!(!accepted, "{event_type} {credit} {debit}: {e}");
                    assert!(matches!(e, StrigaError::Inconsistent { .. }), "{e}");
                    assert_eq!(e.reason(), FailureReason::InvalidAmount);
                }
            }
        }
    }

    #[test]
    fn balances_table() {
        let cases: &[(Value, Result<BalanceCheck, &str>)] = &[
            (json!({}), Ok(BalanceCheck::Consistent)),
            (json!({"balanceAfter": {"amount": 1500}}), Ok(BalanceCheck::Consistent)),
            (
                json!({"balanceAfter": {"amount": "1500", "currency": " CENTS "}}),
                Ok(BalanceCheck::Consistent),
            ),
            (
                json!({"balanceAfter": {"amount": "1501", "currency": "cents"}}),
                Ok(BalanceCheck::Mismatch {
                    expected: dec("15.00"),
                    actual: dec("15.01"),
                }),
            ),
            (json!({"balanceAfter": null}), Ok(BalanceCheck::NotReported)),
            (json!({"balanceBefore": null}), Ok(BalanceCheck::NotReported)),
            (
                json!({"balanceAfter": {"amount": "1500", "currency": "EUR"}}),
                Err("balanceAfter.currency"),
            ),
            (
                json!({"balanceAfter": {"amount": "1500", "currency": 2}}),
                Err("balanceAfter.currency"),
            ),
            (
                json!({"balanceAfter": {"currency": "cents"}}),
                Err("balanceAfter must be"),
            ),
            (json!({"balanceAfter": "1500"}), Err("balanceAfter must be")),
            (json!({"balanceAfter": {"amount": null}}), Err("balanceAfter.amount")),
            (json!({"balanceBefore": {"amount": "-1"}}), Err("balanceBefore.amount")),
        ];
        for (changes, want) in cases {
            match (payin(changes.clone()), want) {
                (Ok(event), Ok(check)) => assert_eq!(event.balance_check(), *check, "{changes}"),
                (Err(e), Err(prefix)) => assert!(e.to_string().starts_with(prefix), "{changes}: {e}"),
                (got, _) => panic!("{changes}: {got:?}"),
            }
        }
    }

    #[test]
    fn fields_table() {
        let event = payin(
            json!({"id": " tx-1 ", "accountId": "acc", "memo": " m ", "bankingSenderName": "m",
                                 "bankingTransactionShortId": "s"}),
        )
        .unwrap();
        assert_eq!(event.id, "tx-1");
        assert_eq!(event.account_id.as_deref(), Some("acc"));
        assert_eq!(event.description, "m · s");
        assert_eq!(
            payin(json!({"timestamp": "2023-08-22T11:05:53+02:00"}))
                .unwrap()
                .timestamp,
            payin(json!({})).unwrap().timestamp - chrono::Duration::milliseconds(615)
        );
        let bad: &[(Value, StrigaError)] = &[
            (json!({"id": null}), StrigaError::Missing("id")),
            (json!({"id": "  "}), StrigaError::Missing("id")),
            (json!({"id": 42}), StrigaError::Missing("id")),
            (json!({"id": "x".repeat(129)}), StrigaError::IdTooLong),
            (json!({"type": null}), StrigaError::Missing("type")),
            (
                json!({"type": "SEPA_REFUND"}),
                StrigaError::UnknownType("SEPA_REFUND".into()),
            ),
            (json!({"syncedOwnerId": null}), StrigaError::Missing("syncedOwnerId")),
            (json!({"timestamp": null}), StrigaError::Timestamp("nothing".into())),
            (
                json!({"timestamp": 1692695153}),
                StrigaError::Timestamp("1692695153".into()),
            ),
            (
                json!({"timestamp": "2023-08-22 09:05:53"}),
                StrigaError::Timestamp("\"2023-08-22 09:05:53\"".into()),
            ),
        ];
        for (changes, want) in bad {
            assert_eq!(payin(changes.clone()).unwrap_err(), *want, "{changes}");
        }
        assert!(payin(json!({"id": "x".repeat(128)})).is_ok());
        assert_eq!(
            StrigaError::UnknownType(String::new()).reason(),
            FailureReason::InvalidTransferType
        );
    }

    #[test]
    fn odd_ids_do_not_collide() {
        let key = |id: &str| DedupeKey::for_striga(id, StrigaEventType::PayoutFailed.as_str());
        assert_eq!(
            key("60c12078-456f-460a-8cbe-8657edd9b3e2").as_str(),
            "striga:60c12078-456f-460a-8cbe-8657edd9b3e2:SEPA_PAYOUT_FAILED"
        );
        assert_eq!(key("a:b\0é%").as_str(), "striga:a%3Ab%00%C3%A9%25:SEPA_PAYOUT_FAILED");
        let ids = ["a", "a:SEPA_PAYOUT_FAILED", "a%3A", "a:", "A", "a ", "a%20", "a\u{1f}"];
        let keys: std::collections::HashSet<_> = ids.iter().map(|id| key(id)).collect();
        assert_eq!(keys.len(), ids.len());
        assert!(!key("a").is_eventless());
    }

    /// Every status reachable, and none.
    fn states() -> Vec<Option<PayoutStatus>> {
        let mut states = vec![None];
        for t in StrigaEventType::ALL {
            for s in states.clone() {
                for u in StrigaEventType::ALL {
                    let next = PayoutStatus::apply(PayoutStatus::apply(s, t), u);
                    if !states.contains(&next) {
                        states.push(next);
                    }
                }
            }
        }
        states
    }

    #[test]
    fn payout_status_folds_commute_and_absorb_repeats() {
        let states = states();
        assert_eq!(states.len(), 8, "{states:?}");
        for s in &states {
            for a in StrigaEventType::ALL {
                let once = PayoutStatus::apply(*s, a);
                assert_eq!(PayoutStatus::apply(once, a), once, "{s:?} {a}");
                for b in StrigaEventType::ALL {
                    assert_eq!(
                        PayoutStatus::apply(once, b),
                        PayoutStatus::apply(PayoutStatus::apply(*s, b), a),
                        "{s:?} {a} {b}"
                    );
                }
            }
        }
    }

    fn fold(events: &[StrigaEventType]) -> Option<PayoutStatus> {
        events.iter().fold(None, |s, &t| PayoutStatus::apply(s, t))
    }

    #[test]
    fn payout_status_table() {
        use PayoutOutcome as O;
        use PayoutStatus as S;
        use StrigaEventType::*;
        let cases: &[(&[StrigaEventType], Option<PayoutStatus>)] = &[
            (&[], None),
            (&[PayinCompleted], None),
            (&[PayoutInitiated], Some(S::Initiated)),
            (&[PayoutInitiated, PayoutCompleted], Some(S::Settled)),
            (&[PayoutCompleted], Some(S::AwaitingInitiation(O::Completed))),
            (&[PayoutFailed], Some(S::AwaitingInitiation(O::Failed))),
            (&[PayoutFailed, PayoutInitiated], Some(S::Failed)),
            (&[PayoutDenied, PayoutInitiated], Some(S::Denied)),
            // contradictions: the money that came back wins over a completion
            (&[PayoutInitiated, PayoutFailed, PayoutCompleted], Some(S::Failed)),
            (&[PayoutCompleted, PayoutInitiated, PayoutDenied], Some(S::Denied)),
            (&[PayoutDenied, PayoutFailed], Some(S::AwaitingInitiation(O::Denied))),
            (&[PayoutInitiated, PayinCompleted], Some(S::Initiated)),
        ];
        for (events, want) in cases {
            assert_eq!(fold(events), *want, "{events:?}");
        }
    }

    proptest! {
        #[test]
        fn payout_status_is_independent_of_delivery_order(
            (events, shuffled) in proptest::collection::vec(proptest::sample::select(&StrigaEventType::ALL[..]), 0..10)
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
        ) {
            prop_assert_eq!(fold(&events), fold(&shuffled));
        }
    }
}
