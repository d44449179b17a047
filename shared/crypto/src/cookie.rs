//! Request cookies: finding one cookie's value in a `Cookie` header, without a web stack.

/// The value of cookie `name` in one `Cookie` header value (`a=1; b=2`), as sent: no unquoting,
/// no decoding. The first pair with that name wins; pairs without `=` are skipped.
pub fn cookie_value<'a>(header_value: &'a str, name: &str) -> Option<&'a str> {
    header_value
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_values_table() {
        let cases = [
            ("a=1; sepay_admin_session=tok; b=2", "sepay_admin_session", Some("tok")),
            ("sepay_admin_session=tok", "sepay_admin_session", Some("tok")),
            ("  a=1;sepay_admin_session=tok  ", "sepay_admin_session", Some("tok")),
            ("a=1; a=2", "a", Some("1")),
            ("a=", "a", Some("")),
            ("a=b=c", "a", Some("b=c")),
            ("a=1", "missing", None),
            ("aa=1; xa=2", "a", None),
            ("a 1; b", "a", None),
            ("", "a", None),
            (";;;", "a", None),
            ("=v", "", Some("v")),
        ];
        for (header, name, want) in cases {
            assert_eq!(cookie_value(header, name), want, "{header:?} {name:?}");
        }
    }
}
