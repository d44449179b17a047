//! A client of the simulator's control API (`/sim/...`): what `sepay-dev` and the tests use to
//! create companies, accounts, OAuth clients, webhooks and transfers, act as a dashboard admin
//! (delete, disable or edit a webhook, revoke a grant), and inject faults.

use anyhow::{Context, bail};
use serde_json::Value;

/// The simulator at `base`; an answer other than 2xx is an error carrying its message.
#[derive(Clone)]
pub struct SimClient {
    pub base: String,
    pub http: reqwest::Client,
}

impl SimClient {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(reqwest::Method::POST, path, body).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(reqwest::Method::DELETE, path, Value::Null).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(reqwest::Method::PATCH, path, body).await
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> anyhow::Result<Value> {
        let res = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .with_context(|| self.unreachable())?;
        Self::answer(res).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| self.unreachable())?;
        Self::answer(res).await
    }

    fn unreachable(&self) -> String {
        format!(
            "cannot reach sepay-sim at {} (start it with `sepay-sim` or `sepay-dev up`)",
            self.base
        )
    }

    async fn answer(res: reqwest::Response) -> anyhow::Result<Value> {
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["message"]
                .as_str()
                .or(body["error"].as_str())
                .unwrap_or("no detail");
            let fields = body.get("errors").map(|e| format!(" {e}")).unwrap_or_default();
            bail!("sepay-sim answered {status}: {message}{fields}");
        }
        Ok(body)
    }
}
