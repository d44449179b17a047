//! Every HTTP listener of the system is served here, with the limits a public port needs: a
//! header-read timeout counted from accept, an idle keep-alive timeout, a request timeout, a
//! bounded header buffer and a connection cap. (`axum::serve` has none of them: a client that
//! opens connections and never finishes its headers holds each one forever.)
//!
//! HTTP/1.1 only: SePay, Striga, probes and browsers behind an Ingress controller all speak it,
//! and it is the protocol whose limits are enforced here.

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub const DEFAULT_HTTP_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Above the 60 s an Ingress controller keeps idle upstream connections: the proxy closes first,
/// so it never sends a request into a connection we are closing.
pub const DEFAULT_HTTP_KEEPALIVE_IDLE_SECS: u64 = 75;
pub const DEFAULT_HTTP_REQUEST_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 4096;
/// hyper's per-connection read buffer, and so the largest request head: 8 KiB (hyper's
/// minimum; a webhook's head is under 1 KiB). At [`DEFAULT_HTTP_MAX_CONNECTIONS`] that is 32 MiB of
/// buffers at worst, a quarter of the ingress pod's 128 MiB limit (docs/configuration.md has
/// the measured arithmetic).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// How long shutdown waits for open connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Limits of every HTTP listener (flattened into each binary's command line).
#[derive(Debug, Clone, clap::Args)]
pub struct HttpLimits {
    /// Seconds a new connection has, from accept, to send its first request's headers.
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT_SECS", default_value_t = DEFAULT_HTTP_HEADER_READ_TIMEOUT_SECS)]
    pub http_header_read_timeout_secs: u64,
    /// Seconds a kept-alive connection has, from an answer, to send the next request's headers.
    #[arg(long, env = "HTTP_KEEPALIVE_IDLE_SECS", default_value_t = DEFAULT_HTTP_KEEPALIVE_IDLE_SECS)]
    pub http_keepalive_idle_secs: u64,
    /// Seconds from a request's headers to its answer, body included (then 408).
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT_SECS", default_value_t = DEFAULT_HTTP_REQUEST_TIMEOUT_SECS)]
    pub http_request_timeout_secs: u64,
    /// Open connections served at once; further clients wait in the listen backlog.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = DEFAULT_HTTP_MAX_CONNECTIONS)]
    pub http_max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            http_header_read_timeout_secs: DEFAULT_HTTP_HEADER_READ_TIMEOUT_SECS,
            http_keepalive_idle_secs: DEFAULT_HTTP_KEEPALIVE_IDLE_SECS,
            http_request_timeout_secs: DEFAULT_HTTP_REQUEST_TIMEOUT_SECS,
            http_max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
        }
    }
}

impl HttpLimits {
    fn secs(n: u64) -> Duration {
        Duration::from_secs(n.max(1))
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish (up to 20 s).
/// Handlers can extract `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let router = router.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        HttpLimits::secs(limits.http_request_timeout_secs),
    ));
    let slots = Arc::new(Semaphore::new(limits.http_max_connections.max(1)));
    let first_head = HttpLimits::secs(limits.http_header_read_timeout_secs);
    let idle = HttpLimits::secs(limits.http_keepalive_idle_secs);
    let graceful = GracefulShutdown::new();
    loop {
        // a slot first: at the cap, clients wait in the kernel's backlog, not in our memory
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit?,
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // out of file descriptors and the like: pause instead of spinning
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // hyper restarts its header-read timer whenever a connection waits for a request head,
        // so it is the keep-alive idle limit; the first head's deadline, from accept, is ours
        let first_head_read = Arc::new(Notify::new());
        let service = hyper::service::service_fn({
            let (router, first_head_read) = (router.clone(), first_head_read.clone());
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                first_head_read.notify_one();
                request.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(request)
            }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(idle)
            .max_buf_size(MAX_HEADER_BYTES)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            // errors are the client's (reset, timeout, malformed head): nothing to do but close
            tokio::select! {
                _ = &mut connection => {}
                head = tokio::time::timeout(first_head, first_head_read.notified()) => {
                    if head.is_ok() {
                        let _ = connection.await;
                    }
                    // else: no complete head in time; dropping the connection closes it
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    Ok(())
}
