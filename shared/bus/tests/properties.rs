//! Property tests of the bus envelope (no NATS needed): every message the services publish
//! decodes back to what was sent, and message ids and subject names are unambiguous.

use proptest::prelude::*;
use sepay_bus::{BusNames, ControlRequest, ControlSubject, EventReceived};
use uuid::Uuid;

fn uuid() -> impl Strategy<Value = Uuid> {
    prop_oneof![
        any::<u128>().prop_map(Uuid::from_u128),
        Just(Uuid::nil()),
        Just(Uuid::max()),
    ]
}

fn event() -> impl Strategy<Value = EventReceived> {
    (any::<i64>(), uuid(), any::<i32>()).prop_map(|(event_id, ws_id, attempt)| EventReceived {
        event_id,
        ws_id,
        attempt,
    })
}

fn control_request() -> impl Strategy<Value = ControlRequest> {
    (
        uuid(),
        proptest::option::of(uuid()),
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<String>()),
    )
        .prop_map(|(ws_id, endpoint_id, from, to)| ControlRequest {
            ws_id,
            endpoint_id,
            from,
            to,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn event_received_round_trips(e in event()) {
        let bytes = serde_json::to_vec(&e).unwrap();
        prop_assert_eq!(serde_json::from_slice::<EventReceived>(&bytes).unwrap(), e);
        // and as a value, the way a consumer that peeks at fields would see it
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(serde_json::from_value::<EventReceived>(value).unwrap(), e);
    }

    /// `Nats-Msg-Id` names exactly one (event, attempt): different attempts are different
    /// messages, so a reopened event is published again.
    #[test]
    fn message_ids_are_unambiguous(a in event(), b in event()) {
        let (ida, idb) = (a.message_id(), b.message_id());
        prop_assert_eq!(ida == idb, (a.event_id, a.attempt) == (b.event_id, b.attempt), "{} {}", ida, idb);
        // the id is recoverable: the first '-' after the event id's own sign separates
        let rest = ida.strip_prefix("sepay-event-").unwrap();
        let split = rest[1..].find('-').unwrap() + 1;
        prop_assert_eq!(rest[..split].parse::<i64>().unwrap(), a.event_id);
        prop_assert_eq!(rest[split + 1..].parse::<i32>().unwrap(), a.attempt);
    }

    #[test]
    fn control_request_round_trips(r in control_request()) {
        let bytes = serde_json::to_vec(&r).unwrap();
        prop_assert_eq!(serde_json::from_slice::<ControlRequest>(&bytes).unwrap(), r.clone());
        // absent optional fields are left out, not written as null
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(value.as_object().unwrap().len(), 1 + [r.endpoint_id.is_some(), r.from.is_some(), r.to.is_some()].iter().filter(|x| **x).count());
    }

    /// Whatever the prefix, a control subject maps back to itself and to nothing else.
    #[test]
    fn control_subjects_map_back(prefix in "[A-Za-z0-9_-]{0,12}", i in 0usize..5) {
        let names = BusNames::new(&prefix);
        let subject = ControlSubject::ALL[i];
        prop_assert_eq!(names.control_subject_of(&names.control_subject(subject)), Some(subject));
        prop_assert_eq!(names.control_subject_of(&names.events_received()), None);
    }
}
