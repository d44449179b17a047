//! Conformance of the simulator: shapes, validation, error codes, OAuth rules, scopes, the rate
//! limit, the retry schedule and fault injection.

use axum::http::HeaderMap;
use reqwest::StatusCode;
use sepay_sim::SimConfig;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct Sim {
    url: String,
    http: reqwest::Client,
    stop: CancellationToken,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(config: SimConfig) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(sepay_sim::serve(listener, config, stop.clone()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Sim { url, http, stop }
}

fn fast() -> SimConfig {
    SimConfig {
        sim_auto_approve: true,
        sim_time_scale: 0.001,
        sim_rate_limit_per_sec: 1000,
        ..Default::default()
    }
}

impl Sim {
    /// The simulator's control API, through the client `sepay-dev sim` uses.
    fn client(&self) -> sepay_sim::client::SimClient {
        sepay_sim::client::SimClient {
            base: self.url.clone(),
            http: self.http.clone(),
        }
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        self.client().post(path, body).await.unwrap()
    }

    async fn get(&self, path: &str, bearer: &str) -> (StatusCode, HeaderMap, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        (status, headers, res.json().await.unwrap_or(Value::Null))
    }

    async fn send(&self, method: reqwest::Method, path: &str, bearer: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
            .unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    /// A company with one account and an OAuth client; returns (company, account id, client).
    async fn world(&self) -> (Value, i64, Value) {
        let company = self.control("/sim/companies", json!({"name": "Cty Demo"})).await;
        let account = self
            .control(
                "/sim/bank-accounts",
                json!({"company_id": company["id"], "account_number": "0071000888888", "sub_accounts": ["VA1"]}),
            )
            .await;
        let client = self
            .control(
                "/sim/oauth-clients",
                json!({"company_id": company["id"], "redirect_uris": ["http://app.test/callback"]}),
            )
            .await;
        (company, account["id"].as_i64().unwrap(), client)
    }

    fn authorize_url(&self, client: &Value, scope: &str, extra: &str) -> String {
        format!(
            "{}/oauth/authorize?response_type=code&client_id={}&redirect_uri=http%3A%2F%2Fapp.test%2Fcallback&scope={}&state=st123{extra}",
            self.url,
            client["client_id"].as_str().unwrap(),
            scope.replace(' ', "%20")
        )
    }

    /// Runs the code flow (auto-approve) and returns the redirect's query.
    async fn code(&self, client: &Value, scope: &str) -> url::Url {
        let res = self
            .http
            .get(self.authorize_url(client, scope, ""))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_redirection(), "{}", res.status());
        url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap()
    }

    async fn exchange(&self, client: &Value, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut fields: Vec<(&str, &str)> = vec![
            ("client_id", client["client_id"].as_str().unwrap()),
            ("client_secret", client["client_secret"].as_str().unwrap()),
        ];
        fields.extend_from_slice(form);
        let res = self
            .http
            .post(format!("{}/oauth/token", self.url))
            .form(&fields)
            .send()
            .await
            .unwrap();
        (res.status(), res.json().await.unwrap())
    }

    async fn token(&self, client: &Value, scope: &str) -> Value {
        let redirect = self.code(client, scope).await;
        let code = query(&redirect, "code").unwrap();
        let (status, body) = self
            .exchange(
                client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", "http://app.test/callback"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

fn query(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

const ALL: &str = "bank-account:read transaction:read webhook:read webhook:write webhook:delete profile company";

#[tokio::test]
async fn the_authorization_code_is_single_use_exact_and_bound_to_its_client() {
    let sim = start(fast()).await;
    let (company, _, client) = sim.world().await;
    let other = sim
        .control(
            "/sim/oauth-clients",
            json!({"company_id": company["id"], "redirect_uris": ["http://app.test/callback"]}),
        )
        .await;
    let redirect = sim.code(&client, ALL).await;
    assert_eq!(redirect.host_str(), Some("app.test"));
    assert_eq!(query(&redirect, "state").as_deref(), Some("st123"));
    let code = query(&redirect, "code").unwrap();
    let cases: Vec<(&Value, Vec<(&str, &str)>, StatusCode, &str)> = vec![
        (
            &client,
            vec![
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://app.test/other"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        // the failed attempt above spent the code
        (
            &client,
            vec![
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://app.test/callback"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            &client,
            vec![("grant_type", "password")],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
    ];
    for (c, form, status, error) in cases {
        let (got, body) = sim.exchange(c, &form).await;
        assert_eq!((got, body["error"].as_str().unwrap()), (status, error), "{form:?}");
    }
    // a fresh code works once, and only for its own client
    let code = query(&sim.code(&client, ALL).await, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://app.test/callback"),
    ];
    assert_eq!(sim.exchange(&other, &form).await.1["error"], "invalid_grant");
    let code = query(&sim.code(&client, ALL).await, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://app.test/callback"),
    ];
    let (status, body) = sim.exchange(&client, &form).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], ALL);
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3, "a JWT");
    assert!(body["refresh_token"].is_string());
    assert_eq!(sim.exchange(&client, &form).await.1["error"], "invalid_grant");
    // wrong client secret
    let mut wrong = client.clone();
    wrong["client_secret"] = json!("nope");
    assert_eq!(sim.exchange(&wrong, &form).await.0, StatusCode::UNAUTHORIZED);
    // unregistered redirect URIs and unknown scopes are refused on the page, not redirected
    let bad = sim
        .http
        .get(sim.authorize_url(&client, "everything", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn codes_expire() {
    let sim = start(SimConfig {
        sim_code_ttl_secs: 0,
        ..fast()
    })
    .await;
    let (_, _, client) = sim.world().await;
    let code = query(&sim.code(&client, ALL).await, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://app.test/callback"),
    ];
    let (status, body) = sim.exchange(&client, &form).await;
    assert_eq!(
        (status, body["error_description"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "authorization code expired")
    );
}

#[tokio::test]
async fn pkce_s256_is_checked() {
    let sim = start(fast()).await;
    let (_, _, client) = sim.world().await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let url = sim.authorize_url(
        &client,
        ALL,
        &format!("&code_challenge={challenge}&code_challenge_method=S256"),
    );
    let fetch_code = || async {
        let res = sim.http.get(&url).send().await.unwrap();
        query(
            &url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap(),
            "code",
        )
        .unwrap()
    };
    let code = fetch_code().await;
    let base = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://app.test/callback"),
    ];
    let mut wrong = base.to_vec();
    wrong.push(("code_verifier", "wrong-verifier"));
    assert_eq!(sim.exchange(&client, &wrong).await.1["error"], "invalid_grant");
    let code = fetch_code().await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://app.test/callback"),
        ("code_verifier", verifier),
    ];
    assert_eq!(sim.exchange(&client, &form).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_consent_page_approves_or_denies() {
    let sim = start(SimConfig {
        sim_auto_approve: false,
        ..fast()
    })
    .await;
    let (_, _, client) = sim.world().await;
    let page = sim
        .http
        .get(sim.authorize_url(&client, "bank-account:read", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Approve") && html.contains("Deny") && html.contains("bank-account:read"));
    let form = |decision: &str| {
        vec![
            ("decision", decision.to_owned()),
            ("response_type", "code".to_owned()),
            ("client_id", client["client_id"].as_str().unwrap().to_owned()),
            ("redirect_uri", "http://app.test/callback".to_owned()),
            ("scope", "bank-account:read".to_owned()),
            ("state", "st123".to_owned()),
        ]
    };
    let deny = sim
        .http
        .post(format!("{}/oauth/authorize/decision", sim.url))
        .form(&form("deny"))
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(deny.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        (
            query(&location, "error").as_deref(),
            query(&location, "state").as_deref()
        ),
        (Some("access_denied"), Some("st123"))
    );
    assert!(query(&location, "code").is_none());
    let approve = sim
        .http
        .post(format!("{}/oauth/authorize/decision", sim.url))
        .form(&form("approve"))
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(approve.headers()["location"].to_str().unwrap()).unwrap();
    assert!(query(&location, "code").is_some());
}

#[tokio::test]
async fn access_tokens_expire_refresh_and_revoke() {
    let sim = start(SimConfig {
        sim_access_token_ttl_secs: 1,
        ..fast()
    })
    .await;
    let (_, _, client) = sim.world().await;
    let tokens = sim.token(&client, ALL).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(sim.get("/api/v1/bank-accounts", access).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, body) = sim.get("/api/v1/bank-accounts", access).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, renewed) = sim
        .exchange(&client, &[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(status, StatusCode::OK);
    // SePay may omit refresh_token on refresh: the client keeps the old one, which still works
    assert!(renewed.get("refresh_token").is_none());
    let fresh = renewed["access_token"].as_str().unwrap();
    assert_eq!(sim.get("/api/v1/bank-accounts", fresh).await.0, StatusCode::OK);
    assert_eq!(
        sim.exchange(&client, &[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .await
            .0,
        StatusCode::OK
    );
    // revocation (RFC 7009) ends both
    sim.http
        .post(format!("{}/oauth/revoke", sim.url))
        .form(&[("token", fresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        sim.get("/api/v1/bank-accounts", fresh).await.0,
        StatusCode::UNAUTHORIZED
    );
    sim.control("/sim/tokens/revoke", json!({"token": refresh})).await;
    assert_eq!(
        sim.exchange(&client, &[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .await
            .1["error"],
        "invalid_grant"
    );
    assert_eq!(
        sim.get("/api/v1/bank-accounts", "not-a-token").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn every_api_endpoint_enforces_its_scope() {
    let sim = start(fast()).await;
    let (_, account, client) = sim.world().await;
    let read_only = sim.token(&client, "bank-account:read").await;
    let token = read_only["access_token"].as_str().unwrap();
    let cases = [
        (reqwest::Method::GET, "/api/v1/bank-accounts".to_owned(), StatusCode::OK),
        (
            reqwest::Method::GET,
            format!("/api/v1/bank-accounts/{account}"),
            StatusCode::OK,
        ),
        (
            reqwest::Method::GET,
            "/api/v1/webhooks".to_owned(),
            StatusCode::FORBIDDEN,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/webhooks".to_owned(),
            StatusCode::FORBIDDEN,
        ),
        (
            reqwest::Method::PATCH,
            "/api/v1/webhooks/1".to_owned(),
            StatusCode::FORBIDDEN,
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/webhooks/1".to_owned(),
            StatusCode::FORBIDDEN,
        ),
        (
            reqwest::Method::GET,
            "/api/v1/transactions".to_owned(),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (method, path, want) in cases {
        let (status, body) = sim.send(method.clone(), &path, token, json!({})).await;
        assert_eq!(status, want, "{method} {path}");
        if want == StatusCode::FORBIDDEN {
            assert_eq!(body["error"], "forbidden");
        }
    }
}

#[tokio::test]
async fn bank_accounts_have_the_documented_shapes_and_pages() {
    let sim = start(fast()).await;
    let (company, first, client) = sim.world().await;
    for n in 0..4 {
        sim.control(
            "/sim/bank-accounts",
            json!({"company_id": company["id"], "bank_short_name": "MBBank", "account_number": format!("99{n}")}),
        )
        .await;
    }
    let stranger = sim.control("/sim/companies", json!({"name": "Other"})).await;
    let foreign = sim
        .control("/sim/bank-accounts", json!({"company_id": stranger["id"]}))
        .await;
    let token = sim.token(&client, ALL).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, _, all) = sim.get("/api/v1/bank-accounts?page=1&limit=100", &token).await;
    assert_eq!(all["status"], "success");
    let rows = all["data"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "only the company's own accounts");
    let row = &rows[0];
    for field in [
        "id",
        "label",
        "account_holder_name",
        "account_number",
        "accumulated",
        "active",
        "created_at",
        "bank",
    ] {
        assert!(row.get(field).is_some(), "{field}");
    }
    assert!(row["id"].is_i64() && row["active"].is_boolean());
    assert_eq!(row["bank"]["short_name"], "Vietcombank");
    assert_eq!(row["bank"]["bin"], "970436");
    let page2 = sim.get("/api/v1/bank-accounts?page=2&limit=2", &token).await.2;
    let ids: Vec<i64> = page2["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [first + 2, first + 3]);
    let past_end = sim.get("/api/v1/bank-accounts?page=9&limit=2", &token).await.2;
    assert_eq!(past_end["data"], json!([]));
    assert_eq!(
        sim.get("/api/v1/bank-accounts?page=0", &token).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        sim.get(&format!("/api/v1/bank-accounts/{first}"), &token).await.2["data"]["account_number"],
        "0071000888888"
    );
    let (status, _, body) = sim
        .get(&format!("/api/v1/bank-accounts/{}", foreign["id"]), &token)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let subs = sim
        .get(&format!("/api/v1/bank-accounts/{first}/sub-accounts"), &token)
        .await
        .2;
    assert_eq!(subs["data"][0]["account_number"], "VA1");
}

fn valid_webhook(account: i64) -> Value {
    json!({
        "bank_account_id": account, "name": "finance", "event_type": "All", "authen_type": "Api_Key",
        "webhook_url": "http://127.0.0.1:9/hook", "is_verify_payment": 0, "api_key": "spak_x", "request_content_type": "Json"
    })
}

#[tokio::test]
async fn webhooks_are_validated_created_listed_patched_and_deleted() {
    let sim = start(fast()).await;
    let (_, account, client) = sim.world().await;
    let token = sim.token(&client, ALL).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let post = |body: Value| sim.send(reqwest::Method::POST, "/api/v1/webhooks", &token, body);
    let invalid: Vec<(Value, &[&str])> = vec![
        (
            json!({}),
            &[
                "authen_type",
                "bank_account_id",
                "event_type",
                "is_verify_payment",
                "name",
                "webhook_url",
            ],
        ),
        (
            {
                let mut w = valid_webhook(account);
                w["event_type"] = json!("Sometimes");
                w
            },
            &["event_type"],
        ),
        (
            {
                let mut w = valid_webhook(account);
                w["authen_type"] = json!("Magic");
                w
            },
            &["authen_type"],
        ),
        (
            {
                let mut w = valid_webhook(account);
                w["webhook_url"] = json!("not a url");
                w
            },
            &["webhook_url"],
        ),
        (
            {
                let mut w = valid_webhook(account);
                w["bank_account_id"] = json!(999);
                w
            },
            &["bank_account_id"],
        ),
        (
            {
                let mut w = valid_webhook(account);
                w.as_object_mut().unwrap().remove("api_key");
                w
            },
            &["api_key"],
        ),
        (
            {
                let mut w = valid_webhook(account);
                w.as_object_mut().unwrap().remove("request_content_type");
                w
            },
            &["request_content_type"],
        ),
        (
            {
                let mut w = valid_webhook(account);
                w["is_verify_payment"] = json!(5);
                w
            },
            &["is_verify_payment"],
        ),
        (
            {
                let mut w = valid_webhook(account);
                w["only_va"] = json!(1);
                w
            },
            &["bank_sub_account_ids"],
        ),
        (
            {
                let mut w = valid_webhook(account);
                w["authen_type"] = json!("OAuth2.0");
                w
            },
            &["oauth2_access_token_url", "oauth2_client_id", "oauth2_client_secret"],
        ),
    ];
    for (body, fields) in invalid {
        let (status, answer) = post(body.clone()).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("validation_error")),
            "{body}"
        );
        let got: Vec<&str> = answer["errors"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(got, fields, "{body}");
    }
    let (status, created) = post(valid_webhook(account)).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["data"]["id"], id);
    assert_eq!(created["data"]["active"], 1);
    let mut second = valid_webhook(account);
    second["webhook_url"] = json!("http://example.test/other");
    second["api_key"] = json!("spak_y");
    post(second).await;
    let list = |q: &'static str| sim.get(q, &token);
    assert_eq!(list("/api/v1/webhooks").await.2["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        list("/api/v1/webhooks?webhook_url=127.0.0.1").await.2["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        list("/api/v1/webhooks?api_key=spak_y").await.2["data"][0]["webhook_url"],
        "http://example.test/other"
    );
    assert_eq!(list("/api/v1/webhooks?active=0").await.2["data"], json!([]));
    assert_eq!(
        list("/api/v1/webhooks?limit=1&page=2").await.2["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (status, patched) = sim
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            &token,
            json!({"webhook_url": "http://127.0.0.1:9/new", "active": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            patched["data"]["webhook_url"].as_str(),
            patched["data"]["active"].as_i64()
        ),
        (Some("http://127.0.0.1:9/new"), Some(0))
    );
    assert_eq!(patched["data"]["api_key"], "spak_x", "unpatched fields stay");
    let (status, bad) = sim
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            &token,
            json!({"event_type": "Never"}),
        )
        .await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("validation_error"))
    );
    assert_eq!(
        sim.get(&format!("/api/v1/webhooks/{id}"), &token).await.2["data"]["event_type"],
        "All"
    );
    assert_eq!(
        sim.send(
            reqwest::Method::DELETE,
            &format!("/api/v1/webhooks/{id}"),
            &token,
            json!({})
        )
        .await
        .0,
        StatusCode::OK
    );
    let (status, _, body) = sim.get(&format!("/api/v1/webhooks/{id}"), &token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn the_legacy_userapi_speaks_strings_and_filters() {
    let sim = start(fast()).await;
    let (company, account, _) = sim.world().await;
    let api = company["api_token"].as_str().unwrap();
    let mut ids = Vec::new();
    for (n, (kind, amount, date)) in [
        ("in", 1000, "2026-03-01 08:00:00"),
        ("out", 250, "2026-03-01 12:00:00"),
        ("in", 5000, "2026-03-02 09:30:00"),
    ]
    .iter()
    .enumerate()
    {
        let tx = sim
            .control("/sim/transactions", json!({"bank_account_id": account, "transfer_type": kind, "amount": amount, "transaction_date": date, "reference_number": format!("REF{n}")}))
            .await;
        ids.push(tx["id"].as_i64().unwrap());
    }
    let (status, _, all) = sim.get("/userapi/transactions/list", api).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (all["status"].as_i64(), all["messages"]["success"].as_bool()),
        (Some(200), Some(true))
    );
    let rows = all["transactions"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for field in [
        "id",
        "bank_brand_name",
        "account_number",
        "transaction_date",
        "amount_out",
        "amount_in",
        "accumulated",
        "transaction_content",
        "reference_number",
        "bank_account_id",
    ] {
        assert!(rows.iter().all(|r| r[field].is_string()), "{field} is a string");
    }
    assert_eq!(rows[0]["id"], ids[2].to_string(), "newest first");
    assert_eq!(rows[0]["accumulated"], "5750.00");
    let sim_ref = &sim;
    let count = |q: String| async move {
        sim_ref.get(&format!("/userapi/transactions/list?{q}"), api).await.2["transactions"]
            .as_array()
            .map(Vec::len)
    };
    assert_eq!(
        count(format!("since_id={}", ids[1])).await,
        Some(2),
        "since_id is inclusive"
    );
    assert_eq!(count("limit=1".into()).await, Some(1));
    assert_eq!(
        count("transaction_date_min=2026-03-01%2010:00:00&transaction_date_max=2026-03-01%2023:59:59".into()).await,
        Some(1)
    );
    assert_eq!(count("reference_number=REF0".into()).await, Some(1));
    assert_eq!(count("amount_in=5000".into()).await, Some(1));
    assert_eq!(count("account_number=000".into()).await, Some(0));
    assert_eq!(
        sim.get("/userapi/transactions/list?limit=abc", api).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        sim.get("/userapi/transactions/count", api).await.2["count_transactions"],
        3
    );
    assert_eq!(
        sim.get(&format!("/userapi/transactions/details/{}", ids[1]), api)
            .await
            .2["transaction"]["amount_out"],
        "250.00"
    );
    let accounts = sim.get("/userapi/bankaccounts/list", api).await.2;
    let acc = &accounts["bankaccounts"][0];
    assert!(acc.as_object().unwrap().values().all(|v| v.is_string()), "{acc}");
    assert_eq!(
        (acc["active"].as_str(), acc["bank_bin"].as_str()),
        (Some("1"), Some("970436"))
    );
    assert_eq!(
        sim.get("/userapi/bankaccounts/count", api).await.2["count_bankaccounts"],
        1
    );
    assert_eq!(
        sim.get(&format!("/userapi/bankaccounts/details/{account}"), api)
            .await
            .2["bankaccount"]["id"],
        account.to_string()
    );
    let (status, _, denied) = sim.get("/userapi/transactions/list", "wrong").await;
    assert_eq!(
        (status, denied["messages"]["success"].as_bool()),
        (StatusCode::UNAUTHORIZED, Some(false))
    );
}

#[tokio::test]
async fn more_than_three_requests_a_second_get_429_with_the_retry_header() {
    for (style, header) in [
        (sepay_sim::RetryAfterStyle::V1, "x-sepay-userapi-retry-after"),
        (sepay_sim::RetryAfterStyle::V2, "retry-after"),
    ] {
        let sim = start(SimConfig {
            sim_rate_limit_per_sec: 3,
            sim_retry_after_style: style,
            ..fast()
        })
        .await;
        let (company, _, _) = sim.world().await;
        let api = company["api_token"].as_str().unwrap();
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let (status, headers, _) = sim.get("/userapi/bankaccounts/count", api).await;
            statuses.push(status.as_u16());
            if status == StatusCode::TOO_MANY_REQUESTS {
                assert_eq!(headers[header], "1");
            }
        }
        assert_eq!(statuses, [200, 200, 200, 429]);
        tokio::time::sleep(Duration::from_millis(1050)).await;
        assert_eq!(sim.get("/userapi/bankaccounts/count", api).await.0, StatusCode::OK);
    }
}

/// A webhook receiver that fails the first `fail_first` requests.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<(Instant, Option<String>, Value)>>>,
}

async fn receiver(fail_first: usize) -> Receiver {
    let seen: Arc<Mutex<Vec<(Instant, Option<String>, Value)>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let log = log.clone();
            async move {
                let mut log = log.lock().unwrap();
                let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned());
                log.push((Instant::now(), auth, body.0));
                if log.len() <= fail_first {
                    (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        axum::Json(json!({"success": false})),
                    )
                } else {
                    (axum::http::StatusCode::OK, axum::Json(json!({"success": true})))
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, seen }
}

async fn hook_for(sim: &Sim, company: &Value, account: i64, url: &str, extra: Value) -> i64 {
    let mut body = valid_webhook(account);
    body["company_id"] = company["id"].clone();
    body["webhook_url"] = json!(url);
    body["api_key"] = json!("spak_test_key");
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    sim.control("/sim/webhooks", body).await["id"].as_i64().unwrap()
}

async fn wait_deliveries(sim: &Sim, tx: i64, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = sim.deliveries(tx).await;
        if log.len() >= n || Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn failed_deliveries_are_retried_on_sepays_schedule() {
    // time scale 0.002: one minute of SePay's schedule is 120 ms here
    let sim = start(SimConfig {
        sim_time_scale: 0.002,
        ..fast()
    })
    .await;
    let (company, account, _) = sim.world().await;
    let rx = receiver(3).await;
    hook_for(&sim, &company, account, &rx.url, json!({})).await;
    let tx = sim
        .control(
            "/sim/transactions",
            json!({"bank_account_id": account, "transfer_type": "in", "amount": 2277000, "code": "DH1"}),
        )
        .await;
    let log = wait_deliveries(&sim, tx["id"].as_i64().unwrap(), 4).await;
    let summary: Vec<(i64, Option<i64>, bool)> = log
        .iter()
        .map(|d| {
            (
                d["attempt"].as_i64().unwrap(),
                d["status"].as_i64(),
                d["success"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, Some(500), false),
            (2, Some(500), false),
            (3, Some(500), false),
            (4, Some(200), true)
        ]
    );
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    // gaps follow 1, 1, 2 minutes (scaled), never shorter
    let gaps: Vec<u128> = seen
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0).as_millis())
        .collect();
    for (gap, minutes) in gaps.iter().zip([1u128, 1, 2]) {
        assert!(*gap >= minutes * 120 - 5, "gaps {gaps:?}");
    }
    let (_, auth, body) = &seen[0];
    assert_eq!(auth.as_deref(), Some("Apikey spak_test_key"));
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "accountNumber",
            "accumulated",
            "code",
            "content",
            "description",
            "gateway",
            "id",
            "referenceCode",
            "subAccount",
            "transactionDate",
            "transferAmount",
            "transferType"
        ]
    );
    assert_eq!(
        (
            body["transferType"].as_str(),
            body["transferAmount"].as_i64(),
            body["code"].as_str()
        ),
        (Some("in"), Some(2277000), Some("DH1"))
    );
}

#[tokio::test]
async fn a_receiver_that_never_answers_2xx_gets_eight_attempts() {
    let sim = start(SimConfig {
        sim_time_scale: 0.0005,
        ..fast()
    })
    .await;
    let (company, account, _) = sim.world().await;
    let rx = receiver(usize::MAX).await;
    hook_for(&sim, &company, account, &rx.url, json!({})).await;
    let tx = sim
        .control(
            "/sim/transactions",
            json!({"bank_account_id": account, "transfer_type": "out", "amount": 10}),
        )
        .await;
    let log = wait_deliveries(&sim, tx["id"].as_i64().unwrap(), 8).await;
    assert_eq!(log.len(), 8);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.seen.lock().unwrap().len(), 8, "no ninth attempt");
}

#[tokio::test]
async fn only_matching_webhooks_get_a_transaction() {
    let sim = start(fast()).await;
    let (company, account, _) = sim.world().await;
    let (incoming, outgoing, coded) = (receiver(0).await, receiver(0).await, receiver(0).await);
    hook_for(&sim, &company, account, &incoming.url, json!({"event_type": "In_only"})).await;
    hook_for(
        &sim,
        &company,
        account,
        &outgoing.url,
        json!({"event_type": "Out_only"}),
    )
    .await;
    hook_for(&sim, &company, account, &coded.url, json!({"skip_if_no_code": 1})).await;
    let tx = sim
        .control(
            "/sim/transactions",
            json!({"bank_account_id": account, "transfer_type": "in", "amount": 10}),
        )
        .await;
    wait_deliveries(&sim, tx["id"].as_i64().unwrap(), 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let counts = [&incoming, &outgoing, &coded].map(|r| r.seen.lock().unwrap().len());
    assert_eq!(counts, [1, 0, 0]);
}

#[tokio::test]
async fn faults_can_be_injected() {
    let sim = start(fast()).await;
    let (company, account, client) = sim.world().await;
    let token = sim.token(&client, ALL).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.control(
        "/sim/faults",
        json!({"api_429": 1, "api_5xx": 1, "fail_webhook_creation": 1}),
    )
    .await;
    let (status, headers, _) = sim.get("/api/v1/bank-accounts", &token).await;
    assert_eq!(
        (status, headers["x-sepay-userapi-retry-after"].to_str().unwrap()),
        (StatusCode::TOO_MANY_REQUESTS, "1")
    );
    assert_eq!(
        sim.get("/api/v1/bank-accounts", &token).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(sim.get("/api/v1/bank-accounts", &token).await.0, StatusCode::OK);
    assert_eq!(
        sim.send(
            reqwest::Method::POST,
            "/api/v1/webhooks",
            &token,
            valid_webhook(account)
        )
        .await
        .0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        sim.send(
            reqwest::Method::POST,
            "/api/v1/webhooks",
            &token,
            valid_webhook(account)
        )
        .await
        .0,
        StatusCode::CREATED
    );

    let rx = receiver(0).await;
    // the API-created webhook above points nowhere useful; deliveries here go to rx
    sim.send(
        reqwest::Method::PATCH,
        "/api/v1/webhooks/1",
        &token,
        json!({"active": 0}),
    )
    .await;
    hook_for(&sim, &company, account, &rx.url, json!({})).await;
    sim.control("/sim/faults", json!({"drop_deliveries": 1, "duplicate_deliveries": 1}))
        .await;
    let dropped = sim
        .control(
            "/sim/transactions",
            json!({"bank_account_id": account, "transfer_type": "in", "amount": 1}),
        )
        .await;
    let doubled = sim
        .control(
            "/sim/transactions",
            json!({"bank_account_id": account, "transfer_type": "in", "amount": 2}),
        )
        .await;
    wait_deliveries(&sim, doubled["id"].as_i64().unwrap(), 2).await;
    let log = wait_deliveries(&sim, dropped["id"].as_i64().unwrap(), 1).await;
    assert_eq!(log[0]["error"], "dropped by fault injection");
    let bodies: Vec<i64> = rx
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, b)| b["id"].as_i64().unwrap())
        .collect();
    assert_eq!(bodies, [doubled["id"].as_i64().unwrap(); 2]);

    sim.control("/sim/faults", json!({"delay_deliveries_ms": 400})).await;
    let started = Instant::now();
    let late = sim
        .control(
            "/sim/transactions",
            json!({"bank_account_id": account, "transfer_type": "in", "amount": 3}),
        )
        .await;
    wait_deliveries(&sim, late["id"].as_i64().unwrap(), 1).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    let faults = sim.client().get("/sim/faults").await.unwrap();
    assert_eq!(
        (faults["api_429"].as_i64(), faults["drop_deliveries"].as_i64()),
        (Some(0), Some(0))
    );
    // armed faults can be disarmed: nothing left, the next delivery on time
    sim.control("/sim/faults", json!({"drop_deliveries": 3, "api_5xx": 2}))
        .await;
    let disarmed = sim.client().delete("/sim/faults").await.unwrap();
    assert_eq!(
        (
            disarmed["drop_deliveries"].as_i64(),
            disarmed["api_5xx"].as_i64(),
            disarmed["delay_deliveries_ms"].as_i64()
        ),
        (Some(0), Some(0), None)
    );
    // a transfer with only its account takes the burst's defaults (in, the default amount)
    let plain = sim
        .control("/sim/transactions", json!({"bank_account_id": account}))
        .await;
    wait_deliveries(&sim, plain["id"].as_i64().unwrap(), 1).await;
    assert!(plain["amount_in"].as_str().is_some_and(|a| a != "0"), "{plain}");
}

#[tokio::test]
async fn a_fixture_seeds_the_world_with_deterministic_ids() {
    let path = std::env::temp_dir().join(format!("sim-fixture-{}.json", std::process::id()));
    std::fs::write(
        &path,
        json!({
            "companies": [{"id": 7, "name": "Fixture Co", "api_token": "spat_fixture"}],
            "bank_accounts": [{"id": 19, "company_id": 7, "account_number": "0071000888888", "label": "Cty Demo"}],
            "oauth_clients": [{"company_id": 7, "client_id": "finance", "client_secret": "s3cret", "redirect_uris": ["http://app.test/callback"]}]
        })
        .to_string(),
    )
    .unwrap();
    let sim = start(SimConfig {
        sim_fixture: Some(path.clone()),
        ..fast()
    })
    .await;
    let accounts = sim.get("/userapi/bankaccounts/list", "spat_fixture").await.2;
    assert_eq!(accounts["bankaccounts"][0]["id"], "19");
    let next = sim.control("/sim/bank-accounts", json!({"company_id": 7})).await;
    assert_eq!(next["id"], 20);
    let first_tx = sim
        .control(
            "/sim/transactions",
            json!({"bank_account_id": 19, "transfer_type": "in", "amount": 5}),
        )
        .await;
    assert_eq!(first_tx["id"], 10001);
    let client = json!({"client_id": "finance", "client_secret": "s3cret"});
    assert!(sim.token(&client, "bank-account:read").await["access_token"].is_string());
    std::fs::remove_file(path).ok();
}

impl Sim {
    async fn state(&self) -> Value {
        self.client().get("/sim/state").await.unwrap()
    }

    /// A control call expected to fail: its status and body.
    async fn control_err(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    /// The delivery log of `tx` as it is now.
    async fn deliveries(&self, tx: i64) -> Vec<Value> {
        let log = self
            .client()
            .get(&format!("/sim/deliveries?transaction_id={tx}"))
            .await
            .unwrap();
        serde_json::from_value(log).unwrap()
    }

    async fn refresh(&self, client: &Value, refresh: &str) -> (StatusCode, Value) {
        self.exchange(client, &[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .await
    }

    async fn tx(&self, account: i64, amount: i64) -> i64 {
        self.control(
            "/sim/transactions",
            json!({"bank_account_id": account, "transfer_type": "in", "amount": amount}),
        )
        .await["id"]
            .as_i64()
            .unwrap()
    }
}

#[tokio::test]
async fn a_webhook_deleted_in_the_dashboard_is_gone_and_no_longer_delivers() {
    // one minute of SePay's schedule is 600 ms here: room to delete between two attempts
    let sim = start(SimConfig {
        sim_time_scale: 0.01,
        ..fast()
    })
    .await;
    let (company, account, client) = sim.world().await;
    let token = sim.token(&client, ALL).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let rx = receiver(1).await;
    let hook = hook_for(&sim, &company, account, &rx.url, json!({})).await;
    let (status, listed) = sim
        .send(reqwest::Method::GET, "/api/v1/webhooks", &token, Value::Null)
        .await;
    assert_eq!((status, listed["data"].as_array().unwrap().len()), (StatusCode::OK, 1));

    // the first attempt fails; SePay would retry a minute later
    let pending = sim.tx(account, 10).await;
    assert_eq!(wait_deliveries(&sim, pending, 1).await[0]["status"], 500);
    let deleted = sim.control(&format!("/sim/webhooks/{hook}/delete"), json!({})).await;
    assert_eq!(deleted, json!({"deleted": true, "id": hook}));

    let (status, _, listed) = sim.get("/api/v1/webhooks", &token).await;
    assert_eq!((status, listed["data"].clone()), (StatusCode::OK, json!([])));
    let (status, _, body) = sim.get(&format!("/api/v1/webhooks/{hook}"), &token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // no retry of the pending delivery, nothing for a new transaction
    let fresh = sim.tx(account, 20).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        rx.seen.lock().unwrap().len(),
        1,
        "only the attempt made before the deletion"
    );
    assert_eq!(sim.deliveries(pending).await.len(), 1);
    assert!(sim.deliveries(fresh).await.is_empty());

    let state = sim.state().await;
    assert_eq!(state["webhooks"], json!([]));
    let gone = &state["deleted_webhooks"][0];
    assert_eq!(
        (gone["id"].as_i64(), gone["by"].as_str(), gone["webhook_url"].as_str()),
        (Some(hook), Some("dashboard"), Some(rx.url.as_str()))
    );
    assert_eq!(
        sim.control_err(&format!("/sim/webhooks/{hook}/delete"), json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // a deletion through the API is recorded with its client
    let (_, created) = sim
        .send(
            reqwest::Method::POST,
            "/api/v1/webhooks",
            &token,
            valid_webhook(account),
        )
        .await;
    let api_hook = created["id"].as_i64().unwrap();
    let (status, _) = sim
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/webhooks/{api_hook}"),
            &token,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let by = sim.state().await["deleted_webhooks"][1]["by"].clone();
    assert_eq!(by, json!(format!("api:{}", client["client_id"].as_str().unwrap())));
}

#[tokio::test]
async fn a_webhook_disabled_in_the_dashboard_is_listed_inactive_and_does_not_deliver() {
    let sim = start(SimConfig {
        sim_time_scale: 0.01,
        ..fast()
    })
    .await;
    let (company, account, client) = sim.world().await;
    let token = sim.token(&client, ALL).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let rx = receiver(1).await;
    let hook = hook_for(&sim, &company, account, &rx.url, json!({})).await;
    let pending = sim.tx(account, 10).await;
    assert_eq!(wait_deliveries(&sim, pending, 1).await[0]["status"], 500);

    let disabled = sim.control(&format!("/sim/webhooks/{hook}/disable"), json!({})).await;
    assert_eq!(
        (disabled["id"].as_i64(), disabled["active"].as_i64()),
        (Some(hook), Some(0))
    );
    // listed, inactive, in the documented shape (the `active` filter takes 0|1)
    let (_, _, listed) = sim.get("/api/v1/webhooks", &token).await;
    assert_eq!(listed["data"][0]["id"].as_i64(), Some(hook));
    assert_eq!(listed["data"][0]["active"], 0);
    assert_eq!(sim.get("/api/v1/webhooks?active=1", &token).await.2["data"], json!([]));
    assert_eq!(
        sim.get("/api/v1/webhooks?active=0", &token).await.2["data"][0]["id"].as_i64(),
        Some(hook)
    );
    assert_eq!(
        sim.get(&format!("/api/v1/webhooks/{hook}"), &token).await.2["data"]["active"],
        0
    );
    assert_eq!(sim.state().await["webhooks"][0]["active"], 0);

    let ignored = sim.tx(account, 20).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        rx.seen.lock().unwrap().len(),
        1,
        "no retry and no new delivery while disabled"
    );
    assert_eq!(sim.deliveries(pending).await.len(), 1);
    assert!(sim.deliveries(ignored).await.is_empty());

    // enabled again (in the dashboard or by PATCH active 1): new transactions are delivered
    let enabled = sim.control(&format!("/sim/webhooks/{hook}/enable"), json!({})).await;
    assert_eq!(enabled["active"], 1);
    let delivered = sim.tx(account, 30).await;
    let log = wait_deliveries(&sim, delivered, 1).await;
    assert_eq!((log.len(), log[0]["success"].as_bool()), (1, Some(true)));
    assert_eq!(
        sim.control_err("/sim/webhooks/999/disable", json!({})).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_dashboard_edit_changes_what_is_delivered() {
    let sim = start(fast()).await;
    let (company, account, _) = sim.world().await;
    let (old, new) = (receiver(0).await, receiver(0).await);
    let hook = hook_for(&sim, &company, account, &old.url, json!({})).await;
    let res = sim
        .http
        .patch(format!("{}/sim/webhooks/{hook}", sim.url))
        .json(&json!({"webhook_url": new.url, "event_type": "Out_only", "api_key": "spak_other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let edited: Value = res.json().await.unwrap();
    assert_eq!(
        (edited["webhook_url"].as_str(), edited["event_type"].as_str()),
        (Some(new.url.as_str()), Some("Out_only"))
    );
    let res = sim
        .http
        .patch(format!("{}/sim/webhooks/{hook}", sim.url))
        .json(&json!({"event_type": "Sideways"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let incoming = sim.tx(account, 10).await;
    let outgoing = sim
        .control(
            "/sim/transactions",
            json!({"bank_account_id": account, "transfer_type": "out", "amount": 5}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    wait_deliveries(&sim, outgoing, 1).await;
    assert!(sim.deliveries(incoming).await.is_empty());
    assert_eq!(old.seen.lock().unwrap().len(), 0);
    let seen = new.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1.as_deref(), Some("Apikey spak_other"));
}

#[tokio::test]
async fn a_revoked_grant_refreshes_to_invalid_grant_and_its_tokens_get_401() {
    let sim = start(fast()).await;
    let (company, account, client) = sim.world().await;
    let other = sim
        .control(
            "/sim/oauth-clients",
            json!({"company_id": company["id"], "redirect_uris": ["http://app.test/callback"]}),
        )
        .await;
    let tokens = sim.token(&client, ALL).await;
    let (access, refresh) = (
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    );
    let other_access = sim.token(&other, ALL).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, created) = sim
        .send(
            reqwest::Method::POST,
            "/api/v1/webhooks",
            &access,
            valid_webhook(account),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let api_hook = created["id"].as_i64().unwrap();
    let dashboard_hook = hook_for(&sim, &company, account, "http://127.0.0.1:9/hook", json!({})).await;

    let client_id = client["client_id"].as_str().unwrap();
    let revoked = sim.control("/sim/grants/revoke", json!({"client_id": client_id})).await;
    assert_eq!(
        revoked,
        json!({"revoked_access_tokens": 1, "revoked_refresh_tokens": 1, "deleted_webhooks": []})
    );
    // API calls: 401 in SePay's error shape
    let (status, _, body) = sim.get("/api/v1/bank-accounts", &access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (body["status"].as_str(), body["error"].as_str()),
        (Some("error"), Some("unauthorized"))
    );
    // refresh: the standard OAuth 2.0 invalid_grant
    let (status, body) = sim.refresh(&client, &refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert!(body["error_description"].is_string());
    // another client of the same company is untouched, and the webhooks are kept by default
    let (status, _, listed) = sim.get("/api/v1/webhooks", &other_access).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<i64> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [api_hook, dashboard_hook]);
    let grants = sim.state().await["grants"].clone();
    let mine = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["client_id"] == client_id)
        .unwrap();
    assert_eq!(
        (
            mine["live_access_tokens"].as_i64(),
            mine["live_refresh_tokens"].as_i64(),
            mine["revoked_access_tokens"].as_i64(),
            mine["revoked_refresh_tokens"].as_i64()
        ),
        (Some(0), Some(0), Some(1), Some(1))
    );

    // reconnecting (a new consent) works; a company-wide revocation that also deletes the
    // revoked clients' webhooks takes every client's tokens and the API-made webhook
    let again = sim.token(&client, ALL).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sim.get("/api/v1/bank-accounts", &again).await.0, StatusCode::OK);
    let revoked = sim
        .control(
            "/sim/grants/revoke",
            json!({"company_id": company["id"], "delete_webhooks": true}),
        )
        .await;
    assert_eq!(revoked["deleted_webhooks"], json!([api_hook]));
    assert_eq!(revoked["revoked_access_tokens"], 2);
    for token in [&again, &other_access] {
        assert_eq!(sim.get("/api/v1/webhooks", token).await.0, StatusCode::UNAUTHORIZED);
    }
    let state = sim.state().await;
    assert_eq!(state["webhooks"][0]["id"].as_i64(), Some(dashboard_hook));
    assert_eq!(state["webhooks"].as_array().unwrap().len(), 1);
    assert_eq!(
        state["deleted_webhooks"][0]["by"],
        json!(format!("grant_revoked:{client_id}"))
    );

    assert_eq!(
        sim.control_err("/sim/grants/revoke", json!({})).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        sim.control_err("/sim/grants/revoke", json!({"client_id": "nobody"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_token_endpoint_fails_the_next_n_calls_before_touching_the_refresh_token() {
    // rotation on: a refresh that got through would have spent the presented refresh token
    let sim = start(SimConfig {
        sim_rotate_refresh_tokens: true,
        ..fast()
    })
    .await;
    let (_, _, client) = sim.world().await;
    let refresh = sim.token(&client, ALL).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let armed = sim
        .control("/sim/faults", json!({"token_failures": {"count": 2, "kind": "5xx"}}))
        .await;
    assert_eq!(
        armed["token_failures"],
        json!({"count": 2, "kind": "5xx", "until": null})
    );
    assert_eq!(sim.state().await["faults"]["token_failures"]["count"], 2);
    for left in [1, 0] {
        let (status, body) = sim.refresh(&client, &refresh).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("temporarily_unavailable"))
        );
        let faults = sim.state().await["faults"]["token_failures"].clone();
        assert_eq!(faults["count"].as_i64().unwrap_or(0), left, "{faults}");
    }
    assert_eq!(sim.state().await["faults"]["token_failures"], Value::Null, "spent");
    // the refresh token survived both failures
    let (status, renewed) = sim.refresh(&client, &refresh).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let rotated = renewed["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, refresh);
    assert_eq!(sim.refresh(&client, &refresh).await.1["error"], "invalid_grant");

    // an authorization code is not spent by a failed exchange either
    sim.control("/sim/faults", json!({"token_failures": {"count": 1}}))
        .await;
    let code = query(&sim.code(&client, ALL).await, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://app.test/callback"),
    ];
    assert_eq!(sim.exchange(&client, &form).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(sim.exchange(&client, &form).await.0, StatusCode::OK);

    assert_eq!(
        sim.control_err("/sim/faults", json!({"token_failures": {"count": 1, "kind": "slow"}}))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_token_endpoint_timeout_hangs_past_the_client_timeout_and_applies_nothing() {
    let sim = start(SimConfig {
        sim_rotate_refresh_tokens: true,
        ..fast()
    })
    .await;
    let (_, _, client) = sim.world().await;
    let refresh = sim.token(&client, ALL).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.control(
        "/sim/faults",
        json!({"token_failures": {"count": 1, "kind": "timeout"}}),
    )
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = impatient
        .post(format!("{}/oauth/token", sim.url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", client["client_id"].as_str().unwrap()),
            ("client_secret", client["client_secret"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(sim.state().await["faults"]["token_failures"], Value::Null);
    // the hung refresh was never processed: the refresh token still works (once, rotating)
    let (status, renewed) = sim.refresh(&client, &refresh).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert!(renewed["refresh_token"].is_string());
}

#[tokio::test]
async fn a_token_outage_for_some_seconds_fails_every_call_until_it_ends() {
    let sim = start(fast()).await;
    let (_, _, client) = sim.world().await;
    let refresh = sim.token(&client, ALL).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let armed = sim
        .control("/sim/faults", json!({"token_failures": {"seconds": 1, "kind": "5xx"}}))
        .await;
    assert!(armed["token_failures"]["until"].is_string(), "{armed}");
    for _ in 0..3 {
        assert_eq!(sim.refresh(&client, &refresh).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(sim.refresh(&client, &refresh).await.0, StatusCode::OK);
    assert_eq!(sim.state().await["faults"]["token_failures"], Value::Null);
    // a count and seconds of 0 end an outage at once
    sim.control("/sim/faults", json!({"token_failures": {"seconds": 600}}))
        .await;
    assert_eq!(sim.refresh(&client, &refresh).await.0, StatusCode::SERVICE_UNAVAILABLE);
    sim.control("/sim/faults", json!({"token_failures": {"count": 0}}))
        .await;
    assert_eq!(sim.refresh(&client, &refresh).await.0, StatusCode::OK);
}
