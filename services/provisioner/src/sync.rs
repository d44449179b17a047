//! Account sync, webhook provisioning, rotation and disconnect.

use crate::Provisioner;
use anyhow::Context;
use sepay_api::{ApiError, NewWebhook};
use sepay_core::provisioning::wallet_name;
use sepay_store::endpoints::{self, NewEndpoint};
use sepay_store::provisioning::{self as store, SyncedAccount};
use sepay_telemetry::metrics;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncOutcome {
    pub accounts: usize,
    pub wallets_created: usize,
    pub deactivated: u64,
    pub provisioned: usize,
    pub already_provisioned: usize,
    pub skipped: usize,
    pub failed: usize,
}

/// Syncs the workspace's bank accounts, then provisions a webhook for each that has none.
pub async fn sync_and_provision(p: &Provisioner, ws_id: Uuid) -> anyhow::Result<SyncOutcome> {
    let result = sync_inner(p, ws_id).await;
    let error = result.as_ref().err().map(|e| format!("{e:#}"));
    store::record_sync(&p.db, ws_id, error.as_deref()).await?;
    metrics::counter!("sepay_sync_runs_total", "outcome" => if error.is_none() { "ok" } else { "error" }).increment(1);
    result
}

async fn sync_inner(p: &Provisioner, ws_id: Uuid) -> anyhow::Result<SyncOutcome> {
    let client = p.tokens.client();
    // a 401 here is told apart: one refresh and retry, then the connection needs a reconnect
    let accounts = p
        .tokens
        .call(ws_id, |token| async move { client.list_bank_accounts(&token).await })
        .await
        .context("listing bank accounts")?;
    let token = p.tokens.access_token(ws_id).await?;
    let connection_id = store::connection_id(&p.db, ws_id).await?;
    let mut outcome = SyncOutcome {
        accounts: accounts.len(),
        ..Default::default()
    };
    let mut listed = Vec::with_capacity(accounts.len());
    for account in &accounts {
        if account.account_number.trim().is_empty() {
            tracing::warn!(account = %account.id_text(), "bank account without a number skipped");
            outcome.skipped += 1;
            continue;
        }
        let id = account.id_text();
        let link = store::upsert_synced_account(
            &p.db,
            ws_id,
            connection_id,
            &SyncedAccount {
                sepay_bank_account_id: &id,
                account_number: &account.account_number,
                bank_short_name: account.bank_short_name(),
                holder_name: account.account_holder_name.as_deref(),
                label: account.label.as_deref(),
                new_wallet_name: &wallet_name(account.bank_short_name(), &account.account_number),
            },
        )
        .await?;
        outcome.wallets_created += link.wallet_created as usize;
        listed.push(id);
    }
    outcome.deactivated = store::deactivate_missing(&p.db, ws_id, &listed).await?;
    // every sync verifies the webhooks already provisioned (and repairs them) before adding any
    if let Err(err) = crate::health::check(p, ws_id).await {
        tracing::warn!(%ws_id, error = %format!("{err:#}"), "webhook health check during sync failed");
    }

    for account in &accounts {
        let Some(bank_account_id) = account.webhook_account_id() else {
            tracing::warn!(account = %account.id_text(), "no numeric bank account id: webhook not provisioned");
            outcome.skipped += 1;
            continue;
        };
        if store::live_endpoint(&p.db, ws_id, &bank_account_id.to_string())
            .await?
            .is_some()
        {
            outcome.already_provisioned += 1;
            continue;
        }
        match provision(p, ws_id, &token, bank_account_id).await {
            Ok(_) => outcome.provisioned += 1,
            Err(err) => {
                tracing::warn!(bank_account_id, error = %format!("{err:#}"), "webhook not provisioned");
                outcome.failed += 1;
            }
        }
    }
    metrics::counter!("sepay_webhooks_provisioned_total").increment(outcome.provisioned as u64);
    if outcome.failed > 0 {
        anyhow::bail!(
            "{} of {} webhooks could not be provisioned",
            outcome.failed,
            accounts.len()
        );
    }
    Ok(outcome)
}

/// Creates the SePay webhook, then the local endpoint; if the local write fails the remote
/// webhook is deleted (best effort) so SePay does not post to a token nobody stored.
pub async fn provision(p: &Provisioner, ws_id: Uuid, token: &str, bank_account_id: i64) -> anyhow::Result<Uuid> {
    let url_token = sepay_crypto::generate_webhook_token();
    let key = sepay_crypto::generate_api_key();
    let name = format!("sepay-finance {}", &ws_id.simple().to_string()[..8]);
    let webhook = NewWebhook::api_key_json(
        bank_account_id,
        name,
        p.webhook_url(url_token.expose()),
        key.expose().to_owned(),
    );
    let client = p.tokens.client();
    let remote_id = client
        .create_webhook(token, &webhook)
        .await
        .with_context(|| format!("creating {webhook}"))?;
    let stored = endpoints::create(
        &p.db,
        &NewEndpoint {
            provider: sepay_core::Provider::Sepay,
            signing_key_ciphertext: None,
            ws_id,
            wallet_id: None,
            label: "provisioned",
            token_hash: &url_token.sha256(),
            token_prefix: &url_token.display_prefix(),
            api_key_hash: &key.sha256(),
            sepay_webhook_id: Some(remote_id),
            bank_account_id: Some(&bank_account_id.to_string()),
        },
    )
    .await;
    match stored {
        Ok(endpoint) => {
            tracing::info!(bank_account_id, remote_id, endpoint = %endpoint.id, "webhook provisioned");
            Ok(endpoint.id)
        }
        Err(err) => {
            if let Err(del) = client.delete_webhook(token, remote_id).await {
                tracing::error!(remote_id, error = %del, "remote webhook left behind after a local failure");
            }
            Err(err).context("storing the provisioned endpoint")
        }
    }
}

/// New token and key → PATCH the SePay webhook → the old endpoint keeps working until its grace ends.
pub async fn rotate(p: &Provisioner, ws_id: Uuid, endpoint_id: Uuid) -> anyhow::Result<()> {
    let old = endpoints::get(&p.db, endpoint_id).await?;
    anyhow::ensure!(old.ws_id == ws_id, "endpoint {endpoint_id} is not in workspace {ws_id}");
    if old.status != "active" {
        tracing::info!(%endpoint_id, status = %old.status, "rotation skipped: endpoint not active");
        return Ok(());
    }
    let Some(remote_id) = old.sepay_webhook_id else {
        tracing::info!(%endpoint_id, "manual endpoint: rotate it with sepayctl or the pages");
        return Ok(());
    };
    let token = p.tokens.access_token(ws_id).await?;
    let url_token = sepay_crypto::generate_webhook_token();
    let key = sepay_crypto::generate_api_key();
    let patch = serde_json::json!({"webhook_url": p.webhook_url(url_token.expose()), "api_key": key.expose()});
    p.tokens
        .client()
        .update_webhook(&token, remote_id, &patch)
        .await
        .context("updating the SePay webhook")?;
    let grace = Duration::from_secs(p.config.rotation_grace_hours * 3600);
    let new = endpoints::rotate(
        &p.db,
        endpoint_id,
        grace,
        &url_token.sha256(),
        &url_token.display_prefix(),
        &key.sha256(),
    )
    .await?;
    tracing::info!(old = %endpoint_id, new = %new.id, "endpoint rotated");
    Ok(())
}

/// Deletes the remote webhooks (best effort), revokes every endpoint, then revokes the tokens.
pub async fn disconnect(p: &Provisioner, ws_id: Uuid) -> anyhow::Result<()> {
    let token = p.tokens.access_token(ws_id).await.ok();
    let revoked = store::revoke_workspace_endpoints(&p.db, ws_id).await?;
    if let Some(token) = token {
        for remote_id in revoked.iter().filter_map(|e| e.sepay_webhook_id) {
            match p.tokens.client().delete_webhook(&token, remote_id).await {
                Ok(()) | Err(ApiError::NotFound) => {}
                Err(err) => tracing::warn!(remote_id, error = %err, "remote webhook not deleted"),
            }
        }
    }
    p.tokens.disconnect(ws_id).await?;
    tracing::info!(%ws_id, endpoints = revoked.len(), "disconnected");
    Ok(())
}
