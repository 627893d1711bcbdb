//! SealedToClient: values only the user may read, sealed by the enclave to the one-time
//! `clientKey` the client sent (`info` = [`CLIENT_INFO`]).

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::EnvelopeError;
use crate::seal::{CLIENT_INFO, HpkeKeyPair, Sealed, open, seal, to_json_zeroizing};

/// Seals `value`, as JSON, to a client's one-time key. The JSON plaintext lives only in
/// a zeroizing buffer.
pub fn seal_to_client<T: Serialize + ?Sized, R: CryptoRng + ?Sized>(
    client_public: &[u8; 32],
    value: &T,
    rng: &mut R,
) -> Result<Sealed, EnvelopeError> {
    let plaintext = to_json_zeroizing(value)?;
    seal(client_public, CLIENT_INFO, &plaintext, rng)
}

/// Opens a SealedToClient with the client's one-time key pair: its JSON plaintext.
pub fn open_from_enclave(
    kp: &HpkeKeyPair,
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    open(kp, CLIENT_INFO, sealed)
}

#[derive(Serialize)]
struct RecoveryKitRef<'a> {
    #[serde(rename = "recoveryCode")]
    recovery_code: &'a str,
}

#[derive(Deserialize)]
struct RecoveryKitWire {
    #[serde(
        rename = "recoveryCode",
        deserialize_with = "crate::de_zeroizing_string"
    )]
    recovery_code: Zeroizing<String>,
}

#[derive(Serialize)]
struct MnemonicRef<'a> {
    mnemonic: &'a str,
}

#[derive(Deserialize)]
struct MnemonicWire {
    #[serde(deserialize_with = "crate::de_zeroizing_string")]
    mnemonic: Zeroizing<String>,
}

/// Seals a recovery kit, `{"recoveryCode": "..."}`, to a client's one-time key.
pub fn seal_recovery_code<R: CryptoRng + ?Sized>(
    client_public: &[u8; 32],
    recovery_code: &str,
    rng: &mut R,
) -> Result<Sealed, EnvelopeError> {
    seal_to_client(client_public, &RecoveryKitRef { recovery_code }, rng)
}

/// Opens a recovery kit: the recovery code.
pub fn open_recovery_code(
    kp: &HpkeKeyPair,
    sealed: &Sealed,
) -> Result<Zeroizing<String>, EnvelopeError> {
    let plaintext = open_from_enclave(kp, sealed)?;
    let kit: RecoveryKitWire =
        serde_json::from_slice(&plaintext).map_err(|_| EnvelopeError::MalformedPayload)?;
    Ok(kit.recovery_code)
}

/// Seals an export, `{"mnemonic": "..."}`, to a client's one-time key.
pub fn seal_mnemonic<R: CryptoRng + ?Sized>(
    client_public: &[u8; 32],
    mnemonic: &str,
    rng: &mut R,
) -> Result<Sealed, EnvelopeError> {
    seal_to_client(client_public, &MnemonicRef { mnemonic }, rng)
}

/// Opens an export: the mnemonic.
pub fn open_mnemonic(
    kp: &HpkeKeyPair,
    sealed: &Sealed,
) -> Result<Zeroizing<String>, EnvelopeError> {
    let plaintext = open_from_enclave(kp, sealed)?;
    let export: MnemonicWire =
        serde_json::from_slice(&plaintext).map_err(|_| EnvelopeError::MalformedPayload)?;
    Ok(export.mnemonic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::PIN_INFO;

    const MNEMONIC: &str = "test test test test test test test test test test test junk";

    #[test]
    fn recovery_code_round_trip() {
        let mut rng = rand::rng();
        let client = HpkeKeyPair::generate(&mut rng);
        let sealed = seal_recovery_code(&client.public_key(), "ABCD-EFGH", &mut rng).unwrap();
        let json = open_from_enclave(&client, &sealed).unwrap();
        assert_eq!(&json[..], br#"{"recoveryCode":"ABCD-EFGH"}"#);
        assert_eq!(*open_recovery_code(&client, &sealed).unwrap(), "ABCD-EFGH");
        // A recovery kit is not an export.
        assert_eq!(
            open_mnemonic(&client, &sealed).unwrap_err(),
            EnvelopeError::MalformedPayload
        );
    }

    #[test]
    fn mnemonic_round_trip() {
        let mut rng = rand::rng();
        let client = HpkeKeyPair::generate(&mut rng);
        let sealed = seal_mnemonic(&client.public_key(), MNEMONIC, &mut rng).unwrap();
        assert_eq!(*open_mnemonic(&client, &sealed).unwrap(), MNEMONIC);
        let other = HpkeKeyPair::generate(&mut rng);
        assert_eq!(
            open_mnemonic(&other, &sealed).unwrap_err(),
            EnvelopeError::OpenFailed
        );
    }

    #[test]
    fn client_and_pin_infos_do_not_mix() {
        let mut rng = rand::rng();
        let kp = HpkeKeyPair::generate(&mut rng);
        let as_pin = seal(&kp.public_key(), PIN_INFO, br#"{"mnemonic":"x"}"#, &mut rng).unwrap();
        assert_eq!(
            open_mnemonic(&kp, &as_pin).unwrap_err(),
            EnvelopeError::OpenFailed
        );
        let to_client =
            seal_to_client(&kp.public_key(), &serde_json::json!({"a": 1}), &mut rng).unwrap();
        assert_eq!(
            crate::open_pin(&kp, &to_client).unwrap_err(),
            EnvelopeError::OpenFailed
        );
    }
}
