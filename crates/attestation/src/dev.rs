//! Development attestation: Nitro's layout, signed by a key everybody knows.
//!
//! It exercises the whole client path without Nitro hardware, and proves nothing.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256, Sha384};

use crate::cose::{self, ALG_EDDSA};
use crate::payload::{MAX_NONCE_LEN, MAX_PUBLIC_KEY_LEN, MAX_USER_DATA_LEN, PCR_LEN, Payload};
use crate::{
    AttestationError, AttestationFormat, AttestationProvider, AttestationVerifier,
    AttestedDocument, DEV_WARNING,
};

/// Public by design: anyone can forge a dev document.
const DEV_KEY_SEED: &str = "keystead development attestation key (proves nothing)";
pub(crate) const DEV_MODULE_ID: &str = "keystead-dev";

fn dev_signing_key() -> SigningKey {
    SigningKey::from_bytes(&Sha256::digest(DEV_KEY_SEED.as_bytes()).into())
}

/// The Ed25519 public key that signs every dev document.
pub fn dev_public_key() -> [u8; 32] {
    dev_signing_key().verifying_key().to_bytes()
}

/// SHA-384 of a file: the dev stand-in for PCR0 (the enclave measures its own executable).
pub fn measure_file(path: impl AsRef<Path>) -> io::Result<[u8; PCR_LEN]> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha384::new();
    io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().into())
}

/// Enclave side of dev attestation.
#[derive(Clone)]
pub struct DevProvider {
    measurement: [u8; PCR_LEN],
    key: SigningKey,
}

impl DevProvider {
    pub fn new(measurement: [u8; PCR_LEN]) -> Self {
        Self {
            measurement,
            key: dev_signing_key(),
        }
    }
}

impl std::fmt::Debug for DevProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevProvider")
            .field("measurement", &self.measurement)
            .finish_non_exhaustive()
    }
}

fn check_input(value: Option<&[u8]>, max: usize, what: &str) -> Result<(), AttestationError> {
    match value {
        Some(v) if v.len() > max => Err(AttestationError::InvalidInput(format!(
            "{what} is {} bytes, at most {max} allowed",
            v.len()
        ))),
        _ => Ok(()),
    }
}

impl AttestationProvider for DevProvider {
    fn format(&self) -> AttestationFormat {
        AttestationFormat::Dev
    }

    fn attest(
        &self,
        public_key: &[u8],
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<Vec<u8>, AttestationError> {
        // Same limits as the NSM, so dev never accepts what Nitro would refuse.
        if public_key.is_empty() {
            return Err(AttestationError::InvalidInput("public_key is empty".into()));
        }
        check_input(Some(public_key), MAX_PUBLIC_KEY_LEN, "public_key")?;
        check_input(user_data, MAX_USER_DATA_LEN, "user_data")?;
        check_input(nonce, MAX_NONCE_LEN, "nonce")?;
        if now_ms == 0 {
            return Err(AttestationError::InvalidInput("timestamp is zero".into()));
        }
        let payload = Payload {
            module_id: DEV_MODULE_ID.into(),
            timestamp: now_ms,
            pcrs: BTreeMap::from([(0, self.measurement.to_vec())]),
            certificate: Vec::new(),
            cabundle: Vec::new(),
            public_key: Some(public_key.to_vec()),
            user_data: user_data.map(<[u8]>::to_vec),
            nonce: nonce.map(<[u8]>::to_vec),
            warning: Some(DEV_WARNING.into()),
        };
        cose::encode(ALG_EDDSA, payload.encode()?, |msg| {
            self.key.sign(msg).to_bytes().to_vec()
        })
    }
}

/// Client side of dev attestation: accepts only documents signed by the dev key.
/// Dev documents never expire, so `now_ms` is not consulted.
#[derive(Debug, Clone, Default)]
pub struct DevVerifier {
    expected_measurement: Option<[u8; PCR_LEN]>,
}

impl DevVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pins PCR0 to the SHA-384 of the expected enclave executable.
    pub fn with_measurement(mut self, measurement: [u8; PCR_LEN]) -> Self {
        self.expected_measurement = Some(measurement);
        self
    }
}

impl AttestationVerifier for DevVerifier {
    fn verify(&self, document: &[u8], _now_ms: u64) -> Result<AttestedDocument, AttestationError> {
        let cose = cose::decode(document)?;
        if cose.alg != ALG_EDDSA {
            return Err(AttestationError::WrongFormat {
                expected: AttestationFormat::Dev,
                found: cose::alg_name(cose.alg),
            });
        }
        let signature =
            Signature::from_slice(&cose.signature).map_err(|_| AttestationError::BadSignature)?;
        let key = VerifyingKey::from_bytes(&dev_public_key())
            .map_err(|_| AttestationError::BadSignature)?;
        key.verify_strict(
            &cose::sig_structure(&cose.protected, &cose.payload)?,
            &signature,
        )
        .map_err(|_| AttestationError::BadSignature)?;

        let payload = Payload::decode(&cose.payload)?;
        if payload.warning.as_deref() != Some(DEV_WARNING) {
            return Err(AttestationError::Malformed(
                "dev document lacks the development warning".into(),
            ));
        }
        if payload.module_id != DEV_MODULE_ID
            || !payload.certificate.is_empty()
            || !payload.cabundle.is_empty()
        {
            return Err(AttestationError::Malformed(
                "dev document has Nitro-only content".into(),
            ));
        }
        if payload.public_key.is_none() {
            return Err(AttestationError::Malformed(
                "dev document has no public key".into(),
            ));
        }
        let pcr0 = payload
            .pcrs
            .get(&0)
            .ok_or_else(|| AttestationError::Malformed("dev document has no PCR0".into()))?;
        if let Some(expected) = &self.expected_measurement
            && pcr0.as_slice() != expected.as_slice()
        {
            return Err(AttestationError::PcrMismatch { index: 0 });
        }
        Ok(payload.into_attested(AttestationFormat::Dev))
    }
}
