//! Arbitrary bytes against the enclave's side of the sealed values, with a fixed key:
//!
//! (a) as a raw `enc` (first 32 bytes) + `ciphertext` (the rest) for `open_pin` and
//!     `open_from_enclave` (reaches the length checks and HPKE/AES-GCM refusal paths);
//! (b) as JSON for `Sealed` (the strict base64 fields), opened if it parses;
//! (c) as the plaintext of a PIN envelope, sealed to the key with a seeded RNG, then
//!     opened and checked against a fixed operation: this is what reaches the PIN
//!     payload parser and `check`, which ciphertext fuzzing alone never would.
//!
//! Nothing may panic, and a `Sealed` or `PinPayload` that parses must write back and read
//! back the same.
#![no_main]

use std::sync::LazyLock;

use keystead_envelope::{
    ENC_LEN, HpkeKeyPair, Operation, PIN_INFO, Sealed, check, open_from_enclave, open_pin, seal,
};
use keystead_fuzz::{NOW, key_pair, operation};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng as _;
use rand::rngs::StdRng;

static KEY: LazyLock<HpkeKeyPair> = LazyLock::new(key_pair);
static OP: LazyLock<Operation> = LazyLock::new(operation);

fn open_both(sealed: &Sealed) {
    if let Ok(payload) = open_pin(&KEY, sealed) {
        let _ = check(&payload, &OP, NOW);
    }
    let _ = open_from_enclave(&KEY, sealed);
}

fuzz_target!(|data: &[u8]| {
    // (a) Raw enc + ciphertext. Shorter inputs become a short `enc`, which must be refused.
    let split = data.len().min(ENC_LEN);
    let (enc, ciphertext) = data.split_at(split);
    open_both(&Sealed {
        enc: enc.to_vec(),
        ciphertext: ciphertext.to_vec(),
    });

    // (b) JSON `{"enc": <base64>, "ciphertext": <base64>}`.
    if let Ok(sealed) = serde_json::from_slice::<Sealed>(data) {
        // Only canonical base64 is accepted, so the value writes back the same way.
        let json = serde_json::to_string(&sealed).expect("a Sealed serializes");
        let again: Sealed = serde_json::from_str(&json).expect("a written Sealed reads back");
        assert_eq!(again, sealed, "Sealed changed through JSON");
        open_both(&sealed);
    }

    // (c) The input as a PIN envelope plaintext.
    let mut rng = StdRng::seed_from_u64(0);
    let sealed = seal(&KEY.public_key(), PIN_INFO, data, &mut rng)
        .expect("sealing to a valid public key succeeds");
    if let Ok(payload) = open_pin(&KEY, &sealed) {
        let _ = check(&payload, &OP, NOW);
        // A payload the parser accepted writes back in the wire form it reads, and reads
        // back the same.
        let json = serde_json::to_vec(&payload).expect("a PinPayload serializes");
        let again: keystead_envelope::PinPayload =
            serde_json::from_slice(&json).expect("a written PinPayload reads back");
        assert_eq!(*again.pin, *payload.pin);
        assert_eq!(again.purpose, payload.purpose);
        assert_eq!(again.digest, payload.digest);
        assert_eq!(again.nonce, payload.nonce);
        assert_eq!(again.expires_at, payload.expires_at);
    }
});
