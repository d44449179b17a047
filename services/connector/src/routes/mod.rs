//! Routes: the router (every path in one place, with the headers every page is sent with) and
//! what the feature modules share. Each page or form lives in its feature's module:
//!
//! - [`session`]: home and signing in (the login link's page, its POST);
//! - [`overview`]: the last 14 days and what needs an admin;
//! - [`oauth`]: Connect SePay, the callback, Disconnect;
//! - [`integration`]: the integration page, wallet links and wallets, Sync now, Reconcile now;
//! - [`events`]: the events page, an event's page and replay;
//! - [`wallets`]: wallets, a wallet's statement and its CSV export;
//! - [`endpoints`]: manual endpoints, rotation and revocation (SePay's and Striga's);
//! - [`rules`]: classification rules and AI credits;
//! - [`striga`]: the Striga page, its endpoints and account links;
//! - [`settings`]: the workspace's time zone.
//!
//! Access: a page takes [`Admin`] (an owner or admin of the workspace in the path); a form takes
//! [`AdminForm`], which is that plus the session's CSRF token checked and the form parsed.

mod endpoints;
mod events;
mod extract;
mod integration;
mod oauth;
mod overview;
mod rules;
mod session;
mod settings;
mod striga;
mod wallets;

pub use events::{COUNT_CAP, EventFilters, REPLAY_BATCH};
pub use extract::{Admin, AdminForm, Confirmation};
pub use overview::DayCounts;
pub use rules::NewRuleForm;
pub use wallets::StatementQuery;

use crate::error::ConnectorError;
use crate::{AppState, CALLBACK_PATH};
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sepay_bus::{ControlRequest, ControlSubject};
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;

type Result<T> = std::result::Result<T, ConnectorError>;
type AppRef = Arc<AppState>;

/// Forms are small; anything larger is refused.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(state: AppRef) -> Router {
    let csp = HeaderValue::from_str(&format!(
        "default-src 'none'; script-src {}; style-src 'unsafe-inline'; form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'",
        crate::pages::script_hash(),
        state.sepay_origin
    ))
    .unwrap_or_else(|_| {
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
    });
    Router::new()
        .route("/", get(session::home))
        .route("/login", get(session::login_page).post(session::login))
        .route("/ws/{ws}/overview", get(overview::page))
        .route("/ws/{ws}/integrations", get(integration::page))
        .route("/ws/{ws}/events", get(events::page))
        .route("/ws/{ws}/events/replay", get(events::replay_confirm).post(events::replay))
        .route("/ws/{ws}/events/{id}", get(events::event_page))
        .route("/ws/{ws}/connect", post(oauth::connect))
        .route(CALLBACK_PATH, get(oauth::callback))
        .route("/ws/{ws}/disconnect", post(oauth::disconnect))
        .route("/ws/{ws}/sync", post(integration::sync))
        .route("/ws/{ws}/reconcile", post(integration::reconcile))
        .route("/ws/{ws}/accounts/{link}/wallet", post(integration::set_wallet))
        .route("/ws/{ws}/wallets", post(integration::create_wallet))
        .route("/ws/{ws}/endpoints", post(endpoints::create))
        .route("/ws/{ws}/endpoints/{id}/rotate", post(endpoints::rotate))
        .route("/ws/{ws}/endpoints/{id}/revoke", post(endpoints::revoke))
        .route("/ws/{ws}/settings", get(settings::page).post(settings::save))
        .route("/ws/{ws}/wallets", get(wallets::list))
        .route("/ws/{ws}/wallets/{wallet}", get(wallets::statement))
        .route("/ws/{ws}/wallets/{wallet}/transactions.csv", get(wallets::csv))
        .route("/ws/{ws}/rules", get(rules::page).post(rules::create))
        .route("/ws/{ws}/rules/{id}/delete", post(rules::delete))
        .route("/ws/{ws}/rules/{id}/move", post(rules::move_rule))
        .route("/ws/{ws}/striga", get(striga::page))
        .route("/ws/{ws}/striga/endpoints", post(striga::create_endpoint))
        .route("/ws/{ws}/striga/links", post(striga::link_account))
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

/// The codes a redirect leaves for the page it lands on (texts in [`crate::pages::flash`]).
#[derive(Debug, Default, Deserialize)]
struct Flash {
    sepay: Option<String>,
    reason: Option<String>,
    done: Option<String>,
}

impl Flash {
    /// A `done` code only (pages other than home and the integration page).
    fn done(&self) -> Option<crate::pages::Flash> {
        crate::pages::flash(None, None, self.done.as_deref())
    }
}

/// A wallet a SePay account or endpoint may book into: one of this workspace's, holding VND
/// (the store refuses others too; this says why, in the admin's terms).
async fn sepay_wallet(state: &AppState, ws_id: Uuid, wallet: Option<Uuid>) -> Result<Option<Uuid>> {
    let Some(wallet) = wallet else { return Ok(None) };
    let wallets = sepay_store::workspaces::wallets(&state.db, ws_id).await?;
    match wallets.iter().find(|w| w.id == wallet) {
        Some(w) if w.currency != sepay_core::SEPAY_CURRENCY => Err(ConnectorError::BadRequest(format!(
            "SePay books {}: wallet \"{}\" holds {}",
            sepay_core::SEPAY_CURRENCY,
            w.name,
            w.currency
        ))),
        // ours and in VND; another workspace's is refused by the store's composite foreign key
        _ => Ok(Some(wallet)),
    }
}

fn optional_uuid(text: &str) -> Result<Option<Uuid>> {
    match text.trim() {
        "" => Ok(None),
        s => Uuid::parse_str(s)
            .map(Some)
            .map_err(|_| ConnectorError::BadRequest("not a wallet id".into())),
    }
}
