//! AWS Nitro Enclaves attestation verification.
//!
//! Steps, per AWS "Verifying the root of trust": COSE_Sign1 with ES384; payload
//! syntax; `cabundle[0]` is the pinned root; every link root → … → leaf is signed by
//! the previous certificate and valid at `now_ms`; the COSE signature verifies with
//! the leaf key; then the PCR policy.

use std::collections::BTreeMap;
use std::time::Duration;

use der::asn1::ObjectIdentifier;
use der::oid::db::rfc5280::{ID_CE_BASIC_CONSTRAINTS, ID_CE_KEY_USAGE};
use der::oid::db::rfc5912::{ECDSA_WITH_SHA_384, ID_EC_PUBLIC_KEY, SECP_384_R_1};
use der::{AnyRef, Decode, Reader, SliceReader};
use p384::ecdsa::signature::Verifier as _;
use p384::ecdsa::{Signature, VerifyingKey};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

use crate::cose::{self, ALG_ES384};
use crate::payload::Payload;
use crate::{AttestationError, AttestationFormat, AttestationVerifier, AttestedDocument};

/// The AWS Nitro Enclaves root (G1), DER. SHA-256 fingerprint
/// `641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B`, as AWS publishes.
pub const AWS_NITRO_ROOT_G1_DER: &[u8] = include_bytes!("../certs/aws-nitro-root-g1.der");

/// Tolerated clock difference when a maximum age is enforced.
const MAX_FUTURE_SKEW_MS: u64 = 60_000;

/// What a Nitro document must show beyond a valid signature chain.
///
/// The default pins nothing and rejects debug enclaves. Production clients should pin
/// at least PCR0 (the enclave image); PCR1/PCR2 pin kernel and application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NitroPolicy {
    /// Each entry must equal the document's PCR exactly.
    pub pcrs: BTreeMap<u16, Vec<u8>>,
    /// Accept enclaves run with `--debug-mode` (PCR0 all zeros). Their memory is
    /// readable from the host, so only for development.
    pub allow_debug: bool,
    /// Reject documents whose `timestamp` is older than this at `now_ms`.
    pub max_age: Option<Duration>,
}

/// Client-side verifier for NSM documents.
#[derive(Debug, Clone)]
pub struct NitroVerifier {
    root_der: Vec<u8>,
    policy: NitroPolicy,
}

impl NitroVerifier {
    /// Trusts `root_der` (compared byte for byte with `cabundle[0]`).
    pub fn new(root_der: Vec<u8>) -> Result<Self, AttestationError> {
        let root = Certificate::from_der(&root_der)
            .map_err(|e| AttestationError::InvalidRoot(e.to_string()))?;
        if root.tbs_certificate.issuer != root.tbs_certificate.subject {
            return Err(AttestationError::InvalidRoot("not self-issued".into()));
        }
        Ok(Self {
            root_der,
            policy: NitroPolicy::default(),
        })
    }

    /// Trusts the root in a PEM `CERTIFICATE` block.
    pub fn from_pem(pem: &str) -> Result<Self, AttestationError> {
        let (label, der) = der::pem::decode_vec(pem.as_bytes())
            .map_err(|e| AttestationError::InvalidRoot(e.to_string()))?;
        if label != "CERTIFICATE" {
            return Err(AttestationError::InvalidRoot(format!(
                "PEM label {label}, expected CERTIFICATE"
            )));
        }
        Self::new(der)
    }

    /// Trusts the built-in AWS Nitro Enclaves root.
    pub fn aws() -> Self {
        Self {
            root_der: AWS_NITRO_ROOT_G1_DER.to_vec(),
            policy: NitroPolicy::default(),
        }
    }

    pub fn with_policy(mut self, policy: NitroPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Requires PCR `index` to equal `value`.
    pub fn with_pcr(mut self, index: u16, value: impl Into<Vec<u8>>) -> Self {
        self.policy.pcrs.insert(index, value.into());
        self
    }

    pub fn allow_debug(mut self, allow: bool) -> Self {
        self.policy.allow_debug = allow;
        self
    }

    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.policy.max_age = Some(max_age);
        self
    }

    pub fn policy(&self) -> &NitroPolicy {
        &self.policy
    }

    fn check_policy(&self, payload: &Payload, now_ms: u64) -> Result<(), AttestationError> {
        let pcr0 = payload
            .pcrs
            .get(&0)
            .ok_or_else(|| AttestationError::Malformed("no PCR0".into()))?;
        if !self.policy.allow_debug && pcr0.iter().all(|&b| b == 0) {
            return Err(AttestationError::DebugEnclave);
        }
        for (&index, expected) in &self.policy.pcrs {
            if payload.pcrs.get(&index) != Some(expected) {
                return Err(AttestationError::PcrMismatch { index });
            }
        }
        if let Some(max_age) = self.policy.max_age {
            let max_age_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
            if payload.timestamp > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
                return Err(AttestationError::TimestampInFuture);
            }
            let age_ms = now_ms.saturating_sub(payload.timestamp);
            if age_ms > max_age_ms {
                return Err(AttestationError::TooOld { age_ms, max_age_ms });
            }
        }
        Ok(())
    }
}

impl AttestationVerifier for NitroVerifier {
    fn verify(&self, document: &[u8], now_ms: u64) -> Result<AttestedDocument, AttestationError> {
        let cose = cose::decode(document)?;
        if cose.alg != ALG_ES384 {
            return Err(AttestationError::WrongFormat {
                expected: AttestationFormat::Nitro,
                found: cose::alg_name(cose.alg),
            });
        }
        let payload = Payload::decode(&cose.payload)?;
        if payload.warning.is_some() {
            return Err(AttestationError::Malformed(
                "development warning in a Nitro document".into(),
            ));
        }
        let leaf_key = verify_chain(
            &self.root_der,
            &payload.cabundle,
            &payload.certificate,
            now_ms,
        )?;
        // NSM signatures are raw r‖s (96 bytes), not DER.
        let signature =
            Signature::from_slice(&cose.signature).map_err(|_| AttestationError::BadSignature)?;
        leaf_key
            .verify(
                &cose::sig_structure(&cose.protected, &cose.payload)?,
                &signature,
            )
            .map_err(|_| AttestationError::BadSignature)?;
        self.check_policy(&payload, now_ms)?;
        Ok(payload.into_attested(AttestationFormat::Nitro))
    }
}

struct ParsedCert<'a> {
    cert: Certificate,
    /// Exact signed bytes; re-encoding the parsed form could differ.
    tbs: &'a [u8],
    key: VerifyingKey,
    subject: String,
}

fn chain_err(msg: impl Into<String>) -> AttestationError {
    AttestationError::ChainInvalid(msg.into())
}

fn parse_cert(der_bytes: &[u8], position: usize) -> Result<ParsedCert<'_>, AttestationError> {
    let bad = |e: der::Error| chain_err(format!("certificate {position}: {e}"));
    let cert = Certificate::from_der(der_bytes).map_err(bad)?;
    let outer = AnyRef::from_der(der_bytes).map_err(bad)?;
    let tbs = SliceReader::new(outer.value())
        .and_then(|mut r| r.tlv_bytes())
        .map_err(bad)?;
    let subject = cert.tbs_certificate.subject.to_string();

    let sig_alg = &cert.signature_algorithm;
    if sig_alg.oid != ECDSA_WITH_SHA_384
        || sig_alg.parameters.is_some()
        || cert.tbs_certificate.signature != *sig_alg
    {
        return Err(chain_err(format!(
            "{subject}: not signed with ecdsa-with-SHA384"
        )));
    }
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY || curve != Some(SECP_384_R_1) {
        return Err(chain_err(format!("{subject}: key is not P-384")));
    }
    let key = spki
        .subject_public_key
        .as_bytes()
        .and_then(|b| VerifyingKey::from_sec1_bytes(b).ok())
        .ok_or_else(|| chain_err(format!("{subject}: invalid P-384 key")))?;
    Ok(ParsedCert {
        cert,
        tbs,
        key,
        subject,
    })
}

fn check_validity(cert: &ParsedCert<'_>, now_ms: u64) -> Result<(), AttestationError> {
    let validity = &cert.cert.tbs_certificate.validity;
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if now_ms < ms(validity.not_before.to_unix_duration()) {
        return Err(AttestationError::CertificateNotYetValid {
            subject: cert.subject.clone(),
        });
    }
    // notAfter is inclusive (RFC 5280 §4.1.2.5) and has one-second resolution.
    if now_ms > ms(validity.not_after.to_unix_duration()).saturating_add(999) {
        return Err(AttestationError::CertificateExpired {
            subject: cert.subject.clone(),
        });
    }
    Ok(())
}

/// `cas_below` counts the CA certificates between this one and the leaf.
fn check_extensions(
    cert: &ParsedCert<'_>,
    is_ca: bool,
    cas_below: usize,
) -> Result<(), AttestationError> {
    let tbs = &cert.cert.tbs_certificate;
    let subject = &cert.subject;
    for ext in tbs.extensions.iter().flatten() {
        if ext.critical && ext.extn_id != ID_CE_BASIC_CONSTRAINTS && ext.extn_id != ID_CE_KEY_USAGE
        {
            return Err(chain_err(format!(
                "{subject}: unsupported critical extension {}",
                ext.extn_id
            )));
        }
    }
    let bad = |e: der::Error| chain_err(format!("{subject}: {e}"));
    let constraints = tbs.get::<BasicConstraints>().map_err(bad)?.map(|(_, c)| c);
    let usage = tbs.get::<KeyUsage>().map_err(bad)?.map(|(_, u)| u);
    if is_ca {
        let constraints = constraints
            .filter(|c| c.ca)
            .ok_or_else(|| chain_err(format!("{subject}: issuer is not a CA")))?;
        if let Some(limit) = constraints.path_len_constraint
            && cas_below > usize::from(limit)
        {
            return Err(chain_err(format!("{subject}: path length exceeded")));
        }
        if usage.is_some_and(|u| !u.key_cert_sign()) {
            return Err(chain_err(format!(
                "{subject}: key may not sign certificates"
            )));
        }
    } else if usage.is_some_and(|u| !u.digital_signature()) {
        return Err(chain_err(format!("{subject}: key may not sign documents")));
    }
    Ok(())
}

fn check_link(issuer: &ParsedCert<'_>, child: &ParsedCert<'_>) -> Result<(), AttestationError> {
    if child.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
        return Err(chain_err(format!(
            "{}: issuer does not match {}",
            child.subject, issuer.subject
        )));
    }
    let signature = child
        .cert
        .signature
        .as_bytes()
        .and_then(|b| Signature::from_der(b).ok())
        .ok_or_else(|| chain_err(format!("{}: malformed signature", child.subject)))?;
    issuer
        .key
        .verify(child.tbs, &signature)
        .map_err(|_| chain_err(format!("{}: bad signature", child.subject)))
}

/// Checks root → cabundle → leaf and returns the leaf's key. Links are found by
/// name and signature only: AWS's lower certificates carry no AKI/SKI.
fn verify_chain(
    root_der: &[u8],
    cabundle: &[Vec<u8>],
    leaf_der: &[u8],
    now_ms: u64,
) -> Result<VerifyingKey, AttestationError> {
    let first = cabundle
        .first()
        .ok_or_else(|| AttestationError::Malformed("empty cabundle".into()))?;
    if first.as_slice() != root_der {
        return Err(AttestationError::RootMismatch);
    }
    if leaf_der.is_empty() {
        return Err(AttestationError::Malformed("empty certificate".into()));
    }
    let chain = cabundle
        .iter()
        .map(Vec::as_slice)
        .chain([leaf_der])
        .enumerate()
        .map(|(i, der)| parse_cert(der, i))
        .collect::<Result<Vec<_>, _>>()?;

    let leaf_index = chain.len() - 1;
    for (i, cert) in chain.iter().enumerate() {
        if let Some(issuer) = i.checked_sub(1).and_then(|p| chain.get(p)) {
            check_link(issuer, cert)?;
        }
        check_validity(cert, now_ms)?;
        check_extensions(cert, i < leaf_index, leaf_index.saturating_sub(i + 1))?;
    }
    chain
        .into_iter()
        .next_back()
        .map(|leaf| leaf.key)
        .ok_or_else(|| chain_err("empty chain"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE_1: &[u8] = include_bytes!("../tests/fixtures/sample-1.cbor");
    const SAMPLE_2: &[u8] = include_bytes!("../tests/fixtures/sample-2.cbor");
    const SAMPLE_1_TS: u64 = 1_665_651_482_136;

    fn payload(doc: &[u8]) -> Payload {
        let cose = cose::decode(doc).expect("cose");
        Payload::decode(&cose.payload).expect("payload")
    }

    fn chain_error(cabundle: &[Vec<u8>], leaf: &[u8]) -> String {
        match verify_chain(AWS_NITRO_ROOT_G1_DER, cabundle, leaf, SAMPLE_1_TS) {
            Err(AttestationError::ChainInvalid(msg)) => msg,
            other => panic!("expected ChainInvalid, got {other:?}"),
        }
    }

    #[test]
    fn genuine_chain_verifies() {
        let p = payload(SAMPLE_1);
        assert_eq!(p.cabundle.len(), 4);
        assert!(
            verify_chain(
                AWS_NITRO_ROOT_G1_DER,
                &p.cabundle,
                &p.certificate,
                SAMPLE_1_TS
            )
            .is_ok()
        );
    }

    #[test]
    fn reordered_or_missing_intermediates_rejected() {
        let p = payload(SAMPLE_1);
        let mut swapped = p.cabundle.clone();
        swapped.swap(1, 2);
        assert!(chain_error(&swapped, &p.certificate).contains("issuer does not match"));

        let mut missing = p.cabundle.clone();
        missing.remove(2);
        assert!(chain_error(&missing, &p.certificate).contains("issuer does not match"));
    }

    #[test]
    fn ca_constraints_enforced() {
        let p = payload(SAMPLE_1);
        let leaf = parse_cert(&p.certificate, 4).expect("leaf parses");
        assert!(check_extensions(&leaf, false, 0).is_ok());
        let err = check_extensions(&leaf, true, 0).expect_err("leaf is no CA");
        assert!(matches!(err, AttestationError::ChainInvalid(ref m) if m.contains("not a CA")));

        // The instance CA has pathlen 0: it may not sign another CA.
        let instance = parse_cert(&p.cabundle[3], 3).expect("instance CA parses");
        assert!(check_extensions(&instance, true, 0).is_ok());
        let err = check_extensions(&instance, true, 1).expect_err("pathlen 0");
        assert!(matches!(err, AttestationError::ChainInvalid(ref m) if m.contains("path length")));

        let mut extended = p.cabundle.clone();
        extended.push(p.certificate.clone());
        chain_error(&extended, &p.certificate);
    }

    #[test]
    fn leaf_from_another_chain_rejected() {
        let p1 = payload(SAMPLE_1);
        let p2 = payload(SAMPLE_2);
        assert!(chain_error(&p1.cabundle, &p2.certificate).contains("issuer does not match"));
    }

    #[test]
    fn tampered_leaf_signature_rejected() {
        let p = payload(SAMPLE_1);
        // Names intact, so only the issuer's signature can catch it.
        let mut leaf = p.certificate.clone();
        let tbs_len = {
            let outer = AnyRef::from_der(&leaf).expect("der");
            SliceReader::new(outer.value())
                .and_then(|mut r| r.tlv_bytes().map(<[u8]>::len))
                .expect("tbs")
        };
        // Last byte of tbsCertificate (after the 4-byte outer SEQUENCE header).
        leaf[4 + tbs_len - 1] ^= 0x01;
        let msg = chain_error(&p.cabundle, &leaf);
        assert!(msg.contains("bad signature"), "{msg}");
    }
}
