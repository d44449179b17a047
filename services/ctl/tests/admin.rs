//! `sepayctl admin-token` and the login link `sepayctl up` prints.

use sepay_connector::{AdminAuth, ConnectorConfig};
use sepay_store::{admin, workspaces};
use sepay_testkit::{TestDb, test_bus};
use serde_json::Value;
use std::process::{Command, Stdio};

fn verifier(secret: Option<&str>) -> AdminAuth {
    AdminAuth::from_config(&ConnectorConfig {
        admin_jwt_secret: secret.map(str::to_owned),
        ..Default::default()
    })
    .unwrap()
}

fn admin_token(db: &TestDb, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sepayctl"))
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
        admin::member_role(&db.pool, ws, "u1").await.unwrap(),
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
        admin::member_role(&db.pool, ws, "u1").await.unwrap().as_deref(),
        Some("admin")
    );
    sqlx::query("insert into workspace_members (ws_id, user_id, role) values ($1, 'boss', 'owner')")
        .bind(ws)
        .execute(&db.pool)
        .await
        .unwrap();
    admin_token(&db, &["--ws", &ws_arg, "--user", "boss", "--grant"]);
    assert_eq!(
        admin::member_role(&db.pool, ws, "boss").await.unwrap().as_deref(),
        Some("owner"),
        "not demoted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_prints_a_working_login_link() {
    let db = TestDb::new().await;
    let (_, nats) = test_bus(&sepay_testkit::nats_url()).await;
    let child = Command::new(env!("CARGO_BIN_EXE_sepayctl"))
        .args(["--json", "up", "--demo", "--exit-after-demo"])
        .env("DATABASE_URL", &db.config.database_url)
        .env("NATS_URL", &nats.nats_url)
        .env("BUS_PREFIX", &nats.bus_prefix)
        .env_remove("ADMIN_JWT_SECRET")
        .env_remove("SEPAY_BASE_URL")
        .env_remove("SEPAY_CLIENT_ID")
        .env_remove("CONNECTOR_PUBLIC_URL")
        .env("INGRESS_ADDR", "127.0.0.1:0")
        .env("PROCESSOR_ADDR", "127.0.0.1:0")
        .env("SIM_ADDR", "127.0.0.1:0")
        .env("CONNECTOR_ADDR", "127.0.0.1:0")
        .env("PROVISIONER_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
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
        admin::member_role(&db.pool, ws, &claims.sub).await.unwrap().as_deref(),
        Some("admin")
    );
}
