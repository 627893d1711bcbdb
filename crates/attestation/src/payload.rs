//! The NSM attestation payload map, shared by Nitro and dev documents.
//!
//! Field rules follow AWS's "Verifying the root of trust" syntactic checks.

use std::collections::BTreeMap;

use ciborium::value::Value;

use crate::cose::{decode_value, encode_value};
use crate::{AttestationError, AttestationFormat, AttestedDocument};

pub(crate) const DIGEST: &str = "SHA384";
pub(crate) const PCR_LEN: usize = 48;
const MAX_PCRS: usize = 32;
pub(crate) const MAX_PUBLIC_KEY_LEN: usize = 1024;
pub(crate) const MAX_USER_DATA_LEN: usize = 512;
pub(crate) const MAX_NONCE_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Payload {
    pub module_id: String,
    pub timestamp: u64,
    pub pcrs: BTreeMap<u16, Vec<u8>>,
    pub certificate: Vec<u8>,
    pub cabundle: Vec<Vec<u8>>,
    pub public_key: Option<Vec<u8>>,
    pub user_data: Option<Vec<u8>>,
    pub nonce: Option<Vec<u8>>,
    /// Only dev documents carry it.
    pub warning: Option<String>,
}

fn malformed(msg: impl Into<String>) -> AttestationError {
    AttestationError::Malformed(msg.into())
}

fn bytes(value: Value, field: &str) -> Result<Vec<u8>, AttestationError> {
    match value {
        Value::Bytes(b) => Ok(b),
        _ => Err(malformed(format!("{field} is not a byte string"))),
    }
}

fn optional_bytes(value: Value, field: &str) -> Result<Option<Vec<u8>>, AttestationError> {
    match value {
        Value::Null => Ok(None),
        other => bytes(other, field).map(Some),
    }
}

fn text(value: Value, field: &str) -> Result<String, AttestationError> {
    match value {
        Value::Text(t) => Ok(t),
        _ => Err(malformed(format!("{field} is not a text string"))),
    }
}

fn set<T>(slot: &mut Option<T>, value: T, field: &str) -> Result<(), AttestationError> {
    if slot.replace(value).is_some() {
        return Err(malformed(format!("duplicate field {field}")));
    }
    Ok(())
}

fn check_len(
    value: &Option<Vec<u8>>,
    min: usize,
    max: usize,
    field: &str,
) -> Result<(), AttestationError> {
    match value {
        Some(v) if v.len() < min || v.len() > max => Err(malformed(format!(
            "{field} must be {min}..={max} bytes, got {}",
            v.len()
        ))),
        _ => Ok(()),
    }
}

fn pcrs(value: Value) -> Result<BTreeMap<u16, Vec<u8>>, AttestationError> {
    let Value::Map(entries) = value else {
        return Err(malformed("pcrs is not a map"));
    };
    if entries.is_empty() || entries.len() > MAX_PCRS {
        return Err(malformed("pcrs must have 1..=32 entries"));
    }
    let mut out = BTreeMap::new();
    for (key, value) in entries {
        let index = key
            .as_integer()
            .and_then(|i| u16::try_from(i).ok())
            .filter(|&i| usize::from(i) < MAX_PCRS)
            .ok_or_else(|| malformed("PCR index must be an integer in 0..32"))?;
        let value = bytes(value, "PCR value")?;
        if value.len() != PCR_LEN {
            return Err(malformed(format!("PCR{index} is not {PCR_LEN} bytes")));
        }
        if out.insert(index, value).is_some() {
            return Err(malformed(format!("duplicate PCR{index}")));
        }
    }
    Ok(out)
}

impl Payload {
    pub fn decode(raw: &[u8]) -> Result<Self, AttestationError> {
        let Value::Map(entries) = decode_value(raw, "payload")? else {
            return Err(malformed("payload is not a map"));
        };
        let (mut module_id, mut digest, mut timestamp, mut pcr_map) = (None, None, None, None);
        let (mut certificate, mut cabundle, mut warning) = (None, None, None);
        let (mut public_key, mut user_data, mut nonce) = (None, None, None);
        for (key, value) in entries {
            let key = text(key, "payload key")?;
            match key.as_str() {
                "module_id" => set(&mut module_id, text(value, &key)?, &key)?,
                "digest" => set(&mut digest, text(value, &key)?, &key)?,
                "timestamp" => {
                    let t = value
                        .as_integer()
                        .and_then(|t| u64::try_from(t).ok())
                        .ok_or_else(|| malformed("timestamp is not an unsigned integer"))?;
                    set(&mut timestamp, t, &key)?
                }
                "pcrs" => set(&mut pcr_map, pcrs(value)?, &key)?,
                "certificate" => set(&mut certificate, bytes(value, &key)?, &key)?,
                "cabundle" => {
                    let Value::Array(items) = value else {
                        return Err(malformed("cabundle is not an array"));
                    };
                    let certs = items
                        .into_iter()
                        .map(|c| bytes(c, "cabundle entry"))
                        .collect::<Result<Vec<_>, _>>()?;
                    set(&mut cabundle, certs, &key)?
                }
                "public_key" => set(&mut public_key, optional_bytes(value, &key)?, &key)?,
                "user_data" => set(&mut user_data, optional_bytes(value, &key)?, &key)?,
                "nonce" => set(&mut nonce, optional_bytes(value, &key)?, &key)?,
                "warning" => set(&mut warning, text(value, &key)?, &key)?,
                // Unknown fields are signed too, so ignoring them is safe and keeps
                // us working if the NSM adds one.
                _ => {}
            }
        }
        let missing = |field: &str| malformed(format!("missing field {field}"));
        let payload = Self {
            module_id: module_id.ok_or_else(|| missing("module_id"))?,
            timestamp: timestamp.ok_or_else(|| missing("timestamp"))?,
            pcrs: pcr_map.ok_or_else(|| missing("pcrs"))?,
            certificate: certificate.ok_or_else(|| missing("certificate"))?,
            cabundle: cabundle.ok_or_else(|| missing("cabundle"))?,
            public_key: public_key.flatten(),
            user_data: user_data.flatten(),
            nonce: nonce.flatten(),
            warning,
        };
        if digest.ok_or_else(|| missing("digest"))? != DIGEST {
            return Err(malformed("digest must be SHA384"));
        }
        if payload.module_id.is_empty() {
            return Err(malformed("module_id is empty"));
        }
        if payload.timestamp == 0 {
            return Err(malformed("timestamp is zero"));
        }
        payload.check_lengths()?;
        Ok(payload)
    }

    pub fn check_lengths(&self) -> Result<(), AttestationError> {
        check_len(&self.public_key, 1, MAX_PUBLIC_KEY_LEN, "public_key")?;
        check_len(&self.user_data, 0, MAX_USER_DATA_LEN, "user_data")?;
        check_len(&self.nonce, 0, MAX_NONCE_LEN, "nonce")
    }

    /// Encodes with the NSM's key order; absent optionals are `null`, as the NSM does.
    pub fn encode(&self) -> Result<Vec<u8>, AttestationError> {
        let opt = |v: &Option<Vec<u8>>| v.clone().map_or(Value::Null, Value::Bytes);
        let field = |k: &str, v: Value| (Value::Text(k.into()), v);
        let mut entries = vec![
            field("module_id", Value::Text(self.module_id.clone())),
            field("digest", Value::Text(DIGEST.into())),
            field("timestamp", Value::Integer(self.timestamp.into())),
            field(
                "pcrs",
                Value::Map(
                    self.pcrs
                        .iter()
                        .map(|(i, v)| (Value::Integer((*i).into()), Value::Bytes(v.clone())))
                        .collect(),
                ),
            ),
            field("certificate", Value::Bytes(self.certificate.clone())),
            field(
                "cabundle",
                Value::Array(self.cabundle.iter().cloned().map(Value::Bytes).collect()),
            ),
            field("public_key", opt(&self.public_key)),
            field("user_data", opt(&self.user_data)),
            field("nonce", opt(&self.nonce)),
        ];
        if let Some(w) = &self.warning {
            entries.push(field("warning", Value::Text(w.clone())));
        }
        encode_value(&Value::Map(entries))
    }

    pub fn into_attested(self, format: AttestationFormat) -> AttestedDocument {
        AttestedDocument {
            format,
            module_id: self.module_id,
            timestamp_ms: self.timestamp,
            pcrs: self.pcrs,
            public_key: self.public_key,
            user_data: self.user_data,
            nonce: self.nonce,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cose;

    #[test]
    fn encoding_matches_the_nsm_layout() {
        // Re-encoding a real NSM payload must give back its exact bytes: same key
        // order, nulls for absent fields, definite lengths.
        for doc in [
            &include_bytes!("../tests/fixtures/sample-1.cbor")[..],
            &include_bytes!("../tests/fixtures/sample-2.cbor")[..],
        ] {
            let cose = cose::decode(doc).expect("cose");
            let payload = Payload::decode(&cose.payload).expect("payload");
            assert_eq!(payload.encode().expect("encode"), cose.payload);
        }
    }

    #[test]
    fn duplicate_and_missing_fields_rejected() {
        let field = |k: &str, v: Value| (Value::Text(k.into()), v);
        let base = vec![
            field("module_id", Value::Text("m".into())),
            field("digest", Value::Text(DIGEST.into())),
            field("timestamp", Value::Integer(1.into())),
            field(
                "pcrs",
                Value::Map(vec![(Value::Integer(0.into()), Value::Bytes(vec![0; 48]))]),
            ),
            field("certificate", Value::Bytes(vec![])),
            field("cabundle", Value::Array(vec![])),
        ];
        let encode =
            |entries: Vec<(Value, Value)>| encode_value(&Value::Map(entries)).expect("encode");
        assert!(Payload::decode(&encode(base.clone())).is_ok());

        let mut dup = base.clone();
        dup.push(field("timestamp", Value::Integer(2.into())));
        assert!(Payload::decode(&encode(dup)).is_err());

        let mut sha256 = base.clone();
        sha256[1] = field("digest", Value::Text("SHA256".into()));
        assert!(Payload::decode(&encode(sha256)).is_err());

        let mut short_pcr = base.clone();
        short_pcr[3] = field(
            "pcrs",
            Value::Map(vec![(Value::Integer(0.into()), Value::Bytes(vec![0; 32]))]),
        );
        assert!(Payload::decode(&encode(short_pcr)).is_err());

        assert!(Payload::decode(&encode(base[1..].to_vec())).is_err());
    }
}
