use crate::operation::Purpose;

/// Everything that can go wrong sealing, opening or checking a sealed value.
///
/// No variant ever carries plaintext: messages are safe to log. In particular a
/// plaintext that does not parse is reported as [`EnvelopeError::MalformedPayload`]
/// without the parser's message, because JSON parser messages quote the offending value
/// (which could be the PIN).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// `enc` is not a 32-byte X25519 public key.
    #[error("enc must be 32 bytes, got {0}")]
    InvalidEncLength(usize),
    /// A public key (for example a base64 `clientKey`) is not 32 bytes of standard base64.
    #[error("invalid X25519 public key: {0}")]
    InvalidPublicKey(&'static str),
    /// HPKE encapsulation or encryption failed (for example a low-order recipient key).
    #[error("HPKE seal failed")]
    SealFailed,
    /// Wrong key, wrong `info`, tampered `enc` or ciphertext: deliberately not told apart.
    #[error("HPKE open failed")]
    OpenFailed,
    /// The sealed value is larger than this kind of value can be.
    #[error("sealed value too large: {len} bytes, at most {max}")]
    TooLarge { len: usize, max: usize },
    /// The plaintext is not the JSON it should be (details withheld on purpose).
    #[error("malformed plaintext")]
    MalformedPayload,
    /// A value could not be serialized to JSON.
    #[error("cannot serialize plaintext")]
    Serialize,
    /// The envelope approves another kind of operation.
    #[error("envelope is for {got}, the operation is {expected}")]
    PurposeMismatch { expected: Purpose, got: Purpose },
    /// The envelope approves another operation of the same kind.
    #[error("digest does not match the operation")]
    DigestMismatch,
    /// `expiresAt` is in the past.
    #[error("envelope expired at {expires_at} (now {now})")]
    Expired { expires_at: u64, now: u64 },
    /// `expiresAt` is further ahead than the contract allows.
    #[error("envelope expiry {expires_at} is too far ahead (latest accepted {latest})")]
    ExpiryTooFar { expires_at: u64, latest: u64 },
    /// The nonce has fewer bytes than [`crate::MIN_NONCE_LEN`].
    #[error("nonce too short: {len} bytes, at least {min}")]
    NonceTooShort { len: usize, min: usize },
    /// The nonce has more bytes than [`crate::MAX_NONCE_LEN`].
    #[error("nonce too long: {len} bytes, at most {max}")]
    NonceTooLong { len: usize, max: usize },
    /// A `chainId` above 2^53 - 1 has no exact JSON (IEEE 754) form, so its digest would
    /// be ambiguous.
    #[error("chainId {0} is above 2^53 - 1")]
    ChainIdOutOfRange(u64),
}
