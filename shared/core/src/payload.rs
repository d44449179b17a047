//! SePay webhook deliveries: from raw bytes to a normalized transaction.

use crate::money::{Amount, AmountError, Direction};
use crate::status::FailureReason;
use crate::vn_time::parse_vietnam_local;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// What arrived in a request body, before anything is decided about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// A JSON object: stored as `payload jsonb` and processed.
    Object(PayloadObject),
    /// Anything else: kept as `raw_body` and failed as `invalid_payload`. Verbatim, except what
    /// Postgres text cannot hold: invalid UTF-8 and U+0000 become U+FFFD.
    NotAnObject { raw: String },
}

impl Delivery {
    pub fn parse(body: &[u8]) -> Self {
        match serde_json::from_slice::<Value>(body) {
            // Postgres refuses U+0000 (`\u0000`) in jsonb: such an object could never be stored
            Ok(Value::Object(map)) if !map_holds_nul(&map) => Self::Object(PayloadObject(map)),
            _ => Self::NotAnObject { raw: raw_text(body) },
        }
    }

    /// An already parsed body (a stored `payload`, a built one): what `parse` makes of its JSON
    /// text, without writing and reading it again.
    pub fn from_value(value: Value) -> Self {
        match value {
            Value::Object(map) if !map_holds_nul(&map) => Self::Object(PayloadObject(map)),
            other => Self::NotAnObject {
                raw: raw_text(other.to_string().as_bytes()),
            },
        }
    }
}

/// The body as Postgres text can store it.
fn raw_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).replace('\0', "\u{FFFD}")
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map_holds_nul(map),
        _ => false,
    }
}

fn map_holds_nul(map: &Map<String, Value>) -> bool {
    map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v))
}

/// A delivery body that is a JSON object (a SePay transaction or a Striga event); fields are read
/// leniently and checked on normalize.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PayloadObject(pub Map<String, Value>);

impl PayloadObject {
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }

    /// A text field, trimmed; numbers are rendered (banks send account numbers either way).
    pub fn text(&self, field: &str) -> Option<String> {
        match self.0.get(field)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// SePay's transaction id, when it is a positive integer (number or numeric string).
    pub fn sepay_id(&self) -> Option<i64> {
        let id = match self.0.get("id")? {
            Value::Number(n) => n.as_i64()?,
            Value::String(s) => s.trim().parse::<i64>().ok()?,
            _ => return None,
        };
        (id > 0).then_some(id)
    }

    /// Checks every field booking needs and builds the normalized transaction.
    pub fn normalize(&self) -> Result<NormalizedTransaction, PayloadError> {
        let transfer_type = self.text("transferType").unwrap_or_default();
        let direction =
            Direction::parse(&transfer_type).ok_or_else(|| PayloadError::TransferType(truncate(&transfer_type)))?;
        let amount = Amount::from_json(self.0.get("transferAmount"))?;
        let date_text = self.text("transactionDate").unwrap_or_default();
        let taken_at =
            parse_vietnam_local(&date_text).ok_or_else(|| PayloadError::TransactionDate(truncate(&date_text)))?;
        let account_number = self.text("accountNumber").ok_or(PayloadError::MissingAccountNumber)?;
        let description = self
            .text("content")
            .or_else(|| self.text("description"))
            .unwrap_or_default();
        Ok(NormalizedTransaction {
            sepay_id: self.sepay_id(),
            direction,
            amount,
            signed_amount: amount.signed(direction),
            taken_at,
            account_number,
            sub_account: self.text("subAccount"),
            description,
            reference_code: self.text("referenceCode"),
            gateway: self.text("gateway"),
            accumulated: crate::balance::accumulated_of(self.0.get("accumulated")),
        })
    }
}

/// A SePay transaction ready to book.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedTransaction {
    pub sepay_id: Option<i64>,
    pub direction: Direction,
    pub amount: Amount,
    /// `in` → +amount, `out` → −amount.
    pub signed_amount: Decimal,
    pub taken_at: DateTime<Utc>,
    pub account_number: String,
    pub sub_account: Option<String>,
    pub description: String,
    pub reference_code: Option<String>,
    pub gateway: Option<String>,
    /// The account's balance after this transaction, as SePay reported it (running-balance
    /// continuity, `balance.rs`).
    pub accumulated: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("transferType must be \"in\" or \"out\", got {0:?}")]
    TransferType(String),
    #[error(transparent)]
    Amount(#[from] AmountError),
    #[error("transactionDate must be \"YYYY-MM-DD HH:mm:ss\" (Vietnam time), got {0:?}")]
    TransactionDate(String),
    #[error("accountNumber is missing")]
    MissingAccountNumber,
    #[error("transactionDate {0} is outside 2000-01-01 .. a day from now")]
    TransactionDateOutOfRange(DateTime<Utc>),
}

impl PayloadError {
    pub fn reason(&self) -> FailureReason {
        match self {
            Self::TransferType(_) => FailureReason::InvalidTransferType,
            Self::Amount(_) => FailureReason::InvalidAmount,
            Self::TransactionDate(_) => FailureReason::InvalidTransactionDate,
            Self::MissingAccountNumber => FailureReason::MissingAccountNumber,
            Self::TransactionDateOutOfRange(_) => FailureReason::TransactionDateOutOfRange,
        }
    }
}

impl NormalizedTransaction {
    /// A date no bank transaction can have: before 2000, or more than a day ahead of `now`
    /// (time zones and clock skew stay well inside a day). Retrying cannot fix it.
    pub fn check_date(&self, now: DateTime<Utc>) -> Result<(), PayloadError> {
        let earliest = DateTime::parse_from_rfc3339("2000-01-01T00:00:00+07:00").map(|d| d.to_utc());
        let out_of_range =
            earliest.is_ok_and(|earliest| self.taken_at < earliest) || self.taken_at > now + chrono::Duration::days(1);
        match out_of_range {
            true => Err(PayloadError::TransactionDateOutOfRange(self.taken_at)),
            false => Ok(()),
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_no_bank_transaction_can_have_are_refused() {
        use super::*;
        let now = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap().to_utc();
        let cases = [
            ("1999-12-31 23:59:59", false),
            ("2000-01-01 00:00:00", true),
            ("2026-12-01 17:00:00", true),
            ("2026-12-02 16:59:59", true),
            ("2026-12-02 17:00:01", false),
            ("2031-01-01 00:00:00", false),
        ];
        for (date, ok) in cases {
            let mut object = Map::new();
            object.insert("transferType".into(), Value::from("in"));
            object.insert("transferAmount".into(), Value::from(1000));
            object.insert("accountNumber".into(), Value::from("1"));
            object.insert("transactionDate".into(), Value::from(date));
            let tx = PayloadObject(object).normalize().unwrap();
            let checked = tx.check_date(now);
            assert_eq!(checked.is_ok(), ok, "{date}: {checked:?}");
            if let Err(err) = checked {
                assert_eq!(err.reason(), FailureReason::TransactionDateOutOfRange);
                assert!(!err.reason().is_retryable());
            }
        }
    }

    #[test]
    fn what_postgres_cannot_hold_is_kept_as_raw_text() {
        for body in [
            r#"{"id": 1, "content": "a\u0000b"}"#,
            r#"{"id": 1, "a\u0000": 1}"#,
            r#"{"id": 1, "nested": [{"x": ["\u0000"]}]}"#,
        ] {
            match Delivery::parse(body.as_bytes()) {
                Delivery::NotAnObject { raw } => assert_eq!(raw, body, "JSON escapes are text: kept verbatim"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert_eq!(
            Delivery::parse(b"a\0b\xff"),
            Delivery::NotAnObject {
                raw: "a\u{FFFD}b\u{FFFD}".into()
            }
        );
        assert!(matches!(
            Delivery::parse(br#"{"id": 1, "content": "a\u0001b"}"#),
            Delivery::Object(_)
        ));
    }

    use super::*;
    use serde_json::json;
    use std::str::FromStr;

    fn sample() -> Value {
        json!({
            "id": 92704,
            "gateway": "Vietcombank",
            "transactionDate": "2023-03-25 14:02:37",
            "accountNumber": "0123499999",
            "code": null,
            "content": "payment content",
            "transferType": "in",
            "transferAmount": 2277000,
            "accumulated": 19077000,
            "subAccount": null,
            "referenceCode": "MBVCB.3278907687",
            "description": ""
        })
    }

    fn with(field: &str, value: Value) -> PayloadObject {
        let mut v = sample();
        v[field] = value;
        match Delivery::from_value(v) {
            Delivery::Object(p) => p,
            other => panic!("{other:?}"),
        }
    }

    fn without(field: &str) -> PayloadObject {
        let mut p = with("id", json!(92704));
        p.0.remove(field);
        p
    }

    #[test]
    fn from_value_is_parse_of_the_text() {
        for value in [
            sample(),
            json!({}),
            json!({"id": 1, "content": "a\0b"}),
            json!({"id": 1, "nested": [{"x": ["\0"]}]}),
            json!({"transferAmount": 0.1, "big": 448038741931713.0}),
            json!([1, 2]),
            json!("str"),
            json!(42),
            json!(null),
        ] {
            let text = value.to_string();
            assert_eq!(Delivery::from_value(value), Delivery::parse(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn bodies_that_are_not_objects_are_kept_raw() {
        for body in [
            &b"not json"[..],
            b"[1,2]",
            b"\"str\"",
            b"42",
            b"null",
            b"",
            b"{",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(Delivery::parse(body), Delivery::NotAnObject { .. }),
                "{body:?}"
            );
        }
        assert!(matches!(Delivery::parse(b"{}"), Delivery::Object(_)));
    }

    #[test]
    fn normalizes_the_seed_sample() {
        let t = with("id", json!(92704)).normalize().unwrap();
        assert_eq!(t.sepay_id, Some(92704));
        assert_eq!(t.direction, Direction::In);
        assert_eq!(t.signed_amount, Decimal::from(2_277_000));
        assert_eq!(t.taken_at.to_rfc3339(), "2023-03-25T07:02:37+00:00");
        assert_eq!(t.account_number, "0123499999");
        assert_eq!(t.sub_account, None);
        assert_eq!(t.description, "payment content");
        assert_eq!(t.reference_code.as_deref(), Some("MBVCB.3278907687"));
    }

    #[test]
    fn normalize_table() {
        let cases: Vec<(PayloadObject, Result<&str, FailureReason>)> = vec![
            (with("transferType", json!("out")), Ok("-2277000")),
            (with("transferAmount", json!(-2277000)), Ok("2277000")),
            (with("transferAmount", json!("150000.50")), Ok("150000.5")),
            (with("transferAmount", json!("abc")), Err(FailureReason::InvalidAmount)),
            (with("transferAmount", json!(null)), Err(FailureReason::InvalidAmount)),
            (without("transferAmount"), Err(FailureReason::InvalidAmount)),
            (
                with("transferType", json!("sideways")),
                Err(FailureReason::InvalidTransferType),
            ),
            (without("transferType"), Err(FailureReason::InvalidTransferType)),
            (
                with("transactionDate", json!("25/03/2023")),
                Err(FailureReason::InvalidTransactionDate),
            ),
            (
                with("transactionDate", json!(12345)),
                Err(FailureReason::InvalidTransactionDate),
            ),
            (
                with("accountNumber", json!("  ")),
                Err(FailureReason::MissingAccountNumber),
            ),
            (with("accountNumber", json!(123499999)), Ok("2277000")),
        ];
        for (payload, want) in cases {
            let got = payload.normalize();
            match want {
                Ok(amount) => assert_eq!(
                    got.as_ref().map(|t| t.signed_amount).ok(),
                    Some(Decimal::from_str(amount).unwrap()),
                    "{payload:?}"
                ),
                Err(reason) => assert_eq!(got.map_err(|e| e.reason()).err(), Some(reason), "{payload:?}"),
            }
        }
    }

    #[test]
    fn sepay_id_table() {
        for (id, want) in [
            (json!(92704), Some(92704)),
            (json!("92704"), Some(92704)),
            (json!(0), None),
            (json!(-1), None),
            (json!(1.5), None),
            (json!("abc"), None),
            (json!(null), None),
        ] {
            assert_eq!(with("id", id.clone()).sepay_id(), want, "{id}");
        }
        assert_eq!(without("id").sepay_id(), None);
    }

    #[test]
    fn description_falls_back_to_the_description_field() {
        let mut p = with("content", json!(null));
        p.0.insert("description".into(), json!("BankAPINotify"));
        assert_eq!(p.normalize().unwrap().description, "BankAPINotify");
    }
}
