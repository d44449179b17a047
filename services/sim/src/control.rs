//! The control API (`/sim/...`): build the simulated world, create transactions (one, a burst or
//! a steady rate), arm faults, read the delivery log. Also loads fixtures.

use crate::Sim;
use crate::error::SimError;
use crate::model::{Bank, BankAccount, Company, DeliveryAttempt, Faults, Id, OAuthClient, SubAccount, Transaction};
use crate::oauth::random_token;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/sim/companies", post(create_company))
        .route("/sim/bank-accounts", post(create_bank_account))
        .route("/sim/bank-accounts/{id}", axum::routing::delete(delete_bank_account))
        .route("/sim/oauth-clients", post(create_client))
        .route("/sim/webhooks", post(create_webhook))
        .route(
            "/sim/webhooks/{id}",
            axum::routing::patch(edit_webhook).delete(delete_webhook),
        )
        .route("/sim/webhooks/{id}/delete", post(delete_webhook))
        .route("/sim/webhooks/{id}/disable", post(disable_webhook))
        .route("/sim/webhooks/{id}/enable", post(enable_webhook))
        .route("/sim/grants/revoke", post(revoke_grants))
        .route("/sim/transactions", post(create_transaction))
        .route("/sim/transactions/burst", post(burst))
        .route("/sim/transactions/rate", post(rate))
        .route("/sim/faults", get(get_faults).post(arm_faults).delete(disarm_faults))
        .route("/sim/deliveries", get(deliveries))
        .route("/sim/tokens/revoke", post(revoke_token))
        .route("/sim/state", get(state))
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn body<T>(b: JsonBody<T>) -> Result<T, SimError> {
    b.map(|Json(v)| v).map_err(|e| SimError::BadRequest(e.body_text()))
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewCompany {
    pub id: Option<Id>,
    pub name: String,
    pub api_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewBankAccount {
    pub id: Option<Id>,
    pub company_id: Id,
    pub account_number: Option<String>,
    pub bank_short_name: Option<String>,
    pub label: Option<String>,
    pub account_holder_name: Option<String>,
    #[serde(default, deserialize_with = "decimal")]
    pub accumulated: Decimal,
    /// Virtual (sub) account numbers.
    #[serde(default)]
    pub sub_accounts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewClient {
    pub company_id: Id,
    pub redirect_uris: Vec<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewTransaction {
    pub bank_account_id: Id,
    /// "in" or "out"; "in" when absent, as for a burst.
    #[serde(default = "default_in")]
    pub transfer_type: String,
    /// The burst's default amount when absent.
    #[serde(default = "default_amount", deserialize_with = "amount")]
    pub amount: Decimal,
    pub content: Option<String>,
    pub code: Option<String>,
    pub sub_account: Option<String>,
    pub reference_number: Option<String>,
    /// Vietnam local time "YYYY-MM-DD HH:mm:ss"; now when absent.
    pub transaction_date: Option<String>,
}

/// Starting state, loaded from `SIM_FIXTURE`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Fixture {
    pub companies: Vec<NewCompany>,
    pub bank_accounts: Vec<NewBankAccount>,
    pub oauth_clients: Vec<NewClient>,
    /// Webhook create bodies (seed 001) plus `company_id`.
    pub webhooks: Vec<Map<String, Value>>,
}

pub fn load_fixture(sim: &Arc<Sim>, fixture: Fixture) -> Result<(), SimError> {
    for c in fixture.companies {
        sim.add_company(c)?;
    }
    for a in fixture.bank_accounts {
        sim.add_bank_account(a)?;
    }
    for c in fixture.oauth_clients {
        sim.add_client(c)?;
    }
    for w in fixture.webhooks {
        let company = w
            .get("company_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| SimError::invalid("company_id", "required"))?;
        sim.create_webhook(company, &w, None)?;
    }
    Ok(())
}

impl Sim {
    pub fn add_company(&self, c: NewCompany) -> Result<Company, SimError> {
        let mut world = self.world();
        let id = match c.id {
            Some(id) if world.companies.contains_key(&id) => {
                return Err(SimError::invalid("id", "company exists"));
            }
            Some(id) => {
                world.observe_id("company", id);
                id
            }
            None => world.next_id("company"),
        };
        let company = Company {
            id,
            name: c.name,
            api_token: c.api_token.unwrap_or_else(|| random_token("spat_")),
        };
        world.companies.insert(id, company.clone());
        Ok(company)
    }

    pub fn add_bank_account(&self, a: NewBankAccount) -> Result<BankAccount, SimError> {
        let mut world = self.world();
        if !world.companies.contains_key(&a.company_id) {
            return Err(SimError::invalid("company_id", "unknown company"));
        }
        let id = match a.id {
            Some(id) if world.bank_accounts.contains_key(&id) => {
                return Err(SimError::invalid("id", "bank account exists"));
            }
            Some(id) => {
                world.observe_id("bank_account", id);
                id
            }
            None => world.next_id("bank_account"),
        };
        let sub_accounts = a
            .sub_accounts
            .into_iter()
            .map(|number| SubAccount {
                id: world.next_id("sub_account"),
                label: format!("VA {number}"),
                account_number: number,
            })
            .collect();
        let short = a.bank_short_name.unwrap_or_else(|| "Vietcombank".into());
        let account = BankAccount {
            id,
            company_id: a.company_id,
            label: a.label.unwrap_or_else(|| format!("{short} account {id}")),
            account_holder_name: a.account_holder_name.unwrap_or_else(|| "NGUYEN VAN A".into()),
            account_number: a.account_number.unwrap_or_else(|| format!("00710008{id:05}")),
            accumulated: a.accumulated,
            active: true,
            created_at: Utc::now(),
            last_transaction: None,
            bank: Bank::by_short_name(&short),
            sub_accounts,
        };
        world.bank_accounts.insert(id, account.clone());
        Ok(account)
    }

    pub fn add_client(&self, c: NewClient) -> Result<OAuthClient, SimError> {
        let mut world = self.world();
        if !world.companies.contains_key(&c.company_id) {
            return Err(SimError::invalid("company_id", "unknown company"));
        }
        if c.redirect_uris.is_empty() {
            return Err(SimError::invalid("redirect_uris", "at least one redirect URI"));
        }
        let n = world.next_id("client");
        let client = OAuthClient {
            client_id: c.client_id.unwrap_or_else(|| format!("sim-client-{n}")),
            client_secret: c.client_secret.unwrap_or_else(|| random_token("spcs_")),
            company_id: c.company_id,
            name: c.name.unwrap_or_else(|| format!("Client {n}")),
            redirect_uris: c.redirect_uris,
        };
        world.clients.insert(client.client_id.clone(), client.clone());
        Ok(client)
    }

    /// Records a transaction on an account and delivers it to matching webhooks.
    pub fn add_transaction(self: &Arc<Self>, t: NewTransaction) -> Result<Transaction, SimError> {
        let incoming = match t.transfer_type.as_str() {
            "in" => true,
            "out" => false,
            _ => return Err(SimError::invalid("transfer_type", "must be in or out")),
        };
        if t.amount <= Decimal::ZERO {
            return Err(SimError::invalid("amount", "must be positive"));
        }
        let date = match t.transaction_date.as_deref() {
            None => Utc::now(),
            Some(s) => sepay_core::vn_time::parse_vietnam_local(s)
                .ok_or_else(|| SimError::invalid("transaction_date", "must be YYYY-MM-DD HH:mm:ss"))?,
        };
        let tx = {
            let mut world = self.world();
            let id = world.next_id("transaction");
            let account = world
                .bank_accounts
                .get_mut(&t.bank_account_id)
                .ok_or_else(|| SimError::invalid("bank_account_id", "unknown bank account"))?;
            if let Some(sub) = &t.sub_account {
                if !account.sub_accounts.iter().any(|s| &s.account_number == sub) {
                    return Err(SimError::invalid("sub_account", "unknown sub account"));
                }
            }
            account.accumulated += if incoming { t.amount } else { -t.amount };
            account.last_transaction = Some(date);
            let content = t.content.unwrap_or_else(|| format!("SIM transfer {id}"));
            let tx = Transaction {
                id,
                bank_account_id: account.id,
                account_number: account.account_number.clone(),
                sub_account: t.sub_account,
                bank_short_name: account.bank.short_name.clone(),
                transaction_date: date,
                amount_in: if incoming { t.amount } else { Decimal::ZERO },
                amount_out: if incoming { Decimal::ZERO } else { t.amount },
                accumulated: account.accumulated,
                code: t.code,
                description: format!("BankAPINotify {content}"),
                transaction_content: content,
                reference_number: t.reference_number.unwrap_or_else(|| format!("FT{id:010}")),
            };
            world.transactions.insert(id, tx.clone());
            tx
        };
        crate::sender::dispatch(self, &tx);
        Ok(tx)
    }
}

fn created<T: Serialize>(value: T) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

async fn create_company(State(sim): State<Arc<Sim>>, b: JsonBody<NewCompany>) -> Result<Response, SimError> {
    Ok(created(sim.add_company(body(b)?)?))
}

async fn create_bank_account(State(sim): State<Arc<Sim>>, b: JsonBody<NewBankAccount>) -> Result<Response, SimError> {
    let account = sim.add_bank_account(body(b)?)?;
    let mut v = account.api();
    v["company_id"] = json!(account.company_id);
    v["sub_accounts"] = serde_json::to_value(&account.sub_accounts).unwrap_or_default();
    Ok(created(v))
}

/// An account closed at SePay: it disappears from every listing (its transactions stay).
async fn delete_bank_account(
    State(sim): State<Arc<Sim>>,
    axum::extract::Path(id): axum::extract::Path<Id>,
) -> Result<Response, SimError> {
    let mut world = sim.world();
    world
        .bank_accounts
        .remove(&id)
        .ok_or(SimError::NotFound("bank account"))?;
    let hooks: Vec<Id> = world
        .webhooks
        .values()
        .filter(|w| w.bank_account_id == id)
        .map(|w| w.id)
        .collect();
    for hook in hooks {
        world.remove_webhook(hook, "bank_account_deleted".into());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn create_client(State(sim): State<Arc<Sim>>, b: JsonBody<NewClient>) -> Result<Response, SimError> {
    Ok(created(sim.add_client(body(b)?)?))
}

/// What an admin does in SePay's dashboard: the same validation as the API.
async fn create_webhook(State(sim): State<Arc<Sim>>, b: JsonBody<Map<String, Value>>) -> Result<Response, SimError> {
    let b = body(b)?;
    let company = b
        .get("company_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| SimError::invalid("company_id", "required"))?;
    let webhook = sim.create_webhook(company, &b, None)?;
    Ok(created(webhook.to_api()))
}

/// An admin's edit in the dashboard: any create field, with the create rules (e.g. to make the
/// URL, auth or filters drift from what an integration set).
async fn edit_webhook(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<Id>,
    b: JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, SimError> {
    let mut patch = body(b)?;
    patch.remove("company_id");
    Ok(Json(sim.patch_webhook(id, patch)?.to_api()))
}

/// An admin deletes the webhook in the dashboard: it leaves the API's list and its pending
/// retries stop.
async fn delete_webhook(State(sim): State<Arc<Sim>>, Path(id): Path<Id>) -> Result<Json<Value>, SimError> {
    sim.world()
        .remove_webhook(id, "dashboard".into())
        .ok_or(SimError::NotFound("webhook"))?;
    Ok(Json(json!({"deleted": true, "id": id})))
}

/// An admin switches the webhook off in the dashboard: listed with `active` 0, nothing delivered.
async fn disable_webhook(State(sim): State<Arc<Sim>>, Path(id): Path<Id>) -> Result<Json<Value>, SimError> {
    set_active(&sim, id, 0)
}

async fn enable_webhook(State(sim): State<Arc<Sim>>, Path(id): Path<Id>) -> Result<Json<Value>, SimError> {
    set_active(&sim, id, 1)
}

fn set_active(sim: &Sim, id: Id, active: i64) -> Result<Json<Value>, SimError> {
    let mut world = sim.world();
    let webhook = world.webhooks.get_mut(&id).ok_or(SimError::NotFound("webhook"))?;
    webhook.active = active;
    Ok(Json(webhook.to_api()))
}

#[derive(Debug, Deserialize)]
struct RevokeGrants {
    client_id: Option<String>,
    company_id: Option<Id>,
    /// Also delete the webhooks those clients created through the API (SePay's docs do not say
    /// whether it keeps them).
    #[serde(default)]
    delete_webhooks: bool,
}

/// Revokes a grant as the company would in SePay's dashboard: every token of the client (or of
/// every client of the company) stops working.
async fn revoke_grants(State(sim): State<Arc<Sim>>, b: JsonBody<RevokeGrants>) -> Result<Json<Value>, SimError> {
    let r = body(b)?;
    let done = sim.revoke_grants(r.client_id.as_deref(), r.company_id, r.delete_webhooks)?;
    Ok(Json(serde_json::to_value(done).unwrap_or_default()))
}

async fn create_transaction(State(sim): State<Arc<Sim>>, b: JsonBody<NewTransaction>) -> Result<Response, SimError> {
    Ok(created(sim.add_transaction(body(b)?)?))
}

#[derive(Debug, Deserialize)]
struct Burst {
    bank_account_id: Id,
    count: usize,
    #[serde(default = "default_in")]
    transfer_type: String,
    #[serde(default = "default_amount", deserialize_with = "amount")]
    amount: Decimal,
}

/// A positive amount, as a JSON number or a numeric string.
fn amount<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let v = Value::deserialize(d)?;
    sepay_core::Amount::from_json(Some(&v))
        .map(|a| a.magnitude())
        .map_err(serde::de::Error::custom)
}

/// Any decimal, as a JSON number or a numeric string.
fn decimal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let text = match Value::deserialize(d)? {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s,
        other => return Err(serde::de::Error::custom(format!("not a number: {other}"))),
    };
    text.trim().parse().map_err(serde::de::Error::custom)
}

fn default_in() -> String {
    "in".into()
}
fn default_amount() -> Decimal {
    Decimal::from(100_000)
}

const MAX_BURST: usize = 10_000;

async fn burst(State(sim): State<Arc<Sim>>, b: JsonBody<Burst>) -> Result<Response, SimError> {
    let b = body(b)?;
    if b.count == 0 || b.count > MAX_BURST {
        return Err(SimError::invalid("count", format!("between 1 and {MAX_BURST}")));
    }
    let mut ids = Vec::with_capacity(b.count);
    for _ in 0..b.count {
        let tx = sim.add_transaction(NewTransaction {
            bank_account_id: b.bank_account_id,
            transfer_type: b.transfer_type.clone(),
            amount: b.amount,
            content: None,
            code: None,
            sub_account: None,
            reference_number: None,
            transaction_date: None,
        })?;
        ids.push(tx.id);
    }
    Ok(created(json!({"ids": ids})))
}

#[derive(Debug, Deserialize)]
struct Rate {
    bank_account_id: Id,
    per_second: f64,
    seconds: u64,
    #[serde(default = "default_in")]
    transfer_type: String,
    #[serde(default = "default_amount", deserialize_with = "amount")]
    amount: Decimal,
}

/// A steady stream of transactions in the background, bounded in rate and duration.
async fn rate(State(sim): State<Arc<Sim>>, b: JsonBody<Rate>) -> Result<Response, SimError> {
    let r = body(b)?;
    if !(r.per_second > 0.0 && r.per_second <= 1000.0) || r.seconds == 0 || r.seconds > 600 {
        return Err(SimError::invalid(
            "rate",
            "per_second in (0, 1000], seconds in [1, 600]",
        ));
    }
    if !sim.world().bank_accounts.contains_key(&r.bank_account_id) {
        return Err(SimError::invalid("bank_account_id", "unknown bank account"));
    }
    let total = (r.per_second * r.seconds as f64).round() as u64;
    let sim2 = sim.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / r.per_second));
        for _ in 0..total {
            tokio::select! {
                _ = sim2.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let _ = sim2.add_transaction(NewTransaction {
                bank_account_id: r.bank_account_id,
                transfer_type: r.transfer_type.clone(),
                amount: r.amount,
                content: None,
                code: None,
                sub_account: None,
                reference_number: None,
                transaction_date: None,
            });
        }
    });
    Ok((StatusCode::ACCEPTED, Json(json!({"scheduled": total}))).into_response())
}

async fn get_faults(State(sim): State<Arc<Sim>>) -> Json<Faults> {
    Json(sim.world().faults.clone())
}

/// Disarms every fault (what is armed is returned: now nothing).
async fn disarm_faults(State(sim): State<Arc<Sim>>) -> Json<Faults> {
    let mut world = sim.world();
    world.faults = Faults::default();
    Json(world.faults.clone())
}

async fn arm_faults(State(sim): State<Arc<Sim>>, b: JsonBody<Faults>) -> Result<Json<Faults>, SimError> {
    let armed = body(b)?;
    let mut world = sim.world();
    world.faults.merge(&armed);
    Ok(Json(world.faults.clone()))
}

#[derive(Debug, Deserialize)]
struct DeliveryFilter {
    webhook_id: Option<Id>,
    transaction_id: Option<Id>,
}

async fn deliveries(State(sim): State<Arc<Sim>>, Query(f): Query<DeliveryFilter>) -> Json<Vec<DeliveryAttempt>> {
    let world = sim.world();
    Json(
        world
            .deliveries
            .iter()
            .filter(|d| {
                f.webhook_id.is_none_or(|w| d.webhook_id == w) && f.transaction_id.is_none_or(|t| d.transaction_id == t)
            })
            .cloned()
            .collect(),
    )
}

#[derive(Debug, Deserialize)]
struct Revoke {
    token: String,
}

async fn revoke_token(State(sim): State<Arc<Sim>>, b: JsonBody<Revoke>) -> Result<Json<Value>, SimError> {
    let revoked = sim.revoke_token(&body(b)?.token);
    if revoked {
        Ok(Json(json!({"revoked": true})))
    } else {
        Err(SimError::NotFound("token"))
    }
}

/// A summary of the world (the control API is local: it shows API tokens and client secrets).
async fn state(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let world = sim.world();
    Json(json!({
        "companies": world.companies.values().collect::<Vec<_>>(),
        "bank_accounts": world.bank_accounts.values().map(|a| { let mut v = a.api(); v["company_id"] = json!(a.company_id); v }).collect::<Vec<_>>(),
        "oauth_clients": world.clients.values().collect::<Vec<_>>(),
        "webhooks": world.webhooks.values().map(|w| w.to_api()).collect::<Vec<_>>(),
        "deleted_webhooks": world.deleted_webhooks,
        "grants": world.grants(Utc::now()),
        "transactions": world.transactions.len(),
        "deliveries": world.deliveries.len(),
        "faults": world.faults,
    }))
}
