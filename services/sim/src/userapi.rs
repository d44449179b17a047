//! The legacy API-token API under `/userapi`: every field a string, `since_id` inclusive,
//! `limit` up to 5000, Vietnam-time date filters.

use crate::Sim;
use crate::error::{SimError, UserApiError};
use crate::model::{Id, World};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/userapi/bankaccounts/list", get(accounts_list))
        .route("/userapi/bankaccounts/details/{id}", get(account_details))
        .route("/userapi/bankaccounts/count", get(accounts_count))
        .route("/userapi/transactions/list", get(transactions_list))
        .route("/userapi/transactions/details/{id}", get(transaction_details))
        .route("/userapi/transactions/count", get(transactions_count))
}

type Params = Query<HashMap<String, String>>;

fn envelope(key: &str, value: Value) -> Json<Value> {
    Json(json!({"status": 200, "error": null, "messages": {"success": true}, key: value}))
}

fn parse<T: std::str::FromStr>(q: &HashMap<String, String>, field: &str) -> Result<Option<T>, SimError> {
    q.get(field)
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|_| SimError::invalid(field, format!("{field} is not valid")))
        })
        .transpose()
}

fn date(q: &HashMap<String, String>, field: &str) -> Result<Option<DateTime<Utc>>, SimError> {
    q.get(field)
        .map(|v| {
            sepay_core::vn_time::parse_vietnam_local(v)
                .ok_or_else(|| SimError::invalid(field, format!("{field} must be YYYY-MM-DD HH:mm:ss")))
        })
        .transpose()
}

fn limit(q: &HashMap<String, String>, default: usize, max: usize) -> Result<usize, SimError> {
    match parse::<usize>(q, "limit")? {
        None => Ok(default),
        Some(0) => Err(SimError::invalid("limit", "limit must be at least 1")),
        Some(n) => Ok(n.min(max)),
    }
}

fn account_rows(world: &World, company: Id, q: &HashMap<String, String>) -> Result<Vec<Value>, SimError> {
    let since: Option<Id> = parse(q, "since_id")?;
    let (acc_min, acc_max): (Option<Decimal>, Option<Decimal>) =
        (parse(q, "accumulated_min")?, parse(q, "accumulated_max")?);
    let (last_min, last_max) = (
        date(q, "last_transaction_date_min")?,
        date(q, "last_transaction_date_max")?,
    );
    let short = q.get("short_name");
    Ok(world
        .bank_accounts
        .values()
        .filter(|a| a.company_id == company)
        .filter(|a| since.is_none_or(|s| a.id >= s))
        .filter(|a| short.is_none_or(|s| &a.bank.short_name == s))
        .filter(|a| acc_min.is_none_or(|m| a.accumulated >= m) && acc_max.is_none_or(|m| a.accumulated <= m))
        .filter(|a| last_min.is_none_or(|m| a.last_transaction.is_some_and(|t| t >= m)))
        .filter(|a| last_max.is_none_or(|m| a.last_transaction.is_some_and(|t| t <= m)))
        .map(|a| a.userapi())
        .collect())
}

async fn accounts_list(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Json<Value>, UserApiError> {
    let company = sim.authorize_api_token(&headers)?;
    let limit = limit(&q, 100, 100)?;
    let rows = account_rows(&sim.world(), company, &q)?;
    Ok(envelope(
        "bankaccounts",
        Value::Array(rows.into_iter().take(limit).collect()),
    ))
}

async fn accounts_count(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Json<Value>, UserApiError> {
    let company = sim.authorize_api_token(&headers)?;
    let rows = account_rows(&sim.world(), company, &q)?;
    Ok(envelope("count_bankaccounts", json!(rows.len())))
}

async fn account_details(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, UserApiError> {
    let company = sim.authorize_api_token(&headers)?;
    let world = sim.world();
    let account = id
        .parse::<Id>()
        .ok()
        .and_then(|id| world.bank_accounts.get(&id))
        .filter(|a| a.company_id == company)
        .ok_or(SimError::NotFound("bank account"))?;
    Ok(envelope("bankaccount", account.userapi()))
}

fn transaction_rows(world: &World, company: Id, q: &HashMap<String, String>) -> Result<Vec<Value>, SimError> {
    let since: Option<Id> = parse(q, "since_id")?;
    let (min, max) = (date(q, "transaction_date_min")?, date(q, "transaction_date_max")?);
    let (amount_in, amount_out): (Option<Decimal>, Option<Decimal>) = (parse(q, "amount_in")?, parse(q, "amount_out")?);
    let account = q.get("account_number");
    let reference = q.get("reference_number");
    Ok(world
        .transactions
        .values()
        .rev()
        .filter(|t| {
            world
                .bank_accounts
                .get(&t.bank_account_id)
                .is_some_and(|a| a.company_id == company)
        })
        .filter(|t| since.is_none_or(|s| t.id >= s))
        .filter(|t| min.is_none_or(|m| t.transaction_date >= m) && max.is_none_or(|m| t.transaction_date <= m))
        .filter(|t| account.is_none_or(|n| &t.account_number == n))
        .filter(|t| reference.is_none_or(|r| &t.reference_number == r))
        .filter(|t| amount_in.is_none_or(|a| t.amount_in == a) && amount_out.is_none_or(|a| t.amount_out == a))
        .map(|t| t.userapi())
        .collect())
}

async fn transactions_list(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Json<Value>, UserApiError> {
    let company = sim.authorize_api_token(&headers)?;
    let limit = limit(&q, 5000, 5000)?;
    let rows = transaction_rows(&sim.world(), company, &q)?;
    Ok(envelope(
        "transactions",
        Value::Array(rows.into_iter().take(limit).collect()),
    ))
}

async fn transactions_count(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Json<Value>, UserApiError> {
    let company = sim.authorize_api_token(&headers)?;
    let rows = transaction_rows(&sim.world(), company, &q)?;
    Ok(envelope("count_transactions", json!(rows.len())))
}

async fn transaction_details(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, UserApiError> {
    let company = sim.authorize_api_token(&headers)?;
    let world = sim.world();
    let tx = id
        .parse::<Id>()
        .ok()
        .and_then(|id| world.transactions.get(&id))
        .filter(|t| {
            world
                .bank_accounts
                .get(&t.bank_account_id)
                .is_some_and(|a| a.company_id == company)
        })
        .ok_or(SimError::NotFound("transaction"))?;
    Ok(envelope("transaction", tx.userapi()))
}
