//! The compact JWS form, split and decoded by hand so that nothing about a token is
//! trusted before its header has been looked at.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// Longest token accepted at all; real ID tokens are 1-2 KiB.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A token split into its parts, with header and payload decoded as JSON objects.
pub(crate) struct Compact<'a> {
    pub header: Map<String, Value>,
    pub payload: Map<String, Value>,
    /// `base64url(header) "." base64url(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The third part, still base64url.
    pub signature: &'a str,
}

/// Splits and decodes; `None` for anything that is not three base64url parts whose first
/// two are JSON objects.
pub(crate) fn split(token: &str) -> Option<Compact<'_>> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header_b64, payload_b64) = signing_input.split_once('.')?;
    if payload_b64.contains('.') || header_b64.is_empty() || payload_b64.is_empty() {
        return None;
    }
    Some(Compact {
        header: decode_object(header_b64)?,
        payload: decode_object(payload_b64)?,
        signing_input,
        signature,
    })
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice::<Value>(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn b64_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// A string member; `Err` when present with another type.
pub(crate) fn opt_str<'a>(map: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ()> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(()),
    }
}

/// A NumericDate member (RFC 7519: seconds, possibly fractional), floored to whole
/// seconds; `Err` when present with another type or out of range.
pub(crate) fn opt_time(map: &Map<String, Value>, name: &str) -> Result<Option<i64>, ()> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(f) = n.as_f64() {
                // Floats beyond i64 range (or u64 beyond i64::MAX) are nonsense dates.
                if f.is_finite() && f.abs() < 1e15 {
                    Ok(Some(f.floor() as i64))
                } else {
                    Err(())
                }
            } else {
                Err(())
            }
        }
        Some(_) => Err(()),
    }
}

/// `now` as a signed number for comparisons with token times.
pub(crate) fn signed(now: u64) -> i64 {
    i64::try_from(now).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rejects_garbage() {
        for bad in [
            "",
            ".",
            "..",
            "a.b",
            "a.b.c.d",
            "e30.e30",
            "!!.e30.x",
            "e30..x",
            "W10.e30.x",
        ] {
            assert!(split(bad).is_none(), "{bad}");
        }
        let ok = split("e30.e30.").expect("empty objects, empty signature");
        assert!(ok.header.is_empty());
        assert_eq!(ok.signature, "");
        assert_eq!(ok.signing_input, "e30.e30");
    }

    #[test]
    fn times() {
        let map: Map<String, Value> =
            serde_json::from_str(r#"{"a":1.9,"b":"1","c":-5,"d":1e300,"e":18446744073709551615}"#)
                .unwrap();
        assert_eq!(opt_time(&map, "a"), Ok(Some(1)));
        assert_eq!(opt_time(&map, "b"), Err(()));
        assert_eq!(opt_time(&map, "c"), Ok(Some(-5)));
        assert_eq!(opt_time(&map, "d"), Err(()));
        assert_eq!(opt_time(&map, "e"), Err(()));
        assert_eq!(opt_time(&map, "z"), Ok(None));
    }
}
