//! Dedupe keys over structured payloads: two payloads described by the input, each sent as JSON
//! text in some field order and with other fields around, like SePay's retries and
//! reconciliation's copies of one transaction.
//!
//! Invariants: a key is well formed and never empty; the same payload keys the same whatever its
//! field order, formatting or non-identifying fields; a key is eventless exactly when the payload
//! has no positive SePay id, and otherwise is `sepay:<id>`; two eventless payloads key the same
//! exactly when their identifying fields read the same (no encoding ambiguity), also for the same
//! text cut into fields at different places.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sepay_core::{Amount, DedupeKey, Delivery, PayloadObject};
use serde_json::{Map, Value};

#[derive(Debug, Arbitrary)]
enum Field {
    Absent,
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Field {
    fn value(&self) -> Option<Value> {
        match self {
            Self::Absent => None,
            Self::Null => Some(Value::Null),
            Self::Text(s) => Some(Value::from(s.as_str())),
            Self::Int(i) => Some(Value::from(*i)),
            Self::Float(f) => Some(serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)),
            Self::Bool(b) => Some(Value::from(*b)),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Payload {
    id: Field,
    reference: Field,
    transfer_type: Field,
    amount: Field,
    account: Field,
    date: Field,
    noise: Vec<(u8, Field)>,
}

const NOISE: [&str; 6] = ["content", "description", "gateway", "accumulated", "code", "subAccount"];

impl Payload {
    fn identifying(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (k, f) in [
            ("id", &self.id),
            ("referenceCode", &self.reference),
            ("transferType", &self.transfer_type),
            ("transferAmount", &self.amount),
            ("accountNumber", &self.account),
            ("transactionDate", &self.date),
        ] {
            if let Some(v) = f.value() {
                m.insert(k.to_owned(), v);
            }
        }
        m
    }

    /// The payload as a body: fields in reverse order, with the noise fields, loosely spaced.
    fn body(&self) -> String {
        let mut entries: Vec<(String, Value)> = self.identifying().into_iter().collect();
        for (i, f) in &self.noise {
            if let Some(v) = f.value() {
                entries.push((NOISE[*i as usize % NOISE.len()].to_owned(), v));
            }
        }
        entries.reverse();
        let mut seen = std::collections::HashSet::new();
        entries.retain(|(k, _)| seen.insert(k.clone())); // JSON objects: last one wins; keep one
        let fields: Vec<String> = entries
            .iter()
            .map(|(k, v)| format!("\n {} : {v}", Value::from(k.as_str())))
            .collect();
        format!("{{{}\n}}", fields.join(" ,"))
    }
}

fn well_formed(key: &DedupeKey) -> bool {
    let s = key.as_str();
    if let Some(id) = s.strip_prefix("sepay:") {
        id.parse::<i64>().is_ok_and(|i| i > 0 && i.to_string() == id)
    } else if let Some(hash) = s.strip_prefix("sepay-noid:") {
        hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    } else {
        false
    }
}

/// What identifies an eventless transaction, as the documented rule reads it.
fn identity(p: &PayloadObject) -> [String; 5] {
    let text = |f: &str| p.text(f).unwrap_or_default();
    let amount = match Amount::from_json(p.get("transferAmount")) {
        Ok(a) => a.magnitude().to_string(),
        Err(_) => p.get("transferAmount").map(Value::to_string).unwrap_or_default(),
    };
    [
        text("referenceCode"),
        text("transferType").to_ascii_lowercase(),
        amount,
        text("accountNumber"),
        text("transactionDate"),
    ]
}

fn check(p: &Payload) -> (PayloadObject, DedupeKey) {
    let payload = PayloadObject(p.identifying());
    let key = DedupeKey::for_payload(&payload);
    assert!(!key.as_str().is_empty() && well_formed(&key), "{key:?}");
    assert_eq!(key.is_eventless(), payload.sepay_id().is_none());
    if let Some(id) = payload.sepay_id() {
        assert_eq!(key.as_str(), format!("sepay:{id}"));
    }
    let body = p.body();
    match Delivery::parse(body.as_bytes()) {
        Delivery::Object(sent) => assert_eq!(DedupeKey::for_payload(&sent), key, "{body}"),
        // an object holding U+0000 is kept as raw text (Postgres cannot hold it in jsonb)
        Delivery::NotAnObject { .. } => assert!(body.contains("\\u0000"), "a JSON object did not parse as one: {body}"),
    }
    (payload, key)
}

/// The same text cut into the five identifying fields in two ways: the pairs an ambiguous
/// encoding would collide on (independent payloads almost never line up like this).
#[derive(Debug, Arbitrary)]
struct Cuts {
    segments: Vec<String>,
    a: [u8; 4],
    b: [u8; 4],
}

impl Cuts {
    fn payload(&self, cuts: [u8; 4]) -> PayloadObject {
        let n = self.segments.len();
        let mut c = cuts.map(|x| x as usize % (n + 1));
        c.sort_unstable();
        let bounds = [0, c[0], c[1], c[2], c[3], n];
        let mut m = Map::new();
        for (i, k) in IDENTIFYING.iter().enumerate() {
            m.insert(
                (*k).to_owned(),
                Value::from(self.segments[bounds[i]..bounds[i + 1]].join("\u{1f}")),
            );
        }
        PayloadObject(m)
    }
}

const IDENTIFYING: [&str; 5] = [
    "referenceCode",
    "transferType",
    "transferAmount",
    "accountNumber",
    "transactionDate",
];

fuzz_target!(|input: (Payload, Payload, Cuts)| {
    let (pair_a, pair_b, cuts) = input;
    let (a, ka) = check(&pair_a);
    let (b, kb) = check(&pair_b);
    if ka.is_eventless() && kb.is_eventless() {
        assert_eq!(ka == kb, identity(&a) == identity(&b), "{a:?} {b:?}");
    }
    if let (Some(x), Some(y)) = (a.sepay_id(), b.sepay_id()) {
        assert_eq!(ka == kb, x == y);
    }

    let (a, b) = (cuts.payload(cuts.a), cuts.payload(cuts.b));
    let (ka, kb) = (DedupeKey::for_payload(&a), DedupeKey::for_payload(&b));
    assert_eq!(ka == kb, identity(&a) == identity(&b), "{a:?} {b:?}");
});
