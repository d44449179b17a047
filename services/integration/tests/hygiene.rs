//! Log and trace hygiene: every service runs in this process against the real Postgres and NATS
//! and sepay-sim, under a subscriber that captures every event at every level (JSON lines with
//! their spans), every span attribute as it is set, every exported OpenTelemetry span and the
//! metrics exposition. A whole run — login, OAuth connect, provisioning, deliveries, rotation, a
//! manual endpoint, refreshes, reconciliation, disconnect, and the ways they fail — must leave no
//! secret of the run in any of it: not raw, not hex, not base64 (standard or URL-safe, padded or
//! not, at any byte alignment), not percent-encoded.
//!
//! Tokens do travel in the HTTP paths the simulator (SePay) sends to; our services must not write
//! them down.

use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use sepay_api::SepayConfig;
use sepay_crypto::seal::Keyring;
use sepay_sim::{Sim, SimConfig};
use sepay_telemetry::tracing_subscriber::{self, EnvFilter, Layer, fmt::MakeWriter, layer::SubscriberExt};
use sepay_testkit::{TestDb, delivery, eventually, test_bus};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// capture

/// The JSON log lines, written whole (one `write` per event).
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Sink;

    fn make_writer(&'a self) -> Sink {
        self.clone()
    }
}

/// Every span's fields when it opens and whenever one is recorded later, and every event's
/// fields (errors with their whole source chain): what log lines may not show.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        let _ = write!(self.0, " {}={}", field.name(), String::from_utf8_lossy(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let _ = write!(self.0, " {}={value} / {value:?}", field.name());
        let mut source = value.source();
        while let Some(s) = source {
            let _ = write!(self.0, " / {s} / {s:?}");
            source = s.source();
        }
    }
}

impl<S: tracing::Subscriber + for<'l> tracing_subscriber::registry::LookupSpan<'l>> Layer<S> for Recorder {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = attrs.metadata();
        let mut text = format!("new span {} {}:", meta.target(), meta.name());
        attrs.record(&mut Fields(&mut text));
        self.0.lock().unwrap().push(text);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let name = ctx.span(id).map(|s| s.name()).unwrap_or("?");
        let mut text = format!("record on span {name}:");
        values.record(&mut Fields(&mut text));
        self.0.lock().unwrap().push(text);
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut text = format!("event {}:", event.metadata().target());
        event.record(&mut Fields(&mut text));
        self.0.lock().unwrap().push(text);
    }
}

struct Capture {
    logs: Sink,
    records: Recorder,
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
}

impl Capture {
    /// The process-wide subscriber (nextest runs each test in its own process). Everything at
    /// trace level, our crates and sqlx, async-nats, reqwest, oauth2, axum, tower-http alike;
    /// `log` records (reqwest) come through tracing-log.
    fn install() -> Self {
        let logs = Sink::default();
        let records = Recorder::default();
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "hygiene");
        let fmt = tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_ansi(false)
            .with_writer(logs.clone());
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new("trace"))
            .with(fmt)
            .with(records.clone())
            .with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing_subscriber::util::SubscriberInitExt::try_init(subscriber).expect("the only subscriber");
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(provider.clone());
        Self {
            logs,
            records,
            exporter,
            provider,
        }
    }

    /// (where, text) of everything captured.
    fn texts(&self) -> Vec<(&'static str, String)> {
        let _ = self.provider.force_flush();
        let logs = String::from_utf8_lossy(&self.logs.0.lock().unwrap()).into_owned();
        let mut out: Vec<(&'static str, String)> = logs.lines().map(|l| ("log line", l.to_owned())).collect();
        out.extend(
            self.records
                .0
                .lock()
                .unwrap()
                .iter()
                .map(|r| ("span/event fields", r.clone())),
        );
        out.extend(
            self.exporter
                .get_finished_spans()
                .unwrap()
                .iter()
                .map(|s| ("exported span", format!("{s:?}"))),
        );
        out.push(("metrics", sepay_telemetry::metrics::render()));
        out
    }
}

// ---------------------------------------------------------------------------------------------
// secrets and their encodings

const B64_STD: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64_encode(bytes: &[u8], alphabet: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out // unpadded
}

fn b64_decode(text: &str, alphabet: &[u8]) -> Option<Vec<u8>> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in text.trim_end_matches('=').bytes() {
        acc = acc << 6 | alphabet.iter().position(|a| *a == c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn percent(text: &str, upper: bool) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ if upper => format!("%{b:02X}"),
            _ => format!("%{b:02x}"),
        })
        .collect()
}

struct Secret {
    kind: String,
    bytes: Vec<u8>,
    /// A string (checked raw and percent-encoded too), not only bytes.
    text: bool,
}

#[derive(Default)]
struct Secrets(Vec<Secret>);

impl Secrets {
    /// A secret string, and the parts a careless log could print on their own: the random part
    /// of a generated secret (`spwh_`, `spak_`, `spr_`… + base64url of 32 bytes: as text and as
    /// the bytes it encodes) and a JWT's signature.
    fn text(&mut self, kind: &str, value: &str) {
        if self.0.iter().any(|s| s.text && s.bytes == value.as_bytes()) {
            return;
        }
        self.push(kind, value.as_bytes().to_vec(), true);
        let random = [value.split_once('_').map(|(_, r)| r), Some(value)]
            .into_iter()
            .flatten()
            .find(|r| r.len() == 43 && r.bytes().all(|b| B64_URL.contains(&b)));
        if let Some(random) = random {
            if random != value {
                self.push(&format!("{kind} (random part)"), random.as_bytes().to_vec(), true);
            }
            self.push(
                &format!("{kind} (random bytes)"),
                b64_decode(random, B64_URL).unwrap(),
                false,
            );
        }
        if let [_, _, signature] = value.split('.').collect::<Vec<_>>()[..]
            && let Some(bytes) = b64_decode(signature, B64_URL)
        {
            self.push(&format!("{kind} (JWT signature)"), signature.as_bytes().to_vec(), true);
            self.push(&format!("{kind} (JWT signature bytes)"), bytes, false);
        }
    }

    /// Secrets shorter than 8 bytes are not looked for: they would match by chance.
    fn push(&mut self, kind: &str, bytes: Vec<u8>, text: bool) {
        if bytes.len() >= 8 {
            self.0.push(Secret {
                kind: kind.to_owned(),
                bytes,
                text,
            });
        }
    }

    /// The keyring spec `kid:base64(key)[,…]`, and each key.
    fn keyring(&mut self, kind: &str, spec: &str) {
        self.text(kind, spec);
        for part in spec.split(',') {
            let (_, key) = part.split_once(':').expect("kid:key");
            self.text(&format!("{kind} (key, base64)"), key);
            let bytes = b64_decode(key, B64_STD).expect("base64");
            self.push(&format!("{kind} (key bytes)"), bytes, false);
        }
    }
}

/// Every form of `secret` to look for: raw and percent-encoded (strings), hex in both cases, and
/// base64 in both alphabets. Base64 is checked as the characters that depend on the secret alone,
/// at each of the three byte alignments it can have inside a longer encoded value: that covers
/// the secret's own encoding padded or not (its unpadded encoding, less a last partial character,
/// is what is searched) and a secret embedded in an encoded blob (a cookie, a header, a dump).
fn forms(secret: &Secret) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if secret.text {
        let raw = String::from_utf8(secret.bytes.clone()).unwrap();
        for (name, form) in [
            ("percent-encoded", percent(&raw, true)),
            ("percent-encoded (lower case)", percent(&raw, false)),
        ] {
            if form != raw {
                out.push((name.to_owned(), form));
            }
        }
        out.push(("raw".to_owned(), raw));
    }
    let hex: String = secret.bytes.iter().map(|b| format!("{b:02x}")).collect();
    out.push(("hex (upper case)".to_owned(), hex.to_uppercase()));
    out.push(("hex".to_owned(), hex));
    for (name, alphabet) in [("base64", B64_STD), ("base64url", B64_URL)] {
        for lead in 0..3usize {
            let mut shifted = vec![0u8; lead];
            shifted.extend_from_slice(&secret.bytes);
            let encoded = b64_encode(&shifted, alphabet);
            let first = (8 * lead).div_ceil(6);
            let last = 8 * shifted.len() / 6;
            out.push((format!("{name} (alignment {lead})"), encoded[first..last].to_owned()));
        }
    }
    out.retain(|(_, f)| f.len() >= 8);
    out
}

/// Every captured text holding a secret, described without any secret: what it holds, and a
/// window of it with every form of every secret masked.
fn leaks(texts: &[(&'static str, String)], secrets: &Secrets) -> Vec<String> {
    let mut needles: Vec<(String, String)> = secrets
        .0
        .iter()
        .flat_map(|s| {
            forms(s)
                .into_iter()
                .map(|(form, n)| (format!("{} as {form}", s.kind), n))
        })
        .collect();
    needles.sort_by_key(|(_, n)| std::cmp::Reverse(n.len()));
    // one pass over the capture: every needle is at least 8 bytes long, so each position is
    // looked up by its next 8 bytes and only candidates are compared in full
    let mut by_start: std::collections::HashMap<&[u8], Vec<usize>> = Default::default();
    for (i, (_, n)) in needles.iter().enumerate() {
        by_start.entry(&n.as_bytes()[..8]).or_default().push(i);
    }
    let mut found = Vec::new();
    for (source, text) in texts {
        let bytes = text.as_bytes();
        let mut held = std::collections::BTreeSet::new();
        for at in 0..bytes.len().saturating_sub(7) {
            for &i in by_start.get(&bytes[at..at + 8]).into_iter().flatten() {
                if bytes[at..].starts_with(needles[i].1.as_bytes()) {
                    held.insert(needles[i].0.as_str());
                }
            }
        }
        if held.is_empty() {
            continue;
        }
        let held: Vec<&str> = held.into_iter().collect();
        let masked = needles.iter().fold(text.clone(), |t, (label, n)| {
            t.replace(n.as_str(), &format!("⟪{label}⟫"))
        });
        let at = masked.find('⟪').unwrap_or(0);
        let window: String = masked[masked.floor_char_boundary(at.saturating_sub(150))..]
            .chars()
            .take(400)
            .collect();
        let target = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v["target"].as_str().map(|t| format!(" (target {t})")))
            .unwrap_or_default();
        found.push(format!("a {source}{target} holds {}: …{window}…", held.join(", ")));
    }
    found
}

/// The search finds a planted secret in every form, and nothing in what may legitimately be
/// logged about it (its display prefix, its hash).
fn the_search_finds_planted_secrets() {
    let mut secrets = Secrets::default();
    let token = sepay_crypto::generate_webhook_token();
    let spec = Keyring::generate_spec("p1");
    let jwt = sepay_connector::mint_admin_token("planted-jwt-secret", "p", Duration::from_secs(60)).unwrap();
    secrets.text("planted token", token.expose());
    secrets.keyring("planted keyring", &spec);
    secrets.text("planted JWT", &jwt);
    let t = token.expose();
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let padded = |b: &[u8], a: &[u8]| {
        let e = b64_encode(b, a);
        format!("{e}{}", "=".repeat((4 - e.len() % 4) % 4))
    };
    let random = b64_decode(&t[5..], B64_URL).unwrap();
    let key = b64_decode(spec.split_once(':').unwrap().1, B64_STD).unwrap();
    let header = format!("{{\"authorization\":\"Apikey {t}\"}}");
    for planted in [
        format!("url=/api/v1/webhooks/sepay/{t}"),
        hex(t.as_bytes()).to_uppercase(),
        padded(header.as_bytes(), B64_STD),
        padded(format!("x{t}").as_bytes(), B64_URL),
        b64_encode(format!("xy{t}").as_bytes(), B64_URL),
        percent(&spec, true),
        format!("key={}", hex(&key)),
        format!("random={}", &t[5..]),
        padded(&random, B64_STD),
        format!("sig={}", jwt.rsplit('.').next().unwrap()),
    ] {
        let text = [("planted", format!("{{\"fields\":{{\"message\":\"x {planted} y\"}}}}"))];
        assert!(!leaks(&text, &secrets).is_empty(), "not found: {planted}");
    }
    let benign = format!("prefix {} sha256 {}", token.display_prefix(), hex(&token.sha256()));
    assert_eq!(leaks(&[("benign", benign)], &secrets), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// the system

struct Run {
    db: sepay_store::PgPool,
    sim: Arc<Sim>,
    sim_url: String,
    connector: String,
    ws: Uuid,
    http: reqwest::Client,
    stop: CancellationToken,
}

impl Drop for Run {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn listener() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

fn connector_config(url: &str, ingress: &str, jwt: &str, csrf: &str) -> sepay_connector::ConnectorConfig {
    sepay_connector::ConnectorConfig {
        connector_public_url: url.to_owned(),
        ingress_public_url: ingress.to_owned(),
        admin_jwt_secret: Some(jwt.to_owned()),
        connector_csrf_secret: Some(csrf.to_owned()),
        ..Default::default()
    }
}

impl Run {
    async fn sim_post(&self, path: &str, body: Value) -> Value {
        let sim = sepay_sim::client::SimClient {
            base: self.sim_url.clone(),
            http: self.http.clone(),
        };
        sim.post(path, body).await.unwrap()
    }

    async fn page(&self, path: &str, session: &str) -> String {
        let res = self
            .http
            .get(format!("{}{path}", self.connector))
            .header(COOKIE, format!("sepay_admin_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        res.text().await.unwrap()
    }

    async fn form(&self, base: &str, path: &str, session: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{base}{path}"))
            .header(COOKIE, format!("sepay_admin_session={session}"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// "Connect SePay" on the connector at `base`, approved at the simulator: the callback URL
    /// SePay sends the browser to, and the state cookie.
    async fn authorize(&self, base: &str, session: &str, csrf: &str) -> (String, String) {
        let res = self
            .form(base, &format!("/ws/{}/connect", self.ws), session, &[("csrf", csrf)])
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let cookie = set_cookie(&res, sepay_connector::state::STATE_COOKIE);
        let approved = self.http.get(location(&res)).send().await.unwrap();
        assert_eq!(approved.status(), StatusCode::SEE_OTHER);
        (location(&approved), cookie)
    }

    /// The callback; where it redirects.
    async fn callback(&self, url: &str, session: &str, state_cookie: &str) -> String {
        let cookies = format!(
            "sepay_admin_session={session}; {}={state_cookie}",
            sepay_connector::state::STATE_COOKIE
        );
        let res = self.http.get(url).header(COOKIE, cookies).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        location(&res)
    }

    async fn deliver(&self, url: &str, authorization: &str, body: &Value) -> StatusCode {
        self.http
            .post(url)
            .header(AUTHORIZATION, authorization)
            .json(body)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn scalar(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).bind(self.ws).fetch_one(&self.db).await.unwrap()
    }

    async fn wait(&self, what: &str, sql: &'static str, want: i64) {
        let reached = eventually(Duration::from_secs(15), || async {
            (self.scalar(sql).await >= want).then_some(())
        })
        .await;
        let deliveries: Vec<_> = (self.sim.world().deliveries.iter())
            .map(|d| (d.transaction_id, d.attempt, d.status))
            .collect();
        assert!(
            reached.is_some(),
            "{what}: {} < {want}; SePay's deliveries (transaction, attempt, status): {deliveries:?}",
            self.scalar(sql).await
        );
    }

    /// Posts as SePay would, again until it is taken: the ingress learns of a new endpoint a
    /// moment after it is stored.
    async fn deliver_until_taken(&self, url: &str, authorization: &str, body: &Value) {
        let taken = eventually(Duration::from_secs(10), || async {
            (self.deliver(url, authorization, body).await == StatusCode::OK).then_some(())
        })
        .await;
        assert!(taken.is_some(), "not taken: {}", body["id"]);
    }

    async fn connection_status(&self) -> String {
        sqlx::query_scalar("select status from sepay_connections where ws_id = $1")
            .bind(self.ws)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    async fn wait_status(&self, want: &str) {
        let reached = eventually(Duration::from_secs(15), || async {
            (self.connection_status().await == want).then_some(())
        })
        .await;
        assert!(
            reached.is_some(),
            "connection never {want}: {}",
            self.connection_status().await
        );
    }

    /// The simulator's webhooks: (url, api key).
    fn webhooks(&self) -> Vec<(String, String)> {
        self.sim
            .world()
            .webhooks
            .values()
            .map(|w| (w.webhook_url.clone(), w.api_key.clone().unwrap_or_default()))
            .collect()
    }
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn set_cookie(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

fn between<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    let from = page.find(start).unwrap_or_else(|| panic!("{start} not in the page")) + start.len();
    page[from..].split(end).next().unwrap()
}

fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

const BOOKED: &str = "select count(*) from wallet_transactions where ws_id = $1";
const PROVISIONED: &str = "select count(*) from sepay_webhook_endpoints \
                           where ws_id = $1 and status = 'active' and sepay_webhook_id is not null";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_of_a_whole_run_reaches_logs_spans_or_metrics() {
    the_search_finds_planted_secrets();
    let capture = Capture::install();
    let mut secrets = Secrets::default();
    let random = |prefix: &str| sepay_crypto::generate_secret(prefix).expose().to_owned();

    // secrets of the deployment: the client secret holds characters percent-encoding changes
    let client_secret = format!("{}+/={}", random("cs_"), random(""));
    let wrong_secret = format!("{}+/", random("wrong_cs_"));
    let jwt_secret = random("adminjwt_");
    let csrf_secret = random("csrf_");
    let keys_spec = Keyring::generate_spec("h1");
    secrets.text("OAuth client secret", &client_secret);
    secrets.text("OAuth client secret (a misconfigured connector's)", &wrong_secret);
    secrets.text("admin JWT HMAC secret", &jwt_secret);
    secrets.text("CSRF secret", &csrf_secret);
    secrets.keyring("token-sealing keyring", &keys_spec);
    let keys = Keyring::parse(&keys_spec).unwrap();

    // ---- every service in this process
    let db = TestDb::new().await.pool;
    let (bus, _) = test_bus(&sepay_testkit::nats_url()).await;
    let stop = CancellationToken::new();
    let (sim_listener, sim_url) = listener().await;
    let sim = Sim::new(
        SimConfig {
            sim_auto_approve: true,
            sim_rate_limit_per_sec: 1000,
            // SePay's retries within 10 s: a delivery racing the ingress's directory is retried
            sim_time_scale: 0.005,
            // every token expires at once: each use refreshes, and refresh tokens rotate
            sim_access_token_ttl_secs: 1,
            sim_rotate_refresh_tokens: true,
            ..Default::default()
        },
        sim_url.clone(),
        stop.clone(),
    )
    .unwrap();
    sepay_testkit::serve_router(sim_listener, sepay_sim::router(sim.clone()), stop.clone());
    let (ingress_listener, ingress) = listener().await;
    let ingress_config = sepay_ingress::IngressConfig {
        relay_interval_ms: 100,
        relay_min_age_ms: 200,
        // opens the Striga endpoint's key the connector sealed
        sepay_token_keys: Some(keys_spec.clone()),
        ..Default::default()
    };
    tokio::spawn(sepay_ingress::serve(
        ingress_listener,
        None,
        ingress_config,
        db.clone(),
        bus.clone(),
        stop.clone(),
    ));
    tokio::spawn(sepay_processor::consume(
        sepay_processor::ProcessorConfig::default(),
        db.clone(),
        bus.clone(),
        Arc::new(sepay_processor::FallbackOnly),
        stop.clone(),
    ));
    let (connector_listener, connector) = listener().await;
    let (second_listener, second) = listener().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let run = Run {
        db: db.clone(),
        sim: sim.clone(),
        sim_url: sim_url.clone(),
        connector: connector.clone(),
        ws: sepay_store::workspaces::create_workspace(&db, "Hygiene")
            .await
            .unwrap()
            .id,
        http,
        stop: stop.clone(),
    };
    let company = run.sim_post("/sim/companies", json!({"name": "Cty Hygiene"})).await["id"].clone();
    let account = run
        .sim_post(
            "/sim/bank-accounts",
            json!({"company_id": company, "bank_short_name": "Vietcombank"}),
        )
        .await;
    let callback_path = sepay_connector::CALLBACK_PATH;
    for (client_id, base) in [("hygiene", &connector), ("hygiene-second", &second)] {
        let body = json!({"company_id": company, "redirect_uris": [format!("{base}{callback_path}")],
                          "client_id": client_id, "client_secret": client_secret});
        run.sim_post("/sim/oauth-clients", body).await;
    }
    let sepay = SepayConfig {
        sepay_base_url: sim_url.clone(),
        sepay_client_id: "hygiene".into(),
        sepay_client_secret: client_secret.clone(),
        sepay_token_keys: Some(keys_spec.clone()),
        sepay_requests_per_sec: 100,
        ..Default::default()
    };
    tokio::spawn(sepay_connector::serve(
        connector_listener,
        None,
        connector_config(&connector, &ingress, &jwt_secret, &csrf_secret),
        sepay.clone(),
        db.clone(),
        bus.clone(),
        stop.clone(),
    ));
    // a second connector holding a wrong client secret: SePay refuses its code exchanges
    tokio::spawn(sepay_connector::serve(
        second_listener,
        None,
        connector_config(&second, &ingress, &jwt_secret, &csrf_secret),
        SepayConfig {
            sepay_client_id: "hygiene-second".into(),
            sepay_client_secret: wrong_secret.clone(),
            ..sepay.clone()
        },
        db.clone(),
        bus.clone(),
        stop.clone(),
    ));
    let (provisioner_listener, _) = listener().await;
    tokio::spawn(sepay_provisioner::serve(
        provisioner_listener,
        sepay_provisioner::ProvisionerConfig {
            public_base_url: ingress.clone(),
            reconcile_interval_secs: 0,
            sepay: sepay.clone(),
            ..Default::default()
        },
        db.clone(),
        bus.clone(),
        stop.clone(),
    ));

    // ---- the admin signs in through the login link
    sepay_store::members::grant_admin(&db, run.ws, "alice").await.unwrap();
    let session = sepay_connector::mint_admin_token(&jwt_secret, "alice", Duration::from_secs(3600)).unwrap();
    secrets.text("admin session JWT", &session);
    // the link shows the sign-in page; its same-origin POST sets the session
    let page = run
        .http
        .get(sepay_connector::login_url(&connector, &session, run.ws))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let login = run
        .http
        .post(format!("{connector}/login"))
        .header("origin", &connector)
        .form(&[("token", session.as_str()), ("ws", &run.ws.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    assert_eq!(set_cookie(&login, "sepay_admin_session"), session);
    let integrations = format!("/ws/{}/integrations", run.ws);
    let page = run.page(&integrations, &session).await;
    let csrf = between(&page, "name=\"csrf\" value=\"", "\"").to_owned();
    secrets.text("CSRF token", &csrf);
    // a forged session and a wrong CSRF token are refused
    let forged = sepay_connector::mint_admin_token("not-the-secret", "alice", Duration::from_secs(60)).unwrap();
    secrets.text("forged admin session JWT", &forged);
    let refused = run
        .http
        .get(format!("{connector}{integrations}"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let forged_login = sepay_connector::login_url(&connector, &forged, run.ws);
    let refused = run.http.get(forged_login).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let wrong_csrf = random("csrf_guess_");
    secrets.text("wrong CSRF token", &wrong_csrf);
    let refused = run
        .form(
            &connector,
            &format!("/ws/{}/sync", run.ws),
            &session,
            &[("csrf", &wrong_csrf)],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let mut pending = Vec::new();
    let error_page = |base: &str, reason: &str| format!("{base}{integrations}?sepay=error&reason={reason}");

    // ---- failed exchanges: the wrong client secret, then a code SePay never issued
    let (callback, cookie) = run.authorize(&second, &session, &csrf).await;
    pending.push(cookie.clone());
    assert_eq!(
        run.callback(&callback, &session, &cookie).await,
        error_page(&second, "exchange_failed")
    );
    let (callback, cookie) = run.authorize(&connector, &session, &csrf).await;
    pending.push(cookie.clone());
    let bogus_code = random("spc_");
    secrets.text("authorization code (never issued)", &bogus_code);
    let bogus = format!(
        "{connector}{callback_path}?code={bogus_code}&state={}",
        query_param(&callback, "state")
    );
    assert_eq!(
        run.callback(&bogus, &session, &cookie).await,
        error_page(&connector, "exchange_failed")
    );

    // ---- the connect flow; the provisioner provisions the account's webhook on its message
    let (callback, cookie) = run.authorize(&connector, &session, &csrf).await;
    pending.push(cookie.clone());
    assert_eq!(
        run.callback(&callback, &session, &cookie).await,
        format!("{connector}{integrations}?sepay=connected")
    );
    // the same callback again: the state was used
    assert_eq!(
        run.callback(&callback, &session, &cookie).await,
        error_page(&connector, "state_reused")
    );
    run.wait("provisioned endpoints", PROVISIONED, 1).await;
    let mut hooks = run.webhooks();
    assert_eq!(hooks.len(), 1);

    // ---- SePay delivers a transaction; it is booked
    let tx = json!({"bank_account_id": account["id"], "transfer_type": "in", "amount": 2277000,
                    "content": "HYGIENE thanh toan 1", "code": "DH1"});
    run.sim_post("/sim/transactions", tx).await;
    run.wait("booked", BOOKED, 1).await;
    let first_event: i64 = sqlx::query_scalar("select id from sepay_webhook_events where ws_id = $1")
        .bind(run.ws)
        .fetch_one(&db)
        .await
        .unwrap();

    // ---- refused deliveries: wrong keys in both forms, none, an unknown token, a malformed one
    let (url, key) = hooks[0].clone();
    let account_number = account["account_number"].as_str().unwrap().to_owned();
    let body = |id: i64| {
        let mut d = delivery(id, "in", json!(1000));
        d["accountNumber"] = json!(account_number);
        d
    };
    let wrong_key = random("spak_");
    secrets.text("API key presented by a stranger", &wrong_key);
    assert_eq!(run.deliver(&url, &format!("Apikey {wrong_key}"), &body(1)).await, 401);
    assert_eq!(run.deliver(&url, &format!("Bearer {wrong_key}"), &body(1)).await, 401);
    assert_eq!(run.deliver(&url, "", &body(1)).await, 401);
    let unknown_token = random("spwh_");
    secrets.text("webhook token presented by a stranger", &unknown_token);
    let unknown = format!("{ingress}/api/v1/webhooks/sepay/{unknown_token}");
    assert_eq!(run.deliver(&unknown, &format!("Apikey {key}"), &body(1)).await, 401);
    let malformed = format!("{ingress}/api/v1/webhooks/sepay/not-a-token-{}", random(""));
    assert_eq!(run.deliver(&malformed, &format!("Apikey {key}"), &body(1)).await, 401);

    // ---- rotation from the pages: SePay learns the new URL and key; both old and new work
    let endpoint: Uuid = sqlx::query_scalar("select id from sepay_webhook_endpoints where ws_id = $1")
        .bind(run.ws)
        .fetch_one(&db)
        .await
        .unwrap();
    let rotate = format!("/ws/{}/endpoints/{endpoint}/rotate", run.ws);
    let res = run.form(&connector, &rotate, &session, &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let rotated = eventually(Duration::from_secs(15), || {
        let now = run.webhooks();
        let changed = now.len() == 1 && now[0] != hooks[0];
        async move { changed.then_some(now) }
    })
    .await
    .expect("the SePay webhook was updated");
    hooks.extend(rotated);
    let tx = json!({"bank_account_id": account["id"], "transfer_type": "out", "amount": 15000});
    run.sim_post("/sim/transactions", tx).await;
    run.wait("booked after rotation", BOOKED, 2).await;
    // the old token and key in their grace period
    run.deliver_until_taken(&url, &format!("Apikey {key}"), &body(880_001))
        .await;
    run.wait("booked with the old token", BOOKED, 3).await;

    // ---- a manual endpoint made on the pages, posted to directly (Bearer form)
    let res = run
        .form(
            &connector,
            &format!("/ws/{}/endpoints", run.ws),
            &session,
            &[("csrf", &csrf), ("label", "till")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let created = res.text().await.unwrap();
    let manual_url = between(&created, "id=\"webhook-url\">", "<").to_owned();
    let manual_key = between(&created, "id=\"api-key\">", "<").to_owned();
    let manual_auth = format!("Bearer {manual_key}");
    run.deliver_until_taken(&manual_url, &manual_auth, &body(880_002)).await;
    run.wait("booked through the manual endpoint", BOOKED, 4).await;
    // an account nobody linked: the processor fails it (and retries)
    let unlinked = delivery(880_003, "in", json!(7));
    run.deliver_until_taken(&manual_url, &manual_auth, &unlinked).await;
    run.wait(
        "failed events",
        "select count(*) from sepay_webhook_events where ws_id = $1 and status = 'failed'",
        1,
    )
    .await;

    // ---- Striga: an endpoint made on the pages with the API key, signed deliveries, forgeries
    let striga_key = format!("{}+/=", random("striga_key_"));
    secrets.text("Striga API key", &striga_key);
    let res = run
        .form(
            &connector,
            &format!("/ws/{}/striga/endpoints", run.ws),
            &session,
            &[("csrf", &csrf), ("label", "eu"), ("api_key", &striga_key)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let created = res.text().await.unwrap();
    let striga_url = between(&created, "id=\"webhook-url\">", "<").to_owned();
    secrets.text("Striga webhook token", striga_url.rsplit('/').next().unwrap());
    let striga_post = |suffix: &'static str, body: &'static str, signature: String| {
        let (http, url) = (run.http.clone(), format!("{striga_url}{suffix}"));
        async move {
            http.post(url)
                .header("signature", signature)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let sample = sepay_core::striga::samples::PAYIN_COMPLETED;
    let signed = sepay_crypto::hmac::striga_signature(striga_key.as_bytes(), sample.as_bytes());
    let forged = sepay_crypto::hmac::striga_signature(b"not the key", sample.as_bytes());
    assert_eq!(striga_post("/tx", sample, signed.clone()).await, StatusCode::OK);
    assert_eq!(striga_post("/tx", sample, forged).await, StatusCode::UNAUTHORIZED);
    assert_eq!(striga_post("/ping", "{}", signed).await, StatusCode::UNAUTHORIZED);
    run.wait(
        "the Striga payin settled (no wallet linked: failed)",
        "select count(*) from sepay_webhook_events where ws_id = $1 and provider = 'striga' and status <> 'received'",
        1,
    )
    .await;

    // ---- "Sync now" and "Reconcile" with an expired access token: refreshed first
    let refreshes = || run.sim.world().access_tokens.len();
    let before = refreshes();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for what in ["sync", "reconcile"] {
        let res = run
            .form(
                &connector,
                &format!("/ws/{}/{what}", run.ws),
                &session,
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
    run.wait(
        "reconciliations",
        "select count(*) from sepay_reconciliation_runs where ws_id = $1 and status = 'succeeded'",
        1,
    )
    .await;
    assert!(refreshes() > before, "the expired access token was refreshed");

    // ---- the user revokes the app at SePay: the next refresh fails
    run.sim
        .world()
        .refresh_tokens
        .values_mut()
        .for_each(|g| g.revoked = true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = run
        .form(
            &connector,
            &format!("/ws/{}/sync", run.ws),
            &session,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    run.wait_status("needs_reconnect").await;

    // ---- disconnect: endpoints revoked, tokens revoked at SePay (best effort)
    let res = run
        .form(
            &connector,
            &format!("/ws/{}/disconnect", run.ws),
            &session,
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    run.wait_status("revoked").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // ---- the run's secrets, from the simulator's side and from what the test was shown
    {
        let world = run.sim.world();
        for token in world.access_tokens.keys() {
            secrets.text("OAuth access token", token);
        }
        for token in world.refresh_tokens.keys() {
            secrets.text("OAuth refresh token", token);
        }
        for code in world.codes.keys() {
            secrets.text("OAuth authorization code", code);
        }
        for client in world.clients.values() {
            secrets.text("OAuth client secret (as SePay holds it)", &client.client_secret);
        }
        for company in world.companies.values() {
            secrets.text("SePay legacy API token", &company.api_token);
        }
        assert!(world.access_tokens.len() >= 3 && world.refresh_tokens.len() >= 3);
    }
    for (url, key) in &hooks {
        secrets.text("webhook token", url.rsplit('/').next().unwrap());
        secrets.text("webhook API key", key);
    }
    secrets.text(
        "webhook token (manual endpoint)",
        manual_url.rsplit('/').next().unwrap(),
    );
    secrets.text("webhook API key (manual endpoint)", &manual_key);
    for cookie in &pending {
        let p = sepay_connector::state::open(&keys, cookie).expect("our own state cookies open");
        secrets.text("OAuth state", &p.state);
        secrets.text("PKCE verifier", &p.pkce_verifier);
        secrets.text("OAuth state cookie (sealed)", cookie);
    }
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // ---- the capture is the whole run, not an empty file
    let texts = capture.texts();
    let logs: Vec<&str> = texts
        .iter()
        .filter(|(s, _)| *s == "log line")
        .map(|(_, t)| t.as_str())
        .collect();
    let has = |needle: &str| logs.iter().any(|l| l.contains(needle));
    for needle in [
        "SePay authorization started",
        "SePay connection failed",
        "SePay connected",
        "SePay access token refreshed",
        "webhook provisioned",
        "endpoint rotated",
        "manual endpoint created",
        "Striga endpoint created",
        "sim delivery",
        "delivery accepted",
        "delivery refused",
        "event settled",
        "event failed",
        "control request failed",
        "disconnected",
        "\"target\":\"sqlx::query\"",
        "\"target\":\"async_nats",
        "\"level\":\"TRACE\"",
    ] {
        assert!(has(needle), "the capture lacks {needle:?}");
    }
    // each control message's lines carry its own span (a line under another message's span would
    // name another workspace)
    for (message, subject) in [
        ("webhook provisioned", "sepay.connection.connected"),
        ("endpoint rotated", "sepay.endpoint.rotate.requested"),
        ("reconciled", "sepay.reconcile.requested"),
        ("control request failed", "sepay.sync.requested"),
        ("disconnected", "sepay.connection.disconnected"),
    ] {
        let line = logs
            .iter()
            .find(|l| l.contains(&format!("\"message\":\"{message}\"")))
            .unwrap();
        let span = serde_json::from_str::<Value>(line).unwrap()["span"].clone();
        let destination = span["messaging.destination.name"].as_str().unwrap_or_default();
        assert!(destination.ends_with(subject), "{message:?} logged under {span}");
    }
    assert!(
        logs.iter()
            .any(|l| l.contains("event settled") && l.contains(&format!("\"event_id\":{first_event}"))),
        "the booking of event {first_event} is in the capture with its span"
    );
    let exported: Vec<&str> = texts
        .iter()
        .filter(|(s, _)| *s == "exported span")
        .map(|(_, t)| t.as_str())
        .collect();
    for name in [
        "POST /api/v1/webhooks/sepay/{token}",
        "sepay.events.received process",
        "sepay.control process",
    ] {
        assert!(
            exported.iter().any(|s| s.contains(&format!("name: \"{name}\""))),
            "no exported span {name}"
        );
    }
    assert!(secrets.0.len() >= 40, "{} secrets", secrets.0.len());
    let found = leaks(&texts, &secrets);
    assert!(
        found.is_empty(),
        "{} secret sightings in {} captured texts ({} bytes):\n{}",
        found.len(),
        texts.len(),
        texts.iter().map(|(_, t)| t.len()).sum::<usize>(),
        found.join("\n")
    );
}
