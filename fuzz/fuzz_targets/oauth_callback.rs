//! The OAuth callback's inputs: the `Cookie` header (`sepay_crypto::cookie::cookie_value`), the
//! sealed state cookie (`sepay_crypto::oauth_state::open`) and the returned `state` query
//! parameter (`verify`), the way the connector's callback runs them.
//!
//! Invariants: cookie lookup returns a slice of the header that is the first `name=value` pair's
//! value; a state cookie opens only if it is exactly what `seal` produced with the same key (an
//! arbitrary string, any mutation of a sealed cookie, or a cookie sealed under another key does
//! not), and then yields what was sealed; `verify` accepts only the sealed state within
//! [issued − 60 s, issued + 10 min], and never panics, whatever the clock says.

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sepay_crypto::cookie::cookie_value;
use sepay_crypto::oauth_state::{self, PendingAuth, STATE_COOKIE, STATE_TTL_SECS, StateError};
use sepay_crypto::seal::Keyring;
use std::sync::LazyLock;
use uuid::Uuid;

static KEYS: LazyLock<Keyring> = LazyLock::new(|| keyring("k1", 7));
/// Another deployment (or a dropped key) with the same key id.
static OTHER_KEYS: LazyLock<Keyring> = LazyLock::new(|| keyring("k1", 8));

fn keyring(id: &str, byte: u8) -> Keyring {
    let key = base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    Keyring::parse(&format!("{id}:{key}")).expect("a valid key spec")
}

#[derive(Debug, Arbitrary)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
    Truncate { len: usize },
    Append(String),
    OtherWorkspace([u8; 16]),
    UppercaseWorkspace,
    ReEncodeStandardBase64,
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    /// A whole `Cookie` header, as a browser (or anyone) may send it.
    cookie_header: &'a str,
    name: &'a str,
    /// A state cookie value straight from the input.
    raw_state_cookie: &'a str,
    ws_id: [u8; 16],
    state: String,
    pkce_verifier: String,
    issued_at: i64,
    mutations: Vec<Mutation>,
    returned_state: &'a str,
    now: i64,
    now_offset: i16,
}

fn is_subslice(inner: &str, outer: &str) -> bool {
    let (start, end) = (outer.as_ptr() as usize, outer.as_ptr() as usize + outer.len());
    let p = inner.as_ptr() as usize;
    p >= start && p + inner.len() <= end
}

fn check_cookie_lookup(header: &str, name: &str) {
    let first = header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name);
    match cookie_value(header, name) {
        Some(value) => {
            assert!(is_subslice(value, header), "the value is borrowed from the header");
            assert!(!value.contains(';'));
            assert_eq!(Some(value), first.map(|(_, v)| v));
            assert!(header.contains(&format!("{name}={value}")));
        }
        None => assert!(first.is_none(), "{header:?} has {name:?}"),
    }
}

fn mutate(cookie: &str, m: &Mutation) -> Vec<u8> {
    let mut bytes = cookie.as_bytes().to_vec();
    let n = bytes.len();
    match m {
        Mutation::FlipBit { at, bit } => bytes[at % n] ^= 1 << (bit % 8),
        Mutation::Insert { at, byte } => bytes.insert(at % (n + 1), *byte),
        Mutation::Remove { at } => {
            bytes.remove(at % n);
        }
        Mutation::Truncate { len } => bytes.truncate(len % n),
        Mutation::Append(s) => bytes.extend_from_slice(s.as_bytes()),
        Mutation::OtherWorkspace(ws) => {
            let (_, sealed) = cookie.split_once('.').expect("a sealed cookie has a dot");
            bytes = format!("{}.{sealed}", Uuid::from_bytes(*ws)).into_bytes();
        }
        Mutation::UppercaseWorkspace => {
            let (ws, sealed) = cookie.split_once('.').expect("a sealed cookie has a dot");
            bytes = format!("{}.{sealed}", ws.to_uppercase()).into_bytes();
        }
        Mutation::ReEncodeStandardBase64 => {
            let (ws, sealed) = cookie.split_once('.').expect("a sealed cookie has a dot");
            let raw = URL_SAFE_NO_PAD.decode(sealed).expect("seal writes base64url");
            bytes = format!("{ws}.{}", base64::engine::general_purpose::STANDARD.encode(raw)).into_bytes();
        }
    }
    bytes
}

fuzz_target!(|input: Input<'_>| {
    // the Cookie header: the name the connector asks for, and one from the input
    check_cookie_lookup(input.cookie_header, STATE_COOKIE);
    check_cookie_lookup(input.cookie_header, "sepay_admin_session");
    check_cookie_lookup(input.cookie_header, input.name);

    // whatever a browser sends as the state cookie does not open
    assert_eq!(
        oauth_state::open(&KEYS, input.raw_state_cookie).map(|p| p.ws_id),
        Err(StateError::BadCookie),
        "{:?} opened without being sealed",
        input.raw_state_cookie
    );
    if let Some(value) = cookie_value(input.cookie_header, STATE_COOKIE) {
        assert!(oauth_state::open(&KEYS, value).is_err());
    }

    // a sealed cookie opens to what was sealed, and only under the key that sealed it
    let pending = PendingAuth {
        ws_id: Uuid::from_bytes(input.ws_id),
        state: input.state.clone(),
        pkce_verifier: input.pkce_verifier.clone(),
        issued_at: input.issued_at,
    };
    let cookie = oauth_state::seal(&KEYS, &pending);
    assert_eq!(
        cookie_value(&format!("a=b; {STATE_COOKIE}={cookie}"), STATE_COOKIE),
        Some(cookie.as_str())
    );
    let opened = oauth_state::open(&KEYS, &cookie).expect("a sealed cookie opens");
    assert_eq!(
        (opened.ws_id, &opened.state, &opened.pkce_verifier, opened.issued_at),
        (pending.ws_id, &pending.state, &pending.pkce_verifier, pending.issued_at)
    );
    assert!(
        oauth_state::open(&OTHER_KEYS, &cookie).is_err(),
        "another key opened it"
    );

    // any change to it does not open
    for m in &input.mutations {
        let mutated = mutate(&cookie, m);
        if mutated == cookie.as_bytes() {
            continue;
        }
        if let Ok(text) = std::str::from_utf8(&mutated) {
            let result = oauth_state::open(&KEYS, text);
            assert!(result.is_err(), "{m:?} of {cookie:?} → {text:?} opened");
        }
    }

    // the returned state and the clock
    for (returned, now) in [
        (input.returned_state, input.now),
        (pending.state.as_str(), input.now),
        (
            pending.state.as_str(),
            input.issued_at.saturating_add(input.now_offset as i64),
        ),
    ] {
        let result = oauth_state::verify(&opened, returned, now);
        let fresh = (now as i128 - opened.issued_at as i128) <= STATE_TTL_SECS as i128
            && now as i128 >= opened.issued_at as i128 - 60;
        let want = if returned != opened.state {
            Err(StateError::Mismatch)
        } else if !fresh {
            Err(StateError::Expired)
        } else {
            Ok(())
        };
        assert_eq!(
            result, want,
            "returned {returned:?} at {now} for issued {}",
            opened.issued_at
        );
    }
});
