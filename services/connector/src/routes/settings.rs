//! The workspace's settings: the time zone its pages show times in.

use super::{Admin, AdminForm, AppRef, Flash, Result, to_page};
use crate::pages;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sepay_store::workspaces;
use serde::Deserialize;

pub(super) async fn page(
    State(state): State<AppRef>,
    admin: Admin,
    query: std::result::Result<Query<Flash>, QueryRejection>,
) -> Result<Response> {
    let Query(flash) = query?;
    let ws = workspaces::get_workspace(&state.db, admin.ws_id).await?;
    Ok(pages::render(&pages::Settings {
        ws_id: admin.ws_id,
        ws_name: &ws.name,
        csrf: &admin.csrf,
        time_zone: &ws.time_zone,
        error: None,
        flash: flash.done(),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SettingsForm {
    time_zone: String,
}

/// Saves a time zone chrono-tz knows; another is refused with the form shown again as typed.
pub(super) async fn save(
    State(state): State<AppRef>,
    AdminForm { admin, form }: AdminForm<SettingsForm>,
) -> Result<Response> {
    let typed = form.time_zone.trim();
    match typed.parse::<chrono_tz::Tz>() {
        Ok(zone) => {
            workspaces::set_time_zone(&state.db, admin.ws_id, zone.name()).await?;
            Ok(to_page(
                &state,
                &format!("/ws/{}/settings?done=settings_saved", admin.ws_id),
            ))
        }
        Err(_) => {
            let ws = workspaces::get_workspace(&state.db, admin.ws_id).await?;
            let page = pages::render(&pages::Settings {
                ws_id: admin.ws_id,
                ws_name: &ws.name,
                csrf: &admin.csrf,
                time_zone: typed,
                error: Some(format!(
                    "\"{typed}\" is not a time zone: use an IANA name such as Asia/Ho_Chi_Minh or Europe/Berlin."
                )),
                flash: None,
            });
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}
