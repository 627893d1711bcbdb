//! The COSE_Sign1 envelope (RFC 9052) as the Nitro NSM emits it.

use ciborium::value::Value;

use crate::{AttestationError, MAX_DOCUMENT_LEN};

/// COSE algorithm identifiers.
pub(crate) const ALG_ES384: i64 = -35;
pub(crate) const ALG_EDDSA: i64 = -8;

const TAG_COSE_SIGN1: u64 = 18;
const HEADER_ALG: i64 = 1;
const HEADER_CRIT: i64 = 2;

pub(crate) struct CoseSign1 {
    /// Exact protected-header bytes: they are part of what was signed.
    pub protected: Vec<u8>,
    pub alg: i64,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

fn malformed(msg: impl Into<String>) -> AttestationError {
    AttestationError::Malformed(msg.into())
}

/// Decodes exactly one CBOR item spanning all of `bytes`.
pub(crate) fn decode_value(bytes: &[u8], what: &str) -> Result<Value, AttestationError> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader(&mut rest)
        .map_err(|e| malformed(format!("{what}: invalid CBOR: {e}")))?;
    if !rest.is_empty() {
        return Err(malformed(format!("{what}: trailing bytes after CBOR item")));
    }
    Ok(value)
}

pub(crate) fn encode_value(value: &Value) -> Result<Vec<u8>, AttestationError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out)
        .map_err(|e| malformed(format!("CBOR encoding failed: {e}")))?;
    Ok(out)
}

pub(crate) fn decode(document: &[u8]) -> Result<CoseSign1, AttestationError> {
    if document.len() > MAX_DOCUMENT_LEN {
        return Err(malformed("document too large"));
    }
    let value = match decode_value(document, "COSE_Sign1")? {
        Value::Tag(TAG_COSE_SIGN1, inner) => *inner,
        Value::Tag(tag, _) => return Err(malformed(format!("unexpected CBOR tag {tag}"))),
        other => other,
    };
    let Value::Array(items) = value else {
        return Err(malformed("COSE_Sign1 is not an array"));
    };
    let [protected, unprotected, payload, signature]: [Value; 4] = items
        .try_into()
        .map_err(|_| malformed("COSE_Sign1 must have 4 elements"))?;
    let (Value::Bytes(protected), Value::Map(_), Value::Bytes(payload), Value::Bytes(signature)) =
        (protected, unprotected, payload, signature)
    else {
        return Err(malformed("COSE_Sign1 elements have the wrong types"));
    };
    let alg = protected_alg(&protected)?;
    Ok(CoseSign1 {
        protected,
        alg,
        payload,
        signature,
    })
}

fn protected_alg(protected: &[u8]) -> Result<i64, AttestationError> {
    let Value::Map(entries) = decode_value(protected, "protected header")? else {
        return Err(malformed("protected header is not a map"));
    };
    let mut alg = None;
    for (key, value) in entries {
        let key = key.as_integer().and_then(|k| i64::try_from(k).ok());
        match key {
            Some(HEADER_ALG) => {
                let v = value
                    .as_integer()
                    .and_then(|v| i64::try_from(v).ok())
                    .ok_or_else(|| malformed("alg is not an integer"))?;
                if alg.replace(v).is_some() {
                    return Err(malformed("duplicate alg header"));
                }
            }
            // Critical headers we would have to understand: refuse rather than ignore.
            Some(HEADER_CRIT) => return Err(malformed("critical headers are not supported")),
            _ => {}
        }
    }
    alg.ok_or_else(|| malformed("protected header has no alg"))
}

/// The bytes actually signed: `["Signature1", protected, h'', payload]`.
pub(crate) fn sig_structure(protected: &[u8], payload: &[u8]) -> Result<Vec<u8>, AttestationError> {
    encode_value(&Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(protected.to_vec()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.to_vec()),
    ]))
}

/// Builds an untagged COSE_Sign1, as the NSM does; `sign` gets the Sig_structure.
pub(crate) fn encode(
    alg: i64,
    payload: Vec<u8>,
    sign: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Result<Vec<u8>, AttestationError> {
    let protected = encode_value(&Value::Map(vec![(
        Value::Integer(HEADER_ALG.into()),
        Value::Integer(alg.into()),
    )]))?;
    let signature = sign(&sig_structure(&protected, &payload)?);
    encode_value(&Value::Array(vec![
        Value::Bytes(protected),
        Value::Map(Vec::new()),
        Value::Bytes(payload),
        Value::Bytes(signature),
    ]))
}

pub(crate) fn alg_name(alg: i64) -> String {
    match alg {
        ALG_ES384 => "ES384 (nitro)".into(),
        ALG_EDDSA => "EdDSA (dev)".into(),
        other => format!("COSE alg {other}"),
    }
}
