//! Dedupe keys: one per bank transaction, unique per workspace in `sepay_webhook_events`.
//! Providers' modules build on this one (never the other way round).

use crate::money::Amount;
use crate::payload::PayloadObject;
use sepay_crypto::sha256_hex;

const ID_PREFIX: &str = "sepay:";
const EVENTLESS_PREFIX: &str = "sepay-noid:";
const RAW_PREFIX: &str = "raw:";
const STRIGA_PREFIX: &str = "striga:";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupeKey(String);

impl DedupeKey {
    /// `sepay:<id>` when SePay sent an id; otherwise a hash of the fields that identify a bank
    /// transaction (referenceCode, transferType, amount, accountNumber, transactionDate).
    pub fn for_payload(payload: &PayloadObject) -> Self {
        match payload.sepay_id() {
            Some(id) => Self(format!("{ID_PREFIX}{id}")),
            None => Self::eventless(payload),
        }
    }

    /// The bank transaction's identity whichever way it arrived: a webhook without `id` and the
    /// same transaction fetched by reconciliation (with its id) give the same key, the eventless
    /// one. Only with a reference number: without one, two transfers of the same amount in the
    /// same second on one account would be one identity, and one of them lost.
    pub fn identity(payload: &PayloadObject) -> Option<Self> {
        payload
            .text("referenceCode")
            .filter(|r| !r.trim().is_empty())
            .map(|_| Self::eventless(payload))
    }

    /// The hash of the fields that identify a bank transaction.
    fn eventless(payload: &PayloadObject) -> Self {
        let amount = match Amount::from_json(payload.get("transferAmount")) {
            Ok(a) => a.magnitude().to_string(),
            Err(_) => payload.get("transferAmount").map(|v| v.to_string()).unwrap_or_default(),
        };
        let transfer_type = payload.text("transferType").unwrap_or_default().to_ascii_lowercase();
        let parts = [
            payload.text("referenceCode").unwrap_or_default(),
            transfer_type,
            amount,
            payload.text("accountNumber").unwrap_or_default(),
            payload.text("transactionDate").unwrap_or_default(),
        ];
        Self(format!(
            "{EVENTLESS_PREFIX}{}",
            sha256_hex(encode_parts(&parts).as_bytes())
        ))
    }

    /// `striga:<id>:<TYPE>` (`StrigaEvent::dedupe_key`): a payout's events share the id, so the
    /// type is part of the key. The id is percent-encoded: odd characters cannot make two ids
    /// share a key.
    pub(crate) fn for_striga(id: &str, event_type: &str) -> Self {
        Self(format!("{STRIGA_PREFIX}{}:{event_type}", encode_id(id)))
    }

    /// A body that is not a JSON object is identified by its bytes.
    pub fn for_raw_body(body: &[u8]) -> Self {
        Self(format!("{RAW_PREFIX}{}", sha256_hex(body)))
    }

    /// A Striga body without a usable id and type, by its bytes (apart from SePay's: the same
    /// bytes from the two providers are two deliveries).
    pub fn for_striga_raw_body(body: &[u8]) -> Self {
        Self(format!("{STRIGA_PREFIX}{RAW_PREFIX}{}", sha256_hex(body)))
    }

    /// True for payloads without a SePay id: these get the short duplicate window.
    pub fn is_eventless(&self) -> bool {
        self.0.starts_with(EVENTLESS_PREFIX)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Ids are opaque: bytes outside `[A-Za-z0-9._~-]` (`%` included) are percent-encoded, so distinct
/// ids give distinct keys and keys stay printable (Postgres text refuses NUL). UUIDs are unchanged.
pub(crate) fn encode_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The fields joined by the unit separator, as keys have always been made. A field that itself
/// holds the separator would make that ambiguous (`"a\u{1f}"` + `""` and `"a"` + `"\u{1f}"` would
/// hash alike, so a later, different transaction could be taken for a repeat of an earlier one):
/// such fields are JSON-encoded (no raw separator inside) behind five separators, which no plain
/// join (exactly four) starts with. Keys of payloads without the separator are unchanged.
fn encode_parts(parts: &[String; 5]) -> String {
    const SEPARATOR: &str = "\u{1f}";
    if parts.iter().any(|p| p.contains(SEPARATOR)) {
        format!("{}{}", SEPARATOR.repeat(5), serde_json::Value::from(parts.to_vec()))
    } else {
        parts.join(SEPARATOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Delivery;
    use serde_json::json;

    fn payload(v: serde_json::Value) -> PayloadObject {
        match Delivery::parse(v.to_string().as_bytes()) {
            Delivery::Object(p) => p,
            other => panic!("{other:?}"),
        }
    }

    fn base() -> serde_json::Value {
        json!({"referenceCode": "FT123", "transferType": "in", "transferAmount": 1000,
               "accountNumber": "0071000888888", "transactionDate": "2024-01-01 10:00:00"})
    }

    #[test]
    fn id_keys() {
        assert_eq!(
            DedupeKey::for_payload(&payload(json!({"id": 92704}))).as_str(),
            "sepay:92704"
        );
        assert_eq!(
            DedupeKey::for_payload(&payload(json!({"id": "92704"}))).as_str(),
            "sepay:92704"
        );
    }

    #[test]
    fn eventless_keys_are_stable_over_formatting_and_distinct_over_fields() {
        let k = DedupeKey::for_payload(&payload(base()));
        assert!(k.is_eventless());
        // the same transaction written differently keys the same
        let mut same = base();
        same["transferAmount"] = json!("1000.00");
        same["transferType"] = json!("IN");
        same["content"] = json!("other content is not part of the key");
        assert_eq!(DedupeKey::for_payload(&payload(same)), k);
        // each identifying field changes the key
        for (field, value) in [
            ("referenceCode", json!("FT124")),
            ("transferType", json!("out")),
            ("transferAmount", json!(1001)),
            ("accountNumber", json!("0071000888889")),
            ("transactionDate", json!("2024-01-01 10:00:01")),
        ] {
            let mut other = base();
            other[field] = value;
            assert_ne!(DedupeKey::for_payload(&payload(other)), k, "{field}");
        }
        // a non-positive id does not count as an id
        let mut zero = base();
        zero["id"] = json!(0);
        assert_eq!(DedupeKey::for_payload(&payload(zero)), k);
    }

    #[test]
    fn fields_holding_the_separator_do_not_collide() {
        // found by the property tests: the plain join let content move across fields
        let a = DedupeKey::for_payload(&payload(json!({"accountNumber": "\u{1f}", "transactionDate": ""})));
        let b = DedupeKey::for_payload(&payload(json!({"accountNumber": "", "transactionDate": "\u{1f}"})));
        assert_ne!(a, b);
        let c = DedupeKey::for_payload(&payload(
            json!({"referenceCode": "FT1\u{1f}in", "transferAmount": 1000}),
        ));
        let d = DedupeKey::for_payload(&payload(
            json!({"referenceCode": "FT1", "transferType": "in\u{1f}1000"}),
        ));
        assert_ne!(c, d);
        // keys without the separator are what they always were (stored keys stay valid)
        assert_eq!(
            DedupeKey::for_payload(&payload(base())).as_str(),
            format!(
                "sepay-noid:{}",
                sha256_hex("FT123\u{1f}in\u{1f}1000\u{1f}0071000888888\u{1f}2024-01-01 10:00:00".as_bytes())
            )
        );
    }

    #[test]
    fn raw_keys() {
        let k = DedupeKey::for_raw_body(b"not json");
        assert!(k.as_str().starts_with("raw:"));
        assert_eq!(k, DedupeKey::for_raw_body(b"not json"));
        assert_ne!(k, DedupeKey::for_raw_body(b"not json!"));
        assert!(!k.is_eventless());
    }
}
