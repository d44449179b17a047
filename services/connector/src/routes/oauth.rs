//! Connecting SePay (OAuth2 code flow with PKCE): Connect SePay, the callback, Disconnect.

use super::extract::authorize;
use super::{AdminForm, AppRef, Confirmation, Result, control_id, publish, see_other, to_page, with_cookie};
use crate::auth::{cookie, set_cookie};
use crate::error::ConnectorError;
use crate::pages;
use crate::state::{self as oauth_state, PendingAuth, STATE_COOKIE, STATE_TTL_SECS, StateError};
use crate::{AppState, CALLBACK_PATH};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use sepay_api::ApiError;
use sepay_bus::{ControlRequest, ControlSubject};
use sepay_connection::TokenError;
use sepay_store::{StoreError, connections};
use serde::Deserialize;

/// "Connect SePay": a fresh state and PKCE verifier, sealed into the callback-scoped cookie.
pub(super) async fn connect(State(state): State<AppRef>, AdminForm { admin, .. }: AdminForm) -> Result<Response> {
    if state.sepay_client_id_missing {
        return Err(ConnectorError::Unavailable);
    }
    let request = state
        .client
        .authorize_request(&state.config.callback_url())
        .map_err(|e| ConnectorError::Internal(anyhow::anyhow!("authorize URL: {e}")))?;
    let pending = PendingAuth {
        ws_id: admin.ws_id,
        state: request.state,
        pkce_verifier: request.pkce_verifier,
        issued_at: chrono::Utc::now().timestamp(),
    };
    let cookie = set_cookie(
        STATE_COOKIE,
        &oauth_state::seal(&state.keys, &pending),
        CALLBACK_PATH,
        STATE_TTL_SECS,
        "Lax",
        state.config.secure_cookies(),
    );
    tracing::info!(ws_id = %admin.ws_id, "SePay authorization started");
    Ok(with_cookie(see_other(&request.url), &cookie))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Why a callback failed; `code()` is what the redirect carries.
#[derive(Debug, thiserror::Error)]
enum CallbackError {
    #[error("SePay answered with an error ({0})")]
    Provider(String),
    #[error("the callback lacks the code")]
    MissingParams,
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the state was already used")]
    Replayed,
    #[error("code exchange failed: {0}")]
    Exchange(#[source] ApiError),
    #[error("saving the connection failed: {0}")]
    Save(String),
}

impl CallbackError {
    fn code(&self) -> &'static str {
        match self {
            Self::Provider(e) if e == "access_denied" => "access_denied",
            Self::Provider(_) => "provider_error",
            Self::MissingParams => "missing_params",
            Self::State(StateError::Expired) => "expired_state",
            Self::State(_) => "invalid_state",
            Self::Replayed => "state_reused",
            Self::Exchange(_) => "exchange_failed",
            Self::Save(_) => "save_failed",
        }
    }
}

impl From<StoreError> for CallbackError {
    fn from(err: StoreError) -> Self {
        Self::Save(format!("{err:?}"))
    }
}

impl From<TokenError> for CallbackError {
    fn from(err: TokenError) -> Self {
        Self::Save(err.to_string())
    }
}

/// The OAuth callback. Always a redirect to the workspace page (or home when the workspace
/// cannot be known). The returned `state` is checked against the sealed one before anything
/// else, `error=` included: a callback without this flow's state is not SePay answering it (a
/// cross-site link, say), so it changes nothing and the state cookie stays for the real answer.
/// Every other outcome clears the cookie.
pub(super) async fn callback(
    State(state): State<AppRef>,
    headers: HeaderMap,
    query: std::result::Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let clear = set_cookie(STATE_COOKIE, "", CALLBACK_PATH, 0, "Lax", state.config.secure_cookies());
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let pending = match cookie(&headers, STATE_COOKIE).map(|c| oauth_state::open(&state.keys, c)) {
        Some(Ok(p)) => p,
        _ => {
            tracing::info!(reason = "invalid_state", "SePay callback without a valid state cookie");
            return with_cookie(to_page(&state, "/?sepay=error&reason=invalid_state"), &clear);
        }
    };
    let returned = q.state.as_deref().filter(|s| !s.is_empty()).unwrap_or_default();
    let fresh = match oauth_state::verify(&pending, returned, chrono::Utc::now().timestamp()) {
        Err(StateError::Mismatch | StateError::BadCookie) => {
            tracing::info!(ws_id = %pending.ws_id, reason = "invalid_state", "SePay callback with another state ignored");
            let target = format!("/ws/{}/integrations?sepay=error&reason=invalid_state", pending.ws_id);
            return to_page(&state, &target);
        }
        fresh => fresh,
    };
    // the workspace's admin must finish what they started
    let admin = match state.auth.session(&headers).await.map_err(ConnectorError::from) {
        Ok(session) => authorize(&state, pending.ws_id, session).await,
        Err(err) => Err(err),
    };
    let ws_id = match admin {
        Ok(admin) => admin.ws_id,
        Err(err) => return with_cookie(err.into_response(), &clear),
    };
    let target = match finish(&state, &pending, fresh, q).await {
        Ok(()) => format!("/ws/{ws_id}/integrations?sepay=connected"),
        Err(err) => {
            let code = err.code();
            tracing::warn!(%ws_id, reason = code, detail = %err, "SePay connection failed");
            format!("/ws/{ws_id}/integrations?sepay=error&reason={code}")
        }
    };
    with_cookie(to_page(&state, &target), &clear)
}

/// The rest of a callback whose state matched: `fresh` is whether it came back in time.
async fn finish(
    state: &AppState,
    pending: &PendingAuth,
    fresh: std::result::Result<(), StateError>,
    q: CallbackQuery,
) -> std::result::Result<(), CallbackError> {
    fresh?;
    if let Some(error) = q.error {
        // the provider's error code only (bounded, plain), never its description
        let code: String = error
            .chars()
            .take(64)
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        return Err(CallbackError::Provider(code));
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return Err(CallbackError::MissingParams);
    };
    if !connections::consume_oauth_state(&state.db, pending.ws_id, &oauth_state::state_hash(&pending.state)).await? {
        return Err(CallbackError::Replayed);
    }
    let tokens = state
        .client
        .exchange_code(&code, &pending.pkce_verifier, &state.config.callback_url())
        .await
        .map_err(CallbackError::Exchange)?;
    state.tokens.store_grant(pending.ws_id, &tokens).await?;
    connections::set_disconnect_requested(&state.db, pending.ws_id, false).await?;
    tracing::info!(ws_id = %pending.ws_id, "SePay connected");
    // the grant is saved: a bus outage must not turn it into an error; "Sync now" asks again
    if let Err(err) = state
        .bus
        .publish_control(
            ControlSubject::ConnectionConnected,
            &control_id("connected", pending.ws_id),
            &ControlRequest::workspace(pending.ws_id),
        )
        .await
    {
        tracing::warn!(ws_id = %pending.ws_id, error = %err, "sepay.connection.connected not published");
    }
    Ok(())
}

/// Asks the provisioner to disconnect (delete SePay webhooks, revoke endpoints and tokens).
pub(super) async fn disconnect(
    State(state): State<AppRef>,
    AdminForm { admin, form }: AdminForm<Confirmation>,
) -> Result<Response> {
    if connections::connection_view(&state.db, admin.ws_id).await?.is_none() {
        return Err(ConnectorError::NotFound("connection"));
    }
    if !form.given() {
        return Ok(pages::render(&pages::Confirm {
            ws_id: admin.ws_id,
            csrf: &admin.csrf,
            action: format!("/ws/{}/disconnect", admin.ws_id),
            question: "Disconnect SePay?",
            consequence: "The webhooks provisioned at SePay are deleted and the tokens revoked: no more transactions arrive until SePay is connected again. What is booked stays booked.",
            button: "Disconnect SePay",
            back: format!("/ws/{}/integrations", admin.ws_id),
        }));
    }
    let request = ControlRequest::workspace(admin.ws_id);
    publish(&state, ControlSubject::ConnectionDisconnected, "disconnect", &request).await?;
    connections::set_disconnect_requested(&state.db, admin.ws_id, true).await?;
    tracing::info!(ws_id = %admin.ws_id, "SePay disconnect requested");
    Ok(to_page(
        &state,
        &format!("/ws/{}/integrations?done=disconnect_requested", admin.ws_id),
    ))
}
