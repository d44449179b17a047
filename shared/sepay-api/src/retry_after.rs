//! How long a 429 asks us to wait: `x-sepay-userapi-retry-after: <seconds>` (API v1) or
//! `Retry-After: <seconds | HTTP date>` (API v2), capped.

use http::HeaderMap;
use std::time::{Duration, SystemTime};

/// The wait a 429 asks for, never more than `cap`; one second when no header says.
pub fn wait(headers: &HeaderMap, now: SystemTime, cap: Duration) -> Duration {
    let asked = header(headers, "x-sepay-userapi-retry-after")
        .and_then(parse_seconds)
        .or_else(|| header(headers, "retry-after").and_then(|v| parse_seconds(v).or_else(|| parse_date(v, now))))
        .unwrap_or(Duration::from_secs(1));
    asked.min(cap)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

fn parse_seconds(v: &str) -> Option<Duration> {
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

fn parse_date(v: &str, now: SystemTime) -> Option<Duration> {
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_table() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let cap = Duration::from_secs(10);
        let cases: &[(&[(&str, &str)], u64)] = &[
            (&[("x-sepay-userapi-retry-after", "2")], 2000),
            (&[("retry-after", "3")], 3000),
            (&[("retry-after", "0.5")], 500),
            (&[("retry-after", "Sun, 06 Nov 1994 08:49:41 GMT")], 4000),
            (&[("retry-after", "Sun, 06 Nov 1994 08:49:00 GMT")], 0),
            (&[("retry-after", "3600")], 10_000),
            (&[("x-sepay-userapi-retry-after", "1"), ("retry-after", "5")], 1000),
            (&[("retry-after", "soon")], 1000),
            (&[("x-sepay-userapi-retry-after", "-4")], 1000),
            (&[], 1000),
        ];
        for (headers, want_ms) in cases {
            let mut map = HeaderMap::new();
            for (k, v) in *headers {
                map.insert(*k, v.parse().unwrap());
            }
            assert_eq!(wait(&map, now, cap).as_millis() as u64, *want_ms, "{headers:?}");
        }
    }
}
