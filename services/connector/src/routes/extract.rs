//! Who may do what: [`Admin`] for pages, [`AdminForm`] for the forms that change something.

use super::{AppRef, Result};
use crate::AppState;
use crate::auth::Session;
use crate::error::ConnectorError;
use axum::Form;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use sepay_store::members;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use uuid::Uuid;

/// An owner or admin of the workspace in the path, with this session's CSRF token.
pub struct Admin {
    pub ws_id: Uuid,
    pub csrf: String,
}

impl Admin {
    /// Compares the form's CSRF token in constant time.
    fn check_csrf(&self, presented: &str) -> Result<()> {
        match sepay_crypto::constant_time_eq(self.csrf.as_bytes(), presented.as_bytes()) {
            true => Ok(()),
            false => Err(ConnectorError::Csrf),
        }
    }
}

/// The session's user as an admin of `ws_id`: owners and admins pass, anyone else is 403. The
/// role is looked up on every request, never taken from the token.
pub async fn authorize(state: &AppState, ws_id: Uuid, session: Session) -> Result<Admin> {
    match members::member_role(&state.db, ws_id, &session.user_id)
        .await?
        .as_deref()
    {
        Some("owner" | "admin") => Ok(Admin {
            ws_id,
            csrf: session.csrf,
        }),
        _ => Err(ConnectorError::Forbidden),
    }
}

impl FromRequestParts<AppRef> for Admin {
    type Rejection = ConnectorError;

    async fn from_request_parts(parts: &mut Parts, state: &AppRef) -> Result<Self> {
        // the session first: anonymous visitors learn nothing, not even whether a workspace exists
        let session = state.auth.session(&parts.headers).await?;
        let params = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ConnectorError::Forbidden)?;
        let ws_id = params
            .get("ws")
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or(ConnectorError::Forbidden)?;
        authorize(state, ws_id, session).await
    }
}

/// A form POSTed by an admin of the workspace in the path, carrying this session's CSRF token:
/// the one prologue of every form handler. In this order: the session (401) and the role (403),
/// then the form is parsed into `T` (400), then its `csrf` field is compared with the session's
/// token (403). Nothing else is read before the caller gets it, so a handler changes nothing for a
/// request that fails any of these.
///
/// `T` lists the form's own fields (the `csrf` field is read here; `T` ignores it);
/// [`NoFields`] for a button.
pub struct AdminForm<T = NoFields> {
    pub admin: Admin,
    pub form: T,
}

/// A form with no field but the CSRF token (a button).
#[derive(Debug, Default, Deserialize)]
pub struct NoFields {}

/// A destructive button's form: it acts only with `confirm=yes`, which the confirmation page
/// ([`crate::pages::Confirm`]) sends; the button itself leads to that page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Confirmation {
    confirm: String,
}

impl Confirmation {
    pub fn given(&self) -> bool {
        self.confirm == "yes"
    }
}

/// The CSRF token of a form body; any other field is `T`'s.
#[derive(Default, Deserialize)]
#[serde(default)]
struct CsrfToken {
    csrf: String,
}

impl<T> FromRequest<AppRef> for AdminForm<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = ConnectorError;

    async fn from_request(req: Request, state: &AppRef) -> Result<Self> {
        let (mut parts, body) = req.into_parts();
        let admin = Admin::from_request_parts(&mut parts, state).await?;
        // the body once (under the router's size limit), read as the form and for its token
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| ConnectorError::BadRequest(e.body_text()))?;
        let Form(form) =
            Form::<T>::from_request(Request::from_parts(parts.clone(), Body::from(bytes.clone())), state).await?;
        let Form(token) = Form::<CsrfToken>::from_request(Request::from_parts(parts, Body::from(bytes)), state).await?;
        admin.check_csrf(&token.csrf)?;
        Ok(Self { admin, form })
    }
}
