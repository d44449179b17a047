//! Classification rules (in the order they run: add, reorder, delete) and the AI credits.

use super::{Admin, AdminForm, AppRef, Confirmation, Flash, Result, to_page};
use crate::error::ConnectorError;
use crate::pages;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sepay_core::classify::RuleDraft;
use sepay_store::{classification, workspaces};
use serde::Deserialize;
use uuid::Uuid;

pub(super) async fn page(
    State(state): State<AppRef>,
    admin: Admin,
    query: std::result::Result<Query<Flash>, QueryRejection>,
) -> Result<Response> {
    let Query(flash) = query?;
    let ws = workspaces::get_workspace(&state.db, admin.ws_id).await?;
    let rules = classification::rules(&state.db, admin.ws_id).await?;
    let credits = classification::credit_ledger(&state.db, admin.ws_id).await?;
    Ok(pages::render(&pages::Rules {
        ws_id: admin.ws_id,
        ws_name: &ws.name,
        csrf: &admin.csrf,
        rules: &rules,
        credits,
        form: &NewRuleForm::default(),
        errors: &[],
        flash: flash.done(),
    }))
}

/// The add-rule form as typed (shown again, with every mistake, when refused).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewRuleForm {
    pub name: String,
    /// One condition a line: `content contains grab`.
    pub conditions: String,
    /// "any": one condition suffices; otherwise all must hold.
    pub matching: String,
    pub category: String,
    /// "expense" or "income".
    pub kind: String,
    /// Comma-separated.
    pub tags: String,
    /// Present: later rules may add their tags too.
    pub keep_going: Option<String>,
}

/// Adds a rule at the end of the order; the same checks as `sepayctl rules add`.
pub(super) async fn create(
    State(state): State<AppRef>,
    AdminForm { admin, form }: AdminForm<NewRuleForm>,
) -> Result<Response> {
    let parsed = RuleDraft::parse_all(
        &form.name,
        form.conditions.lines(),
        form.matching != "any",
        Some(form.category.as_str()),
        form.kind == "expense",
        form.tags.split(','),
        form.keep_going.is_none(),
    );
    let draft = match parsed {
        Ok(draft) => draft,
        Err(errors) => {
            let ws = workspaces::get_workspace(&state.db, admin.ws_id).await?;
            let rules = classification::rules(&state.db, admin.ws_id).await?;
            let credits = classification::credit_ledger(&state.db, admin.ws_id).await?;
            let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            let page = pages::render(&pages::Rules {
                ws_id: admin.ws_id,
                ws_name: &ws.name,
                csrf: &admin.csrf,
                rules: &rules,
                credits,
                form: &form,
                errors: &errors,
                flash: None,
            });
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let id = classification::create_rule(&state.db, admin.ws_id, &draft).await?;
    tracing::info!(ws_id = %admin.ws_id, rule_id = %id, "classification rule added");
    Ok(to_page(&state, &format!("/ws/{}/rules?done=rule_added", admin.ws_id)))
}

fn rule_path(path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>) -> Result<Uuid> {
    path.map(|Path((_, id))| id)
        .map_err(|_| ConnectorError::NotFound("rule"))
}

pub(super) async fn delete(
    State(state): State<AppRef>,
    path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>,
    AdminForm { admin, form }: AdminForm<Confirmation>,
) -> Result<Response> {
    let id = rule_path(path)?;
    // another workspace's rule is as absent as a missing one, asked about or not
    if !classification::rules(&state.db, admin.ws_id)
        .await?
        .iter()
        .any(|r| r.id == id)
    {
        return Err(ConnectorError::NotFound("rule"));
    }
    if !form.given() {
        return Ok(pages::render(&pages::Confirm {
            ws_id: admin.ws_id,
            csrf: &admin.csrf,
            action: format!("/ws/{}/rules/{id}/delete", admin.ws_id),
            question: "Delete this rule?",
            consequence: "Transactions booked from now on are no longer classified by it; those already booked keep their category and tags.",
            button: "Delete the rule",
            back: format!("/ws/{}/rules", admin.ws_id),
        }));
    }
    classification::delete_rule(&state.db, Some(admin.ws_id), id).await?;
    tracing::info!(ws_id = %admin.ws_id, rule_id = %id, "classification rule deleted");
    Ok(to_page(&state, &format!("/ws/{}/rules?done=rule_deleted", admin.ws_id)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct MoveForm {
    /// "up" or "down".
    direction: String,
}

pub(super) async fn move_rule(
    State(state): State<AppRef>,
    path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>,
    AdminForm { admin, form }: AdminForm<MoveForm>,
) -> Result<Response> {
    let up = match form.direction.as_str() {
        "up" => true,
        "down" => false,
        _ => return Err(ConnectorError::BadRequest("direction is up or down".into())),
    };
    classification::move_rule(&state.db, admin.ws_id, rule_path(path)?, up).await?;
    Ok(to_page(&state, &format!("/ws/{}/rules?done=rule_moved", admin.ws_id)))
}
