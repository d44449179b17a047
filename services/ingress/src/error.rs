//! Every way a delivery can be refused, mapped to HTTP in one place.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("unknown or revoked webhook token")]
    UnknownToken,
    #[error("missing or wrong API key")]
    WrongKey,
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
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::UnknownToken | Self::WrongKey => (StatusCode::UNAUTHORIZED, "unauthorized"),
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
            other => tracing::info!(reason = code, detail = %other, "delivery refused"),
        }
        // one shape for every refusal; internal errors carry no detail
        let message = match &self {
            Self::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        let body = json!({"success": false, "error": {"code": code, "message": message}});
        (status, Json(body)).into_response()
    }
}
