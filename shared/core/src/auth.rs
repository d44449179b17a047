//! The webhook `Authorization` header: `Apikey <key>` (what SePay sends) or `Bearer <key>`.

/// Returns the key, or `None` for a missing scheme, another scheme or an empty key.
pub fn parse_api_key(header: &str) -> Option<&str> {
    let (scheme, key) = header.trim().split_once(char::is_whitespace)?;
    let key = key.trim();
    let known = scheme.eq_ignore_ascii_case("apikey") || scheme.eq_ignore_ascii_case("bearer");
    (known && !key.is_empty() && !key.contains(char::is_whitespace)).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers_table() {
        let cases = [
            ("Apikey spak_abc", Some("spak_abc")),
            ("apikey spak_abc", Some("spak_abc")),
            ("APIKEY   spak_abc  ", Some("spak_abc")),
            ("Bearer spak_abc", Some("spak_abc")),
            ("bearer\tspak_abc", Some("spak_abc")),
            ("Basic dXNlcjpwYXNz", None),
            ("Apikey", None),
            ("Apikey ", None),
            ("spak_abc", None),
            ("Apikey a b", None),
            ("", None),
            ("Apikeyspak_abc", None),
        ];
        for (header, want) in cases {
            assert_eq!(parse_api_key(header), want, "{header:?}");
        }
    }
}
