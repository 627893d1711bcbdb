//! [`crate::SUITE`] itself: RFC 9180 base mode, single shot, with the X25519 steps done by
//! aws-lc and the recipient's public key passed in.
//!
//! Opening a PIN envelope is most of the enclave's work per signature, and the `hpke`
//! crate spends it twice over: its open recomputes the recipient's public key from the
//! private key every time (it has no way to be given it), and its X25519 is
//! x25519-dalek's portable arithmetic, about 2.7 times the cost of aws-lc's (formally
//! verified, s2n-bignum) assembly on this project's machine. `hpke` stays as the tests'
//! reference, and they hold this module to it: each side here works
//! with the other side there, on every length and every altered byte; RFC 9180's A.1.1
//! vector runs through the same key schedule; and the stored vectors, made by `hpke`,
//! are reproduced byte for byte (and checked by an independent Python implementation,
//! `tests/check_vectors.py`).

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use aws_lc_rs::agreement::{self, UnparsedPublicKey, X25519};
use hkdf::{Hkdf, HkdfExtract};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::error::EnvelopeError;
use crate::seal::{ENC_LEN, TAG_LEN};

/// `suite_id` of DHKEM(X25519, HKDF-SHA256) (RFC 9180 §4.1).
const KEM_SUITE_ID: &[u8] = b"KEM\x00\x20";
/// `suite_id` of the whole suite (§5.1): KEM 0x0020, KDF 0x0001, AEAD 0x0002.
const HPKE_SUITE_ID: &[u8] = b"HPKE\x00\x20\x00\x01\x00\x02";
const VERSION_LABEL: &[u8] = b"HPKE-v1";
const MODE_BASE: u8 = 0x00;
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// `LabeledExtract(salt, label, ikm)`, as the HKDF that `LabeledExpand` continues from.
fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Hkdf<Sha256> {
    let mut extract = HkdfExtract::<Sha256>::new(Some(salt));
    for part in [VERSION_LABEL, suite_id, label, ikm] {
        extract.input_ikm(part);
    }
    let (mut prk, hkdf) = extract.finalize();
    prk[..].zeroize();
    hkdf
}

/// `LabeledExtract(salt, label, ikm)` as bytes (the key schedule's hashes).
fn labeled_extract_bytes(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> [u8; 32] {
    let mut extract = HkdfExtract::<Sha256>::new(Some(salt));
    for part in [VERSION_LABEL, suite_id, label, ikm] {
        extract.input_ikm(part);
    }
    extract.finalize().0.into()
}

/// `LabeledExpand(prk, label, info, out.len())`, `info` given in parts.
fn labeled_expand(
    prk: &Hkdf<Sha256>,
    suite_id: &[u8],
    label: &[u8],
    info: &[&[u8]],
    out: &mut [u8],
) {
    let len = u16::try_from(out.len())
        .expect("HPKE outputs are short")
        .to_be_bytes();
    let mut parts: [&[u8]; 6] = [&len, VERSION_LABEL, suite_id, label, &[], &[]];
    parts[4..4 + info.len()].copy_from_slice(info);
    prk.expand_multi_info(&parts[..4 + info.len()], out)
        .expect("HPKE outputs are far below HKDF's limit");
}

/// The AEAD key (into `key`) and nonce of a single-shot seal or open: DHKEM's
/// `ExtractAndExpand` over the X25519 output, then the base-mode key schedule (no PSK).
///
/// `hpke_suite_id` and `key`'s length name the AEAD, so the test runs RFC 9180's own
/// AES-128-GCM vector through the same code.
fn key_schedule(
    hpke_suite_id: &[u8],
    dh: &[u8],
    enc: &[u8; ENC_LEN],
    recipient_public: &[u8; 32],
    info: &[u8],
    key: &mut [u8],
) -> [u8; NONCE_LEN] {
    let eae_prk = labeled_extract(KEM_SUITE_ID, b"", b"eae_prk", dh);
    let mut shared_secret = Zeroizing::new([0u8; 32]);
    labeled_expand(
        &eae_prk,
        KEM_SUITE_ID,
        b"shared_secret",
        &[enc, recipient_public],
        &mut shared_secret[..],
    );

    let psk_id_hash = labeled_extract_bytes(hpke_suite_id, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract_bytes(hpke_suite_id, b"", b"info_hash", info);
    let secret = labeled_extract(hpke_suite_id, &shared_secret[..], b"secret", b"");
    let mut ks_context = [0u8; 65];
    ks_context[0] = MODE_BASE;
    ks_context[1..33].copy_from_slice(&psk_id_hash);
    ks_context[33..].copy_from_slice(&info_hash);
    labeled_expand(&secret, hpke_suite_id, b"key", &[&ks_context], key);
    let mut base_nonce = [0u8; NONCE_LEN];
    labeled_expand(
        &secret,
        hpke_suite_id,
        b"base_nonce",
        &[&ks_context],
        &mut base_nonce,
    );
    base_nonce
}

/// RFC 9180 `DeriveKeyPair` for X25519: the private key's 32 bytes from `ikm`.
pub(crate) fn derive_private_key(ikm: &[u8], sk: &mut [u8; 32]) {
    let dkp_prk = labeled_extract(KEM_SUITE_ID, b"", b"dkp_prk", ikm);
    labeled_expand(&dkp_prk, KEM_SUITE_ID, b"sk", &[], sk);
}

/// Seals `plaintext` to `recipient_public` with `info` and empty AAD; the ephemeral key
/// is `DeriveKeyPair(ikm)`, as the `hpke` crate makes it from the same 32 random bytes.
/// Returns `enc` and the ciphertext with its tag. A low-order recipient key (an all-zero
/// X25519 output) is [`EnvelopeError::SealFailed`].
pub(crate) fn seal_base(
    recipient_public: &[u8; 32],
    info: &[u8],
    plaintext: &[u8],
    ikm: &[u8; 32],
) -> Result<([u8; ENC_LEN], Vec<u8>), EnvelopeError> {
    let mut sk = Zeroizing::new([0u8; 32]);
    derive_private_key(ikm, &mut sk);
    let ephemeral = agreement::PrivateKey::from_private_key(&X25519, &sk[..])
        .map_err(|_| EnvelopeError::SealFailed)?;
    let enc: [u8; ENC_LEN] = ephemeral
        .compute_public_key()
        .map_err(|_| EnvelopeError::SealFailed)?
        .as_ref()
        .try_into()
        .map_err(|_| EnvelopeError::SealFailed)?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let nonce = agreement::agree(
        &ephemeral,
        UnparsedPublicKey::new(&X25519, recipient_public),
        EnvelopeError::SealFailed,
        |dh| {
            Ok(key_schedule(
                HPKE_SUITE_ID,
                dh,
                &enc,
                recipient_public,
                info,
                &mut key[..],
            ))
        },
    )?;
    // Encrypted in place, in a buffer that never grows: no copy of the plaintext is left
    // behind in a freed allocation.
    let mut ciphertext = Vec::with_capacity(plaintext.len() + TAG_LEN);
    ciphertext.extend_from_slice(plaintext);
    let tag = Aes256Gcm::new((&*key).into())
        .encrypt_in_place_detached(&Nonce::from(nonce), &[], &mut ciphertext)
        .map_err(|_| EnvelopeError::SealFailed)?;
    ciphertext.extend_from_slice(&tag);
    Ok((enc, ciphertext))
}

/// Opens `ciphertext` (AES-256-GCM output with its tag) sealed to the key pair
/// `(private, recipient_public)` with `enc` and `info`, empty AAD, straight into a
/// zeroizing buffer. Every failure is [`EnvelopeError::OpenFailed`], a low-order `enc`
/// (an all-zero X25519 output, which aws-lc refuses) included.
pub(crate) fn open_base(
    private: &agreement::PrivateKey,
    recipient_public: &[u8; 32],
    enc: &[u8; ENC_LEN],
    info: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let msg_len = ciphertext
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(EnvelopeError::OpenFailed)?;
    let (ct, tag) = ciphertext.split_at(msg_len);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let nonce = agreement::agree(
        private,
        UnparsedPublicKey::new(&X25519, enc),
        EnvelopeError::OpenFailed,
        |dh| {
            Ok(key_schedule(
                HPKE_SUITE_ID,
                dh,
                enc,
                recipient_public,
                info,
                &mut key[..],
            ))
        },
    )?;
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| EnvelopeError::OpenFailed)?;
    // Sequence number 0: the nonce is the base nonce itself.
    let mut out = Zeroizing::new(ct.to_vec());
    Aes256Gcm::new((&*key).into())
        .decrypt_in_place_detached(&Nonce::from(nonce), &[], &mut out, &Tag::from(tag))
        .map_err(|_| EnvelopeError::OpenFailed)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sealed;
    use aes_gcm::Aes128Gcm;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn bytes<const N: usize>(hex_str: &str) -> [u8; N] {
        hex::decode(hex_str).unwrap().try_into().unwrap()
    }

    /// RFC 9180 A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode.
    /// Only the AEAD differs from this crate's suite, and it enters the key schedule only
    /// through `suite_id` and the key's length, so the same code must reproduce the RFC's
    /// key, nonce and first ciphertext.
    #[test]
    fn reproduces_rfc_9180_a_1_1() {
        let sk_r = bytes::<32>("4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8");
        let pk_r = bytes::<32>("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d");
        let enc = bytes::<32>("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431");
        let info = hex::decode("4f6465206f6e2061204772656369616e2055726e").unwrap();
        let private = agreement::PrivateKey::from_private_key(&X25519, &sk_r).unwrap();
        assert_eq!(private.compute_public_key().unwrap().as_ref(), &pk_r);

        let mut key = [0u8; 16];
        let nonce = agreement::agree(&private, UnparsedPublicKey::new(&X25519, &enc), (), |dh| {
            Ok(key_schedule(
                b"HPKE\x00\x20\x00\x01\x00\x01",
                dh,
                &enc,
                &pk_r,
                &info,
                &mut key,
            ))
        })
        .unwrap();
        assert_eq!(hex::encode(key), "4531685d41d65f03dc48f6b8302c05b0");
        assert_eq!(hex::encode(nonce), "56d890e5accaaf011cff4b7d");

        let mut sealed = hex::decode(
            "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a9\
             6d8770ac83d07bea87e13c512a",
        )
        .unwrap();
        Aes128Gcm::new((&key).into())
            .decrypt_in_place(&Nonce::from(nonce), b"Count-0", &mut sealed)
            .unwrap();
        assert_eq!(sealed, b"Beauty is truth, truth beauty");
    }

    /// The `hpke` crate's own open, for comparison.
    fn hpke_open(kp: &crate::HpkeKeyPair, info: &[u8], sealed: &Sealed) -> Option<Vec<u8>> {
        use hpke::{Deserializable, OpModeR};
        type Kem = hpke::kem::X25519HkdfSha256;
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&kp.private_bytes()[..]).ok()?;
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed.enc).ok()?;
        hpke::single_shot_open::<hpke::aead::AesGcm256, hpke::kdf::HkdfSha256, Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            info,
            &sealed.ciphertext,
            &[],
        )
        .ok()
    }

    /// Lets a `rand_core` 0.9 RNG (what `rand` 0.9 and the rest of the workspace use) drive
    /// `hpke`, which is written against `rand_core` 0.10.
    struct RngCompat<'a, R: ?Sized>(&'a mut R);

    impl<R: rand_core::CryptoRng + ?Sized> hpke::rand_core::TryRng for RngCompat<'_, R> {
        type Error = std::convert::Infallible;

        fn try_next_u32(&mut self) -> Result<u32, std::convert::Infallible> {
            Ok(self.0.next_u32())
        }

        fn try_next_u64(&mut self) -> Result<u64, std::convert::Infallible> {
            Ok(self.0.next_u64())
        }

        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), std::convert::Infallible> {
            self.0.fill_bytes(dst);
            Ok(())
        }
    }

    impl<R: rand_core::CryptoRng + ?Sized> hpke::rand_core::TryCryptoRng for RngCompat<'_, R> {}

    /// `hpke`'s seal, drawing its ephemeral key material from `rng`.
    fn hpke_seal(
        recipient: &[u8; 32],
        info: &[u8],
        plaintext: &[u8],
        rng: &mut rand::rngs::StdRng,
    ) -> Sealed {
        use hpke::{Deserializable, OpModeS, Serializable};
        type Kem = hpke::kem::X25519HkdfSha256;
        let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient).unwrap();
        let (enc, ciphertext) =
            hpke::single_shot_seal_with_rng::<hpke::aead::AesGcm256, hpke::kdf::HkdfSha256, Kem>(
                &OpModeS::Base,
                &pk,
                info,
                plaintext,
                &[],
                &mut RngCompat(rng),
            )
            .unwrap();
        Sealed {
            enc: enc.to_bytes().to_vec(),
            ciphertext,
        }
    }

    /// Sealed here, opened by `hpke`, and sealed by `hpke` from the same ephemeral key
    /// material: the same bytes; opened here and by `hpke`: the same plaintext for every
    /// length and `info`, and the same refusal for every altered byte.
    #[test]
    fn agrees_with_the_hpke_crate() {
        let mut rng = rand::rng();
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 100, 255, 1000] {
            let kp = crate::HpkeKeyPair::generate(&mut rng);
            let info = vec![len as u8; len % 40];
            let plaintext: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let seed: u64 = rand::random();
            let sealed = crate::seal(
                &kp.public_key(),
                &info,
                &plaintext,
                &mut StdRng::seed_from_u64(seed),
            )
            .unwrap();
            let by_hpke = hpke_seal(
                &kp.public_key(),
                &info,
                &plaintext,
                &mut StdRng::seed_from_u64(seed),
            );
            assert_eq!(sealed, by_hpke);
            let ours = crate::open(&kp, &info, &sealed).unwrap();
            assert_eq!(&ours[..], &plaintext[..]);
            assert_eq!(
                hpke_open(&kp, &info, &sealed).as_deref(),
                Some(&plaintext[..])
            );
            for i in 0..sealed.enc.len() + sealed.ciphertext.len() {
                let mut bad = sealed.clone();
                match bad.enc.get_mut(i) {
                    Some(b) => *b ^= 0x80,
                    None => bad.ciphertext[i - ENC_LEN] ^= 0x01,
                }
                assert!(crate::open(&kp, &info, &bad).is_err(), "byte {i}");
                assert_eq!(hpke_open(&kp, &info, &bad), None, "byte {i}");
            }
        }
    }

    /// Key pairs: `hpke`'s from the same random draws (its `DeriveKeyPair` and clamping),
    /// and a private key read back gives the same pair.
    #[test]
    fn key_pairs_match_the_hpke_crate() {
        use hpke::{Kem as _, Serializable};
        type Kem = hpke::kem::X25519HkdfSha256;
        for _ in 0..20 {
            let seed: u64 = rand::random();
            let ours = crate::HpkeKeyPair::generate(&mut StdRng::seed_from_u64(seed));
            let (sk, pk) =
                Kem::gen_keypair_with_rng(&mut RngCompat(&mut StdRng::seed_from_u64(seed)));
            assert_eq!(&ours.private_bytes()[..], &sk.to_bytes()[..]);
            assert_eq!(&ours.public_key()[..], &pk.to_bytes()[..]);
            let again = crate::HpkeKeyPair::from_private_bytes(*ours.private_bytes());
            assert_eq!(again.public_key(), ours.public_key());
        }
    }
}
