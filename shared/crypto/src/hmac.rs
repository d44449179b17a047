//! Webhook signatures. Striga sends `signature`: hex HMAC-SHA256 of the JSON body, keyed with the
//! API key (no timestamp, so no replay window: deduplication is what stops a replay).
//!
//! Striga's sample receiver checks `JSON.stringify(req.body)`, the body parsed and written back
//! compact, so a signature over the compact form of a body sent with whitespace is valid too. The
//! workspace's serde_json has no `preserve_order` (its maps sort keys), so the compact form is
//! made by dropping the whitespace between tokens, which keeps key order. Not reproduced from
//! JSON.stringify: its rewriting of escapes (`\u00e9` → `é`) and numbers (`1.0` → `1`), and its
//! moving integer-like keys first; a body differing from its signed form in those is refused.

use ring::hmac;

/// Lowercase hex HMAC-SHA256 of `body` under `api_key` (the simulator and tests sign with it).
pub fn striga_signature(api_key: &[u8], body: &[u8]) -> String {
    hex::encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, api_key), body))
}

/// True when `signature_header` (hex, either case) is the HMAC of the raw body or of its compact
/// form. Compared in constant time (`ring::hmac::verify`); false, never a panic, on any header.
pub fn striga_signature_matches(api_key: &[u8], raw_body: &[u8], signature_header: &str) -> bool {
    let mut tag = [0u8; 32];
    // exactly 64 hex digits, or nothing is decoded (a huge header costs no allocation)
    if hex::decode_to_slice(signature_header.trim(), &mut tag).is_err() {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, api_key);
    hmac::verify(&key, raw_body, &tag).is_ok()
        || compact_json(raw_body).is_some_and(|compact| hmac::verify(&key, &compact, &tag).is_ok())
}

/// A valid JSON body without the whitespace between its tokens; `None` when the body is not JSON
/// or has no such whitespace (then the raw check was the compact one).
fn compact_json(body: &[u8]) -> Option<Vec<u8>> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
    let (mut in_string, mut escaped) = (false, false);
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|&b| {
            if in_string {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                return true;
            }
            in_string = b == b'"';
            // JSON's whitespace; bytes of multi-byte UTF-8 are never ASCII
            !matches!(b, b' ' | b'\t' | b'\n' | b'\r')
        })
        .collect();
    (compact.len() < body.len()).then_some(compact)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"striga-api-key";

    #[test]
    fn matches_the_rfc_4231_vector() {
        assert_eq!(
            striga_signature(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signatures_table() {
        let compact = br#"{"z":1,"a":"x y","q":"say \"hi\" "}"#;
        let pretty = b"{\n  \"z\": 1,\n  \"a\": \"x y\",\n  \"q\": \"say \\\"hi\\\" \"\n}";
        let sig = striga_signature(KEY, compact);
        let check = |body: &[u8], header: &str| striga_signature_matches(KEY, body, header);
        let cases = [
            (check(compact, &sig), true, "right key"),
            (check(compact, &sig.to_uppercase()), true, "uppercase hex"),
            (check(compact, &format!(" {sig}\t")), true, "surrounding whitespace"),
            (
                check(pretty, &sig),
                true,
                "reformatted body signed compact (key order kept)",
            ),
            (
                striga_signature_matches(b"other-key", compact, &sig),
                false,
                "wrong key",
            ),
            (
                check(br#"{"z":2,"a":"x y","q":"say \"hi\" "}"#, &sig),
                false,
                "tampered body",
            ),
            (
                check(br#"{"z":1,"a":"xy","q":"say \"hi\" "}"#, &sig),
                false,
                "whitespace in a string counts",
            ),
            (
                check(br#"{"a":"x y","q":"say \"hi\" ","z":1}"#, &sig),
                false,
                "keys reordered",
            ),
            (check(b"", &striga_signature(KEY, b"")), true, "empty body, raw check"),
            (
                check(b"not json ", &striga_signature(KEY, b"notjson")),
                false,
                "no compact form of non-JSON",
            ),
        ];
        for (got, want, what) in cases {
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn garbage_headers_are_refused() {
        let sig = striga_signature(KEY, b"{}");
        let huge = "a".repeat(1 << 20);
        for header in [
            "",
            "zz",
            &sig[..63],
            &sig[..62],
            &format!("{sig}00"),
            &format!("sha256={sig}"),
            &sig.replace(|c: char| c.is_ascii_digit(), "g"),
            "é".repeat(32).as_str(),
            &huge,
        ] {
            assert!(!striga_signature_matches(KEY, b"{}", header), "{:.70}", header);
        }
    }
}
