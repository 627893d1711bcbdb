//! HPKE (RFC 9180) base mode, single shot, with the suite
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM and an empty AAD, as
//! `rfc9180.rs` does it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand_core::CryptoRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::error::EnvelopeError;

/// `info` of a PIN envelope.
pub const PIN_INFO: &[u8] = b"keystead pin v1";
/// `info` of a value sealed to a client's one-time key.
pub const CLIENT_INFO: &[u8] = b"keystead client v1";
/// The suite, as the attestation endpoint names it.
pub const SUITE: &str = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM";

/// RFC 9180 identifiers of [`SUITE`]: KEM, KDF, AEAD.
pub const SUITE_IDS: (u16, u16, u16) = (0x0020, 0x0001, 0x0002);

/// Length of `enc` (an X25519 public key).
pub const ENC_LEN: usize = 32;
/// Length of the AES-GCM tag at the end of every ciphertext.
pub const TAG_LEN: usize = 16;

/// An HPKE single-shot ciphertext: a PinEnvelope or a SealedToClient.
///
/// In JSON (and any other human-readable format) it is
/// `{"enc": <standard base64>, "ciphertext": <standard base64>}` with padding, and
/// decoding accepts only canonical standard base64. Binary formats (the postcard framing
/// between server and enclave) carry the two fields as raw bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The encapsulated key: the sender's ephemeral X25519 public key, 32 bytes.
    #[serde(serialize_with = "ser_b64", deserialize_with = "de_b64")]
    pub enc: Vec<u8>,
    /// AES-256-GCM ciphertext followed by its 16-byte tag.
    #[serde(serialize_with = "ser_b64", deserialize_with = "de_b64")]
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("enc", &hex::encode(&self.enc))
            .field("ciphertext", &hex::encode(&self.ciphertext))
            .finish()
    }
}

fn ser_b64<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&B64.encode(bytes))
    } else {
        s.serialize_bytes(bytes)
    }
}

fn de_b64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    if d.is_human_readable() {
        let s = String::deserialize(d)?;
        B64.decode(s.as_bytes())
            .map_err(|_| serde::de::Error::custom("invalid standard base64"))
    } else {
        d.deserialize_byte_buf(ByteBufVisitor)
    }
}

/// Reads raw bytes from binary formats (postcard and the like).
struct ByteBufVisitor;

impl<'de> serde::de::Visitor<'de> for ByteBufVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element()? {
            out.push(b);
        }
        Ok(out)
    }
}

/// An X25519 key pair that HPKE values are sealed to (the enclave's attested key, or a
/// client's one-time key), held by aws-lc, which scrubs it when freeing it.
///
/// `Debug` shows only the public key.
pub struct HpkeKeyPair {
    private: aws_lc_rs::agreement::PrivateKey,
    public: [u8; 32],
}

impl HpkeKeyPair {
    /// A fresh key pair from the caller's cryptographic RNG (RFC 9180 `DeriveKeyPair` over
    /// 32 random bytes).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut ikm[..]);
        let mut sk = Zeroizing::new([0u8; 32]);
        crate::rfc9180::derive_private_key(&ikm[..], &mut sk);
        Self::from_private_bytes(*sk)
    }

    /// The key pair of a raw 32-byte X25519 private key (clamped as X25519 requires).
    pub fn from_private_bytes(bytes: [u8; 32]) -> Self {
        let mut sk = Zeroizing::new(bytes);
        // RFC 7748 clamping, which RFC 9180 asks of a serialized private key; X25519
        // itself ignores these bits.
        sk[0] &= 248;
        sk[31] &= 127;
        sk[31] |= 64;
        // Fails only on a length other than 32, which the type rules out.
        let private = aws_lc_rs::agreement::PrivateKey::from_private_key(
            &aws_lc_rs::agreement::X25519,
            &sk[..],
        )
        .expect("an X25519 private key is any 32 bytes");
        let public = private
            .compute_public_key()
            .expect("an X25519 key has a public key")
            .as_ref()
            .try_into()
            .expect("an X25519 public key is 32 bytes");
        Self { private, public }
    }

    /// The private key's 32 bytes (clamped), for storage under the caller's protection.
    pub fn private_bytes(&self) -> Zeroizing<[u8; 32]> {
        use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
        let seed: Curve25519SeedBin = self
            .private
            .as_be_bytes()
            .expect("an X25519 key has its raw bytes");
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(seed.as_ref());
        out
    }

    /// The public key, raw.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// The public key as standard base64, as `publicKey` and `clientKey` carry it.
    pub fn public_key_base64(&self) -> String {
        B64.encode(self.public_key())
    }
}

impl fmt::Debug for HpkeKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HpkeKeyPair")
            .field("public_key", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

/// Decodes a standard-base64 X25519 public key (an attested `publicKey` or a `clientKey`).
pub fn public_key_from_base64(b64: &str) -> Result<[u8; 32], EnvelopeError> {
    let bytes = B64
        .decode(b64.as_bytes())
        .map_err(|_| EnvelopeError::InvalidPublicKey("not standard base64"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| EnvelopeError::InvalidPublicKey("not 32 bytes"))
}

/// Encodes a raw X25519 public key as standard base64.
pub fn public_key_to_base64(public_key: &[u8; 32]) -> String {
    B64.encode(public_key)
}

/// Seals `plaintext` to `recipient_public` (HPKE base mode, single shot, empty AAD).
///
/// The ephemeral key comes from `rng` and from nowhere else: `DeriveKeyPair` of 32 bytes
/// drawn from it, as the `hpke` crate does (so the same draws give the same bytes).
pub fn seal<R: CryptoRng + ?Sized>(
    recipient_public: &[u8; 32],
    info: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Sealed, EnvelopeError> {
    let mut ikm = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut ikm[..]);
    let (enc, ciphertext) = crate::rfc9180::seal_base(recipient_public, info, plaintext, &ikm)?;
    Ok(Sealed {
        enc: enc.to_vec(),
        ciphertext,
    })
}

/// Opens a value sealed to `kp` with this `info` (RFC 9180, on aws-lc's X25519: see
/// `rfc9180.rs` for why not `hpke`'s open).
///
/// The plaintext is decrypted straight into a zeroizing buffer. Any failure after the
/// length checks is [`EnvelopeError::OpenFailed`], whatever its cause.
pub fn open(
    kp: &HpkeKeyPair,
    info: &[u8],
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let enc: &[u8; ENC_LEN] = sealed
        .enc
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::InvalidEncLength(sealed.enc.len()))?;
    crate::rfc9180::open_base(&kp.private, &kp.public, enc, info, &sealed.ciphertext)
}

/// Serializes `value` as JSON into a zeroizing buffer allocated once at its exact size,
/// so that no reallocation leaves a copy of the plaintext behind.
pub(crate) fn to_json_zeroizing<T: Serialize + ?Sized>(
    value: &T,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let mut counter = ByteCounter(0);
    serde_json::to_writer(&mut counter, value).map_err(|_| EnvelopeError::Serialize)?;
    let mut buf = Zeroizing::new(Vec::with_capacity(counter.0));
    serde_json::to_writer(&mut *buf, value).map_err(|_| EnvelopeError::Serialize)?;
    Ok(buf)
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut rng = rand::rng();
        let kp = HpkeKeyPair::generate(&mut rng);
        let sealed = seal(&kp.public_key(), PIN_INFO, b"hello", &mut rng).unwrap();
        assert_eq!(sealed.enc.len(), ENC_LEN);
        assert_eq!(sealed.ciphertext.len(), 5 + TAG_LEN);
        let pt = open(&kp, PIN_INFO, &sealed).unwrap();
        assert_eq!(&pt[..], b"hello");
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let mut rng = rand::rng();
        let kp = HpkeKeyPair::generate(&mut rng);
        let sealed = seal(&kp.public_key(), CLIENT_INFO, b"", &mut rng).unwrap();
        assert!(open(&kp, CLIENT_INFO, &sealed).unwrap().is_empty());
    }

    #[test]
    fn fresh_ephemeral_key_each_time() {
        let mut rng = rand::rng();
        let kp = HpkeKeyPair::generate(&mut rng);
        let a = seal(&kp.public_key(), PIN_INFO, b"x", &mut rng).unwrap();
        let b = seal(&kp.public_key(), PIN_INFO, b"x", &mut rng).unwrap();
        assert_ne!(a.enc, b.enc);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn wrong_recipient_fails() {
        let mut rng = rand::rng();
        let kp = HpkeKeyPair::generate(&mut rng);
        let other = HpkeKeyPair::generate(&mut rng);
        let sealed = seal(&kp.public_key(), PIN_INFO, b"secret", &mut rng).unwrap();
        assert_eq!(
            open(&other, PIN_INFO, &sealed),
            Err(EnvelopeError::OpenFailed)
        );
    }

    #[test]
    fn wrong_info_fails() {
        let mut rng = rand::rng();
        let kp = HpkeKeyPair::generate(&mut rng);
        let sealed = seal(&kp.public_key(), PIN_INFO, b"secret", &mut rng).unwrap();
        assert_eq!(
            open(&kp, CLIENT_INFO, &sealed),
            Err(EnvelopeError::OpenFailed)
        );
        let sealed = seal(&kp.public_key(), CLIENT_INFO, b"secret", &mut rng).unwrap();
        assert_eq!(open(&kp, PIN_INFO, &sealed), Err(EnvelopeError::OpenFailed));
    }

    #[test]
    fn every_flipped_bit_fails() {
        let mut rng = rand::rng();
        let kp = HpkeKeyPair::generate(&mut rng);
        let sealed = seal(&kp.public_key(), PIN_INFO, b"123456", &mut rng).unwrap();
        for i in 0..sealed.ciphertext.len() * 8 {
            let mut bad = sealed.clone();
            bad.ciphertext[i / 8] ^= 1 << (i % 8);
            assert_eq!(open(&kp, PIN_INFO, &bad), Err(EnvelopeError::OpenFailed));
        }
        for i in 0..ENC_LEN * 8 {
            let mut bad = sealed.clone();
            bad.enc[i / 8] ^= 1 << (i % 8);
            assert!(open(&kp, PIN_INFO, &bad).is_err());
        }
    }

    #[test]
    fn malformed_inputs_fail_cleanly() {
        let mut rng = rand::rng();
        let kp = HpkeKeyPair::generate(&mut rng);
        let good = seal(&kp.public_key(), PIN_INFO, b"123456", &mut rng).unwrap();
        for len in [0, 1, 31, 33, 65] {
            let bad = Sealed {
                enc: vec![9; len],
                ciphertext: good.ciphertext.clone(),
            };
            assert_eq!(
                open(&kp, PIN_INFO, &bad),
                Err(EnvelopeError::InvalidEncLength(len))
            );
        }
        for len in [0, 1, TAG_LEN - 1, TAG_LEN] {
            let bad = Sealed {
                enc: good.enc.clone(),
                ciphertext: good.ciphertext[..len].to_vec(),
            };
            assert_eq!(open(&kp, PIN_INFO, &bad), Err(EnvelopeError::OpenFailed));
        }
        // A low-order point as enc makes the DH result all zero: refused, not a panic.
        let bad = Sealed {
            enc: vec![0; ENC_LEN],
            ciphertext: good.ciphertext.clone(),
        };
        assert_eq!(open(&kp, PIN_INFO, &bad), Err(EnvelopeError::OpenFailed));
        // Sealing to a low-order public key is refused too.
        assert_eq!(
            seal(&[0u8; 32], PIN_INFO, b"x", &mut rng),
            Err(EnvelopeError::SealFailed)
        );
    }

    #[test]
    fn sealed_json_shape() {
        let sealed = Sealed {
            enc: vec![0xff; 32],
            ciphertext: vec![1, 2, 3, 4],
        };
        let json = serde_json::to_string(&sealed).unwrap();
        assert_eq!(
            json,
            r#"{"enc":"//////////////////////////////////////////8=","ciphertext":"AQIDBA=="}"#
        );
        let back: Sealed = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sealed);
        // URL-safe alphabet, missing padding and garbage are refused.
        for bad in [
            r#"{"enc":"__________________________________________8=","ciphertext":"AQIDBA=="}"#,
            r#"{"enc":"//////////////////////////////////////////8","ciphertext":"AQIDBA=="}"#,
            r#"{"enc":"!!","ciphertext":"AQIDBA=="}"#,
            r#"{"enc":1,"ciphertext":"AQIDBA=="}"#,
            r#"{"ciphertext":"AQIDBA=="}"#,
        ] {
            assert!(serde_json::from_str::<Sealed>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sealed_postcard_uses_raw_bytes() {
        let sealed = Sealed {
            enc: vec![0xee; 32],
            ciphertext: (0..=255).collect(),
        };
        let bytes = postcard::to_allocvec(&sealed).unwrap();
        // Two varint lengths plus the raw bytes: no base64 inside.
        assert_eq!(bytes.len(), 1 + 32 + 2 + 256);
        let back: Sealed = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, sealed);
        assert!(postcard::from_bytes::<Sealed>(&bytes[..40]).is_err());
    }

    #[test]
    fn key_pair_from_bytes_and_debug() {
        let mut rng = rand::rng();
        let kp = HpkeKeyPair::generate(&mut rng);
        let sk = kp.private_bytes();
        let again = HpkeKeyPair::from_private_bytes(*sk);
        assert_eq!(again.public_key(), kp.public_key());
        let debug = format!("{kp:?}");
        assert!(debug.contains(&hex::encode(kp.public_key())));
        assert!(!debug.contains(&hex::encode(*sk)));
        assert!(!debug.to_lowercase().contains(&hex::encode(&sk[..4])));
        let b64 = kp.public_key_base64();
        assert_eq!(public_key_from_base64(&b64).unwrap(), kp.public_key());
        assert_eq!(public_key_to_base64(&kp.public_key()), b64);
        assert!(public_key_from_base64("AQIDBA==").is_err());
        assert!(public_key_from_base64("not base64").is_err());
    }

    #[test]
    fn json_buffer_has_exact_capacity() {
        let v = serde_json::json!({"pin": "123456", "nested": {"a": [1, 2, 3]}});
        let buf = to_json_zeroizing(&v).unwrap();
        assert_eq!(buf.len(), buf.capacity());
        assert_eq!(&buf[..], serde_json::to_vec(&v).unwrap().as_slice());
    }
}
