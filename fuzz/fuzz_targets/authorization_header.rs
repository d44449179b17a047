//! The webhook `Authorization` header through `sepay_core::auth::parse_api_key`.
//!
//! Invariants: a found key is a non-empty slice of the header itself (not a copy), holds no
//! whitespace, ends the trimmed header, and follows a known scheme (`Apikey`/`Bearer`, any
//! case); and every well-formed header built from the input (scheme, blanks, key) yields its key.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sepay_core::auth::parse_api_key;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    header: &'a str,
    scheme: u8,
    before: u8,
    between: u8,
    after: u8,
    key: &'a str,
}

const SCHEMES: [&str; 6] = ["Apikey", "apikey", "APIKEY", "Bearer", "bearer", "bEaReR"];
const BLANKS: [&str; 6] = [" ", "  ", "\t", " \t ", "\u{a0}", "\u{3000}"];

fn is_subslice(inner: &str, outer: &str) -> bool {
    let (start, end) = (outer.as_ptr() as usize, outer.as_ptr() as usize + outer.len());
    let p = inner.as_ptr() as usize;
    p >= start && p + inner.len() <= end
}

fuzz_target!(|input: Input<'_>| {
    let header = input.header;
    if let Some(key) = parse_api_key(header) {
        assert!(!key.is_empty());
        assert!(is_subslice(key, header), "the key is borrowed from the header");
        assert!(!key.contains(char::is_whitespace), "{key:?}");
        let trimmed = header.trim();
        assert!(trimmed.ends_with(key), "{header:?} → {key:?}");
        let scheme = trimmed.split(char::is_whitespace).next().unwrap_or_default();
        assert!(
            scheme.eq_ignore_ascii_case("apikey") || scheme.eq_ignore_ascii_case("bearer"),
            "{header:?}"
        );
        assert_eq!(trimmed[scheme.len()..].trim(), key, "nothing between scheme and key");
    }

    // a well-formed header always yields its key
    let key: String = input.key.chars().filter(|c| !c.is_whitespace()).collect();
    let pick = |list: &[&'static str], i: u8| list[i as usize % list.len()];
    let built = format!(
        "{}{}{}{}{}",
        if input.before.is_multiple_of(2) {
            ""
        } else {
            pick(&BLANKS, input.before)
        },
        pick(&SCHEMES, input.scheme),
        pick(&BLANKS, input.between),
        key,
        if input.after.is_multiple_of(2) {
            ""
        } else {
            pick(&BLANKS, input.after)
        },
    );
    let want = (!key.is_empty()).then_some(key.as_str());
    assert_eq!(parse_api_key(&built), want, "{built:?}");
});
