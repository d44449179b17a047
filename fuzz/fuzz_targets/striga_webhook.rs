//! A Striga webhook: arbitrary bytes as the body through `StrigaEvent::parse` and the ingress's
//! key, and the signature check over the same bytes.
//!
//! Invariants: parsing is total and deterministic; a parsed event's sides are whole cents
//! (scale 2, ≥ 0, ≤ 10^13), its type moves money on its side only, its effect's amount has the
//! sign of the money's direction and equals its side, `normalize` books exactly that amount (none
//! for a settlement); the ingress keys the body as the processor does; the signature of the body
//! under a key verifies (in either case), and not under another key nor with a digit changed.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;
use sepay_core::striga::{StrigaEffect, StrigaEvent, dedupe_key_of};
use sepay_crypto::hmac::{striga_signature, striga_signature_matches};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    body: &'a [u8],
    key: &'a [u8],
    flip: u8,
}

fuzz_target!(|input: Input<'_>| {
    let parsed = StrigaEvent::parse(input.body);
    assert_eq!(parsed, StrigaEvent::parse(input.body), "deterministic");
    if let Ok(event) = &parsed {
        let limit = Decimal::new(1_000_000_000_000_000, 2);
        for side in [event.credit, event.debit] {
            assert!(side.scale() == 2 && !side.is_sign_negative() && side <= limit, "{side}");
        }
        let booked = match event.effect() {
            StrigaEffect::Credit(a) | StrigaEffect::Reversal(a) => {
                assert!(a > Decimal::ZERO && a == event.credit && event.debit.is_zero());
                Some(a)
            }
            StrigaEffect::Debit(a) => {
                assert!(a < Decimal::ZERO && -a == event.debit && event.credit.is_zero());
                Some(a)
            }
            StrigaEffect::Settle => {
                assert!(event.credit.is_zero() && event.debit.is_zero());
                None
            }
        };
        assert_eq!(event.normalize().map(|tx| tx.signed_amount), booked);
        assert_eq!(event.external_ref().is_some(), booked.is_some());
        assert_eq!(dedupe_key_of(&event.raw), Some(event.dedupe_key()), "the ingress keys it alike");
    }

    let signature = striga_signature(input.key, input.body);
    assert!(striga_signature_matches(input.key, input.body, &signature));
    assert!(striga_signature_matches(input.key, input.body, &signature.to_uppercase()));
    // (a key and the same key with a zero byte appended are one HMAC key: padding)
    if input.flip != 0 {
        let mut other_key = input.key.to_vec();
        other_key.push(input.flip);
        assert!(!striga_signature_matches(&other_key, input.body, &signature));
    }
    let mut flipped = signature.into_bytes();
    let at = input.flip as usize % flipped.len();
    flipped[at] = if flipped[at] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    assert!(!striga_signature_matches(input.key, input.body, &flipped));
});
