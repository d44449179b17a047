//! The pure domain core: everything that decides, nothing that does IO.
//!
//! Parse, don't validate: the IO edges turn raw input into these types once, at the boundary,
//! and everything inside takes the types.

pub mod auth;
pub mod balance;
pub mod classify;
pub mod connection;
pub mod dedupe;
pub mod display;
pub mod lifecycle;
pub mod model_reply;
pub mod money;
pub mod payload;
pub mod provisioning;
pub mod status;
pub mod striga;
pub mod vn_time;

pub use dedupe::DedupeKey;
pub use lifecycle::{EventStatus, RepeatDecision, RetryPolicy};
pub use money::{Amount, AmountError, CurrencyError, Direction, SEPAY_CURRENCY, currency_code};
pub use payload::{Delivery, NormalizedTransaction, PayloadError, PayloadObject};
pub use status::{EventSource, FailureReason, Provider};
pub use striga::{BalanceCheck, PayoutStatus, StrigaEffect, StrigaError, StrigaEvent, StrigaEventType};
