//! The events page (both providers, keyset paging, a status filter) and replay.

use super::{Admin, AdminForm, AppRef, Result, to_page};
use crate::error::ConnectorError;
use crate::pages;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use sepay_store::{events, workspaces};
use serde::Deserialize;

/// Events per page.
const EVENTS_PAGE: i64 = 50;

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    status: Option<String>,
    before: Option<i64>,
    done: Option<String>,
}

pub(super) async fn page(
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
    Ok(pages::render(&pages::Events {
        ws_id: admin.ws_id,
        ws_name: &ws.name,
        csrf: &admin.csrf,
        rows: &rows,
        status,
        next_before,
        flash: pages::flash(None, None, q.done.as_deref()),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ReplayForm {
    /// One event; absent: every failed event of the workspace.
    id: Option<i64>,
}

/// Reopens failed events and publishes them; one the bus does not take now is published by the
/// ingress's relay (it is `received` and unpublished).
pub(super) async fn replay(
    State(state): State<AppRef>,
    AdminForm { admin, form }: AdminForm<ReplayForm>,
) -> Result<Response> {
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
