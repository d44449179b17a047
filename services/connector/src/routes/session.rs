//! Home (the workspaces one administers) and signing in: the login link's page and its POST.

use super::{AppRef, Flash, Result, to_page, with_cookie};
use crate::AppState;
use crate::auth::{SESSION_COOKIE, cookie, set_cookie};
use crate::error::ConnectorError;
use crate::pages;
use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use sepay_store::members;
use serde::Deserialize;
use uuid::Uuid;

pub(super) async fn home(
    State(state): State<AppRef>,
    headers: HeaderMap,
    query: std::result::Result<Query<Flash>, QueryRejection>,
) -> Result<Response> {
    let Query(flash) = query?;
    let session = state.auth.session(&headers).await?;
    let workspaces = members::admin_workspaces(&state.db, &session.user_id).await?;
    Ok(pages::render(&pages::Home {
        user: &session.user_id,
        workspaces: &workspaces,
        flash: pages::flash(flash.sepay.as_deref(), flash.reason.as_deref(), None),
    }))
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct LoginParams {
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
pub(super) async fn login_page(
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
    Ok(pages::render(&pages::SignIn {
        token,
        ws,
        user: &claims.sub,
        signed_in_as: current.as_deref(),
    }))
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
pub(super) async fn login(
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
