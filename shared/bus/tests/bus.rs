//! The bus against the real NATS: idempotent publication and trace context across the queue.

use futures::StreamExt;
use opentelemetry::trace::TraceContextExt;
use sepay_bus::{ConsumerSettings, EventReceived};
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

fn settings() -> ConsumerSettings {
    ConsumerSettings {
        ack_wait: Duration::from_secs(5),
        max_deliver: 3,
        max_ack_pending: 10,
    }
}

#[tokio::test]
async fn the_same_attempt_is_stored_once_and_a_new_attempt_again() {
    let (bus, _) = sepay_testkit::test_bus(&sepay_testkit::nats_url()).await;
    bus.ensure_events_stream().await.unwrap();
    let event = EventReceived {
        event_id: 7,
        ws_id: Uuid::new_v4(),
        attempt: 1,
    };
    assert!(!bus.publish_event_received(&event).await.unwrap());
    assert!(
        bus.publish_event_received(&event).await.unwrap(),
        "second publish is a duplicate"
    );
    assert!(
        !bus.publish_event_received(&EventReceived { attempt: 2, ..event })
            .await
            .unwrap()
    );
    assert_eq!(bus.events_stream_len().await.unwrap(), 2);
}

#[tokio::test]
async fn the_consumer_continues_the_publishers_trace() {
    let _guard = sepay_telemetry::init("bus-test", sepay_telemetry::LogFormat::Text);
    let (bus, _) = sepay_testkit::test_bus(&sepay_testkit::nats_url()).await;
    bus.ensure_events_stream().await.unwrap();
    let event = EventReceived {
        event_id: 1,
        ws_id: Uuid::new_v4(),
        attempt: 1,
    };
    let publisher = tracing::info_span!("publish");
    let trace_id = publisher.context().span().span_context().trace_id();
    assert_ne!(trace_id, opentelemetry::trace::TraceId::INVALID);
    {
        let _entered = publisher.enter();
        bus.publish_event_received(&event).await.unwrap();
    }
    let consumer = bus.events_consumer("bus-test", &settings()).await.unwrap();
    let message = consumer.messages().await.unwrap().next().await.unwrap().unwrap();
    let headers = message.headers.as_ref().expect("headers");
    let traceparent = headers
        .get("traceparent")
        .expect("traceparent header")
        .as_str()
        .to_owned();
    assert!(traceparent.contains(&trace_id.to_string()), "{traceparent}");
    assert!(headers.get("Nats-Msg-Id").is_some());
    // the payload carries ids only
    let body: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["attempt", "event_id", "ws_id"]
    );

    let processing = tracing::info_span!("process");
    sepay_bus::continue_trace(&processing, message.headers.as_ref());
    assert_eq!(processing.context().span().span_context().trace_id(), trace_id);
    message.double_ack().await.unwrap();
}
