//! `sepayctl up`: every service in one process, for a laptop or a demo.

use crate::Cli;
use crate::commands::create_endpoint;
use anyhow::Context;
use sepay_ingress::IngressConfig;
use sepay_processor::{FallbackOnly, ProcessorConfig};
use sepay_store::{PgPool, events, ledger, workspaces};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

#[derive(clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    ingress: IngressConfig,
    #[command(flatten)]
    processor: ProcessorConfig,
    /// Seed a demo workspace, deliver a SePay transaction to the ingress and show it booked.
    #[arg(long)]
    demo: bool,
    /// Stop after the demo instead of serving until Ctrl-C.
    #[arg(long, requires = "demo")]
    exit_after_demo: bool,
}

pub async fn run(cli: &Cli, args: &UpArgs) -> anyhow::Result<()> {
    let _telemetry = sepay_telemetry::init(
        "sepayctl-up",
        sepay_telemetry::LogFormat::from_env_or(sepay_telemetry::LogFormat::Text),
    );
    let shutdown = sepay_telemetry::shutdown_on_signals();
    let db = sepay_store::connect(&cli.db).await?;
    let bus = sepay_bus::Bus::connect(&cli.nats).await?;
    let ingress_listener = TcpListener::bind(args.ingress.ingress_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (INGRESS_ADDR)",
                args.ingress.ingress_addr
            )
        })?;
    let processor_listener = TcpListener::bind(args.processor.processor_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (PROCESSOR_ADDR)",
                args.processor.processor_addr
            )
        })?;
    let ingress_url = format!("http://{}", ingress_listener.local_addr()?);
    let processor_url = format!("http://{}", processor_listener.local_addr()?);

    let ingress = tokio::spawn(sepay_ingress::serve(
        ingress_listener,
        args.ingress.clone(),
        db.clone(),
        bus.clone(),
        shutdown.clone(),
    ));
    let processor = tokio::spawn(sepay_processor::serve(
        processor_listener,
        args.processor.clone(),
        db.clone(),
        bus.clone(),
        Arc::new(FallbackOnly),
        shutdown.clone(),
    ));
    let started = json!({
        "postgres": cli.db.redacted_url(),
        "nats": cli.nats.nats_url,
        "ingress": format!("{ingress_url}/api/v1/webhooks/sepay/{{token}}"),
        "processor": format!("{processor_url}/readyz"),
    });
    crate::output::print(cli.json, &started, || {
        format!(
            "sepay is up\n  postgres   {} (migrated)\n  nats       {}\n  ingress    {ingress_url}/api/v1/webhooks/sepay/{{token}}   health {ingress_url}/readyz\n  processor  {processor_url}/readyz\nCtrl-C stops everything.",
            cli.db.redacted_url(),
            cli.nats.nats_url
        )
    });

    if args.demo {
        let result = demo(cli, &db, &ingress_url).await;
        if args.exit_after_demo || result.is_err() {
            shutdown.cancel();
        }
        if let Err(err) = result {
            let _ = tokio::join!(ingress, processor);
            return Err(err);
        }
    }
    let (i, p) = tokio::join!(ingress, processor);
    i??;
    p??;
    Ok(())
}

/// Plays SePay once: a workspace, a wallet linked to a bank account, an endpoint, and one
/// delivery in SePay's documented shape, then waits for the booking.
async fn demo(cli: &Cli, db: &PgPool, ingress_url: &str) -> anyhow::Result<()> {
    let ws = workspaces::create_workspace(db, "Demo workspace").await?;
    let wallet = workspaces::create_wallet(db, ws.id, "Vietcombank 8888", "VND").await?;
    workspaces::link_account(db, ws.id, "0071000888888", None, wallet.id).await?;
    let endpoint = create_endpoint(db, ingress_url, ws.id, None, "demo").await?;
    let sepay_id = chrono::Utc::now().timestamp_micros() % 1_000_000_000;
    let delivery = json!({
        "id": sepay_id,
        "gateway": "Vietcombank",
        "transactionDate": sepay_core::vn_time::format_vietnam_local(chrono::Utc::now()),
        "accountNumber": "0071000888888",
        "code": null,
        "content": "DEMO thanh toan don hang 1001",
        "transferType": "in",
        "transferAmount": 2277000,
        "accumulated": 19077000,
        "subAccount": null,
        "referenceCode": "MBVCB.3278907687",
        "description": "BankAPINotify DEMO thanh toan don hang 1001"
    });
    let started = Instant::now();
    let answer = reqwest::Client::new()
        .post(&endpoint.webhook_url)
        .header("Authorization", &endpoint.authorization_header)
        .json(&delivery)
        .send()
        .await
        .context("posting the demo delivery to the ingress")?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    let acked_ms = started.elapsed().as_millis();
    let booked = loop {
        let rows = ledger::list_transactions(db, ws.id, 1).await?;
        if let Some(t) = rows.into_iter().next() {
            break t;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let recent = events::list(
                db,
                &events::EventFilter {
                    ws_id: Some(ws.id),
                    status: None,
                    limit: 1,
                },
            )
            .await?;
            anyhow::bail!(
                "the demo delivery was not booked within 10 s; its event: {:?}",
                recent.first()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let booked_ms = started.elapsed().as_millis();
    let report = json!({
        "workspace": ws.id, "wallet": wallet.id, "endpoint": endpoint.endpoint.id,
        "webhook_url": endpoint.webhook_url, "ingress_answer": {"status": status.as_u16(), "body": body},
        "acked_ms": acked_ms, "booked_ms": booked_ms, "transaction": booked,
    });
    crate::output::print(cli.json, &report, || {
        format!(
            "demo: SePay delivery {sepay_id} → ingress answered {status} {body} in {acked_ms} ms\n\
             demo: booked in {booked_ms} ms: {} {} VND, category {:?}, wallet {}\n\
             demo: try `sepayctl events list --ws {}` and `sepayctl transactions list --ws {}`",
            booked.taken_at.format("%Y-%m-%d %H:%M:%S UTC"),
            booked.amount,
            booked.category_name.as_deref().unwrap_or("-"),
            wallet.name,
            ws.id,
            ws.id
        )
    });
    Ok(())
}
