//! What several test files share: the ingress and a processor in the test's process.

use sepay_bus::NatsConfig;
use sepay_ingress::IngressConfig;
use sepay_processor::{Classifier, FallbackOnly, ProcessorConfig};
use sepay_testkit::TestDb;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Ingress and processor in this process, as `sepayctl up` runs them.
pub struct System {
    pub url: String,
    pub stop: CancellationToken,
}

impl System {
    pub async fn start(db: &TestDb, nats: &NatsConfig) -> Self {
        Self::start_with(db, nats, Arc::new(FallbackOnly)).await
    }

    pub async fn start_with(db: &TestDb, nats: &NatsConfig, classifier: Arc<dyn Classifier>) -> Self {
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let ingress = IngressConfig {
            relay_interval_ms: 100,
            relay_min_age_ms: 200,
            ..Default::default()
        };
        let bus = sepay_bus::Bus::connect(nats).await.unwrap();
        tokio::spawn(sepay_ingress::serve(
            listener,
            None,
            ingress,
            db.pool.clone(),
            bus.clone(),
            stop.clone(),
        ));
        let processor = ProcessorConfig {
            processor_concurrency: 8,
            ..Default::default()
        };
        tokio::spawn(sepay_processor::consume(
            processor,
            db.pool.clone(),
            bus,
            classifier,
            stop.clone(),
        ));
        Self { url, stop }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
