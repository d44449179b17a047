//! Webhook endpoints from the pages: a manual SePay endpoint, rotation and revocation (of
//! SePay's and Striga's endpoints alike).

use super::{AdminForm, AppRef, Confirmation, Result, optional_uuid, publish, sepay_wallet, to_page};
use crate::error::ConnectorError;
use crate::pages;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use sepay_bus::{ControlRequest, ControlSubject};
use sepay_core::Provider;
use sepay_store::endpoints::{self, CreatedStrigaEndpoint};
use serde::Deserialize;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct NewEndpointForm {
    label: String,
    wallet_id: String,
}

/// A manual endpoint; its URL and key are on this response only.
pub(super) async fn create(
    State(state): State<AppRef>,
    AdminForm { admin, form }: AdminForm<NewEndpointForm>,
) -> Result<Response> {
    let label = match form.label.trim() {
        "" => "manual",
        l if l.chars().count() <= 200 => l,
        _ => return Err(ConnectorError::BadRequest("a label is at most 200 characters".into())),
    };
    let wallet = sepay_wallet(&state, admin.ws_id, optional_uuid(&form.wallet_id)?).await?;
    let created =
        endpoints::create_manual_endpoint(&state.db, &state.config.ingress_public_url, admin.ws_id, wallet, label)
            .await?;
    tracing::info!(ws_id = %admin.ws_id, endpoint_id = %created.endpoint.id, "manual endpoint created");
    Ok(pages::render(&pages::CreatedEndpointPage {
        ws_id: admin.ws_id,
        created: &created,
        rotated: false,
    }))
}

fn endpoint_path(path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>) -> Result<Uuid> {
    path.map(|Path((_, id))| id)
        .map_err(|_| ConnectorError::NotFound("endpoint"))
}

/// A SePay-provisioned endpoint is rotated by the provisioner (SePay must learn the new URL
/// first); a manual one here, showing its new secrets once.
pub(super) async fn rotate(
    State(state): State<AppRef>,
    path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>,
    AdminForm { admin, .. }: AdminForm,
) -> Result<Response> {
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
        return Ok(pages::render(&pages::CreatedStrigaEndpointPage {
            ws_id: admin.ws_id,
            created: &created,
            rotated: true,
        }));
    }
    Ok(pages::render(&pages::CreatedEndpointPage {
        ws_id: admin.ws_id,
        created: &created,
        rotated: true,
    }))
}

pub(super) async fn revoke(
    State(state): State<AppRef>,
    path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>,
    AdminForm { admin, form }: AdminForm<Confirmation>,
) -> Result<Response> {
    let endpoint = endpoints::endpoint_of(&state.db, admin.ws_id, endpoint_path(path)?).await?;
    let page = if endpoint.provider == Provider::Striga {
        "striga"
    } else {
        "integrations"
    };
    if !form.given() {
        return Ok(pages::render(&pages::Confirm {
            ws_id: admin.ws_id,
            csrf: &admin.csrf,
            action: format!("/ws/{}/endpoints/{}/revoke", admin.ws_id, endpoint.id),
            question: "Revoke this endpoint?",
            consequence: "Its webhook URL stops working at once: every delivery to it is refused (401), including the old URL's grace period. This cannot be undone; a new endpoint gets a new URL.",
            button: "Revoke the endpoint",
            back: format!("/ws/{}/{page}", admin.ws_id),
        }));
    }
    endpoints::revoke(&state.db, endpoint.id).await?;
    tracing::info!(ws_id = %admin.ws_id, endpoint_id = %endpoint.id, "endpoint revoked");
    Ok(to_page(&state, &format!("/ws/{}/{page}?done=revoked", admin.ws_id)))
}
