//! Checking the enclave's attestation before sealing anything to it
//! (docs/enclave-protocol.md §2, "What a client does").

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use keystead_attestation::{AttestationFormat, DEV_WARNING, DevVerifier, NitroVerifier, Verifier};
use keystead_envelope::{SUITE, public_key_from_base64};

use crate::api::AttestationResponse;
use crate::error::{ClientError, Result};

/// Which attestation format the client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttestationPolicy {
    /// Accept the format the server names: `nitro` with the AWS root and the default
    /// policy, or `dev` (which proves nothing, and the caller says so loudly). The
    /// command line never lets a session that saw `nitro` fall back to `dev`.
    #[default]
    Auto,
    /// Only `dev` documents.
    Dev,
    /// Only `nitro` documents, whatever the server claims.
    Nitro,
}

/// An enclave key whose attestation verified: the only key PINs are sealed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnclaveKey {
    pub public_key: [u8; 32],
    pub format: AttestationFormat,
}

impl EnclaveKey {
    /// True when the document proves nothing about the code holding the key.
    pub fn is_dev(&self) -> bool {
        self.format == AttestationFormat::Dev
    }
}

/// What the command line prints (on stderr) whenever it relies on a dev attestation.
pub fn dev_warning() -> String {
    format!(
        "WARNING: the server's enclave has a DEVELOPMENT attestation ({DEV_WARNING}). \
         Anyone can make one for any key: do not use this server with real funds."
    )
}

/// Verifies an attestation answer as of `now_ms` (Unix milliseconds): the document
/// verifies as the accepted format, it attests exactly `publicKey`, and the suite is
/// Keystead's.
pub fn verify(
    answer: &AttestationResponse,
    policy: AttestationPolicy,
    now_ms: u64,
) -> Result<EnclaveKey> {
    let verifier: Verifier = match policy {
        AttestationPolicy::Dev => DevVerifier::new().into(),
        AttestationPolicy::Nitro => NitroVerifier::aws().into(),
        AttestationPolicy::Auto => match answer.format.parse::<AttestationFormat>()? {
            AttestationFormat::Dev => DevVerifier::new().into(),
            AttestationFormat::Nitro => NitroVerifier::aws().into(),
        },
    };
    let document = B64
        .decode(answer.document.as_bytes())
        .map_err(|_| ClientError::AttestationMismatch("the document is not base64"))?;
    let attested = verifier.verify_labelled(&answer.format, &document, now_ms)?;
    let public_key = public_key_from_base64(&answer.public_key)
        .map_err(|_| ClientError::AttestationMismatch("publicKey is not a 32-byte key"))?;
    if attested.public_key.as_deref() != Some(&public_key[..]) {
        return Err(ClientError::AttestationMismatch(
            "the document attests another key than publicKey",
        ));
    }
    if answer.suite != SUITE {
        return Err(ClientError::AttestationMismatch(
            "the enclave uses another HPKE suite",
        ));
    }
    Ok(EnclaveKey {
        public_key,
        format: attested.format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keystead_attestation::{AttestationProvider, DevProvider};

    fn dev_answer(key: [u8; 32], attested: [u8; 32]) -> AttestationResponse {
        let doc = DevProvider::new([7u8; 48])
            .attest(&attested, None, None, 1_750_000_000_000)
            .unwrap();
        AttestationResponse {
            format: "dev".into(),
            document: B64.encode(doc),
            public_key: B64.encode(key),
            suite: SUITE.into(),
        }
    }

    #[test]
    fn a_dev_document_for_the_key_verifies() {
        let answer = dev_answer([9u8; 32], [9u8; 32]);
        let key = verify(&answer, AttestationPolicy::Auto, 1).unwrap();
        assert_eq!(key.public_key, [9u8; 32]);
        assert!(key.is_dev());
        assert!(verify(&answer, AttestationPolicy::Dev, 1).is_ok());
    }

    #[test]
    fn refusals() {
        // Another key than the one attested.
        let answer = dev_answer([9u8; 32], [8u8; 32]);
        assert!(matches!(
            verify(&answer, AttestationPolicy::Auto, 1),
            Err(ClientError::AttestationMismatch(_))
        ));
        // A client that wants nitro refuses a dev document, whatever its label.
        let mut answer = dev_answer([9u8; 32], [9u8; 32]);
        assert!(verify(&answer, AttestationPolicy::Nitro, 1).is_err());
        answer.format = "nitro".into();
        assert!(verify(&answer, AttestationPolicy::Auto, 1).is_err());
        // Unknown format, other suite, tampered document.
        let mut answer = dev_answer([9u8; 32], [9u8; 32]);
        answer.format = "tpm".into();
        assert!(verify(&answer, AttestationPolicy::Auto, 1).is_err());
        let mut answer = dev_answer([9u8; 32], [9u8; 32]);
        answer.suite = "something else".into();
        assert!(verify(&answer, AttestationPolicy::Auto, 1).is_err());
        let mut answer = dev_answer([9u8; 32], [9u8; 32]);
        let mut doc = B64.decode(&answer.document).unwrap();
        let last = doc.len() - 1;
        doc[last] ^= 1;
        answer.document = B64.encode(doc);
        assert!(verify(&answer, AttestationPolicy::Auto, 1).is_err());
    }
}
