//! Sealing the wallet secret under (data key, PIN or recovery code), and authenticating
//! the PIN state, with associated data that binds every seal to its app and wallet.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::CryptoRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use keystead_enclave_proto::{PinState, WalletBinding};

/// Version of the seal layout and key derivation; stored in every wallet record.
pub const SEAL_FORMAT: u16 = 1;
pub const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;

/// What a seal is opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opener {
    Pin,
    RecoveryCode,
}

impl Opener {
    fn label(self) -> &'static [u8] {
        match self {
            Opener::Pin => b"pin",
            Opener::RecoveryCode => b"recovery",
        }
    }
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

/// Associated data: format, app and wallet, length-prefixed so no two bindings collide.
fn associated_data(binding: &WalletBinding, label: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + binding.app_id.len() + binding.wallet_id.len());
    aad.extend_from_slice(b"keystead wallet");
    aad.extend_from_slice(&SEAL_FORMAT.to_be_bytes());
    push_field(&mut aad, binding.app_id.as_bytes());
    push_field(&mut aad, binding.wallet_id.as_bytes());
    push_field(&mut aad, label);
    aad
}

/// The sealing key: HKDF-SHA256 over the data key and the PIN (or recovery code).
///
/// No password stretching: the data key is released only to the enclave, so the PIN
/// alone opens nothing, and the enclave's counter is what limits guesses. See
/// docs/threat-model.md, "PIN key derivation".
fn sealing_key(
    data_key: &[u8; 32],
    salt: &[u8],
    opener: Opener,
    secret: &[u8],
) -> Zeroizing<[u8; 32]> {
    let mut ikm = Zeroizing::new(Vec::with_capacity(32 + secret.len()));
    ikm.extend_from_slice(data_key);
    ikm.extend_from_slice(secret);
    let hk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut key = Zeroizing::new([0u8; 32]);
    let mut info = b"keystead seal v1 ".to_vec();
    info.extend_from_slice(opener.label());
    hk.expand(&info, key.as_mut())
        .expect("32 bytes is a valid HKDF length");
    key
}

/// AES-256-GCM: `nonce ‖ ciphertext ‖ tag`.
#[allow(clippy::too_many_arguments)]
pub fn seal(
    data_key: &[u8; 32],
    salt: &[u8],
    binding: &WalletBinding,
    opener: Opener,
    secret: &[u8],
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Vec<u8> {
    let key = sealing_key(data_key, salt, opener, secret);
    let cipher = Aes256Gcm::new_from_slice(key.as_ref()).expect("32-byte key");
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let aad = associated_data(binding, opener.label());
    let ct = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .expect("AES-GCM encryption of a bounded message cannot fail");
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens a seal; `None` for a wrong PIN or code (or any tampering, indistinguishably).
pub fn open(
    data_key: &[u8; 32],
    salt: &[u8],
    binding: &WalletBinding,
    opener: Opener,
    secret: &[u8],
    sealed: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let key = sealing_key(data_key, salt, opener, secret);
    let cipher = Aes256Gcm::new_from_slice(key.as_ref()).expect("32-byte key");
    let (nonce, ct) = sealed.split_first_chunk::<NONCE_LEN>()?;
    let aad = associated_data(binding, opener.label());
    cipher
        .decrypt(&Nonce::from(*nonce), Payload { msg: ct, aad: &aad })
        .ok()
        .map(Zeroizing::new)
}

fn pin_state_hmac(data_key: &[u8; 32], binding: &WalletBinding, state: &PinState) -> Hmac<Sha256> {
    let hk = Hkdf::<Sha256>::new(None, data_key);
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand(b"keystead pin-state v1", key.as_mut())
        .expect("valid length");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref()).expect("any key length");
    mac.update(&associated_data(binding, b"pin-state"));
    mac.update(&state.failures.to_be_bytes());
    mac.update(&state.lockouts.to_be_bytes());
    mac.update(&state.locked_until.to_be_bytes());
    mac.update(&state.counter.to_be_bytes());
    mac
}

/// Sets `state.mac` for the state's current fields.
pub fn authenticate_pin_state(data_key: &[u8; 32], binding: &WalletBinding, state: &mut PinState) {
    state.mac = pin_state_hmac(data_key, binding, state)
        .finalize()
        .into_bytes()
        .to_vec();
}

/// Checks `state.mac` in constant time.
pub fn verify_pin_state(data_key: &[u8; 32], binding: &WalletBinding, state: &PinState) -> bool {
    pin_state_hmac(data_key, binding, state)
        .verify_slice(&state.mac)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn binding(app: &str, wallet: &str) -> WalletBinding {
        WalletBinding {
            app_id: app.into(),
            wallet_id: wallet.into(),
        }
    }

    #[test]
    fn seal_opens_only_with_its_key_pin_and_binding() {
        let mut rng = StdRng::seed_from_u64(1);
        let dk = [9u8; 32];
        let salt = [1u8; SALT_LEN];
        let b = binding("app_1", "wal_1");
        let sealed = seal(&dk, &salt, &b, Opener::Pin, b"480927", b"secret", &mut rng);
        assert_eq!(
            open(&dk, &salt, &b, Opener::Pin, b"480927", &sealed)
                .unwrap()
                .as_slice(),
            b"secret"
        );
        assert!(open(&dk, &salt, &b, Opener::Pin, b"480928", &sealed).is_none());
        assert!(open(&[8; 32], &salt, &b, Opener::Pin, b"480927", &sealed).is_none());
        assert!(open(&dk, &[2; SALT_LEN], &b, Opener::Pin, b"480927", &sealed).is_none());
        assert!(
            open(
                &dk,
                &salt,
                &binding("app_2", "wal_1"),
                Opener::Pin,
                b"480927",
                &sealed
            )
            .is_none()
        );
        assert!(
            open(
                &dk,
                &salt,
                &binding("app_1", "wal_2"),
                Opener::Pin,
                b"480927",
                &sealed
            )
            .is_none()
        );
        assert!(
            open(
                &dk,
                &salt,
                &binding("app_1w", "al_1"),
                Opener::Pin,
                b"480927",
                &sealed
            )
            .is_none()
        );
        assert!(open(&dk, &salt, &b, Opener::RecoveryCode, b"480927", &sealed).is_none());
        assert!(open(&dk, &salt, &b, Opener::Pin, b"480927", &sealed[..20]).is_none());
    }

    #[test]
    fn pin_state_mac_covers_every_field() {
        let dk = [5u8; 32];
        let b = binding("a", "w");
        let mut state = PinState {
            failures: 2,
            lockouts: 1,
            locked_until: 77,
            counter: 4,
            mac: vec![],
        };
        authenticate_pin_state(&dk, &b, &mut state);
        assert!(verify_pin_state(&dk, &b, &state));
        for change in 0..4 {
            let mut s = state.clone();
            match change {
                0 => s.failures = 0,
                1 => s.lockouts = 0,
                2 => s.locked_until = 0,
                _ => s.counter = 5,
            }
            assert!(!verify_pin_state(&dk, &b, &s));
        }
        assert!(!verify_pin_state(&dk, &binding("a", "w2"), &state));
        assert!(!verify_pin_state(&[6; 32], &b, &state));
    }
}
