//! The wrapped data key format.
//!
//! ```text
//! b"KSK1" | u8 key_id_len | key_id | u32 BE version | 12-byte nonce | AES-256-GCM(data key) (32 bytes) | tag (16 bytes)
//! ```
//!
//! The AAD is the header (everything up to and including the version)
//! followed by the canonical encoding of the [`EncryptionContext`]:
//! `u32 BE len(app_id) | app_id | u32 BE len(wallet_id) | wallet_id`.

use crate::{DATA_KEY_LEN, EncryptionContext, KmsError};

/// Magic prefix of every wrapped key (format version 1).
pub const WRAP_MAGIC: &[u8; 4] = b"KSK1";

/// Longest key id (its length is stored in one byte).
pub const MAX_KEY_ID_LEN: usize = 255;

pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;

const VERSION_LEN: usize = 4;

/// What a wrapped key's header says: the master key id and version it was
/// wrapped under. Not authenticated until the wrap is decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKeyInfo {
    pub key_id: String,
    pub version: u32,
}

/// Read the (unauthenticated) header of a wrapped key, e.g. to pick which KMS
/// instance to ask or to find wraps still under an old master key version.
pub fn inspect_wrapped(wrapped: &[u8]) -> Result<WrappedKeyInfo, KmsError> {
    let parsed = ParsedWrap::parse(wrapped)?;
    Ok(WrappedKeyInfo {
        key_id: parsed.key_id.to_owned(),
        version: parsed.version,
    })
}

/// Key ids are 1..=255 bytes of `[A-Za-z0-9._-]`.
pub(crate) fn validate_key_id(key_id: &str) -> Result<(), KmsError> {
    if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
        return Err(KmsError::InvalidArgument(format!(
            "key id must be 1..={MAX_KEY_ID_LEN} bytes, got {}",
            key_id.len()
        )));
    }
    if !key_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(KmsError::InvalidArgument(
            "key id may contain only ASCII letters, digits, '.', '_' and '-'".into(),
        ));
    }
    Ok(())
}

/// The header bytes: magic, key id (length-prefixed) and version.
/// `key_id` must already be validated.
pub(crate) fn encode_header(key_id: &str, version: u32) -> Result<Vec<u8>, KmsError> {
    let id_len = u8::try_from(key_id.len())
        .map_err(|_| KmsError::InvalidArgument("key id longer than 255 bytes".into()))?;
    let mut out = Vec::with_capacity(
        WRAP_MAGIC.len() + 1 + key_id.len() + VERSION_LEN + NONCE_LEN + DATA_KEY_LEN + TAG_LEN,
    );
    out.extend_from_slice(WRAP_MAGIC);
    out.push(id_len);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    Ok(out)
}

/// Header followed by the canonical, length-prefixed encoding of `ctx`.
pub(crate) fn build_aad(header: &[u8], ctx: &EncryptionContext) -> Result<Vec<u8>, KmsError> {
    let mut aad = Vec::with_capacity(header.len() + 8 + ctx.app_id.len() + ctx.wallet_id.len());
    aad.extend_from_slice(header);
    for (name, field) in [("app_id", &ctx.app_id), ("wallet_id", &ctx.wallet_id)] {
        let len = u32::try_from(field.len()).map_err(|_| {
            KmsError::InvalidArgument(format!("encryption context {name} is too long"))
        })?;
        aad.extend_from_slice(&len.to_be_bytes());
        aad.extend_from_slice(field.as_bytes());
    }
    Ok(aad)
}

/// A wrapped key split into its parts, borrowing from the input.
pub(crate) struct ParsedWrap<'a> {
    pub header: &'a [u8],
    pub key_id: &'a str,
    pub version: u32,
    pub nonce: &'a [u8; NONCE_LEN],
    pub ciphertext: &'a [u8; DATA_KEY_LEN],
    pub tag: &'a [u8; TAG_LEN],
}

impl<'a> ParsedWrap<'a> {
    pub fn parse(wrapped: &'a [u8]) -> Result<Self, KmsError> {
        let rest = wrapped
            .strip_prefix(WRAP_MAGIC.as_slice())
            .ok_or_else(|| malformed("missing KSK1 magic"))?;
        let (&id_len, rest) = rest
            .split_first()
            .ok_or_else(|| malformed("truncated before key id"))?;
        let id_len = usize::from(id_len);
        let expected_rest = id_len + VERSION_LEN + NONCE_LEN + DATA_KEY_LEN + TAG_LEN;
        if rest.len() != expected_rest {
            return Err(malformed(&format!(
                "wrapped key has {} bytes, expected {}",
                wrapped.len(),
                WRAP_MAGIC.len() + 1 + expected_rest
            )));
        }
        let (id_bytes, rest) = rest.split_at(id_len);
        let key_id = std::str::from_utf8(id_bytes).map_err(|_| malformed("key id is not UTF-8"))?;
        validate_key_id(key_id).map_err(|_| malformed("invalid key id"))?;
        let (version, rest) = split_array::<VERSION_LEN>(rest)?;
        let version = u32::from_be_bytes(*version);
        let (nonce, rest) = split_array::<NONCE_LEN>(rest)?;
        let (ciphertext, rest) = split_array::<DATA_KEY_LEN>(rest)?;
        let (tag, rest) = split_array::<TAG_LEN>(rest)?;
        if !rest.is_empty() {
            return Err(malformed("trailing bytes"));
        }
        let header_len = WRAP_MAGIC.len() + 1 + id_len + VERSION_LEN;
        let header = wrapped
            .get(..header_len)
            .ok_or_else(|| malformed("truncated header"))?;
        Ok(Self {
            header,
            key_id,
            version,
            nonce,
            ciphertext,
            tag,
        })
    }
}

fn split_array<const N: usize>(bytes: &[u8]) -> Result<(&[u8; N], &[u8]), KmsError> {
    let (head, tail) = bytes
        .split_first_chunk::<N>()
        .ok_or_else(|| malformed("truncated wrapped key"))?;
    Ok((head, tail))
}

fn malformed(msg: &str) -> KmsError {
    KmsError::Malformed(msg.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_encoding_is_unambiguous() {
        let a = build_aad(b"h", &EncryptionContext::new("ab", "c")).unwrap();
        let b = build_aad(b"h", &EncryptionContext::new("a", "bc")).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn key_id_rules() {
        assert!(validate_key_id("primary").is_ok());
        assert!(validate_key_id("dr-2024.v1_x").is_ok());
        assert!(validate_key_id("").is_err());
        assert!(validate_key_id("a/b").is_err());
        assert!(validate_key_id(&"x".repeat(256)).is_err());
        assert!(validate_key_id(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn parse_rejects_short_and_long() {
        let mut blob = encode_header("k", 1).unwrap();
        blob.extend_from_slice(&[0u8; NONCE_LEN + DATA_KEY_LEN + TAG_LEN]);
        let info = inspect_wrapped(&blob).unwrap();
        assert_eq!(
            info,
            WrappedKeyInfo {
                key_id: "k".into(),
                version: 1
            }
        );
        for len in 0..blob.len() {
            assert!(matches!(
                inspect_wrapped(&blob[..len]),
                Err(KmsError::Malformed(_))
            ));
        }
        blob.push(0);
        assert!(matches!(
            inspect_wrapped(&blob),
            Err(KmsError::Malformed(_))
        ));
    }
}
