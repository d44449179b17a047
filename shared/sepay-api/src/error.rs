pub type ApiResult<T> = Result<T, ApiError>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: the token is invalid, expired or revoked.
    #[error("SePay refused the token (401)")]
    Unauthorized,
    /// 403: a scope is missing.
    #[error("SePay forbids this call (403): {0}")]
    Forbidden(String),
    #[error("not found at SePay (404)")]
    NotFound,
    #[error("SePay rejected the request (400): {0}")]
    Validation(String),
    /// Still rate limited after the bounded retries.
    #[error("SePay rate limit (429) persisted after {attempts} attempts")]
    RateLimited { attempts: u32 },
    #[error("SePay answered {status}")]
    Server { status: u16 },
    #[error("cannot reach SePay: {0}")]
    Transport(String),
    #[error("unexpected answer from SePay: {0}")]
    Decode(String),
    /// The token endpoint answered an OAuth 2.0 error (`invalid_grant`, …): whether it ends the
    /// grant is `sepay_core::connection::is_definitive_oauth_error`'s to say.
    #[error("SePay refused the token request: {code} {description}")]
    TokenRefused { code: String, description: String },
    #[error("OAuth: {0}")]
    OAuth(String),
}

impl ApiError {
    /// A stable code for `last_error`, redirects and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound => "not_found",
            Self::Validation(_) => "validation_error",
            Self::RateLimited { .. } => "rate_limited",
            Self::Server { .. } => "server_error",
            Self::Transport(_) => "unreachable",
            Self::Decode(_) => "bad_response",
            Self::TokenRefused { .. } | Self::OAuth(_) => "oauth_error",
        }
    }
}
