//! Property tests of the pure core (proptest): amounts and directions survive normalization,
//! the repeat rules of the design hold over every input, dedupe keys are stable and well formed.
//!
//! Case counts are modest (see `config`) so the whole file runs in well under a second or two in
//! debug; raise them with `PROPTEST_CASES=10000 cargo test -p sepay-core --test properties`.

use proptest::prelude::*;
use rust_decimal::Decimal;
use sepay_core::lifecycle::ExistingEvent;
use sepay_core::{
    DedupeKey, Delivery, Direction, EventStatus, FailureReason, PayloadObject, RepeatDecision, RetryPolicy,
};
use serde_json::{Map, Value, json};
use std::str::FromStr;
use std::time::Duration;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        ..ProptestConfig::default()
    }
}

fn parse_object(body: &str) -> PayloadObject {
    match Delivery::parse(body.as_bytes()) {
        Delivery::Object(p) => p,
        other => panic!("not an object: {other:?} from {body}"),
    }
}

// ---------------------------------------------------------------- generators

/// A valid `transactionDate`, with either separator SePay uses.
fn date() -> impl Strategy<Value = String> {
    (
        2000u32..2100,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        any::<bool>(),
    )
        .prop_map(|(y, mo, d, h, mi, s, t)| {
            format!(
                "{y:04}-{mo:02}-{d:02}{}{h:02}:{mi:02}:{s:02}",
                if t { 'T' } else { ' ' }
            )
        })
}

/// `transferType` as SePay may spell it, with the direction it means.
fn transfer_type() -> impl Strategy<Value = (String, Direction)> {
    (
        prop_oneof![Just(Direction::In), Just(Direction::Out)],
        any::<bool>(),
        "[ \t]{0,2}",
        "[ \t]{0,2}",
    )
        .prop_map(|(d, upper, pre, post)| {
            let word = if upper {
                d.as_str().to_uppercase()
            } else {
                d.as_str().to_owned()
            };
            (format!("{pre}{word}{post}"), d)
        })
}

/// An amount the contract accepts: non-zero, at most 4 decimal places, magnitude at most 10^15.
fn valid_magnitude() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        // whole VND, the common case
        (1i64..=1_000_000_000_000_000).prop_map(Decimal::from),
        // up to 4 decimal places
        (0i64..1_000_000_000_000_000, 1u32..=4, 0i64..10_000)
            .prop_map(|(int, scale, frac)| Decimal::from(int) + Decimal::new(frac % 10i64.pow(scale), scale))
            .prop_filter("non-zero", |d| !d.is_zero()),
        // small amounts, where the fraction matters most
        (1i64..=10_000_000, 0u32..=4).prop_map(|(m, scale)| Decimal::new(m, scale)),
        Just(Decimal::from(1_000_000_000_000_000i64)),
        Just(Decimal::new(1, 4)),
    ]
}

/// The ways SePay (or a bank behind it) writes an amount, as JSON text.
#[derive(Debug, Clone, Copy)]
enum AmountForm {
    /// A JSON number, as the plainest decimal.
    Number,
    /// A JSON number with trailing zeros after the point (`1500.50`).
    NumberPadded,
    /// A JSON string, plain.
    Text,
    /// A JSON string with trailing zeros, surrounding blanks and an explicit sign.
    TextDecorated,
}

fn amount_form() -> impl Strategy<Value = AmountForm> {
    prop_oneof![
        Just(AmountForm::Number),
        Just(AmountForm::NumberPadded),
        Just(AmountForm::Text),
        Just(AmountForm::TextDecorated),
    ]
}

/// Renders `magnitude` (with `negative` sign) in `form`. JSON numbers with a fraction go through
/// f64 in serde_json, which is exact for up to 15 significant digits: longer ones are sent as
/// integers or strings (what SePay does; its amounts are whole VND).
fn render_amount(magnitude: Decimal, negative: bool, form: AmountForm, pad: usize) -> String {
    let plain = magnitude.normalize().to_string();
    let digits = plain.chars().filter(char::is_ascii_digit).count();
    let fits_f64 = magnitude.normalize().scale() == 0 || digits <= 15;
    let sign = if negative { "-" } else { "" };
    let zeros = "0".repeat(pad);
    let padded = if plain.contains('.') {
        format!("{plain}{zeros}")
    } else if pad > 0 {
        format!("{plain}.{zeros}")
    } else {
        plain.clone()
    };
    match form {
        AmountForm::Number if fits_f64 => format!("{sign}{plain}"),
        AmountForm::NumberPadded if fits_f64 => format!("{sign}{padded}"),
        AmountForm::Number | AmountForm::Text => format!("\"{sign}{plain}\""),
        AmountForm::NumberPadded | AmountForm::TextDecorated => {
            let sign = if negative { "-" } else { "+" };
            format!("\" {sign}{padded}\\t\"")
        }
    }
}

fn body(id: Option<&str>, transfer_type: &str, amount_json: &str, date: &str, account: &str) -> String {
    let id = id.map(|id| format!("\"id\": {id},")).unwrap_or_default();
    format!(
        r#"{{{id} "gateway": "Vietcombank", "transactionDate": {date}, "accountNumber": {account},
            "content": "payment", "transferType": {transfer_type}, "transferAmount": {amount_json},
            "referenceCode": "FT24001", "subAccount": null}}"#,
        date = Value::from(date),
        account = Value::from(account),
        transfer_type = Value::from(transfer_type),
    )
}

// ---------------------------------------------------------------- normalization

proptest! {
    #![proptest_config(config(256))]

    /// Whatever form the amount comes in, the normalized magnitude is the amount sent (sign
    /// dropped), and the booked sign is the direction's.
    #[test]
    fn normalize_keeps_the_magnitude_and_signs_by_direction(
        magnitude in valid_magnitude(),
        negative in any::<bool>(),
        form in amount_form(),
        pad in 0usize..3,
        (tt, direction) in transfer_type(),
        date in date(),
        account in "[0-9]{6,16}",
    ) {
        let amount_json = render_amount(magnitude, negative, form, pad);
        let payload = parse_object(&body(Some("92704"), &tt, &amount_json, &date, &account));
        let t = payload.normalize().map_err(|e| TestCaseError::fail(format!("{amount_json}: {e}")))?;
        prop_assert_eq!(t.amount.magnitude(), magnitude, "amount {}", amount_json);
        prop_assert_eq!(t.direction, direction);
        prop_assert_eq!(t.signed_amount.abs(), magnitude);
        match direction {
            Direction::In => prop_assert!(t.signed_amount > Decimal::ZERO),
            Direction::Out => prop_assert!(t.signed_amount < Decimal::ZERO),
        }
        prop_assert_eq!(t.account_number, account);
    }

    /// Any amount text: accepted exactly when it is a plain decimal, non-zero, with at most 4
    /// decimal places and at most 10^15, and then its magnitude is the digits sent. The oracle
    /// is string arithmetic, independent of the code under test.
    ///
    /// JSON numbers with a fraction are binary64 (RFC 8259 §6): up to 15 significant digits they
    /// are exact like strings; past that the amount is refused, or, when the literal rounds to a
    /// short binary64, is that value (within one part in 2^52), never a longer different one.
    #[test]
    fn amount_text_contract(
        pre in "[ ]{0,1}",
        sign in "[+-]{0,1}",
        int in "[0-9]{0,18}",
        frac in proptest::option::of(prop_oneof![3 => "[0-9]{0,6}", 1 => "[0-9]{0,4}0{18,30}[0-9]{0,2}"]),
        post in "[ ]{0,1}",
        as_number in any::<bool>(),
        (tt, direction) in transfer_type(),
    ) {
        let text = format!("{sign}{int}{}", frac.as_ref().map(|f| format!(".{f}")).unwrap_or_default());
        // JSON number grammar: no '+', digits on both sides of the point, no leading zeros
        let is_number = as_number
            && sign != "+"
            && !int.is_empty()
            && (int == "0" || !int.starts_with('0'))
            && frac.as_ref().is_none_or(|f| !f.is_empty());
        let amount_json = if is_number {
            text.clone()
        } else {
            format!("\"{pre}{text}{post}\"")
        };
        let payload = parse_object(&body(None, &tt, &amount_json, "2024-01-01 10:00:00", "0071000888888"));

        // the oracle: canonical digits without sign, leading zeros or trailing fractional zeros
        let has_digit = !int.is_empty() || frac.as_ref().is_some_and(|f| !f.is_empty());
        let int_c = int.trim_start_matches('0');
        let frac_c = frac.as_deref().unwrap_or("").trim_end_matches('0');
        let canonical = match (int_c.is_empty(), frac_c.is_empty()) {
            (true, true) => "0".to_owned(),
            (false, true) => int_c.to_owned(),
            (true, false) => format!("0.{frac_c}"),
            (false, false) => format!("{int_c}.{frac_c}"),
        };
        let significant = format!("{int_c}{frac_c}").trim_start_matches('0').len();
        let lossy = is_number && frac.is_some() && significant > 15;
        let too_big = int_c.len() > 16 || (int_c.len() == 16 && canonical != "1000000000000000");
        let want: Result<&str, ()> = if !has_digit || canonical == "0" || frac_c.len() > 4 || too_big {
            Err(())
        } else {
            Ok(&canonical)
        };

        match (payload.normalize(), want) {
            (Ok(t), _) if lossy => {
                let m = t.amount.magnitude();
                let sent = Decimal::from_str(&canonical).unwrap();
                prop_assert!((m - sent).abs() <= sent * Decimal::new(3, 16), "amount {}: {}", amount_json, m);
                prop_assert!(m.normalize().to_string().trim_start_matches(['0', '.']).len() <= 16, "{}", m);
            }
            (Err(e), _) if lossy => prop_assert_eq!(e.reason(), FailureReason::InvalidAmount),
            (Ok(t), Ok(canonical)) => {
                prop_assert_eq!(t.amount.magnitude().to_string(), canonical, "amount {}", amount_json);
                prop_assert_eq!(t.direction, direction);
                prop_assert_eq!(t.signed_amount, t.amount.signed(direction));
                prop_assert_eq!(t.signed_amount.is_sign_negative(), direction == Direction::Out);
            }
            (Err(e), Err(())) => prop_assert_eq!(e.reason(), FailureReason::InvalidAmount, "amount {}", amount_json),
            (got, want) => return Err(TestCaseError::fail(format!("amount {amount_json}: got {got:?}, want {want:?}"))),
        }
    }

    /// Arbitrary JSON values in the money and direction fields: normalization never panics, and
    /// whatever it accepts is a positive magnitude within the contract, signed by `transferType`.
    #[test]
    fn normalize_is_total_and_what_it_accepts_is_in_contract(
        amount in arb_json(),
        tt in prop_oneof![transfer_type().prop_map(|(t, _)| Value::from(t)), arb_json()],
        date in prop_oneof![date().prop_map(Value::from), arb_json()],
        account in prop_oneof!["[0-9]{1,16}".prop_map(Value::from), arb_json()],
    ) {
        let mut map = Map::new();
        map.insert("transferAmount".into(), amount);
        map.insert("transferType".into(), tt.clone());
        map.insert("transactionDate".into(), date);
        map.insert("accountNumber".into(), account);
        let payload = PayloadObject(map);
        if let Ok(t) = payload.normalize() {
            let m = t.amount.magnitude();
            prop_assert!(m > Decimal::ZERO && m <= Decimal::from(1_000_000_000_000_000i64) && m.scale() <= 4, "{m}");
            let tt = tt.as_str().expect("only a string names a direction");
            prop_assert_eq!(Some(t.direction), Direction::parse(tt));
            prop_assert_eq!(t.signed_amount, if t.direction == Direction::In { m } else { -m });
            prop_assert!(!t.account_number.trim().is_empty());
        }
    }
}

/// JSON values of every kind, small.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        ".{0,12}".prop_map(Value::from),
        "[ +-]{0,2}[0-9.eE_,]{0,12}[ ]{0,1}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// ---------------------------------------------------------------- repeat rules

fn status() -> impl Strategy<Value = EventStatus> {
    prop::sample::select(EventStatus::ALL.to_vec())
}

/// Durations of every size, with extra weight on the edges of `around` (the policy's thresholds).
fn duration_near(around: Duration) -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..=3).prop_map(move |n| around.saturating_sub(Duration::from_nanos(n))),
        (0u64..=3).prop_map(move |n| around.saturating_add(Duration::from_nanos(n))),
        (0u64..=3).prop_map(move |s| around.saturating_sub(Duration::from_secs(s))),
        (0u64..=3).prop_map(move |s| around.saturating_add(Duration::from_secs(s))),
        (0u64..=86_400_000).prop_map(Duration::from_millis),
        any::<u64>().prop_map(Duration::from_secs),
        Just(Duration::ZERO),
        Just(Duration::MAX),
    ]
}

fn policy() -> impl Strategy<Value = RetryPolicy> {
    prop_oneof![
        Just(RetryPolicy::default()),
        (0u64..=3_600, 0u64..=3_600).prop_map(|(stale, window)| RetryPolicy {
            stale_after: Duration::from_secs(stale),
            eventless_window: Duration::from_secs(window),
        }),
        (duration_near(Duration::ZERO), duration_near(Duration::MAX)).prop_map(|(stale, window)| RetryPolicy {
            stale_after: stale,
            eventless_window: window,
        }),
    ]
}

fn policy_and_event() -> impl Strategy<Value = (RetryPolicy, ExistingEvent)> {
    policy().prop_flat_map(|p| {
        (
            Just(p),
            (
                status(),
                duration_near(p.stale_after),
                duration_near(p.eventless_window),
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(
                    |(status, opened_age, since_last_delivery, has_transaction, eventless)| ExistingEvent {
                        status,
                        opened_age,
                        since_last_delivery,
                        has_transaction,
                        eventless,
                    },
                ),
        )
    })
}

proptest! {
    #![proptest_config(config(512))]

    /// The design's repeat rules (`shared/design.md`, "Processing rules"; the eventless window
    /// from docs/architecture.md), each as an implication over every input.
    #[test]
    fn repeat_rules_of_the_design((p, e) in policy_and_event()) {
        use RepeatDecision::*;
        let d = p.decide_repeat(&e); // total: never panics
        let in_window = e.eventless && e.since_last_delivery < p.eventless_window;

        // processed / duplicate → 200 duplicate, nothing replayed
        if matches!(e.status, EventStatus::Processed | EventStatus::Duplicate) {
            prop_assert_eq!(d, Duplicate, "{:?}", e);
        }
        // an eventless repeat within the window is a duplicate and reopens nothing, whatever the status
        if in_window {
            prop_assert_eq!(d, Duplicate, "{:?}", e);
        }
        if !in_window {
            match e.status {
                // failed → reopen now
                EventStatus::Failed => prop_assert_eq!(d, Reopen, "{:?}", e),
                // received with a transaction is booked: never reopened
                EventStatus::Received if e.has_transaction => prop_assert_eq!(d, Duplicate, "{:?}", e),
                // received older than the stale TTL with no transaction → reopen
                EventStatus::Received if e.opened_age >= p.stale_after => prop_assert_eq!(d, Reopen, "{:?}", e),
                // fresh received → in flight
                EventStatus::Received => prop_assert_eq!(d, InFlight, "{:?}", e),
                _ => {}
            }
        }
        // only a received row is ever "in flight"; a booked row is never reopened
        if d == InFlight {
            prop_assert_eq!(e.status, EventStatus::Received);
            prop_assert!(!e.has_transaction);
        }
        if d == Reopen {
            prop_assert!(matches!(e.status, EventStatus::Failed | EventStatus::Received));
            prop_assert!(e.status == EventStatus::Failed || !e.has_transaction);
        }
    }

    /// Events with a SePay id: when the previous delivery came does not matter, only the stale
    /// clock (`opened_at`) does; SePay's own retries cannot keep an event fresh.
    #[test]
    fn only_eventless_repeats_look_at_the_last_delivery(
        (p, e) in policy_and_event(),
        other_last in any::<u64>().prop_map(Duration::from_millis),
    ) {
        let e = ExistingEvent { eventless: false, ..e };
        let moved = ExistingEvent { since_last_delivery: other_last, ..e };
        prop_assert_eq!(p.decide_repeat(&e), p.decide_repeat(&moved));
    }

    /// Staleness is monotone: once a received event would be reopened, an older one is too; and
    /// a younger one that is in flight stays in flight as it ages, until the TTL.
    #[test]
    fn staleness_is_monotone((p, e) in policy_and_event(), extra in any::<u64>().prop_map(Duration::from_millis)) {
        let older = ExistingEvent { opened_age: e.opened_age.saturating_add(extra), ..e };
        if p.decide_repeat(&e) == RepeatDecision::Reopen {
            prop_assert_eq!(p.decide_repeat(&older), RepeatDecision::Reopen);
        }
        if p.decide_repeat(&older) == RepeatDecision::InFlight {
            prop_assert_eq!(p.decide_repeat(&e), RepeatDecision::InFlight);
        }
    }
}

// ---------------------------------------------------------------- dedupe keys

fn identifying_fields() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::option::of(prop_oneof![
            (1i64..=i64::MAX).prop_map(Value::from),
            (1i64..=i64::MAX).prop_map(|i| Value::from(i.to_string())),
            (i64::MIN..=0).prop_map(Value::from),
            ".{0,6}".prop_map(Value::from),
            Just(Value::Null),
        ]),
        proptest::option::of(".{0,10}".prop_map(Value::from)),
        proptest::option::of(prop_oneof![
            transfer_type().prop_map(|(t, _)| Value::from(t)),
            arb_json()
        ]),
        proptest::option::of(arb_json()),
        proptest::option::of(prop_oneof!["[0-9]{0,14}".prop_map(Value::from), arb_json()]),
        proptest::option::of(prop_oneof![date().prop_map(Value::from), arb_json()]),
    )
        .prop_map(|(id, reference, tt, amount, account, date)| {
            let mut m = Map::new();
            for (k, v) in [
                ("id", id),
                ("referenceCode", reference),
                ("transferType", tt),
                ("transferAmount", amount),
                ("accountNumber", account),
                ("transactionDate", date),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_owned(), v);
                }
            }
            m
        })
}

/// Eventless payloads whose fields are short strings over `a`, `b`, blanks and the unit separator.
fn small_identity() -> impl Strategy<Value = Map<String, Value>> {
    let field = || proptest::option::of("[ab \u{1f}]{0,3}".prop_map(Value::from));
    let amount = proptest::option::of(prop_oneof![
        (1u64..4).prop_map(Value::from),
        "[1 .\u{1f}]{0,3}".prop_map(Value::from),
    ]);
    (field(), field(), amount, field(), field()).prop_map(|(reference, tt, amount, account, date)| {
        let mut m = Map::new();
        for (k, v) in [
            ("referenceCode", reference),
            ("transferType", tt),
            ("transferAmount", amount),
            ("accountNumber", account),
            ("transactionDate", date),
        ] {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        }
        m
    })
}

/// What identifies an eventless transaction, as the documented rule reads it.
fn identity(p: &PayloadObject) -> [String; 5] {
    let text = |f: &str| p.text(f).unwrap_or_default();
    let amount = match sepay_core::Amount::from_json(p.get("transferAmount")) {
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

proptest! {
    #![proptest_config(config(256))]

    /// A transaction's identity does not depend on the path that brought it: with its id (a
    /// webhook, or reconciliation) or without (an eventless webhook) it is the eventless key of
    /// the fields; and there is none without a reference number, so two transfers that differ
    /// only by being two are never merged.
    #[test]
    fn the_identity_is_the_same_with_and_without_the_id(fields in identifying_fields(), id in 1i64..=i64::MAX) {
        let mut with_id = fields.clone();
        with_id.insert("id".into(), Value::from(id));
        let mut without_id = fields.clone();
        without_id.remove("id");
        let (with_id, without_id) = (PayloadObject(with_id), PayloadObject(without_id));
        let identity = DedupeKey::identity(&with_id);
        prop_assert_eq!(&identity, &DedupeKey::identity(&without_id));
        match without_id.text("referenceCode") {
            Some(_) => prop_assert_eq!(identity, Some(DedupeKey::for_payload(&without_id))),
            None => prop_assert_eq!(identity, None),
        }
    }
}

fn well_formed(key: &DedupeKey) -> bool {
    let s = key.as_str();
    if let Some(id) = s.strip_prefix("sepay:") {
        id.parse::<i64>().is_ok_and(|i| i > 0 && i.to_string() == id)
    } else if let Some(hash) = s.strip_prefix("sepay-noid:").or_else(|| s.strip_prefix("raw:")) {
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    } else {
        false
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// The same payload, however it is serialized (field order, whitespace), and with any
    /// non-identifying field changed, keys the same; keys are never empty and well formed; a key
    /// is eventless exactly when the payload has no positive SePay id.
    #[test]
    fn dedupe_keys_are_stable_and_consistent(
        fields in identifying_fields(),
        noise in prop::collection::btree_map(
            "content|description|gateway|accumulated|code|subAccount",
            arb_json(),
            0..4,
        ),
        reverse in any::<bool>(),
    ) {
        let payload = PayloadObject(fields.clone());
        let key = DedupeKey::for_payload(&payload);
        prop_assert!(!key.as_str().is_empty());
        prop_assert!(well_formed(&key), "{}", key.as_str());
        prop_assert_eq!(&DedupeKey::for_payload(&payload), &key, "deterministic");
        prop_assert_eq!(key.is_eventless(), payload.sepay_id().is_none());
        if let Some(id) = payload.sepay_id() {
            prop_assert_eq!(key.as_str(), format!("sepay:{id}"));
        }

        // through bytes, with other fields around and in another order: the same key
        let mut entries: Vec<(String, Value)> = fields.into_iter().chain(noise).collect();
        if reverse {
            entries.reverse();
        }
        let text = format!(
            "{{ {} }}",
            entries.iter().map(|(k, v)| format!("{} :\n{v}", Value::from(k.as_str()))).collect::<Vec<_>>().join(" ,\t")
        );
        // (an object holding U+0000 is not stored as one: Postgres cannot hold it in jsonb)
        prop_assume!(!text.contains("\\u0000"));
        let reparsed = parse_object(&text);
        prop_assert_eq!(DedupeKey::for_payload(&reparsed), key);
    }

    /// Two eventless payloads key the same exactly when their identifying fields are the same
    /// (as read: trimmed, transferType lower-cased, the amount normalized). Field contents come
    /// from a tiny alphabet that includes the separator, so near-collisions are tried often.
    #[test]
    fn eventless_keys_are_injective(a in small_identity(), b in small_identity()) {
        let (pa, pb) = (PayloadObject(a), PayloadObject(b));
        let (ka, kb) = (DedupeKey::for_payload(&pa), DedupeKey::for_payload(&pb));
        prop_assert_eq!(ka == kb, identity(&pa) == identity(&pb), "{:?} {:?}", pa, pb);
    }

    /// The same, for pairs built to collide if the key's encoding were ambiguous: the same
    /// characters, cut into referenceCode/transferType and accountNumber/transactionDate at
    /// different separators.
    #[test]
    fn eventless_keys_do_not_depend_on_where_fields_are_cut(
        left in prop::collection::vec("[ab]{0,2}", 2..4),
        right in prop::collection::vec("[ab]{0,2}", 2..4),
        cuts in (0usize..3, 0usize..3, 0usize..3, 0usize..3),
    ) {
        let cut = |parts: &[String], at: usize| {
            let at = at % (parts.len() - 1) + 1;
            (parts[..at].join("\u{1f}"), parts[at..].join("\u{1f}"))
        };
        let payload = |i: usize, j: usize| {
            let (reference, tt) = cut(&left, i);
            let (account, date) = cut(&right, j);
            PayloadObject(
                json!({"referenceCode": reference, "transferType": tt, "transferAmount": 1000,
                       "accountNumber": account, "transactionDate": date})
                .as_object()
                .unwrap()
                .clone(),
            )
        };
        let (pa, pb) = (payload(cuts.0, cuts.1), payload(cuts.2, cuts.3));
        let (ka, kb) = (DedupeKey::for_payload(&pa), DedupeKey::for_payload(&pb));
        prop_assert_eq!(ka == kb, identity(&pa) == identity(&pb), "{:?} {:?}", pa, pb);
    }

    /// One bank transaction without an id, with its amount written any way SePay writes it,
    /// keys the same; another amount keys differently.
    #[test]
    fn eventless_keys_ignore_amount_formatting(
        magnitude in valid_magnitude(),
        (form_a, form_b) in (amount_form(), amount_form()),
        (pad_a, pad_b) in (0usize..3, 0usize..3),
        (tt, _) in transfer_type(),
        date in date(),
        account in "[0-9]{6,16}",
    ) {
        let key = |amount: String| DedupeKey::for_payload(&parse_object(&body(None, &tt, &amount, &date, &account)));
        let a = key(render_amount(magnitude, false, form_a, pad_a));
        let b = key(render_amount(magnitude, false, form_b, pad_b));
        prop_assert!(a.is_eventless());
        prop_assert_eq!(&a, &b);
        let other = magnitude + Decimal::new(1, 4);
        prop_assert_ne!(a, key(render_amount(other, false, form_a, 0)));
    }

    /// Arbitrary bytes: a body that is not an object is keyed by its bytes (same bytes, same key;
    /// never eventless); an object is keyed like its payload.
    #[test]
    fn raw_bodies_key_by_their_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        match Delivery::parse(&bytes) {
            Delivery::Object(p) => {
                prop_assert!(well_formed(&DedupeKey::for_payload(&p)));
            }
            Delivery::NotAnObject { raw } => {
                prop_assert_eq!(raw, String::from_utf8_lossy(&bytes).replace('\0', "\u{FFFD}"));
                let key = DedupeKey::for_raw_body(&bytes);
                prop_assert!(well_formed(&key) && key.as_str().starts_with("raw:") && !key.is_eventless());
                prop_assert_eq!(key, DedupeKey::for_raw_body(&bytes));
            }
        }
    }
}

#[test]
fn generators_cover_the_seed_sample() {
    // a fixed point for the generators above: the seed's own sample, in each amount form
    for form in [
        AmountForm::Number,
        AmountForm::NumberPadded,
        AmountForm::Text,
        AmountForm::TextDecorated,
    ] {
        let amount = render_amount(Decimal::from_str("2277000").unwrap(), false, form, 2);
        let t = parse_object(&body(Some("92704"), "in", &amount, "2023-03-25 14:02:37", "0123499999"))
            .normalize()
            .unwrap();
        assert_eq!(t.signed_amount, Decimal::from(2_277_000), "{amount}");
    }
    assert_eq!(
        DedupeKey::for_payload(&parse_object(&json!({"id": 92704}).to_string())).as_str(),
        "sepay:92704"
    );
}
