//! Pure rules of account sync and reconciliation.

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// The wallet created for a newly synced account: bank short name and the last 4 digits.
pub fn wallet_name(bank_short_name: Option<&str>, account_number: &str) -> String {
    let digits: String = account_number.chars().filter(char::is_ascii_alphanumeric).collect();
    let tail: String = digits.chars().skip(digits.chars().count().saturating_sub(4)).collect();
    match bank_short_name.map(str::trim).filter(|s| !s.is_empty()) {
        Some(bank) => format!("{bank} {tail}"),
        None => format!("SePay {tail}"),
    }
}

/// A reconciliation window: instants, `from` inclusive, `to` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    /// SePay's OAuth transaction filter takes Vietnam days: the days this window touches.
    pub fn vietnam_days(&self) -> (NaiveDate, NaiveDate) {
        let vn = crate::vn_time::vietnam();
        (
            self.from.with_timezone(&vn).date_naive(),
            self.to.with_timezone(&vn).date_naive(),
        )
    }

    /// Halves a window that hit the row limit; `None` when it is one Vietnam day already (the
    /// smallest window the API can ask for).
    pub fn split(&self) -> Option<(Window, Window)> {
        let (first, last) = self.vietnam_days();
        if first >= last {
            return None;
        }
        let span = (last - first).num_days();
        let mid_day = first + Duration::days((span - 1) / 2);
        let vn = crate::vn_time::vietnam();
        let mid_end = mid_day
            .and_hms_opt(23, 59, 59)?
            .and_local_timezone(vn)
            .single()?
            .with_timezone(&Utc);
        let next_start = mid_end + Duration::seconds(1);
        Some((
            Window {
                from: self.from,
                to: mid_end,
            },
            Window {
                from: next_start,
                to: self.to,
            },
        ))
    }

    /// The smallest window holding all of `windows`; `None` when there are none.
    pub fn covering(windows: &[Window]) -> Option<Window> {
        let from = windows.iter().map(|w| w.from).min()?;
        let to = windows.iter().map(|w| w.to).max()?;
        Some(Window { from, to })
    }

    /// Whether a transaction dated `at` belongs to this window.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at <= self.to
    }
}

/// The window of a scheduled reconciliation: at least the configured look-back, and back to the
/// end of the last successful scheduled run (less an hour, for transactions SePay registers late)
/// when that is earlier, so an outage longer than the look-back is still covered.
pub fn scheduled_window(now: DateTime<Utc>, look_back: Duration, reconciled_through: Option<DateTime<Utc>>) -> Window {
    let fixed = now - look_back;
    let from = match reconciled_through {
        Some(through) => fixed.min(through - Duration::hours(1)),
        None => fixed,
    };
    Window { from, to: now }
}

/// The wait before the next scheduled reconciliation of a connection whose last `failures` runs
/// failed: a minute, doubling, at most an hour.
pub fn reconcile_retry_after(failures: i32) -> std::time::Duration {
    let minutes = 1u64 << failures.saturating_sub(1).clamp(0, 6);
    std::time::Duration::from_secs(60 * minutes.min(60))
}

/// A provisioned webhook as SePay lists it, reduced to what decides its health.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWebhook {
    pub active: bool,
    /// Its URL still carries the endpoint's token (compared by hash).
    pub url_is_ours: bool,
    pub event_type: Option<String>,
    pub authen_type: Option<String>,
    pub only_va: bool,
    pub skip_if_no_code: bool,
}

/// What a provisioned webhook needs, as found at SePay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookHealth {
    Healthy,
    /// Deleted (in the dashboard, by another client): provision a new one.
    Missing,
    /// Disabled: enable it again.
    Disabled,
    /// Changed in a way that filters or misroutes deliveries: the fields named.
    Drifted(Vec<&'static str>),
}

/// Every transaction goes to its webhook, as provisioned: any event type, API-key
/// authentication, no virtual-account or payment-code filter, our URL.
pub fn webhook_health(remote: Option<&RemoteWebhook>) -> WebhookHealth {
    let Some(r) = remote else { return WebhookHealth::Missing };
    if !r.active {
        return WebhookHealth::Disabled;
    }
    let mut drifted = Vec::new();
    if !r.url_is_ours {
        drifted.push("webhook_url");
    }
    if r.event_type.as_deref().is_some_and(|t| t != "All") {
        drifted.push("event_type");
    }
    if r.authen_type.as_deref().is_some_and(|t| t != "Api_Key") {
        drifted.push("authen_type");
    }
    if r.only_va {
        drifted.push("only_va");
    }
    if r.skip_if_no_code {
        drifted.push("skip_if_no_code");
    }
    match drifted.is_empty() {
        true => WebhookHealth::Healthy,
        false => WebhookHealth::Drifted(drifted),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn webhook_health_table() {
        let ok = RemoteWebhook {
            active: true,
            url_is_ours: true,
            event_type: Some("All".into()),
            authen_type: Some("Api_Key".into()),
            only_va: false,
            skip_if_no_code: false,
        };
        let cases = [
            (None, WebhookHealth::Missing),
            (Some(ok.clone()), WebhookHealth::Healthy),
            (
                Some(RemoteWebhook {
                    active: false,
                    ..ok.clone()
                }),
                WebhookHealth::Disabled,
            ),
            (
                Some(RemoteWebhook {
                    event_type: Some("In_only".into()),
                    ..ok.clone()
                }),
                WebhookHealth::Drifted(vec!["event_type"]),
            ),
            (
                Some(RemoteWebhook {
                    url_is_ours: false,
                    skip_if_no_code: true,
                    ..ok.clone()
                }),
                WebhookHealth::Drifted(vec!["webhook_url", "skip_if_no_code"]),
            ),
            (
                Some(RemoteWebhook {
                    authen_type: Some("No_Authen".into()),
                    only_va: true,
                    ..ok.clone()
                }),
                WebhookHealth::Drifted(vec!["authen_type", "only_va"]),
            ),
            // fields SePay does not list are not drift
            (
                Some(RemoteWebhook {
                    event_type: None,
                    authen_type: None,
                    ..ok
                }),
                WebhookHealth::Healthy,
            ),
        ];
        for (remote, want) in cases {
            assert_eq!(webhook_health(remote.as_ref()), want, "{remote:?}");
        }
    }

    #[test]
    fn scheduled_windows_reach_back_to_the_last_success() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").unwrap().to_utc();
        let day = Duration::hours(24);
        let cases = [
            (None, now - day),
            // a recent success: the fixed look-back still applies
            (Some(now - Duration::hours(2)), now - day),
            // down for three days: everything since the last success, and an hour before it
            (Some(now - Duration::hours(72)), now - Duration::hours(73)),
        ];
        for (through, from) in cases {
            assert_eq!(
                scheduled_window(now, day, through),
                Window { from, to: now },
                "{through:?}"
            );
        }
    }

    #[test]
    fn failing_reconciliations_back_off() {
        let waits: Vec<u64> = (1..=9).map(|f| reconcile_retry_after(f).as_secs() / 60).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    use super::*;

    #[test]
    fn wallet_names_table() {
        for (bank, number, want) in [
            (Some("Vietcombank"), "0071000888888", "Vietcombank 8888"),
            (Some(" MBBank "), "12", "MBBank 12"),
            (None, "0071-000-8899", "SePay 8899"),
            (Some(""), "99991234", "SePay 1234"),
        ] {
            assert_eq!(wallet_name(bank, number), want);
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_covering_window_spans_every_window() {
        let w = |from: &str, to: &str| Window {
            from: at(from),
            to: at(to),
        };
        let cases = [
            (vec![], None),
            (
                vec![w("2026-03-01T01:00:00Z", "2026-03-01T02:00:00Z")],
                Some(w("2026-03-01T01:00:00Z", "2026-03-01T02:00:00Z")),
            ),
            // apart and out of order: from the earliest start to the latest end
            (
                vec![
                    w("2026-03-01T05:00:00Z", "2026-03-01T06:00:00Z"),
                    w("2026-03-01T01:00:00Z", "2026-03-01T02:00:00Z"),
                ],
                Some(w("2026-03-01T01:00:00Z", "2026-03-01T06:00:00Z")),
            ),
            // one inside another
            (
                vec![
                    w("2026-03-01T01:00:00Z", "2026-03-01T09:00:00Z"),
                    w("2026-03-01T03:00:00Z", "2026-03-01T04:00:00Z"),
                ],
                Some(w("2026-03-01T01:00:00Z", "2026-03-01T09:00:00Z")),
            ),
        ];
        for (windows, want) in cases {
            assert_eq!(Window::covering(&windows), want, "{windows:?}");
        }
    }

    #[test]
    fn windows_split_on_vietnam_days_until_one_day() {
        // 2026-03-01 00:00 to 2026-03-04 23:59:59 Vietnam time
        let w = Window {
            from: at("2026-02-28T17:00:00Z"),
            to: at("2026-03-04T16:59:59Z"),
        };
        let (a, b) = w.split().unwrap();
        assert_eq!(
            a,
            Window {
                from: w.from,
                to: at("2026-03-02T16:59:59Z")
            }
        );
        assert_eq!(
            b,
            Window {
                from: at("2026-03-02T17:00:00Z"),
                to: w.to
            }
        );
        // halves cover the window with no gap and no overlap
        assert_eq!(a.to + Duration::seconds(1), b.from);
        let (a1, a2) = a.split().unwrap();
        assert_eq!(a1.vietnam_days().0, a1.vietnam_days().1);
        assert_eq!(a2.vietnam_days().0, a2.vietnam_days().1);
        assert!(a1.split().is_none(), "one Vietnam day cannot be split");
        assert!(w.contains(at("2026-03-01T00:00:00Z")) && !w.contains(at("2026-03-04T17:00:00Z")));
    }
}
