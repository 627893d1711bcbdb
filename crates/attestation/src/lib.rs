//! Attestation documents that bind the enclave's HPKE public key to its code measurement.
//!
//! The enclave side implements [`AttestationProvider`]; clients verify with an
//! [`AttestationVerifier`], normally through the [`Verifier`] enum so that the
//! accepted format is chosen by the client's configuration, never by the document.
//!
//! Both formats share one wire layout: an untagged COSE_Sign1 whose payload is the
//! AWS Nitro NSM attestation map. Nitro documents are ES384-signed by a leaf
//! certificate chaining to the AWS Nitro root; dev documents are Ed25519-signed by a
//! publicly known key and carry [`DEV_WARNING`].
//!
//! Time is always a parameter (`now_ms`, Unix milliseconds): verification never
//! reads the system clock, so real (long expired) Nitro documents stay testable.

mod cose;
mod dev;
mod nitro;
mod payload;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use dev::{DevProvider, DevVerifier, dev_public_key, measure_file};
pub use nitro::{AWS_NITRO_ROOT_G1_DER, NitroPolicy, NitroVerifier};

/// Carried inside every dev document and meant to be shown to users.
pub const DEV_WARNING: &str =
    "development attestation: it proves nothing about the code that holds this key";

/// Largest document accepted; real NSM documents are about 4.5 KiB.
pub const MAX_DOCUMENT_LEN: usize = 64 * 1024;

/// Which kind of attestation a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttestationFormat {
    /// Self-signed with the public development key: proves nothing.
    Dev,
    /// Signed by the AWS Nitro Security Module.
    Nitro,
}

impl AttestationFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Nitro => "nitro",
        }
    }
}

impl fmt::Display for AttestationFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttestationFormat {
    type Err = AttestationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dev" => Ok(Self::Dev),
            "nitro" => Ok(Self::Nitro),
            other => Err(AttestationError::UnknownFormat(other.to_owned())),
        }
    }
}

/// The verified content of a document. `public_key` is returned exactly as signed
/// (it need not be SPKI): callers compare it with the key they were handed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedDocument {
    pub format: AttestationFormat,
    pub module_id: String,
    pub timestamp_ms: u64,
    pub pcrs: BTreeMap<u16, Vec<u8>>,
    pub public_key: Option<Vec<u8>>,
    pub user_data: Option<Vec<u8>>,
    pub nonce: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    #[error("malformed attestation document: {0}")]
    Malformed(String),
    #[error("expected a {expected} attestation document, found {found}")]
    WrongFormat {
        expected: AttestationFormat,
        found: String,
    },
    #[error("unknown attestation format {0:?}")]
    UnknownFormat(String),
    #[error("attestation document signature does not verify")]
    BadSignature,
    #[error("certificate bundle does not start with the trusted root")]
    RootMismatch,
    #[error("invalid trusted root certificate: {0}")]
    InvalidRoot(String),
    #[error("certificate chain invalid: {0}")]
    ChainInvalid(String),
    #[error("certificate expired at the given time: {subject}")]
    CertificateExpired { subject: String },
    #[error("certificate not yet valid at the given time: {subject}")]
    CertificateNotYetValid { subject: String },
    #[error("PCR{index} does not match the expected value")]
    PcrMismatch { index: u16 },
    #[error("enclave runs in debug mode (PCR0 is all zeros)")]
    DebugEnclave,
    #[error("attestation document is {age_ms} ms old, more than the allowed {max_age_ms} ms")]
    TooOld { age_ms: u64, max_age_ms: u64 },
    #[error("attestation document timestamp is in the future")]
    TimestampInFuture,
    #[error("invalid attestation input: {0}")]
    InvalidInput(String),
}

/// Enclave side: produces a document binding `public_key` to this enclave.
pub trait AttestationProvider: Send + Sync {
    fn format(&self) -> AttestationFormat;

    fn attest(
        &self,
        public_key: &[u8],
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<Vec<u8>, AttestationError>;
}

/// Client side: checks a document as of `now_ms` and returns its content.
pub trait AttestationVerifier: Send + Sync {
    fn verify(&self, document: &[u8], now_ms: u64) -> Result<AttestedDocument, AttestationError>;
}

/// The one entry point callers configure: it accepts exactly one format.
#[derive(Debug, Clone)]
pub enum Verifier {
    Dev(DevVerifier),
    Nitro(NitroVerifier),
}

impl Verifier {
    pub fn format(&self) -> AttestationFormat {
        match self {
            Self::Dev(_) => AttestationFormat::Dev,
            Self::Nitro(_) => AttestationFormat::Nitro,
        }
    }

    /// Verifies a document that arrived labelled with a format string (e.g. from the
    /// enclave's hello). The label must name this verifier's format; it selects
    /// nothing by itself, so a "dev" label never gets a dev document past a Nitro client.
    pub fn verify_labelled(
        &self,
        format: &str,
        document: &[u8],
        now_ms: u64,
    ) -> Result<AttestedDocument, AttestationError> {
        let claimed: AttestationFormat = format.parse()?;
        if claimed != self.format() {
            return Err(AttestationError::WrongFormat {
                expected: self.format(),
                found: claimed.to_string(),
            });
        }
        self.verify(document, now_ms)
    }
}

impl AttestationVerifier for Verifier {
    fn verify(&self, document: &[u8], now_ms: u64) -> Result<AttestedDocument, AttestationError> {
        match self {
            Self::Dev(v) => v.verify(document, now_ms),
            Self::Nitro(v) => v.verify(document, now_ms),
        }
    }
}

impl From<DevVerifier> for Verifier {
    fn from(v: DevVerifier) -> Self {
        Self::Dev(v)
    }
}

impl From<NitroVerifier> for Verifier {
    fn from(v: NitroVerifier) -> Self {
        Self::Nitro(v)
    }
}
