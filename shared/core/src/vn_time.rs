//! SePay's `transactionDate` is Vietnam local time (UTC+7, no daylight saving).

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};

const VIETNAM_OFFSET_SECS: i32 = 7 * 3600;
const FORMATS: [&str; 2] = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"];

pub fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(VIETNAM_OFFSET_SECS).expect("UTC+7 is a valid offset")
}

/// Parses "YYYY-MM-DD HH:mm:ss" as Vietnam time.
pub fn parse_vietnam_local(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let naive = FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())?;
    vietnam()
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// Formats an instant the way SePay writes dates ("YYYY-MM-DD HH:mm:ss", Vietnam time).
pub fn format_vietnam_local(at: DateTime<Utc>) -> String {
    at.with_timezone(&vietnam()).format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("2023-03-25 14:02:37", Some("2023-03-25T07:02:37Z")),
            ("2023-03-25T14:02:37", Some("2023-03-25T07:02:37Z")),
            (" 2024-01-01 00:00:00 ", Some("2023-12-31T17:00:00Z")),
            ("2024-02-29 06:59:59", Some("2024-02-28T23:59:59Z")),
            ("2023-02-29 10:00:00", None),
            ("2023-03-25", None),
            ("25/03/2023 14:02:37", None),
            ("2023-03-25 24:00:00", None),
            ("", None),
            ("not a date", None),
        ];
        for (input, want) in cases {
            let got = parse_vietnam_local(input).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            assert_eq!(got.as_deref(), *want, "input {input:?}");
        }
    }

    #[test]
    fn format_round_trips() {
        let t = parse_vietnam_local("2023-03-25 14:02:37").unwrap();
        assert_eq!(format_vietnam_local(t), "2023-03-25 14:02:37");
    }
}
