//! The integration page: the SePay connection, bank accounts and the wallets they book into,
//! endpoints and reconciliation runs; Sync now and Reconcile now.

use super::{Admin, AdminForm, AppRef, Flash, Result, optional_uuid, publish, sepay_wallet, to_page};
use crate::error::ConnectorError;
use crate::pages;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use sepay_bus::{ControlRequest, ControlSubject};
use sepay_store::{connections, endpoints, workspaces};
use serde::Deserialize;
use uuid::Uuid;

pub(super) async fn page(
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
    let gaps = sepay_store::balances::unclosed_gaps(db, ws_id).await?;
    let repairs = sepay_store::provisioning::list_repairs(db, ws_id, 20).await?;
    Ok(pages::render(&pages::Integrations {
        ws_id,
        tz: pages::Zone::named(&ws.time_zone),
        ws_name: &ws.name,
        csrf: &admin.csrf,
        connection: connection.as_ref(),
        links: &links,
        wallets: &wallets,
        endpoints: &endpoints,
        runs: &runs,
        gaps: &gaps,
        repairs: &repairs,
        flash: pages::flash(flash.sepay.as_deref(), flash.reason.as_deref(), flash.done.as_deref()),
    }))
}

pub(super) async fn sync(State(state): State<AppRef>, AdminForm { admin, .. }: AdminForm) -> Result<Response> {
    request_from_page(&state, &admin, ControlSubject::SyncRequested, "sync").await
}

pub(super) async fn reconcile(State(state): State<AppRef>, AdminForm { admin, .. }: AdminForm) -> Result<Response> {
    request_from_page(&state, &admin, ControlSubject::ReconcileRequested, "reconcile").await
}

/// A button that asks the provisioner for something: publish, back to the page.
async fn request_from_page(
    state: &AppRef,
    admin: &Admin,
    subject: ControlSubject,
    what: &'static str,
) -> Result<Response> {
    publish(state, subject, what, &ControlRequest::workspace(admin.ws_id)).await?;
    Ok(to_page(
        state,
        &format!("/ws/{}/integrations?done={what}_requested", admin.ws_id),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct WalletChoice {
    /// Empty: no wallet.
    wallet_id: String,
}

pub(super) async fn set_wallet(
    State(state): State<AppRef>,
    path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>,
    AdminForm { admin, form }: AdminForm<WalletChoice>,
) -> Result<Response> {
    let Path((_, link_id)) = path.map_err(|_| ConnectorError::NotFound("bank account link"))?;
    // the composite foreign key refuses a wallet of another workspace
    let wallet = sepay_wallet(&state, admin.ws_id, optional_uuid(&form.wallet_id)?).await?;
    workspaces::set_link_wallet(&state.db, admin.ws_id, link_id, wallet).await?;
    Ok(to_page(
        &state,
        &format!("/ws/{}/integrations?done=mapping_saved", admin.ws_id),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct NewWallet {
    name: String,
    currency: String,
}

pub(super) async fn create_wallet(
    State(state): State<AppRef>,
    AdminForm { admin, form }: AdminForm<NewWallet>,
) -> Result<Response> {
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ConnectorError::BadRequest(
            "a wallet needs a name of at most 200 characters".into(),
        ));
    }
    let currency = match form.currency.trim() {
        "" => sepay_core::SEPAY_CURRENCY.to_owned(),
        c => sepay_core::currency_code(c).map_err(|e| ConnectorError::BadRequest(e.to_string()))?,
    };
    workspaces::create_wallet(&state.db, admin.ws_id, name, &currency).await?;
    Ok(to_page(
        &state,
        &format!("/ws/{}/integrations?done=wallet_created", admin.ws_id),
    ))
}
