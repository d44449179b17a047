//! The simulator's errors, rendered in SePay's shapes: `/api/v1` JSON errors, `/userapi`
//! envelopes and RFC 6749 OAuth errors.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("Token is invalid or expired")]
    Unauthorized,
    #[error("You do not have permission to access this resource (scope {0} required)")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("Input data validation error")]
    Validation(BTreeMap<String, Vec<String>>),
    #[error("Too many requests")]
    RateLimited { header: &'static str },
    #[error("Injected server error")]
    Injected,
    #[error("{description}")]
    OAuth {
        status: StatusCode,
        error: &'static str,
        description: String,
    },
    #[error("{0}")]
    BadRequest(String),
}

impl SimError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(BTreeMap::from([(field.to_owned(), vec![message.into()])]))
    }

    pub fn oauth(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self::OAuth {
            status,
            error,
            description: description.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Validation(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Injected => StatusCode::SERVICE_UNAVAILABLE,
            Self::OAuth { status, .. } => *status,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Validation(_) => "validation_error",
            Self::RateLimited { .. } => "rate_limited",
            Self::Injected => "server_error",
            Self::OAuth { error, .. } => error,
            Self::BadRequest(_) => "bad_request",
        }
    }

    fn with_retry_after(&self, mut response: Response) -> Response {
        if let Self::RateLimited { header } = self {
            response.headers_mut().insert(*header, HeaderValue::from_static("1"));
        }
        response
    }

    /// The `/userapi` envelope.
    pub fn userapi(self) -> UserApiError {
        UserApiError(self)
    }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let body: Value = match &self {
            Self::OAuth { error, description, .. } => json!({"error": error, "error_description": description}),
            Self::Validation(fields) => {
                json!({"status": "error", "error": self.code(), "message": self.to_string(), "errors": fields})
            }
            _ => json!({"status": "error", "error": self.code(), "message": self.to_string()}),
        };
        let response = (self.status(), Json(body)).into_response();
        self.with_retry_after(response)
    }
}

pub struct UserApiError(SimError);

impl IntoResponse for UserApiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let body = json!({
            "status": status.as_u16(),
            "error": self.0.to_string(),
            "messages": {"success": false},
        });
        let response = (status, Json(body)).into_response();
        self.0.with_retry_after(response)
    }
}

impl From<SimError> for UserApiError {
    fn from(e: SimError) -> Self {
        Self(e)
    }
}
