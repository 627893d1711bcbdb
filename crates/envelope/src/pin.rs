//! PIN envelopes: what a user approves, sealed to the enclave's attested key.

use std::fmt;

use rand_core::CryptoRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::error::EnvelopeError;
use crate::operation::{Operation, Purpose};
use crate::seal::{HpkeKeyPair, PIN_INFO, Sealed, TAG_LEN, open, seal, to_json_zeroizing};

/// The furthest ahead `expiresAt` may be: 10 minutes (API.md).
pub const MAX_EXPIRY_AHEAD_SECS: u64 = 600;
/// Allowance for a client clock running ahead of the enclave's, added to
/// [`MAX_EXPIRY_AHEAD_SECS`] when checking how far ahead `expiresAt` is. It does not
/// extend the other bound: an envelope whose `expiresAt` has passed on the enclave's
/// clock is expired.
pub const CLOCK_SKEW_SECS: u64 = 60;
/// The fewest nonce bytes accepted (API.md: at least 16 random bytes).
pub const MIN_NONCE_LEN: usize = 16;
/// The most nonce bytes accepted, so that replay memory stays bounded.
pub const MAX_NONCE_LEN: usize = 64;
/// The nonce length [`PinPayload::for_operation`] draws.
pub const NONCE_LEN: usize = 32;
/// The largest PIN envelope ciphertext [`open_pin`] accepts. A valid plaintext is a few
/// hundred bytes; anything much larger is refused before any decryption.
pub const MAX_PIN_CIPHERTEXT_LEN: usize = 4096 + TAG_LEN;

/// The plaintext of a PIN envelope:
/// `{"pin": "123456", "purpose": "...", "digest": <hex>, "nonce": <hex>, "expiresAt": <unix>}`.
///
/// `digest` is 64 lowercase hex characters without `0x`; `nonce` is lowercase hex, an
/// even number of characters. Both are read strictly. Unknown fields are ignored. For a
/// `recover` envelope `pin` holds the recovery code. `Debug` redacts `pin`.
#[derive(Clone)]
pub struct PinPayload {
    pub pin: Zeroizing<String>,
    pub purpose: Purpose,
    pub digest: [u8; 32],
    /// The enclave keeps these to refuse a replay; this crate only bounds the length.
    pub nonce: Vec<u8>,
    /// Unix seconds.
    pub expires_at: u64,
}

impl PinPayload {
    /// A payload approving `op`, with a fresh [`NONCE_LEN`]-byte nonce from `rng`.
    pub fn for_operation<R: CryptoRng + ?Sized>(
        pin: Zeroizing<String>,
        op: &Operation,
        expires_at: u64,
        rng: &mut R,
    ) -> Self {
        let mut nonce = vec![0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        Self {
            pin,
            purpose: op.purpose(),
            digest: op.digest(),
            nonce,
            expires_at,
        }
    }
}

impl fmt::Debug for PinPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinPayload")
            .field("pin", &"<redacted>")
            .field("purpose", &self.purpose)
            .field("digest", &hex::encode(self.digest))
            .field("nonce", &hex::encode(&self.nonce))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PinPayloadRef<'a> {
    pin: &'a str,
    purpose: Purpose,
    digest: String,
    nonce: String,
    expires_at: u64,
}

impl Serialize for PinPayload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PinPayloadRef {
            pin: &self.pin,
            purpose: self.purpose,
            digest: hex::encode(self.digest),
            nonce: hex::encode(&self.nonce),
            expires_at: self.expires_at,
        }
        .serialize(s)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PinPayloadWire {
    #[serde(deserialize_with = "crate::de_zeroizing_string")]
    pin: Zeroizing<String>,
    purpose: Purpose,
    digest: String,
    nonce: String,
    expires_at: u64,
}

impl<'de> Deserialize<'de> for PinPayload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let wire = PinPayloadWire::deserialize(d)?;
        let digest = decode_lower_hex(&wire.digest)
            .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
            .ok_or_else(|| D::Error::custom("digest must be 64 lowercase hex characters"))?;
        let nonce = decode_lower_hex(&wire.nonce)
            .ok_or_else(|| D::Error::custom("nonce must be lowercase hex"))?;
        Ok(PinPayload {
            pin: wire.pin,
            purpose: wire.purpose,
            digest,
            nonce,
            expires_at: wire.expires_at,
        })
    }
}

fn decode_lower_hex(s: &str) -> Option<Vec<u8>> {
    if !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    hex::decode(s).ok()
}

/// Seals a PIN envelope to the enclave's attested key (`info` = [`PIN_INFO`]).
///
/// The JSON plaintext lives only in a zeroizing buffer.
pub fn seal_pin<R: CryptoRng + ?Sized>(
    recipient_public: &[u8; 32],
    payload: &PinPayload,
    rng: &mut R,
) -> Result<Sealed, EnvelopeError> {
    let plaintext = to_json_zeroizing(payload)?;
    seal(recipient_public, PIN_INFO, &plaintext, rng)
}

/// Opens a PIN envelope and parses its plaintext. Call [`check`] next.
///
/// Refuses ciphertexts over [`MAX_PIN_CIPHERTEXT_LEN`] before decrypting. A plaintext
/// that is not a PIN payload gives [`EnvelopeError::MalformedPayload`], with no detail.
pub fn open_pin(kp: &HpkeKeyPair, sealed: &Sealed) -> Result<PinPayload, EnvelopeError> {
    if sealed.ciphertext.len() > MAX_PIN_CIPHERTEXT_LEN {
        return Err(EnvelopeError::TooLarge {
            len: sealed.ciphertext.len(),
            max: MAX_PIN_CIPHERTEXT_LEN,
        });
    }
    let plaintext = open(kp, PIN_INFO, sealed)?;
    serde_json::from_slice(&plaintext).map_err(|_| EnvelopeError::MalformedPayload)
}

/// Checks an opened PIN envelope against the operation it is asked to approve, at
/// `now_unix` on the enclave's clock.
///
/// In order: the operation is representable ([`Operation::validate`]); the purposes
/// match; the digests match (constant-time); `expires_at >= now_unix`;
/// `expires_at <= now_unix + MAX_EXPIRY_AHEAD_SECS + CLOCK_SKEW_SECS`; the nonce has
/// between [`MIN_NONCE_LEN`] and [`MAX_NONCE_LEN`] bytes. The PIN itself is not looked
/// at, and neither is replay: the enclave remembers `payload.nonce` until `expires_at`.
pub fn check(
    payload: &PinPayload,
    expected: &Operation,
    now_unix: u64,
) -> Result<(), EnvelopeError> {
    expected.validate()?;
    let purpose = expected.purpose();
    if payload.purpose != purpose {
        return Err(EnvelopeError::PurposeMismatch {
            expected: purpose,
            got: payload.purpose,
        });
    }
    if !bool::from(payload.digest.ct_eq(&expected.digest())) {
        return Err(EnvelopeError::DigestMismatch);
    }
    if payload.expires_at < now_unix {
        return Err(EnvelopeError::Expired {
            expires_at: payload.expires_at,
            now: now_unix,
        });
    }
    let latest = now_unix
        .saturating_add(MAX_EXPIRY_AHEAD_SECS)
        .saturating_add(CLOCK_SKEW_SECS);
    if payload.expires_at > latest {
        return Err(EnvelopeError::ExpiryTooFar {
            expires_at: payload.expires_at,
            latest,
        });
    }
    let len = payload.nonce.len();
    if len < MIN_NONCE_LEN {
        return Err(EnvelopeError::NonceTooShort {
            len,
            min: MIN_NONCE_LEN,
        });
    }
    if len > MAX_NONCE_LEN {
        return Err(EnvelopeError::NonceTooLong {
            len,
            max: MAX_NONCE_LEN,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::CLIENT_INFO;

    const NOW: u64 = 1_750_000_000;

    fn op() -> Operation {
        Operation::SignMessage {
            app_id: "app_01".into(),
            account_id: "acc_01".into(),
            message: b"hello keystead".to_vec(),
        }
    }

    fn payload() -> PinPayload {
        PinPayload {
            pin: Zeroizing::new("482915".to_string()),
            purpose: Purpose::SignMessage,
            digest: op().digest(),
            nonce: vec![7; 16],
            expires_at: NOW + 300,
        }
    }

    #[test]
    fn json_shape() {
        let json = serde_json::to_string(&payload()).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"pin":"482915","purpose":"sign_message","digest":"1a3538ed34512b66677093a8fd576ae8965c82e2d89312a3510c81d83569f7ff","nonce":"07070707070707070707070707070707","expiresAt":{}}}"#,
                NOW + 300
            )
        );
        let back: PinPayload = serde_json::from_str(&json).unwrap();
        assert_eq!(*back.pin, "482915");
        assert_eq!(back.purpose, Purpose::SignMessage);
        assert_eq!(back.digest, op().digest());
        assert_eq!(back.nonce, vec![7; 16]);
        assert_eq!(back.expires_at, NOW + 300);
    }

    #[test]
    fn strict_parsing() {
        let good = serde_json::to_value(payload()).unwrap();
        let mutate = |field: &str, v: serde_json::Value| {
            let mut j = good.clone();
            j[field] = v;
            serde_json::from_value::<PinPayload>(j)
        };
        assert!(mutate("digest", format!("0x{}", op().digest_hex()).into()).is_err());
        assert!(mutate("digest", op().digest_hex().to_uppercase().into()).is_err());
        assert!(mutate("digest", op().digest_hex()[..62].into()).is_err());
        assert!(mutate("nonce", "0707070".into()).is_err());
        assert!(mutate("nonce", "0A".into()).is_err());
        assert!(mutate("purpose", "sign".into()).is_err());
        assert!(mutate("expiresAt", (-1).into()).is_err());
        assert!(mutate("pin", 123456.into()).is_err());
        // Unknown fields are ignored (the contract may grow optional fields).
        assert!(mutate("extra", true.into()).is_ok());
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("nonce");
        assert!(serde_json::from_value::<PinPayload>(missing).is_err());
    }

    #[test]
    fn seal_open_round_trip() {
        let mut rng = rand::rng();
        let kp = HpkeKeyPair::generate(&mut rng);
        let p =
            PinPayload::for_operation(Zeroizing::new("482915".into()), &op(), NOW + 60, &mut rng);
        assert_eq!(p.nonce.len(), NONCE_LEN);
        let sealed = seal_pin(&kp.public_key(), &p, &mut rng).unwrap();
        let opened = open_pin(&kp, &sealed).unwrap();
        assert_eq!(*opened.pin, "482915");
        assert_eq!(opened.nonce, p.nonce);
        assert_eq!(opened.digest, p.digest);
        check(&opened, &op(), NOW).unwrap();
    }

    #[test]
    fn open_pin_failures() {
        let mut rng = rand::rng();
        let kp = HpkeKeyPair::generate(&mut rng);
        let other = HpkeKeyPair::generate(&mut rng);
        let sealed = seal_pin(&kp.public_key(), &payload(), &mut rng).unwrap();
        assert_eq!(
            open_pin(&other, &sealed).unwrap_err(),
            EnvelopeError::OpenFailed
        );

        let mut flipped = sealed.clone();
        flipped.ciphertext[3] ^= 0x20;
        assert_eq!(
            open_pin(&kp, &flipped).unwrap_err(),
            EnvelopeError::OpenFailed
        );

        // The right key but CLIENT info: not a PIN envelope.
        let json = serde_json::to_vec(&payload()).unwrap();
        let as_client = seal(&kp.public_key(), CLIENT_INFO, &json, &mut rng).unwrap();
        assert_eq!(
            open_pin(&kp, &as_client).unwrap_err(),
            EnvelopeError::OpenFailed
        );

        // Decrypts, but is not a PIN payload; the error does not echo the plaintext.
        let junk = seal(&kp.public_key(), PIN_INFO, br#"{"pin":123456}"#, &mut rng).unwrap();
        let err = open_pin(&kp, &junk).unwrap_err();
        assert_eq!(err, EnvelopeError::MalformedPayload);
        assert!(!format!("{err} {err:?}").contains("123456"));

        let huge = Sealed {
            enc: sealed.enc.clone(),
            ciphertext: vec![0; MAX_PIN_CIPHERTEXT_LEN + 1],
        };
        assert!(matches!(
            open_pin(&kp, &huge),
            Err(EnvelopeError::TooLarge { .. })
        ));
    }

    #[test]
    fn check_accepts_the_bounds() {
        let mut p = payload();
        p.expires_at = NOW;
        check(&p, &op(), NOW).unwrap();
        p.expires_at = NOW + MAX_EXPIRY_AHEAD_SECS + CLOCK_SKEW_SECS;
        check(&p, &op(), NOW).unwrap();
        p.nonce = vec![1; MAX_NONCE_LEN];
        check(&p, &op(), NOW).unwrap();
        // The PIN is not check()'s business: a recovery code passes the same way.
        p.pin = Zeroizing::new("ABCD-EFGH-JKLM".into());
        check(&p, &op(), NOW).unwrap();
    }

    #[test]
    fn check_errors_are_distinct() {
        let mut p = payload();
        p.purpose = Purpose::SignTypedData;
        assert_eq!(
            check(&p, &op(), NOW),
            Err(EnvelopeError::PurposeMismatch {
                expected: Purpose::SignMessage,
                got: Purpose::SignTypedData
            })
        );

        let other_message = Operation::SignMessage {
            app_id: "app_01".into(),
            account_id: "acc_01".into(),
            message: b"hello keysteaD".to_vec(),
        };
        assert_eq!(
            check(&payload(), &other_message, NOW),
            Err(EnvelopeError::DigestMismatch)
        );

        let mut p = payload();
        p.expires_at = NOW - 1;
        assert_eq!(
            check(&p, &op(), NOW),
            Err(EnvelopeError::Expired {
                expires_at: NOW - 1,
                now: NOW
            })
        );

        let mut p = payload();
        p.expires_at = NOW + MAX_EXPIRY_AHEAD_SECS + CLOCK_SKEW_SECS + 1;
        assert_eq!(
            check(&p, &op(), NOW),
            Err(EnvelopeError::ExpiryTooFar {
                expires_at: p.expires_at,
                latest: NOW + 660
            })
        );
        p.expires_at = u64::MAX;
        assert!(matches!(check(&p, &op(), u64::MAX - 1), Ok(())));
        assert!(matches!(
            check(&p, &op(), 0),
            Err(EnvelopeError::ExpiryTooFar { .. })
        ));

        let mut p = payload();
        p.nonce = vec![1; MIN_NONCE_LEN - 1];
        assert_eq!(
            check(&p, &op(), NOW),
            Err(EnvelopeError::NonceTooShort { len: 15, min: 16 })
        );
        p.nonce = vec![];
        assert!(matches!(
            check(&p, &op(), NOW),
            Err(EnvelopeError::NonceTooShort { .. })
        ));
        p.nonce = vec![1; MAX_NONCE_LEN + 1];
        assert_eq!(
            check(&p, &op(), NOW),
            Err(EnvelopeError::NonceTooLong { len: 65, max: 64 })
        );
    }

    #[test]
    fn debug_redacts_the_pin() {
        let p = payload();
        let debug = format!("{p:?} {p:#?}");
        assert!(!debug.contains("482915"), "{debug}");
        assert!(debug.contains("<redacted>"));
        assert!(debug.contains("SignMessage"));
    }
}
