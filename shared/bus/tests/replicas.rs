//! `NATS_STREAM_REPLICAS` against real nats-servers: the shared single server, and a 3-node
//! JetStream cluster of the test's own.

use sepay_bus::{Bus, BusError, NatsConfig};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

async fn bus_with(config: &NatsConfig, replicas: usize) -> Bus {
    let config = NatsConfig {
        nats_stream_replicas: replicas,
        ..config.clone()
    };
    Bus::connect(&config).await.expect("tests need NATS with JetStream")
}

/// The stream's replica count as the server reports it now. A cluster that has just formed may
/// answer a created stream's info with "stream not found" for a moment (the node the client
/// asks has not applied the creation yet): asked again for up to 10 s.
async fn replicas_of(stream: sepay_bus::BusResult<async_nats::jetstream::stream::Stream>) -> usize {
    let mut stream = stream.expect("stream");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match stream.info().await {
            Ok(info) => return info.config.num_replicas,
            Err(err) if Instant::now() < deadline => {
                eprintln!("stream info not yet: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("stream info: {err:?}"),
        }
    }
}

#[tokio::test]
async fn one_replica_by_default_on_a_single_server() {
    let (bus, config) = sepay_testkit::test_bus(&sepay_testkit::nats_url()).await;
    assert_eq!(config.nats_stream_replicas, 1);
    assert_eq!(replicas_of(bus.ensure_events_stream().await).await, 1);
    assert_eq!(replicas_of(bus.ensure_control_stream().await).await, 1);
}

fn assert_one_clear_line(err: &BusError, doing: &str) {
    let line = err.to_string();
    assert!(matches!(err, BusError::Replicas { replicas: 3, .. }), "{err:?}");
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(line.starts_with("NATS_STREAM_REPLICAS=3: stream "), "{line}");
    assert!(line.contains(doing), "{line}");
    assert!(line.contains("not a JetStream cluster"), "{line}");
    assert!(line.contains("set NATS_STREAM_REPLICAS=1"), "{line}");
}

#[tokio::test]
async fn three_replicas_on_a_single_server_is_one_line_naming_the_setting() {
    let (_, config) = sepay_testkit::test_bus(&sepay_testkit::nats_url()).await;
    let bus = bus_with(&config, 3).await;
    let err = bus
        .ensure_events_stream()
        .await
        .expect_err("a single server refuses 3 replicas");
    assert_one_clear_line(&err, "cannot be created");
    let err = bus.ensure_control_stream().await.expect_err("for every stream");
    assert_one_clear_line(&err, "cannot be created");
    // the processor's consumer goes through the same door
    let settings = sepay_bus::ConsumerSettings {
        ack_wait: Duration::from_secs(5),
        max_deliver: 3,
        max_ack_pending: 10,
    };
    let err = bus.events_consumer("replicas-test", &settings).await.unwrap_err();
    assert_one_clear_line(&err, "cannot be created");
}

#[tokio::test]
async fn raising_an_existing_streams_replicas_on_a_single_server_is_one_line_too() {
    let (one, config) = sepay_testkit::test_bus(&sepay_testkit::nats_url()).await;
    one.ensure_events_stream().await.unwrap();
    let err = bus_with(&config, 3).await.ensure_events_stream().await.unwrap_err();
    assert_one_clear_line(&err, "cannot be raised from 1 to 3 replicas");
    // the stream is untouched and still serves the default
    assert_eq!(replicas_of(one.ensure_events_stream().await).await, 1);
}

#[test]
fn the_setting_takes_1_to_5() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        nats: NatsConfig,
    }
    let parse = |v: &str| {
        Cli::try_parse_from(["t", &format!("--nats-stream-replicas={v}")]).map(|c| c.nats.nats_stream_replicas)
    };
    assert_eq!(Cli::try_parse_from(["t"]).unwrap().nats.nats_stream_replicas, 1);
    assert_eq!(parse("3").unwrap(), 3);
    assert_eq!(parse("5").unwrap(), 5);
    for bad in ["0", "6", "-1", "three", ""] {
        let err = parse(bad).unwrap_err().to_string();
        assert!(err.contains("from 1 to 5"), "{bad}: {err}");
    }
}

/// Three nats-servers routed into one JetStream cluster on loopback, each with its own store.
struct Cluster {
    children: Vec<Child>,
    client_ports: Vec<u16>,
    store: PathBuf,
}

impl Cluster {
    fn start() -> Self {
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "/usr/sbin/nats-server".into());
        let store = std::env::temp_dir().join(format!("sepay-nats-cluster-{}", Uuid::new_v4().simple()));
        let client_ports: Vec<u16> = (0..3).map(|_| sepay_testkit::free_port()).collect();
        let route_ports: Vec<u16> = (0..3).map(|_| sepay_testkit::free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let children = (0..3)
            .map(|i| {
                Command::new(&binary)
                    .args(["-a", "127.0.0.1", "-p", &client_ports[i].to_string(), "-js"])
                    .args(["-n", &format!("n{i}"), "--cluster_name", "sepay-test"])
                    .args(["--cluster", &format!("nats://127.0.0.1:{}", route_ports[i])])
                    .args(["--routes", &routes, "-sd"])
                    .arg(store.join(format!("n{i}")))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"))
            })
            .collect();
        Self {
            children,
            client_ports,
            store,
        }
    }

    fn url(&self) -> String {
        self.client_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// Retries while the cluster elects its JetStream leader.
async fn settled<T>(mut attempt: impl AsyncFnMut() -> sepay_bus::BusResult<T>) -> sepay_bus::BusResult<T> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match attempt().await {
            Err(err) if Instant::now() < deadline && !matches!(err, BusError::Replicas { .. }) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            result => return result,
        }
    }
}

#[tokio::test]
async fn a_cluster_raises_replicas_to_the_setting_and_never_lowers_them() {
    let cluster = Cluster::start();
    let config = NatsConfig {
        nats_url: cluster.url(),
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let one = loop {
        match Bus::connect(&NatsConfig {
            nats_stream_replicas: 1,
            ..config.clone()
        })
        .await
        {
            Ok(bus) => break bus,
            Err(err) => {
                assert!(Instant::now() < deadline, "cluster did not start: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(
        replicas_of(settled(async || one.ensure_events_stream().await).await).await,
        1
    );

    let settings = sepay_bus::ConsumerSettings {
        ack_wait: Duration::from_secs(5),
        max_deliver: 3,
        max_ack_pending: 10,
    };
    settled(async || one.events_consumer("replicas-test", &settings).await)
        .await
        .unwrap();

    let three = bus_with(&config, 3).await;
    assert_eq!(
        replicas_of(settled(async || three.ensure_events_stream().await).await).await,
        3
    );
    assert_eq!(
        replicas_of(settled(async || three.ensure_control_stream().await).await).await,
        3
    );

    // the durable consumer follows its stream (it sets no replica count of its own)
    let mut consumer = settled(async || three.events_consumer("replicas-test", &settings).await)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = consumer.info().await.unwrap();
        // the leader plus two followers: three copies
        let copies = info
            .cluster
            .as_ref()
            .filter(|c| c.leader.is_some())
            .map(|c| c.replicas.len() + 1);
        if copies == Some(3) {
            break;
        }
        assert!(Instant::now() < deadline, "consumer copies {copies:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // a client left at the default (an operator's sepayctl) keeps the cluster's copies
    assert_eq!(replicas_of(one.ensure_events_stream().await).await, 3);
    assert_eq!(replicas_of(one.ensure_control_stream().await).await, 3);
    // and the stream still takes messages
    let event = sepay_bus::EventReceived {
        event_id: 1,
        ws_id: Uuid::new_v4(),
        attempt: 1,
    };
    // the stream may move its leader while the new copies join (up to 0.5 s seen here)
    assert!(
        !settled(async || one.publish_event_received(&event).await)
            .await
            .unwrap()
    );
    assert_eq!(one.events_stream_len().await.unwrap(), 1);
}
