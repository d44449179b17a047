//! The ingress against real Postgres and NATS.

use reqwest::StatusCode;
use sepay_ingress::IngressConfig;
use sepay_store::PgPool;
use sepay_testkit::{Seeded, TcpProxy, TestDb, count, delivery, eventually, test_bus};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Ingress {
    url: String,
    /// The admin listener: health and metrics.
    admin: String,
    shutdown: CancellationToken,
    http: reqwest::Client,
}

impl Ingress {
    async fn start(db: PgPool, bus: sepay_bus::Bus) -> Self {
        let config = IngressConfig {
            relay_interval_ms: 100,
            relay_min_age_ms: 200,
            ..Default::default()
        };
        Self::start_with(db, bus, config).await
    }

    async fn start_with(db: PgPool, bus: sepay_bus::Bus, config: IngressConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let admin = format!("http://{}", admin_listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(sepay_ingress::serve(
            listener,
            Some(admin_listener),
            config,
            db,
            bus,
            shutdown.clone(),
        ));
        Self {
            url,
            admin,
            shutdown,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, auth: Option<&str>, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let body = res.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn deliver(&self, seed: &Seeded, body: &Value) -> (StatusCode, Value) {
        self.post(&seed.path(), Some(&seed.authorization()), body.to_string())
            .await
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn setup() -> (TestDb, sepay_bus::Bus, Seeded, Ingress) {
    setup_with(IngressConfig {
        relay_interval_ms: 100,
        relay_min_age_ms: 200,
        ..Default::default()
    })
    .await
}

async fn setup_with(config: IngressConfig) -> (TestDb, sepay_bus::Bus, Seeded, Ingress) {
    let db = TestDb::new().await;
    let (bus, _) = test_bus(&sepay_testkit::nats_url()).await;
    let seed = Seeded::new(&db.pool).await;
    let ingress = Ingress::start_with(db.pool.clone(), bus.clone(), config).await;
    (db, bus, seed, ingress)
}

async fn event_row(db: &PgPool, ws: uuid::Uuid, key: &str) -> (String, i32, i32, Option<String>, bool) {
    sqlx::query_as(
        "select status, attempts, delivery_count, failure_reason, published_at is not null
           from sepay_webhook_events where ws_id = $1 and dedupe_key = $2",
    )
    .bind(ws)
    .bind(key)
    .fetch_one(db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_delivery_is_stored_published_and_acknowledged() {
    let (db, bus, seed, ingress) = setup().await;
    let (status, body) = ingress.deliver(&seed, &delivery(92704, "in", json!(2277000))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));
    // the message is on the stream before the answer; the row notes it in the next batch of marks
    assert_eq!(bus.events_stream_len().await.unwrap(), 1);
    let row = eventually(Duration::from_secs(2), || async {
        let row = event_row(&db.pool, seed.ws_id, "sepay:92704").await;
        row.4.then_some(row)
    })
    .await
    .expect("published_at noted");
    let (status, attempts, deliveries, reason, _) = row;
    assert_eq!(
        (status.as_str(), attempts, deliveries, reason),
        ("received", 1, 1, None)
    );
    let last_used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select last_used_at from sepay_webhook_endpoints where id = $1")
            .bind(seed.endpoint_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(last_used.is_some());
}

/// Every delivery of an event is logged once answered: when, from where, what it became, the
/// status answered and how long it took. Refused requests (no event) are not; with
/// `DELIVERY_LOG_RETENTION_DAYS=0` nothing is.
#[tokio::test]
async fn each_delivery_of_an_event_is_logged_with_its_answer() {
    let (db, _bus, seed, ingress) = setup().await;
    let body = delivery(92705, "in", json!(1000));
    assert_eq!(ingress.deliver(&seed, &body).await.0, StatusCode::OK);
    assert_eq!(ingress.deliver(&seed, &body).await.0, StatusCode::OK);
    let (status, _) = ingress
        .post(&seed.path(), Some(&seed.authorization()), "not json")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = ingress.post(&seed.path(), Some("Apikey wrong"), body.to_string()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let logged = eventually(Duration::from_secs(2), || async {
        let rows: Vec<(i64, String, i16, Option<String>, f32)> = sqlx::query_as(
            "select event_id, outcome, status_code, source_addr, latency_ms from sepay_delivery_attempts order by id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        (rows.len() >= 3).then_some(rows)
    })
    .await
    .expect("three deliveries logged");
    let outcomes: Vec<(&str, i16)> = logged.iter().map(|r| (r.1.as_str(), r.2)).collect();
    assert_eq!(outcomes, [("new", 200), ("in_flight", 200), ("invalid_payload", 400)]);
    assert_eq!(logged[0].0, logged[1].0, "both deliveries of one event");
    assert_ne!(logged[0].0, logged[2].0);
    assert!(logged.iter().all(|r| r.3.as_deref() == Some("127.0.0.1") && r.4 >= 0.0));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        count(&db.pool, "sepay_delivery_attempts").await,
        3,
        "the refused request has no line"
    );

    let (db, _bus, seed, ingress) = setup_with(IngressConfig {
        delivery_log_retention_days: 0,
        ..Default::default()
    })
    .await;
    assert_eq!(
        ingress.deliver(&seed, &delivery(92706, "in", json!(1000))).await.0,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count(&db.pool, "sepay_delivery_attempts").await, 0);
}

/// The retention sweep's statement: lines older than the retention go, in bounded chunks.
#[tokio::test]
async fn delivery_lines_past_the_retention_are_deleted_in_chunks() {
    // the ingress's own sweep is off (retention 0): its first pass, at start-up, would race the
    // statement measured here if it ran late
    let (db, _bus, seed, ingress) = setup_with(IngressConfig {
        delivery_log_retention_days: 0,
        ..Default::default()
    })
    .await;
    assert_eq!(
        ingress.deliver(&seed, &delivery(92707, "in", json!(1000))).await.0,
        StatusCode::OK
    );
    let event_id: i64 = sqlx::query_scalar("select id from sepay_webhook_events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let line = |days_ago: i64| sepay_store::deliveries::DeliveryAttempt {
        event_id,
        received_at: now - chrono::Duration::days(days_ago),
        source_addr: None,
        outcome: "duplicate".into(),
        status_code: 200,
        latency_ms: 1.0,
    };
    sepay_store::deliveries::insert_many(&db.pool, &[line(40), line(35), line(31), line(1)])
        .await
        .unwrap();
    let cutoff = now - chrono::Duration::days(30);
    let deleted = sepay_store::deliveries::delete_older_than(&db.pool, cutoff, 2)
        .await
        .unwrap();
    assert_eq!(deleted, 2, "one chunk");
    assert_eq!(
        sepay_store::deliveries::delete_older_than(&db.pool, cutoff, 2)
            .await
            .unwrap(),
        1
    );
    let left: i64 = sqlx::query_scalar("select count(*) from sepay_delivery_attempts where received_at < $1")
        .bind(cutoff)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn unknown_tokens_and_wrong_keys_get_401_and_write_nothing() {
    let (db, _bus, seed, ingress) = setup().await;
    let revoked = Seeded::new(&db.pool).await;
    sepay_store::endpoints::revoke(&db.pool, revoked.endpoint_id)
        .await
        .unwrap();
    // the revocation reaches the ingress's directory by LISTEN/NOTIFY within milliseconds
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = delivery(1, "in", json!(1000)).to_string();
    let good_auth = seed.authorization();
    let other_key = format!("Apikey {}", revoked.api_key);
    let cases: Vec<(String, Option<&str>, &str)> = vec![
        (
            "/api/v1/webhooks/sepay/spwh_unknown0000000000000000000000000000000000".into(),
            Some(&good_auth),
            "unknown token",
        ),
        (
            "/api/v1/webhooks/sepay/not-a-token".into(),
            Some(&good_auth),
            "malformed token",
        ),
        (revoked.path(), Some(&other_key), "revoked endpoint"),
        (seed.path(), None, "no Authorization header"),
        (seed.path(), Some("Apikey spak_wrong"), "wrong key"),
        (seed.path(), Some(&other_key), "another endpoint's key"),
        (seed.path(), Some("Basic dXNlcjpwYXNz"), "another scheme"),
        (seed.path(), Some("Apikey"), "empty key"),
    ];
    for (path, auth, why) in cases {
        let (status, answer) = ingress.post(&path, auth, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(answer["success"], json!(false), "{why}");
        assert_eq!(answer["error"]["code"], json!("unauthorized"), "{why}");
    }
    assert_eq!(count(&db.pool, "sepay_webhook_events").await, 0);
    // the Bearer scheme with the right key is accepted
    let bearer = format!("Bearer {}", seed.api_key);
    assert_eq!(ingress.post(&seed.path(), Some(&bearer), body).await.0, StatusCode::OK);
    assert_eq!(count(&db.pool, "sepay_webhook_events").await, 1);
}

#[tokio::test]
async fn bodies_over_64_kib_get_413_and_64_kib_is_accepted() {
    let (db, _bus, seed, ingress) = setup().await;
    let padded = |size: usize| {
        let mut v = delivery(7, "in", json!(1000));
        let base = v.to_string().len() + r#","pad":"""#.len();
        v["pad"] = json!("x".repeat(size - base));
        let s = v.to_string();
        assert_eq!(s.len(), size);
        s
    };
    let (status, answer) = ingress
        .post(&seed.path(), Some(&seed.authorization()), padded(64 * 1024 + 1))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"]["code"], json!("payload_too_large"));
    // a streamed body without Content-Length is cut at the limit too
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(padded(64 * 1024 + 10))]);
    let (status, _) = ingress
        .post(
            &seed.path(),
            Some(&seed.authorization()),
            reqwest::Body::wrap_stream(stream),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(count(&db.pool, "sepay_webhook_events").await, 0);
    let (status, _) = ingress
        .post(&seed.path(), Some(&seed.authorization()), padded(64 * 1024))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_kept_failed_and_answered_400_once_stored() {
    let (db, bus, seed, ingress) = setup().await;
    // the last two: an object holding U+0000, which jsonb refuses, and a raw NUL byte
    for body in [
        "not json",
        "[1,2,3]",
        "\"text\"",
        r#"{"id": 1, "content": "a\u0000b"}"#,
        "nul\0byte",
    ] {
        for round in 1..=2 {
            let (status, answer) = ingress.post(&seed.path(), Some(&seed.authorization()), body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body} round {round}");
            assert_eq!(answer["error"]["code"], json!("invalid_payload"));
        }
    }
    // five bodies, each stored once, with both deliveries counted
    let rows: Vec<(String, Option<String>, Option<String>, i32)> =
        sqlx::query_as("select status, failure_reason, raw_body, delivery_count from sepay_webhook_events order by id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 5);
    for (status, reason, raw, deliveries) in &rows {
        assert_eq!(
            (status.as_str(), reason.as_deref(), deliveries),
            ("failed", Some("invalid_payload"), &2)
        );
        assert!(raw.is_some());
    }
    assert_eq!(rows[0].2.as_deref(), Some("not json"));
    assert_eq!(rows[3].2.as_deref(), Some(r#"{"id": 1, "content": "a\u0000b"}"#));
    assert_eq!(rows[4].2.as_deref(), Some("nul\u{FFFD}byte"));
    // nothing to process, so nothing published
    assert_eq!(bus.events_stream_len().await.unwrap(), 0);
}

#[tokio::test]
async fn repeat_deliveries_follow_the_retry_rules() {
    // the relay is kept out of the way: it would re-drive the stale row itself, racing the repeat
    let quiet = IngressConfig {
        relay_interval_ms: 3_600_000,
        ..Default::default()
    };
    let (db, bus, seed, ingress) = setup_with(quiet).await;
    let set = |id: i64, sql: &'static str| {
        let db = db.pool.clone();
        let ws = seed.ws_id;
        async move {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "update sepay_webhook_events set {sql} where ws_id = $1 and dedupe_key = $2"
            )))
            .bind(ws)
            .bind(format!("sepay:{id}"))
            .execute(&db)
            .await
            .unwrap();
        }
    };
    for id in 1..=4 {
        assert_eq!(
            ingress.deliver(&seed, &delivery(id, "in", json!(1000))).await.0,
            StatusCode::OK
        );
    }
    set(1, "status = 'processed'").await;
    set(2, "status = 'failed', failure_reason = 'wallet_not_linked'").await;
    set(3, "opened_at = now() - interval '10 minutes'").await; // stale received
    // 4 stays a fresh received row
    let expectations = [
        (1, json!({"success": true, "duplicate": true}), "processed", 1),
        (2, json!({"success": true}), "received", 2),
        (3, json!({"success": true}), "received", 2),
        (4, json!({"success": true}), "received", 1),
    ];
    for (id, answer, status, attempts) in expectations {
        let (code, body) = ingress.deliver(&seed, &delivery(id, "in", json!(1000))).await;
        assert_eq!((code, body), (StatusCode::OK, answer), "event {id}");
        let row = event_row(&db.pool, seed.ws_id, &format!("sepay:{id}")).await;
        assert_eq!(
            (row.0.as_str(), row.1, row.2, row.3),
            (status, attempts, 2, None),
            "event {id}"
        );
    }
    // 4 first publications + 2 reopened publications
    assert_eq!(bus.events_stream_len().await.unwrap(), 6);
    set(4, "status = 'duplicate'").await;
    let (_, body) = ingress.deliver(&seed, &delivery(4, "in", json!(1000))).await;
    assert_eq!(body, json!({"success": true, "duplicate": true}));
}

#[tokio::test]
async fn eventless_repeats_inside_two_minutes_are_duplicates_and_later_ones_recover_the_row() {
    let (db, _bus, seed, ingress) = setup().await;
    let mut payload = delivery(1, "in", json!(5000));
    payload.as_object_mut().unwrap().remove("id");
    assert_eq!(ingress.deliver(&seed, &payload).await.1, json!({"success": true}));
    sqlx::query("update sepay_webhook_events set status = 'failed'")
        .execute(&db.pool)
        .await
        .unwrap();
    // inside the window: a duplicate even though the row failed
    assert_eq!(
        ingress.deliver(&seed, &payload).await.1,
        json!({"success": true, "duplicate": true})
    );
    // later: the unique key finds the canonical row and the retry rules reopen it
    sqlx::query("update sepay_webhook_events set last_received_at = now() - interval '3 minutes'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(ingress.deliver(&seed, &payload).await.1, json!({"success": true}));
    let (status, attempts, deliveries): (String, i32, i32) =
        sqlx::query_as("select status, attempts, delivery_count from sepay_webhook_events")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts, deliveries), ("received", 2, 3));
    assert_eq!(count(&db.pool, "sepay_webhook_events").await, 1);
}

#[tokio::test]
async fn eight_concurrent_copies_of_a_delivery_make_one_row() {
    let (db, bus, seed, ingress) = setup().await;
    let body = delivery(555, "in", json!(100000));
    let answers = futures::future::join_all((0..8).map(|_| ingress.deliver(&seed, &body))).await;
    for (status, answer) in &answers {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(answer["success"], json!(true));
    }
    assert_eq!(count(&db.pool, "sepay_webhook_events").await, 1);
    let (_, attempts, deliveries, _, _) = event_row(&db.pool, seed.ws_id, "sepay:555").await;
    assert_eq!((attempts, deliveries), (1, 8));
    assert_eq!(bus.events_stream_len().await.unwrap(), 1);
}

#[tokio::test]
async fn postgres_unreachable_is_answered_503() {
    let (bus, _) = test_bus(&sepay_testkit::nats_url()).await;
    let config = sepay_store::DbConfig {
        database_url: format!("postgres://postgres@127.0.0.1:{}/none", sepay_testkit::free_port()),
        db_max_connections: 2,
        db_acquire_timeout_ms: 500,
        ..Default::default()
    };
    let ingress = Ingress::start(config.lazy_pool().unwrap(), bus).await;
    let path = "/api/v1/webhooks/sepay/spwh_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let (status, answer) = ingress
        .post(path, Some("Apikey spak_x"), delivery(1, "in", json!(1)).to_string())
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["error"]["code"], json!("unavailable"));
    let ready = ingress
        .http
        .get(format!("{}/readyz", ingress.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json::<Value>().await.unwrap()["postgres"], json!(false));
}

#[tokio::test]
async fn health_and_readiness() {
    let (_db, _bus, _seed, ingress) = setup().await;
    let health = ingress
        .http
        .get(format!("{}/healthz", ingress.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = ingress
        .http
        .get(format!("{}/readyz", ingress.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({"postgres": true, "nats": true})
    );
}

#[tokio::test]
async fn the_public_port_serves_webhooks_only() {
    let (_db, _bus, _seed, ingress) = setup().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let public = ingress.http.get(format!("{}{path}", ingress.url)).send().await.unwrap();
        assert_eq!(public.status(), StatusCode::NOT_FOUND, "{path} on the public port");
        let admin = ingress
            .http
            .get(format!("{}{path}", ingress.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(admin.status(), StatusCode::OK, "{path} on the admin port");
    }
}

#[tokio::test]
async fn a_rotated_token_works_until_its_grace_ends() {
    let (db, _bus, seed, ingress) = setup().await;
    let token = sepay_crypto::generate_webhook_token();
    let key = sepay_crypto::generate_api_key();
    sepay_store::endpoints::rotate(
        &db.pool,
        seed.endpoint_id,
        Duration::from_secs(3600),
        &token.sha256(),
        &token.display_prefix(),
        &key.sha256(),
    )
    .await
    .unwrap();
    assert_eq!(
        ingress.deliver(&seed, &delivery(1, "in", json!(1))).await.0,
        StatusCode::OK
    );
    let new_path = format!("/api/v1/webhooks/sepay/{}", token.expose());
    let new_auth = format!("Apikey {}", key.expose());
    assert_eq!(
        ingress
            .post(&new_path, Some(&new_auth), delivery(2, "in", json!(1)).to_string())
            .await
            .0,
        StatusCode::OK
    );
    sqlx::query("update sepay_webhook_endpoints set grace_until = now() - interval '1 second' where id = $1")
        .bind(seed.endpoint_id)
        .execute(&db.pool)
        .await
        .unwrap();
    // the change reaches the ingress's in-memory directory by LISTEN/NOTIFY, within a second
    let refused = eventually(Duration::from_secs(1), || async {
        (ingress.deliver(&seed, &delivery(3, "in", json!(1))).await.0 == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    assert!(refused.is_some(), "the expired grace still let deliveries in");
    // the relay's pass turns the expired rotation into a revocation
    let revoked = eventually(Duration::from_secs(5), || async {
        let status: String = sqlx::query_scalar("select status from sepay_webhook_endpoints where id = $1")
            .bind(seed.endpoint_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (status == "revoked").then_some(())
    })
    .await;
    assert!(revoked.is_some());
}

#[tokio::test]
async fn junk_is_refused_from_memory_even_while_postgres_is_away() {
    let db = TestDb::new().await;
    let (bus, _) = test_bus(&sepay_testkit::nats_url()).await;
    let seed = Seeded::new(&db.pool).await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let config = sepay_store::DbConfig {
        database_url: proxy.database_url(&db.config.database_url),
        db_max_connections: 4,
        db_acquire_timeout_ms: 500,
        ..Default::default()
    };
    let ingress = Ingress::start(config.lazy_pool().unwrap(), bus).await;
    let loaded = eventually(Duration::from_secs(5), || async {
        (ingress.deliver(&seed, &delivery(1, "in", json!(1))).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    assert!(loaded.is_some());
    // the directory's first load (the delivery above may have been served before it, by Postgres)
    let directory_loaded = eventually(Duration::from_secs(5), || async {
        let metrics = ingress
            .http
            .get(format!("{}/metrics", ingress.admin))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        metrics.contains("sepay_ingress_live_endpoints 1").then_some(())
    })
    .await;
    assert!(directory_loaded.is_some(), "the endpoint directory never loaded");
    proxy.cut();
    let body = delivery(2, "in", json!(1)).to_string();
    let unknown = "/api/v1/webhooks/sepay/spwh_unknown0000000000000000000000000000000000";
    for (path, auth, why) in [
        (unknown, seed.authorization(), "unknown token"),
        (seed.path().as_str(), "Apikey spak_wrong".to_owned(), "wrong key"),
    ] {
        let (status, answer) = ingress.post(path, Some(&auth), body.clone()).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized")),
            "{why}: answered without Postgres"
        );
    }
    // an honest delivery needs storage: 503, so SePay retries
    assert_eq!(
        ingress.deliver(&seed, &delivery(2, "in", json!(1))).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    proxy.restore();
    // revocation while running reaches the directory: the listening connection the cut broke
    // comes back (a 1 s pause, then a full reload) and the announcement follows; on a loaded
    // machine that takes a few seconds, not the second it takes on a live connection
    sepay_store::endpoints::revoke(&db.pool, seed.endpoint_id)
        .await
        .unwrap();
    let refused = eventually(Duration::from_secs(5), || async {
        (ingress.deliver(&seed, &delivery(3, "in", json!(1))).await.0 == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    assert!(refused.is_some(), "a revoked endpoint still posts");
    let stored = count(&db.pool, "sepay_webhook_events").await;
    assert_eq!(
        ingress.deliver(&seed, &delivery(4, "in", json!(1))).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        count(&db.pool, "sepay_webhook_events").await,
        stored,
        "nothing stored once refused"
    );
}

#[tokio::test]
async fn repeated_failures_from_one_address_get_429_and_honest_deliveries_never_do() {
    let (db, _bus, seed, ingress) = setup_with(IngressConfig {
        auth_failures_per_sec: 1,
        auth_failure_burst: 5,
        ..Default::default()
    })
    .await;
    let body = delivery(1, "in", json!(1)).to_string();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            ingress
                .post(&seed.path(), Some("Apikey spak_wrong"), body.clone())
                .await
                .0,
        );
    }
    assert_eq!(&statuses[..5], [StatusCode::UNAUTHORIZED; 5]);
    assert_eq!(&statuses[5..], [StatusCode::TOO_MANY_REQUESTS; 3]);
    let limited = ingress
        .http
        .post(format!("{}{}", ingress.url, seed.path()))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(
        limited.json::<Value>().await.unwrap()["error"]["code"],
        json!("rate_limited")
    );
    // the same address with the right key is served, however many failures it made
    for id in 1..=20 {
        assert_eq!(
            ingress.deliver(&seed, &delivery(id, "in", json!(1))).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(count(&db.pool, "sepay_webhook_events").await, 20);
}

#[tokio::test]
async fn the_source_allowlist_uses_the_trusted_proxy_header() {
    let (db, _bus, seed, ingress) = setup_with(IngressConfig {
        client_ip_header: Some("X-Forwarded-For".into()),
        source_allowlist: Some("sepay, 10.0.0.0/8".into()),
        ..Default::default()
    })
    .await;
    let post_from = |from: &'static str, id: i64| {
        let (ingress, seed) = (&ingress, &seed);
        async move {
            ingress
                .http
                .post(format!("{}{}", ingress.url, seed.path()))
                .header("authorization", seed.authorization())
                .header("x-forwarded-for", from)
                .body(delivery(id, "in", json!(1)).to_string())
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(post_from("172.236.138.20", 1).await, StatusCode::OK);
    assert_eq!(
        post_from("8.8.8.8, 10.1.2.3", 2).await,
        StatusCode::OK,
        "the proxy's entry counts"
    );
    assert_eq!(post_from("10.1.2.3, 8.8.8.8", 3).await, StatusCode::FORBIDDEN);
    assert_eq!(count(&db.pool, "sepay_webhook_events").await, 2);
    let bad = IngressConfig {
        source_allowlist: Some("sepay".into()),
        ..Default::default()
    };
    assert!(
        bad.source_guard().is_err(),
        "an allow-list on the socket address needs INGRESS_TRUST_SOCKET_ADDRESS"
    );
}
