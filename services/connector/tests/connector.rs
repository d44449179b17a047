//! The connector against real Postgres, real NATS and the SePay simulator in this process: the
//! connect flow and every way it fails, the token lifecycle, access control, CSRF, the pages and
//! their forms, and (in `browser`) the whole flow in headless Chromium.

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use sepay_api::{SepayClient, SepayConfig};
use sepay_bus::{Bus, ConsumerSettings, ControlRequest};
use sepay_connection::Tokens;
use sepay_connector::ConnectorConfig;
use sepay_connector::state::{self, PendingAuth};
use sepay_crypto::seal::Keyring;
use sepay_sim::{Sim, SimConfig};
use sepay_store::{PgPool, connections, endpoints, members, workspaces};
use sepay_testkit::{TestDb, nats_url, test_bus};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod browser;

const ADMIN_SECRET: &str = "test-admin-jwt-secret";
const CLIENT_ID: &str = "connector-test";
const CLIENT_SECRET: &str = "connector-test-secret";

/// The simulator, the connector and a workspace with an admin (`alice`) and a member (`bob`).
pub struct App {
    pub db: PgPool,
    pub bus: Bus,
    pub sim: Arc<Sim>,
    pub url: String,
    pub sepay: SepayConfig,
    pub keys: Arc<Keyring>,
    pub ws: Uuid,
    http: reqwest::Client,
    stop: CancellationToken,
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn fast_sim() -> SimConfig {
    SimConfig {
        sim_auto_approve: true,
        sim_rate_limit_per_sec: 1000,
        sim_time_scale: 0.001,
        ..Default::default()
    }
}

impl App {
    pub async fn start(sim_config: SimConfig) -> Self {
        let db = TestDb::new().await.pool;
        let (bus, _) = test_bus(&nats_url()).await;
        let stop = CancellationToken::new();

        let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim_url = format!("http://{}", sim_listener.local_addr().unwrap());
        let sim = Sim::new(sim_config, sim_url.clone(), stop.clone()).unwrap();
        let router = sepay_sim::router(sim.clone());
        let sim_stop = stop.clone();
        tokio::spawn(async move {
            axum::serve(sim_listener, router)
                .with_graceful_shutdown(sim_stop.cancelled_owned())
                .await
        });

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let company = control(&http, &sim_url, "/sim/companies", json!({"name": "Cty Test"})).await;
        control(
            &http,
            &sim_url,
            "/sim/bank-accounts",
            json!({"company_id": company["id"], "bank_short_name": "VCB"}),
        )
        .await;
        control(
            &http,
            &sim_url,
            "/sim/oauth-clients",
            json!({"company_id": company["id"], "redirect_uris": [format!("{url}{}", sepay_connector::CALLBACK_PATH)],
                   "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
        )
        .await;

        let keys_spec = Keyring::generate_spec("t1");
        let sepay = SepayConfig {
            sepay_base_url: sim_url,
            sepay_client_id: CLIENT_ID.into(),
            sepay_client_secret: CLIENT_SECRET.into(),
            sepay_token_keys: Some(keys_spec.clone()),
            sepay_requests_per_sec: 100,
            ..Default::default()
        };
        tokio::spawn(sepay_connector::serve(
            listener,
            None,
            connector_config(&url),
            sepay.clone(),
            db.clone(),
            bus.clone(),
            stop.clone(),
        ));

        let ws = workspaces::create_workspace(&db, "Cửa hàng <Test>").await.unwrap().id;
        members::grant_admin(&db, ws, "alice").await.unwrap();
        sqlx::query("insert into workspace_members (ws_id, user_id, role) values ($1, 'bob', 'member')")
            .bind(ws)
            .execute(&db)
            .await
            .unwrap();
        let keys = Arc::new(Keyring::parse(&keys_spec).unwrap());
        Self {
            db,
            bus,
            sim,
            url,
            sepay,
            keys,
            ws,
            http,
            stop,
        }
    }

    /// Another connector on the same database and bus, registered at the simulator as its own
    /// client but holding `client_secret`.
    pub async fn another_connector(&self, client_secret: &str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let company = *self.sim.world().companies.keys().next().unwrap();
        let callback = format!("{url}{}", sepay_connector::CALLBACK_PATH);
        control(
            &self.http,
            &self.sepay.sepay_base_url,
            "/sim/oauth-clients",
            json!({"company_id": company, "redirect_uris": [callback], "client_id": "second", "client_secret": CLIENT_SECRET}),
        )
        .await;
        let sepay = SepayConfig {
            sepay_client_id: "second".into(),
            sepay_client_secret: client_secret.into(),
            ..self.sepay.clone()
        };
        tokio::spawn(sepay_connector::serve(
            listener,
            None,
            connector_config(&url),
            sepay,
            self.db.clone(),
            self.bus.clone(),
            self.stop.clone(),
        ));
        url
    }

    pub fn tokens(&self, sepay: &SepayConfig) -> Tokens {
        Tokens::new(self.db.clone(), Arc::new(SepayClient::new(sepay)), self.keys.clone())
    }

    pub async fn get(&self, path: &str, session: Option<&str>) -> (StatusCode, String, HeaderMap) {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(token) = session {
            req = req.header(COOKIE, format!("sepay_admin_session={token}"));
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        (status, res.text().await.unwrap(), headers)
    }

    pub async fn post(&self, path: &str, session: &str, form: &[(&str, &str)]) -> (StatusCode, String, HeaderMap) {
        let res = self
            .http
            .post(format!("{}{path}", self.url))
            .header(COOKIE, format!("sepay_admin_session={session}"))
            .form(form)
            .send()
            .await
            .unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        (status, res.text().await.unwrap(), headers)
    }

    pub async fn csrf(&self, session: &str) -> String {
        let (status, page, _) = self.get(&format!("/ws/{}/integrations", self.ws), Some(session)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        attr_after(&page, "name=\"csrf\" value=\"")
    }

    /// "Connect SePay": the authorize URL and the state cookie's value.
    pub async fn start_connect(&self, session: &str) -> (String, String) {
        self.start_connect_at(&self.url.clone(), session).await
    }

    async fn start_connect_at(&self, base: &str, session: &str) -> (String, String) {
        let csrf = self.csrf(session).await;
        let res = self
            .http
            .post(format!("{base}/ws/{}/connect", self.ws))
            .header(COOKIE, format!("sepay_admin_session={session}"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let cookie = set_cookie(res.headers(), state::STATE_COOKIE).expect("a state cookie");
        (location(res.headers()), cookie)
    }

    /// The simulator's answer to the authorize URL (auto-approve): the callback URL.
    pub async fn approve(&self, authorize_url: &str) -> String {
        let res = self.http.get(authorize_url).send().await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "{}",
            res.text().await.unwrap_or_default()
        );
        location(res.headers())
    }

    /// Calls the callback; the redirect's target. The state cookie is cleared.
    pub async fn callback(&self, callback_url: &str, session: &str, state_cookie: Option<&str>) -> String {
        let (target, cleared) = self.callback_answer(callback_url, session, state_cookie).await;
        assert_eq!(cleared.as_deref(), Some(""), "the callback clears the state cookie");
        target
    }

    /// Calls the callback with a state that is not the pending flow's; the redirect's target.
    /// Nothing changes: the state cookie stays (no `Set-Cookie` for it).
    pub async fn callback_ignored(&self, callback_url: &str, session: &str, state_cookie: &str) -> String {
        let (target, cleared) = self.callback_answer(callback_url, session, Some(state_cookie)).await;
        assert_eq!(cleared, None, "the state cookie stays for the real callback");
        target
    }

    /// The callback's redirect target and what it sets the state cookie to.
    async fn callback_answer(
        &self,
        callback_url: &str,
        session: &str,
        state_cookie: Option<&str>,
    ) -> (String, Option<String>) {
        let mut cookies = format!("sepay_admin_session={session}");
        if let Some(c) = state_cookie {
            cookies.push_str(&format!("; {}={c}", state::STATE_COOKIE));
        }
        let res = self
            .http
            .get(callback_url)
            .header(COOKIE, cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "{}",
            res.text().await.unwrap_or_default()
        );
        (location(res.headers()), set_cookie(res.headers(), state::STATE_COOKIE))
    }

    /// The whole flow; the callback's redirect.
    pub async fn connect(&self, session: &str) -> String {
        let (authorize, cookie) = self.start_connect(session).await;
        let callback = self.approve(&authorize).await;
        self.callback(&callback, session, Some(&cookie)).await
    }

    pub fn integrations_url(&self, query: &str) -> String {
        format!("{}/ws/{}/integrations?{query}", self.url, self.ws)
    }

    pub fn error_url(&self, reason: &str) -> String {
        self.integrations_url(&format!("sepay=error&reason={reason}"))
    }
}

fn connector_config(url: &str) -> ConnectorConfig {
    ConnectorConfig {
        connector_public_url: url.to_owned(),
        ingress_public_url: "http://ingress.test".into(),
        admin_jwt_secret: Some(ADMIN_SECRET.into()),
        connector_csrf_secret: Some("test-csrf-key".into()),
        ..Default::default()
    }
}

async fn control(http: &reqwest::Client, sim: &str, path: &str, body: Value) -> Value {
    let sim = sepay_sim::client::SimClient {
        base: sim.to_owned(),
        http: http.clone(),
    };
    sim.post(path, body).await.unwrap()
}

pub fn session(user: &str) -> String {
    sepay_connector::mint_admin_token(ADMIN_SECRET, user, Duration::from_secs(3600)).unwrap()
}

fn location(headers: &HeaderMap) -> String {
    headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The value a response sets for cookie `name`.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
        })
}

fn set_cookie_line(headers: &HeaderMap, name: &str) -> String {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_default()
        .to_owned()
}

/// The attribute value that follows `marker` in `page`.
fn attr_after(page: &str, marker: &str) -> String {
    let start = page.find(marker).unwrap_or_else(|| panic!("{marker} not in page")) + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Control messages published under the test's prefix, as the provisioner would read them.
async fn control_messages(bus: &Bus) -> Vec<(String, ControlRequest)> {
    let settings = ConsumerSettings {
        ack_wait: Duration::from_secs(30),
        max_deliver: 3,
        max_ack_pending: 100,
    };
    let consumer = bus.control_consumer("connector-test", &settings).await.unwrap();
    let mut batch = consumer
        .fetch()
        .max_messages(100)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(Ok(msg)) = batch.next().await {
        out.push((msg.subject.to_string(), serde_json::from_slice(&msg.payload).unwrap()));
        msg.ack().await.unwrap();
    }
    out
}

fn subject_of(bus: &Bus, subject: sepay_bus::ControlSubject) -> String {
    bus.names().control_subject(subject)
}

#[tokio::test]
async fn the_connect_flow_seals_tokens_and_publishes_connected() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let (authorize, cookie) = app.start_connect(&alice).await;
    assert!(authorize.starts_with(&format!("{}/oauth/authorize?", app.sepay.sepay_base_url)));
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query_param(&authorize, "scope").unwrap().contains("webhook:write"));
    let state_param = query_param(&authorize, "state").unwrap();
    assert!(
        !cookie.contains(&state_param),
        "the cookie is sealed, the state not readable"
    );

    let callback = app.approve(&authorize).await;
    let landed = app.callback(&callback, &alice, Some(&cookie)).await;
    assert_eq!(landed, app.integrations_url("sepay=connected"));

    let c = connections::get(&app.db, app.ws).await.unwrap().expect("a connection");
    assert_eq!(c.status, "active");
    assert!(c.scopes.contains(&"bank-account:read".to_owned()));
    let sealed = c.access_token_ciphertext.unwrap();
    let access = String::from_utf8(
        app.keys
            .open(&sepay_connection::TokenField::Access.aad(app.ws), &sealed)
            .unwrap(),
    )
    .unwrap();
    assert!(
        app.sim.world().access_tokens.contains_key(&access),
        "the stored token is the simulator's"
    );
    assert!(
        !String::from_utf8_lossy(&sealed).contains(&access),
        "stored sealed, not in clear"
    );
    // the token works against the API
    let accounts = app
        .tokens(&app.sepay)
        .client()
        .list_bank_accounts(&access)
        .await
        .unwrap();
    assert_eq!(accounts.len(), 1);

    let messages = control_messages(&app.bus).await;
    let connected = subject_of(&app.bus, sepay_bus::ControlSubject::ConnectionConnected);
    assert_eq!(messages, vec![(connected, ControlRequest::workspace(app.ws))]);

    let (status, page, _) = app
        .get(&format!("/ws/{}/integrations?sepay=connected", app.ws), Some(&alice))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"connection-status\">active<"), "{page}");
    assert!(page.contains("SePay is connected"));
    assert!(page.contains("Cửa hàng &#60;Test&#62;"), "names are escaped");
    assert!(!page.contains(&access) && !page.contains(&state_param));
}

#[tokio::test]
async fn missing_params_and_wrong_states_are_refused() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let callback_base = format!("{}{}", app.url, sepay_connector::CALLBACK_PATH);

    // no state, or only a code: not an answer to this flow, so the cookie stays
    let (authorize, cookie) = app.start_connect(&alice).await;
    assert_eq!(
        app.callback_ignored(&callback_base, &alice, &cookie).await,
        app.error_url("invalid_state")
    );
    let only_code = format!("{callback_base}?code=abc");
    assert_eq!(
        app.callback_ignored(&only_code, &alice, &cookie).await,
        app.error_url("invalid_state")
    );
    // the right state without a code
    let sent_state = query_param(&authorize, "state").unwrap();
    let only_state = format!("{callback_base}?state={sent_state}");
    assert_eq!(
        app.callback(&only_state, &alice, Some(&cookie)).await,
        app.error_url("missing_params")
    );

    // a real code, but another state
    let (authorize, cookie) = app.start_connect(&alice).await;
    let callback = app.approve(&authorize).await;
    let code = query_param(&callback, "code").unwrap();
    let forged = format!("{callback_base}?code={code}&state=forged");
    assert_eq!(
        app.callback_ignored(&forged, &alice, &cookie).await,
        app.error_url("invalid_state")
    );

    // no cookie, or one that does not open: the workspace is unknown, so home
    let home_error = format!("{}/?sepay=error&reason=invalid_state", app.url);
    assert_eq!(app.callback(&callback, &alice, None).await, home_error);
    assert_eq!(app.callback(&callback, &alice, Some("garbage")).await, home_error);
    let other_ws = format!("{}.{}", Uuid::new_v4(), cookie.split_once('.').unwrap().1);
    assert_eq!(app.callback(&callback, &alice, Some(&other_ws)).await, home_error);

    // a provider error (with the flow's state) is reported by its code, nothing else
    let sent_state = query_param(&authorize, "state").unwrap();
    let provider = format!("{callback_base}?error=server_error&error_description=%3Cscript%3E&state={sent_state}");
    assert_eq!(
        app.callback(&provider, &alice, Some(&cookie)).await,
        app.error_url("provider_error")
    );
    assert!(
        connections::get(&app.db, app.ws).await.unwrap().is_none(),
        "nothing was connected"
    );
}

#[tokio::test]
async fn an_expired_state_is_refused() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let (authorize, _) = app.start_connect(&alice).await;
    let callback = app.approve(&authorize).await;
    let old = PendingAuth {
        ws_id: app.ws,
        state: query_param(&callback, "state").unwrap(),
        pkce_verifier: "irrelevant".into(),
        issued_at: chrono::Utc::now().timestamp() - state::STATE_TTL_SECS - 5,
    };
    let cookie = state::seal(&app.keys, &old);
    assert_eq!(
        app.callback(&callback, &alice, Some(&cookie)).await,
        app.error_url("expired_state")
    );
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let (authorize, cookie) = app.start_connect(&alice).await;
    let callback = app.approve(&authorize).await;
    assert_eq!(
        app.callback(&callback, &alice, Some(&cookie)).await,
        app.integrations_url("sepay=connected")
    );
    // the same cookie and state again (a stolen or re-sent URL)
    assert_eq!(
        app.callback(&callback, &alice, Some(&cookie)).await,
        app.error_url("state_reused")
    );
}

#[tokio::test]
async fn a_denial_on_the_consent_page_is_reported() {
    let app = App::start(SimConfig {
        sim_auto_approve: false,
        ..fast_sim()
    })
    .await;
    let alice = session("alice");
    let (authorize, cookie) = app.start_connect(&alice).await;
    let consent = app.http.get(&authorize).send().await.unwrap().text().await.unwrap();
    assert!(consent.contains("id=\"deny\""), "{consent}");
    // what the consent page's Deny button posts
    let mut form: Vec<(String, String)> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    form.push(("decision".into(), "deny".into()));
    let res = app
        .http
        .post(format!("{}/oauth/authorize/decision", app.sepay.sepay_base_url))
        .form(&form)
        .send()
        .await
        .unwrap();
    let callback = location(res.headers());
    assert_eq!(query_param(&callback, "error").as_deref(), Some("access_denied"));
    assert_eq!(
        app.callback(&callback, &alice, Some(&cookie)).await,
        app.error_url("access_denied")
    );
    let (_, page, _) = app
        .get(
            &format!("/ws/{}/integrations?sepay=error&reason=access_denied", app.ws),
            Some(&alice),
        )
        .await;
    assert!(page.contains("Access was denied"), "{page}");
    assert!(page.contains("id=\"connection-status\">not connected<"));
}

/// Issue 14 (C): SePay's `error=` is read only once the returned state is the pending flow's. A
/// cross-site link to the callback (`?error=access_denied`, with no state or another one) sent
/// with the admin's cookies changes nothing: the state cookie stays, no state is used up, the
/// connection row is as it was, nothing is published, and the real answer still completes.
#[tokio::test]
async fn a_cross_site_callback_cannot_cancel_a_pending_connect() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    assert_eq!(app.connect(&alice).await, app.integrations_url("sepay=connected"));
    control_messages(&app.bus).await;
    let before = connections::get(&app.db, app.ws).await.unwrap().unwrap();
    let used_states = sepay_testkit::count(&app.db, "sepay_oauth_used_states").await;

    // "Reconnect SePay": a pending flow
    let (authorize, cookie) = app.start_connect(&alice).await;
    let real_callback = app.approve(&authorize).await;
    let code = query_param(&real_callback, "code").unwrap();
    let callback_base = format!("{}{}", app.url, sepay_connector::CALLBACK_PATH);
    for hostile in [
        "?error=access_denied".to_owned(),
        "?error=access_denied&state=".to_owned(),
        "?error=access_denied&state=forged".to_owned(),
        "?error=server_error&error_description=gone".to_owned(),
        format!("?error=access_denied&code={code}&state=forged"),
    ] {
        assert_eq!(
            app.callback_ignored(&format!("{callback_base}{hostile}"), &alice, &cookie)
                .await,
            app.error_url("invalid_state"),
            "{hostile}"
        );
    }
    let after = connections::get(&app.db, app.ws).await.unwrap().unwrap();
    assert_eq!(
        (&after.status, &after.access_token_ciphertext, after.updated_at),
        (&before.status, &before.access_token_ciphertext, before.updated_at),
        "the connection row did not change"
    );
    assert_eq!(
        sepay_testkit::count(&app.db, "sepay_oauth_used_states").await,
        used_states,
        "no state used up"
    );
    assert!(control_messages(&app.bus).await.is_empty(), "nothing published");

    // the pending connect is still pending: SePay's real answer completes it
    assert_eq!(
        app.callback(&real_callback, &alice, Some(&cookie)).await,
        app.integrations_url("sepay=connected")
    );
    let reconnected = connections::get(&app.db, app.ws).await.unwrap().unwrap();
    assert_ne!(reconnected.access_token_ciphertext, before.access_token_ciphertext);
}

#[tokio::test]
async fn exchange_failures_are_reported() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    // a connector holding a wrong client secret: SePay refuses the code exchange
    let wrong = app.another_connector("wrong").await;
    let (authorize, cookie) = app.start_connect_at(&wrong, &alice).await;
    let callback = app.approve(&authorize).await;
    assert!(callback.starts_with(&wrong));
    let landed = app.callback(&callback, &alice, Some(&cookie)).await;
    assert_eq!(
        landed,
        format!("{wrong}/ws/{}/integrations?sepay=error&reason=exchange_failed", app.ws)
    );

    // a code the provider does not know
    let (authorize, cookie) = app.start_connect(&alice).await;
    let state_param = query_param(&authorize, "state").unwrap();
    let bogus = format!(
        "{}{}?code=spc_bogus&state={state_param}",
        app.url,
        sepay_connector::CALLBACK_PATH
    );
    assert_eq!(
        app.callback(&bogus, &alice, Some(&cookie)).await,
        app.error_url("exchange_failed")
    );
    assert!(connections::get(&app.db, app.ws).await.unwrap().is_none());
}

#[tokio::test]
async fn a_save_failure_is_reported() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    // the database refuses every new connection row (a failing disk, a broken migration…)
    sqlx::query("alter table sepay_connections add constraint refuse_all check (ws_id is null) not valid")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(app.connect(&alice).await, app.error_url("save_failed"));
    assert!(control_messages(&app.bus).await.is_empty(), "nothing announced");
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed() {
    let app = App::start(SimConfig {
        sim_access_token_ttl_secs: 1,
        ..fast_sim()
    })
    .await;
    assert_eq!(
        app.connect(&session("alice")).await,
        app.integrations_url("sepay=connected")
    );
    let first = connections::get(&app.db, app.ws).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tokens = app.tokens(&app.sepay);
    let fresh = tokens.access_token(app.ws).await.unwrap();
    let stored = connections::get(&app.db, app.ws).await.unwrap().unwrap();
    assert_ne!(stored.access_token_ciphertext, first.access_token_ciphertext);
    assert_eq!(stored.status, "active");
    assert_eq!(
        tokens.client().list_bank_accounts(&fresh).await.unwrap().len(),
        1,
        "the new token works"
    );
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh() {
    // Tokens refresh within 60 s of expiry: a 61 s token needs a refresh after a second, and the
    // refreshed one does not (a 1 s token would need one on every call)
    let app = App::start(SimConfig {
        sim_access_token_ttl_secs: 61,
        ..fast_sim()
    })
    .await;
    assert_eq!(
        app.connect(&session("alice")).await,
        app.integrations_url("sepay=connected")
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let issued_before = app.sim.world().access_tokens.len();
    let tokens = app.tokens(&app.sepay);
    let calls = (0..10).map(|_| {
        let tokens = tokens.clone();
        let ws = app.ws;
        tokio::spawn(async move { tokens.access_token(ws).await.unwrap() })
    });
    let results: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        app.sim.world().access_tokens.len(),
        issued_before + 1,
        "exactly one refresh at SePay"
    );
    assert!(
        results.iter().all(|t| t == &results[0]),
        "every caller got the same new token"
    );
}

#[tokio::test]
async fn a_refused_grant_puts_the_connection_in_needs_reconnect_on_the_page() {
    let app = App::start(SimConfig {
        sim_access_token_ttl_secs: 1,
        ..fast_sim()
    })
    .await;
    let alice = session("alice");
    assert_eq!(app.connect(&alice).await, app.integrations_url("sepay=connected"));
    // the user revoked the app at SePay
    app.sim
        .world()
        .refresh_tokens
        .values_mut()
        .for_each(|g| g.revoked = true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // SePay answers invalid_grant: definitive, the admin must reconnect
    let err = app.tokens(&app.sepay).access_token(app.ws).await.unwrap_err();
    assert!(
        matches!(&err, sepay_connection::TokenError::Unusable { status, .. } if status == "needs_reconnect"),
        "{err:?}"
    );
    let (_, page, _) = app.get(&format!("/ws/{}/integrations", app.ws), Some(&alice)).await;
    assert!(page.contains("id=\"connection-status\">needs reconnect<"), "{page}");
    assert!(attr_between(&page, "id=\"status-detail\">", "<").contains("reconnect SePay to resume"));
    let last_error = attr_between(&page, "id=\"last-error\">", "<");
    assert!(
        last_error.contains("SePay refused the grant (invalid_grant)"),
        "{last_error}"
    );
    assert!(page.contains("Reconnect SePay"));
}

fn attr_between(page: &str, start: &str, end: &str) -> String {
    let from = page.find(start).unwrap() + start.len();
    page[from..].split(end).next().unwrap().to_owned()
}

#[tokio::test]
async fn only_workspace_admins_see_the_pages() {
    let app = App::start(fast_sim()).await;
    let page = format!("/ws/{}/integrations", app.ws);

    let (status, body, _) = app.get(&page, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body.contains("id=\"login-required\"") && !body.contains("Test"),
        "a prompt, no data: {body}"
    );

    let expired = {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({"sub": "alice", "iat": now - 7200, "exp": now - 3600});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(ADMIN_SECRET.as_bytes()),
        )
        .unwrap()
    };
    let forged = sepay_connector::mint_admin_token("not-the-secret", "alice", Duration::from_secs(60)).unwrap();
    for bad in [expired.as_str(), forged.as_str(), "garbage"] {
        let (status, body, _) = app.get(&page, Some(bad)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("id=\"login-required\""));
    }

    let (status, _, _) = app.get(&page, Some(&session("bob"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a member is not an admin");
    let other = workspaces::create_workspace(&app.db, "Other").await.unwrap().id;
    members::grant_admin(&app.db, other, "carol").await.unwrap();
    let (status, _, _) = app.get(&page, Some(&session("carol"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another workspace's admin");
    let (status, _, _) = app
        .get(&format!("/ws/{}/events", app.ws), Some(&session("carol")))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app
        .post(&format!("/ws/{}/sync", app.ws), &session("carol"), &[("csrf", "x")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // an owner, and a bearer token instead of the cookie
    sqlx::query("insert into workspace_members (ws_id, user_id, role) values ($1, 'olga', 'owner')")
        .bind(app.ws)
        .execute(&app.db)
        .await
        .unwrap();
    let res = app
        .http
        .get(format!("{}{page}", app.url))
        .bearer_auth(session("olga"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    // the callback needs the admin too
    let (authorize, cookie) = app.start_connect(&session("alice")).await;
    let callback = app.approve(&authorize).await;
    let res = app
        .http
        .get(&callback)
        .header(
            COOKIE,
            format!(
                "sepay_admin_session={}; {}={cookie}",
                session("bob"),
                state::STATE_COOKIE
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        set_cookie(res.headers(), state::STATE_COOKIE).as_deref(),
        Some(""),
        "cleared"
    );
    assert!(connections::get(&app.db, app.ws).await.unwrap().is_none());
}

impl App {
    /// The sign-in form's POST, with these request headers (`Origin`, `Sec-Fetch-Site`, `Cookie`).
    async fn post_login(&self, token: &str, ws: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/login", self.url))
            .form(&[("token", token), ("ws", ws)]);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.unwrap()
    }
}

/// Issue 14 (A): following a login link changes nothing; its page's POST signs in.
#[tokio::test]
async fn the_login_link_shows_a_sign_in_form_whose_post_sets_the_session_cookie() {
    let app = App::start(fast_sim()).await;
    let token = session("alice");
    let link = sepay_connector::login_url(&app.url, &token, app.ws);
    let res = app.http.get(&link).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get(SET_COOKIE).is_none(), "a link sets no cookie");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let page = res.text().await.unwrap();
    assert!(page.contains("<form method=\"post\" action=\"/login\""), "{page}");
    assert_eq!(attr_after(&page, "name=\"token\" value=\""), token);
    assert_eq!(attr_after(&page, "name=\"ws\" value=\""), app.ws.to_string());
    assert!(
        page.contains("id=\"sign-in\">Sign in<") && page.contains(">alice<"),
        "{page}"
    );
    assert!(!page.contains("switch-account"));

    // what the button sends, from the connector's own page
    let res = app
        .post_login(&token, &app.ws.to_string(), &[("origin", app.url.as_str())])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(res.headers()), app.integrations_url("").trim_end_matches('?'));
    let line = set_cookie_line(res.headers(), "sepay_admin_session");
    assert!(line.starts_with(&format!("sepay_admin_session={token};")), "{line}");
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Lax") && line.contains("Path=/"),
        "{line}"
    );
    assert!(!line.contains("Secure"), "plain http is local development");
    // no workspace (or a bad one): home
    let res = app
        .post_login(&token, "not-a-uuid", &[("origin", app.url.as_str())])
        .await;
    assert_eq!(location(res.headers()), format!("{}/", app.url));

    // a forged token: the prompt, on the link and on the POST, and no cookie
    let res = app
        .http
        .get(format!("{}/login?token=forged&ws={}", app.url, app.ws))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(res.headers(), "sepay_admin_session").is_none());
    let forged = sepay_connector::mint_admin_token("not-the-secret", "alice", Duration::from_secs(60)).unwrap();
    for bad in [forged.as_str(), "", "garbage"] {
        let res = app
            .post_login(bad, &app.ws.to_string(), &[("origin", app.url.as_str())])
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookie(res.headers(), "sepay_admin_session").is_none());
    }

    // the state cookie: HttpOnly, Lax, scoped to the callback, 10 minutes
    let csrf = app.csrf(&token).await;
    let (_, _, headers) = app
        .post(&format!("/ws/{}/connect", app.ws), &token, &[("csrf", &csrf)])
        .await;
    let line = set_cookie_line(&headers, state::STATE_COOKIE);
    assert!(
        line.contains("Path=/oauth/sepay/callback; Max-Age=600; HttpOnly; SameSite=Lax"),
        "{line}"
    );
}

/// Issue 14 (A): only the connector's own page can sign a browser in.
#[tokio::test]
async fn a_cross_site_sign_in_post_is_refused() {
    let app = App::start(fast_sim()).await;
    let mallory = session("mallory");
    let ws = app.ws.to_string();
    let port = app.url.rsplit(':').next().unwrap().to_owned();
    let localhost = format!("http://localhost:{port}");
    let ours = app.url.as_str();
    let refused: [&[(&str, &str)]; 9] = [
        &[("origin", "https://evil.example")],
        &[("origin", "null")],
        &[("origin", "null"), ("sec-fetch-site", "cross-site")],
        &[("origin", "https://evil.example"), ("sec-fetch-site", "none")],
        &[("origin", localhost.as_str())],
        &[("origin", "https://evil.example"), ("sec-fetch-site", "same-origin")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        // no Origin and no Sec-Fetch-Site: not a browser form of this site
        &[],
    ];
    for headers in refused {
        let res = app.post_login(&mallory, &ws, headers).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(
            set_cookie(res.headers(), "sepay_admin_session").is_none(),
            "{headers:?}"
        );
        let page = res.text().await.unwrap();
        assert!(page.contains("did not come from this site"), "{page}");
        assert!(!page.contains(&mallory));
    }
    // a cross-site POST with the victim's session changes nothing either
    let alice = session("alice");
    let cookie = format!("sepay_admin_session={alice}");
    let res = app
        .post_login(
            &mallory,
            &ws,
            &[("origin", "https://evil.example"), ("cookie", cookie.as_str())],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(res.headers(), "sepay_admin_session").is_none());

    let allowed: [&[(&str, &str)]; 5] = [
        &[("origin", ours)],
        &[("origin", ours), ("sec-fetch-site", "same-origin")],
        // what a browser sends from the sign-in page: its `Referrer-Policy: no-referrer` makes
        // the POST's Origin `null`
        &[("origin", "null"), ("sec-fetch-site", "same-origin")],
        &[("sec-fetch-site", "same-origin")],
        &[("sec-fetch-site", "none")],
    ];
    for headers in allowed {
        let res = app.post_login(&alice, &ws, headers).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{headers:?}");
        assert_eq!(
            set_cookie(res.headers(), "sepay_admin_session").as_deref(),
            Some(alice.as_str())
        );
    }
}

/// Issue 14 (A): a login link for another user, opened in a browser signed in, asks first; one
/// for the same user goes straight to the page. Neither sets anything.
#[tokio::test]
async fn a_login_link_for_another_user_asks_before_switching() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let evil = sepay_connector::mint_admin_token(ADMIN_SECRET, "<b>mallory</b>", Duration::from_secs(600)).unwrap();
    let link = format!("/login?token={evil}&ws={}", app.ws);
    let (status, page, headers) = app.get(&link, Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get(SET_COOKIE).is_none(), "the session is not replaced");
    assert!(page.contains("id=\"switch-account\""), "{page}");
    assert!(page.contains("id=\"current-user\">alice<"), "{page}");
    assert!(
        page.contains("Continue as &#60;b&#62;mallory&#60;/b&#62;") && !page.contains("<b>mallory"),
        "escaped: {page}"
    );
    assert!(page.contains("id=\"cancel-sign-in\" href=\"/\""), "{page}");
    assert_eq!(attr_after(&page, "name=\"token\" value=\""), evil);
    // the session is still alice's
    let (status, home, _) = app.get("/", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains("Signed in as <b>alice</b>"), "{home}");

    // an expired or forged session is no session: the plain sign-in form
    let forged = sepay_connector::mint_admin_token("not-the-secret", "alice", Duration::from_secs(60)).unwrap();
    let (status, page, headers) = app.get(&link, Some(&forged)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get(SET_COOKIE).is_none());
    assert!(
        !page.contains("switch-account") && page.contains("id=\"sign-in\""),
        "{page}"
    );

    // the same user (another token): straight to the page, nothing changed
    let again = sepay_connector::mint_admin_token(ADMIN_SECRET, "alice", Duration::from_secs(7200)).unwrap();
    let (status, _, headers) = app
        .get(&format!("/login?token={again}&ws={}", app.ws), Some(&alice))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), app.integrations_url("").trim_end_matches('?'));
    assert!(headers.get(SET_COOKIE).is_none());
}

#[tokio::test]
async fn forms_need_the_session_csrf_token() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let sync = format!("/ws/{}/sync", app.ws);
    let (status, _, _) = app.post(&sync, &alice, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "missing");
    let (status, _, _) = app.post(&sync, &alice, &[("csrf", "wrong")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "wrong");
    // another session of the same user has another token
    let other_session = sepay_connector::mint_admin_token(ADMIN_SECRET, "alice", Duration::from_secs(3599)).unwrap();
    let other_csrf = app.csrf(&other_session).await;
    assert_ne!(other_csrf, app.csrf(&alice).await);
    let (status, _, _) = app.post(&sync, &alice, &[("csrf", &other_csrf)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another session's");
    for path in [
        "connect",
        "disconnect",
        "reconcile",
        "wallets",
        "endpoints",
        "events/replay",
    ] {
        let (status, _, _) = app
            .post(&format!("/ws/{}/{path}", app.ws), &alice, &[("csrf", "")])
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    assert!(control_messages(&app.bus).await.is_empty());

    let csrf = app.csrf(&alice).await;
    let (status, _, headers) = app.post(&sync, &alice, &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), app.integrations_url("done=sync_requested"));
    let reconcile = format!("/ws/{}/reconcile", app.ws);
    assert_eq!(
        app.post(&reconcile, &alice, &[("csrf", &csrf)]).await.0,
        StatusCode::SEE_OTHER
    );
    let subjects: Vec<String> = control_messages(&app.bus).await.into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        subjects,
        vec![
            subject_of(&app.bus, sepay_bus::ControlSubject::SyncRequested),
            subject_of(&app.bus, sepay_bus::ControlSubject::ReconcileRequested)
        ]
    );
}

#[tokio::test]
async fn disconnect_is_requested_and_shown() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    assert_eq!(app.connect(&alice).await, app.integrations_url("sepay=connected"));
    // an active connection whose account sync failed says so beside its status
    sqlx::query("update sepay_connections set last_sync_error = 'SePay answered 401' where ws_id = $1")
        .bind(app.ws)
        .execute(&app.db)
        .await
        .unwrap();
    let (_, page, _) = app.get(&format!("/ws/{}/integrations", app.ws), Some(&alice)).await;
    assert!(page.contains("id=\"connection-status\">active<"), "{page}");
    assert!(
        page.contains("but the last account sync failed: SePay answered 401"),
        "{page}"
    );
    control_messages(&app.bus).await;
    let csrf = app.csrf(&alice).await;
    // Disconnect asks first, and does nothing until confirmed
    let (status, asked, _) = app
        .post(&format!("/ws/{}/disconnect", app.ws), &alice, &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        asked.contains("Disconnect SePay?") && asked.contains("id=\"cancel\""),
        "{asked}"
    );
    assert!(
        control_messages(&app.bus).await.is_empty(),
        "nothing requested before the confirmation"
    );
    let (status, _, headers) = app
        .post(
            &format!("/ws/{}/disconnect", app.ws),
            &alice,
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), app.integrations_url("done=disconnect_requested"));
    let messages = control_messages(&app.bus).await;
    let disconnected = subject_of(&app.bus, sepay_bus::ControlSubject::ConnectionDisconnected);
    assert_eq!(messages, vec![(disconnected, ControlRequest::workspace(app.ws))]);
    let (_, page, _) = app.get(&format!("/ws/{}/integrations", app.ws), Some(&alice)).await;
    assert!(page.contains("id=\"connection-status\">disconnecting<"), "{page}");
    // what the provisioner does in the end
    app.tokens(&app.sepay).disconnect(app.ws).await.unwrap();
    let (_, page, _) = app.get(&format!("/ws/{}/integrations", app.ws), Some(&alice)).await;
    assert!(page.contains("id=\"connection-status\">disconnected<"), "{page}");
    // reconnecting clears the request
    assert_eq!(app.connect(&alice).await, app.integrations_url("sepay=connected"));
    let (_, page, _) = app.get(&format!("/ws/{}/integrations", app.ws), Some(&alice)).await;
    assert!(page.contains("id=\"connection-status\">active<"), "{page}");
}

/// `count` events: every third failed (`wallet_not_linked`), the rest processed.
async fn seed_events(db: &PgPool, ws: Uuid, count: i64) {
    sqlx::query(
        "insert into sepay_webhook_events (ws_id, source, sepay_transaction_id, dedupe_key, payload, status, failure_reason)
         select $1, 'webhook', g, 'sepay:' || g,
                jsonb_build_object('id', g, 'transferType', 'in', 'transferAmount', '2277000.50', 'accountNumber', '0071000888888',
                                   'content', 'ORDER ' || g),
                case when g % 3 = 0 then 'failed' else 'processed' end,
                case when g % 3 = 0 then 'wallet_not_linked' end
           from generate_series(1, $2) g",
    )
    .bind(ws)
    .bind(count)
    .execute(db)
    .await
    .unwrap();
}

#[tokio::test]
async fn events_page_by_keyset_filter_and_replay() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    seed_events(&app.db, app.ws, 3000).await;
    let events = |query: &str| format!("/ws/{}/events{query}", app.ws);
    let started = Instant::now();
    let (status, page, _) = app.get(&events(""), Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a page of 3000 events took {:?}",
        started.elapsed()
    );
    assert_eq!(page.matches("<tr><td><a href=").count(), 50);
    assert!(page.contains(&format!("href=\"/ws/{}/events/3000\">3000</a>", app.ws)));
    assert!(page.contains("2,277,001 VND"), "amounts in their currency");
    assert!(page.contains("id=\"event-count\">3,000 events"), "{page}");
    assert!(!page.contains("id=\"newer\""), "the newest page has no newer one");
    let older = attr_after(&page, "id=\"older\" href=\"")
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    assert_eq!(older, events("?before=2951"));
    let (_, page, _) = app.get(&older, Some(&alice)).await;
    assert!(page.contains(">2950</a>") && !page.contains(">2951</a>"));
    // and back: the newer page is the first one again
    let newer = attr_after(&page, "id=\"newer\" href=\"")
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    assert_eq!(newer, events("?after=2950"));
    let (_, page, _) = app.get(&newer, Some(&alice)).await;
    assert!(page.contains(">3000</a>") && page.contains(">2951</a>") && !page.contains(">2950</a>"));
    assert!(!page.contains("id=\"newer\""), "{page}");

    // filters: status, text, amount, account, dates; shared as a URL
    let (_, failed, _) = app.get(&events("?status=failed"), Some(&alice)).await;
    assert_eq!(failed.matches("wallet_not_linked").count(), 50);
    assert!(failed.contains("id=\"event-count\">1,000 events"), "{failed}");
    assert!(failed.contains("id=\"replay-2997\""));
    let older = attr_after(&failed, "id=\"older\" href=\"")
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    assert_eq!(
        older,
        events("?status=failed&before=2853"),
        "the filter is kept when paging"
    );
    let (_, one, _) = app
        .get(&events("?q=ORDER%202997&min=1&max=999999999"), Some(&alice))
        .await;
    assert!(one.contains("id=\"event-count\">1 event ("), "{one}");
    let (_, none, _) = app.get(&events("?min=3000000"), Some(&alice)).await;
    assert!(none.contains("id=\"no-events\""), "{none}");
    let (_, other_account, _) = app.get(&events("?account=0000"), Some(&alice)).await;
    assert!(other_account.contains("id=\"no-events\""));
    // dates are Vietnam days
    let today = (chrono::Utc::now() + chrono::Duration::hours(7)).format("%Y-%m-%d");
    let (_, dated, _) = app
        .get(
            &events(&format!("?from={today}&to={today}&provider=sepay")),
            Some(&alice),
        )
        .await;
    assert!(dated.contains("id=\"event-count\">3,000 events"), "{dated}");
    let (_, striga, _) = app.get(&events("?provider=striga"), Some(&alice)).await;
    assert!(striga.contains("id=\"no-events\""));
    // a filter with mistakes is shown again as typed, with every error
    let (status, bad, _) = app.get(&events("?status=bogus&min=lots&q=kept"), Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        bad.contains("id=\"filter-errors\"")
            && bad.contains("Status &#34;bogus&#34;")
            && bad.contains("Minimum amount &#34;lots&#34;"),
        "{bad}"
    );
    assert!(bad.contains("name=\"q\" value=\"kept\""));
    let (status, _, _) = app.get(&events("?before=x"), Some(&alice)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    app.bus.ensure_events_stream().await.unwrap();
    let csrf = app.csrf(&alice).await;
    let (status, _, headers) = app
        .post(
            &format!("/ws/{}/events/replay", app.ws),
            &alice,
            &[("csrf", &csrf), ("id", "2997")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location(&headers).ends_with("/events/2997?done=replayed_one"));
    let (status, attempts, published): (String, i32, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("select status, attempts, published_at from sepay_webhook_events where id = 2997")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("received", 2));
    assert!(published.is_some(), "published for the processor");
    assert_eq!(app.bus.events_stream_len().await.unwrap(), 1);
    // a replay that changes nothing says so
    let (_, _, headers) = app
        .post(
            &format!("/ws/{}/events/replay", app.ws),
            &alice,
            &[("csrf", &csrf), ("id", "2998")],
        )
        .await;
    assert!(location(&headers).ends_with("/events/2998?done=replay_refused"));

    // another workspace's admin cannot replay this workspace's events by id
    let other = workspaces::create_workspace(&app.db, "Other").await.unwrap().id;
    members::grant_admin(&app.db, other, "alice").await.unwrap();
    let (status, _, _) = app
        .post(
            &format!("/ws/{other}/events/replay"),
            &alice,
            &[("csrf", &csrf), ("id", "2994")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let status: String = sqlx::query_scalar("select status from sepay_webhook_events where id = 2994")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(status, "failed");

    // bulk: the confirm step says how many, the replay does that many
    sqlx::query("update sepay_webhook_events set failure_reason = 'invalid_amount' where id = 2994")
        .execute(&app.db)
        .await
        .unwrap();
    let (_, confirm, _) = app
        .get(
            &format!("/ws/{}/events/replay?status=failed&min=1", app.ws),
            Some(&alice),
        )
        .await;
    assert!(
        confirm.contains("Replay <strong>998</strong> failed events"),
        "{confirm}"
    );
    let (_, _, headers) = app
        .post(
            &format!("/ws/{}/events/replay", app.ws),
            &alice,
            &[("csrf", &csrf), ("status", "failed"), ("min", "1")],
        )
        .await;
    assert!(
        location(&headers).ends_with("done=replayed&n=998"),
        "{}",
        location(&headers)
    );
    let landed = location(&headers);
    let (_, after, _) = app.get(&landed[landed.find("/ws/").unwrap()..], Some(&alice)).await;
    assert!(after.contains("998 failed events re-driven"), "{after}");
    let left: i64 = sqlx::query_scalar("select count(*) from sepay_webhook_events where status = 'failed'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 1, "the event a replay cannot fix stays failed");
}

/// An event's page: the payload as sent, its deliveries, what it booked, and replay only where it
/// can change something.
#[tokio::test]
async fn an_event_page_shows_payload_deliveries_and_booking() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    seed_events(&app.db, app.ws, 3).await;
    let at = chrono::Utc::now();
    let attempt = |outcome: &str, status: i16| sepay_store::deliveries::DeliveryAttempt {
        event_id: 3,
        received_at: at,
        source_addr: Some("203.0.113.9".into()),
        outcome: outcome.into(),
        status_code: status,
        latency_ms: 4.25,
    };
    sepay_store::deliveries::insert_many(&app.db, &[attempt("new", 200), attempt("reopened", 200)])
        .await
        .unwrap();
    let (status, page, headers) = app.get(&format!("/ws/{}/events/3", app.ws), Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("id=\"event-status\">failed<") && page.contains("wallet_not_linked"),
        "{page}"
    );
    assert!(page.contains("2,277,001 VND"));
    assert_eq!(page.matches("203.0.113.9").count(), 2, "both deliveries");
    assert!(page.contains("4.2 ms") || page.contains("4.3 ms"));
    assert!(
        page.contains("&#34;transferAmount&#34;: &#34;2277000.50&#34;"),
        "pretty JSON: {page}"
    );
    assert!(
        page.contains("id=\"replay\""),
        "a missing wallet link can be fixed: replayable"
    );
    assert!(page.contains("id=\"not-booked\""));
    // the Copy button's script is the one the CSP allows by hash
    let csp = headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains(&sepay_connector::script_hash()), "{csp}");
    assert!(page.contains(&format!("<script>{}</script>", sepay_connector::COPY_SCRIPT)));
    // a payload that can never be booked: no Replay, and why
    sqlx::query("update sepay_webhook_events set failure_reason = 'invalid_amount', failure_detail = 'not a number' where id = 3")
        .execute(&app.db)
        .await
        .unwrap();
    let (_, page, _) = app.get(&format!("/ws/{}/events/3", app.ws), Some(&alice)).await;
    assert!(!page.contains("id=\"replay\"") && page.contains("id=\"no-replay\""));
    assert!(page.contains("invalid_amount</strong>: not a number"));
    // another workspace's event, or none: 404
    let other = workspaces::create_workspace(&app.db, "Other").await.unwrap().id;
    members::grant_admin(&app.db, other, "alice").await.unwrap();
    let (status, _, _) = app.get(&format!("/ws/{other}/events/3"), Some(&alice)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app.get(&format!("/ws/{}/events/99", app.ws), Some(&alice)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A wallet's statement: amounts in its currency with the running balance, a Vietnam-day range,
/// the CSV of that range (formulas defused), and the list of wallets.
#[tokio::test]
async fn a_wallet_statement_shows_the_running_balance_and_exports_csv() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let wallet = workspaces::create_wallet(&app.db, app.ws, "Vietcombank 8888", "VND")
        .await
        .unwrap();
    for (n, (day, amount, description)) in [
        ("2026-11-30T10:00:00Z", "2277000", "DH1001"),
        ("2026-12-01T02:00:00Z", "-77000", "=HYPERLINK(\"x\")"),
        ("2026-12-01T03:00:00Z", "1000000", "DH1002"),
    ]
    .into_iter()
    .enumerate()
    {
        sqlx::query(
            "insert into wallet_transactions (ws_id, wallet_id, amount, description, taken_at, source, external_ref)
             values ($1, $2, $3::numeric, $4, $5::timestamptz, 'sepay', $6)",
        )
        .bind(app.ws)
        .bind(wallet.id)
        .bind(amount)
        .bind(description)
        .bind(day)
        .bind(format!("sepay:{n}"))
        .execute(&app.db)
        .await
        .unwrap();
    }
    let (status, list, _) = app.get(&format!("/ws/{}/wallets", app.ws), Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(list.contains("3,200,000 VND"), "{list}");
    let base = format!("/ws/{}/wallets/{}", app.ws, wallet.id);
    let (_, page, _) = app.get(&base, Some(&alice)).await;
    // newest first, each with the balance after it
    let order: Vec<usize> = ["1,000,000 VND", "−77,000 VND", "2,277,000 VND"]
        .iter()
        .map(|a| page.find(a).unwrap_or_else(|| panic!("{a} in {page}")))
        .collect();
    assert!(order[0] < order[1] && order[1] < order[2]);
    assert!(page.contains("3,200,000 VND") && page.contains("2,200,000 VND"));
    // 2026-12-01 in Vietnam: from 2026-11-30T17:00Z, so the first transfer is outside
    let (_, day, _) = app
        .get(&format!("{base}?from=2026-12-01&to=2026-12-01"), Some(&alice))
        .await;
    assert!(!day.contains("2,277,000 VND") && day.contains("−77,000 VND"), "{day}");
    assert!(
        day.contains("transactions.csv?from=2026-12-01&#38;to=2026-12-01"),
        "{day}"
    );
    let (status, csv, headers) = app
        .get(
            &format!("{base}/transactions.csv?from=2026-12-01&to=2026-12-01"),
            Some(&alice),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("id,taken_at_utc,amount,currency"));
    assert!(
        lines[1].contains(",-77000,VND,\"'=HYPERLINK(\"\"x\"\")\",") && lines[1].ends_with(",2200000"),
        "{csv}"
    );
    assert!(lines[2].ends_with(",3200000"));
    let (status, _, _) = app.get(&format!("{base}?from=yesterday"), Some(&alice)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // another workspace's wallet is not found from here
    let other = workspaces::create_workspace(&app.db, "Other").await.unwrap().id;
    members::grant_admin(&app.db, other, "alice").await.unwrap();
    let (status, _, _) = app
        .get(&format!("/ws/{other}/wallets/{}", wallet.id), Some(&alice))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Times show in the workspace's time zone (Vietnam's by default) with UTC in the tooltip; the
/// settings form refuses a zone it does not know, shown again as typed.
#[tokio::test]
async fn times_follow_the_workspace_time_zone() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    seed_events(&app.db, app.ws, 1).await;
    sqlx::query("update sepay_webhook_events set received_at = '2026-12-01T02:00:00Z'")
        .execute(&app.db)
        .await
        .unwrap();
    let (_, page, _) = app.get(&format!("/ws/{}/events", app.ws), Some(&alice)).await;
    assert!(
        page.contains("title=\"2026-12-01 02:00:00 UTC\">2026-12-01 09:00:00 +07</span>"),
        "{page}"
    );
    let csrf = app.csrf(&alice).await;
    let settings = format!("/ws/{}/settings", app.ws);
    let (status, refused, _) = app
        .post(&settings, &alice, &[("csrf", &csrf), ("time_zone", "Mars/Olympus")])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.contains("id=\"settings-error\"") && refused.contains("value=\"Mars/Olympus\""),
        "{refused}"
    );
    let (status, _, headers) = app
        .post(&settings, &alice, &[("csrf", &csrf), ("time_zone", "Europe/Berlin")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location(&headers).ends_with("/settings?done=settings_saved"));
    let (_, page, _) = app.get(&format!("/ws/{}/events", app.ws), Some(&alice)).await;
    assert!(page.contains(">2026-12-01 03:00:00 CET</span>"), "{page}");
    // the date filter is the workspace's day: 2026-12-01 in Berlin holds 02:00 UTC
    let (_, day, _) = app
        .get(
            &format!("/ws/{}/events?from=2026-12-01&to=2026-12-01", app.ws),
            Some(&alice),
        )
        .await;
    assert!(day.contains("id=\"event-count\">1 event ("), "{day}");
    let (_, before, _) = app
        .get(&format!("/ws/{}/events?to=2026-11-30", app.ws), Some(&alice))
        .await;
    assert!(before.contains("id=\"no-events\""));
}

/// The overview: the last 14 days as an SVG chart (no script), the money per day and currency,
/// and what needs an admin.
#[tokio::test]
async fn the_overview_charts_the_last_two_weeks() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    seed_events(&app.db, app.ws, 30).await;
    let wallet = workspaces::create_wallet(&app.db, app.ws, "Main", "VND").await.unwrap();
    for (n, amount) in [(1, "2277000"), (2, "-77000")] {
        sqlx::query(
            "insert into wallet_transactions (ws_id, wallet_id, amount, description, taken_at, source, external_ref)
             values ($1, $2, $3::numeric, 'x', now(), 'sepay', $4)",
        )
        .bind(app.ws)
        .bind(wallet.id)
        .bind(amount)
        .bind(format!("sepay:{n}"))
        .execute(&app.db)
        .await
        .unwrap();
    }
    let (status, page, _) = app.get(&format!("/ws/{}/overview", app.ws), Some(&alice)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("Last 14 days (Asia/Ho_Chi_Minh): <strong>30</strong> deliveries, <strong>2</strong> bookings, <strong>10</strong> failed events"),
        "{page}"
    );
    assert_eq!(page.matches("<text ").count(), 28, "a label a day, on both charts");
    // today: three bars (30 deliveries, 2 bookings, 10 failures), then money in and out
    assert_eq!(page.matches("<rect ").count(), 5, "{page}");
    assert!(
        page.contains("id=\"money-VND\"")
            && page.contains(": 2,277,000 VND in</title>")
            && page.contains(": −77,000 VND out</title>"),
        "{page}"
    );
    assert!(page.contains("class=\"bar-deliveries\"") && page.contains(": 10 failures</title>"));
    assert!(page.contains("2,277,000 VND") && page.contains("−77,000 VND"));
    assert!(page.contains("id=\"open-gaps\">0<"));
    assert!(!page.contains("<script"));
}

/// Every route the router serves (read from `src/routes/mod.rs`, so a new route cannot be
/// forgotten here), each method of it, requested with hostile text in every path parameter, query
/// parameter and form field a page reads: no answer is a server error or shows the text as markup.
#[tokio::test]
async fn every_route_answers_hostile_input_without_rendering_it() {
    const XSS: &str = "<script>alert(1)</script>";
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let csrf = app.csrf(&alice).await;
    seed_events(&app.db, app.ws, 3).await;
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes/mod.rs")).unwrap();
    let mut routes = Vec::new();
    for line in source.lines().map(str::trim).filter(|l| l.starts_with(".route(")) {
        let first = line["route(".len() + 1..].split(',').next().unwrap().trim();
        let path = match first.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            Some(path) => path.to_owned(),
            None if first == "CALLBACK_PATH" => sepay_connector::CALLBACK_PATH.to_owned(),
            None => panic!("a route this test cannot read: {line}"),
        };
        for (method, marker) in [("GET", " get("), ("GET", "(get("), ("POST", "post(")] {
            if line.contains(marker) && !routes.contains(&(method, path.clone())) {
                routes.push((method, path.clone()));
            }
        }
    }
    assert!(routes.len() >= 30, "routes read: {routes:?}");
    let hostile: String = url::form_urlencoded::byte_serialize(XSS.as_bytes()).collect();
    let query_names = [
        "provider", "status", "account", "from", "to", "min", "max", "q", "before", "after", "done", "n", "sepay",
        "reason", "token", "ws", "code", "state", "error",
    ];
    let query: Vec<String> = query_names.iter().map(|n| format!("{n}={hostile}")).collect();
    let form_names = [
        "name",
        "conditions",
        "matching",
        "category",
        "kind",
        "tags",
        "keep_going",
        "label",
        "wallet_id",
        "api_key",
        "account",
        "time_zone",
        "direction",
        "id",
        "provider",
        "status",
        "from",
        "to",
        "min",
        "max",
        "q",
        "confirm",
        "token",
        "ws",
        "decision",
    ];
    let mut visited = Vec::new();
    for (method, template) in &routes {
        let path = template
            .replace("{ws}", &app.ws.to_string())
            .replace("{id}", &hostile)
            .replace("{link}", &hostile)
            .replace("{wallet}", &hostile);
        assert!(
            !path.contains('{'),
            "a path parameter this test does not fill: {template}"
        );
        let (status, body, _) = match *method {
            "GET" => app.get(&format!("{path}?{}", query.join("&")), Some(&alice)).await,
            _ => {
                let mut form: Vec<(&str, &str)> = form_names.iter().map(|n| (*n, XSS)).collect();
                form.push(("csrf", &csrf));
                app.post(&path, &alice, &form).await
            }
        };
        assert!(!status.is_server_error(), "{method} {template}: {status}: {body}");
        assert!(
            !body.contains(XSS),
            "{method} {template} renders the text as markup: {body}"
        );
        visited.push((*method, template.clone()));
    }
    assert_eq!(visited, routes, "every route visited");
}

/// Text from outside (a workspace name, a wallet, a bank account, an endpoint label, a rule
/// entered in the form, an event's fields, a Striga account) is shown as text on every page,
/// never as markup: the templates escape every value.
#[tokio::test]
async fn hostile_text_is_rendered_escaped_on_every_page() {
    const XSS: &str = "<script>alert(1)</script>";
    const ESCAPED: &str = "&#60;script&#62;alert(1)&#60;/script&#62;";
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let db = &app.db;
    let ws = workspaces::create_workspace(db, XSS).await.unwrap().id;
    members::grant_admin(db, ws, "alice").await.unwrap();
    // a VND wallet for SePay's account and endpoint, an EUR one for Striga's account
    let vnd = workspaces::create_wallet(db, ws, XSS, "VND").await.unwrap();
    let eur = workspaces::create_wallet(db, ws, XSS, "EUR").await.unwrap();
    workspaces::link_account(db, ws, XSS, Some(XSS), vnd.id).await.unwrap();
    endpoints::create_manual_endpoint(db, "http://ingress.test", ws, Some(vnd.id), XSS)
        .await
        .unwrap();
    sepay_store::striga::link_wallet(db, ws, XSS, eur.id).await.unwrap();
    sqlx::query(
        "insert into sepay_webhook_events (ws_id, source, dedupe_key, payload, status, failure_reason)
         values ($1, 'webhook', 'xss', jsonb_build_object('id', $2::text, 'transferType', $2::text,
                 'transferAmount', $2::text, 'accountNumber', $2::text), 'failed', $2)",
    )
    .bind(ws)
    .bind(XSS)
    .execute(db)
    .await
    .unwrap();
    let csrf = app.csrf(&alice).await;
    let (status, page, _) = app
        .post(
            &format!("/ws/{ws}/rules"),
            &alice,
            &[
                ("csrf", &csrf),
                ("name", XSS),
                ("conditions", &format!("content contains {XSS}")),
                ("category", XSS),
                ("kind", "expense"),
                ("tags", XSS),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");

    let event_id: i64 = sqlx::query_scalar("select id from sepay_webhook_events where dedupe_key = 'xss'")
        .fetch_one(db)
        .await
        .unwrap();
    sqlx::query(
        "insert into wallet_transactions (ws_id, wallet_id, amount, description, taken_at, source, external_ref)
         values ($1, $2, 1, $3, now(), 'sepay', 'xss')",
    )
    .bind(ws)
    .bind(vnd.id)
    .bind(XSS)
    .execute(db)
    .await
    .unwrap();
    let hostile_query: String = url::form_urlencoded::byte_serialize(XSS.as_bytes()).collect();
    for path in [
        "/".to_owned(),
        format!("/ws/{ws}/integrations"),
        format!("/ws/{ws}/events"),
        format!("/ws/{ws}/events?status=failed"),
        format!("/ws/{ws}/events?q={hostile_query}&account={hostile_query}"),
        format!("/ws/{ws}/events?min={hostile_query}"),
        format!("/ws/{ws}/events/{event_id}"),
        format!("/ws/{ws}/events/replay?q={hostile_query}"),
        format!("/ws/{ws}/wallets"),
        format!("/ws/{ws}/wallets/{}", vnd.id),
        format!("/ws/{ws}/overview"),
        format!("/ws/{ws}/settings"),
        format!("/ws/{ws}/rules"),
        format!("/ws/{ws}/striga"),
    ] {
        let (status, page, _) = app.get(&path, Some(&alice)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        // the event page's one script is the Copy button's, allowed by its hash
        assert!(
            !page
                .replace(&format!("<script>{}</script>", sepay_connector::COPY_SCRIPT), "")
                .contains("<script"),
            "{path} renders markup: {page}"
        );
        assert!(page.contains(ESCAPED), "{path} shows the text: {page}");
    }
    // every hostile field of the event is on the events page, as text
    let (_, events, _) = app.get(&format!("/ws/{ws}/events"), Some(&alice)).await;
    assert_eq!(events.matches(&format!(">{ESCAPED}</td>")).count(), 5, "{events}");
}

#[tokio::test]
async fn endpoints_are_created_rotated_and_revoked_from_the_page() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let csrf = app.csrf(&alice).await;
    let (status, page, _) = app
        .post(
            &format!("/ws/{}/endpoints", app.ws),
            &alice,
            &[("csrf", &csrf), ("label", "shop <1>"), ("wallet_id", "")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let url = attr_between(&page, "id=\"webhook-url\">", "<");
    let key = attr_between(&page, "id=\"api-key\">", "<");
    assert!(
        url.starts_with("http://ingress.test/api/v1/webhooks/sepay/spwh_"),
        "{url}"
    );
    let token = url.rsplit('/').next().unwrap();
    let found = sepay_store::endpoints::find_by_token_hash(&app.db, &sepay_crypto::sha256(token.as_bytes()))
        .await
        .unwrap()
        .expect("the ingress finds it");
    assert!(sepay_crypto::verify_secret(&key, &found.api_key_hash));
    let (_, integration, _) = app.get(&format!("/ws/{}/integrations", app.ws), Some(&alice)).await;
    assert!(integration.contains("shop &#60;1&#62;") && !integration.contains(&key) && !integration.contains(token));

    // a manual endpoint rotates here: new secrets once, the old ones in their grace period
    let (status, page, _) = app
        .post(
            &format!("/ws/{}/endpoints/{}/rotate", app.ws, found.id),
            &alice,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let new_url = attr_between(&page, "id=\"webhook-url\">", "<");
    assert_ne!(new_url, url);
    let old = sepay_store::endpoints::get(&app.db, found.id).await.unwrap();
    assert_eq!(old.status, "rotating");
    assert!(old.grace_until.unwrap() > chrono::Utc::now() + chrono::Duration::hours(5));

    // a provisioned endpoint is rotated by the provisioner
    let provisioned = sepay_store::endpoints::create(
        &app.db,
        &sepay_store::endpoints::NewEndpoint {
            provider: sepay_core::Provider::Sepay,
            signing_key_ciphertext: None,
            ws_id: app.ws,
            wallet_id: None,
            label: "sepay",
            token_hash: &[7; 32],
            token_prefix: "spwh_abcdefg",
            api_key_hash: &[8; 32],
            sepay_webhook_id: Some(42),
            bank_account_id: Some("1"),
        },
    )
    .await
    .unwrap();
    let (status, _, headers) = app
        .post(
            &format!("/ws/{}/endpoints/{}/rotate", app.ws, provisioned.id),
            &alice,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), app.integrations_url("done=rotation_requested"));
    let messages = control_messages(&app.bus).await;
    let rotate = subject_of(&app.bus, sepay_bus::ControlSubject::EndpointRotateRequested);
    assert_eq!(
        messages,
        vec![(
            rotate,
            ControlRequest {
                endpoint_id: Some(provisioned.id),
                ..ControlRequest::workspace(app.ws)
            }
        )]
    );
    assert_eq!(
        sepay_store::endpoints::get(&app.db, provisioned.id)
            .await
            .unwrap()
            .status,
        "active"
    );

    let (status, _, _) = app
        .post(
            &format!("/ws/{}/endpoints/{}/revoke", app.ws, provisioned.id),
            &alice,
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        sepay_store::endpoints::get(&app.db, provisioned.id)
            .await
            .unwrap()
            .status,
        "revoked"
    );

    // another workspace's endpoint is not found from this workspace
    let other = workspaces::create_workspace(&app.db, "Other").await.unwrap().id;
    let foreign = endpoints::create_manual_endpoint(&app.db, "http://x", other, None, "x")
        .await
        .unwrap();
    let (status, _, _) = app
        .post(
            &format!("/ws/{}/endpoints/{}/revoke", app.ws, foreign.endpoint.id),
            &alice,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        sepay_store::endpoints::get(&app.db, foreign.endpoint.id)
            .await
            .unwrap()
            .status,
        "active"
    );
}

#[tokio::test]
async fn accounts_map_to_wallets_of_the_workspace() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let csrf = app.csrf(&alice).await;
    let (status, _, _) = app
        .post(
            &format!("/ws/{}/wallets", app.ws),
            &alice,
            &[("csrf", &csrf), ("name", "VCB 8888"), ("currency", "vnd")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let wallet = workspaces::wallets(&app.db, app.ws).await.unwrap().remove(0);
    assert_eq!((wallet.name.as_str(), wallet.currency.as_str()), ("VCB 8888", "VND"));
    let (status, _, _) = app
        .post(
            &format!("/ws/{}/wallets", app.ws),
            &alice,
            &[("csrf", &csrf), ("name", " ")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let link: Uuid = sqlx::query_scalar(
        "insert into sepay_wallet_links (ws_id, account_number, bank_short_name, holder_name, sepay_bank_account_id)
         values ($1, '0071000888888', 'VCB', 'NGUYEN VAN A', '1') returning id",
    )
    .bind(app.ws)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let form_path = format!("/ws/{}/accounts/{link}/wallet", app.ws);
    let wallet_id = wallet.id.to_string();
    let (status, _, _) = app
        .post(&form_path, &alice, &[("csrf", &csrf), ("wallet_id", &wallet_id)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page, _) = app.get(&format!("/ws/{}/integrations", app.ws), Some(&alice)).await;
    assert!(page.contains("NGUYEN VAN A"));
    assert!(
        page.contains(&format!("<option value=\"{wallet_id}\" selected>")),
        "{page}"
    );

    let other = workspaces::create_workspace(&app.db, "Other").await.unwrap().id;
    let foreign = workspaces::create_wallet(&app.db, other, "Theirs", "VND")
        .await
        .unwrap()
        .id
        .to_string();
    let (status, _, _) = app
        .post(&form_path, &alice, &[("csrf", &csrf), ("wallet_id", &foreign)])
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a wallet of another workspace is refused");
    let (status, _, _) = app
        .post(&form_path, &alice, &[("csrf", &csrf), ("wallet_id", "not-a-uuid")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let links = workspaces::wallet_links(&app.db, app.ws).await.unwrap();
    assert_eq!(links[0].wallet_id, Some(wallet.id));
}

#[tokio::test]
async fn classification_rules_are_managed_from_the_page() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let rules_path = format!("/ws/{}/rules", app.ws);
    let (status, page, _) = app.get(&rules_path, Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("id=\"no-rules\"") && page.contains("id=\"credits\""),
        "{page}"
    );
    assert_eq!(
        app.get(&rules_path, Some(&session("bob"))).await.0,
        StatusCode::FORBIDDEN
    );
    let csrf = app.csrf(&alice).await;
    let add = |name: &'static str,
               conditions: &'static str,
               category: &'static str,
               kind: &'static str,
               tags: &'static str| {
        let (app, alice, csrf, rules_path) = (&app, &alice, &csrf, &rules_path);
        async move {
            app.post(
                rules_path,
                alice,
                &[
                    ("csrf", csrf),
                    ("name", name),
                    ("conditions", conditions),
                    ("category", category),
                    ("kind", kind),
                    ("tags", tags),
                ],
            )
            .await
        }
    };
    let (status, _, headers) = add(
        "Grab",
        "content contains grab\r\namount gte 10000",
        "Transport",
        "expense",
        "ride, work",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), format!("{}{rules_path}?done=rule_added", app.url));
    assert_eq!(
        add("Salary", "direction is in", "Salary", "income", "").await.0,
        StatusCode::SEE_OTHER
    );
    // the same checks as the CLI: the form comes back as typed, with every mistake; nothing saved
    let (status, page, _) = add("Bad", "content has grab\namount gte lots", "X", "income", "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"rule-errors\""), "{page}");
    assert!(
        page.contains("unknown operator") && page.contains("amount needs a number"),
        "{page}"
    );
    assert!(
        page.contains("name=\"name\" required maxlength=\"200\" value=\"Bad\""),
        "{page}"
    );
    assert!(page.contains(">content has grab\namount gte lots</textarea>"), "{page}");
    assert!(page.contains("<option value=\"income\" selected>"), "{page}");
    assert_eq!(
        add("Nothing", "direction is out", "", "expense", " ").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (status, _, _) = app.post(&rules_path, &alice, &[("csrf", "wrong"), ("name", "x")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let rules = sepay_store::classification::rules(&app.db, app.ws).await.unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Grab", "Salary"]);
    assert_eq!(
        rules[0].condition_texts(),
        ["content contains grab", "amount gte 10000"]
    );
    assert_eq!(rules[0].tags, ["ride", "work"]);
    assert_eq!(rules[1].category_name.as_deref(), Some("Salary"));
    let (_, page, _) = app.get(&rules_path, Some(&alice)).await;
    assert!(page.contains("<code>content contains grab</code>"), "{page}");

    let salary = rules[1].id;
    let (status, _, _) = app
        .post(
            &format!("{rules_path}/{salary}/move"),
            &alice,
            &[("csrf", &csrf), ("direction", "up")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let order: Vec<Uuid> = sepay_store::classification::rules(&app.db, app.ws)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(order, [salary, rules[0].id]);

    // another workspace's rule cannot be touched from this one
    let other = workspaces::create_workspace(&app.db, "Other").await.unwrap().id;
    members::grant_admin(&app.db, other, "alice").await.unwrap();
    let (status, _, _) = app
        .post(
            &format!("/ws/{other}/rules/{salary}/delete"),
            &alice,
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // the Delete button asks first; the rule stays until confirmed
    let (status, asked, _) = app
        .post(&format!("{rules_path}/{salary}/delete"), &alice, &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        asked.contains("Delete this rule?") && asked.contains("name=\"confirm\" value=\"yes\""),
        "{asked}"
    );
    assert!(asked.contains(&format!("action=\"{rules_path}/{salary}/delete\"")));
    let (status, _, _) = app
        .post(
            &format!("{rules_path}/{salary}/delete"),
            &alice,
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let left: Vec<String> = sepay_store::classification::rules(&app.db, app.ws)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(left, ["Grab"]);
}

#[tokio::test]
async fn redirects_stay_on_the_configured_origin_whatever_the_request_says() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let callback = format!("{}{}", app.url, sepay_connector::CALLBACK_PATH);
    let hostile = [
        "?error=access_denied&redirect_uri=https://evil.example/",
        "?code=x&state=y&next=//evil.example",
        "?error=https://evil.example",
        "",
    ];
    for query in hostile {
        for host in [None, Some("evil.example")] {
            let mut request = app
                .http
                .get(format!("{callback}{query}"))
                .header(COOKIE, format!("sepay_admin_session={alice}"));
            if let Some(host) = host {
                request = request.header("host", host).header("x-forwarded-host", host);
            }
            let res = request.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "{query} {host:?}");
            let target = location(res.headers());
            assert!(
                target.starts_with(&format!("{}/", app.url)) && !target.contains("evil"),
                "{query} {host:?} → {target}"
            );
        }
    }
    let (status, page, _) = app
        .get(
            &format!("/login?token={alice}&ws={}&next=https://evil.example", app.ws),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("evil"), "{page}");
    let ws = app.ws.to_string();
    let res = app
        .http
        .post(format!("{}/login?next=https://evil.example", app.url))
        .header("origin", &app.url)
        .header("host", "evil.example")
        .form(&[
            ("token", alice.as_str()),
            ("ws", ws.as_str()),
            ("next", "//evil.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let target = location(res.headers());
    assert!(
        target.starts_with(&format!("{}/", app.url)) && !target.contains("evil"),
        "{target}"
    );
}

#[test]
fn cookies_are_secure_unless_served_over_plain_http() {
    assert!(connector_config("https://connector.example").secure_cookies());
    assert!(!connector_config("http://127.0.0.1:8082").secure_cookies());
}

#[tokio::test]
async fn striga_endpoints_and_accounts_are_managed_from_the_page() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let striga_path = format!("/ws/{}/striga", app.ws);
    let (status, page, _) = app.get(&striga_path, Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"no-striga-endpoints\""), "{page}");
    assert_eq!(
        app.get(&striga_path, Some(&session("bob"))).await.0,
        StatusCode::FORBIDDEN
    );
    let eur = sepay_store::workspaces::create_wallet(&app.db, app.ws, "Striga EUR", "EUR")
        .await
        .unwrap();
    let wallet = eur.id.to_string();
    let csrf = app.csrf(&alice).await;
    let api_key = "striga-secret-not-to-be-shown";

    // refused: no key, a forged form
    let endpoints_path = format!("{striga_path}/endpoints");
    let (status, _, _) = app
        .post(&endpoints_path, &alice, &[("csrf", &csrf), ("api_key", " ")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = app
        .post(&endpoints_path, &alice, &[("csrf", "forged"), ("api_key", api_key)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, page, _) = app
        .post(
            &endpoints_path,
            &alice,
            &[
                ("csrf", &csrf),
                ("label", "EU"),
                ("api_key", api_key),
                ("wallet_id", &wallet),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("/api/v1/webhooks/striga/spwh_"), "{page}");
    assert!(!page.contains(api_key) && !page.contains("id=\"api-key\""), "{page}");
    let endpoint = sepay_store::endpoints::list(&app.db, Some(app.ws))
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.provider == sepay_core::Provider::Striga)
        .unwrap();
    assert_eq!(
        (endpoint.provider.as_str(), endpoint.wallet_id),
        ("striga", Some(eur.id))
    );
    let sealed: Vec<u8> =
        sqlx::query_scalar("select signing_key_ciphertext from sepay_webhook_endpoints where id = $1")
            .bind(endpoint.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let opened = app
        .keys
        .open(&sepay_store::endpoints::signing_key_aad(app.ws), &sealed)
        .unwrap();
    assert_eq!(
        opened,
        api_key.as_bytes(),
        "sealed for this workspace, not stored in the clear"
    );

    // an account link, and the page lists both; the SePay page does not list Striga's endpoint
    let (status, _, headers) = app
        .post(
            &format!("{striga_path}/links"),
            &alice,
            &[
                ("csrf", &csrf),
                ("account", "0148ae0856b1457ff3b59f2ac965b58e"),
                ("wallet_id", &wallet),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location(&headers),
        format!("{}{striga_path}?done=striga_linked", app.url)
    );
    let (_, page, _) = app.get(&striga_path, Some(&alice)).await;
    assert!(
        page.contains("id=\"striga-endpoints\"") && page.contains("<td>EU</td>"),
        "{page}"
    );
    assert!(page.contains("<code>0148ae0856b1457ff3b59f2ac965b58e</code>"), "{page}");
    let (_, integrations, _) = app.get(&format!("/ws/{}/integrations", app.ws), Some(&alice)).await;
    assert!(!integrations.contains("<td>EU</td>"), "{integrations}");

    // a Striga event reads as one on the events page (its id, account, type and amount as sent)
    let payin: serde_json::Value = serde_json::from_str(sepay_core::striga::samples::PAYIN_COMPLETED).unwrap();
    sqlx::query(
        "insert into sepay_webhook_events (ws_id, provider, source, dedupe_key, payload) values ($1, 'striga', 'webhook', 'k', $2)",
    )
    .bind(app.ws)
    .bind(&payin)
    .execute(&app.db)
    .await
    .unwrap();
    let (_, events, _) = app.get(&format!("/ws/{}/events", app.ws), Some(&alice)).await;
    for cell in [
        "<td>striga</td>",
        "<td>ad8b61cf-ea28-4f2f-a0ee-170b47d3d136</td>",
        "<td>0148ae0856b1457ff3b59f2ac965b58e</td>",
        "<td>SEPA_PAYIN_COMPLETED</td>",
        "<td class=\"num\">5.00 EUR</td>",
    ] {
        assert!(events.contains(cell), "{cell} in {events}");
    }
    // a payout with a fee: its fee, base-currency fee and exchange rate shown as Striga sent them
    let mut payout: serde_json::Value = serde_json::from_str(sepay_core::striga::samples::PAYOUT_INITIATED).unwrap();
    payout["feeEur"] = serde_json::json!(25);
    payout["exchangeRate"] = serde_json::json!("1.0832");
    sqlx::query(
        "insert into sepay_webhook_events (ws_id, provider, source, dedupe_key, payload) values ($1, 'striga', 'webhook', 'striga:p:SEPA_PAYOUT_INITIATED', $2)",
    )
    .bind(app.ws)
    .bind(&payout)
    .execute(&app.db)
    .await
    .unwrap();
    let (_, page, _) = app.get(&striga_path, Some(&alice)).await;
    for cell in [
        "id=\"fees\"",
        "<code>striga:p:SEPA_PAYOUT_INITIATED</code>",
        "<td>25</td>",
        "<td>1.0832</td>",
        "no (inside the debit",
    ] {
        assert!(page.contains(cell), "{cell} in {page}");
    }

    // rotation shows the new URL only; revocation returns to the Striga page
    let (status, page, _) = app
        .post(
            &format!("/ws/{}/endpoints/{}/rotate", app.ws, endpoint.id),
            &alice,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Striga endpoint rotated") && !page.contains("id=\"api-key\""),
        "{page}"
    );
    let (status, _, headers) = app
        .post(
            &format!("/ws/{}/endpoints/{}/revoke", app.ws, endpoint.id),
            &alice,
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), format!("{}{striga_path}?done=revoked", app.url));
}

/// The integration page lists the running-balance gaps not closed yet, flagged ones marked.
#[tokio::test]
async fn balance_gaps_show_on_the_integration_page() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    sepay_store::members::grant_admin(&app.db, app.ws, "alice")
        .await
        .unwrap();
    let path = format!("/ws/{}/integrations", app.ws);
    let (status, page, _) = app.get(&path, Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"no-gaps\""), "{page}");
    let point = |id: i64, amount: i64, balance: i64| sepay_core::balance::BalancePoint {
        sepay_id: id,
        taken_at: chrono::Utc::now(),
        amount: amount.into(),
        accumulated: balance.into(),
    };
    let pair = sepay_store::balances::Neighbours {
        ws_id: app.ws,
        account_number: "0071000888888".into(),
        previous: point(41, 100, 1100),
        next: point(43, 200, 1800),
    };
    sepay_store::balances::open_gap(&app.db, &pair, 1600.into(), 1100.into(), chrono::Utc::now())
        .await
        .unwrap();
    sqlx::query("update sepay_balance_gaps set status = 'flagged', attempts = 5")
        .execute(&app.db)
        .await
        .unwrap();
    let (_, page, _) = app.get(&path, Some(&alice)).await;
    assert!(page.contains("id=\"gaps\""), "{page}");
    assert!(page.contains("41 → 43"), "{page}");
    assert!(page.contains("badge flagged"), "{page}");
}

/// Wallet currencies on the pages: ISO 4217 codes only, and a SePay account or endpoint books into
/// VND only; each refusal says why and changes nothing.
#[tokio::test]
async fn currencies_are_checked_on_the_pages() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let csrf = app.csrf(&alice).await;
    let wallets = format!("/ws/{}/wallets", app.ws);
    for bad in ["euro", "XYZW"] {
        let (status, page, _) = app
            .post(&wallets, &alice, &[("csrf", &csrf), ("name", "E"), ("currency", bad)])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(page.contains("is not an ISO 4217 currency code"), "{page}");
    }
    assert_eq!(workspaces::wallets(&app.db, app.ws).await.unwrap().len(), 0);
    let (status, _, _) = app
        .post(
            &wallets,
            &alice,
            &[("csrf", &csrf), ("name", "Euro"), ("currency", "eur")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let eur = workspaces::wallets(&app.db, app.ws).await.unwrap().remove(0);
    assert_eq!(eur.currency, "EUR");
    let link: Uuid = sqlx::query_scalar(
        "insert into sepay_wallet_links (ws_id, account_number, sepay_bank_account_id)
         values ($1, '0071000888888', '1') returning id",
    )
    .bind(app.ws)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let eur_id = eur.id.to_string();
    let (status, page, _) = app
        .post(
            &format!("/ws/{}/accounts/{link}/wallet", app.ws),
            &alice,
            &[("csrf", &csrf), ("wallet_id", &eur_id)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("SePay books VND"), "{page}");
    let (status, page, _) = app
        .post(
            &format!("/ws/{}/endpoints", app.ws),
            &alice,
            &[("csrf", &csrf), ("label", "eur"), ("wallet_id", &eur_id)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("SePay books VND"), "{page}");
    let linked: Option<Uuid> = sqlx::query_scalar("select wallet_id from sepay_wallet_links where id = $1")
        .bind(link)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(linked, None);
}

async fn connection_row(app: &App) -> (String, i32, Option<chrono::DateTime<chrono::Utc>>) {
    sqlx::query_as("select status, refresh_failures, next_refresh_at from sepay_connections where ws_id = $1")
        .bind(app.ws)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn token_failures_left(app: &App) -> i64 {
    let state = control(
        &reqwest::Client::new(),
        &app.sepay.sepay_base_url,
        "/sim/faults",
        json!({}),
    )
    .await;
    state["token_failures"]["count"].as_i64().unwrap_or(0)
}

/// SePay's token endpoint fails for a while (a blip, 503): the connection is degraded, never
/// needs a reconnect, does not hammer SePay before its backoff, and comes back by itself.
#[tokio::test]
async fn a_refresh_blip_degrades_the_connection_and_it_recovers_by_itself() {
    let app = App::start(SimConfig {
        sim_access_token_ttl_secs: 1,
        ..fast_sim()
    })
    .await;
    let alice = session("alice");
    assert_eq!(app.connect(&alice).await, app.integrations_url("sepay=connected"));
    control(
        &reqwest::Client::new(),
        &app.sepay.sepay_base_url,
        "/sim/faults",
        json!({"token_failures": {"count": 2, "kind": "5xx"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tokens = app.tokens(&app.sepay);
    let err = tokens.access_token(app.ws).await.unwrap_err();
    assert!(matches!(err, sepay_connection::TokenError::Refresh(_)), "{err:?}");
    let (status, failures, next) = connection_row(&app).await;
    assert_eq!((status.as_str(), failures), ("degraded", 1));
    assert!(next.is_some());
    // within the backoff nothing is sent to SePay
    let err = tokens.access_token(app.ws).await.unwrap_err();
    assert!(matches!(err, sepay_connection::TokenError::Degraded { .. }), "{err:?}");
    assert_eq!(token_failures_left(&app).await, 1);
    let (_, page, _) = app.get(&format!("/ws/{}/integrations", app.ws), Some(&alice)).await;
    assert!(page.contains("id=\"connection-status\">degraded<"), "{page}");
    assert!(page.contains("id=\"next-refresh\""), "{page}");
    assert!(
        attr_between(&page, "id=\"status-detail\">", "<").contains("the token refresh failed")
            && page.contains("id=\"status-retry\""),
        "{page}"
    );
    // retried after the backoff: fails once more, then works, with no admin action
    let recovered = sepay_testkit::eventually(Duration::from_secs(10), || async {
        tokens.access_token(app.ws).await.ok()
    })
    .await;
    assert!(recovered.is_some(), "the connection recovered");
    let (status, failures, next) = connection_row(&app).await;
    assert_eq!((status.as_str(), failures, next), ("active", 0, None));
    assert_eq!(token_failures_left(&app).await, 0);
}

/// While the refresh fails, an access token that has not expired yet keeps serving.
#[tokio::test]
async fn an_unexpired_token_serves_while_the_refresh_fails() {
    let app = App::start(SimConfig {
        // inside the refresh margin (60 s) from the start, yet valid
        sim_access_token_ttl_secs: 90,
        ..fast_sim()
    })
    .await;
    let alice = session("alice");
    assert_eq!(app.connect(&alice).await, app.integrations_url("sepay=connected"));
    sqlx::query(
        "update sepay_connections set access_token_expires_at = now() + interval '30 seconds' where ws_id = $1",
    )
    .bind(app.ws)
    .execute(&app.db)
    .await
    .unwrap();
    control(
        &reqwest::Client::new(),
        &app.sepay.sepay_base_url,
        "/sim/faults",
        json!({"token_failures": {"count": 5, "kind": "5xx"}}),
    )
    .await;
    let tokens = app.tokens(&app.sepay);
    let token = tokens.access_token(app.ws).await.unwrap();
    assert!(
        app.sim.world().access_tokens.contains_key(&token),
        "the current token, still valid"
    );
    assert_eq!(connection_row(&app).await.0, "degraded");
    assert_eq!(tokens.access_token(app.ws).await.unwrap(), token);
}

/// A 401 on an API call (SePay dropped the access token) forces one refresh and one retry.
#[tokio::test]
async fn a_401_forces_one_refresh_and_a_retry() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    assert_eq!(app.connect(&alice).await, app.integrations_url("sepay=connected"));
    app.sim.world().access_tokens.clear();
    let tokens = app.tokens(&app.sepay);
    let client = tokens.client();
    let accounts = tokens
        .call(app.ws, |token| async move { client.list_bank_accounts(&token).await })
        .await
        .unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(app.sim.world().access_tokens.len(), 1, "one refresh");
    assert_eq!(connection_row(&app).await.0, "active");
}

/// The integration page lists the webhook repairs the provisioner made.
#[tokio::test]
async fn webhook_repairs_show_on_the_integration_page() {
    let app = App::start(fast_sim()).await;
    let alice = session("alice");
    let path = format!("/ws/{}/integrations", app.ws);
    let (_, page, _) = app.get(&path, Some(&alice)).await;
    assert!(page.contains("id=\"no-repairs\""), "{page}");
    sepay_store::provisioning::record_repair(
        &app.db,
        app.ws,
        Uuid::new_v4(),
        "19",
        "missing",
        "webhook 7 gone at SePay: provisioned again",
    )
    .await
    .unwrap();
    let (_, page, _) = app.get(&path, Some(&alice)).await;
    assert!(page.contains("id=\"repairs\""), "{page}");
    assert!(page.contains("webhook 7 gone at SePay: provisioned again"), "{page}");
}
