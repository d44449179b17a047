//! `sepayctl migrate|endpoint|events|transactions`.

use crate::text::table;
use crate::{Cli, EndpointCmd, EventsCmd, TransactionsCmd};
use anyhow::{Context, bail};
use sepay_bus::{Bus, ControlSubject};
use sepay_core::{EventStatus, Provider};
use sepay_runtime::cli::print;
use sepay_store::endpoints::CreatedEndpoint;
use sepay_store::events::EventFilter;
use sepay_store::{PgPool, endpoints, events, ledger};
use serde_json::json;
use std::time::Duration;

/// Connecting applied the migrations; this says where.
pub fn migrate(cli: &Cli) {
    let database = cli.global.db.redacted_url();
    print(
        cli.global.json,
        &json!({"migrated": true, "database": database}),
        || format!("migrations applied to {database}"),
    );
}

pub async fn transactions(cli: &Cli, db: &PgPool, cmd: &TransactionsCmd) -> anyhow::Result<()> {
    let TransactionsCmd::List { ws, limit } = cmd;
    let rows = ledger::list_transactions(db, *ws, *limit).await?;
    print(cli.global.json, &rows, || {
        rows.iter()
            .map(|t| {
                format!(
                    "{}  {:>16}  {}  {}  [{}]",
                    t.taken_at.format("%Y-%m-%d %H:%M:%S"),
                    t.amount,
                    t.category_name.as_deref().unwrap_or("-"),
                    t.description,
                    t.external_ref
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

fn created_text(c: &CreatedEndpoint) -> String {
    format!(
        "endpoint {} created (shown once, store them now)\n  webhook URL:   {}\n  API key:       {}\n  SePay sends:   Authorization: {}",
        c.endpoint.id, c.webhook_url, c.api_key, c.authorization_header
    )
}

pub async fn endpoint(cli: &Cli, db: &PgPool, cmd: &EndpointCmd) -> anyhow::Result<()> {
    let json = cli.global.json;
    match cmd {
        EndpointCmd::Create { ws, wallet, label } => {
            let created =
                endpoints::create_manual_endpoint(db, &cli.global.public_base_url(), *ws, *wallet, label).await?;
            print(json, &created, || created_text(&created));
        }
        EndpointCmd::List { ws } => {
            let rows = endpoints::list(db, *ws).await?;
            print(json, &rows, || {
                table(
                    ["ID", "WORKSPACE", "PROVIDER", "STATUS", "TOKEN", "LABEL", "LAST USED"],
                    rows.iter().map(|e| {
                        [
                            e.id.to_string(),
                            e.ws_id.to_string(),
                            e.provider.to_string(),
                            e.status.clone(),
                            format!("{}…", e.token_prefix),
                            e.label.clone(),
                            e.last_used_at
                                .map_or("never".into(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
                        ]
                    }),
                    "no endpoints",
                )
            });
        }
        EndpointCmd::Rotate { id, grace_hours } => {
            let old = endpoints::get(db, *id).await?;
            if old.sepay_webhook_id.is_some() {
                // SePay must be told the new URL first: the provisioner does the PATCH
                let bus = Bus::connect(&cli.global.nats).await?;
                bus.ensure_control_stream().await?;
                let body = json!({"endpoint_id": old.id, "ws_id": old.ws_id});
                bus.publish_control(
                    ControlSubject::EndpointRotateRequested,
                    &format!("rotate-{}-{}", old.id, chrono::Utc::now().timestamp()),
                    &body,
                )
                .await?;
                print(json, &json!({"rotation_requested": old.id}), || {
                    format!(
                        "rotation of SePay-provisioned endpoint {} requested (the provisioner updates SePay)",
                        old.id
                    )
                });
                return Ok(());
            }
            let grace = Duration::from_secs(grace_hours * 3600);
            let created = endpoints::rotate_locally(db, &cli.global.public_base_url(), *id, grace).await?;
            if created.endpoint.provider == Provider::Striga {
                let created = endpoints::CreatedStrigaEndpoint::from(created);
                print(json, &created, || {
                    format!(
                        "Striga endpoint {}: new webhook URL {}\n  the old one keeps working for {grace_hours} h",
                        created.endpoint.id, created.webhook_url
                    )
                });
                return Ok(());
            }
            print(json, &created, || {
                format!(
                    "{}\n  the old token keeps working for {grace_hours} h",
                    created_text(&created)
                )
            });
        }
        EndpointCmd::Revoke { id } => {
            let e = endpoints::revoke(db, *id).await?;
            print(json, &e, || format!("endpoint {} revoked", e.id));
        }
    }
    Ok(())
}

pub async fn events(cli: &Cli, db: &PgPool, cmd: &EventsCmd) -> anyhow::Result<()> {
    let json = cli.global.json;
    match cmd {
        EventsCmd::List { ws, status, limit } => {
            let status =
                match status {
                    Some(s) => Some(EventStatus::parse(s).with_context(|| {
                        format!("unknown status {s:?}: use received, processed, failed or duplicate")
                    })?),
                    None => None,
                };
            let rows = events::list(
                db,
                &EventFilter {
                    ws_id: *ws,
                    status,
                    limit: *limit,
                },
            )
            .await?;
            print(json, &rows, || {
                if rows.is_empty() {
                    return "no events".into();
                }
                rows.iter()
                    .map(|e| {
                        format!(
                            "{:>8}  {}  {:<9}  {:<28}  deliveries {}  attempts {}{}",
                            e.id,
                            e.received_at.format("%Y-%m-%d %H:%M:%S"),
                            e.status,
                            e.dedupe_key.chars().take(28).collect::<String>(),
                            e.delivery_count,
                            e.attempts,
                            e.failure_reason
                                .as_deref()
                                .map(|r| format!("  reason {r}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        EventsCmd::Show { id } => {
            let e = events::get(db, *id).await?;
            print(json, &e, || serde_json::to_string_pretty(&e).unwrap_or_default());
        }
        EventsCmd::Replay { ids, ws } => {
            if ids.is_empty() && ws.is_none() {
                bail!("name event ids or --ws to replay every failed event of a workspace");
            }
            let bus = Bus::connect(&cli.global.nats).await?;
            bus.ensure_events_stream().await?;
            let reopened = events::reopen_failed(db, *ws, ids).await?;
            let mut published = 0;
            for event in &reopened {
                sepay_runtime::publish_event(db, &bus, event).await?;
                published += 1;
            }
            let ids: Vec<i64> = reopened.iter().map(|e| e.id).collect();
            print(json, &json!({"replayed": ids}), || {
                format!("{published} failed event(s) re-driven: {ids:?}")
            });
        }
    }
    Ok(())
}
