//! The events page (both providers; filters shared as a URL, keyset paging both ways, a count),
//! an event's page, and replay (one event, or every failed one a filter matches, after a confirm
//! step that says how many).

use super::{Admin, AdminForm, AppRef, Result, to_page};
use crate::error::ConnectorError;
use crate::pages;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::NaiveDate;
use sepay_store::events::{self, EventPage, EventSearch};
use sepay_store::workspaces;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Events per page.
const EVENTS_PAGE: i64 = 50;
/// Matching events counted exactly up to this; past it the page says "more than".
pub const COUNT_CAP: i64 = 10_000;
/// Failed events one bulk replay re-drives at most (the confirm step says so).
pub const REPLAY_BATCH: i64 = 1_000;
/// Deliveries shown on an event's page (the newest).
const ATTEMPTS_SHOWN: i64 = 200;

/// The filters as typed (kept as text, so a form with a mistake is shown again as entered).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct EventFilters {
    pub provider: String,
    pub status: String,
    pub account: String,
    /// Dates in the workspace's time zone (`YYYY-MM-DD`), both included.
    pub from: String,
    pub to: String,
    /// In the currency's unit (VND; EUR for Striga).
    pub min: String,
    pub max: String,
    pub q: String,
}

impl EventFilters {
    /// The search, or every filter that could not be read, in the admin's terms.
    pub fn search(&self, zone: pages::Zone) -> std::result::Result<EventSearch, Vec<String>> {
        let mut errors = Vec::new();
        let mut search = EventSearch::default();
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        if let Some(p) = text(&self.provider) {
            match sepay_core::Provider::parse(&p) {
                Some(p) => search.provider = Some(p),
                None => errors.push(format!("Provider \"{p}\" is not sepay or striga.")),
            }
        }
        if let Some(s) = text(&self.status) {
            match sepay_core::EventStatus::parse(&s) {
                Some(s) => search.status = Some(s),
                None => errors.push(format!("Status \"{s}\" is not one of the statuses listed.")),
            }
        }
        search.account = text(&self.account);
        let day = |field: &str, value: &str, errors: &mut Vec<String>| -> Option<NaiveDate> {
            let value = text(value)?;
            NaiveDate::parse_from_str(&value, "%Y-%m-%d")
                .map_err(|_| errors.push(format!("{field} \"{value}\" is not a date like 2026-12-01.")))
                .ok()
        };
        search.from = day("From", &self.from, &mut errors).map(|d| zone.start_of(d));
        search.to = day("To", &self.to, &mut errors)
            .and_then(|d| d.succ_opt())
            .map(|d| zone.start_of(d));
        let amount = |field: &str, value: &str, errors: &mut Vec<String>| {
            let value = text(value)?;
            value
                .replace(',', "")
                .parse::<rust_decimal::Decimal>()
                .map_err(|_| errors.push(format!("{field} amount \"{value}\" is not a number.")))
                .ok()
        };
        search.min_amount = amount("Minimum", &self.min, &mut errors);
        search.max_amount = amount("Maximum", &self.max, &mut errors);
        if let (Some(from), Some(to)) = (search.from, search.to)
            && from >= to
        {
            errors.push("The From date is after the To date.".into());
        }
        search.text = text(&self.q);
        match errors.is_empty() {
            true => Ok(search),
            false => Err(errors),
        }
    }

    /// The filters as a query string (the URL that shares them), empty ones left out.
    pub fn query_string(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("provider", &self.provider),
            ("status", &self.status),
            ("account", &self.account),
            ("from", &self.from),
            ("to", &self.to),
            ("min", &self.min),
            ("max", &self.max),
            ("q", &self.q),
        ] {
            if !value.trim().is_empty() {
                query.append_pair(name, value.trim());
            }
        }
        query.finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct EventsQuery {
    #[serde(flatten)]
    filters: EventFilters,
    before: Option<String>,
    after: Option<String>,
    done: Option<String>,
    n: Option<String>,
}

/// A page cursor from the query string.
fn cursor(value: Option<&str>) -> Result<Option<i64>> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse()
                .map_err(|_| ConnectorError::BadRequest("not an event id".into()))
        })
        .transpose()
}

pub(super) async fn page(
    State(state): State<AppRef>,
    admin: Admin,
    query: std::result::Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response> {
    let Query(q) = query?;
    let ws = workspaces::get_workspace(&state.db, admin.ws_id).await?;
    let tz = pages::Zone::named(&ws.time_zone);
    let page = match (cursor(q.before.as_deref())?, cursor(q.after.as_deref())?) {
        (Some(before), _) => EventPage::Before(before),
        (None, Some(after)) => EventPage::After(after),
        (None, None) => EventPage::Newest,
    };
    let (rows, count, older, newer, errors) = match q.filters.search(tz) {
        Err(errors) => (Vec::new(), 0, None, None, errors),
        Ok(search) => {
            let mut rows = events::search_events(&state.db, admin.ws_id, &search, page, EVENTS_PAGE + 1).await?;
            let more = rows.len() as i64 > EVENTS_PAGE;
            let (older, newer) = match page {
                EventPage::Newest | EventPage::Before(_) => {
                    rows.truncate(EVENTS_PAGE as usize);
                    let older = more.then(|| rows.last().map(|e| e.id)).flatten();
                    let newer = matches!(page, EventPage::Before(_))
                        .then(|| rows.first().map(|e| e.id))
                        .flatten();
                    (older, newer)
                }
                EventPage::After(_) => {
                    // newest first: the extra row is the newest
                    if more {
                        rows.remove(0);
                    }
                    (
                        rows.last().map(|e| e.id),
                        more.then(|| rows.first().map(|e| e.id)).flatten(),
                    )
                }
            };
            let count = events::count_events(&state.db, admin.ws_id, &search, COUNT_CAP + 1).await?;
            (rows, count, older, newer, Vec::new())
        }
    };
    let flash = match q.done.as_deref() {
        Some("replayed") => pages::replayed(q.n.as_deref().and_then(|n| n.parse().ok())),
        done => pages::flash(None, None, done),
    };
    Ok(pages::render(&pages::Events {
        ws_id: admin.ws_id,
        tz,
        ws_name: &ws.name,
        csrf: &admin.csrf,
        rows: &rows,
        filters: &q.filters,
        errors: &errors,
        count,
        older,
        newer,
        flash,
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct EventQuery {
    done: Option<String>,
}

/// `/ws/{ws}/events/{id}`: one event, whole.
pub(super) async fn event_page(
    State(state): State<AppRef>,
    admin: Admin,
    path: std::result::Result<Path<(Uuid, i64)>, PathRejection>,
    query: std::result::Result<Query<EventQuery>, QueryRejection>,
) -> Result<Response> {
    // a path that is no event id names no event
    let Path((_, id)) = path.map_err(|_| ConnectorError::NotFound("event"))?;
    let Query(q) = query?;
    let ws = workspaces::get_workspace(&state.db, admin.ws_id).await?;
    let events::EventDetail { event, sent_amount } = events::detail_in_workspace(&state.db, admin.ws_id, id)
        .await?
        .ok_or(ConnectorError::NotFound("event"))?;
    let attempts = sepay_store::deliveries::for_event(&state.db, event.id, ATTEMPTS_SHOWN).await?;
    let booked = match event.created_transaction_id {
        Some(tx) => sepay_store::ledger::booked_transaction(&state.db, admin.ws_id, tx).await?,
        None => None,
    };
    Ok(pages::render(&pages::EventPage {
        ws_id: admin.ws_id,
        tz: pages::Zone::named(&ws.time_zone),
        ws_name: &ws.name,
        csrf: &admin.csrf,
        event: &event,
        sent_amount: sent_amount.as_deref(),
        attempts: &attempts,
        booked: booked.as_ref(),
        flash: pages::flash(None, None, q.done.as_deref()),
    }))
}

/// `GET /ws/{ws}/events/replay?<filters>`: how many failed events a replay of the filter would
/// re-drive, and the button that does it.
pub(super) async fn replay_confirm(
    State(state): State<AppRef>,
    admin: Admin,
    query: std::result::Result<Query<EventFilters>, QueryRejection>,
) -> Result<Response> {
    let Query(filters) = query?;
    let ws = workspaces::get_workspace(&state.db, admin.ws_id).await?;
    let search = filters
        .search(pages::Zone::named(&ws.time_zone))
        .map_err(|errors| ConnectorError::BadRequest(errors.join(" ")))?;
    let ids = events::replayable_ids(&state.db, admin.ws_id, &search, REPLAY_BATCH).await?;
    Ok(pages::render(&pages::ReplayConfirm {
        ws_id: admin.ws_id,
        ws_name: &ws.name,
        csrf: &admin.csrf,
        filters: &filters,
        count: ids.len(),
        capped: ids.len() as i64 == REPLAY_BATCH,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ReplayForm {
    /// One event; absent: the failed events the filters match.
    id: Option<String>,
    #[serde(flatten)]
    filters: EventFilters,
}

/// Reopens failed events a replay can change and publishes them (one the bus does not take now
/// is published by the ingress's relay: it is `received` and unpublished), and says what
/// happened: re-driven, or why not.
pub(super) async fn replay(
    State(state): State<AppRef>,
    AdminForm { admin, form }: AdminForm<ReplayForm>,
) -> Result<Response> {
    let one = cursor(form.id.as_deref())?;
    let ids = match one {
        Some(id) => {
            // another workspace's event is as absent as a missing one
            events::get_in_workspace(&state.db, admin.ws_id, id)
                .await?
                .ok_or(ConnectorError::NotFound("event"))?;
            vec![id]
        }
        None => {
            let ws = workspaces::get_workspace(&state.db, admin.ws_id).await?;
            let search = form
                .filters
                .search(pages::Zone::named(&ws.time_zone))
                .map_err(|errors| ConnectorError::BadRequest(errors.join(" ")))?;
            events::replayable_ids(&state.db, admin.ws_id, &search, REPLAY_BATCH).await?
        }
    };
    // no ids: nothing to re-drive (an empty list would mean "every failed event")
    let reopened = match ids.is_empty() {
        true => Vec::new(),
        false => events::reopen_failed(&state.db, Some(admin.ws_id), &ids).await?,
    };
    for event in &reopened {
        if let Err(err) = sepay_runtime::publish_event(&state.db, &state.bus, event).await {
            tracing::warn!(event_id = event.id, error = %err, "replay left to the relay");
        }
    }
    tracing::info!(ws_id = %admin.ws_id, count = reopened.len(), "failed events replayed");
    let page = match one {
        Some(id) => format!(
            "/ws/{}/events/{id}?done={}",
            admin.ws_id,
            if reopened.is_empty() {
                "replay_refused"
            } else {
                "replayed_one"
            }
        ),
        None => {
            let mut filters = form.filters.clone();
            filters.status = sepay_core::EventStatus::Failed.as_str().into();
            format!(
                "/ws/{}/events?{}&done=replayed&n={}",
                admin.ws_id,
                filters.query_string(),
                reopened.len()
            )
        }
    };
    Ok(to_page(&state, &page))
}
