//! The webhook sender: each new transaction goes to every active webhook that matches it, with
//! the webhook's auth, retried on failure on SePay's schedule (time-scaled), every attempt logged.

use crate::Sim;
use crate::model::{DeliveryAttempt, Faults, Id, RETRY_SCHEDULE_MINUTES, Transaction, Webhook, retry_delay};
use base64::Engine;
use chrono::Utc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Plans the deliveries of `tx` (applying armed faults) and starts them.
pub fn dispatch(sim: &Arc<Sim>, tx: &Transaction) {
    let mut plans = Vec::new();
    {
        let mut world = sim.world();
        let Some(account) = world.bank_accounts.get(&tx.bank_account_id).cloned() else {
            return;
        };
        let hooks: Vec<Webhook> = world
            .webhooks
            .values()
            .filter(|w| w.matches(tx, &account))
            .cloned()
            .collect();
        for hook in hooks {
            if Faults::take(&mut world.faults.drop_deliveries) {
                world.deliveries.push(DeliveryAttempt {
                    webhook_id: hook.id,
                    transaction_id: tx.id,
                    attempt: 0,
                    at: Utc::now(),
                    status: None,
                    error: Some("dropped by fault injection".into()),
                    response_body: None,
                    duration_ms: 0,
                    success: false,
                });
                continue;
            }
            let copies = if Faults::take(&mut world.faults.duplicate_deliveries) {
                2
            } else {
                1
            };
            let delay = Duration::from_millis(world.faults.delay_deliveries_ms.unwrap_or(0));
            for _ in 0..copies {
                plans.push((hook.id, delay));
            }
        }
    }
    for (hook_id, delay) in plans {
        tokio::spawn(deliver(sim.clone(), hook_id, tx.clone(), delay));
    }
}

async fn deliver(sim: Arc<Sim>, hook_id: Id, tx: Transaction, delay: Duration) {
    let stop = sim.shutdown.clone();
    let body = tx.webhook_body();
    for attempt in 0..RETRY_SCHEDULE_MINUTES.len() {
        let wait = retry_delay(attempt, sim.config.sim_time_scale) + if attempt == 0 { delay } else { Duration::ZERO };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        // SePay sends what the webhook is now: a webhook deleted or disabled meanwhile gets no
        // more attempts, and one edited meanwhile gets them at its new URL and auth
        let current = sim.world().webhooks.get(&hook_id).cloned();
        let Some(hook) = current.filter(|w| w.active == 1) else {
            tracing::info!(
                webhook = hook_id,
                transaction = tx.id,
                attempt = attempt + 1,
                "sim delivery abandoned: webhook deleted or disabled"
            );
            return;
        };
        let started = Instant::now();
        let outcome = send(&sim, &hook, &body).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let (status, error, response_body) = match outcome {
            Ok((status, text)) => (Some(status), None, Some(text.chars().take(512).collect::<String>())),
            Err(e) => (None, Some(e), None),
        };
        let success = status.is_some_and(|s| (200..300).contains(&s));
        tracing::info!(
            webhook = hook.id,
            transaction = tx.id,
            attempt = attempt + 1,
            ?status,
            success,
            "sim delivery"
        );
        sim.world().deliveries.push(DeliveryAttempt {
            webhook_id: hook.id,
            transaction_id: tx.id,
            attempt: attempt as u32 + 1,
            at: Utc::now(),
            status,
            error,
            response_body,
            duration_ms,
            success,
        });
        if success {
            return;
        }
    }
}

/// One POST; returns the status and body, or the transport error.
async fn send(sim: &Sim, hook: &Webhook, body: &serde_json::Value) -> Result<(u16, String), String> {
    let mut request = sim.http.post(&hook.webhook_url);
    request = match hook.request_content_type.as_deref() {
        Some("multipart_form-data") => {
            let mut form = reqwest::multipart::Form::new();
            for (k, v) in body.as_object().into_iter().flatten() {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                form = form.text(k.clone(), text);
            }
            request.multipart(form)
        }
        _ => request.json(body),
    };
    match hook.authen_type.as_str() {
        "Api_Key" => {
            request = request.header(
                "Authorization",
                format!("Apikey {}", hook.api_key.as_deref().unwrap_or_default()),
            );
        }
        "HMAC_SHA256" => {
            // SePay documents the timestamp header and a 5-minute window; the signature header's
            // name is undocumented, so the simulator's choice is its own
            let timestamp = Utc::now().timestamp().to_string();
            let key = ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                hook.api_key.as_deref().unwrap_or_default().as_bytes(),
            );
            let tag = ring::hmac::sign(&key, format!("{timestamp}.{body}").as_bytes());
            request = request.header("X-SePay-Timestamp", timestamp).header(
                "X-SePay-Signature",
                base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
            );
        }
        "OAuth2.0" => {
            let token = client_credentials_token(sim, hook).await?;
            request = request.bearer_auth(token);
        }
        _ => {}
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

async fn client_credentials_token(sim: &Sim, hook: &Webhook) -> Result<String, String> {
    let url = hook
        .oauth2_access_token_url
        .as_deref()
        .ok_or("no oauth2_access_token_url")?;
    let answer: serde_json::Value = sim
        .http
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", hook.oauth2_client_id.as_deref().unwrap_or_default()),
            (
                "client_secret",
                hook.oauth2_client_secret.as_deref().unwrap_or_default(),
            ),
        ])
        .send()
        .await
        .map_err(|e| format!("token request failed: {e}"))?
        .json()
        .await
        .map_err(|e| format!("token response is not JSON: {e}"))?;
    answer["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "token response has no access_token".into())
}
