//! Test helpers over the real Postgres and NATS: a fresh database per test, a unique bus prefix
//! per test, a private nats-server that a test may stop and start, and SePay-shaped deliveries.

pub mod config_docs;

pub use config_docs::{assert_help_matches_docs, documented_settings, flags_not_named_after_env};

use sepay_bus::{Bus, NatsConfig};
use sepay_store::{DbConfig, PgPool};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Postgres server the tests create their databases on.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A database of its own, migrated, named `sepay_test_<unix seconds>_<random>`. Databases of
/// runs older than an hour are dropped when a new one is made.
pub struct TestDb {
    pub pool: PgPool,
    pub config: DbConfig,
}

impl TestDb {
    pub async fn new() -> Self {
        let config = Self::fresh_config().await;
        let pool = sepay_store::connect(&config).await.expect("test database");
        Self { pool, config }
    }

    /// A database migrated only up to `version` (an upgrade test stores rows, then migrates the
    /// rest with `sepay_store::migrate`).
    pub async fn migrated_to(version: i64) -> Self {
        use sqlx::migrate::MigrateDatabase;
        let config = Self::fresh_config().await;
        sqlx::Postgres::create_database(&config.database_url)
            .await
            .expect("test database");
        let pool = config.lazy_pool().expect("test database");
        sepay_store::MIGRATOR
            .run_to(version, &pool)
            .await
            .expect("migrations up to the version");
        Self { pool, config }
    }

    /// A new database's settings (not created yet), after dropping those of runs over an hour old.
    async fn fresh_config() -> DbConfig {
        let admin = admin_database_url();
        let admin_pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("tests need Postgres at {admin}: {e}"));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let stale: Vec<(String,)> = sqlx::query_as(
            "select datname from pg_database where datname ~ '^sepay_test_[0-9]+_' \
             and split_part(datname, '_', 3)::bigint < $1",
        )
        .bind((now - 3600) as i64)
        .fetch_all(&admin_pool)
        .await
        .unwrap_or_default();
        for (name,) in stale {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "drop database if exists \"{name}\" with (force)"
            )))
            .execute(&admin_pool)
            .await;
        }
        let name = format!("sepay_test_{now}_{}", Uuid::new_v4().simple());
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .unwrap_or(admin.clone());
        DbConfig {
            database_url: format!("{base}/{name}"),
            db_max_connections: 20,
            db_acquire_timeout_ms: 5000,
            ..Default::default()
        }
    }
}

/// A bus whose stream, subjects and consumers carry a prefix no other test uses.
pub async fn test_bus(nats_url: &str) -> (Bus, NatsConfig) {
    let config = NatsConfig {
        nats_url: nats_url.to_owned(),
        bus_prefix: format!("t{}", &Uuid::new_v4().simple().to_string()[..12]),
        nats_publish_timeout_ms: 2000,
        ..Default::default()
    };
    let bus = Bus::connect(&config).await.expect("tests need NATS with JetStream");
    (bus, config)
}

/// A nats-server of the test's own (real NATS, own port and store), so a test can stop and
/// restart it without disturbing others.
pub struct PrivateNats {
    port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    pub fn start() -> Self {
        let port = free_port();
        let store = std::env::temp_dir().join(format!("sepay-nats-{}", Uuid::new_v4().simple()));
        let mut nats = Self {
            port,
            store,
            child: None,
        };
        nats.resume();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store.
    pub fn resume(&mut self) {
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "/usr/sbin/nats-server".into());
        let child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// A workspace binary (`sepayctl`, `sepay-dev`), built beside the test executables: the
/// workspace's test build (`cargo nextest run --workspace`) builds them, since their packages have
/// integration tests of their own.
pub fn bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(name))
        .expect("a target directory");
    assert!(
        path.exists(),
        "{} is not built: run the workspace's tests (`cargo nextest run --workspace`) or `cargo build -p {name}`",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A workspace with a wallet linked to `ACCOUNT` and a manual endpoint.
pub struct Seeded {
    pub ws_id: Uuid,
    pub wallet_id: Uuid,
    pub endpoint_id: Uuid,
    pub token: String,
    pub api_key: String,
}

pub const ACCOUNT: &str = "0071000888888";

impl Seeded {
    pub async fn new(db: &PgPool) -> Self {
        Self::with_link(db, true).await
    }

    pub async fn with_link(db: &PgPool, link: bool) -> Self {
        use sepay_store::{endpoints, workspaces};
        let ws = workspaces::create_workspace(db, "Test").await.unwrap();
        let wallet = workspaces::create_wallet(db, ws.id, "VCB 8888", "VND").await.unwrap();
        if link {
            workspaces::link_account(db, ws.id, ACCOUNT, None, wallet.id)
                .await
                .unwrap();
        }
        let token = sepay_crypto::generate_webhook_token();
        let key = sepay_crypto::generate_api_key();
        let endpoint = endpoints::create(
            db,
            &endpoints::NewEndpoint {
                provider: sepay_core::Provider::Sepay,
                signing_key_ciphertext: None,
                ws_id: ws.id,
                wallet_id: None,
                label: "test",
                token_hash: &token.sha256(),
                token_prefix: &token.display_prefix(),
                api_key_hash: &key.sha256(),
                sepay_webhook_id: None,
                bank_account_id: None,
            },
        )
        .await
        .unwrap();
        Self {
            ws_id: ws.id,
            wallet_id: wallet.id,
            endpoint_id: endpoint.id,
            token: token.expose().to_owned(),
            api_key: key.expose().to_owned(),
        }
    }

    pub fn path(&self) -> String {
        format!("/api/v1/webhooks/sepay/{}", self.token)
    }

    pub fn authorization(&self) -> String {
        format!("Apikey {}", self.api_key)
    }
}

/// A delivery in SePay's documented shape (seed 004).
pub fn delivery(id: i64, transfer_type: &str, amount: Value) -> Value {
    json!({
        "id": id,
        "gateway": "Vietcombank",
        "transactionDate": "2023-03-25 14:02:37",
        "accountNumber": ACCOUNT,
        "code": null,
        "content": format!("payment {id}"),
        "transferType": transfer_type,
        "transferAmount": amount,
        "accumulated": 19077000,
        "subAccount": null,
        "referenceCode": format!("MBVCB.{id}"),
        "description": ""
    })
}

/// Serves `router` on `listener` until `stop`: a service whose state the test keeps a handle
/// on, such as sepay-sim's `Sim` (`sepay_sim::router`), running in the test's process.
pub fn serve_router(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    })
}

/// Polls `check` every 20 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts rows of `table` (a fixed table name from the test).
pub async fn count(db: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(db)
        .await
        .unwrap()
}

/// A TCP proxy in front of a real server that a test can cut (every open connection dropped,
/// new ones refused) and restore: "Postgres went away" without stopping the shared Postgres.
pub struct TcpProxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Default::default();
        let (up2, conns2) = (up.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().unwrap().push(task);
            }
        });
        Self {
            port,
            up,
            connections,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn database_url(&self, url: &str) -> String {
        let (scheme_auth, rest) = url.split_once('@').expect("a URL with user@host");
        let path = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
        format!("{scheme_auth}@127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// Striga's five documented SEPA webhooks (seed 003), verbatim.
pub use sepay_core::striga::samples as striga_samples;
