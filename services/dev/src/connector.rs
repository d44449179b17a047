//! The connector's part of `sepay-dev up`: the login link of the local admin, and a simulator
//! OAuth client so "Connect SePay" works at once.

use anyhow::Context;
use sepay_api::SepayConfig;
use sepay_connector::{CALLBACK_PATH, ConnectorConfig};
use sepay_sim::client::SimClient;
use sepay_store::{PgPool, members, workspaces};
use serde_json::json;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The user `sepay-dev up` signs in as.
pub const LOCAL_ADMIN: &str = "local-admin";

/// Starts the connector for `sepay-dev up`: its public URLs follow the bound addresses unless
/// set, SePay is the embedded simulator unless SEPAY_BASE_URL is set, and an OAuth client is
/// registered there for the connector's callback. Returns the server task and the login link.
pub async fn start_connector(
    listener: TcpListener,
    admin_listener: TcpListener,
    mut config: ConnectorConfig,
    mut sepay: SepayConfig,
    up: Running<'_>,
) -> anyhow::Result<StartedConnector> {
    let Running {
        db,
        bus,
        ingress_url,
        sim_url,
        shutdown,
        landing,
    } = up;
    let defaults = ConnectorConfig::default();
    if config.connector_public_url == defaults.connector_public_url {
        config.connector_public_url = format!("http://{}", listener.local_addr()?);
    }
    if config.ingress_public_url == defaults.ingress_public_url {
        config.ingress_public_url = ingress_url.to_owned();
    }
    if let Some(sim_url) = sim_url {
        if sepay.sepay_base_url == SepayConfig::default().sepay_base_url {
            sepay.sepay_base_url = sim_url.to_owned();
        }
        if sepay.sepay_client_id.is_empty() && sepay.sepay_base_url == sim_url {
            register_sim_client(sim_url, &mut sepay, &format!("{}{CALLBACK_PATH}", config.origin())).await?;
        }
    }
    let ws_id = match landing {
        Some(ws_id) => ws_id,
        None => local_workspace(db).await?,
    };
    let secret = sepay_connector::auth::jwt_secret(config.admin_jwt_secret.as_deref(), config.dev_mode)?;
    let token = sepay_connector::mint_admin_token(&secret, LOCAL_ADMIN, Duration::from_secs(12 * 3600))?;
    let login_link = sepay_connector::login_url(config.origin(), &token, ws_id);
    let callback_url = format!("{}{CALLBACK_PATH}", config.origin());
    let origin = config.origin().to_owned();
    let task = tokio::spawn(sepay_connector::serve(
        listener,
        Some(admin_listener),
        config,
        sepay.clone(),
        db.clone(),
        bus.clone(),
        shutdown.clone(),
    ));
    Ok(StartedConnector {
        task,
        public_url: origin,
        login_link,
        sepay,
        callback_url,
    })
}

/// The running connector, and the SePay settings it settled on (shared with the provisioner).
pub struct StartedConnector {
    pub task: JoinHandle<anyhow::Result<()>>,
    /// The connector's origin (`CONNECTOR_PUBLIC_URL`, or the address it bound).
    pub public_url: String,
    pub login_link: String,
    pub sepay: SepayConfig,
    pub callback_url: String,
}

/// What `up` already runs, for the connector.
pub struct Running<'a> {
    pub db: &'a PgPool,
    pub bus: &'a sepay_bus::Bus,
    pub ingress_url: &'a str,
    pub sim_url: Option<&'a str>,
    pub shutdown: &'a CancellationToken,
    /// The workspace the login link opens (the demo's); none: the local admin's first.
    pub landing: Option<Uuid>,
}

/// A simulator company with one bank account, and an OAuth client for the connector.
async fn register_sim_client(sim_url: &str, sepay: &mut SepayConfig, callback: &str) -> anyhow::Result<()> {
    let sim = SimClient::new(sim_url);
    let company = sim.post("/sim/companies", json!({"name": "Cty Local"})).await?;
    sim.post(
        "/sim/bank-accounts",
        json!({"company_id": company["id"], "bank_short_name": "Vietcombank"}),
    )
    .await?;
    let secret = sepay_crypto::generate_secret("spcs_").expose().to_owned();
    sim.post(
        "/sim/oauth-clients",
        json!({"company_id": company["id"], "redirect_uris": [callback], "client_id": "sepay-connector-local",
               "client_secret": secret, "name": "sepay-connector (local)"}),
    )
    .await
    .context("registering the connector's OAuth client in the simulator")?;
    sepay.sepay_client_id = "sepay-connector-local".into();
    sepay.sepay_client_secret = secret;
    Ok(())
}

/// The workspace the local admin manages: the first one, or a new "Local workspace".
async fn local_workspace(db: &PgPool) -> anyhow::Result<Uuid> {
    if let Some(ws) = members::admin_workspaces(db, LOCAL_ADMIN).await?.first() {
        return Ok(ws.id);
    }
    let ws = workspaces::create_workspace(db, "Local workspace").await?;
    workspaces::create_wallet(db, ws.id, "Main wallet", "VND").await?;
    members::grant_admin(db, ws.id, LOCAL_ADMIN).await?;
    Ok(ws.id)
}
