//! The limits every HTTP listener is served with (`sepay_runtime::http`), over real sockets.

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use sepay_runtime::HttpLimits;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(limits: HttpLimits) -> Server {
    let app = Router::new()
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "done"
            }),
        )
        .route("/echo", post(|body: String| async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { sepay_runtime::http::serve(listener, app, &limits, stop).await }
    });
    Server { addr, stop, task }
}

fn limits(header_read: u64, idle: u64, request: u64, connections: usize) -> HttpLimits {
    HttpLimits {
        http_header_read_timeout_secs: header_read,
        http_keepalive_idle_secs: idle,
        http_request_timeout_secs: request,
        http_max_connections: connections,
    }
}

/// Reads until the server closes the connection; the bytes read.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(all)
}

async fn request(stream: &mut TcpStream, raw: &str) -> String {
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn a_head_trickled_byte_by_byte_is_cut_off_counted_from_accept() {
    let server = start(limits(1, 30, 30, 16)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    // a byte every 200 ms keeps the socket busy but never finishes the head
    let trickle = async {
        for byte in b"GET /peer HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(3), trickle).await.ok();
    let closed_after = started.elapsed();
    let answer = read_to_close(&mut stream, Duration::from_secs(1)).await;
    assert!(answer.is_some_and(|a| a.is_empty()), "closed without an answer");
    assert!(
        closed_after < Duration::from_millis(2500),
        "closed {closed_after:?} after accept (timeout 1 s)"
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let server = start(limits(30, 1, 30, 16)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let answer = request(&mut stream, "GET /peer HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // the header-read timeout (30 s) would keep it; the keep-alive idle limit (1 s) does not
    let started = Instant::now();
    assert!(read_to_close(&mut stream, Duration::from_secs(3)).await.is_some());
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn a_request_that_takes_too_long_is_answered_408() {
    let server = start(limits(5, 5, 1, 16)).await;
    let http = reqwest::Client::new();
    let slow = http.get(format!("http://{}/slow", server.addr)).send().await.unwrap();
    assert_eq!(slow.status(), 408);
    // a body that never arrives counts too
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let answer = request(
        &mut stream,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    let server = start(HttpLimits::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    let answer = request(&mut stream, "GET /peer HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.ends_with(&local.to_string()), "{answer}");
}

#[tokio::test]
async fn at_the_cap_new_clients_wait_until_a_slot_frees() {
    let server = start(limits(1, 30, 30, 2)).await;
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /peer HTTP/1.1\r\n").await.unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let answer = reqwest::get(format!("http://{}/peer", server.addr)).await.unwrap();
    assert_eq!(answer.status(), 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "served after {waited:?}: the two stalled connections held both slots until their timeout"
    );
}

#[tokio::test]
async fn many_stalled_connections_are_closed_while_honest_requests_are_served() {
    let server = start(limits(2, 30, 30, 4096)).await;
    let mut stalled = Vec::new();
    for _ in 0..500 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        stalled.push(s);
    }
    let started = Instant::now();
    let honest = reqwest::Client::new()
        .post(format!("http://{}/echo", server.addr))
        .body("ok")
        .send()
        .await
        .unwrap();
    assert_eq!(honest.text().await.unwrap(), "ok");
    assert!(started.elapsed() < Duration::from_secs(1), "served at once beside them");
    for mut s in stalled {
        assert!(read_to_close(&mut s, Duration::from_secs(4)).await.is_some(), "closed");
    }
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish() {
    let server = start(limits(5, 5, 10, 16)).await;
    let slow = tokio::spawn({
        let url = format!("http://{}/slow", server.addr);
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.stop.cancel();
    assert_eq!(slow.await.unwrap(), "done");
    server.task.await.unwrap().unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err(), "no longer listening");
}
