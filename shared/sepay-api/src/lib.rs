//! The SePay API client every service shares: OAuth2 (code exchange, refresh, revoke), bank
//! accounts, webhooks and transactions, with SePay's 429 rules (honour
//! `x-sepay-userapi-retry-after` or `Retry-After`, capped, bounded) and a client-side
//! 3 requests/second limit; plus the token lifecycle (sealed at rest, refreshed under a row lock).

mod client;
mod error;
mod oauth;
pub mod retry_after;
pub mod tokens;
mod types;

pub use client::SepayClient;
pub use error::{ApiError, ApiResult};
pub use oauth::{AuthorizeRequest, TokenSet};
pub use tokens::{TokenError, TokenField, Tokens};
pub use types::{BankAccount, NewWebhook, Transaction, TransactionQuery, Webhook};

/// Scopes the integration asks for.
pub const DEFAULT_SCOPES: &str = "bank-account:read transaction:read webhook:read webhook:write webhook:delete";

#[derive(Debug, Clone, clap::Args)]
pub struct SepayConfig {
    /// SePay (or sepay-sim) base URL; OAuth under /oauth, the API under /api/v1.
    #[arg(long, env = "SEPAY_BASE_URL", default_value = "https://my.sepay.vn")]
    pub sepay_base_url: String,
    /// OAuth client id registered with SePay.
    #[arg(long, env = "SEPAY_CLIENT_ID", default_value = "")]
    pub sepay_client_id: String,
    /// OAuth client secret (never logged).
    #[arg(long, env = "SEPAY_CLIENT_SECRET", default_value = "", hide_env_values = true)]
    pub sepay_client_secret: String,
    /// Space-separated scopes requested at connect.
    #[arg(long, env = "SEPAY_SCOPES", default_value = DEFAULT_SCOPES)]
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
    #[arg(long, env = "SEPAY_MAX_RETRY_WAIT_SECS", default_value_t = 10)]
    pub sepay_max_retry_wait_secs: u64,
    /// Retries of one call after 429 or 5xx.
    #[arg(long, env = "SEPAY_MAX_RETRIES", default_value_t = 3)]
    pub sepay_max_retries: u32,
    /// Client-side request rate per access token (SePay allows 3/s).
    #[arg(long, env = "SEPAY_REQUESTS_PER_SEC", default_value_t = 3)]
    pub sepay_requests_per_sec: u32,
}

/// The development configuration (tests, `up`): development mode on.
impl Default for SepayConfig {
    fn default() -> Self {
        Self {
            sepay_base_url: "https://my.sepay.vn".into(),
            sepay_client_id: String::new(),
            sepay_client_secret: String::new(),
            sepay_scopes: DEFAULT_SCOPES.into(),
            sepay_token_keys: None,
            dev_mode: true,
            sepay_max_retry_wait_secs: 10,
            sepay_max_retries: 3,
            sepay_requests_per_sec: 3,
        }
    }
}

impl SepayConfig {
    pub fn keyring(&self) -> Result<sepay_crypto::seal::Keyring, sepay_crypto::seal::SealError> {
        sepay_crypto::seal::Keyring::configured(self.sepay_token_keys.as_deref(), self.dev_mode)
    }
}
