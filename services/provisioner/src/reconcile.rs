//! Reconciliation (seed 002): fetch SePay's transactions for a window, insert the ones we never
//! received as `source = 'reconciliation'` events with the same dedupe key, and publish them.

use crate::Provisioner;
use anyhow::Context;
use chrono::{DateTime, Utc};
use sepay_api::{Transaction, TransactionQuery};
use sepay_bus::ControlRequest;
use sepay_core::provisioning::Window;
use sepay_core::{DedupeKey, Delivery, EventSource};
use sepay_store::events::{self, EventBody, NewEvent};
use sepay_store::provisioning as store;
use sepay_telemetry::metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileOutcome {
    pub run_id: i64,
    pub fetched: usize,
    pub inserted: usize,
}

/// `sepay.reconcile.requested`: the given window, or the configured look-back.
pub async fn requested(p: &Provisioner, request: &ControlRequest) -> anyhow::Result<ReconcileOutcome> {
    let parse = |s: &Option<String>| -> anyhow::Result<Option<DateTime<Utc>>> {
        s.as_deref()
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|d| d.with_timezone(&Utc))
                    .with_context(|| format!("bad instant {t}"))
            })
            .transpose()
    };
    let to = parse(&request.to)?.unwrap_or_else(Utc::now);
    let from = parse(&request.from)?.unwrap_or(to - chrono::Duration::hours(p.config.reconcile_window_hours as i64));
    anyhow::ensure!(from <= to, "reconciliation window ends before it starts");
    reconcile(p, request.ws_id, Window { from, to }, "request").await
}

/// Runs one reconciliation and records it in `sepay_reconciliation_runs`.
pub async fn reconcile(
    p: &Provisioner,
    ws_id: Uuid,
    window: Window,
    trigger: &'static str,
) -> anyhow::Result<ReconcileOutcome> {
    reconcile_spans(p, ws_id, &[window], trigger).await
}

/// One reconciliation of several spans of a workspace (its open gaps): one listing of SePay's
/// transactions over the days they touch, and what falls inside any span inserted. Recorded as
/// one run over the window that covers them all.
pub async fn reconcile_spans(
    p: &Provisioner,
    ws_id: Uuid,
    spans: &[Window],
    trigger: &'static str,
) -> anyhow::Result<ReconcileOutcome> {
    let window = Window::covering(spans).context("no span to reconcile")?;
    let run_id = store::start_run(&p.db, ws_id, trigger, window.from, window.to).await?;
    let mut counts = (0usize, 0usize);
    let result = run(p, ws_id, window, spans, run_id, &mut counts).await;
    let error = result.as_ref().err().map(|e| format!("{e:#}"));
    let failures = store::finish_run(&p.db, run_id, counts.0 as i32, counts.1 as i32, error.as_deref()).await?;
    if trigger == "schedule" && failures > 0 {
        let retry_at = Utc::now() + sepay_core::provisioning::reconcile_retry_after(failures);
        store::set_reconcile_retry(&p.db, ws_id, retry_at).await?;
    }
    metrics::counter!("sepay_reconciliation_runs_total", "outcome" => if error.is_none() { "ok" } else { "error" })
        .increment(1);
    metrics::counter!("sepay_reconciliation_inserted_total").increment(counts.1 as u64);
    result?;
    Ok(ReconcileOutcome {
        run_id,
        fetched: counts.0,
        inserted: counts.1,
    })
}

async fn run(
    p: &Provisioner,
    ws_id: Uuid,
    window: Window,
    spans: &[Window],
    run_id: i64,
    counts: &mut (usize, usize),
) -> anyhow::Result<()> {
    let token = p.tokens.access_token(ws_id).await?;
    let mut transactions = fetch(p, &token, window).await?;
    if spans.len() > 1 {
        transactions.retain(|t| {
            sepay_core::vn_time::parse_vietnam_local(&t.transaction_date)
                .is_some_and(|at| spans.iter().any(|span| span.contains(at)))
        });
    }
    counts.0 = transactions.len();
    store::progress_run(&p.db, run_id, counts.0 as i32, 0).await?;
    for (n, tx) in transactions.iter().enumerate() {
        if insert(p, ws_id, tx).await? {
            counts.1 += 1;
        }
        if n % 100 == 99 {
            store::progress_run(&p.db, run_id, counts.0 as i32, counts.1 as i32).await?;
        }
    }
    Ok(())
}

/// All transactions of the window; a window that hits SePay's row limit is split in halves.
async fn fetch(p: &Provisioner, token: &str, window: Window) -> anyhow::Result<Vec<Transaction>> {
    let mut pending = vec![window];
    let mut all = Vec::new();
    while let Some(w) = pending.pop() {
        let (first, last) = w.vietnam_days();
        let query = TransactionQuery {
            bank_account_id: None,
            from_date: Some(first.format("%Y-%m-%d").to_string()),
            to_date: Some(last.format("%Y-%m-%d").to_string()),
        };
        let rows = p
            .tokens
            .client()
            .list_transactions(token, &query)
            .await
            .context("listing transactions")?;
        if rows.len() >= p.config.reconcile_window_row_limit
            && let Some((a, b)) = w.split()
        {
            tracing::info!(rows = rows.len(), "reconciliation window hit the row limit; splitting");
            pending.push(b);
            pending.push(a);
            continue;
        }
        // the API filters by whole days: keep what falls inside the window itself
        all.extend(rows.into_iter().filter(|t| {
            sepay_core::vn_time::parse_vietnam_local(&t.transaction_date).is_some_and(|at| w.contains(at))
        }));
    }
    all.sort_by_key(|t| t.id);
    all.dedup_by_key(|t| t.id);
    Ok(all)
}

/// Inserts the transaction if no event holds its dedupe key; publishes it. True when inserted.
async fn insert(p: &Provisioner, ws_id: Uuid, tx: &Transaction) -> anyhow::Result<bool> {
    let Delivery::Object(payload) = Delivery::from_value(tx.as_webhook_payload()) else {
        anyhow::bail!("transaction {} does not map to a webhook payload", tx.id);
    };
    let key = DedupeKey::for_payload(&payload);
    let value = payload.clone().into_value();
    let inserted = events::insert_missing(
        &p.db,
        &NewEvent {
            provider: sepay_core::Provider::Sepay,
            ws_id,
            endpoint_id: None,
            source: EventSource::Reconciliation,
            sepay_transaction_id: payload.sepay_id(),
            dedupe_key: &key,
            body: EventBody::Json(&value),
        },
    )
    .await?;
    let Some(event) = inserted else { return Ok(false) };
    tracing::info!(event_id = event.id, sepay_id = tx.id, "missing transaction recovered");
    // a failed publish leaves the row unpublished: the ingress relay publishes it
    if let Err(err) = sepay_runtime::publish_event(&p.db, &p.bus, &event).await {
        tracing::warn!(event_id = event.id, error = %err, "left to the relay");
    }
    Ok(true)
}

/// Reconciles every active connection whose last run is older than the interval.
pub async fn schedule(p: Arc<Provisioner>, shutdown: CancellationToken) {
    if p.config.reconcile_interval_secs == 0 {
        return;
    }
    let every = Duration::from_secs(p.config.reconcile_interval_secs);
    let mut tick = tokio::time::interval(Duration::from_secs(60).min(every));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let due = match store::due_for_reconciliation(&p.db, every).await {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = ?err, "reconciliation schedule check failed");
                continue;
            }
        };
        for (ws_id, reconciled_through) in due {
            let look_back = chrono::Duration::hours(p.config.reconcile_window_hours as i64);
            let window = sepay_core::provisioning::scheduled_window(Utc::now(), look_back, reconciled_through);
            if let Err(err) = reconcile(&p, ws_id, window, "schedule").await {
                tracing::warn!(%ws_id, error = %format!("{err:#}"), "scheduled reconciliation failed");
            }
        }
    }
}
