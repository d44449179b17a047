//! Webhook health: every `WEBHOOK_HEALTH_INTERVAL_SECS` each connected workspace is synced (its
//! bank accounts listed, so an account added at SePay gets its webhook without anyone asking, and
//! a sync request lost while SePay was unreachable is made good), and its provisioned
//! webhooks are compared with what SePay lists (one paged `GET /webhooks`), and repaired: one
//! deleted at SePay is provisioned again (new token and key; the old endpoint revoked), one
//! disabled is enabled, one changed so it would filter or misroute deliveries
//! (`sepay_core::provisioning::webhook_health`) is set back with a new token and key. Each repair
//! is recorded, and the workspace is reconciled from when the repaired webhook was last known
//! healthy, so what SePay never delivered meanwhile is booked now, not at the hourly run. A
//! webhook whose endpoint was revoked here is deleted at SePay (retried at each check while SePay
//! is unreachable), so it stops posting to a dead URL and the next sync provisions one
//! replacement, not a second webhook.

use crate::Provisioner;
use crate::reconcile::reconcile;
use crate::sync::provision;
use anyhow::Context;
use chrono::{DateTime, Utc};
use sepay_api::Webhook;
use sepay_core::provisioning::{RemoteWebhook, WebhookHealth, Window, webhook_health};
use sepay_store::endpoints;
use sepay_store::provisioning::{self as store, ProvisionedEndpoint};
use sepay_telemetry::metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HealthOutcome {
    pub verified: usize,
    pub repaired: usize,
    /// Webhooks of revoked endpoints deleted at SePay.
    pub deleted: usize,
}

pub async fn watch(p: Arc<Provisioner>, shutdown: CancellationToken) {
    if p.config.webhook_health_interval_secs == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(p.config.webhook_health_interval_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let workspaces = match sepay_store::connections::active_workspaces(&p.db).await {
            Ok(workspaces) => workspaces,
            Err(err) => {
                tracing::warn!(error = ?err, "webhook health: workspaces not listed");
                continue;
            }
        };
        for ws_id in workspaces {
            // the sync runs `check` between listing the accounts and provisioning new ones
            if let Err(err) = crate::sync::sync_and_provision(&p, ws_id).await {
                tracing::warn!(%ws_id, error = %format!("{err:#}"), "scheduled sync and webhook health check failed");
            }
        }
    }
}

/// Verifies and repairs one workspace's provisioned webhooks.
pub async fn check(p: &Provisioner, ws_id: Uuid) -> anyhow::Result<HealthOutcome> {
    let provisioned = store::provisioned_endpoints(&p.db, ws_id).await?;
    let orphaned = store::orphaned_webhook_ids(&p.db, ws_id).await?;
    if provisioned.is_empty() && orphaned.is_empty() {
        return Ok(HealthOutcome::default());
    }
    let client = p.tokens.client();
    let remote = p
        .tokens
        .call(ws_id, |token| async move { client.list_webhooks(&token).await })
        .await
        .context("listing webhooks")?;
    let mut outcome = HealthOutcome::default();
    let still_posting: Vec<i64> = orphaned
        .into_iter()
        .filter(|id| remote.iter().any(|w| w.id == *id))
        .collect();
    let verdicts: Vec<(&ProvisionedEndpoint, WebhookHealth)> = provisioned
        .iter()
        .map(|e| {
            let found = remote.iter().find(|w| w.id == e.sepay_webhook_id);
            (e, webhook_health(found.map(|w| as_remote(w, e)).as_ref()))
        })
        .collect();
    let healthy: Vec<Uuid> = verdicts
        .iter()
        .filter(|(_, health)| *health == WebhookHealth::Healthy)
        .map(|(e, _)| e.id)
        .collect();
    store::mark_verified(&p.db, &healthy).await?;
    outcome.verified = healthy.len();
    if still_posting.is_empty() && healthy.len() == verdicts.len() {
        return Ok(outcome);
    }
    // one token for every change this check makes
    let token = p.tokens.access_token(ws_id).await?;
    for remote_id in &still_posting {
        match client.delete_webhook(&token, *remote_id).await {
            Ok(()) | Err(sepay_api::ApiError::NotFound) => {
                tracing::info!(%ws_id, remote_id, "webhook of a revoked endpoint deleted at SePay");
                outcome.deleted += 1;
            }
            Err(err) => {
                tracing::warn!(%ws_id, remote_id, error = %err, "webhook of a revoked endpoint not deleted; next check retries")
            }
        }
    }
    let mut unhealthy_since: Option<DateTime<Utc>> = None;
    for (endpoint, health) in &verdicts {
        let Some((kind, detail)) = repair(p, ws_id, &token, endpoint, health).await? else {
            continue;
        };
        store::record_repair(&p.db, ws_id, endpoint.id, &endpoint.bank_account_id, kind, &detail).await?;
        metrics::counter!("sepay_webhooks_repaired_total", "kind" => kind).increment(1);
        tracing::warn!(%ws_id, endpoint = %endpoint.id, remote_id = endpoint.sepay_webhook_id, kind, %detail, "webhook repaired");
        outcome.repaired += 1;
        unhealthy_since = Some(unhealthy_since.map_or(endpoint.healthy_since, |t| t.min(endpoint.healthy_since)));
    }
    // what SePay did not deliver while the webhook was broken
    if let Some(since) = unhealthy_since {
        // a minute early: SePay's transaction times are whole seconds, in the bank's clock
        let from = since - chrono::Duration::minutes(1);
        reconcile(p, ws_id, Window { from, to: Utc::now() }, "repair").await?;
    }
    Ok(outcome)
}

fn as_remote(w: &Webhook, endpoint: &ProvisionedEndpoint) -> RemoteWebhook {
    // the URL's last segment is the endpoint's token: ours if its hash is the stored one
    let url_is_ours = w
        .webhook_url
        .as_deref()
        .and_then(|url| url.trim_end_matches('/').rsplit('/').next())
        .is_some_and(|token| sepay_crypto::sha256(token.as_bytes()).as_slice() == endpoint.token_hash.as_slice());
    RemoteWebhook {
        active: w.is_active(),
        url_is_ours,
        event_type: w.event_type.clone(),
        authen_type: w.authen_type.clone(),
        only_va: Webhook::flag(w.only_va.as_ref()),
        skip_if_no_code: Webhook::flag(w.skip_if_no_code.as_ref()),
    }
}

/// Sets an unhealthy webhook right; what was done (kind, detail), or nothing for a healthy one.
async fn repair(
    p: &Provisioner,
    ws_id: Uuid,
    token: &str,
    endpoint: &ProvisionedEndpoint,
    health: &WebhookHealth,
) -> anyhow::Result<Option<(&'static str, String)>> {
    let client = p.tokens.client();
    let done = match health {
        WebhookHealth::Healthy => return Ok(None),
        WebhookHealth::Missing => {
            endpoints::revoke(&p.db, endpoint.id).await?;
            let bank_account_id: i64 = endpoint
                .bank_account_id
                .parse()
                .context("a provisioned endpoint's bank account id is numeric")?;
            let new = provision(p, ws_id, token, bank_account_id).await?;
            (
                "missing",
                format!(
                    "webhook {} gone at SePay: provisioned again as endpoint {new}",
                    endpoint.sepay_webhook_id
                ),
            )
        }
        WebhookHealth::Disabled => {
            client
                .update_webhook(token, endpoint.sepay_webhook_id, &serde_json::json!({"active": 1}))
                .await
                .context("enabling the webhook")?;
            (
                "disabled",
                format!("webhook {} disabled at SePay: enabled", endpoint.sepay_webhook_id),
            )
        }
        WebhookHealth::Drifted(fields) => {
            // the stored token is a hash: a changed URL is set back with a new token and key
            let url_token = sepay_crypto::generate_webhook_token();
            let key = sepay_crypto::generate_api_key();
            let patch = serde_json::json!({
                "webhook_url": p.webhook_url(url_token.expose()), "api_key": key.expose(),
                "authen_type": "Api_Key", "event_type": "All", "only_va": 0, "skip_if_no_code": 0, "active": 1,
            });
            client
                .update_webhook(token, endpoint.sepay_webhook_id, &patch)
                .await
                .context("setting the webhook back")?;
            endpoints::rotate(
                &p.db,
                endpoint.id,
                Duration::ZERO,
                &url_token.sha256(),
                &url_token.display_prefix(),
                &key.sha256(),
            )
            .await?;
            (
                "drifted",
                format!(
                    "webhook {} changed at SePay ({}): set back",
                    endpoint.sepay_webhook_id,
                    fields.join(", ")
                ),
            )
        }
    };
    Ok(Some(done))
}
