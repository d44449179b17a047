//! A webhook body, as the ingress receives it: arbitrary bytes through `Delivery::parse`, the
//! dedupe key and `normalize`, the way the ingress and the processor run them.
//!
//! Invariants: parsing is total; a body is an object exactly when serde_json reads one, else it
//! is kept byte-for-byte (lossy UTF-8); the key is well formed and eventless exactly without a
//! SePay id; an accepted transaction has a positive in-range magnitude, the sign of its
//! direction and a date that formats back to itself; an error's detail echoes at most 40
//! characters of input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;
use sepay_core::vn_time::{format_vietnam_local, parse_vietnam_local};
use sepay_core::{DedupeKey, Delivery, Direction};
use std::str::FromStr;

fn well_formed(key: &DedupeKey) -> bool {
    let s = key.as_str();
    if let Some(id) = s.strip_prefix("sepay:") {
        id.parse::<i64>().is_ok_and(|i| i > 0 && i.to_string() == id)
    } else if let Some(hash) = s.strip_prefix("sepay-noid:").or_else(|| s.strip_prefix("raw:")) {
        hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    } else {
        false
    }
}

fuzz_target!(|data: &[u8]| {
    let delivery = Delivery::parse(data);
    assert_eq!(delivery, Delivery::parse(data), "parsing is deterministic");
    let payload = match delivery {
        Delivery::NotAnObject { raw } => {
            // not an object, or one holding U+0000 (which Postgres cannot store)
            assert!(
                !matches!(serde_json::from_slice::<serde_json::Value>(data), Ok(serde_json::Value::Object(_)))
                    || serde_json::from_slice::<serde_json::Value>(data).is_ok_and(|v| v.to_string().contains("\\u0000"))
            );
            assert_eq!(raw, String::from_utf8_lossy(data).replace('\0', "\u{FFFD}"));
            assert!(!raw.contains('\0'));
            let key = DedupeKey::for_raw_body(data);
            assert!(well_formed(&key) && key.as_str().starts_with("raw:") && !key.is_eventless());
            assert_eq!(key, DedupeKey::for_raw_body(data));
            return;
        }
        Delivery::Object(payload) => payload,
    };

    let key = DedupeKey::for_payload(&payload);
    assert!(well_formed(&key), "{key:?}");
    assert_eq!(key, DedupeKey::for_payload(&payload), "keys are deterministic");
    assert_eq!(key.is_eventless(), payload.sepay_id().is_none());
    if let Some(id) = payload.sepay_id() {
        assert!(id > 0);
        assert_eq!(key.as_str(), format!("sepay:{id}"));
    }

    match payload.normalize() {
        Ok(t) => {
            let m = t.amount.magnitude();
            assert!(m > Decimal::ZERO, "{m}");
            assert!(m <= Decimal::from(1_000_000_000_000_000i64), "{m}");
            assert!(m.scale() <= 4, "{m}");
            let tt = payload.text("transferType").expect("a direction was read");
            assert_eq!(Direction::parse(&tt), Some(t.direction));
            match t.direction {
                Direction::In => assert_eq!(t.signed_amount, m),
                Direction::Out => assert_eq!(t.signed_amount, -m),
            }
            // a numeric string keeps its exact digits: the magnitude is the text without its sign
            if let Some(serde_json::Value::String(s)) = payload.get("transferAmount") {
                let digits = s.trim().trim_start_matches(['+', '-']);
                if let Ok(sent) = Decimal::from_str(digits) {
                    assert_eq!(sent.normalize(), m, "{s:?}");
                }
            }
            assert!(!t.account_number.is_empty());
            assert_eq!(t.account_number.trim(), t.account_number);
            assert_eq!(t.sepay_id, payload.sepay_id());
            assert_eq!(parse_vietnam_local(&format_vietnam_local(t.taken_at)), Some(t.taken_at));
        }
        Err(e) => {
            // the detail is bounded (40 characters, then Debug-escaped), whatever was sent
            let message = e.to_string();
            assert!(message.len() <= 600, "{} bytes: {message}", message.len());
            let _ = e.reason();
        }
    }
});
