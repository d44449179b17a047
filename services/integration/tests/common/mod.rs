//! What several test files share: the ingress and a processor in the test's process, and the
//! command-line tools run against the test's database and bus. Each file uses a part.
#![allow(dead_code)]

use sepay_bus::NatsConfig;
use sepay_ingress::IngressConfig;
use sepay_processor::{Classifier, FallbackOnly, ProcessorConfig};
use sepay_testkit::{Seeded, TestDb};
use serde_json::Value;
use std::process::Command;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Ingress and processor in this process, as `sepayctl up` runs them.
pub struct System {
    pub url: String,
    pub stop: CancellationToken,
}

impl System {
    pub async fn start(db: &TestDb, nats: &NatsConfig) -> Self {
        Self::start_with(db, nats, Arc::new(FallbackOnly)).await
    }

    pub async fn start_with(db: &TestDb, nats: &NatsConfig, classifier: Arc<dyn Classifier>) -> Self {
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let ingress = IngressConfig {
            relay_interval_ms: 100,
            relay_min_age_ms: 200,
            ..Default::default()
        };
        let bus = sepay_bus::Bus::connect(nats).await.unwrap();
        tokio::spawn(sepay_ingress::serve(
            listener,
            None,
            ingress,
            db.pool.clone(),
            bus.clone(),
            stop.clone(),
        ));
        let processor = ProcessorConfig {
            processor_concurrency: 8,
            ..Default::default()
        };
        tokio::spawn(sepay_processor::consume(
            processor,
            db.pool.clone(),
            bus,
            classifier,
            stop.clone(),
        ));
        Self { url, stop }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Events booked so far.
pub async fn processed(db: &TestDb) -> i64 {
    sqlx::query_scalar("select count(*) from sepay_webhook_events where status = 'processed'")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

pub fn sepayctl(db: &TestDb, nats: &NatsConfig, args: &[&str]) -> Value {
    cli("sepayctl", db, nats, args)
}

pub fn sepay_dev(db: &TestDb, nats: &NatsConfig, args: &[&str]) -> Value {
    cli("sepay-dev", db, nats, args)
}

/// `program --json args…` against the test's database and bus; its JSON answer.
pub fn cli(program: &str, db: &TestDb, nats: &NatsConfig, args: &[&str]) -> Value {
    json_answer(
        Command::new(sepay_testkit::bin(program))
            .arg("--json")
            .args(args)
            .env("DATABASE_URL", &db.config.database_url)
            .env("NATS_URL", &nats.nats_url)
            .env("BUS_PREFIX", &nats.bus_prefix)
            .env("SEPAY_DEV_DIR", dev_dir(db)),
    )
}

/// Runs a `--json` command of a CLI; it must succeed and print JSON, which is returned.
pub fn json_answer(command: &mut Command) -> Value {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{command:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Posts `body` to the seeded endpoint with its key; the answer's status.
pub async fn post(url: &str, seed: &Seeded, body: &Value) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{url}{}", seed.path()))
        .header("authorization", seed.authorization())
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
}

/// `sepay-dev` against the test's database and bus with every listener on a free port (add the
/// command, e.g. `up`; later `.env` calls override these).
/// The test's own `SEPAY_DEV_DIR` (named after its database): an `up`'s log and `up.json` never
/// meet another test's, nor those of a developer's running `up`.
pub fn dev_dir(db: &TestDb) -> std::path::PathBuf {
    let name = db.config.database_url.rsplit('/').next().unwrap_or("sepay_test");
    std::env::temp_dir().join("sepay-dev-tests").join(name)
}

pub fn sepay_dev_command(db: &TestDb, nats: &NatsConfig) -> Command {
    let mut cmd = Command::new(sepay_testkit::bin("sepay-dev"));
    cmd.env("DATABASE_URL", &db.config.database_url)
        .env("NATS_URL", &nats.nats_url)
        .env("BUS_PREFIX", &nats.bus_prefix)
        .env("SEPAY_DEV_DIR", dev_dir(db));
    for listener in [
        "INGRESS_ADDR",
        "INGRESS_ADMIN_ADDR",
        "PROCESSOR_ADDR",
        "SIM_ADDR",
        "CONNECTOR_ADDR",
        "CONNECTOR_ADMIN_ADDR",
        "PROVISIONER_ADDR",
    ] {
        cmd.env(listener, "127.0.0.1:0");
    }
    cmd
}
