//! The Striga (SEPA) page: its endpoints, account → wallet links, payouts, fees, balance mismatches.

use super::{Admin, AdminForm, AppRef, Flash, Result, optional_uuid, to_page};
use crate::error::ConnectorError;
use crate::pages;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use sepay_store::endpoints::{self, signing_key_aad};
use sepay_store::{striga, workspaces};
use serde::Deserialize;

pub(super) async fn page(
    State(state): State<AppRef>,
    admin: Admin,
    query: std::result::Result<Query<Flash>, QueryRejection>,
) -> Result<Response> {
    let Query(flash) = query?;
    let (db, ws_id) = (&state.db, admin.ws_id);
    let ws = workspaces::get_workspace(db, ws_id).await?;
    Ok(pages::render(&pages::Striga {
        ws_id,
        tz: pages::Zone::named(&ws.time_zone),
        ws_name: &ws.name,
        csrf: &admin.csrf,
        endpoints: &endpoints::list(db, Some(ws_id)).await?,
        wallets: &workspaces::wallets(db, ws_id).await?,
        links: &striga::wallet_links(db, ws_id).await?,
        payouts: &striga::payouts(db, ws_id, 50).await?,
        mismatches: &striga::balance_mismatches(db, ws_id, 50).await?,
        fees: &striga::fees(db, ws_id, 50).await?,
        flash: flash.done(),
    }))
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct NewStrigaEndpointForm {
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

pub(super) async fn create_endpoint(
    State(state): State<AppRef>,
    AdminForm { admin, form }: AdminForm<NewStrigaEndpointForm>,
) -> Result<Response> {
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
    Ok(pages::render(&pages::CreatedStrigaEndpointPage {
        ws_id: admin.ws_id,
        created: &created,
        rotated: false,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct StrigaLinkForm {
    account: String,
    wallet_id: String,
}

pub(super) async fn link_account(
    State(state): State<AppRef>,
    AdminForm { admin, form }: AdminForm<StrigaLinkForm>,
) -> Result<Response> {
    let wallet = optional_uuid(&form.wallet_id)?.ok_or_else(|| ConnectorError::BadRequest("choose a wallet".into()))?;
    striga::link_wallet(&state.db, admin.ws_id, &form.account, wallet).await?;
    tracing::info!(ws_id = %admin.ws_id, wallet_id = %wallet, "Striga account linked");
    Ok(to_page(
        &state,
        &format!("/ws/{}/striga?done=striga_linked", admin.ws_id),
    ))
}
