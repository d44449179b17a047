//! A SePay connection's lifecycle. A token refresh that fails for a passing reason (SePay
//! unreachable, a timeout, a 5xx or 429, an OAuth error other than the two below) leaves the
//! connection **degraded**: still used while its access token lasts, the refresh retried with
//! capped exponential backoff. Only a definitive answer, the standard OAuth 2.0 `invalid_grant`
//! or `invalid_client` (SePay documents no other codes; that they are its only definitive ones
//! is an assumption, written down in docs/provisioner.md), or a second 401 after a forced
//! refresh, makes it **needs_reconnect**: an admin must connect again.

use crate::status::stored_enum;
use std::time::Duration;

stored_enum!(
    /// `sepay_connections.status`
    ConnectionStatus {
        Active => "active",
        Degraded => "degraded",
        NeedsReconnect => "needs_reconnect",
        Revoked => "revoked",
    }
);

impl ConnectionStatus {
    /// Its tokens may be used (a degraded connection's access token is still good until it
    /// expires).
    pub fn is_usable(self) -> bool {
        matches!(self, Self::Active | Self::Degraded)
    }
}

/// The OAuth error codes that end a grant: reconnecting is the only way on.
pub fn is_definitive_oauth_error(code: &str) -> bool {
    matches!(code, "invalid_grant" | "invalid_client")
}

/// The longest wait between refresh attempts of a degraded connection: short enough that the
/// first call after SePay's token endpoint is back succeeds well within a minute (measured with
/// a 2-minute outage: docs/provisioner.md), long enough to stay far below SePay's rate limit.
pub const REFRESH_BACKOFF_CAP: Duration = Duration::from_secs(30);

/// The wait before refresh attempt number `failures + 1`: a second, doubling, at most
/// [`REFRESH_BACKOFF_CAP`]; `jitter` (0 to 1) spreads replicas and workspaces apart by up to a
/// fifth, never past the cap.
pub fn refresh_retry_after(failures: u32, jitter: f64) -> Duration {
    let base = Duration::from_secs(1u64 << failures.saturating_sub(1).min(6));
    let spread = base.mul_f64(1.0 + 0.2 * jitter.clamp(0.0, 1.0));
    spread.min(REFRESH_BACKOFF_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_back_off_to_the_cap() {
        let waits: Vec<u64> = (1..=9).map(|f| refresh_retry_after(f, 0.0).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30, 30]);
        for failures in 1..=12 {
            let jittered = refresh_retry_after(failures, 1.0);
            assert!(jittered >= refresh_retry_after(failures, 0.0) && jittered <= REFRESH_BACKOFF_CAP);
        }
    }

    #[test]
    fn only_a_refused_grant_or_client_is_definitive() {
        let cases = [
            ("invalid_grant", true),
            ("invalid_client", true),
            ("invalid_request", false),
            ("temporarily_unavailable", false),
            ("server_error", false),
            ("", false),
        ];
        for (code, definitive) in cases {
            assert_eq!(is_definitive_oauth_error(code), definitive, "{code}");
        }
    }

    #[test]
    fn usable_states_and_spellings() {
        let usable: Vec<_> = ConnectionStatus::ALL.iter().filter(|s| s.is_usable()).collect();
        assert_eq!(usable, [&ConnectionStatus::Active, &ConnectionStatus::Degraded]);
        for s in ConnectionStatus::ALL {
            assert_eq!(ConnectionStatus::parse(s.as_str()), Some(*s));
        }
    }
}
