//! The OAuth2 API under `/api/v1`: bank accounts, webhooks, transactions. Every call checks its
//! scope; webhook writes follow seed 001's validation and error codes.

use crate::Sim;
use crate::error::SimError;
use crate::model::{Faults, Id, Webhook, World};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/api/v1/bank-accounts", get(list_accounts))
        .route("/api/v1/bank-accounts/{id}", get(get_account))
        .route("/api/v1/bank-accounts/{id}/sub-accounts", get(sub_accounts))
        .route("/api/v1/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/api/v1/webhooks/{id}",
            get(get_webhook).patch(patch_webhook).delete(delete_webhook),
        )
        .route("/api/v1/transactions", get(list_transactions))
}

fn ok(data: Value) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

#[derive(Debug, Deserialize)]
struct Page {
    page: Option<String>,
    limit: Option<String>,
}

/// `page` from 1, `limit` up to `max`; a malformed value is a validation error.
fn paginate<T: Clone>(items: Vec<T>, page: &Page, default_limit: usize, max: usize) -> Result<Vec<T>, SimError> {
    let number = |field: &str, v: &Option<String>, default: usize| -> Result<usize, SimError> {
        match v {
            None => Ok(default),
            Some(s) => s
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| SimError::invalid(field, "must be a positive integer")),
        }
    };
    let page_no = number("page", &page.page, 1)?;
    let limit = number("limit", &page.limit, default_limit)?.min(max);
    Ok(items
        .into_iter()
        .skip((page_no - 1).saturating_mul(limit))
        .take(limit)
        .collect())
}

async fn list_accounts(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(page): Query<Page>,
) -> Result<Response, SimError> {
    let company = sim.authorize_bearer(&headers, "bank-account:read")?;
    let world = sim.world();
    // page first, render after: a page of a large company costs its own 100 rows only
    let accounts: Vec<&crate::model::BankAccount> = world
        .bank_accounts
        .values()
        .filter(|a| a.company_id == company)
        .collect();
    let rows = paginate(accounts, &page, 100, 100)?
        .into_iter()
        .map(|a| a.api())
        .collect();
    Ok(ok(Value::Array(rows)))
}

fn own_account(world: &World, company: Id, id: &str) -> Result<Id, SimError> {
    let id: Id = id.parse().map_err(|_| SimError::NotFound("bank account"))?;
    world
        .bank_accounts
        .get(&id)
        .filter(|a| a.company_id == company)
        .map(|a| a.id)
        .ok_or(SimError::NotFound("bank account"))
}

async fn get_account(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    let company = sim.authorize_bearer(&headers, "bank-account:read")?;
    let world = sim.world();
    let id = own_account(&world, company, &id)?;
    Ok(ok(world.bank_accounts[&id].api()))
}

async fn sub_accounts(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    let company = sim.authorize_bearer(&headers, "bank-account:read")?;
    let world = sim.world();
    let id = own_account(&world, company, &id)?;
    Ok(ok(
        serde_json::to_value(&world.bank_accounts[&id].sub_accounts).unwrap_or_default()
    ))
}

#[derive(Debug, Deserialize)]
struct WebhookFilter {
    webhook_url: Option<String>,
    api_key: Option<String>,
    active: Option<String>,
    #[serde(flatten)]
    page: HashMap<String, String>,
}

async fn list_webhooks(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(f): Query<WebhookFilter>,
) -> Result<Response, SimError> {
    let company = sim.authorize_bearer(&headers, "webhook:read")?;
    let active = match f.active.as_deref() {
        None => None,
        Some("0") => Some(0),
        Some("1") => Some(1),
        Some(_) => return Err(SimError::invalid("active", "must be 0 or 1")),
    };
    let hooks: Vec<Value> = sim
        .world()
        .webhooks
        .values()
        .filter(|w| w.company_id == company)
        .filter(|w| f.webhook_url.as_deref().is_none_or(|u| w.webhook_url.contains(u)))
        .filter(|w| f.api_key.as_deref().is_none_or(|k| w.api_key.as_deref() == Some(k)))
        .filter(|w| active.is_none_or(|a| w.active == a))
        .map(Webhook::to_api)
        .collect();
    let page = Page {
        page: f.page.get("page").cloned(),
        limit: f.page.get("limit").cloned(),
    };
    Ok(ok(Value::Array(paginate(hooks, &page, 20, 100)?)))
}

fn own_webhook(world: &World, company: Id, id: &str) -> Result<Id, SimError> {
    let id: Id = id.parse().map_err(|_| SimError::NotFound("webhook"))?;
    world
        .webhooks
        .get(&id)
        .filter(|w| w.company_id == company)
        .map(|w| w.id)
        .ok_or(SimError::NotFound("webhook"))
}

async fn get_webhook(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    let company = sim.authorize_bearer(&headers, "webhook:read")?;
    let world = sim.world();
    let id = own_webhook(&world, company, &id)?;
    Ok(ok(world.webhooks[&id].to_api()))
}

fn body_object(
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Map<String, Value>, SimError> {
    match body {
        Ok(Json(Value::Object(map))) => Ok(map),
        Ok(_) => Err(SimError::invalid("body", "must be a JSON object")),
        Err(e) => Err(SimError::invalid("body", e.body_text())),
    }
}

async fn create_webhook(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, SimError> {
    let (company, client) = sim.authorize_bearer_client(&headers, "webhook:write")?;
    let body = body_object(body)?;
    let webhook = sim.create_webhook(company, &body, Some(client))?;
    let id = webhook.id;
    // the create response shape is undocumented; clients read `id` at the top level or under data
    Ok((
        StatusCode::CREATED,
        Json(json!({"status": "success", "message": "Webhook created", "id": id, "data": webhook.to_api()})),
    )
        .into_response())
}

async fn patch_webhook(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, SimError> {
    let company = sim.authorize_bearer(&headers, "webhook:write")?;
    let patch = body_object(body)?;
    let id = own_webhook(&sim.world(), company, &id)?;
    let updated = sim.patch_webhook(id, patch)?;
    Ok(
        Json(json!({"status": "success", "message": "Webhook updated", "id": id, "data": updated.to_api()}))
            .into_response(),
    )
}

async fn delete_webhook(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SimError> {
    let (company, client) = sim.authorize_bearer_client(&headers, "webhook:delete")?;
    let mut world = sim.world();
    let id = own_webhook(&world, company, &id)?;
    world.remove_webhook(id, format!("api:{client}"));
    Ok(Json(json!({"status": "success", "message": "Webhook deleted", "id": id})).into_response())
}

impl Sim {
    /// Creates a webhook for `company` (the API and the dashboard both come here); `created_by`
    /// is the OAuth client when it comes through the API.
    pub fn create_webhook(
        &self,
        company: Id,
        body: &Map<String, Value>,
        created_by: Option<String>,
    ) -> Result<Webhook, SimError> {
        let mut world = self.world();
        if Faults::take(&mut world.faults.fail_webhook_creation) {
            return Err(SimError::Injected);
        }
        let mut webhook = validate_webhook(&world, company, body)?;
        webhook.id = world.next_id("webhook");
        webhook.created_by = created_by;
        world.webhooks.insert(webhook.id, webhook.clone());
        Ok(webhook)
    }

    /// Applies `patch` over webhook `id` with the create rules (the API's PATCH and the
    /// dashboard's edit both come here).
    pub fn patch_webhook(&self, id: Id, patch: Map<String, Value>) -> Result<Webhook, SimError> {
        let mut world = self.world();
        let existing = world.webhooks.get(&id).ok_or(SimError::NotFound("webhook"))?;
        let mut merged = serde_json::to_value(existing)
            .unwrap_or_default()
            .as_object()
            .cloned()
            .unwrap_or_default();
        if let Some(secret) = &existing.oauth2_client_secret {
            merged.insert("oauth2_client_secret".into(), json!(secret));
        }
        merged.extend(patch);
        let mut updated = validate_webhook(&world, existing.company_id, &merged)?;
        updated.id = id;
        updated.created_at = existing.created_at;
        updated.created_by = existing.created_by.clone();
        world.webhooks.insert(id, updated.clone());
        Ok(updated)
    }
}

/// Seed 001's rules: every problem is reported, by field.
fn validate_webhook(world: &World, company: Id, body: &Map<String, Value>) -> Result<Webhook, SimError> {
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut err = |field: &str, msg: &str| errors.entry(field.to_owned()).or_default().push(msg.to_owned());
    let text = |field: &str| {
        body.get(field)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let int = |field: &str| match body.get(field) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let flag = |field: &str| match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b as i64)),
        Some(_) => match int(field) {
            Some(v @ (0 | 1)) => Ok(Some(v)),
            _ => Err(()),
        },
    };

    let bank_account_id = int("bank_account_id");
    let account = bank_account_id
        .and_then(|id| world.bank_accounts.get(&id))
        .filter(|a| a.company_id == company);
    match (body.get("bank_account_id"), bank_account_id, account) {
        (None | Some(Value::Null), _, _) => err("bank_account_id", "The bank_account_id field is required."),
        (_, None, _) => err("bank_account_id", "The bank_account_id must be an integer."),
        (_, Some(_), None) => err("bank_account_id", "The selected bank_account_id is invalid."),
        _ => {}
    }
    let name = text("name");
    if name.is_none() {
        err("name", "The name field is required.");
    }
    let event_type = text("event_type");
    match event_type.as_deref() {
        None => err("event_type", "The event_type field is required."),
        Some("All" | "In_only" | "Out_only") => {}
        Some(_) => err("event_type", "The selected event_type is invalid."),
    }
    let authen_type = text("authen_type");
    match authen_type.as_deref() {
        None => err("authen_type", "The authen_type field is required."),
        Some("No_Authen" | "OAuth2.0" | "Api_Key" | "HMAC_SHA256") => {}
        Some(_) => err("authen_type", "The selected authen_type is invalid."),
    }
    let webhook_url = text("webhook_url");
    match webhook_url.as_deref().map(url::Url::parse) {
        None => err("webhook_url", "The webhook_url field is required."),
        Some(Ok(u)) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        Some(_) => err("webhook_url", "The webhook_url format is invalid."),
    }
    let is_verify_payment = match (body.get("is_verify_payment"), flag("is_verify_payment")) {
        (None | Some(Value::Null), _) => {
            err("is_verify_payment", "The is_verify_payment field is required.");
            0
        }
        (_, Ok(Some(v))) => v,
        _ => {
            err("is_verify_payment", "The is_verify_payment must be 0 or 1.");
            0
        }
    };
    let mut optional_flag = |field: &str, default: i64| match flag(field) {
        Ok(v) => v.unwrap_or(default),
        Err(()) => {
            err(field, &format!("The {field} must be 0 or 1."));
            default
        }
    };
    let skip_if_no_code = optional_flag("skip_if_no_code", 0);
    let active = optional_flag("active", 1);
    let only_va = optional_flag("only_va", 0);
    let retry_conditions = match body.get("retry_conditions") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            err("retry_conditions", "The retry_conditions must be an array.");
            vec![]
        }
    };
    let sub_ids: Vec<Id> = match body.get("bank_sub_account_ids") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => {
            let ids: Vec<Id> = a.iter().filter_map(Value::as_i64).collect();
            let known = |id: &Id| account.is_some_and(|acc| acc.sub_accounts.iter().any(|s| s.id == *id));
            if ids.len() != a.len() || !ids.iter().all(known) {
                err("bank_sub_account_ids", "The selected bank_sub_account_ids is invalid.");
            }
            ids
        }
        Some(_) => {
            err("bank_sub_account_ids", "The bank_sub_account_ids must be an array.");
            vec![]
        }
    };
    if only_va == 1 && sub_ids.is_empty() {
        err(
            "bank_sub_account_ids",
            "The bank_sub_account_ids field is required when only_va is 1.",
        );
    }
    let content_type = text("request_content_type");
    let needs_content_type = matches!(authen_type.as_deref(), Some("Api_Key" | "No_Authen" | "HMAC_SHA256"));
    match content_type.as_deref() {
        None if needs_content_type => err("request_content_type", "The request_content_type field is required."),
        None | Some("Json" | "multipart_form-data") => {}
        Some(_) => err("request_content_type", "The selected request_content_type is invalid."),
    }
    let api_key = text("api_key");
    if matches!(authen_type.as_deref(), Some("Api_Key" | "HMAC_SHA256")) && api_key.is_none() {
        err("api_key", "The api_key field is required when authen_type is Api_Key.");
    }
    let (token_url, client_id, client_secret) = (
        text("oauth2_access_token_url"),
        text("oauth2_client_id"),
        text("oauth2_client_secret"),
    );
    if authen_type.as_deref() == Some("OAuth2.0") {
        for (field, v) in [
            ("oauth2_access_token_url", &token_url),
            ("oauth2_client_id", &client_id),
            ("oauth2_client_secret", &client_secret),
        ] {
            if v.is_none() {
                err(
                    field,
                    &format!("The {field} field is required when authen_type is OAuth2.0."),
                );
            }
        }
    }
    if !errors.is_empty() {
        return Err(SimError::Validation(errors));
    }
    Ok(Webhook {
        id: 0,
        company_id: company,
        bank_account_id: bank_account_id.unwrap_or_default(),
        name: name.unwrap_or_default(),
        event_type: event_type.unwrap_or_default(),
        authen_type: authen_type.unwrap_or_default(),
        webhook_url: webhook_url.unwrap_or_default(),
        is_verify_payment,
        skip_if_no_code,
        active,
        only_va,
        bank_sub_account_ids: sub_ids,
        retry_conditions,
        request_content_type: content_type,
        api_key,
        oauth2_access_token_url: token_url,
        oauth2_client_id: client_id,
        oauth2_client_secret: client_secret,
        created_at: Utc::now(),
        created_by: None,
    })
}

#[derive(Debug, Deserialize)]
struct TxFilter {
    bank_account_id: Option<String>,
    account_number: Option<String>,
    reference_number: Option<String>,
    from_date: Option<String>,
    to_date: Option<String>,
    amount_in: Option<String>,
    amount_out: Option<String>,
    page: Option<String>,
    limit: Option<String>,
}

async fn list_transactions(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(f): Query<TxFilter>,
) -> Result<Response, SimError> {
    let company = sim.authorize_bearer(&headers, "transaction:read")?;
    let date = |field: &str, v: &Option<String>| -> Result<Option<NaiveDate>, SimError> {
        v.as_deref()
            .map(|s| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| SimError::invalid(field, "must be YYYY-MM-DD"))
            })
            .transpose()
    };
    let (from, to) = (date("from_date", &f.from_date)?, date("to_date", &f.to_date)?);
    let decimal = |field: &str, v: &Option<String>| -> Result<Option<rust_decimal::Decimal>, SimError> {
        v.as_deref()
            .map(|s| s.parse().map_err(|_| SimError::invalid(field, "must be a number")))
            .transpose()
    };
    let (amount_in, amount_out) = (
        decimal("amount_in", &f.amount_in)?,
        decimal("amount_out", &f.amount_out)?,
    );
    let account_id: Option<Id> = f
        .bank_account_id
        .as_deref()
        .map(|s| {
            s.parse()
                .map_err(|_| SimError::invalid("bank_account_id", "must be an integer"))
        })
        .transpose()?;
    let world = sim.world();
    let vn = sepay_core::vn_time::vietnam();
    let rows: Vec<Value> = world
        .transactions
        .values()
        .rev()
        .filter(|t| {
            world
                .bank_accounts
                .get(&t.bank_account_id)
                .is_some_and(|a| a.company_id == company)
        })
        .filter(|t| account_id.is_none_or(|id| t.bank_account_id == id))
        .filter(|t| f.account_number.as_deref().is_none_or(|n| t.account_number == n))
        .filter(|t| f.reference_number.as_deref().is_none_or(|r| t.reference_number == r))
        .filter(|t| amount_in.is_none_or(|a| t.amount_in == a))
        .filter(|t| amount_out.is_none_or(|a| t.amount_out == a))
        .filter(|t| {
            let day = t.transaction_date.with_timezone(&vn).date_naive();
            from.is_none_or(|d| day >= d) && to.is_none_or(|d| day <= d)
        })
        .map(|t| t.api())
        .collect();
    drop(world);
    Ok(ok(Value::Array(paginate(
        rows,
        &Page {
            page: f.page,
            limit: f.limit,
        },
        20,
        100,
    )?)))
}
