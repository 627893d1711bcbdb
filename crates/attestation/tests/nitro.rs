//! Real NSM documents (see tests/fixtures) checked as of their own time.

use keystead_attestation::{
    AWS_NITRO_ROOT_G1_DER, AttestationError, AttestationFormat, AttestationProvider,
    AttestationVerifier, DevProvider, DevVerifier, NitroPolicy, NitroVerifier, Verifier,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

const SAMPLE_1: &[u8] = include_bytes!("fixtures/sample-1.cbor");
const SAMPLE_2: &[u8] = include_bytes!("fixtures/sample-2.cbor");
const ROOT_PEM: &str = include_str!("fixtures/aws-nitro-root-g1.cert");
const OTHER_ROOT_PEM: &str = include_str!("fixtures/other-root.cert");

const SAMPLE_1_TS: u64 = 1_665_651_482_136;
const SAMPLE_2_TS: u64 = 1_679_495_307_405;
// Leaf validity windows (whole seconds, UTC).
const SAMPLE_1_LEAF_NOT_BEFORE: u64 = 1_665_651_479_000; // 2022-10-13 08:57:59
const SAMPLE_1_LEAF_NOT_AFTER: u64 = 1_665_662_282_000; // 2022-10-13 11:58:02
const SAMPLE_2_LEAF_NOT_BEFORE: u64 = 1_679_495_304_000; // 2023-03-22 14:28:24
const SAMPLE_2_LEAF_NOT_AFTER: u64 = 1_679_506_107_000; // 2023-03-22 17:28:27

const S1_PCR0: &str = "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b";
const S1_PCR1: &str = "bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f";
const S1_PCR2: &str = "d8f114da658de5481f8d9ec73907feb553560787522f705c92d7d96beed8e15e2aa611984e098c576832c292e8dc469a";
const S2_PCR4: &str = "77bbaf8092c4ff65c8fa065ffa6024ffc9dd5d8e97cc2db6f28a568f9427e3ff1a3fd305931f689663412615fc15a759";

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test hex")
}

fn verifier() -> NitroVerifier {
    NitroVerifier::from_pem(ROOT_PEM).expect("root parses")
}

/// Sample 2 comes from a debug-mode enclave.
fn debug_verifier() -> NitroVerifier {
    verifier().allow_debug(true)
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

fn flip(doc: &[u8], pos: usize) -> Vec<u8> {
    let mut d = doc.to_vec();
    d[pos] ^= 0x01;
    d
}

#[test]
fn builtin_root_is_the_published_aws_root() {
    assert_eq!(
        hex::encode_upper(Sha256::digest(AWS_NITRO_ROOT_G1_DER)),
        "641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B"
    );
    let from_pem = verifier();
    let builtin = NitroVerifier::aws();
    // Same trust decision both ways.
    assert_eq!(
        from_pem.verify(SAMPLE_1, SAMPLE_1_TS),
        builtin.verify(SAMPLE_1, SAMPLE_1_TS)
    );
    assert!(NitroVerifier::new(AWS_NITRO_ROOT_G1_DER.to_vec()).is_ok());
}

#[test]
fn sample_1_accepted_at_its_timestamp() {
    let doc = verifier()
        .verify(SAMPLE_1, SAMPLE_1_TS)
        .expect("sample 1 verifies");
    assert_eq!(doc.format, AttestationFormat::Nitro);
    assert_eq!(doc.module_id, "i-020b6af9246d90e92-enc0183d09086c24190");
    assert_eq!(doc.timestamp_ms, SAMPLE_1_TS);
    assert_eq!(doc.pcrs.len(), 16);
    assert_eq!(doc.pcrs[&0], h(S1_PCR0));
    assert_eq!(doc.pcrs[&1], h(S1_PCR1));
    assert_eq!(doc.pcrs[&2], h(S1_PCR2));
    assert!(doc.pcrs[&5].iter().all(|&b| b == 0));
    assert_eq!(doc.public_key, None);
    assert_eq!(doc.user_data, None);
    let nonce = doc.nonce.expect("nonce present");
    assert_eq!(nonce.len(), 256);
    assert_eq!(
        hex::encode(&nonce[..32]),
        "cb3dc2eb76c0c1344adf10cc4868591e5bb7fa4b4a8069e144762f71ea1d0017"
    );
}

#[test]
fn sample_2_accepted_at_its_timestamp_when_debug_allowed() {
    let doc = debug_verifier()
        .verify(SAMPLE_2, SAMPLE_2_TS)
        .expect("sample 2 verifies");
    assert_eq!(doc.module_id, "i-0592d6788f2a6df5f-enc018709b898cd0326");
    assert_eq!(doc.timestamp_ms, SAMPLE_2_TS);
    assert_eq!(doc.pcrs.len(), 16);
    for i in 0..3 {
        assert_eq!(doc.pcrs[&i], vec![0u8; 48]);
    }
    assert_eq!(doc.pcrs[&4], h(S2_PCR4));
    assert_eq!(doc.public_key.as_deref(), Some(&b"my super secret key"[..]));
    assert_eq!(doc.user_data.as_deref(), Some(&b"hello, world!"[..]));
    assert_eq!(doc.nonce, None);
}

#[test]
fn debug_enclave_rejected_by_default() {
    assert_eq!(
        verifier().verify(SAMPLE_2, SAMPLE_2_TS),
        Err(AttestationError::DebugEnclave)
    );
}

#[test]
fn accepted_across_the_leaf_validity_window() {
    let v = verifier();
    for now in [SAMPLE_1_LEAF_NOT_BEFORE, SAMPLE_1_LEAF_NOT_AFTER] {
        assert!(v.verify(SAMPLE_1, now).is_ok(), "at {now}");
    }
    let v = debug_verifier();
    for now in [SAMPLE_2_LEAF_NOT_BEFORE, SAMPLE_2_LEAF_NOT_AFTER] {
        assert!(v.verify(SAMPLE_2, now).is_ok(), "at {now}");
    }
}

#[test]
fn rejected_after_leaf_expiry() {
    let e = verifier().verify(SAMPLE_1, SAMPLE_1_LEAF_NOT_AFTER + 1000);
    assert!(
        matches!(e, Err(AttestationError::CertificateExpired { .. })),
        "{e:?}"
    );
    let e = debug_verifier().verify(SAMPLE_2, SAMPLE_2_LEAF_NOT_AFTER + 1000);
    assert!(
        matches!(e, Err(AttestationError::CertificateExpired { .. })),
        "{e:?}"
    );
}

#[test]
fn rejected_before_leaf_not_before() {
    let e = verifier().verify(SAMPLE_1, SAMPLE_1_LEAF_NOT_BEFORE - 1000);
    assert!(
        matches!(e, Err(AttestationError::CertificateNotYetValid { .. })),
        "{e:?}"
    );
    let e = debug_verifier().verify(SAMPLE_2, SAMPLE_2_LEAF_NOT_BEFORE - 1);
    assert!(
        matches!(e, Err(AttestationError::CertificateNotYetValid { .. })),
        "{e:?}"
    );
}

#[test]
fn rejected_today() {
    // Real chains are short-lived; "now" (2025+) is far past every leaf.
    let e = verifier().verify(SAMPLE_1, 1_750_000_000_000);
    assert!(
        matches!(e, Err(AttestationError::CertificateExpired { .. })),
        "{e:?}"
    );
}

#[test]
fn flipped_bits_rejected() {
    let v = verifier();
    let len = SAMPLE_1.len();
    let mut positions: Vec<usize> = (0..len).step_by(97).collect();
    positions.extend([1, 2, 5, len - 96, len - 50, len - 1]);
    for pos in positions {
        assert!(
            v.verify(&flip(SAMPLE_1, pos), SAMPLE_1_TS).is_err(),
            "bit flip at {pos} accepted"
        );
    }
}

#[test]
fn flipped_bit_errors_are_specific() {
    let v = verifier();
    let len = SAMPLE_1.len();
    // Inside the COSE signature.
    assert_eq!(
        v.verify(&flip(SAMPLE_1, len - 10), SAMPLE_1_TS),
        Err(AttestationError::BadSignature)
    );
    // Inside the signed nonce (last payload field, just before the signature).
    assert_eq!(
        v.verify(&flip(SAMPLE_1, len - 96 - 4 - 20), SAMPLE_1_TS),
        Err(AttestationError::BadSignature)
    );
    // Inside cabundle[0]: no longer the pinned root.
    let root_at = find(SAMPLE_1, AWS_NITRO_ROOT_G1_DER);
    assert_eq!(
        v.verify(&flip(SAMPLE_1, root_at + 200), SAMPLE_1_TS),
        Err(AttestationError::RootMismatch)
    );
    // Inside the leaf's subject name: its issuer's signature breaks.
    let leaf_cn = find(
        SAMPLE_1,
        b"i-020b6af9246d90e92-enc0183d09086c24190.us-east-1.aws",
    );
    let e = v.verify(&flip(SAMPLE_1, leaf_cn + 3), SAMPLE_1_TS);
    assert!(
        matches!(e, Err(AttestationError::ChainInvalid(ref m)) if m.contains("bad signature")),
        "{e:?}"
    );
    // Inside the instance CA's subject name: the leaf's issuer no longer matches it.
    let ca_cn = find(
        SAMPLE_1,
        b"i-020b6af9246d90e92.us-east-1.aws.nitro-enclaves",
    );
    let e = v.verify(&flip(SAMPLE_1, ca_cn + 3), SAMPLE_1_TS);
    assert!(
        matches!(e, Err(AttestationError::ChainInvalid(ref m)) if m.contains("issuer does not match")),
        "{e:?}"
    );
}

#[test]
fn different_root_rejected() {
    // Same subject name as the AWS root, different key.
    let v = NitroVerifier::from_pem(OTHER_ROOT_PEM).expect("other root parses");
    assert_eq!(
        v.verify(SAMPLE_1, SAMPLE_1_TS),
        Err(AttestationError::RootMismatch)
    );
    assert_eq!(
        v.allow_debug(true).verify(SAMPLE_2, SAMPLE_2_TS),
        Err(AttestationError::RootMismatch)
    );
}

#[test]
fn invalid_roots_refused() {
    assert!(matches!(
        NitroVerifier::new(b"not a certificate".to_vec()),
        Err(AttestationError::InvalidRoot(_))
    ));
    assert!(matches!(
        NitroVerifier::from_pem("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"),
        Err(AttestationError::InvalidRoot(_))
    ));
}

#[test]
fn truncated_documents_rejected_without_panic() {
    let v = verifier();
    for len in 0..SAMPLE_1.len() {
        let e = v.verify(&SAMPLE_1[..len], SAMPLE_1_TS);
        assert!(
            matches!(e, Err(AttestationError::Malformed(_))),
            "truncated to {len}: {e:?}"
        );
    }
    let mut extended = SAMPLE_1.to_vec();
    extended.push(0);
    assert!(matches!(
        v.verify(&extended, SAMPLE_1_TS),
        Err(AttestationError::Malformed(_))
    ));
}

#[test]
fn pcr_pins() {
    let pinned = verifier()
        .with_pcr(0, h(S1_PCR0))
        .with_pcr(1, h(S1_PCR1))
        .with_pcr(2, h(S1_PCR2));
    assert!(pinned.verify(SAMPLE_1, SAMPLE_1_TS).is_ok());

    let mut wrong = h(S1_PCR1);
    wrong[47] ^= 1;
    assert_eq!(
        verifier()
            .with_pcr(0, h(S1_PCR0))
            .with_pcr(1, wrong)
            .verify(SAMPLE_1, SAMPLE_1_TS),
        Err(AttestationError::PcrMismatch { index: 1 })
    );
    // A pinned PCR missing from the document is a mismatch too.
    assert_eq!(
        verifier()
            .with_pcr(20, vec![0; 48])
            .verify(SAMPLE_1, SAMPLE_1_TS),
        Err(AttestationError::PcrMismatch { index: 20 })
    );
    // Sample 2 (debug, PCR0 zero) fails a PCR0 pin even with debug allowed.
    assert_eq!(
        debug_verifier()
            .with_pcr(0, h(S1_PCR0))
            .verify(SAMPLE_2, SAMPLE_2_TS),
        Err(AttestationError::PcrMismatch { index: 0 })
    );
}

#[test]
fn policy_max_age() {
    let policy = NitroPolicy {
        pcrs: BTreeMap::from([(0, h(S1_PCR0))]),
        allow_debug: false,
        max_age: Some(Duration::from_secs(60)),
    };
    let v = verifier().with_policy(policy);
    assert!(v.verify(SAMPLE_1, SAMPLE_1_TS + 60_000).is_ok());
    assert_eq!(
        v.verify(SAMPLE_1, SAMPLE_1_TS + 60_001),
        Err(AttestationError::TooOld {
            age_ms: 60_001,
            max_age_ms: 60_000
        })
    );
    // Slightly before the document's own timestamp (clock skew) is fine.
    assert!(v.verify(SAMPLE_1, SAMPLE_1_TS - 2_000).is_ok());
}

#[test]
fn formats_do_not_cross() {
    let dev_doc = DevProvider::new([7; 48])
        .attest(b"key", None, None, SAMPLE_1_TS)
        .expect("dev attest");
    assert!(matches!(
        verifier().verify(&dev_doc, SAMPLE_1_TS),
        Err(AttestationError::WrongFormat {
            expected: AttestationFormat::Nitro,
            ..
        })
    ));
    assert!(matches!(
        DevVerifier::new().verify(SAMPLE_1, SAMPLE_1_TS),
        Err(AttestationError::WrongFormat {
            expected: AttestationFormat::Dev,
            ..
        })
    ));
}

#[test]
fn verifier_enum_dispatch() {
    let nitro = Verifier::from(verifier());
    assert_eq!(nitro.format(), AttestationFormat::Nitro);
    assert!(nitro.verify(SAMPLE_1, SAMPLE_1_TS).is_ok());
    assert!(
        nitro
            .verify_labelled("nitro", SAMPLE_1, SAMPLE_1_TS)
            .is_ok()
    );
    assert!(matches!(
        nitro.verify_labelled("dev", SAMPLE_1, SAMPLE_1_TS),
        Err(AttestationError::WrongFormat { .. })
    ));
    assert!(matches!(
        nitro.verify_labelled("sgx", SAMPLE_1, SAMPLE_1_TS),
        Err(AttestationError::UnknownFormat(_))
    ));
    let as_trait: &dyn AttestationVerifier = &nitro;
    assert!(as_trait.verify(SAMPLE_1, SAMPLE_1_TS).is_ok());
}
