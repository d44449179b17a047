//! Striga's five documented SEPA webhook samples (seed 003, verbatim in `fixtures/striga/`), the
//! same events written the other ways Striga sends them, and malformed bodies.

use proptest::prelude::*;
use rust_decimal::Decimal;
use sepay_core::striga::dedupe_key_of;
use sepay_core::{BalanceCheck, Direction, PayoutStatus, StrigaEffect, StrigaError, StrigaEvent, StrigaEventType};
use serde_json::{Value, json};
use std::str::FromStr;

const PAYIN: &str = include_str!("fixtures/striga/payin_completed.json");
const INITIATED: &str = include_str!("fixtures/striga/payout_initiated.json");
const COMPLETED: &str = include_str!("fixtures/striga/payout_completed.json");
const FAILED: &str = include_str!("fixtures/striga/payout_failed.json");
const DENIED: &str = include_str!("fixtures/striga/payout_denied.json");
const SAMPLES: [&str; 5] = [PAYIN, INITIATED, COMPLETED, FAILED, DENIED];

const AMOUNT_FIELDS: [&[&str]; 4] = [
    &["credit"],
    &["debit"],
    &["balanceBefore", "amount"],
    &["balanceAfter", "amount"],
];

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn parse(value: &Value) -> Result<StrigaEvent, StrigaError> {
    StrigaEvent::parse(value.to_string().as_bytes())
}

fn field<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, key| v.get_mut(key))
}

/// Amounts written the other way: numbers as strings, strings as numbers.
fn swapped(sample: &Value) -> Value {
    let mut v = sample.clone();
    for path in AMOUNT_FIELDS {
        if let Some(amount) = field(&mut v, path) {
            *amount = match &*amount {
                Value::String(s) => json!(s.parse::<u64>().unwrap()),
                other => json!(other.to_string()),
            };
        }
    }
    v
}

/// The zero side (credit or debit) left out.
fn zero_side_removed(sample: &Value) -> Value {
    let mut v = sample.clone();
    v.as_object_mut().unwrap().retain(|k, amount| {
        !(matches!(k.as_str(), "credit" | "debit") && (amount == &json!(0) || amount == &json!("0")))
    });
    v
}

#[test]
fn every_sample_parses_and_books_as_documented() {
    let id = |n: &str| match n {
        "payin" => "ad8b61cf-ea28-4f2f-a0ee-170b47d3d136",
        "payout" => "60c12078-456f-460a-8cbe-8657edd9b3e2",
        "failed" => "6c92c163-938b-4984-9152-d2377bc4d8fb",
        _ => "345c58d7-4f83-4fe1-afd2-24960a5b1e8e",
    };
    // (sample, effect, amount booked, dedupe key, external ref, timestamp, description)
    let cases = [
        (
            PAYIN,
            StrigaEffect::Credit(dec("5.00")),
            Some("5.00"),
            format!("striga:{}:SEPA_PAYIN_COMPLETED", id("payin")),
            Some(format!("striga:{}:payin", id("payin"))),
            "2023-08-22T09:05:53.615Z",
            "Simulate Payin · Boris Johnson · 20230822-V4SD5L",
        ),
        (
            INITIATED,
            StrigaEffect::Debit(dec("-1.00")),
            Some("-1.00"),
            format!("striga:{}:SEPA_PAYOUT_INITIATED", id("payout")),
            Some(format!("striga:{}:payout", id("payout"))),
            "2022-08-29T10:09:12.207Z",
            "whiteboard vortals compelling-FYelJ8mbUa · Herta Frances Bruen · 20220829-C9WRON",
        ),
        (
            COMPLETED,
            StrigaEffect::Settle,
            None,
            format!("striga:{}:SEPA_PAYOUT_COMPLETED", id("payout")),
            None,
            "2022-08-29T10:09:25.907Z",
            "whiteboard vortals compelling-FYelJ8mbUa · 20220829-C9WRON",
        ),
        (
            FAILED,
            StrigaEffect::Reversal(dec("401.20")),
            Some("401.20"),
            format!("striga:{}:SEPA_PAYOUT_FAILED", id("failed")),
            Some(format!("striga:{}:reversal", id("failed"))),
            "2023-08-31T10:16:28.774Z",
            "vEDXfwo5ij · 20230831-3L2H3W",
        ),
        (
            DENIED,
            StrigaEffect::Reversal(dec("0.22")),
            Some("0.22"),
            format!("striga:{}:SEPA_PAYOUT_DENIED", id("denied")),
            Some(format!("striga:{}:reversal", id("denied"))),
            "2023-01-03T12:05:20.112Z",
            "SEPA_PAYOUT_INITIATED_LFhEtNYpKI · Lenny Randy Treutel",
        ),
    ];
    for (sample, effect, amount, key, external_ref, timestamp, description) in cases {
        let event = StrigaEvent::parse(sample.as_bytes()).unwrap();
        let what = event.event_type;
        assert_eq!(event.effect(), effect, "{what}");
        // exact decimals, scale included: 5.00, not 5
        assert_eq!(
            event.effect().amount().map(|a| a.to_string()).as_deref(),
            amount,
            "{what}"
        );
        assert_eq!(event.dedupe_key().as_str(), key, "{what}");
        assert_eq!(event.external_ref(), external_ref, "{what}");
        assert_eq!(event.balance_check(), BalanceCheck::Consistent, "{what}");
        assert_eq!(
            event.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            timestamp
        );
        assert_eq!(event.description, description, "{what}");
        assert!(event.raw.contains_key("bankingPaymentType"), "{what}");
    }
    let payin = StrigaEvent::parse(PAYIN.as_bytes()).unwrap();
    assert_eq!(payin.account_id.as_deref(), Some("0148ae0856b1457ff3b59f2ac965b58e"));
    assert_eq!(payin.synced_owner_id, "b2ccf978-2da7-4ac9-9db7-5398c4c6b212");
    assert_eq!(payin.balance_after, Some(dec("9804.00")));
    assert_eq!(StrigaEvent::parse(INITIATED.as_bytes()).unwrap().account_id, None);
}

#[test]
fn the_payout_samples_fold_to_settled_in_either_order() {
    let types = [INITIATED, COMPLETED].map(|s| StrigaEvent::parse(s.as_bytes()).unwrap().event_type);
    let fold = |order: &[StrigaEventType]| order.iter().fold(None, |s, &t| PayoutStatus::apply(s, t));
    assert_eq!(fold(&types), Some(PayoutStatus::Settled));
    assert_eq!(fold(&[types[1], types[0]]), Some(PayoutStatus::Settled));
}

#[test]
fn variants_of_every_sample_read_the_same() {
    for sample in SAMPLES {
        let sample: Value = serde_json::from_str(sample).unwrap();
        let want = parse(&sample).unwrap();
        for variant in [
            swapped(&sample),
            zero_side_removed(&sample),
            zero_side_removed(&swapped(&sample)),
        ] {
            let got = parse(&variant).unwrap_or_else(|e| panic!("{variant}: {e}"));
            let what = format!("{}: {variant}", want.event_type);
            assert_eq!(got.effect(), want.effect(), "{what}");
            assert_eq!((got.credit, got.debit), (want.credit, want.debit), "{what}");
            assert_eq!(
                (got.balance_before, got.balance_after),
                (want.balance_before, want.balance_after),
                "{what}"
            );
            assert_eq!(got.dedupe_key(), want.dedupe_key(), "{what}");
            assert_eq!(got.balance_check(), BalanceCheck::Consistent, "{what}");
        }
    }
}

#[test]
fn a_tampered_balance_is_a_mismatch() {
    for sample in SAMPLES {
        let mut v: Value = serde_json::from_str(sample).unwrap();
        let after = parse(&v).unwrap().balance_after.unwrap();
        *field(&mut v, &["balanceAfter", "amount"]).unwrap() = json!((after + dec("0.01")).mantissa().to_string());
        assert_eq!(
            parse(&v).unwrap().balance_check(),
            BalanceCheck::Mismatch {
                expected: after,
                actual: after + dec("0.01")
            },
            "{sample}"
        );
        v.as_object_mut().unwrap().remove("balanceBefore");
        assert_eq!(parse(&v).unwrap().balance_check(), BalanceCheck::NotReported);
    }
}

#[test]
fn malformed_bodies_are_errors() {
    let payin = |from: &str, to: &str| {
        assert!(PAYIN.contains(from), "{from}");
        PAYIN.replacen(from, to, 1)
    };
    let credit = |to: &str| payin(r#""credit": "500""#, &format!(r#""credit": {to}"#));
    type IsExpected = fn(&StrigaError) -> bool;
    let cases: Vec<(String, IsExpected)> = vec![
        ("not json".into(), |e| *e == StrigaError::NotAnObject),
        ("".into(), |e| *e == StrigaError::NotAnObject),
        ("[1, 2]".into(), |e| *e == StrigaError::NotAnObject),
        ("\"SEPA_PAYIN_COMPLETED\"".into(), |e| *e == StrigaError::NotAnObject),
        (PAYIN[..PAYIN.len() / 2].into(), |e| *e == StrigaError::NotAnObject),
        (format!("[{PAYIN}]"), |e| *e == StrigaError::NotAnObject),
        (payin(r#""id": "ad8b61cf-ea28-4f2f-a0ee-170b47d3d136","#, ""), |e| {
            *e == StrigaError::Missing("id")
        }),
        (payin(r#""type": "SEPA_PAYIN_COMPLETED","#, ""), |e| {
            *e == StrigaError::Missing("type")
        }),
        (
            payin(r#""type": "SEPA_PAYIN_COMPLETED""#, r#""type": "SEPA_PAYIN_REVERSED""#),
            |e| *e == StrigaError::UnknownType("SEPA_PAYIN_REVERSED".into()),
        ),
        (payin(r#""timestamp": "2023-08-22T09:05:53.615Z","#, ""), |e| {
            matches!(e, StrigaError::Timestamp(_))
        }),
        (payin(r#""currency": "cents""#, r#""currency": "EUR""#), |e| {
            matches!(
                e,
                StrigaError::Unit {
                    field: "balanceBefore",
                    ..
                }
            )
        }),
        (credit("-500"), |e| matches!(e, StrigaError::Amount { .. })),
        (credit(r#""-500""#), |e| matches!(e, StrigaError::Amount { .. })),
        (credit(r#""1.5""#), |e| matches!(e, StrigaError::Amount { .. })),
        (credit("1.5"), |e| matches!(e, StrigaError::Amount { .. })),
        (credit("1e3"), |e| matches!(e, StrigaError::Amount { .. })),
        (credit("500.0"), |e| matches!(e, StrigaError::Amount { .. })),
        (credit(r#""5e2""#), |e| matches!(e, StrigaError::Amount { .. })),
        (credit(r#""five""#), |e| matches!(e, StrigaError::Amount { .. })),
        (credit("123456789012345678901234567890"), |e| {
            matches!(e, StrigaError::Amount { .. })
        }),
        (credit(r#""123456789012345678901234567890""#), |e| {
            matches!(e, StrigaError::Amount { .. })
        }),
        (credit("0"), |e| matches!(e, StrigaError::Inconsistent { .. })),
        (payin(r#""amount": "979900""#, r#""amount": 1e400"#), |e| {
            matches!(e, StrigaError::NotAnObject)
        }),
    ];
    for (body, is_expected) in cases {
        let got = StrigaEvent::parse(body.as_bytes());
        assert!(got.as_ref().is_err_and(is_expected), "{got:?} from {body:.200}");
    }
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[0-9]{0,25}".prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(StrigaEventType::ALL.map(|t| t.as_str()).to_vec()).prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            (inner, "cents|CENTS|EUR|").prop_map(|(amount, currency)| json!({"amount": amount, "currency": currency})),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any field of any sample replaced by anything: an error or an event whose booking has the
    /// sign its type says, never a panic.
    #[test]
    fn no_field_value_panics(
        sample in prop::sample::select(&SAMPLES[..]),
        name in prop::sample::select(&["id", "type", "syncedOwnerId", "credit", "debit", "balanceBefore",
                                       "balanceAfter", "timestamp", "memo", "accountId"][..]),
        value in json_value(),
    ) {
        let mut v: Value = serde_json::from_str(sample).unwrap();
        v[name] = value;
        if let Ok(event) = parse(&v) {
            let ok = match event.effect() {
                StrigaEffect::Credit(a) | StrigaEffect::Reversal(a) => a > Decimal::ZERO,
                StrigaEffect::Debit(a) => a < Decimal::ZERO,
                StrigaEffect::Settle => event.credit.is_zero() && event.debit.is_zero(),
            };
            prop_assert!(ok, "{:?}", event);
        }
    }

    #[test]
    fn arbitrary_bytes_do_not_panic(body in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = StrigaEvent::parse(&body);
    }
}

#[test]
fn every_sample_normalizes_to_the_booking_it_makes_and_keys_as_the_processor_does() {
    // (sample, signed amount, direction, wallet ref): a settlement books nothing
    let table = [
        (
            PAYIN,
            Some("5.00"),
            Some(Direction::In),
            "0148ae0856b1457ff3b59f2ac965b58e",
        ),
        (
            INITIATED,
            Some("-1.00"),
            Some(Direction::Out),
            "eda728dc-ed0f-48d9-8d81-57dbdc669a46",
        ),
        (COMPLETED, None, None, "eda728dc-ed0f-48d9-8d81-57dbdc669a46"),
        (
            FAILED,
            Some("401.20"),
            Some(Direction::In),
            "c667bd515ad34f1ef53c2d4b253dc51c",
        ),
        (
            DENIED,
            Some("0.22"),
            Some(Direction::In),
            "751c8914b0ff59a0642284ece25ad798",
        ),
    ];
    for (sample, amount, direction, wallet_ref) in table {
        let event = StrigaEvent::parse(sample.as_bytes()).unwrap();
        let tx = event.normalize();
        assert_eq!(
            tx.as_ref().map(|t| t.signed_amount),
            amount.map(|a| Decimal::from_str(a).unwrap())
        );
        assert_eq!(tx.as_ref().map(|t| t.direction), direction);
        assert_eq!(event.wallet_refs()[0], wallet_ref);
        let Value::Object(body) = serde_json::from_str::<Value>(sample).unwrap() else {
            panic!("not an object")
        };
        assert_eq!(
            dedupe_key_of(&body),
            Some(event.dedupe_key()),
            "the ingress keys it as parsed"
        );
    }
    let unknown = json!({"id": "x", "type": "SEPA_SOMETHING_NEW"});
    assert_eq!(dedupe_key_of(unknown.as_object().unwrap()), None);
}
