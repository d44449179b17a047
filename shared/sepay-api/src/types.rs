//! SePay's shapes, read leniently (numbers or strings) so both API styles decode.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A bank account from `GET /api/v1/bank-accounts`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct BankAccount {
    /// As SePay sent it: only a numeric id can carry a webhook.
    pub id: Value,
    #[serde(default)]
    pub bank_account_id: Option<Value>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub account_holder_name: Option<String>,
    #[serde(default)]
    pub account_number: String,
    #[serde(default)]
    pub active: Option<Value>,
    #[serde(default)]
    pub bank: Option<Bank>,
    /// The account's balance now (a number, or a numeric string in some answers; 0 or absent
    /// where the bank reports none).
    #[serde(default)]
    pub accumulated: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Bank {
    #[serde(default)]
    pub short_name: Option<String>,
    #[serde(default)]
    pub full_name: Option<String>,
}

fn numeric(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|id| *id > 0)
}

impl BankAccount {
    /// The id a webhook can be created for: `bank_account_id`, else a numeric `id`.
    pub fn webhook_account_id(&self) -> Option<i64> {
        self.bank_account_id
            .as_ref()
            .and_then(numeric)
            .or_else(|| numeric(&self.id))
    }

    /// The id as text, whatever its type (for `sepay_wallet_links`).
    pub fn id_text(&self) -> String {
        match &self.id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    pub fn bank_short_name(&self) -> Option<&str> {
        self.bank.as_ref()?.short_name.as_deref()
    }
}

/// The webhook the integration creates for one bank account.
#[derive(Debug, Clone, Serialize)]
pub struct NewWebhook {
    pub bank_account_id: i64,
    pub name: String,
    pub event_type: &'static str,
    pub authen_type: &'static str,
    pub webhook_url: String,
    pub is_verify_payment: u8,
    pub api_key: String,
    pub request_content_type: &'static str,
    pub active: u8,
}

impl NewWebhook {
    pub fn api_key_json(bank_account_id: i64, name: String, webhook_url: String, api_key: String) -> Self {
        Self {
            bank_account_id,
            name,
            event_type: "All",
            authen_type: "Api_Key",
            webhook_url,
            is_verify_payment: 0,
            api_key,
            request_content_type: "Json",
            active: 1,
        }
    }
}

impl std::fmt::Display for NewWebhook {
    /// Never prints the API key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "webhook for bank account {}", self.bank_account_id)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Webhook {
    #[serde(deserialize_with = "int")]
    pub id: i64,
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub bank_account_id: Option<Value>,
    #[serde(default)]
    pub active: Option<Value>,
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default)]
    pub authen_type: Option<String>,
    #[serde(default)]
    pub only_va: Option<Value>,
    #[serde(default)]
    pub skip_if_no_code: Option<Value>,
}

impl Webhook {
    /// A 0/1 field SePay sends as a number, a string or a boolean; absent is 0.
    pub fn flag(value: Option<&Value>) -> bool {
        match value {
            Some(Value::Bool(b)) => *b,
            Some(v) => numeric(v).is_some_and(|n| n != 0),
            None => false,
        }
    }

    /// Enabled: `active` 1 (absent means enabled: SePay lists only what it keeps).
    pub fn is_active(&self) -> bool {
        self.active.is_none() || Self::flag(self.active.as_ref())
    }
}

fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = Value::deserialize(d)?;
    numeric(&v).ok_or_else(|| serde::de::Error::custom(format!("not an id: {v}")))
}

/// A transaction from `GET /api/v1/transactions`, numbers or strings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Transaction {
    #[serde(deserialize_with = "int")]
    pub id: i64,
    #[serde(default)]
    pub bank_account_id: Option<Value>,
    #[serde(default)]
    pub bank_brand_name: Option<String>,
    #[serde(default)]
    pub account_number: String,
    #[serde(default)]
    pub sub_account: Option<String>,
    #[serde(default)]
    pub transaction_date: String,
    #[serde(default, deserialize_with = "money")]
    pub amount_in: Decimal,
    #[serde(default, deserialize_with = "money")]
    pub amount_out: Decimal,
    #[serde(default, deserialize_with = "money")]
    pub accumulated: Decimal,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub transaction_content: Option<String>,
    #[serde(default)]
    pub reference_number: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

fn money<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Decimal::ZERO),
        Value::Number(n) => n.to_string().parse().map_err(serde::de::Error::custom),
        Value::String(s) if s.trim().is_empty() => Ok(Decimal::ZERO),
        Value::String(s) => s.trim().parse().map_err(serde::de::Error::custom),
        other => Err(serde::de::Error::custom(format!("not an amount: {other}"))),
    }
}

impl Transaction {
    /// The same JSON a webhook delivery of this transaction carries (seed 004), so a reconciled
    /// row and a delivered one are processed, and deduplicated, alike.
    pub fn as_webhook_payload(&self) -> Value {
        let incoming = self.amount_in > Decimal::ZERO;
        serde_json::json!({
            "id": self.id,
            "gateway": self.bank_brand_name,
            "transactionDate": self.transaction_date,
            "accountNumber": self.account_number,
            "code": self.code,
            "content": self.transaction_content,
            "transferType": if incoming { "in" } else { "out" },
            "transferAmount": if incoming { self.amount_in } else { self.amount_out }.to_string(),
            "accumulated": self.accumulated.to_string(),
            "subAccount": self.sub_account,
            "referenceCode": self.reference_number,
            "description": self.description,
        })
    }
}

/// Filters of `GET /api/v1/transactions` (dates are Vietnam days, YYYY-MM-DD).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TransactionQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bank_account_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_date: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn webhook_account_ids_table() {
        let cases = [
            (json!({"id": 19, "account_number": "1"}), Some(19)),
            (json!({"id": "25", "account_number": "1"}), Some(25)),
            (
                json!({"id": "abc", "bank_account_id": 7, "account_number": "1"}),
                Some(7),
            ),
            (json!({"id": "abc", "account_number": "1"}), None),
            (
                json!({"id": "VA-1", "bank_account_id": "x", "account_number": "1"}),
                None,
            ),
            (json!({"id": 0, "account_number": "1"}), None),
            (json!({"id": null, "account_number": "1"}), None),
        ];
        for (raw, want) in cases {
            let account: BankAccount = serde_json::from_value(raw.clone()).unwrap();
            assert_eq!(account.webhook_account_id(), want, "{raw}");
        }
    }

    #[test]
    fn transactions_decode_numbers_or_strings_and_map_to_the_webhook_shape() {
        for raw in [
            json!({"id": 10001, "account_number": "007", "transaction_date": "2026-03-01 08:00:00", "amount_in": 2277000, "amount_out": 0, "accumulated": 5}),
            json!({"id": "10001", "account_number": "007", "transaction_date": "2026-03-01 08:00:00", "amount_in": "2277000.00", "amount_out": "0.00", "accumulated": "5.00"}),
        ] {
            let t: Transaction = serde_json::from_value(raw).unwrap();
            let p = t.as_webhook_payload();
            assert_eq!(
                (p["id"].as_i64(), p["transferType"].as_str()),
                (Some(10001), Some("in"))
            );
            assert_eq!(
                p["transferAmount"].as_str().map(|s| s.trim_end_matches(".00")),
                Some("2277000")
            );
        }
    }
}
