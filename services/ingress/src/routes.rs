use crate::batch::{self, StoredBody};
use crate::directory::Lookup;
use crate::error::IngressError;
use crate::{AppState, MAX_BODY_BYTES};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sepay_core::auth::parse_api_key;
use sepay_core::{DedupeKey, Delivery, Provider, striga};
use sepay_crypto::hmac::striga_signature_matches;
use sepay_crypto::{WEBHOOK_TOKEN_PREFIX, sha256, verify_secret};
use sepay_store::deliveries::DeliveryAttempt;
use sepay_store::endpoints::{EndpointAuth, signing_key_aad};
use sepay_store::events::Recorded;
use sepay_telemetry::metrics;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub fn router(state: Arc<AppState>) -> Router {
    let timed = || axum::middleware::from_fn(time_answer);
    Router::new()
        .route("/api/v1/webhooks/sepay/{token}", post(receive_sepay).layer(timed()))
        // Striga posts transactions to `<url>/tx` and its dashboard's test to `<url>/ping`
        .route("/api/v1/webhooks/striga/{token}", post(receive_striga).layer(timed()))
        .route(
            "/api/v1/webhooks/striga/{token}/tx",
            post(receive_striga).layer(timed()),
        )
        .route("/api/v1/webhooks/striga/{token}/ping", post(ping_striga).layer(timed()))
        .with_state(state)
}

/// Ack latency of every answer, by status.
async fn time_answer(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("sepay_webhook_ack_seconds", "status" => status).record(started.elapsed().as_secs_f64());
    response
}

/// One SePay delivery: the key is checked before the body is read. The span names the route,
/// never the token in the path.
#[tracing::instrument(
    name = "POST /api/v1/webhooks/sepay/{token}",
    skip_all,
    fields(otel.kind = "server", http.request.method = "POST", http.route = "/api/v1/webhooks/sepay/{token}",
           ws_id, event_id, outcome)
)]
async fn receive_sepay(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IngressError> {
    let arrived = Arrival::now();
    let source = app.guard.client_ip(&headers, peer);
    // the allow-list holds SePay's addresses; Striga publishes none
    if !app.guard.allowed(source) {
        return Err(IngressError::SourceNotAllowed);
    }
    let endpoint = find_endpoint(&app, source, &token, Provider::Sepay).await?;
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_api_key)
        .ok_or_else(|| app.refusal(source, IngressError::WrongKey))?;
    if !verify_secret(key, &endpoint.api_key_hash) {
        return Err(app.refusal(source, IngressError::WrongKey));
    }
    let bytes = read_body(&headers, body).await?;
    let delivery = Delivery::parse(&bytes);
    let (dedupe_key, sepay_id) = match &delivery {
        Delivery::Object(p) => (DedupeKey::for_payload(p), p.sepay_id()),
        Delivery::NotAnObject { .. } => (DedupeKey::for_raw_body(&bytes), None),
    };
    let result = record(&app, &endpoint, Provider::Sepay, &delivery, &dedupe_key, sepay_id).await;
    app.log_delivery(arrived, source, &result);
    result.map(|(_, response)| response)
}

/// One Striga transaction webhook: the body is read first, its signature is the credential.
#[tracing::instrument(
    name = "POST /api/v1/webhooks/striga/{token}",
    skip_all,
    fields(otel.kind = "server", http.request.method = "POST", http.route = "/api/v1/webhooks/striga/{token}",
           ws_id, event_id, outcome)
)]
async fn receive_striga(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IngressError> {
    let arrived = Arrival::now();
    let (endpoint, bytes, source) = signed_striga_body(&app, peer, &token, &headers, body).await?;
    let delivery = Delivery::parse(&bytes);
    let dedupe_key = match &delivery {
        Delivery::Object(p) => striga::dedupe_key_of(&p.0),
        Delivery::NotAnObject { .. } => None,
    }
    .unwrap_or_else(|| DedupeKey::for_striga_raw_body(&bytes));
    let result = record(&app, &endpoint, Provider::Striga, &delivery, &dedupe_key, None).await;
    app.log_delivery(arrived, source, &result);
    result.map(|(_, response)| response)
}

/// Striga's dashboard test: authenticated like a transaction, answered, not stored (it carries
/// no transaction).
#[tracing::instrument(
    name = "POST /api/v1/webhooks/striga/{token}/ping",
    skip_all,
    fields(otel.kind = "server", http.request.method = "POST", http.route = "/api/v1/webhooks/striga/{token}/ping",
           ws_id)
)]
async fn ping_striga(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IngressError> {
    let (endpoint, _, _) = signed_striga_body(&app, peer, &token, &headers, body).await?;
    tracing::Span::current().record("ws_id", tracing::field::display(endpoint.ws_id));
    metrics::counter!("sepay_webhook_deliveries_total", "provider" => Provider::Striga.as_str(), "outcome" => "ping")
        .increment(1);
    tracing::info!("ping answered");
    Ok((StatusCode::OK, Json(json!({"success": true}))).into_response())
}

/// A Striga request's endpoint, body and source address, once the body's signature is verified.
async fn signed_striga_body(
    app: &AppState,
    peer: SocketAddr,
    token: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(EndpointAuth, axum::body::Bytes, IpAddr), IngressError> {
    let source = app.guard.client_ip(headers, peer);
    let endpoint = find_endpoint(app, source, token, Provider::Striga).await?;
    let bytes = read_body(headers, body).await?;
    verify_signature(app, source, &endpoint, headers, &bytes)?;
    Ok((endpoint, bytes, source))
}

/// The body, bounded by [`MAX_BODY_BYTES`] whatever the declared length says.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, IngressError> {
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(IngressError::TooLarge);
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|err| {
        if std::error::Error::source(&err).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) {
            IngressError::TooLarge
        } else {
            IngressError::BadBody(err.to_string())
        }
    })
}

/// `signature`: hex HMAC-SHA256 of the body under the endpoint's Striga API key.
fn verify_signature(
    app: &AppState,
    source: IpAddr,
    endpoint: &EndpointAuth,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), IngressError> {
    let sealed = endpoint
        .signing_key_ciphertext
        .as_deref()
        .ok_or_else(|| IngressError::Internal(anyhow::anyhow!("Striga endpoint {} has no signing key", endpoint.id)))?;
    // a key that does not open is our configuration's fault (SEPAY_TOKEN_KEYS), not the caller's
    let key = app
        .keyring
        .open(&signing_key_aad(endpoint.ws_id), sealed)
        .map_err(|e| IngressError::Internal(anyhow::anyhow!("endpoint {}: signing key: {e}", endpoint.id)))?;
    let signature = headers.get("signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if striga_signature_matches(&key, body, signature) {
        Ok(())
    } else {
        Err(app.refusal(source, IngressError::BadSignature))
    }
}

/// When a delivery arrived: the attempt log's time and the start of its latency.
#[derive(Clone, Copy)]
struct Arrival {
    at: chrono::DateTime<chrono::Utc>,
    started: std::time::Instant,
}

impl Arrival {
    fn now() -> Self {
        Self {
            at: chrono::Utc::now(),
            started: std::time::Instant::now(),
        }
    }
}

/// What a stored delivery became: its event, the outcome logged, and the answer.
type Recording = Result<((i64, &'static str, StatusCode), Response), IngressError>;

impl AppState {
    /// Queues the delivery's line of the attempt log: a delivery that reached an event (stored,
    /// repeated or refused as not an object). One that did not (authentication, storage down)
    /// has no event to belong to.
    fn log_delivery(&self, arrived: Arrival, source: IpAddr, result: &Recording) {
        let Some(log) = &self.delivery_log else { return };
        let (event_id, outcome, status) = match result {
            Ok((logged, _)) => *logged,
            Err(err @ IngressError::NotAnObject { event_id }) => (*event_id, "invalid_payload", err.status()),
            Err(_) => return,
        };
        log.log(DeliveryAttempt {
            event_id,
            received_at: arrived.at,
            source_addr: Some(source.to_string()),
            outcome: outcome.to_owned(),
            status_code: status.as_u16() as i16,
            latency_ms: arrived.started.elapsed().as_secs_f32() * 1000.0,
        });
    }
}

/// Stores the delivery (dedupe and repeat rules are the providers' shared ones), queues its
/// publication when it opened processing, and answers: the committed row is durably left for the
/// relay, so the answer does not wait for JetStream (`publisher`).
async fn record(
    app: &AppState,
    endpoint: &EndpointAuth,
    provider: Provider,
    delivery: &Delivery,
    dedupe_key: &DedupeKey,
    sepay_id: Option<i64>,
) -> Recording {
    let span = tracing::Span::current();
    span.record("ws_id", tracing::field::display(endpoint.ws_id));
    let body = match delivery {
        Delivery::Object(p) => StoredBody::Json(serde_json::Value::Object(p.0.clone())),
        Delivery::NotAnObject { raw } => StoredBody::Invalid(raw.clone()),
    };
    let recorded = app
        .writer
        .record(batch::Delivery {
            ws_id: endpoint.ws_id,
            provider,
            endpoint_id: endpoint.id,
            sepay_transaction_id: sepay_id,
            dedupe_key: dedupe_key.clone(),
            body,
        })
        .await?;
    let event = recorded.event();
    span.record("event_id", event.id);
    if recorded.needs_publish() {
        app.publisher.queue(event).await;
    }
    let (outcome, answer) = match recorded {
        Recorded::New(_) => ("new", json!({"success": true})),
        Recorded::Reopened(_) => ("reopened", json!({"success": true})),
        Recorded::InFlight(_) => ("in_flight", json!({"success": true})),
        Recorded::Duplicate(_) => ("duplicate", json!({"success": true, "duplicate": true})),
        Recorded::Invalid(e) => {
            span.record("outcome", "invalid_payload");
            return Err(IngressError::NotAnObject { event_id: e.id });
        }
    };
    span.record("outcome", outcome);
    metrics::counter!("sepay_webhook_deliveries_total", "provider" => provider.as_str(), "outcome" => outcome)
        .increment(1);
    tracing::info!(outcome, provider = provider.as_str(), "delivery accepted");
    Ok((
        (event.id, outcome, StatusCode::OK),
        (StatusCode::OK, Json(answer)).into_response(),
    ))
}

impl AppState {
    /// A failed authentication, or 429 once the source is over its limit of them. Only failures
    /// count, so honest traffic is never limited.
    fn refusal(&self, source: IpAddr, err: IngressError) -> IngressError {
        if self.guard.over_failure_limit(source) {
            IngressError::TooManyFailures
        } else {
            err
        }
    }
}

/// The endpoint a delivery is for, from memory: junk costs a hash and a map lookup, never a
/// database round trip (Postgres is asked only until the directory's first load). A token of
/// another provider's endpoint is as unknown as one that does not exist.
async fn find_endpoint(
    app: &AppState,
    source: IpAddr,
    token: &str,
    provider: Provider,
) -> Result<EndpointAuth, IngressError> {
    // a token of the wrong shape cannot exist
    if !token.starts_with(WEBHOOK_TOKEN_PREFIX) || token.len() > 128 {
        return Err(app.refusal(source, IngressError::UnknownToken));
    }
    let token_hash = sha256(token.as_bytes());
    let endpoint = match app.directory.lookup(&token_hash) {
        Lookup::Found(endpoint) => Some(endpoint),
        Lookup::NotReady => sepay_store::endpoints::find_by_token_hash(&app.db, &token_hash).await?,
        Lookup::Unknown => {
            // counted first: a source over its limit is answered at once, without the wait
            if let err @ IngressError::TooManyFailures = app.refusal(source, IngressError::UnknownToken) {
                return Err(err);
            }
            // an endpoint created a moment ago may still be on its way through LISTEN/NOTIFY
            tokio::time::sleep(NEW_ENDPOINT_GRACE).await;
            match app.directory.lookup(&token_hash) {
                Lookup::Found(endpoint) => Some(endpoint),
                _ => return Err(IngressError::UnknownToken),
            }
        }
    };
    endpoint
        .filter(|e| e.provider == provider)
        .ok_or_else(|| app.refusal(source, IngressError::UnknownToken))
}

/// How long an unknown token waits for an announcement in flight before it is refused.
const NEW_ENDPOINT_GRACE: Duration = Duration::from_millis(50);
