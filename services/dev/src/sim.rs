//! `sepay-dev sim ...`: drives a running `sepay-sim` through its control API.

use clap::Subcommand;
use sepay_runtime::cli::print;
use sepay_sim::client::SimClient;
use serde_json::{Value, json};

/// Where `sepay-sim` listens by default (`SIM_ADDR`).
pub const DEFAULT_SIM_URL: &str = "http://127.0.0.1:8090";

#[derive(clap::Args)]
pub struct SimArgs {
    /// The simulator's base URL. Default: a running `sepay-dev up`'s, else http://127.0.0.1:8090.
    #[arg(long, env = "SIM_URL")]
    pub sim_url: Option<String>,
    #[command(subcommand)]
    pub command: SimCmd,
}

#[derive(Subcommand)]
pub enum SimCmd {
    /// Create a company (prints its legacy API token).
    Company {
        #[arg(long)]
        name: String,
    },
    /// Create a bank account.
    BankAccount {
        #[arg(long)]
        company: i64,
        #[arg(long)]
        account_number: Option<String>,
        /// Bank short name, e.g. Vietcombank, MBBank.
        #[arg(long, default_value = "Vietcombank")]
        bank: String,
        /// Virtual sub-account numbers.
        #[arg(long = "sub-account")]
        sub_accounts: Vec<String>,
    },
    /// Register an OAuth client (prints client id and secret).
    OauthClient {
        #[arg(long)]
        company: i64,
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
    },
    /// Add a webhook as an admin would in SePay's dashboard (Api_Key, Json).
    Webhook {
        #[arg(long)]
        company: i64,
        #[arg(long)]
        bank_account: i64,
        #[arg(long)]
        url: String,
        #[arg(long)]
        api_key: String,
        /// All, In_only or Out_only.
        #[arg(long, default_value = "All")]
        event_type: String,
    },
    /// Delete a webhook as an admin would in SePay's dashboard (gone from the API; no more deliveries).
    WebhookDelete {
        #[arg(long)]
        id: i64,
    },
    /// Disable a webhook in the dashboard (listed with active 0; nothing delivered).
    WebhookDisable {
        #[arg(long)]
        id: i64,
    },
    /// Enable a disabled webhook again.
    WebhookEnable {
        #[arg(long)]
        id: i64,
    },
    /// Edit a webhook in the dashboard (drift from what an integration set); only the given fields change.
    WebhookEdit {
        #[arg(long)]
        id: i64,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// All, In_only or Out_only.
        #[arg(long)]
        event_type: Option<String>,
        /// No_Authen, OAuth2.0, Api_Key or HMAC_SHA256.
        #[arg(long)]
        authen_type: Option<String>,
        #[arg(long)]
        api_key: Option<String>,
        /// 0 or 1.
        #[arg(long)]
        skip_if_no_code: Option<u8>,
        /// 0 or 1 (1 needs --sub-account-id).
        #[arg(long)]
        only_va: Option<u8>,
        /// Sub-account ids the webhook is limited to.
        #[arg(long = "sub-account-id")]
        sub_account_ids: Vec<i64>,
    },
    /// Revoke a grant: every token of an OAuth client (or of all clients of a company) stops working.
    RevokeGrant {
        #[arg(long, required_unless_present = "company")]
        client: Option<String>,
        #[arg(long)]
        company: Option<i64>,
        /// Also delete the webhooks those clients created through the API.
        #[arg(long)]
        delete_webhooks: bool,
    },
    /// Create a transaction (delivered to matching webhooks).
    Tx {
        #[arg(long)]
        bank_account: i64,
        /// in or out
        #[arg(long = "type", default_value = "in")]
        transfer_type: String,
        #[arg(long)]
        amount: String,
        #[arg(long)]
        content: Option<String>,
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        sub_account: Option<String>,
    },
    /// Create N transactions at once.
    Burst {
        #[arg(long)]
        bank_account: i64,
        #[arg(long)]
        count: usize,
    },
    /// Create transactions at a steady rate in the background.
    Rate {
        #[arg(long)]
        bank_account: i64,
        #[arg(long)]
        per_second: f64,
        #[arg(long)]
        seconds: u64,
    },
    /// Arm faults: the next N API or token calls fail, deliveries are dropped, doubled or delayed.
    Fault {
        /// Disarm every fault first (alone: disarm and arm nothing).
        #[arg(long)]
        clear: bool,
        #[arg(long, default_value_t = 0)]
        api_429: u32,
        #[arg(long, default_value_t = 0)]
        api_5xx: u32,
        #[arg(long, default_value_t = 0)]
        drop_deliveries: u32,
        #[arg(long, default_value_t = 0)]
        duplicate_deliveries: u32,
        /// Delay of every new delivery; 0 clears it.
        #[arg(long)]
        delay_deliveries_ms: Option<u64>,
        #[arg(long, default_value_t = 0)]
        fail_webhook_creation: u32,
        /// The next N calls to the token endpoint fail (0 clears an armed outage).
        #[arg(long)]
        token_failures: Option<u32>,
        /// Every call to the token endpoint fails for this many seconds.
        #[arg(long)]
        token_outage_secs: Option<u64>,
        /// How token calls fail: 5xx (503) or timeout (the request hangs 30 s).
        #[arg(long, default_value = "5xx", value_parser = ["5xx", "timeout"])]
        token_failure_kind: String,
    },
    /// The delivery log.
    Deliveries {
        #[arg(long)]
        tx: Option<i64>,
        #[arg(long)]
        webhook: Option<i64>,
    },
    /// Everything the simulator holds.
    State,
}

/// `--sim-url`/`SIM_URL`, else the simulator of a running `sepay-dev up`, else the default.
pub fn sim_url(global: &sepay_runtime::cli::GlobalOptions, configured: Option<&str>) -> String {
    global.address(configured, |up| up.sim_url, DEFAULT_SIM_URL)
}

pub async fn run(global: &sepay_runtime::cli::GlobalOptions, args: &SimArgs) -> anyhow::Result<()> {
    let json_out = global.json;
    let client = SimClient::new(&sim_url(global, args.sim_url.as_deref()));
    let (value, text): (Value, fn(&Value) -> String) = match &args.command {
        SimCmd::Company { name } => (
            client.post("/sim/companies", json!({"name": name})).await?,
            |v| format!("company {} ({}), API token {}", v["id"], v["name"].as_str().unwrap_or(""), v["api_token"].as_str().unwrap_or("")),
        ),
        SimCmd::BankAccount { company, account_number, bank, sub_accounts } => (
            client
                .post("/sim/bank-accounts", json!({"company_id": company, "account_number": account_number, "bank_short_name": bank, "sub_accounts": sub_accounts}))
                .await?,
            |v| format!("bank account {} {} {}", v["id"], v["bank"]["short_name"].as_str().unwrap_or(""), v["account_number"].as_str().unwrap_or("")),
        ),
        SimCmd::OauthClient { company, redirect_uris } => (
            client.post("/sim/oauth-clients", json!({"company_id": company, "redirect_uris": redirect_uris})).await?,
            |v| format!("client_id {}\nclient_secret {}", v["client_id"].as_str().unwrap_or(""), v["client_secret"].as_str().unwrap_or("")),
        ),
        SimCmd::Webhook { company, bank_account, url, api_key, event_type } => (
            client
                .post(
                    "/sim/webhooks",
                    json!({"company_id": company, "bank_account_id": bank_account, "name": "sepay-dev", "event_type": event_type,
                           "authen_type": "Api_Key", "webhook_url": url, "is_verify_payment": 0, "api_key": api_key,
                           "request_content_type": "Json"}),
                )
                .await?,
            |v| format!("webhook {} → {}", v["id"], v["webhook_url"].as_str().unwrap_or("")),
        ),
        SimCmd::WebhookDelete { id } => (
            client.post(&format!("/sim/webhooks/{id}/delete"), json!({})).await?,
            |v| format!("webhook {} deleted", v["id"]),
        ),
        SimCmd::WebhookDisable { id } => (
            client.post(&format!("/sim/webhooks/{id}/disable"), json!({})).await?,
            |v| format!("webhook {} disabled (active {})", v["id"], v["active"]),
        ),
        SimCmd::WebhookEnable { id } => (
            client.post(&format!("/sim/webhooks/{id}/enable"), json!({})).await?,
            |v| format!("webhook {} enabled (active {})", v["id"], v["active"]),
        ),
        SimCmd::WebhookEdit { id, url, name, event_type, authen_type, api_key, skip_if_no_code, only_va, sub_account_ids } => {
            let mut patch = serde_json::Map::new();
            for (field, value) in [
                ("webhook_url", url.as_ref().map(|v| json!(v))),
                ("name", name.as_ref().map(|v| json!(v))),
                ("event_type", event_type.as_ref().map(|v| json!(v))),
                ("authen_type", authen_type.as_ref().map(|v| json!(v))),
                ("api_key", api_key.as_ref().map(|v| json!(v))),
                ("skip_if_no_code", skip_if_no_code.map(|v| json!(v))),
                ("only_va", only_va.map(|v| json!(v))),
                ("bank_sub_account_ids", (!sub_account_ids.is_empty()).then(|| json!(sub_account_ids))),
            ] {
                if let Some(value) = value {
                    patch.insert(field.into(), value);
                }
            }
            if patch.is_empty() {
                anyhow::bail!("nothing to change: give at least one field to edit");
            }
            (
                client.patch(&format!("/sim/webhooks/{id}"), Value::Object(patch)).await?,
                |v| format!("webhook {} → {} ({}, {})", v["id"], v["webhook_url"].as_str().unwrap_or(""), v["event_type"].as_str().unwrap_or(""), v["authen_type"].as_str().unwrap_or("")),
            )
        }
        SimCmd::RevokeGrant { client: client_id, company, delete_webhooks } => (
            client
                .post("/sim/grants/revoke", json!({"client_id": client_id, "company_id": company, "delete_webhooks": delete_webhooks}))
                .await?,
            |v| format!("revoked {} access and {} refresh tokens; deleted webhooks {}", v["revoked_access_tokens"], v["revoked_refresh_tokens"], v["deleted_webhooks"]),
        ),
        SimCmd::Tx { bank_account, transfer_type, amount, content, code, sub_account } => (
            client
                .post(
                    "/sim/transactions",
                    json!({"bank_account_id": bank_account, "transfer_type": transfer_type, "amount": amount,
                           "content": content, "code": code, "sub_account": sub_account}),
                )
                .await?,
            |v| format!("transaction {} ({} {})", v["id"], if v["amount_in"] != "0" { "in" } else { "out" }, v["transaction_content"].as_str().unwrap_or("")),
        ),
        SimCmd::Burst { bank_account, count } => (
            client.post("/sim/transactions/burst", json!({"bank_account_id": bank_account, "count": count})).await?,
            |v| format!("{} transactions created", v["ids"].as_array().map(Vec::len).unwrap_or(0)),
        ),
        SimCmd::Rate { bank_account, per_second, seconds } => (
            client.post("/sim/transactions/rate", json!({"bank_account_id": bank_account, "per_second": per_second, "seconds": seconds})).await?,
            |v| format!("{} transactions scheduled", v["scheduled"]),
        ),
        SimCmd::Fault {
            api_429,
            api_5xx,
            drop_deliveries,
            duplicate_deliveries,
            delay_deliveries_ms,
            fail_webhook_creation,
            token_failures,
            token_outage_secs,
            token_failure_kind,
            clear,
        } => {
            if *clear {
                client.delete("/sim/faults").await?;
            }
            let mut faults = json!({"api_429": api_429, "api_5xx": api_5xx, "drop_deliveries": drop_deliveries,
                                    "duplicate_deliveries": duplicate_deliveries, "delay_deliveries_ms": delay_deliveries_ms,
                                    "fail_webhook_creation": fail_webhook_creation});
            if token_failures.is_some() || token_outage_secs.is_some() {
                faults["token_failures"] = json!({"count": token_failures.unwrap_or(0), "kind": token_failure_kind,
                                                  "seconds": token_outage_secs});
            }
            (client.post("/sim/faults", faults).await?, |v| format!("armed faults: {v}"))
        }
        SimCmd::Deliveries { tx, webhook } => {
            let mut query = vec![];
            if let Some(tx) = tx {
                query.push(format!("transaction_id={tx}"));
            }
            if let Some(w) = webhook {
                query.push(format!("webhook_id={w}"));
            }
            (client.get(&format!("/sim/deliveries?{}", query.join("&"))).await?, |v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| format!("tx {} → webhook {} attempt {}: {}", d["transaction_id"], d["webhook_id"], d["attempt"],
                        d["status"].as_i64().map(|s| s.to_string()).unwrap_or_else(|| d["error"].as_str().unwrap_or("?").to_owned())))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        SimCmd::State => (client.get("/sim/state").await?, |v| serde_json::to_string_pretty(v).unwrap_or_default()),
    };
    print(json_out, &value, || text(&value));
    Ok(())
}
