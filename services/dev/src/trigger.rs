//! `sepay-dev striga-trigger`: Striga's documented SEPA webhooks, signed as Striga signs them
//! (hex HMAC-SHA256 of the body under the API key, header `signature`), posted to an endpoint's
//! `<url>/tx`, like `stripe trigger`. `--new-id` gives the transaction a fresh id, so the same
//! event books again.

use anyhow::Context;
use sepay_core::striga::samples;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StrigaEvent {
    PayinCompleted,
    PayoutInitiated,
    PayoutCompleted,
    PayoutFailed,
    PayoutDenied,
    /// The five, in the documented order.
    All,
}

#[derive(clap::Args)]
pub struct TriggerArgs {
    /// Which documented webhook to send.
    #[arg(value_enum)]
    event: StrigaEvent,
    /// The Striga endpoint's webhook URL (`/tx` is appended), as `sepayctl striga endpoint create`
    /// or the Striga page printed it.
    #[arg(long)]
    url: String,
    /// The Striga API key the endpoint was created with (the signing key).
    #[arg(
        long = "striga-api-key",
        alias = "api-key",
        env = "STRIGA_API_KEY",
        hide_env_values = true
    )]
    api_key: String,
    /// Replace the sample's transaction id with a fresh one (one id for every event sent), so it
    /// books as a new transaction.
    #[arg(long)]
    new_id: bool,
}

fn bodies(event: StrigaEvent) -> Vec<&'static str> {
    match event {
        StrigaEvent::PayinCompleted => vec![samples::PAYIN_COMPLETED],
        StrigaEvent::PayoutInitiated => vec![samples::PAYOUT_INITIATED],
        StrigaEvent::PayoutCompleted => vec![samples::PAYOUT_COMPLETED],
        StrigaEvent::PayoutFailed => vec![samples::PAYOUT_FAILED],
        StrigaEvent::PayoutDenied => vec![samples::PAYOUT_DENIED],
        StrigaEvent::All => samples::ALL.to_vec(),
    }
}

pub async fn run(json_output: bool, args: &TriggerArgs) -> anyhow::Result<()> {
    let fresh_id = uuid::Uuid::new_v4().to_string();
    let url = format!("{}/tx", args.url.trim_end_matches('/'));
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for sample in bodies(args.event) {
        let mut sent: Value = serde_json::from_str(sample)?;
        // the documented sample verbatim, unless it needs a fresh id
        let body = if args.new_id {
            sent["id"] = json!(fresh_id);
            sent.to_string()
        } else {
            sample.to_owned()
        };
        let signature = sepay_crypto::hmac::striga_signature(args.api_key.as_bytes(), body.as_bytes());
        let res = http
            .post(&url)
            .header("content-type", "application/json")
            .header("signature", signature)
            .body(body)
            .send()
            .await
            .with_context(|| format!("nothing answers at {url}"))?;
        let status = res.status().as_u16();
        let answer: Value = res.json().await.unwrap_or(Value::Null);
        answers.push(json!({"type": sent["type"], "id": sent["id"], "status": status, "answer": answer}));
    }
    let value = json!({"url": url, "sent": answers});
    sepay_runtime::cli::print(json_output, &value, || {
        answers
            .iter()
            .map(|a| {
                format!(
                    "{} {} → {} {}",
                    a["type"].as_str().unwrap_or("?"),
                    a["id"].as_str().unwrap_or("?"),
                    a["status"],
                    a["answer"]
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    anyhow::ensure!(
        answers
            .iter()
            .all(|a| a["status"].as_u64().is_some_and(|s| (200..300).contains(&s))),
        "Striga's webhook was refused (see the answers above)"
    );
    Ok(())
}
