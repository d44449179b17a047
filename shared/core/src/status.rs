//! Event sources, providers and failure reasons, with their stored spellings (event statuses are
//! in `lifecycle`).

macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Reading a stored spelling (sqlx `try_from = "String"` columns).
        impl TryFrom<String> for $name {
            type Error = $crate::status::UnknownSpelling;
            fn try_from(text: String) -> Result<Self, Self::Error> {
                Self::parse(&text).ok_or($crate::status::UnknownSpelling { kind: stringify!($name), text })
            }
        }
    };
}
pub(crate) use stored_enum;

/// A stored value that names no variant (a row written by a newer release, or by hand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {text:?}")]
pub struct UnknownSpelling {
    pub kind: &'static str,
    pub text: String,
}

stored_enum!(
    /// `provider` of endpoints and events: whose rules authenticate, read and book them.
    Provider {
        Sepay => "sepay",
        Striga => "striga",
    }
);

stored_enum!(
    /// `sepay_webhook_events.source`
    EventSource {
        Webhook => "webhook",
        Reconciliation => "reconciliation",
        Replay => "replay",
    }
);

stored_enum!(
    /// `sepay_webhook_events.failure_reason`: a stable code; the detail goes beside it.
    FailureReason {
        InvalidPayload => "invalid_payload",
        InvalidAmount => "invalid_amount",
        InvalidTransferType => "invalid_transfer_type",
        InvalidTransactionDate => "invalid_transaction_date",
        TransactionDateOutOfRange => "transaction_date_out_of_range",
        MissingAccountNumber => "missing_account_number",
        WalletNotLinked => "wallet_not_linked",
        WalletCurrencyMismatch => "wallet_currency_mismatch",
        ProcessingError => "processing_error",
        UnstorableValue => "unstorable_value",
    }
);

impl FailureReason {
    /// Whether trying the same event again, unchanged, can succeed: a missing link can be
    /// added and a database error can pass; a malformed payload stays malformed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::WalletNotLinked | Self::WalletCurrencyMismatch | Self::ProcessingError
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::EventStatus;

    #[test]
    fn stored_spellings_round_trip() {
        for s in EventStatus::ALL {
            assert_eq!(EventStatus::parse(s.as_str()), Some(*s));
        }
        for s in EventSource::ALL {
            assert_eq!(EventSource::parse(s.as_str()), Some(*s));
        }
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.as_str()), Some(*p));
        }
        for r in FailureReason::ALL {
            assert_eq!(FailureReason::parse(r.as_str()), Some(*r));
        }
        assert_eq!(EventStatus::parse("PROCESSED"), None);
    }

    #[test]
    fn only_fixable_failures_are_retryable() {
        let retryable: Vec<_> = FailureReason::ALL.iter().filter(|r| r.is_retryable()).collect();
        assert_eq!(
            retryable,
            [
                &FailureReason::WalletNotLinked,
                &FailureReason::WalletCurrencyMismatch,
                &FailureReason::ProcessingError
            ]
        );
    }
}
