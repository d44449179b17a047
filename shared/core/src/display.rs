//! How amounts are shown to people: the currency's minor digits (VND none, EUR two), thousands
//! separated by commas, a true minus sign, then the currency code.

use rust_decimal::{Decimal, RoundingStrategy};

/// Digits after the point a currency is shown with (ISO 4217 minor units of the ones we book;
/// two for any other).
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "VND" | "JPY" | "KRW" => 0,
        _ => 2,
    }
}

/// `1234567.5`, `"EUR"` → `1,234,567.50 EUR`; `-2277000`, `"VND"` → `−2,277,000 VND`.
pub fn amount(value: Decimal, currency: &str) -> String {
    let digits = minor_digits(currency);
    let rounded = value.round_dp_with_strategy(digits, RoundingStrategy::MidpointAwayFromZero);
    let text = format!("{:.*}", digits as usize, rounded.abs());
    let (whole, fraction) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(w, f)| (w, Some(f)));
    let grouped = group_digits(whole);
    let sign = if rounded.is_sign_negative() && !rounded.is_zero() {
        "−"
    } else {
        ""
    };
    match fraction {
        Some(f) => format!("{sign}{grouped}.{f} {currency}"),
        None => format!("{sign}{grouped} {currency}"),
    }
}

/// A count with thousands separated: `1234567` → `1,234,567`.
pub fn count(n: i64) -> String {
    let sign = if n < 0 { "−" } else { "" };
    format!("{sign}{}", group_digits(&n.unsigned_abs().to_string()))
}

/// `1234567` → `1,234,567` (digits only).
fn group_digits(digits: &str) -> String {
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn amounts_table() {
        let cases = [
            ("2277000", "VND", "2,277,000 VND"),
            ("-2277000", "VND", "−2,277,000 VND"),
            ("0", "VND", "0 VND"),
            ("999", "VND", "999 VND"),
            ("1000", "VND", "1,000 VND"),
            ("100000.6", "VND", "100,001 VND"),
            ("401.2", "EUR", "401.20 EUR"),
            ("-1", "EUR", "−1.00 EUR"),
            ("1234567.5", "EUR", "1,234,567.50 EUR"),
            ("0.22", "EUR", "0.22 EUR"),
            ("-0.001", "EUR", "0.00 EUR"),
            ("12.345", "USD", "12.35 USD"),
        ];
        for (value, currency, want) in cases {
            assert_eq!(
                amount(Decimal::from_str(value).unwrap(), currency),
                want,
                "{value} {currency}"
            );
        }
    }

    #[test]
    fn counts_table() {
        for (n, want) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (3000, "3,000"),
            (1234567, "1,234,567"),
            (-10000, "−10,000"),
        ] {
            assert_eq!(count(n), want);
        }
    }
}
