//! Admin sessions and secrets: `sepayctl admin-token`, the login link `sepay-dev up` prints, no
//! development secret outside development mode, none shown by `--help`.

mod common;

use sepay_connector::{AdminAuth, ConnectorConfig};
use sepay_store::{members, workspaces};
use sepay_testkit::{TestDb, test_bus};
use serde_json::{Value, json};
use std::process::{Command, Stdio};

fn verifier(secret: Option<&str>) -> AdminAuth {
    AdminAuth::from_config(&ConnectorConfig {
        admin_jwt_secret: secret.map(str::to_owned),
        ..Default::default()
    })
    .unwrap()
}

fn admin_token(db: &TestDb, args: &[&str]) -> Value {
    let out = Command::new(sepay_testkit::bin("sepayctl"))
        .args(["--json", "admin-token"])
        .args(args)
        .env("DATABASE_URL", &db.config.database_url)
        .env("ADMIN_JWT_SECRET", "ctl-test-secret")
        .env("CONNECTOR_PUBLIC_URL", "https://admin.example")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn admin_token_mints_a_session_and_grants_admin() {
    let db = TestDb::new().await;
    let ws = workspaces::create_workspace(&db.pool, "W").await.unwrap().id;
    let ws_arg = ws.to_string();

    let plain = admin_token(&db, &["--ws", &ws_arg, "--user", "u1", "--ttl-mins", "5"]);
    assert_eq!(
        members::member_role(&db.pool, ws, "u1").await.unwrap(),
        None,
        "no --grant, no membership"
    );
    let token = plain["token"].as_str().unwrap();
    let claims = verifier(Some("ctl-test-secret")).verify(token).await.unwrap();
    assert_eq!(claims.sub, "u1");
    assert!((claims.exp - chrono::Utc::now().timestamp() - 300).abs() < 10);
    assert!(verifier(Some("another")).verify(token).await.is_err());
    assert_eq!(
        plain["login_url"],
        format!("https://admin.example/login?token={token}&ws={ws}")
    );

    admin_token(&db, &["--ws", &ws_arg, "--user", "u1", "--grant"]);
    assert_eq!(
        members::member_role(&db.pool, ws, "u1").await.unwrap().as_deref(),
        Some("admin")
    );
    sqlx::query("insert into workspace_members (ws_id, user_id, role) values ($1, 'boss', 'owner')")
        .bind(ws)
        .execute(&db.pool)
        .await
        .unwrap();
    admin_token(&db, &["--ws", &ws_arg, "--user", "boss", "--grant"]);
    assert_eq!(
        members::member_role(&db.pool, ws, "boss").await.unwrap().as_deref(),
        Some("owner"),
        "not demoted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_prints_a_working_login_link() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let up_demo = || {
        let child = common::sepay_dev_command(&db, &nats)
            .args(["--json", "up", "--demo", "--exit-after-demo"])
            .env_remove("ADMIN_JWT_SECRET")
            .env_remove("SEPAY_BASE_URL")
            .env_remove("SEPAY_CLIENT_ID")
            .env_remove("CONNECTOR_PUBLIC_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        async move {
            let out = tokio::task::spawn_blocking(move || child.wait_with_output())
                .await
                .unwrap()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            // the start-up summary, then the demo's report
            let docs: Vec<Value> = serde_json::Deserializer::from_str(&String::from_utf8_lossy(&out.stdout))
                .into_iter()
                .map(|d| d.unwrap())
                .collect();
            (docs[0].clone(), docs[1].clone())
        }
    };
    // a rerun replaces the demo's workspace instead of adding one
    up_demo().await;
    let (summary, report) = up_demo().await;
    let demo_workspaces: i64 = sqlx::query_scalar("select count(*) from workspaces where name = 'Demo workspace'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(demo_workspaces, 1);
    let link = url::Url::parse(summary["connector_login"].as_str().unwrap()).unwrap();
    assert_eq!(link.path(), "/login");
    assert_ne!(link.port(), Some(0), "the link names the bound port");
    let param = |name: &str| {
        link.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let claims = verifier(None).verify(&param("token")).await.unwrap();
    let ws = param("ws").parse().unwrap();
    assert_eq!(
        report["workspace"],
        json!(param("ws")),
        "the link opens the demo's workspace"
    );
    assert_eq!(
        members::member_role(&db.pool, ws, &claims.sub)
            .await
            .unwrap()
            .as_deref(),
        Some("admin")
    );
}

/// Outside development mode the public development secrets are never used: the CLI and the
/// services stop with one line naming the setting.
#[tokio::test]
async fn without_real_secrets_nothing_starts_outside_development_mode() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let ws = uuid::Uuid::new_v4().to_string();
    let mint = |dev_mode: Option<&str>| {
        let mut cmd = Command::new(sepay_testkit::bin("sepayctl"));
        cmd.args(["admin-token", "--ws", &ws, "--user", "u1"])
            .env("DATABASE_URL", &db.config.database_url)
            .env_remove("ADMIN_JWT_SECRET")
            .env_remove("SEPAY_DEV_MODE");
        if let Some(value) = dev_mode {
            cmd.env("SEPAY_DEV_MODE", value);
        }
        cmd.output().unwrap()
    };
    let refused = mint(None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("ADMIN_JWT_SECRET is not set"), "{stderr}");
    assert!(
        mint(Some("true")).status.success(),
        "development mode signs with the development secret"
    );

    // the ingress holds the token keyring (Striga's signing keys): no keys, no start
    let ingress = Command::new(sepay_testkit::bin("sepay-dev"))
        .args([
            "serve",
            "ingress",
            "--ingress-addr",
            "127.0.0.1:0",
            "--ingress-admin-addr",
            "127.0.0.1:0",
        ])
        .env("DATABASE_URL", &db.config.database_url)
        .env("NATS_URL", &nats.nats_url)
        .env("BUS_PREFIX", &nats.bus_prefix)
        .env_remove("SEPAY_TOKEN_KEYS")
        .env_remove("SEPAY_DEV_MODE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!ingress.status.success());
    let stderr = String::from_utf8_lossy(&ingress.stderr);
    assert!(stderr.contains("SEPAY_TOKEN_KEYS: not set"), "{stderr}");

    // the connector's session verifier and token keyring
    let production = ConnectorConfig {
        dev_mode: false,
        ..Default::default()
    };
    let err = AdminAuth::from_config(&production).err().expect("refused").to_string();
    assert!(err.contains("ADMIN_JWT_SECRET is not set"), "{err}");
    let sepay = sepay_api::SepayConfig {
        dev_mode: false,
        ..Default::default()
    };
    assert_eq!(
        sepay.keyring().err(),
        Some(sepay_crypto::seal::SealError::NotConfigured)
    );
}

/// `--help` shows where settings come from, never the secrets in them.
#[test]
fn help_never_shows_secrets_from_the_environment() {
    for (program, args) in [
        ("sepayctl", &["--help"][..]),
        ("sepayctl", &["admin-token", "--help"]),
        ("sepayctl", &["striga", "endpoint", "--help"]),
        ("sepay-dev", &["--help"]),
        ("sepay-dev", &["up", "--help"]),
        ("sepay-dev", &["serve", "ingress", "--help"]),
        ("sepay-dev", &["serve", "processor", "--help"]),
    ] {
        let out = Command::new(sepay_testkit::bin(program))
            .args(args)
            .env("DATABASE_URL", "postgres://app:pg-s3cret@db:5432/sepay")
            .env("NATS_URL", "nats://app:nats-s3cret@nats:4222")
            .env("LLM_BASE_URL", "https://key:llm-s3cret@llm.example")
            .env("LLM_API_KEY", "llm-key-s3cret")
            .env("SEPAY_TOKEN_KEYS", "k1:dG9rZW4ta2V5cy1zM2NyZXQ=")
            .env("ADMIN_JWT_SECRET", "jwt-s3cret")
            .env("SEPAY_CLIENT_SECRET", "client-s3cret")
            .env("STRIGA_API_KEY", "striga-s3cret")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("[env: "), "{args:?} lists where its settings come from");
        for secret in ["s3cret", "dG9rZW4ta2V5cy1zM2NyZXQ="] {
            assert!(!help.contains(secret), "{args:?} shows {secret}:\n{help}");
        }
    }
}
