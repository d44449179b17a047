//! The SePay API client every service shares: OAuth2 (code exchange, refresh, revoke), bank
//! accounts, webhooks and transactions, with SePay's 429 rules (honour
//! `x-sepay-userapi-retry-after` or `Retry-After`, capped, bounded) and a client-side
//! 3 requests/second limit; plus the token lifecycle (sealed at rest, refreshed under a row lock).

mod client;
mod error;
mod oauth;
pub mod retry_after;
mod types;

pub use client::SepayClient;
pub use error::{ApiError, ApiResult};
pub use oauth::{AuthorizeRequest, TokenSet};
pub use types::{BankAccount, NewWebhook, Transaction, TransactionQuery, Webhook};

/// `SEPAY_BASE_URL`: SePay itself.
pub const DEFAULT_SEPAY_BASE_URL: &str = "https://my.sepay.vn";
/// `SEPAY_CLIENT_ID`: none registered (connecting answers 503 until one is).
pub const DEFAULT_SEPAY_CLIENT_ID: &str = "";
/// `SEPAY_CLIENT_SECRET`: none registered.
pub const DEFAULT_SEPAY_CLIENT_SECRET: &str = "";
/// `SEPAY_SCOPES`: the scopes the integration asks for.
pub const DEFAULT_SEPAY_SCOPES: &str = "bank-account:read transaction:read webhook:read webhook:write webhook:delete";
/// `SEPAY_MAX_RETRY_WAIT_SECS`
pub const DEFAULT_SEPAY_MAX_RETRY_WAIT_SECS: u64 = 10;
/// `SEPAY_MAX_RETRIES`
pub const DEFAULT_SEPAY_MAX_RETRIES: u32 = 3;
/// `SEPAY_REQUESTS_PER_SEC`: SePay allows 3 requests a second.
pub const DEFAULT_SEPAY_REQUESTS_PER_SEC: u32 = 3;

#[derive(Debug, Clone, clap::Args)]
pub struct SepayConfig {
    /// SePay (or sepay-sim) base URL; OAuth under /oauth, the API under /api/v1.
    #[arg(long, env = "SEPAY_BASE_URL", default_value = DEFAULT_SEPAY_BASE_URL)]
    pub sepay_base_url: String,
    /// OAuth client id registered with SePay.
    #[arg(long, env = "SEPAY_CLIENT_ID", default_value = DEFAULT_SEPAY_CLIENT_ID)]
    pub sepay_client_id: String,
    /// OAuth client secret (never logged).
    #[arg(long, env = "SEPAY_CLIENT_SECRET", default_value = DEFAULT_SEPAY_CLIENT_SECRET, hide_env_values = true)]
    pub sepay_client_secret: String,
    /// Space-separated scopes requested at connect.
    #[arg(long, env = "SEPAY_SCOPES", default_value = DEFAULT_SEPAY_SCOPES)]
    pub sepay_scopes: String,
    /// Token sealing keys `kid:base64(32 bytes)[,…]`, first seals; required outside development
    /// mode.
    #[arg(long, env = "SEPAY_TOKEN_KEYS", hide_env_values = true)]
    pub sepay_token_keys: Option<String>,
    /// Development mode (`SEPAY_DEV_MODE`, set by the binary; `up` turns it on): unset secrets
    /// fall back to public development values instead of stopping the start.
    #[arg(skip)]
    pub dev_mode: bool,
    /// Longest wait honoured from a 429's retry header.
    #[arg(long, env = "SEPAY_MAX_RETRY_WAIT_SECS", default_value_t = DEFAULT_SEPAY_MAX_RETRY_WAIT_SECS)]
    pub sepay_max_retry_wait_secs: u64,
    /// Retries of one call after 429 or 5xx.
    #[arg(long, env = "SEPAY_MAX_RETRIES", default_value_t = DEFAULT_SEPAY_MAX_RETRIES)]
    pub sepay_max_retries: u32,
    /// Client-side request rate per access token (SePay allows 3/s).
    #[arg(long, env = "SEPAY_REQUESTS_PER_SEC", default_value_t = DEFAULT_SEPAY_REQUESTS_PER_SEC)]
    pub sepay_requests_per_sec: u32,
}

/// The development configuration (tests, `up`): development mode on.
impl Default for SepayConfig {
    fn default() -> Self {
        Self {
            sepay_base_url: DEFAULT_SEPAY_BASE_URL.into(),
            sepay_client_id: DEFAULT_SEPAY_CLIENT_ID.into(),
            sepay_client_secret: DEFAULT_SEPAY_CLIENT_SECRET.into(),
            sepay_scopes: DEFAULT_SEPAY_SCOPES.into(),
            sepay_token_keys: None,
            dev_mode: true,
            sepay_max_retry_wait_secs: DEFAULT_SEPAY_MAX_RETRY_WAIT_SECS,
            sepay_max_retries: DEFAULT_SEPAY_MAX_RETRIES,
            sepay_requests_per_sec: DEFAULT_SEPAY_REQUESTS_PER_SEC,
        }
    }
}

impl SepayConfig {
    pub fn keyring(&self) -> Result<sepay_crypto::seal::Keyring, sepay_crypto::seal::SealError> {
        sepay_crypto::seal::Keyring::configured(self.sepay_token_keys.as_deref(), self.dev_mode)
    }
}
