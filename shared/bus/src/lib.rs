//! The bus contract on NATS JetStream: stream and subject names, the message envelope,
//! idempotent publication (`Nats-Msg-Id`), durable pull consumers and W3C `traceparent` headers.
//!
//! Messages carry ids, never secrets or payloads: the row in Postgres is the record.

mod trace;

use async_nats::jetstream::{self, consumer, stream};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use uuid::Uuid;

pub use async_nats::jetstream::Message;
pub use async_nats::jetstream::consumer::PullConsumer;
pub use trace::{continue_trace, inject_trace};

pub type BusResult<T> = Result<T, BusError>;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(
        "cannot reach NATS at {url} ({reason}); check that nats-server runs there with JetStream (`-js`) and that NATS_URL is right (`sepay-dev up` starts one of its own where none answers)"
    )]
    Connect { url: String, reason: String },
    #[error("JetStream {op} failed: {reason}")]
    JetStream { op: &'static str, reason: String },
    #[error("NATS_STREAM_REPLICAS={replicas}: stream {stream} {reason}")]
    Replicas {
        stream: String,
        replicas: usize,
        reason: String,
    },
    #[error("publish of {subject} was not acknowledged: {reason}")]
    Publish { subject: String, reason: String },
    #[error("bad message: {0}")]
    Decode(#[from] serde_json::Error),
}

fn js_err(op: &'static str) -> impl FnOnce(&dyn std::fmt::Display) -> BusError {
    move |e| BusError::JetStream {
        op,
        reason: e.to_string(),
    }
}

/// `NATS_URL`: the local server.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
/// `BUS_PREFIX`: none (the design's names as they are).
pub const DEFAULT_BUS_PREFIX: &str = "";
/// `NATS_PUBLISH_TIMEOUT_MS`
pub const DEFAULT_NATS_PUBLISH_TIMEOUT_MS: u64 = 2000;
/// `NATS_STREAM_REPLICAS`: one copy, what a single nats-server can hold.
pub const DEFAULT_NATS_STREAM_REPLICAS: usize = 1;
/// JetStream's own ceiling on a stream's replicas.
const MAX_STREAM_REPLICAS: usize = 5;

const NOT_CLUSTERED: &str = "this NATS server is not a JetStream cluster, which more than one replica needs: set NATS_STREAM_REPLICAS=1 for a single nats-server";

fn parse_replicas(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if (1..=MAX_STREAM_REPLICAS).contains(&n) => Ok(n),
        _ => Err(format!("a whole number from 1 to {MAX_STREAM_REPLICAS}")),
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct NatsConfig {
    /// NATS server with JetStream enabled.
    #[arg(long, env = "NATS_URL", default_value = DEFAULT_NATS_URL, hide_env_values = true)]
    pub nats_url: String,
    /// Prefix for every stream, subject and consumer name (isolates tests and tenants on one server).
    #[arg(long, env = "BUS_PREFIX", default_value = DEFAULT_BUS_PREFIX)]
    pub bus_prefix: String,
    /// How long a publish waits for JetStream's acknowledgement.
    #[arg(long, env = "NATS_PUBLISH_TIMEOUT_MS", default_value_t = DEFAULT_NATS_PUBLISH_TIMEOUT_MS)]
    pub nats_publish_timeout_ms: u64,
    /// Copies JetStream keeps of each stream: 1 on a single nats-server, 3 on a cluster.
    #[arg(long, env = "NATS_STREAM_REPLICAS", default_value_t = DEFAULT_NATS_STREAM_REPLICAS, value_parser = parse_replicas)]
    pub nats_stream_replicas: usize,
}

impl NatsConfig {
    /// The server list without credentials (`nats://user:pass@host` → `nats://***@host`), for
    /// messages and logs.
    pub fn redacted_url(&self) -> String {
        self.nats_url
            .split(',')
            .map(|server| match (server.find("://"), server.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => format!("{}***{}", &server[..scheme + 3], &server[at..]),
                (None, Some(at)) => format!("***{}", &server[at..]),
                _ => server.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            nats_url: DEFAULT_NATS_URL.into(),
            bus_prefix: DEFAULT_BUS_PREFIX.into(),
            nats_publish_timeout_ms: DEFAULT_NATS_PUBLISH_TIMEOUT_MS,
            nats_stream_replicas: DEFAULT_NATS_STREAM_REPLICAS,
        }
    }
}

/// Names of the design's streams, subjects and consumers, under an optional prefix.
#[derive(Debug, Clone, Default)]
pub struct BusNames {
    prefix: String,
}

impl BusNames {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }
    fn stream(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}_{name}", self.prefix)
        }
    }
    fn subject(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }
    pub fn events_stream(&self) -> String {
        self.stream("SEPAY_EVENTS")
    }
    pub fn events_received(&self) -> String {
        self.subject("sepay.events.received")
    }
    pub fn control_stream(&self) -> String {
        self.stream("SEPAY_CONTROL")
    }
    pub fn control_subject(&self, subject: ControlSubject) -> String {
        self.subject(subject.as_str())
    }
    /// Which control subject a message arrived on.
    pub fn control_subject_of(&self, subject: &str) -> Option<ControlSubject> {
        ControlSubject::ALL
            .into_iter()
            .find(|c| self.control_subject(*c) == subject)
    }

    /// A durable consumer name (consumer names may not contain dots).
    pub fn durable(&self, service: &str) -> String {
        self.stream(service)
    }
}

/// Subjects of the SEPAY_CONTROL stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlSubject {
    ConnectionConnected,
    ConnectionDisconnected,
    SyncRequested,
    ReconcileRequested,
    EndpointRotateRequested,
}

impl ControlSubject {
    pub const ALL: [ControlSubject; 5] = [
        Self::ConnectionConnected,
        Self::ConnectionDisconnected,
        Self::SyncRequested,
        Self::ReconcileRequested,
        Self::EndpointRotateRequested,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionConnected => "sepay.connection.connected",
            Self::ConnectionDisconnected => "sepay.connection.disconnected",
            Self::SyncRequested => "sepay.sync.requested",
            Self::ReconcileRequested => "sepay.reconcile.requested",
            Self::EndpointRotateRequested => "sepay.endpoint.rotate.requested",
        }
    }
}

/// Every SEPAY_CONTROL message: which workspace, and what the subject needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlRequest {
    pub ws_id: Uuid,
    /// `sepay.endpoint.rotate.requested`: the endpoint to rotate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<Uuid>,
    /// `sepay.reconcile.requested`: the window, RFC 3339 instants (default: the last 24 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl ControlRequest {
    pub fn workspace(ws_id: Uuid) -> Self {
        Self {
            ws_id,
            endpoint_id: None,
            from: None,
            to: None,
        }
    }
}

/// `sepay.events.received`: an event row is open for processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventReceived {
    pub event_id: i64,
    pub ws_id: Uuid,
    /// The row's processing attempt; with the id it makes the message id.
    pub attempt: i32,
}

impl EventReceived {
    /// Publishing the same attempt twice (ingress and relay racing) is dropped by JetStream.
    pub fn message_id(&self) -> String {
        format!("sepay-event-{}-{}", self.event_id, self.attempt)
    }
}

/// What KEDA scales on (`pending + ack_pending`) and how often messages came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerState {
    pub pending: u64,
    pub ack_pending: u64,
    pub redelivered: u64,
}

/// Settings of a durable pull consumer.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub ack_wait: Duration,
    pub max_deliver: i64,
    pub max_ack_pending: i64,
}
// No JetStream BackOff: it replaces AckWait per delivery, so a step shorter than the longest
// processing redelivers a message still being worked on (a second, concurrent attempt). Failures
// are retried by explicit NAKs with their own delay; `ack_wait` only covers a worker that died.

#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    names: BusNames,
    publish_timeout: Duration,
    stream_replicas: usize,
    /// Warn once, not on every relay pass, that a stream has more replicas than configured.
    fewer_replicas_warned: Arc<AtomicBool>,
}

impl Bus {
    pub async fn connect(config: &NatsConfig) -> BusResult<Self> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(3))
            // keep reconnecting forever: the relay covers what is missed meanwhile
            .max_reconnects(None)
            // a cluster's seed list: `nats://a:4222,nats://b:4222`
            .connect(
                config
                    .nats_url
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>(),
            )
            .await
            .map_err(|e| BusError::Connect {
                url: config.redacted_url(),
                reason: e.to_string(),
            })?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_millis(config.nats_publish_timeout_ms));
        Ok(Self {
            client,
            js,
            names: BusNames::new(&config.bus_prefix),
            publish_timeout: Duration::from_millis(config.nats_publish_timeout_ms),
            stream_replicas: config.nats_stream_replicas.max(1),
            fewer_replicas_warned: Arc::default(),
        })
    }

    pub fn names(&self) -> &BusNames {
        &self.names
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Creates SEPAY_EVENTS if missing (limits retention: consumers never race for messages).
    pub async fn ensure_events_stream(&self) -> BusResult<stream::Stream> {
        self.ensure_stream(self.stream_config(self.names.events_stream(), vec![self.names.events_received()]))
            .await
    }

    /// Creates SEPAY_CONTROL if missing.
    pub async fn ensure_control_stream(&self) -> BusResult<stream::Stream> {
        let subjects = ControlSubject::ALL
            .iter()
            .map(|s| self.names.control_subject(*s))
            .collect();
        self.ensure_stream(self.stream_config(self.names.control_stream(), subjects))
            .await
    }

    /// Both streams: kept a week on file, repeats of a message id within two minutes dropped,
    /// `NATS_STREAM_REPLICAS` copies.
    fn stream_config(&self, name: String, subjects: Vec<String>) -> stream::Config {
        stream::Config {
            name,
            subjects,
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(120),
            num_replicas: self.stream_replicas,
            ..Default::default()
        }
    }

    /// Creates the stream with `NATS_STREAM_REPLICAS` copies, or raises an existing stream's
    /// replicas to it. Never lowers them: a client left at the default (an operator's
    /// `sepayctl`) must not strip a production stream of its copies.
    async fn ensure_stream(&self, config: stream::Config) -> BusResult<stream::Stream> {
        let name = config.name.clone();
        let stream = self
            .js
            .get_or_create_stream(config)
            .await
            .map_err(|e| self.replicas_err(&name, "create stream", "cannot be created", e))?;
        // a server reports 0 for a stream created without a count: one copy
        let have = stream.cached_info().config.num_replicas.max(1);
        let want = self.stream_replicas;
        match have.cmp(&want) {
            std::cmp::Ordering::Equal => return Ok(stream),
            std::cmp::Ordering::Greater => {
                if !self.fewer_replicas_warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        stream = %name,
                        have,
                        want,
                        "stream has more replicas than NATS_STREAM_REPLICAS; left as it is (lower it with `nats stream edit {name} --replicas {want}`)"
                    );
                }
                return Ok(stream);
            }
            std::cmp::Ordering::Less => {}
        }
        // a single server refuses more than one replica at creation but (nats-server 2.9) takes
        // it in an update, and then claims copies it cannot keep
        if self.client.server_info().cluster.is_none() {
            return Err(BusError::Replicas {
                stream: name,
                replicas: want,
                reason: format!("cannot be raised from {have} to {want} replicas: {NOT_CLUSTERED}"),
            });
        }
        let mut raised = stream.cached_info().config.clone();
        raised.num_replicas = want;
        self.js.update_stream(&raised).await.map_err(|e| {
            self.replicas_err(
                &name,
                "update stream",
                &format!("cannot be raised from {have} to {want} replicas"),
                e,
            )
        })?;
        tracing::info!(stream = %name, from = have, to = want, "stream replicas raised to NATS_STREAM_REPLICAS");
        self.js.get_stream(&name).await.map_err(|e| js_err("get stream")(&e))
    }

    /// A refusal caused by the replica count names the setting and the fix in one line.
    fn replicas_err(
        &self,
        stream: &str,
        op: &'static str,
        what: &str,
        e: async_nats::jetstream::context::CreateStreamError,
    ) -> BusError {
        use async_nats::jetstream::{ErrorCode, context::CreateStreamErrorKind};
        let CreateStreamErrorKind::JetStream(server) = e.kind() else {
            return js_err(op)(&e);
        };
        let hint = match server.error_code() {
            ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED => NOT_CLUSTERED,
            ErrorCode::INSUFFICIENT_RESOURCES if self.stream_replicas > 1 => {
                "the NATS cluster has fewer JetStream servers (or less storage) than that many replicas need"
            }
            ErrorCode::STREAM_REPLICAS_NOT_UPDATABLE => {
                "this NATS server does not allow changing a stream's replicas: upgrade nats-server"
            }
            _ => return js_err(op)(&e),
        };
        BusError::Replicas {
            stream: stream.to_owned(),
            replicas: self.stream_replicas,
            reason: format!("{what}: {hint} (server: {server})"),
        }
    }

    /// Publishes an event for processing and waits for JetStream's ack. Returns whether
    /// JetStream saw it as a duplicate of an earlier publication.
    pub async fn publish_event_received(&self, event: &EventReceived) -> BusResult<bool> {
        let subject = self.names.events_received();
        self.publish(subject, &event.message_id(), serde_json::to_vec(event)?)
            .await
    }

    /// Publishes a control message (JSON) with the given message id.
    pub async fn publish_control<T: Serialize>(
        &self,
        subject: ControlSubject,
        msg_id: &str,
        body: &T,
    ) -> BusResult<bool> {
        let subject = self.names.control_subject(subject);
        self.publish(subject, msg_id, serde_json::to_vec(body)?).await
    }

    async fn publish(&self, subject: String, msg_id: &str, body: Vec<u8>) -> BusResult<bool> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        inject_trace(&mut headers);
        let failed = |reason: String| BusError::Publish {
            subject: subject.clone(),
            reason,
        };
        let ack = tokio::time::timeout(self.publish_timeout, async {
            self.js
                .publish_with_headers(subject.clone(), headers, body.into())
                .await
                .map_err(|e| failed(e.to_string()))?
                .await
                .map_err(|e| failed(e.to_string()))
        })
        .await
        .map_err(|_| failed("timed out".into()))??;
        Ok(ack.duplicate)
    }

    /// The durable pull consumer of `service` on SEPAY_EVENTS, created if missing.
    pub async fn events_consumer(&self, service: &str, settings: &ConsumerSettings) -> BusResult<PullConsumer> {
        let stream = self.ensure_events_stream().await?;
        self.durable(stream, service, settings).await
    }

    /// The durable pull consumer of `service` on SEPAY_CONTROL, created if missing.
    pub async fn control_consumer(&self, service: &str, settings: &ConsumerSettings) -> BusResult<PullConsumer> {
        let stream = self.ensure_control_stream().await?;
        self.durable(stream, service, settings).await
    }

    async fn durable(
        &self,
        stream: stream::Stream,
        service: &str,
        settings: &ConsumerSettings,
    ) -> BusResult<PullConsumer> {
        let durable = self.names.durable(service);
        // create or update: changed settings reach a consumer that already exists
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(durable.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: settings.ack_wait,
                max_deliver: settings.max_deliver,
                max_ack_pending: settings.max_ack_pending,
                ..Default::default()
            })
            .await
            .map_err(|e| js_err("create consumer")(&e))
    }

    /// Messages held by SEPAY_EVENTS (tests and diagnostics).
    pub async fn events_stream_len(&self) -> BusResult<u64> {
        let mut stream = self.ensure_events_stream().await?;
        let info = stream.info().await.map_err(|e| js_err("stream info")(&e))?;
        Ok(info.state.messages)
    }

    /// A durable consumer's lag (not yet delivered, delivered and unacked) and redeliveries.
    pub async fn consumer_state(&self, service: &str) -> BusResult<ConsumerState> {
        let stream = self
            .js
            .get_stream(self.names.events_stream())
            .await
            .map_err(|e| js_err("get stream")(&e))?;
        let mut consumer: PullConsumer = stream
            .get_consumer(&self.names.durable(service))
            .await
            .map_err(|e| js_err("get consumer")(&e))?;
        let info = consumer.info().await.map_err(|e| js_err("consumer info")(&e))?;
        Ok(ConsumerState {
            pending: info.num_pending,
            ack_pending: info.num_ack_pending as u64,
            redelivered: info.num_redelivered as u64,
        })
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::NatsConfig;

    #[test]
    fn credentials_are_redacted_from_the_server_list() {
        let cases = [
            ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
            ("nats://user:s3cret@nats:4222", "nats://***@nats:4222"),
            (
                "tls://token@a:4222,nats://u:p@b:4222",
                "tls://***@a:4222,nats://***@b:4222",
            ),
            ("u:p@host:4222", "***@host:4222"),
        ];
        for (url, want) in cases {
            let config = NatsConfig {
                nats_url: url.into(),
                ..Default::default()
            };
            assert_eq!(config.redacted_url(), want, "{url}");
        }
    }
}
