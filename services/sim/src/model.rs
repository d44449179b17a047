//! The simulator's world: companies, bank accounts, OAuth clients and tokens, webhooks,
//! transactions and the delivery log. Plain data and pure rules; the HTTP edges lock and call.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub type Id = i64;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Company {
    pub id: Id,
    pub name: String,
    /// Legacy API token for `/userapi`.
    pub api_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bank {
    pub short_name: String,
    pub full_name: String,
    pub code: String,
    pub bin: String,
}

impl Bank {
    pub fn by_short_name(short: &str) -> Self {
        let (full, code, bin) = match short {
            "Vietcombank" => ("Ngân hàng TMCP Ngoại Thương Việt Nam", "VCB", "970436"),
            "MBBank" => ("Ngân hàng TMCP Quân đội", "MB", "970422"),
            "Techcombank" => ("Ngân hàng TMCP Kỹ Thương Việt Nam", "TCB", "970407"),
            "ACB" => ("Ngân hàng TMCP Á Châu", "ACB", "970416"),
            "VPBank" => ("Ngân hàng TMCP Việt Nam Thịnh Vượng", "VPB", "970432"),
            _ => ("Ngân hàng mô phỏng", "SIM", "970000"),
        };
        Self {
            short_name: short.into(),
            full_name: full.into(),
            code: code.into(),
            bin: bin.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubAccount {
    pub id: Id,
    pub account_number: String,
    pub label: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BankAccount {
    pub id: Id,
    pub company_id: Id,
    pub label: String,
    pub account_holder_name: String,
    pub account_number: String,
    pub accumulated: Decimal,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub last_transaction: Option<DateTime<Utc>>,
    pub bank: Bank,
    pub sub_accounts: Vec<SubAccount>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
    pub company_id: Id,
    pub name: String,
    pub redirect_uris: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct AuthCode {
    pub client_id: String,
    pub company_id: Id,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
    pub code_challenge: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Grant {
    pub client_id: String,
    pub company_id: Id,
    pub scopes: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

impl Grant {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && self.expires_at > now
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Webhook {
    pub id: Id,
    pub company_id: Id,
    pub bank_account_id: Id,
    pub name: String,
    pub event_type: String,
    pub authen_type: String,
    pub webhook_url: String,
    pub is_verify_payment: i64,
    pub skip_if_no_code: i64,
    pub active: i64,
    pub only_va: i64,
    pub bank_sub_account_ids: Vec<Id>,
    pub retry_conditions: Vec<Value>,
    pub request_content_type: Option<String>,
    pub api_key: Option<String>,
    pub oauth2_access_token_url: Option<String>,
    pub oauth2_client_id: Option<String>,
    #[serde(skip_serializing)]
    pub oauth2_client_secret: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The OAuth client that created it through the API; `None` when made in the dashboard.
    #[serde(skip)]
    pub created_by: Option<String>,
}

impl Webhook {
    /// Whether a new transaction is delivered to this webhook (SePay's filters).
    pub fn matches(&self, tx: &Transaction, account: &BankAccount) -> bool {
        if self.active != 1 || self.bank_account_id != tx.bank_account_id {
            return false;
        }
        let direction_ok = match self.event_type.as_str() {
            "In_only" => tx.amount_in > Decimal::ZERO,
            "Out_only" => tx.amount_out > Decimal::ZERO,
            _ => true,
        };
        let code_ok = self.skip_if_no_code != 1 || tx.code.as_deref().is_some_and(|c| !c.is_empty());
        let va_ok = self.only_va != 1
            || tx.sub_account.as_deref().is_some_and(|sub| {
                account
                    .sub_accounts
                    .iter()
                    .any(|s| s.account_number == sub && self.bank_sub_account_ids.contains(&s.id))
            });
        direction_ok && code_ok && va_ok
    }

    pub fn to_api(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["created_at"] = json!(sepay_core::vn_time::format_vietnam_local(self.created_at));
        v
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transaction {
    pub id: Id,
    pub bank_account_id: Id,
    pub account_number: String,
    pub sub_account: Option<String>,
    pub bank_short_name: String,
    pub transaction_date: DateTime<Utc>,
    pub amount_in: Decimal,
    pub amount_out: Decimal,
    pub accumulated: Decimal,
    pub code: Option<String>,
    pub transaction_content: String,
    pub reference_number: String,
    pub description: String,
}

impl Transaction {
    pub fn transfer_type(&self) -> &'static str {
        if self.amount_in > Decimal::ZERO { "in" } else { "out" }
    }

    pub fn amount(&self) -> Decimal {
        if self.amount_in > Decimal::ZERO {
            self.amount_in
        } else {
            self.amount_out
        }
    }

    /// The webhook body (seed 004).
    pub fn webhook_body(&self) -> Value {
        json!({
            "id": self.id,
            "gateway": self.bank_short_name,
            "transactionDate": sepay_core::vn_time::format_vietnam_local(self.transaction_date),
            "accountNumber": self.account_number,
            "code": self.code,
            "content": self.transaction_content,
            "transferType": self.transfer_type(),
            "transferAmount": number(self.amount()),
            "accumulated": number(self.accumulated),
            "subAccount": self.sub_account,
            "referenceCode": self.reference_number,
            "description": self.description,
        })
    }

    /// Legacy `/userapi` shape: every field a string.
    pub fn userapi(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "bank_brand_name": self.bank_short_name,
            "account_number": self.account_number,
            "transaction_date": sepay_core::vn_time::format_vietnam_local(self.transaction_date),
            "amount_out": money2(self.amount_out),
            "amount_in": money2(self.amount_in),
            "accumulated": money2(self.accumulated),
            "transaction_content": self.transaction_content,
            "reference_number": self.reference_number,
            "code": self.code,
            "sub_account": self.sub_account,
            "bank_account_id": self.bank_account_id.to_string(),
        })
    }

    /// OAuth2 API shape.
    pub fn api(&self) -> Value {
        json!({
            "id": self.id,
            "bank_account_id": self.bank_account_id,
            "bank_brand_name": self.bank_short_name,
            "account_number": self.account_number,
            "sub_account": self.sub_account,
            "transaction_date": sepay_core::vn_time::format_vietnam_local(self.transaction_date),
            "amount_in": number(self.amount_in),
            "amount_out": number(self.amount_out),
            "accumulated": number(self.accumulated),
            "code": self.code,
            "transaction_content": self.transaction_content,
            "reference_number": self.reference_number,
            "description": self.description,
        })
    }
}

impl BankAccount {
    /// OAuth2 API shape.
    pub fn api(&self) -> Value {
        json!({
            "id": self.id,
            "label": self.label,
            "account_holder_name": self.account_holder_name,
            "account_number": self.account_number,
            "accumulated": number(self.accumulated),
            "active": self.active,
            "created_at": sepay_core::vn_time::format_vietnam_local(self.created_at),
            "bank": self.bank,
        })
    }

    /// Legacy `/userapi` shape: every field a string.
    pub fn userapi(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "account_holder_name": self.account_holder_name,
            "account_number": self.account_number,
            "accumulated": money2(self.accumulated),
            "last_transaction": self.last_transaction.map(sepay_core::vn_time::format_vietnam_local),
            "label": self.label,
            "active": if self.active { "1" } else { "0" },
            "created_at": sepay_core::vn_time::format_vietnam_local(self.created_at),
            "bank_short_name": self.bank.short_name,
            "bank_full_name": self.bank.full_name,
            "bank_bin": self.bank.bin,
            "bank_code": self.bank.code,
        })
    }
}

/// A JSON number for a decimal (integers stay integers, as SePay sends VND).
fn number(d: Decimal) -> Value {
    let n = d.normalize();
    if n.scale() == 0 {
        if let Ok(i) = i64::try_from(n.mantissa()) {
            return json!(i);
        }
    }
    serde_json::from_str(&n.to_string()).unwrap_or(Value::Null)
}

fn money2(d: Decimal) -> String {
    format!("{:.2}", d)
}

/// One attempt of a webhook delivery and its answer.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryAttempt {
    pub webhook_id: Id,
    pub transaction_id: Id,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub duration_ms: u64,
    pub success: bool,
}

/// Faults armed through `/sim/faults`; each count is consumed by the next matching operation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    pub api_429: u32,
    pub api_5xx: u32,
    pub drop_deliveries: u32,
    pub duplicate_deliveries: u32,
    /// Delay before each new delivery's first attempt; `0` clears it.
    pub delay_deliveries_ms: Option<u64>,
    pub fail_webhook_creation: u32,
    /// An outage of the token endpoint (`/oauth/token`); `null` when none is armed.
    pub token_failures: Option<TokenFailures>,
}

/// How an armed token-endpoint failure shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenFailureKind {
    /// 503 with an OAuth error body (`temporarily_unavailable`).
    #[default]
    #[serde(rename = "5xx")]
    ServerError,
    /// The request hangs (up to [`TOKEN_TIMEOUT_HANG`], or until the caller gives up).
    #[serde(rename = "timeout")]
    Timeout,
}

/// How long a `timeout` token failure holds the request before answering 504.
pub const TOKEN_TIMEOUT_HANG: std::time::Duration = std::time::Duration::from_secs(30);

/// Token-endpoint failures: the next `count` calls, and every call until `until`, fail as `kind`,
/// before the request is looked at (no code is spent, no refresh token rotated).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenFailures {
    pub count: u32,
    pub kind: TokenFailureKind,
    /// When arming: every call fails for this many seconds from now (sets `until`).
    #[serde(skip_serializing)]
    pub seconds: Option<u64>,
    /// Every call fails until then (from `seconds`).
    #[serde(skip_deserializing)]
    pub until: Option<DateTime<Utc>>,
}

impl Faults {
    pub fn merge(&mut self, other: &Faults) {
        self.api_429 += other.api_429;
        self.api_5xx += other.api_5xx;
        self.drop_deliveries += other.drop_deliveries;
        self.duplicate_deliveries += other.duplicate_deliveries;
        self.fail_webhook_creation += other.fail_webhook_creation;
        if let Some(ms) = other.delay_deliveries_ms {
            self.delay_deliveries_ms = (ms > 0).then_some(ms);
        }
        if let Some(armed) = &other.token_failures {
            self.arm_token_failures(armed, Utc::now());
        }
    }

    /// Adds `armed` to what is left (its `kind` applies to all of it); a count and seconds of 0
    /// clear the outage.
    pub fn arm_token_failures(&mut self, armed: &TokenFailures, now: DateTime<Utc>) {
        let seconds = armed.seconds.unwrap_or(0);
        if armed.count == 0 && seconds == 0 {
            self.token_failures = None;
            return;
        }
        let current = self.token_failures.take().unwrap_or_default();
        // capped at 30 days: an outage longer than a refresh token's life tests nothing more
        let window = (seconds > 0).then(|| now + chrono::Duration::seconds(seconds.min(30 * 24 * 3600) as i64));
        let until = match (current.until.filter(|u| *u > now), window) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.token_failures = Some(TokenFailures {
            count: current.count.saturating_add(armed.count),
            kind: armed.kind,
            seconds: None,
            until,
        });
    }

    /// Whether the token endpoint fails this call, and how: inside the window, or consuming one
    /// of the counted failures. Clears the outage once it is spent.
    pub fn take_token_failure(&mut self, now: DateTime<Utc>) -> Option<TokenFailureKind> {
        let armed = self.token_failures.as_mut()?;
        let kind = armed.kind;
        let failed = if armed.until.is_some_and(|u| u > now) {
            true
        } else {
            armed.until = None;
            Self::take(&mut armed.count)
        };
        if armed.count == 0 && armed.until.is_none() {
            self.token_failures = None;
        }
        failed.then_some(kind)
    }

    /// Consumes one unit of `counter` if armed.
    pub fn take(counter: &mut u32) -> bool {
        if *counter > 0 {
            *counter -= 1;
            true
        } else {
            false
        }
    }
}

/// SePay's retry schedule: 8 attempts, spaced 0, 1, 1, 2, 3, 5, 8, 13 minutes.
pub const RETRY_SCHEDULE_MINUTES: [u64; 8] = [0, 1, 1, 2, 3, 5, 8, 13];

/// The delay before attempt `n` (0-based) under `time_scale` (1.0 = real minutes).
pub fn retry_delay(n: usize, time_scale: f64) -> std::time::Duration {
    let minutes = RETRY_SCHEDULE_MINUTES.get(n).copied().unwrap_or(0);
    std::time::Duration::from_secs_f64(minutes as f64 * 60.0 * time_scale.max(0.0))
}

/// A webhook that was removed, and by whom: `dashboard`, `api:<client_id>`,
/// `grant_revoked:<client_id>` or `bank_account_deleted`.
#[derive(Debug, Clone, Serialize)]
pub struct DeletedWebhook {
    pub id: Id,
    pub company_id: Id,
    pub bank_account_id: Id,
    pub webhook_url: String,
    pub deleted_at: DateTime<Utc>,
    pub by: String,
}

/// Everything the simulator holds.
#[derive(Debug, Default)]
pub struct World {
    pub companies: BTreeMap<Id, Company>,
    pub bank_accounts: BTreeMap<Id, BankAccount>,
    pub clients: BTreeMap<String, OAuthClient>,
    pub codes: BTreeMap<String, AuthCode>,
    pub access_tokens: BTreeMap<String, Grant>,
    pub refresh_tokens: BTreeMap<String, Grant>,
    pub webhooks: BTreeMap<Id, Webhook>,
    /// Webhooks removed (by the API, the dashboard or a revoked grant), oldest first.
    pub deleted_webhooks: Vec<DeletedWebhook>,
    pub transactions: BTreeMap<Id, Transaction>,
    pub deliveries: Vec<DeliveryAttempt>,
    pub faults: Faults,
    next_id: BTreeMap<&'static str, Id>,
}

impl World {
    /// Deterministic ids per kind: 1, 2, 3 … (transactions start at 10001, like real ids look).
    pub fn next_id(&mut self, kind: &'static str) -> Id {
        let start = if kind == "transaction" { 10_000 } else { 0 };
        let next = self.next_id.entry(kind).or_insert(start);
        *next += 1;
        *next
    }

    /// Keeps counters above ids given explicitly (fixtures).
    pub fn observe_id(&mut self, kind: &'static str, id: Id) {
        let next = self.next_id.entry(kind).or_insert(0);
        *next = (*next).max(id);
    }

    /// Removes a webhook (its pending retries stop) and records who did it.
    pub fn remove_webhook(&mut self, id: Id, by: String) -> Option<Webhook> {
        let webhook = self.webhooks.remove(&id)?;
        self.deleted_webhooks.push(DeletedWebhook {
            id,
            company_id: webhook.company_id,
            bank_account_id: webhook.bank_account_id,
            webhook_url: webhook.webhook_url.clone(),
            deleted_at: Utc::now(),
            by,
        });
        Some(webhook)
    }

    /// Tokens per OAuth client: how many are live and how many revoked (`/sim/state`).
    pub fn grants(&self, now: DateTime<Utc>) -> Vec<Value> {
        self.clients
            .values()
            .map(|c| {
                let count = |map: &BTreeMap<String, Grant>, live: bool| {
                    map.values()
                        .filter(|g| g.client_id == c.client_id && if live { g.is_live(now) } else { g.revoked })
                        .count()
                };
                json!({
                    "client_id": c.client_id,
                    "company_id": c.company_id,
                    "live_access_tokens": count(&self.access_tokens, true),
                    "live_refresh_tokens": count(&self.refresh_tokens, true),
                    "revoked_access_tokens": count(&self.access_tokens, false),
                    "revoked_refresh_tokens": count(&self.refresh_tokens, false),
                })
            })
            .collect()
    }

    pub fn company_by_api_token(&self, token: &str) -> Option<Id> {
        self.companies
            .values()
            .find(|c| sepay_crypto::constant_time_eq(c.api_token.as_bytes(), token.as_bytes()))
            .map(|c| c.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> BankAccount {
        BankAccount {
            id: 1,
            company_id: 1,
            label: "x".into(),
            account_holder_name: "A".into(),
            account_number: "0071000888888".into(),
            accumulated: Decimal::ZERO,
            active: true,
            created_at: Utc::now(),
            last_transaction: None,
            bank: Bank::by_short_name("Vietcombank"),
            sub_accounts: vec![SubAccount {
                id: 7,
                account_number: "VA7".into(),
                label: "va".into(),
            }],
        }
    }

    fn webhook(event_type: &str, skip_if_no_code: i64, only_va: i64) -> Webhook {
        Webhook {
            id: 1,
            company_id: 1,
            bank_account_id: 1,
            name: "w".into(),
            event_type: event_type.into(),
            authen_type: "Api_Key".into(),
            webhook_url: "http://x".into(),
            is_verify_payment: 0,
            skip_if_no_code,
            active: 1,
            only_va,
            bank_sub_account_ids: vec![7],
            retry_conditions: vec![],
            request_content_type: Some("Json".into()),
            api_key: Some("k".into()),
            oauth2_access_token_url: None,
            oauth2_client_id: None,
            oauth2_client_secret: None,
            created_at: Utc::now(),
            created_by: None,
        }
    }

    fn tx(amount_in: i64, amount_out: i64, code: Option<&str>, sub: Option<&str>) -> Transaction {
        Transaction {
            id: 1,
            bank_account_id: 1,
            account_number: "0071000888888".into(),
            sub_account: sub.map(Into::into),
            bank_short_name: "Vietcombank".into(),
            transaction_date: Utc::now(),
            amount_in: amount_in.into(),
            amount_out: amount_out.into(),
            accumulated: Decimal::ZERO,
            code: code.map(Into::into),
            transaction_content: "c".into(),
            reference_number: "r".into(),
            description: "d".into(),
        }
    }

    #[test]
    fn webhook_filters_table() {
        let a = account();
        let cases = [
            (webhook("All", 0, 0), tx(100, 0, None, None), true),
            (webhook("All", 0, 0), tx(0, 100, None, None), true),
            (webhook("In_only", 0, 0), tx(100, 0, None, None), true),
            (webhook("In_only", 0, 0), tx(0, 100, None, None), false),
            (webhook("Out_only", 0, 0), tx(0, 100, None, None), true),
            (webhook("Out_only", 0, 0), tx(100, 0, None, None), false),
            (webhook("All", 1, 0), tx(100, 0, None, None), false),
            (webhook("All", 1, 0), tx(100, 0, Some("DH1"), None), true),
            (webhook("All", 0, 1), tx(100, 0, None, None), false),
            (webhook("All", 0, 1), tx(100, 0, None, Some("VA7")), true),
            (webhook("All", 0, 1), tx(100, 0, None, Some("VA8")), false),
        ];
        for (i, (w, t, want)) in cases.iter().enumerate() {
            assert_eq!(w.matches(t, &a), *want, "case {i}");
        }
        let mut inactive = webhook("All", 0, 0);
        inactive.active = 0;
        assert!(!inactive.matches(&tx(100, 0, None, None), &a));
    }

    #[test]
    fn retry_schedule_is_sepays_and_scales() {
        let total: u64 = RETRY_SCHEDULE_MINUTES.iter().sum();
        assert_eq!((RETRY_SCHEDULE_MINUTES.len(), total), (8, 33));
        assert_eq!(retry_delay(1, 1.0).as_secs(), 60);
        assert_eq!(retry_delay(7, 1.0).as_secs(), 13 * 60);
        assert_eq!(retry_delay(7, 0.001).as_millis(), 780);
        assert_eq!(retry_delay(0, 1.0).as_secs(), 0);
    }

    #[test]
    fn shapes_follow_the_docs() {
        let t = tx(2_277_000, 0, None, None);
        let body = t.webhook_body();
        assert_eq!(body["transferType"], "in");
        assert_eq!(body["transferAmount"], 2_277_000);
        let legacy = t.userapi();
        assert_eq!(legacy["amount_in"], "2277000.00");
        assert_eq!(legacy["id"], "1");
        let acct = account().userapi();
        assert_eq!(acct["active"], "1");
        assert!(acct.as_object().unwrap().values().all(|v| v.is_string() || v.is_null()));
    }

    #[test]
    fn token_failures_count_down_cover_a_window_and_clear() {
        let now = Utc::now();
        let mut f = Faults::default();
        assert_eq!(f.take_token_failure(now), None);
        let arm = |count, kind, seconds| TokenFailures {
            count,
            kind,
            seconds,
            until: None,
        };
        f.arm_token_failures(&arm(1, TokenFailureKind::ServerError, None), now);
        f.arm_token_failures(&arm(1, TokenFailureKind::Timeout, None), now);
        // the latest kind applies to all that is left
        assert_eq!(f.take_token_failure(now), Some(TokenFailureKind::Timeout));
        assert_eq!(f.token_failures.as_ref().map(|t| t.count), Some(1));
        assert_eq!(f.take_token_failure(now), Some(TokenFailureKind::Timeout));
        assert!(f.token_failures.is_none(), "spent: cleared");
        assert_eq!(f.take_token_failure(now), None);

        f.arm_token_failures(&arm(0, TokenFailureKind::ServerError, Some(10)), now);
        for _ in 0..5 {
            assert_eq!(f.take_token_failure(now), Some(TokenFailureKind::ServerError));
        }
        let later = now + chrono::Duration::seconds(11);
        assert_eq!(f.take_token_failure(later), None);
        assert!(f.token_failures.is_none());

        f.arm_token_failures(&arm(3, TokenFailureKind::ServerError, None), now);
        f.arm_token_failures(&arm(0, TokenFailureKind::ServerError, None), now);
        assert!(f.token_failures.is_none(), "count 0 clears");
    }
}
