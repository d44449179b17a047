//! Money: decimal magnitudes and a direction that comes only from `transferType`.

use rust_decimal::Decimal;
use serde_json::Value;

/// Largest magnitude accepted (10^15 VND is far beyond any bank transfer).
const MAX_MAGNITUDE: Decimal = Decimal::from_parts(2_764_472_320, 232_830, 0, false, 0); // 10^15
/// Most decimal places accepted.
const MAX_SCALE: u32 = 4;
/// Most significant digits a JSON number with a fraction or exponent may have: such numbers
/// arrive as f64, which holds any 15-digit decimal exactly (and prints it back the same), but not
/// every longer one, so a longer one cannot be known to be the amount that was sent.
const MAX_FLOAT_DIGITS: usize = 15;

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
    #[error(
        "transferAmount is a JSON number with more than {MAX_FLOAT_DIGITS} significant digits, which cannot be read exactly (send it as a string): {0}"
    )]
    Inexact(String),
}

impl Amount {
    /// Accepts a JSON number or a numeric string; the sign is dropped (direction decides it).
    pub fn from_json(value: Option<&Value>) -> Result<Self, AmountError> {
        let text = match value {
            None | Some(Value::Null) => return Err(AmountError::Missing),
            // integers are exact (i64/u64); anything else went through f64
            Some(Value::Number(n)) if n.is_f64() => {
                let text = n.to_string();
                if significant_digits(&text) > MAX_FLOAT_DIGITS {
                    return Err(AmountError::Inexact(truncate(&text)));
                }
                text
            }
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(other) => return Err(AmountError::NotANumber(truncate(&other.to_string()))),
        };
        Self::parse(&text)
    }

    /// A plain decimal (`-1500.50`, `+42`, `.5`) or one in exponent form (`1.5e3`, how serde_json
    /// renders some floats). Read from its digits, exactly: nothing is rounded (rust_decimal's own
    /// parser rounds past 28 digits, which would let `1.00000000000000000000000000001` through as 1).
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let not_a_number = || AmountError::NotANumber(truncate(text));
        let out_of_range = || AmountError::OutOfRange(truncate(text));
        let (mantissa, exponent) = match text.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => (mantissa, Some(exponent)),
            None => (text, None),
        };
        let unsigned = mantissa.strip_prefix(['-', '+']).unwrap_or(mantissa);
        let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.len() + frac.len() == 0 || !all_digits(int) || !all_digits(frac) {
            return Err(not_a_number());
        }
        let exponent: i64 = match exponent {
            None => 0,
            Some(e) => {
                let digits = e.strip_prefix(['-', '+']).unwrap_or(e);
                if digits.is_empty() || !all_digits(digits) {
                    return Err(not_a_number());
                }
                e.parse().map_err(|_| out_of_range())?
            }
        };
        // the significant digits, and where the decimal point sits relative to their end
        let digits = format!("{int}{frac}");
        let significant = digits.trim_start_matches('0').trim_end_matches('0');
        if significant.is_empty() {
            return Err(AmountError::Zero);
        }
        let trailing_zeros = digits.len() - digits.trim_end_matches('0').len();
        let places = frac.len() as i128 - exponent as i128 - trailing_zeros as i128;
        let int_digits = significant.len() as i128 - places;
        if places > MAX_SCALE as i128 {
            return Err(AmountError::TooPrecise(truncate(text)));
        }
        if int_digits > 16 {
            return Err(out_of_range());
        }
        // at most 16 integer digits and 4 places: at most 20 digits, exact in an i128
        let significand: i128 = significant.parse().map_err(|_| out_of_range())?;
        let value = if places >= 0 {
            Decimal::from_i128_with_scale(significand, places as u32)
        } else {
            Decimal::from_i128_with_scale(significand * 10i128.pow((-places) as u32), 0)
        };
        if value > MAX_MAGNITUDE {
            return Err(out_of_range());
        }
        Ok(Self(value.normalize()))
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

/// Significant digits of a rendered number (`-0.00120e5` → 2): the mantissa's digits without
/// leading or trailing zeros.
fn significant_digits(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    digits.trim_start_matches('0').trim_end_matches('0').len()
}

/// The currency SePay's bank accounts book: a wallet a SePay account or endpoint books into must
/// hold it.
pub const SEPAY_CURRENCY: &str = "VND";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an ISO 4217 currency code (e.g. VND, EUR)")]
pub struct CurrencyError(pub String);

/// A wallet currency as an admin types it: trimmed, upper-cased, and a code ISO 4217 lists
/// ("eur" is EUR; "euro" and "XYZW" are refused).
pub fn currency_code(input: &str) -> Result<String, CurrencyError> {
    let code = input.trim().to_ascii_uppercase();
    match iso_currency::Currency::from_code(&code) {
        Some(_) => Ok(code),
        None => Err(CurrencyError(input.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::{CurrencyError, currency_code};

    #[test]
    fn wallet_currencies_are_iso_4217_codes() {
        let cases: [(&str, Result<&str, ()>); 8] = [
            ("VND", Ok("VND")),
            ("eur", Ok("EUR")),
            (" usd ", Ok("USD")),
            ("euro", Err(())),
            ("XYZW", Err(())),
            ("XYZ", Err(())),
            ("", Err(())),
            ("€", Err(())),
        ];
        for (input, want) in cases {
            let got = currency_code(input);
            match want {
                Ok(code) => assert_eq!(got.as_deref(), Ok(code), "{input:?}"),
                Err(()) => assert_eq!(got, Err(CurrencyError(input.to_owned())), "{input:?}"),
            }
        }
    }

    use super::*;
    use serde_json::json;
    use std::str::FromStr;

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
    fn json_numbers_are_read_exactly_or_refused() {
        // found by the property tests: with serde_json's default float parser this 17-digit
        // literal read as 448038741931712.94 and was booked as that
        let body =
            br#"{"a": 448038741931713.00, "b": 123456789012.3400, "c": 448038741931712.94, "d": 1234567890123.4567}"#;
        let v: Value = serde_json::from_slice(body).unwrap();
        let amount = |field: &str| Amount::from_json(v.get(field));
        assert_eq!(amount("a").unwrap().magnitude(), dec("448038741931713"));
        assert_eq!(amount("b").unwrap().magnitude(), dec("123456789012.34"));
        // more than 15 significant digits in a JSON number: refused, never rounded into the books
        assert!(matches!(amount("c"), Err(AmountError::Inexact(_))), "{:?}", amount("c"));
        assert!(matches!(amount("d"), Err(AmountError::Inexact(_))), "{:?}", amount("d"));
        // as strings the same values are exact
        assert_eq!(
            Amount::from_json(Some(&json!("448038741931712.94")))
                .unwrap()
                .magnitude(),
            dec("448038741931712.94")
        );
        assert_eq!(
            Amount::from_json(Some(&json!("1234567890123.4567")))
                .unwrap()
                .magnitude(),
            dec("1234567890123.4567")
        );
        // integers are exact at any length (and then the range rule applies)
        assert_eq!(
            Amount::from_json(Some(&json!(999_999_999_999_999u64)))
                .unwrap()
                .magnitude(),
            dec("999999999999999")
        );
        assert_eq!(significant_digits("-0.00120e5"), 2);
        assert_eq!(significant_digits("1000000000000000.0"), 1);
    }

    #[test]
    fn long_fractions_are_refused_not_rounded() {
        // found by the property tests: rust_decimal's parser rounds past 28 digits, so these
        // were accepted as 1000000000 and 1
        for text in [
            "+1000000000.00000000000000000001",
            "1.00000000000000000000000000001",
            "1.00000000000000000000000000001e3",
            "0.000000000000000000000000000001",
        ] {
            assert!(
                matches!(Amount::parse(text), Err(AmountError::TooPrecise(_))),
                "{text}: {:?}",
                Amount::parse(text)
            );
        }
        // trailing zeros are not precision, however many
        assert_eq!(
            Amount::parse("1000.000000000000000000000000000000000")
                .unwrap()
                .magnitude(),
            dec("1000")
        );
        assert_eq!(Amount::parse("0001.5000e3").unwrap().magnitude(), dec("1500"));
        assert_eq!(Amount::parse("1.5E-3").unwrap().magnitude(), dec("0.0015"));
        assert!(matches!(Amount::parse("1.5E-4"), Err(AmountError::TooPrecise(_))));
        for (text, want) in [
            ("1_000", AmountError::NotANumber("1_000".into())),
            ("--5", AmountError::NotANumber("--5".into())),
            ("1e", AmountError::NotANumber("1e".into())),
            ("e3", AmountError::NotANumber("e3".into())),
            (
                "1e99999999999999999999",
                AmountError::OutOfRange("1e99999999999999999999".into()),
            ),
            (
                "1e-99999999999999999999",
                AmountError::OutOfRange("1e-99999999999999999999".into()),
            ),
            ("1e16", AmountError::OutOfRange("1e16".into())),
        ] {
            assert_eq!(Amount::parse(text), Err(want), "{text}");
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
