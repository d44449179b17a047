//! Every way a delivery can be refused, mapped to HTTP in one place.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    // one message for all three: the answer must not tell a caller whether a token exists
    #[error("unknown token or invalid credentials")]
    UnknownToken,
    #[error("unknown token or invalid credentials")]
    WrongKey,
    #[error("unknown token or invalid credentials")]
    BadSignature,
    #[error("too many failed authentications from this address; slow down")]
    TooManyFailures,
    #[error("this source address may not post webhooks")]
    SourceNotAllowed,
    #[error("body larger than {} bytes", crate::MAX_BODY_BYTES)]
    TooLarge,
    /// Stored as `failed`/`invalid_payload` before this answer.
    #[error("the body is not a JSON object; stored as event {event_id}")]
    NotAnObject { event_id: i64 },
    #[error("could not read the request body: {0}")]
    BadBody(String),
    #[error("storage unavailable, retry later")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl IngressError {
    /// The status code this refusal is answered with.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::UnknownToken | Self::WrongKey | Self::BadSignature => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::TooManyFailures => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::SourceNotAllowed => (StatusCode::FORBIDDEN, "forbidden_source"),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::NotAnObject { .. } => (StatusCode::BAD_REQUEST, "invalid_payload"),
            Self::BadBody(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<sepay_store::StoreError> for IngressError {
    fn from(err: sepay_store::StoreError) -> Self {
        if err.is_unavailable() {
            Self::Unavailable
        } else {
            Self::Internal(anyhow::anyhow!("{err:?}"))
        }
    }
}

impl IntoResponse for IngressError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        sepay_telemetry::metrics::counter!("sepay_webhook_rejected_total", "reason" => code).increment(1);
        match &self {
            Self::Internal(err) => tracing::error!(error = ?err, "delivery failed"),
            Self::Unavailable => tracing::warn!("delivery refused: storage unavailable"),
            // a flood of junk must not become a flood of log lines: the metric counts them
            Self::UnknownToken
            | Self::WrongKey
            | Self::BadSignature
            | Self::TooManyFailures
            | Self::SourceNotAllowed => {
                // the variant (UnknownToken, WrongKey, …) tells operators what the answer does not
                tracing::debug!(reason = code, cause = ?self, "delivery refused")
            }
            other => tracing::info!(reason = code, detail = %other, "delivery refused"),
        }
        // one shape for every refusal; internal errors carry no detail
        let message = match &self {
            Self::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        let body = json!({"success": false, "error": {"code": code, "message": message}});
        let mut response = (status, Json(body)).into_response();
        if matches!(self, Self::TooManyFailures) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}
