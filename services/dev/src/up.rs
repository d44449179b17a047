//! `sepay-dev up`: every service in one process, for a laptop or a demo.

use crate::Cli;
use anyhow::Context;
use sepay_ingress::IngressConfig;
use sepay_processor::ProcessorConfig;
use sepay_sim::client::SimClient;
use sepay_store::{PgPool, endpoints, events, ledger, workspaces};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

#[derive(clap::Args)]
pub struct UpArgs {
    // `up`'s own options first: each flattened group below heads the options that follow it
    /// Do not run the SePay simulator.
    #[arg(long)]
    no_sim: bool,
    /// Seed a demo workspace, have the simulator (or, with --no-sim, this command) deliver a
    /// SePay transaction to the ingress, and show it booked.
    #[arg(long)]
    demo: bool,
    /// Stop after the demo instead of serving until Ctrl-C.
    #[arg(long, requires = "demo")]
    exit_after_demo: bool,
    /// Show the services' log lines here (as does setting RUST_LOG) instead of writing them to
    /// target/sepay-dev/up.log.
    #[arg(long)]
    verbose: bool,
    #[command(flatten, next_help_heading = "Ingress")]
    ingress: IngressConfig,
    #[command(flatten, next_help_heading = "Processor")]
    processor: ProcessorConfig,
    #[command(flatten, next_help_heading = "SePay simulator")]
    sim: sepay_sim::SimConfig,
    #[command(flatten, next_help_heading = "Connector (admin pages, OAuth)")]
    connector: sepay_connector::ConnectorConfig,
    #[command(flatten, next_help_heading = "Provisioner")]
    provisioner: sepay_provisioner::ProvisionerConfig,
    /// SePay for the services that call it; unset, the embedded simulator.
    #[command(flatten, next_help_heading = "SePay client")]
    sepay: sepay_api::SepayConfig,
    #[command(flatten, next_help_heading = "HTTP limits (every listener)")]
    http: sepay_runtime::HttpLimits,
}

pub async fn run(cli: &Cli, args: &UpArgs) -> anyhow::Result<()> {
    // the terminal keeps the summary, the demo and its table; the log lines go to a file
    let dev_dir = cli.global.dev_dir()?;
    let log_file = match args.verbose || std::env::var_os("RUST_LOG").is_some() {
        true => None,
        false => Some(dev_dir.join("up.log")),
    };
    let target = match &log_file {
        Some(path) => {
            std::fs::create_dir_all(path.parent().unwrap_or(path))?;
            let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
            sepay_telemetry::LogTarget::File(file)
        }
        None => sepay_telemetry::LogTarget::Stderr,
    };
    let _telemetry = sepay_telemetry::init_logging_to(
        "sepay-dev-up",
        sepay_telemetry::LogFormat::from_env_or(sepay_telemetry::LogFormat::Text),
        target,
    );
    let shutdown = sepay_telemetry::shutdown_on_signals();
    // Postgres and NATS started here where none answer (stopped when `up` ends)
    let (mut db_config, mut nats_config) = (cli.global.db.clone(), cli.global.nats.clone());
    let say = |line: &str| eprintln!("sepay-dev up: {line}");
    let _infra = crate::local::ensure(&dev_dir, &mut db_config.database_url, &mut nats_config.nats_url, &say).await?;
    let db = sepay_store::connect(&db_config).await?;
    let bus = sepay_bus::Bus::connect(&nats_config).await?;
    let bind = sepay_runtime::bind;
    let ingress_listener = bind(args.ingress.ingress_addr, "INGRESS_ADDR").await?;
    let ingress_admin_listener = bind(args.ingress.ingress_admin_addr, "INGRESS_ADMIN_ADDR").await?;
    let processor_listener = bind(args.processor.processor_addr, "PROCESSOR_ADDR").await?;
    let provisioner_listener = bind(args.provisioner.provisioner_addr, "PROVISIONER_ADDR").await?;
    let connector_listener = bind(args.connector.connector_addr, "CONNECTOR_ADDR").await?;
    let connector_admin_listener = bind(args.connector.connector_admin_addr, "CONNECTOR_ADMIN_ADDR").await?;
    let sim_listener = match args.no_sim {
        true => None,
        false => Some(TcpListener::bind(args.sim.sim_addr).await.with_context(|| {
            format!(
                "cannot listen on {} (SIM_ADDR; --no-sim to run without the simulator)",
                args.sim.sim_addr
            )
        })?),
    };
    let sim_url = match &sim_listener {
        Some(l) => Some(format!("http://{}", l.local_addr()?)),
        None => None,
    };
    let ingress_url = format!("http://{}", ingress_listener.local_addr()?);
    let ingress_health_url = format!("http://{}", ingress_admin_listener.local_addr()?);
    let processor_url = format!("http://{}", processor_listener.local_addr()?);

    // `up` is development mode: unset secrets fall back to the public development ones
    let sepay = sepay_api::SepayConfig {
        dev_mode: true,
        ..args.sepay.clone()
    };
    // one keyring for every service: `--sepay-token-keys` reaches the ingress too
    let ingress_config = IngressConfig {
        sepay_token_keys: args.sepay.sepay_token_keys.clone(),
        dev_mode: true,
        http: args.http.clone(),
        ..args.ingress.clone()
    };
    let ingress = tokio::spawn(sepay_ingress::serve(
        ingress_listener,
        Some(ingress_admin_listener),
        ingress_config,
        db.clone(),
        bus.clone(),
        shutdown.clone(),
    ));
    let processor = tokio::spawn(sepay_processor::serve(
        processor_listener,
        ProcessorConfig {
            http: args.http.clone(),
            ..args.processor.clone()
        },
        db.clone(),
        bus.clone(),
        sepay_processor::default_classifier(&args.processor, &db),
        shutdown.clone(),
    ));
    let sim = sim_listener.map(|l| tokio::spawn(sepay_sim::serve(l, args.sim.clone(), shutdown.clone())));
    // the demo's workspace, new on every run (the last run's replaced): the login link opens it
    let demo_ws = match args.demo {
        true => {
            Some(sepay_store::members::replace_workspace(&db, crate::connector::LOCAL_ADMIN, DEMO_WORKSPACE).await?)
        }
        false => None,
    };
    let running = crate::connector::Running {
        db: &db,
        bus: &bus,
        ingress_url: &ingress_url,
        sim_url: sim_url.as_deref(),
        shutdown: &shutdown,
        landing: demo_ws,
    };
    let connector_config = sepay_connector::ConnectorConfig {
        dev_mode: true,
        http: args.http.clone(),
        ..args.connector.clone()
    };
    let started = crate::connector::start_connector(
        connector_listener,
        connector_admin_listener,
        connector_config,
        sepay,
        running,
    )
    .await?;
    let (connector, login_link) = (started.task, started.login_link.clone());
    // the provisioner calls SePay with the connector's OAuth client, and gives SePay the ingress URL
    let mut provisioner_config = args.provisioner.clone();
    provisioner_config.sepay = started.sepay.clone();
    provisioner_config.http = args.http.clone();
    let public_base_url = cli.global.public_base_url_set().unwrap_or(&ingress_url).to_owned();
    provisioner_config.public_base_url = public_base_url.clone();
    let provisioner = tokio::spawn(sepay_provisioner::serve(
        provisioner_listener,
        provisioner_config,
        db.clone(),
        bus.clone(),
        shutdown.clone(),
    ));
    // `sepayctl admin-token`, `endpoint create` and `sepay-dev demo` find these addresses here
    let _announced = sepay_runtime::dev_dir::RunningUp {
        pid: std::process::id(),
        public_base_url,
        connector_url: started.public_url.clone(),
        sim_url: sim_url.clone(),
    }
    .announce(&dev_dir)?;
    let summary = json!({
        "sim": sim_url,
        "postgres": db_config.redacted_url(),
        "nats": nats_config.redacted_url(),
        "ingress": format!("{ingress_url}/api/v1/webhooks/sepay/{{token}}"),
        "ingress_health": format!("{ingress_health_url}/readyz"),
        "processor": format!("{processor_url}/readyz"),
        "connector_login": login_link,
        "log_file": log_file,
    });
    sepay_runtime::cli::print(cli.global.json, &summary, || {
        format!(
            "sepay is up\n  logs       {}\n  postgres   {} (migrated)\n  nats       {}\n  ingress    {ingress_url}/api/v1/webhooks/sepay/{{token}}   health {ingress_health_url}/readyz\n  processor  {processor_url}/readyz\n  sepay-sim  {}\n  connector  admin pages, sign in with {login_link}\nCtrl-C stops everything.",
            log_file
                .as_ref()
                .map_or("here (--verbose or RUST_LOG)".to_owned(), |p| format!(
                    "{}  (--verbose shows them here)",
                    p.display()
                )),
            db_config.redacted_url(),
            nats_config.redacted_url(),
            sim_url
                .as_deref()
                .map(|u| format!(
                    "{u}  (OAuth {u}/oauth/authorize, API {u}/api/v1, control {u}/sim/state; `sepay-dev sim --help`)"
                ))
                .unwrap_or_else(|| "off".into())
        )
    });

    if let Some(ws_id) = demo_ws {
        let result = match sim_url.as_deref() {
            Some(sim) => crate::demo::run(
                &db,
                &bus,
                ws_id,
                sim,
                &ingress_url,
                &started.sepay,
                &started.callback_url,
            )
            .await
            .map(|report| sepay_runtime::cli::print(cli.global.json, &report.value, || report.table.clone())),
            None => demo(cli, &db, &ingress_url, None, Some(ws_id)).await,
        };
        if args.exit_after_demo || result.is_err() {
            shutdown.cancel();
        }
        if let Err(err) = result {
            let _ = tokio::join!(ingress, processor, connector, provisioner);
            return Err(err);
        }
    }
    let (i, p, c, v) = tokio::join!(ingress, processor, connector, provisioner);
    i??;
    p??;
    c??;
    v??;
    if let Some(sim) = sim {
        sim.await??;
    }
    Ok(())
}

/// `sepay-dev demo`: the demo against services already running (a `sepay-dev up`, compose,
/// Kubernetes).
pub async fn demo_on_running(cli: &Cli, sim_url: Option<&str>) -> anyhow::Result<()> {
    let sim_url = crate::sim::sim_url(&cli.global, sim_url);
    let answers = reqwest::Client::new()
        .get(format!("{sim_url}/sim/state"))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    anyhow::ensure!(
        answers,
        "no SePay simulator answers at {sim_url}: start everything with `sepay-dev up --demo`, or point --sim-url (SIM_URL) at a running simulator"
    );
    let db = sepay_store::connect(&cli.global.db).await?;
    demo(cli, &db, &cli.global.public_base_url(), Some(&sim_url), None).await
}

/// The workspace `up --demo` runs its demo in (and its login link opens).
const DEMO_WORKSPACE: &str = "Demo workspace";

/// A workspace, a wallet linked to a bank account, a manual endpoint; then one transaction, made
/// in the simulator (which delivers it as SePay does) or posted here in SePay's documented shape.
async fn demo(
    cli: &Cli,
    db: &PgPool,
    ingress_url: &str,
    sim_url: Option<&str>,
    ws: Option<uuid::Uuid>,
) -> anyhow::Result<()> {
    let ws = match ws {
        Some(ws) => workspaces::get_workspace(db, ws).await?,
        None => workspaces::create_workspace(db, DEMO_WORKSPACE).await?,
    };
    let wallet = workspaces::create_wallet(db, ws.id, "Vietcombank 8888", "VND").await?;
    let endpoint = endpoints::create_manual_endpoint(db, ingress_url, ws.id, None, "demo").await?;
    let started = Instant::now();
    let (account_number, how) = match sim_url {
        Some(url) => {
            let sim = SimClient::new(url);
            let company = sim.post("/sim/companies", json!({"name": "Cty Demo"})).await?;
            let account = sim
                .post(
                    "/sim/bank-accounts",
                    json!({"company_id": company["id"], "bank_short_name": "Vietcombank"}),
                )
                .await?;
            let number = account["account_number"].as_str().unwrap_or_default().to_owned();
            workspaces::link_account(db, ws.id, &number, None, wallet.id).await?;
            // what an admin does in SePay's dashboard for a manual endpoint
            sim.post(
                "/sim/webhooks",
                json!({"company_id": company["id"], "bank_account_id": account["id"], "name": "finance", "event_type": "All",
                       "authen_type": "Api_Key", "webhook_url": endpoint.webhook_url, "is_verify_payment": 0,
                       "api_key": endpoint.api_key, "request_content_type": "Json"}),
            )
            .await?;
            let tx = sim
                .post(
                    "/sim/transactions",
                    json!({"bank_account_id": account["id"], "transfer_type": "in", "amount": 2277000,
                           "content": "DEMO thanh toan don hang 1001", "code": "DH1001"}),
                )
                .await?;
            (
                number,
                format!(
                    "sepay-sim transaction {} delivered by the simulator's webhook sender",
                    tx["id"]
                ),
            )
        }
        None => {
            let number = "0071000888888".to_owned();
            workspaces::link_account(db, ws.id, &number, None, wallet.id).await?;
            let status = post_delivery(&endpoint.webhook_url, &endpoint.authorization_header, &number).await?;
            (number, format!("posted in SePay's shape, ingress answered {status}"))
        }
    };
    let booked = loop {
        if let Some(t) = ledger::list_transactions(db, ws.id, 1).await?.into_iter().next() {
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
            anyhow::bail!(match recent.first() {
                None => format!(
                    "no delivery reached the ingress at {ingress_url} within 10 s: is the ingress running there (PUBLIC_BASE_URL)?"
                ),
                Some(event) if event.status == sepay_core::lifecycle::EventStatus::Failed.as_str() => format!(
                    "the demo delivery (event {}) failed: {}; `sepayctl events show {}` has the detail",
                    event.id,
                    event.failure_reason.as_deref().unwrap_or("no reason recorded"),
                    event.id
                ),
                Some(event) => format!(
                    "the ingress stored the demo delivery (event {}, {}) but nothing booked it within 10 s: is sepay-processor running on the same NATS (NATS_URL, BUS_PREFIX)?",
                    event.id, event.status
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let booked_ms = started.elapsed().as_millis();
    let report = json!({
        "workspace": ws.id, "wallet": wallet.id, "endpoint": endpoint.endpoint.id, "account_number": account_number,
        "webhook_url": endpoint.webhook_url, "delivery": how, "booked_ms": booked_ms, "transaction": booked,
    });
    sepay_runtime::cli::print(cli.global.json, &report, || {
        format!(
            "demo: {how}\n\
             demo: booked in {booked_ms} ms: {} {} VND, category {:?}, wallet {} (account {account_number})\n\
             demo: try `sepayctl events list --ws {}`, `sepayctl transactions list --ws {}`{}",
            booked.taken_at.format("%Y-%m-%d %H:%M:%S UTC"),
            booked.amount,
            booked.category_name.as_deref().unwrap_or("-"),
            wallet.name,
            ws.id,
            ws.id,
            if sim_url.is_some() {
                ", `sepay-dev sim deliveries`"
            } else {
                ""
            }
        )
    });
    Ok(())
}

/// One delivery in SePay's documented shape (seed 004), for `--no-sim`.
async fn post_delivery(url: &str, authorization: &str, account_number: &str) -> anyhow::Result<reqwest::StatusCode> {
    let sepay_id = chrono::Utc::now().timestamp_micros() % 1_000_000_000;
    let delivery = json!({
        "id": sepay_id,
        "gateway": "Vietcombank",
        "transactionDate": sepay_core::vn_time::format_vietnam_local(chrono::Utc::now()),
        "accountNumber": account_number,
        "code": "DH1001",
        "content": "DEMO thanh toan don hang 1001",
        "transferType": "in",
        "transferAmount": 2277000,
        "accumulated": 19077000,
        "subAccount": null,
        "referenceCode": "MBVCB.3278907687",
        "description": "BankAPINotify DEMO thanh toan don hang 1001"
    });
    let answer = reqwest::Client::new()
        .post(url)
        .header("Authorization", authorization)
        .json(&delivery)
        .send()
        .await
        .context("posting the demo delivery to the ingress")?;
    Ok(answer.status())
}
