//! Money: decimal magnitudes and a direction that comes only from `transferType`.

use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;

/// Largest magnitude accepted (10^15 VND is far beyond any bank transfer).
const MAX_MAGNITUDE: Decimal = Decimal::from_parts(2_764_472_320, 232_830, 0, false, 0); // 10^15
/// Most decimal places accepted.
const MAX_SCALE: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    /// `transferType` is the only source of direction; the amount's sign is ignored.
    pub fn parse(transfer_type: &str) -> Option<Self> {
        match transfer_type.trim().to_ascii_lowercase().as_str() {
            "in" => Some(Self::In),
            "out" => Some(Self::Out),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
    pub fn is_expense(self) -> bool {
        self == Self::Out
    }
}

/// A positive, non-zero decimal magnitude.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(Decimal);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("transferAmount is missing")]
    Missing,
    #[error("transferAmount is not a number: {0}")]
    NotANumber(String),
    #[error("transferAmount is zero")]
    Zero,
    #[error("transferAmount has more than {MAX_SCALE} decimal places: {0}")]
    TooPrecise(String),
    #[error("transferAmount is out of range: {0}")]
    OutOfRange(String),
}

impl Amount {
    /// Accepts a JSON number or a numeric string; the sign is dropped (direction decides it).
    pub fn from_json(value: Option<&Value>) -> Result<Self, AmountError> {
        let text = match value {
            None | Some(Value::Null) => return Err(AmountError::Missing),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(other) => return Err(AmountError::NotANumber(truncate(&other.to_string()))),
        };
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let plain = !text.is_empty()
            && text
                .trim_start_matches(['-', '+'])
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
            && text.chars().filter(|c| *c == '.').count() <= 1
            && text.chars().any(|c| c.is_ascii_digit());
        let parsed = if plain {
            Decimal::from_str(text)
        } else if text.contains(['e', 'E']) {
            // serde_json renders large floats in exponent form
            Decimal::from_scientific(text)
        } else {
            return Err(AmountError::NotANumber(truncate(text)));
        };
        let value = parsed
            .map_err(|_| AmountError::OutOfRange(truncate(text)))?
            .abs()
            .normalize();
        if value.is_zero() {
            return Err(AmountError::Zero);
        }
        if value.scale() > MAX_SCALE {
            return Err(AmountError::TooPrecise(truncate(text)));
        }
        if value > MAX_MAGNITUDE {
            return Err(AmountError::OutOfRange(truncate(text)));
        }
        Ok(Self(value))
    }

    pub fn magnitude(self) -> Decimal {
        self.0
    }

    /// The booked amount: `in` → +magnitude, `out` → −magnitude.
    pub fn signed(self, direction: Direction) -> Decimal {
        match direction {
            Direction::In => self.0,
            Direction::Out => -self.0,
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn amounts_table() {
        let ok: &[(Value, &str)] = &[
            (json!(2277000), "2277000"),
            (json!(-2277000), "2277000"),
            (json!("2277000"), "2277000"),
            (json!(" 150000 "), "150000"),
            (json!("-150000"), "150000"),
            (json!("+42"), "42"),
            (json!(1500.5), "1500.5"),
            (json!("1500.50"), "1500.5"),
            (json!("0.0001"), "0.0001"),
            (json!(1e15), "1000000000000000"),
        ];
        for (input, want) in ok {
            let got = Amount::from_json(Some(input)).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.magnitude(), dec(want), "input {input}");
        }
        let bad: &[(Option<Value>, AmountError)] = &[
            (None, AmountError::Missing),
            (Some(json!(null)), AmountError::Missing),
            (Some(json!("")), AmountError::NotANumber(String::new())),
            (Some(json!("abc")), AmountError::NotANumber("abc".into())),
            (Some(json!("1,000")), AmountError::NotANumber("1,000".into())),
            (Some(json!("1.2.3")), AmountError::NotANumber("1.2.3".into())),
            (Some(json!("NaN")), AmountError::NotANumber("NaN".into())),
            (Some(json!("-")), AmountError::NotANumber("-".into())),
            (Some(json!(true)), AmountError::NotANumber("true".into())),
            (Some(json!({"v": 1})), AmountError::NotANumber("{\"v\":1}".into())),
            (Some(json!([1])), AmountError::NotANumber("[1]".into())),
            (Some(json!(0)), AmountError::Zero),
            (Some(json!("0.00")), AmountError::Zero),
            (Some(json!("1.00001")), AmountError::TooPrecise("1.00001".into())),
            (
                Some(json!("10000000000000001")),
                AmountError::OutOfRange("10000000000000001".into()),
            ),
            (
                Some(json!("99999999999999999999999999999999999")),
                AmountError::OutOfRange("99999999999999999999999999999999999".into()),
            ),
        ];
        for (input, want) in bad {
            assert_eq!(Amount::from_json(input.as_ref()).unwrap_err(), *want, "input {input:?}");
        }
    }

    #[test]
    fn sign_comes_only_from_direction() {
        for raw in [json!(500), json!(-500), json!("-500"), json!("500")] {
            let amount = Amount::from_json(Some(&raw)).unwrap();
            assert_eq!(amount.signed(Direction::In), dec("500"), "{raw}");
            assert_eq!(amount.signed(Direction::Out), dec("-500"), "{raw}");
        }
    }

    #[test]
    fn directions_table() {
        for (text, want) in [
            ("in", Some(Direction::In)),
            ("IN", Some(Direction::In)),
            (" out ", Some(Direction::Out)),
            ("Out", Some(Direction::Out)),
            ("", None),
            ("credit", None),
            ("inout", None),
        ] {
            assert_eq!(Direction::parse(text), want, "{text:?}");
        }
    }
}
