//! Routes: login, the OAuth connect flow, the admin pages and their forms.

use crate::auth::{SESSION_COOKIE, Session, cookie, set_cookie};
use crate::error::ConnectorError;
use crate::pages;
use crate::state::{self as oauth_state, PendingAuth, STATE_COOKIE, STATE_TTL_SECS, StateError};
use crate::{AppState, CALLBACK_PATH};
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use sepay_api::ApiError;
use sepay_bus::{ControlRequest, ControlSubject};
use sepay_connection::TokenError;
use sepay_core::Provider;
use sepay_core::classify::RuleDraft;
use sepay_store::endpoints::CreatedStrigaEndpoint;
use sepay_store::endpoints::signing_key_aad;
use sepay_store::{StoreError, classification, connections, endpoints, events, members, striga, workspaces};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

type Result<T> = std::result::Result<T, ConnectorError>;
type AppRef = Arc<AppState>;

/// Events per page.
const EVENTS_PAGE: i64 = 50;
/// Forms are small; anything larger is refused.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(state: AppRef) -> Router {
    let csp = HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'",
        state.sepay_origin
    ))
    .unwrap_or_else(|_| {
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
    });
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/ws/{ws}/integrations", get(integrations))
        .route("/ws/{ws}/events", get(events_page))
        .route("/ws/{ws}/events/replay", post(replay))
        .route("/ws/{ws}/connect", post(connect))
        .route(CALLBACK_PATH, get(callback))
        .route("/ws/{ws}/disconnect", post(disconnect))
        .route("/ws/{ws}/sync", post(sync))
        .route("/ws/{ws}/reconcile", post(reconcile))
        .route("/ws/{ws}/accounts/{link}/wallet", post(set_wallet))
        .route("/ws/{ws}/wallets", post(create_wallet))
        .route("/ws/{ws}/endpoints", post(create_endpoint))
        .route("/ws/{ws}/endpoints/{id}/rotate", post(rotate_endpoint))
        .route("/ws/{ws}/endpoints/{id}/revoke", post(revoke_endpoint))
        .route("/ws/{ws}/rules", get(rules_page).post(create_rule))
        .route("/ws/{ws}/rules/{id}/delete", post(delete_rule))
        .route("/ws/{ws}/rules/{id}/move", post(move_rule))
        .route("/ws/{ws}/striga", get(striga_page))
        .route("/ws/{ws}/striga/endpoints", post(create_striga_endpoint))
        .route("/ws/{ws}/striga/links", post(link_striga_account))
        .layer(axum::middleware::map_response(move |mut res: Response| {
            let csp = csp.clone();
            async move {
                let h = res.headers_mut();
                // pages carry CSRF tokens and one-time secrets: never cached, never framed, no Referer
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
                h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
                h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
                h.insert(header::CONTENT_SECURITY_POLICY, csp);
                res
            }
        }))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        // the span names the path only: query strings carry login tokens, codes and states
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(state.clone())
}

/// An owner or admin of the workspace in the path, with this session's CSRF token.
pub struct Admin {
    ws_id: Uuid,
    csrf: String,
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

async fn authorize(state: &AppState, ws_id: Uuid, session: Session) -> Result<Admin> {
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

fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location.to_owned())]).into_response()
}

/// A redirect to a page of this connector (never elsewhere).
fn to_page(state: &AppState, path_and_query: &str) -> Response {
    see_other(&format!("{}{path_and_query}", state.config.origin()))
}

fn with_cookie(mut res: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

fn control_id(kind: &str, ws_id: Uuid) -> String {
    format!("{kind}-{ws_id}-{}", chrono::Utc::now().timestamp_millis())
}

async fn publish(state: &AppState, subject: ControlSubject, kind: &str, request: &ControlRequest) -> Result<()> {
    state
        .bus
        .publish_control(subject, &control_id(kind, request.ws_id), request)
        .await?;
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
struct Flash {
    sepay: Option<String>,
    reason: Option<String>,
    done: Option<String>,
}

async fn home(
    State(state): State<AppRef>,
    headers: HeaderMap,
    query: std::result::Result<Query<Flash>, QueryRejection>,
) -> Result<Response> {
    let Query(flash) = query?;
    let session = state.auth.session(&headers).await?;
    let workspaces = members::admin_workspaces(&state.db, &session.user_id).await?;
    Ok(pages::home(
        &session.user_id,
        &workspaces,
        flash.sepay.as_deref(),
        flash.reason.as_deref(),
    )
    .into_response())
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct LoginParams {
    token: Option<String>,
    ws: Option<String>,
}

/// Never prints the session token.
impl std::fmt::Debug for LoginParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginParams")
            .field("ws", &self.ws)
            .finish_non_exhaustive()
    }
}

impl LoginParams {
    /// The workspace to open, when the link names a valid one.
    fn ws(&self) -> Option<Uuid> {
        self.ws.as_deref().and_then(|s| Uuid::parse_str(s.trim()).ok())
    }
}

/// Where a login lands: the workspace's page, else home (never a URL from the request).
fn login_target(ws: Option<Uuid>) -> String {
    match ws {
        Some(ws) => format!("/ws/{ws}/integrations"),
        None => "/".to_owned(),
    }
}

/// The login link (`GET /login?token=&ws=`): checks the token and shows a sign-in form that
/// POSTs it; nothing is set by following a link (login CSRF). A browser already signed in as
/// the same user goes straight to the page; one signed in as someone else is asked first.
async fn login_page(
    State(state): State<AppRef>,
    headers: HeaderMap,
    query: std::result::Result<Query<LoginParams>, QueryRejection>,
) -> Result<Response> {
    let Query(q) = query?;
    let token = q.token.as_deref().ok_or(ConnectorError::LoginRequired)?;
    let claims = state.auth.verify(token).await?;
    let ws = q.ws();
    // the browser's current session, if it has a valid one (a bad or expired one is no session)
    let current = match cookie(&headers, SESSION_COOKIE) {
        Some(current) => state.auth.verify(current).await.ok(),
        None => None,
    };
    let current = current.map(|c| c.sub);
    if current.as_deref() == Some(claims.sub.as_str()) {
        return Ok(to_page(&state, &login_target(ws)));
    }
    Ok(pages::sign_in(token, ws, &claims.sub, current.as_deref()).into_response())
}

/// Only the connector's own pages may sign a browser in: `Origin` must be the connector's public
/// origin or, when a browser sends none, `Sec-Fetch-Site` must say same-origin (or none: the user's
/// own navigation). Anything else, including neither header, is refused.
///
/// `Origin: null` counts as none: browsers send it on a POST from a page served with
/// `Referrer-Policy: no-referrer`, which every page here is (Fetch standard, "serializing a request
/// origin"), so the sign-in form's own POST carries it. An attacker's `null` (a sandboxed frame, a
/// redirect chain) comes with `Sec-Fetch-Site: cross-site`, which browsers set themselves.
fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let value = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or_default());
    let ours = url::Url::parse(state.config.origin())
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| state.config.origin().to_owned());
    let allowed = match value(header::ORIGIN.as_str()) {
        Some(origin) if origin != "null" => origin == ours,
        _ => matches!(value("sec-fetch-site"), Some("same-origin" | "none")),
    };
    match allowed {
        true => Ok(()),
        false => Err(ConnectorError::CrossSite),
    }
}

/// The sign-in form's POST: same-origin only, then the token is checked again and kept in the
/// session cookie, and the workspace opens.
async fn login(
    State(state): State<AppRef>,
    headers: HeaderMap,
    form: std::result::Result<Form<LoginParams>, FormRejection>,
) -> Result<Response> {
    same_origin(&state, &headers)?;
    let Form(form) = form?;
    let token = form.token.as_deref().ok_or(ConnectorError::LoginRequired)?;
    let claims = state.auth.verify(token).await?;
    let max_age = (claims.exp - chrono::Utc::now().timestamp()).max(0);
    // Lax, not Strict: the session must come along when SePay redirects back to the callback
    let cookie = set_cookie(
        SESSION_COOKIE,
        token,
        "/",
        max_age,
        "Lax",
        state.config.secure_cookies(),
    );
    tracing::info!(user_id = %claims.sub, "admin signed in");
    Ok(with_cookie(to_page(&state, &login_target(form.ws())), &cookie))
}

async fn integrations(
    State(state): State<AppRef>,
    admin: Admin,
    query: std::result::Result<Query<Flash>, QueryRejection>,
) -> Result<Response> {
    let Query(flash) = query?;
    let ws_id = admin.ws_id;
    let db = &state.db;
    let ws = workspaces::get_workspace(db, ws_id).await?;
    let connection = connections::connection_view(db, ws_id).await?;
    let links = workspaces::wallet_links(db, ws_id).await?;
    let wallets = workspaces::wallets(db, ws_id).await?;
    let endpoints = endpoints::list(db, Some(ws_id)).await?;
    let runs = sepay_store::provisioning::list_runs(db, ws_id, 20).await?;
    Ok(pages::integrations(&pages::Integrations {
        ws_id,
        ws_name: &ws.name,
        csrf: &admin.csrf,
        connection: connection.as_ref(),
        links: &links,
        wallets: &wallets,
        endpoints: &endpoints,
        runs: &runs,
        sepay: flash.sepay.as_deref(),
        reason: flash.reason.as_deref(),
        done: flash.done.as_deref(),
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    status: Option<String>,
    before: Option<i64>,
    done: Option<String>,
}

async fn events_page(
    State(state): State<AppRef>,
    admin: Admin,
    query: std::result::Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response> {
    let Query(q) = query?;
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = status
        && !sepay_core::EventStatus::ALL.iter().any(|known| known.as_str() == s)
    {
        return Err(ConnectorError::BadRequest("unknown status".into()));
    }
    let ws = workspaces::get_workspace(&state.db, admin.ws_id).await?;
    let mut rows = events::events_page(&state.db, admin.ws_id, status, q.before, EVENTS_PAGE + 1).await?;
    let next_before = match rows.len() as i64 > EVENTS_PAGE {
        true => {
            rows.truncate(EVENTS_PAGE as usize);
            rows.last().map(|e| e.id)
        }
        false => None,
    };
    Ok(pages::events(&pages::Events {
        ws_id: admin.ws_id,
        ws_name: &ws.name,
        csrf: &admin.csrf,
        rows: &rows,
        status,
        next_before,
        done: q.done.as_deref(),
    })
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CsrfForm {
    csrf: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReplayForm {
    csrf: String,
    /// One event; absent: every failed event of the workspace.
    id: Option<i64>,
}

/// Reopens failed events and publishes them; one the bus does not take now is published by the
/// ingress's relay (it is `received` and unpublished).
async fn replay(
    State(state): State<AppRef>,
    admin: Admin,
    form: std::result::Result<Form<ReplayForm>, FormRejection>,
) -> Result<Response> {
    let Form(form) = form?;
    admin.check_csrf(&form.csrf)?;
    let ids: Vec<i64> = form.id.into_iter().collect();
    let reopened = events::reopen_failed(&state.db, Some(admin.ws_id), &ids).await?;
    for event in &reopened {
        if let Err(err) = sepay_runtime::publish_event(&state.db, &state.bus, event).await {
            tracing::warn!(event_id = event.id, error = %err, "replay left to the relay");
        }
    }
    tracing::info!(ws_id = %admin.ws_id, count = reopened.len(), "failed events replayed");
    Ok(to_page(
        &state,
        &format!("/ws/{}/events?status=failed&done=replayed", admin.ws_id),
    ))
}

/// "Connect SePay": a fresh state and PKCE verifier, sealed into the callback-scoped cookie.
async fn connect(
    State(state): State<AppRef>,
    admin: Admin,
    form: std::result::Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response> {
    let Form(form) = form?;
    admin.check_csrf(&form.csrf)?;
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
struct CallbackQuery {
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
async fn callback(
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
async fn disconnect(
    State(state): State<AppRef>,
    admin: Admin,
    form: std::result::Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response> {
    let Form(form) = form?;
    admin.check_csrf(&form.csrf)?;
    if connections::connection_view(&state.db, admin.ws_id).await?.is_none() {
        return Err(ConnectorError::NotFound("connection"));
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

async fn sync(
    State(state): State<AppRef>,
    admin: Admin,
    form: std::result::Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response> {
    request_from_page(&state, &admin, form, ControlSubject::SyncRequested, "sync").await
}

async fn reconcile(
    State(state): State<AppRef>,
    admin: Admin,
    form: std::result::Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response> {
    request_from_page(&state, &admin, form, ControlSubject::ReconcileRequested, "reconcile").await
}

/// A button that asks the provisioner for something: CSRF, publish, back to the page.
async fn request_from_page(
    state: &AppRef,
    admin: &Admin,
    form: std::result::Result<Form<CsrfForm>, FormRejection>,
    subject: ControlSubject,
    what: &'static str,
) -> Result<Response> {
    let Form(form) = form?;
    admin.check_csrf(&form.csrf)?;
    publish(state, subject, what, &ControlRequest::workspace(admin.ws_id)).await?;
    Ok(to_page(
        state,
        &format!("/ws/{}/integrations?done={what}_requested", admin.ws_id),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WalletChoice {
    csrf: String,
    /// Empty: no wallet.
    wallet_id: String,
}

fn optional_uuid(text: &str) -> Result<Option<Uuid>> {
    match text.trim() {
        "" => Ok(None),
        s => Uuid::parse_str(s)
            .map(Some)
            .map_err(|_| ConnectorError::BadRequest("not a wallet id".into())),
    }
}

async fn set_wallet(
    State(state): State<AppRef>,
    admin: Admin,
    path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>,
    form: std::result::Result<Form<WalletChoice>, FormRejection>,
) -> Result<Response> {
    let Form(form) = form?;
    admin.check_csrf(&form.csrf)?;
    let Path((_, link_id)) = path.map_err(|_| ConnectorError::NotFound("bank account link"))?;
    // the composite foreign key refuses a wallet of another workspace
    workspaces::set_link_wallet(&state.db, admin.ws_id, link_id, optional_uuid(&form.wallet_id)?).await?;
    Ok(to_page(
        &state,
        &format!("/ws/{}/integrations?done=mapping_saved", admin.ws_id),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewWallet {
    csrf: String,
    name: String,
    currency: String,
}

async fn create_wallet(
    State(state): State<AppRef>,
    admin: Admin,
    form: std::result::Result<Form<NewWallet>, FormRejection>,
) -> Result<Response> {
    let Form(form) = form?;
    admin.check_csrf(&form.csrf)?;
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ConnectorError::BadRequest(
            "a wallet needs a name of at most 200 characters".into(),
        ));
    }
    let currency = match form.currency.trim() {
        "" => "VND".to_owned(),
        c if (3..=8).contains(&c.len()) && c.chars().all(|ch| ch.is_ascii_alphabetic()) => c.to_ascii_uppercase(),
        _ => return Err(ConnectorError::BadRequest("a currency is 3 to 8 letters".into())),
    };
    workspaces::create_wallet(&state.db, admin.ws_id, name, &currency).await?;
    Ok(to_page(
        &state,
        &format!("/ws/{}/integrations?done=wallet_created", admin.ws_id),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewEndpointForm {
    csrf: String,
    label: String,
    wallet_id: String,
}

/// A manual endpoint; its URL and key are on this response only.
async fn create_endpoint(
    State(state): State<AppRef>,
    admin: Admin,
    form: std::result::Result<Form<NewEndpointForm>, FormRejection>,
) -> Result<Response> {
    let Form(form) = form?;
    admin.check_csrf(&form.csrf)?;
    let label = match form.label.trim() {
        "" => "manual",
        l if l.chars().count() <= 200 => l,
        _ => return Err(ConnectorError::BadRequest("a label is at most 200 characters".into())),
    };
    let wallet = optional_uuid(&form.wallet_id)?;
    let created =
        endpoints::create_manual_endpoint(&state.db, &state.config.ingress_public_url, admin.ws_id, wallet, label)
            .await?;
    tracing::info!(ws_id = %admin.ws_id, endpoint_id = %created.endpoint.id, "manual endpoint created");
    Ok(pages::created_endpoint(admin.ws_id, &created, false).into_response())
}

fn endpoint_path(path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>) -> Result<Uuid> {
    path.map(|Path((_, id))| id)
        .map_err(|_| ConnectorError::NotFound("endpoint"))
}

/// A SePay-provisioned endpoint is rotated by the provisioner (SePay must learn the new URL
/// first); a manual one here, showing its new secrets once.
async fn rotate_endpoint(
    State(state): State<AppRef>,
    admin: Admin,
    path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>,
    form: std::result::Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response> {
    let Form(form) = form?;
    admin.check_csrf(&form.csrf)?;
    let endpoint = endpoints::endpoint_of(&state.db, admin.ws_id, endpoint_path(path)?).await?;
    if endpoint.sepay_webhook_id.is_some() {
        let request = ControlRequest {
            endpoint_id: Some(endpoint.id),
            ..ControlRequest::workspace(admin.ws_id)
        };
        publish(&state, ControlSubject::EndpointRotateRequested, "rotate", &request).await?;
        return Ok(to_page(
            &state,
            &format!("/ws/{}/integrations?done=rotation_requested", admin.ws_id),
        ));
    }
    let grace = Duration::from_secs(state.config.endpoint_rotation_grace_hours * 3600);
    let created = endpoints::rotate_locally(&state.db, &state.config.ingress_public_url, endpoint.id, grace).await?;
    tracing::info!(ws_id = %admin.ws_id, old = %endpoint.id, new = %created.endpoint.id, "manual endpoint rotated");
    if endpoint.provider == Provider::Striga {
        let created = CreatedStrigaEndpoint::from(created);
        return Ok(pages::created_striga_endpoint(admin.ws_id, &created, true).into_response());
    }
    Ok(pages::created_endpoint(admin.ws_id, &created, true).into_response())
}

async fn revoke_endpoint(
    State(state): State<AppRef>,
    admin: Admin,
    path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>,
    form: std::result::Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response> {
    let Form(form) = form?;
    admin.check_csrf(&form.csrf)?;
    let endpoint = endpoints::endpoint_of(&state.db, admin.ws_id, endpoint_path(path)?).await?;
    endpoints::revoke(&state.db, endpoint.id).await?;
    tracing::info!(ws_id = %admin.ws_id, endpoint_id = %endpoint.id, "endpoint revoked");
    let page = if endpoint.provider == Provider::Striga {
        "striga"
    } else {
        "integrations"
    };
    Ok(to_page(&state, &format!("/ws/{}/{page}?done=revoked", admin.ws_id)))
}

async fn rules_page(
    State(state): State<AppRef>,
    admin: Admin,
    query: std::result::Result<Query<Flash>, QueryRejection>,
) -> Result<Response> {
    let Query(flash) = query?;
    let ws = workspaces::get_workspace(&state.db, admin.ws_id).await?;
    let rules = classification::rules(&state.db, admin.ws_id).await?;
    let credits = classification::credit_ledger(&state.db, admin.ws_id).await?;
    Ok(pages::rules(&pages::Rules {
        ws_id: admin.ws_id,
        ws_name: &ws.name,
        csrf: &admin.csrf,
        rules: &rules,
        credits,
        done: flash.done.as_deref(),
    })
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewRuleForm {
    csrf: String,
    name: String,
    /// One condition a line: `content contains grab`.
    conditions: String,
    /// "any": one condition suffices; otherwise all must hold.
    matching: String,
    category: String,
    /// "expense" or "income".
    kind: String,
    /// Comma-separated.
    tags: String,
    /// Present: later rules may add their tags too.
    keep_going: Option<String>,
}

/// Adds a rule at the end of the order; the same checks as `sepayctl rules add`.
async fn create_rule(
    State(state): State<AppRef>,
    admin: Admin,
    form: std::result::Result<Form<NewRuleForm>, FormRejection>,
) -> Result<Response> {
    let Form(form) = form?;
    admin.check_csrf(&form.csrf)?;
    let draft = RuleDraft::parse(
        &form.name,
        form.conditions.lines(),
        form.matching != "any",
        Some(form.category.as_str()),
        form.kind == "expense",
        form.tags.split(','),
        form.keep_going.is_none(),
    )
    .map_err(|e| ConnectorError::BadRequest(e.to_string()))?;
    let id = classification::create_rule(&state.db, admin.ws_id, &draft).await?;
    tracing::info!(ws_id = %admin.ws_id, rule_id = %id, "classification rule added");
    Ok(to_page(&state, &format!("/ws/{}/rules?done=rule_added", admin.ws_id)))
}

fn rule_path(path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>) -> Result<Uuid> {
    path.map(|Path((_, id))| id)
        .map_err(|_| ConnectorError::NotFound("rule"))
}

async fn delete_rule(
    State(state): State<AppRef>,
    admin: Admin,
    path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>,
    form: std::result::Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response> {
    let Form(form) = form?;
    admin.check_csrf(&form.csrf)?;
    let id = rule_path(path)?;
    classification::delete_rule(&state.db, Some(admin.ws_id), id).await?;
    tracing::info!(ws_id = %admin.ws_id, rule_id = %id, "classification rule deleted");
    Ok(to_page(&state, &format!("/ws/{}/rules?done=rule_deleted", admin.ws_id)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MoveForm {
    csrf: String,
    /// "up" or "down".
    direction: String,
}

async fn move_rule(
    State(state): State<AppRef>,
    admin: Admin,
    path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>,
    form: std::result::Result<Form<MoveForm>, FormRejection>,
) -> Result<Response> {
    let Form(form) = form?;
    admin.check_csrf(&form.csrf)?;
    let up = match form.direction.as_str() {
        "up" => true,
        "down" => false,
        _ => return Err(ConnectorError::BadRequest("direction is up or down".into())),
    };
    classification::move_rule(&state.db, admin.ws_id, rule_path(path)?, up).await?;
    Ok(to_page(&state, &format!("/ws/{}/rules?done=rule_moved", admin.ws_id)))
}

async fn striga_page(
    State(state): State<AppRef>,
    admin: Admin,
    query: std::result::Result<Query<Flash>, QueryRejection>,
) -> Result<Response> {
    let Query(flash) = query?;
    let (db, ws_id) = (&state.db, admin.ws_id);
    let ws = workspaces::get_workspace(db, ws_id).await?;
    Ok(pages::striga(&pages::Striga {
        ws_id,
        ws_name: &ws.name,
        csrf: &admin.csrf,
        endpoints: &endpoints::list(db, Some(ws_id)).await?,
        wallets: &workspaces::wallets(db, ws_id).await?,
        links: &striga::wallet_links(db, ws_id).await?,
        payouts: &striga::payouts(db, ws_id, 50).await?,
        mismatches: &striga::balance_mismatches(db, ws_id, 50).await?,
        done: flash.done.as_deref(),
    })
    .into_response())
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct NewStrigaEndpointForm {
    csrf: String,
    label: String,
    wallet_id: String,
    /// Striga's API key: sealed at once, never shown again nor logged.
    api_key: String,
}

impl std::fmt::Debug for NewStrigaEndpointForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewStrigaEndpointForm")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

async fn create_striga_endpoint(
    State(state): State<AppRef>,
    admin: Admin,
    form: std::result::Result<Form<NewStrigaEndpointForm>, FormRejection>,
) -> Result<Response> {
    let Form(form) = form?;
    admin.check_csrf(&form.csrf)?;
    let label = match form.label.trim() {
        "" => "striga",
        l if l.chars().count() <= 200 => l,
        _ => return Err(ConnectorError::BadRequest("a label is at most 200 characters".into())),
    };
    let api_key = form.api_key.trim();
    if api_key.is_empty() || api_key.len() > 512 {
        return Err(ConnectorError::BadRequest(
            "the Striga API key is 1 to 512 characters".into(),
        ));
    }
    let wallet = optional_uuid(&form.wallet_id)?;
    let sealed = state.keys.seal(&signing_key_aad(admin.ws_id), api_key.as_bytes());
    let created = striga::create_endpoint(
        &state.db,
        &state.config.ingress_public_url,
        admin.ws_id,
        wallet,
        label,
        &sealed,
    )
    .await?;
    tracing::info!(ws_id = %admin.ws_id, endpoint_id = %created.endpoint.id, "Striga endpoint created");
    Ok(pages::created_striga_endpoint(admin.ws_id, &created, false).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StrigaLinkForm {
    csrf: String,
    account: String,
    wallet_id: String,
}

async fn link_striga_account(
    State(state): State<AppRef>,
    admin: Admin,
    form: std::result::Result<Form<StrigaLinkForm>, FormRejection>,
) -> Result<Response> {
    let Form(form) = form?;
    admin.check_csrf(&form.csrf)?;
    let wallet = optional_uuid(&form.wallet_id)?.ok_or_else(|| ConnectorError::BadRequest("choose a wallet".into()))?;
    striga::link_wallet(&state.db, admin.ws_id, &form.account, wallet).await?;
    tracing::info!(ws_id = %admin.ws_id, wallet_id = %wallet, "Striga account linked");
    Ok(to_page(
        &state,
        &format!("/ws/{}/striga?done=striga_linked", admin.ws_id),
    ))
}
