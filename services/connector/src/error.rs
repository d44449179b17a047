//! Every way a page or form can fail, mapped to HTTP in one place. Pages never show a cause:
//! internal errors are logged and answered with a generic page.

use crate::auth::AuthError;
use crate::pages;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// No session, or a bad or expired session token: the login prompt, never data.
    #[error("login required")]
    LoginRequired,
    /// Signed in, but not an owner or admin of this workspace.
    #[error("not an admin of this workspace")]
    Forbidden,
    #[error("missing or wrong CSRF token")]
    Csrf,
    /// A sign-in POST that did not come from the connector's own page (no or another `Origin`).
    #[error("cross-site sign-in refused")]
    CrossSite,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    BadRequest(String),
    /// A change the database refused (e.g. a wallet of another workspace).
    #[error("{0}")]
    Rejected(String),
    #[error("a dependency is unavailable, retry later")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<sepay_store::StoreError> for ConnectorError {
    fn from(err: sepay_store::StoreError) -> Self {
        use sepay_store::StoreError as E;
        match err {
            E::NotFound(what) => Self::NotFound(what),
            E::Rejected { .. } | E::Conflict { .. } => Self::Rejected("the change was refused".into()),
            e if e.is_unavailable() => Self::Unavailable,
            e => Self::Internal(anyhow::anyhow!("{e:?}")),
        }
    }
}

impl From<sepay_bus::BusError> for ConnectorError {
    fn from(err: sepay_bus::BusError) -> Self {
        tracing::warn!(error = %err, "control message not published");
        Self::Unavailable
    }
}

impl From<AuthError> for ConnectorError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing | AuthError::Invalid(_) => Self::LoginRequired,
            AuthError::Jwks(reason) => {
                tracing::warn!(%reason, "admin JWKS unavailable");
                Self::Unavailable
            }
        }
    }
}

impl From<axum::extract::rejection::FormRejection> for ConnectorError {
    fn from(err: axum::extract::rejection::FormRejection) -> Self {
        Self::BadRequest(err.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ConnectorError {
    fn from(err: axum::extract::rejection::QueryRejection) -> Self {
        Self::BadRequest(err.body_text())
    }
}

impl IntoResponse for ConnectorError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            Self::LoginRequired => return pages::login_prompt().into_response(),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "You are not an admin of this workspace.".to_owned(),
            ),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "The form expired or did not come from this site; reload the page and try again.".to_owned(),
            ),
            Self::CrossSite => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "The sign-in form did not come from this site; open your login link again.".to_owned(),
            ),
            Self::NotFound(what) => (StatusCode::NOT_FOUND, "Not found", format!("No such {what}.")),
            Self::BadRequest(reason) => (StatusCode::BAD_REQUEST, "Bad request", reason.clone()),
            Self::Rejected(reason) => (StatusCode::CONFLICT, "Refused", reason.clone()),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable", self.to_string()),
            Self::Internal(err) => {
                tracing::error!(error = ?err, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error",
                    "Something went wrong.".to_owned(),
                )
            }
        };
        if !matches!(self, Self::Internal(_)) {
            tracing::info!(status = status.as_u16(), reason = %self, "request refused");
        }
        (status, pages::message(title, &message)).into_response()
    }
}
