use crate::error::{ApiError, ApiResult};
use crate::types::{BankAccount, NewWebhook, Transaction, TransactionQuery, Webhook};
use crate::{SepayConfig, retry_after};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Bank accounts and transactions are fetched this many per page.
const PAGE_SIZE: usize = 100;
/// Pages read before a listing stops (10 000 accounts; 100 000 transactions per window).
const MAX_ACCOUNT_PAGES: usize = 100;
const MAX_TRANSACTION_PAGES: usize = 1000;

pub struct SepayClient {
    pub(crate) http: reqwest::Client,
    pub(crate) config: SepayConfig,
    /// Next free request slot per access token (by hash: no token kept in memory twice).
    slots: Mutex<HashMap<[u8; 32], Instant>>,
}

impl SepayClient {
    pub fn new(config: &SepayConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client with default settings");
        Self {
            http,
            config: config.clone(),
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub fn base_url(&self) -> &str {
        self.config.sepay_base_url.trim_end_matches('/')
    }

    /// Waits for this token's next slot: at most `sepay_requests_per_sec` calls a second.
    async fn pace(&self, token: &str) {
        // a little slower than the limit: SePay counts in a sliding second
        let interval = Duration::from_secs(1) / self.config.sepay_requests_per_sec.max(1) + Duration::from_millis(10);
        let slot = {
            let mut slots = self.slots.lock().await;
            let now = Instant::now();
            let next = slots.entry(sepay_crypto::sha256(token.as_bytes())).or_insert(now);
            let slot = (*next).max(now);
            *next = slot + interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// One API call with SePay's rules: paced, 429 honoured (capped, bounded), 5xx retried.
    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        query: &[(&'static str, String)],
        body: Option<&Value>,
    ) -> ApiResult<Value> {
        let url = format!("{}{path}", self.base_url());
        let cap = Duration::from_secs(self.config.sepay_max_retry_wait_secs);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.pace(token).await;
            let mut request = self.http.request(method.clone(), &url).bearer_auth(token).query(query);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
            let status = response.status();
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if retryable && attempt <= self.config.sepay_max_retries {
                let wait = if status == StatusCode::TOO_MANY_REQUESTS {
                    retry_after::wait(response.headers(), SystemTime::now(), cap)
                } else {
                    Duration::from_millis(250 * 2u64.pow(attempt - 1)).min(cap)
                };
                tracing::warn!(%status, attempt, wait_ms = wait.as_millis() as u64, path, "SePay asked us to retry");
                tokio::time::sleep(wait).await;
                continue;
            }
            let text = response.text().await.unwrap_or_default();
            let message = || {
                serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("message").or(v.get("errors")).map(|m| m.to_string()))
                    .unwrap_or_else(|| text.chars().take(200).collect())
            };
            return match status {
                s if s.is_success() => {
                    if text.trim().is_empty() {
                        Ok(Value::Null)
                    } else {
                        serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string()))
                    }
                }
                StatusCode::TOO_MANY_REQUESTS => Err(ApiError::RateLimited { attempts: attempt }),
                StatusCode::UNAUTHORIZED => Err(ApiError::Unauthorized),
                StatusCode::FORBIDDEN => Err(ApiError::Forbidden(message())),
                StatusCode::NOT_FOUND => Err(ApiError::NotFound),
                s if s.is_client_error() => Err(ApiError::Validation(message())),
                s => Err(ApiError::Server { status: s.as_u16() }),
            };
        }
    }

    fn data<T: DeserializeOwned>(value: Value) -> ApiResult<T> {
        let data = value.get("data").cloned().unwrap_or(value);
        serde_json::from_value(data).map_err(|e| ApiError::Decode(e.to_string()))
    }

    /// Every bank account: pages until a short page, stops on a repeated page, bounded.
    pub async fn list_bank_accounts(&self, token: &str) -> ApiResult<Vec<BankAccount>> {
        let mut all: Vec<BankAccount> = Vec::new();
        let mut previous: Option<Vec<BankAccount>> = None;
        for page in 1..=MAX_ACCOUNT_PAGES {
            let query = [("page", page.to_string()), ("limit", PAGE_SIZE.to_string())];
            let rows: Vec<BankAccount> = Self::data(
                self.call(token, Method::GET, "/api/v1/bank-accounts", &query, None)
                    .await?,
            )?;
            if previous.as_ref() == Some(&rows) && !rows.is_empty() {
                tracing::warn!(page, "SePay returned the same page twice; stopping");
                break;
            }
            let short = rows.len() < PAGE_SIZE;
            all.extend(rows.iter().cloned());
            if short {
                return Ok(all);
            }
            previous = Some(rows);
        }
        tracing::warn!(accounts = all.len(), "bank account listing stopped at its page bound");
        Ok(all)
    }

    pub async fn create_webhook(&self, token: &str, webhook: &NewWebhook) -> ApiResult<i64> {
        let body = serde_json::to_value(webhook).map_err(|e| ApiError::Decode(e.to_string()))?;
        let answer = self
            .call(token, Method::POST, "/api/v1/webhooks", &[], Some(&body))
            .await?;
        // undocumented shape: `id` at the top level or under `data`
        answer
            .get("id")
            .or_else(|| answer.get("data").and_then(|d| d.get("id")))
            .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .ok_or_else(|| ApiError::Decode("webhook create answer has no id".into()))
    }

    pub async fn update_webhook(&self, token: &str, id: i64, patch: &Value) -> ApiResult<()> {
        self.call(
            token,
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            &[],
            Some(patch),
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_webhook(&self, token: &str, id: i64) -> ApiResult<()> {
        self.call(token, Method::DELETE, &format!("/api/v1/webhooks/{id}"), &[], None)
            .await
            .map(|_| ())
    }

    pub async fn list_webhooks(&self, token: &str) -> ApiResult<Vec<Webhook>> {
        let mut all = Vec::new();
        for page in 1..=MAX_ACCOUNT_PAGES {
            let query = [("page", page.to_string()), ("limit", PAGE_SIZE.to_string())];
            let rows: Vec<Webhook> =
                Self::data(self.call(token, Method::GET, "/api/v1/webhooks", &query, None).await?)?;
            let short = rows.len() < PAGE_SIZE;
            all.extend(rows);
            if short {
                break;
            }
        }
        Ok(all)
    }

    /// Every transaction matching `q`, all pages (bounded).
    pub async fn list_transactions(&self, token: &str, q: &TransactionQuery) -> ApiResult<Vec<Transaction>> {
        let mut all = Vec::new();
        for page in 1..=MAX_TRANSACTION_PAGES {
            let mut query: Vec<(&'static str, String)> =
                vec![("page", page.to_string()), ("limit", PAGE_SIZE.to_string())];
            if let Some(id) = q.bank_account_id {
                query.push(("bank_account_id", id.to_string()));
            }
            if let Some(d) = &q.from_date {
                query.push(("from_date", d.clone()));
            }
            if let Some(d) = &q.to_date {
                query.push(("to_date", d.clone()));
            }
            let rows: Vec<Transaction> = Self::data(
                self.call(token, Method::GET, "/api/v1/transactions", &query, None)
                    .await?,
            )?;
            let short = rows.len() < PAGE_SIZE;
            all.extend(rows);
            if short {
                break;
            }
        }
        Ok(all)
    }
}
