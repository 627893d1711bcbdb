//! Keystead's sealed values, as the public contract (API.md, "Sealed values" and
//! "Digests") defines them. Clients (the command line, tests, the widget in TypeScript)
//! and the enclave share this code.
//!
//! - [`seal`] / [`open`]: HPKE (RFC 9180) base mode, single shot, suite [`SUITE`]
//!   (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM), empty AAD. On the wire a
//!   [`Sealed`] is `{"enc": <base64>, "ciphertext": <base64>}` (standard alphabet, padded).
//! - PIN envelopes ([`seal_pin`], [`open_pin`], [`check`]): `info` = [`PIN_INFO`], the
//!   plaintext a [`PinPayload`] approving one [`Operation`] by its digest.
//! - SealedToClient ([`seal_to_client`], [`open_from_enclave`] and the recovery-code and
//!   mnemonic helpers): `info` = [`CLIENT_INFO`], to a client's one-time key.
//! - [`Operation::digest`]: SHA-256 over the RFC 8785 canonical JSON of the operation.
//! - [`validate_new_pin`]: the rules a new PIN must meet.
//!
//! Randomness is always the caller's: every function that needs some takes a
//! `rand_core` 0.9 [`rand_core::CryptoRng`] (for example `rand::rng()` or
//! `rand::rngs::OsRng` of `rand` 0.9); nothing here draws from the system by itself.
//!
//! Secrets (PINs, recovery codes, mnemonics, private keys, plaintexts) are held in
//! zeroizing types whose `Debug` shows nothing of them, and JSON plaintexts are written to
//! and parsed from zeroizing buffers. Errors never quote plaintext.
//!
//! Time: [`check`] refuses an envelope whose `expiresAt` is past on the enclave's clock,
//! or more than [`MAX_EXPIRY_AHEAD_SECS`] (600 s, the contract's 10 minutes) plus
//! [`CLOCK_SKEW_SECS`] (60 s, for a client clock running ahead) in the future.
//! Replay (a nonce seen before) is the enclave's to refuse, using [`PinPayload::nonce`].

mod client;
mod error;
mod operation;
mod pin;
mod pin_rules;
mod rfc9180;
mod seal;

pub use client::{
    open_from_enclave, open_mnemonic, open_recovery_code, seal_mnemonic, seal_recovery_code,
    seal_to_client,
};
pub use error::EnvelopeError;
pub use operation::{MAX_SAFE_INTEGER, Operation, Purpose, TxIntent};
pub use pin::{
    CLOCK_SKEW_SECS, MAX_EXPIRY_AHEAD_SECS, MAX_NONCE_LEN, MAX_PIN_CIPHERTEXT_LEN, MIN_NONCE_LEN,
    NONCE_LEN, PinPayload, check, open_pin, seal_pin,
};
pub use pin_rules::{PIN_LEN, PinRuleError, validate_new_pin};
pub use seal::{
    CLIENT_INFO, ENC_LEN, HpkeKeyPair, PIN_INFO, SUITE, SUITE_IDS, Sealed, TAG_LEN, open,
    public_key_from_base64, public_key_to_base64, seal,
};
pub use zeroize::Zeroizing;

/// Deserializes a string straight into a zeroizing `String`.
///
/// serde_json hands over an unescaped string as one borrowed slice, copied once into an
/// exactly-sized `String` that goes straight into `Zeroizing`. (A string with JSON escapes
/// passes through the parser's scratch buffer first, which this crate cannot wipe.)
fn de_zeroizing_string<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Zeroizing<String>, D::Error> {
    serde::Deserialize::deserialize(d).map(Zeroizing::new)
}
