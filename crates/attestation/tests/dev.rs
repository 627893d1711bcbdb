//! Dev attestation round trips and its refusal paths.

use keystead_attestation::{
    AttestationError, AttestationFormat, AttestationProvider, AttestationVerifier, DEV_WARNING,
    DevProvider, DevVerifier, NitroVerifier, Verifier, dev_public_key, measure_file,
};
use sha2::{Digest, Sha256, Sha384};

const NOW: u64 = 1_700_000_000_000;
const MEASUREMENT: [u8; 48] = [0xab; 48];

fn attest(public_key: &[u8], user_data: Option<&[u8]>, nonce: Option<&[u8]>) -> Vec<u8> {
    DevProvider::new(MEASUREMENT)
        .attest(public_key, user_data, nonce, NOW)
        .expect("dev attest")
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn round_trip() {
    let doc = attest(&[1; 32], Some(b"user"), Some(b"nonce-123"));
    let out = DevVerifier::new().verify(&doc, NOW).expect("verifies");
    assert_eq!(out.format, AttestationFormat::Dev);
    assert_eq!(out.module_id, "keystead-dev");
    assert_eq!(out.timestamp_ms, NOW);
    assert_eq!(out.public_key, Some(vec![1; 32]));
    assert_eq!(out.user_data.as_deref(), Some(&b"user"[..]));
    assert_eq!(out.nonce.as_deref(), Some(&b"nonce-123"[..]));
    assert_eq!(out.pcrs.len(), 1);
    assert_eq!(out.pcrs[&0], MEASUREMENT.to_vec());

    let bare = DevVerifier::new()
        .verify(&attest(&[2; 32], None, None), NOW)
        .expect("verifies");
    assert_eq!((bare.user_data, bare.nonce), (None, None));
}

#[test]
fn warning_is_in_the_signed_payload() {
    let doc = attest(&[1; 32], None, None);
    find(&doc, b"warning");
    find(&doc, DEV_WARNING.as_bytes());
}

#[test]
fn measurement_pin() {
    let doc = attest(&[1; 32], None, None);
    assert!(
        DevVerifier::new()
            .with_measurement(MEASUREMENT)
            .verify(&doc, NOW)
            .is_ok()
    );
    assert_eq!(
        DevVerifier::new()
            .with_measurement([0; 48])
            .verify(&doc, NOW),
        Err(AttestationError::PcrMismatch { index: 0 })
    );
}

#[test]
fn tampered_documents_rejected() {
    let doc = attest(&[1; 32], None, Some(b"nonce"));
    let key_at = find(&doc, &[1; 32]);
    for pos in [
        key_at,
        key_at + 31,
        doc.len() - 1,
        doc.len() - 64,
        3,
        find(&doc, b"keystead-dev"),
    ] {
        let mut bad = doc.clone();
        bad[pos] ^= 0x01;
        assert!(
            DevVerifier::new().verify(&bad, NOW).is_err(),
            "flip at {pos} accepted"
        );
    }
    let mut bad = doc.clone();
    bad[key_at] ^= 0x01;
    assert_eq!(
        DevVerifier::new().verify(&bad, NOW),
        Err(AttestationError::BadSignature)
    );
    for len in 0..doc.len() {
        assert!(DevVerifier::new().verify(&doc[..len], NOW).is_err());
    }
}

#[test]
fn rejected_by_nitro_verifier() {
    let doc = attest(&[1; 32], None, None);
    let e = NitroVerifier::aws().allow_debug(true).verify(&doc, NOW);
    assert!(
        matches!(
            e,
            Err(AttestationError::WrongFormat {
                expected: AttestationFormat::Nitro,
                ..
            })
        ),
        "{e:?}"
    );
    let nitro = Verifier::from(NitroVerifier::aws());
    assert!(nitro.verify_labelled("dev", &doc, NOW).is_err());
    assert!(nitro.verify(&doc, NOW).is_err());
    let dev = Verifier::from(DevVerifier::new());
    assert!(dev.verify_labelled("dev", &doc, NOW).is_ok());
}

#[test]
fn provider_limits() {
    let p = DevProvider::new(MEASUREMENT);
    assert_eq!(p.format(), AttestationFormat::Dev);
    assert!(matches!(
        p.attest(&[], None, None, NOW),
        Err(AttestationError::InvalidInput(_))
    ));
    assert!(matches!(
        p.attest(&[1; 32], Some(&[0; 513]), None, NOW),
        Err(AttestationError::InvalidInput(_))
    ));
    assert!(matches!(
        p.attest(&[1; 32], None, Some(&[0; 513]), NOW),
        Err(AttestationError::InvalidInput(_))
    ));
    assert!(
        p.attest(&[1; 1024], Some(&[0; 512]), Some(&[0; 512]), NOW)
            .is_ok()
    );
}

#[test]
fn dev_key_is_derived_from_the_public_seed() {
    use ed25519_dalek::SigningKey;
    let seed = Sha256::digest(b"keystead development attestation key (proves nothing)");
    let key = SigningKey::from_bytes(&seed.into());
    assert_eq!(key.verifying_key().to_bytes(), dev_public_key());
}

#[test]
fn measure_file_is_sha384() {
    let path = std::env::temp_dir().join(format!("keystead-measure-{}", std::process::id()));
    std::fs::write(&path, b"enclave binary").expect("write temp file");
    let measured = measure_file(&path);
    std::fs::remove_file(&path).expect("remove temp file");
    assert_eq!(
        measured.expect("measure").to_vec(),
        Sha384::digest(b"enclave binary").to_vec()
    );
    assert!(measure_file("/nonexistent/keystead").is_err());
}

#[test]
fn format_names() {
    assert_eq!(AttestationFormat::Dev.as_str(), "dev");
    assert_eq!(AttestationFormat::Nitro.as_str(), "nitro");
    assert_eq!(
        "nitro".parse::<AttestationFormat>(),
        Ok(AttestationFormat::Nitro)
    );
    assert_eq!(
        "dev".parse::<AttestationFormat>(),
        Ok(AttestationFormat::Dev)
    );
    assert!("Dev".parse::<AttestationFormat>().is_err());
}
