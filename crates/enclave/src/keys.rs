//! Key generation and derivation: entropy, BIP-39 mnemonic and seed, BIP-32 accounts.

use std::fmt;
use std::sync::Mutex;

use alloy_primitives::{Address, B256, Signature};
use bip32::{ChildNumber, DerivationPath, ExtendedKey, ExtendedKeyAttrs, Prefix, XPrv};
use ecdsa_signing::DigestAlgorithm;
use ecdsa_signing::hazmat::sign_prehashed_rfc6979;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use k256_signing::elliptic_curve::sec1::ToSec1Point;
use k256_signing::{NonZeroScalar, PublicKey, Secp256k1};
use sha2::{Sha256, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use keystead_enclave_proto::{ChainFamily, DerivedAccount};

use crate::bounded::BoundedMap;

/// Bytes of BIP-39 entropy: 256 bits, a 24-word mnemonic.
pub const ENTROPY_LEN: usize = 32;
/// Format 2 added the EVM account-level extended key, format 3 its public key; formats 1
/// and 2 still open (the missing parts are derived once per opening).
const SECRET_FORMAT: u8 = 3;
const SECRET_V1_LEN: usize = 1 + ENTROPY_LEN + 64;
/// depth, parent fingerprint, child number, chain code, private key.
const PARENT_LEN: usize = 1 + 4 + 4 + 32 + 32;
const SECRET_V2_LEN: usize = SECRET_V1_LEN + PARENT_LEN;
/// The parent's compressed SEC1 public key.
const PARENT_PUBLIC_LEN: usize = 33;
const SECRET_LEN: usize = SECRET_V2_LEN + PARENT_PUBLIC_LEN;
const CHAIN_CODE: std::ops::Range<usize> = 9..41;
const PRIVATE_KEY: std::ops::Range<usize> = 41..PARENT_LEN;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("wallet secret is malformed")]
    MalformedSecret,
    #[error("key derivation failed")]
    Derivation,
}

/// Mixes KMS randomness with the enclave's own so that neither source alone decides the
/// wallet: a weak or hostile KMS cannot predict keys, nor can a broken local RNG.
pub fn mix_entropy(kms_random: &[u8], local_random: &[u8]) -> Zeroizing<[u8; ENTROPY_LEN]> {
    let mut ikm = Zeroizing::new(Vec::with_capacity(kms_random.len() + local_random.len()));
    ikm.extend_from_slice(kms_random);
    ikm.extend_from_slice(local_random);
    let hk = Hkdf::<Sha256>::new(Some(b"keystead keygen v1"), &ikm);
    let mut out = Zeroizing::new([0u8; ENTROPY_LEN]);
    hk.expand(b"bip39 entropy", out.as_mut())
        .expect("32 bytes is a valid HKDF length");
    out
}

/// What a wallet is: its BIP-39 entropy (for export), the seed derived from it (so that
/// signing skips the 2048 PBKDF2 rounds), the EVM account-level extended key
/// `m/44'/60'/0'/0` (so that signing derives one level, not five) and that key's public
/// key (so that the one level costs no elliptic-curve multiplication). Only ever
/// plaintext inside the enclave.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct WalletSecret {
    entropy: [u8; ENTROPY_LEN],
    seed: [u8; 64],
    evm_parent: [u8; PARENT_LEN],
    evm_parent_public: [u8; PARENT_PUBLIC_LEN],
}

impl fmt::Debug for WalletSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WalletSecret(..)")
    }
}

/// BIP-39's seed with the empty passphrase: PBKDF2-HMAC-SHA512 over the space-separated
/// words (English words are already NFKD), salt `"mnemonic"`, 2048 rounds. The same
/// bytes as `Mnemonic::to_seed("")` (tested), computed with RustCrypto's faster SHA-512.
fn bip39_seed(mnemonic: &bip39::Mnemonic) -> Zeroizing<[u8; 64]> {
    let mut phrase = Zeroizing::new(String::with_capacity(24 * 9));
    for (i, word) in mnemonic.words().enumerate() {
        if i > 0 {
            phrase.push(' ');
        }
        phrase.push_str(word);
    }
    let mut seed = Zeroizing::new([0u8; 64]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(phrase.as_bytes(), b"mnemonic", 2048, seed.as_mut());
    seed
}

impl WalletSecret {
    pub fn from_entropy(entropy: &[u8; ENTROPY_LEN]) -> Result<Self, KeyError> {
        let mnemonic = bip39::Mnemonic::from_entropy(entropy).expect("32 bytes is valid entropy");
        Self::from_parts(entropy, &bip39_seed(&mnemonic))
    }

    fn from_parts(entropy: &[u8; ENTROPY_LEN], seed: &[u8; 64]) -> Result<Self, KeyError> {
        Ok(Self::with_parent(entropy, seed, &Evm::derive_parent(seed)?))
    }

    fn with_parent(entropy: &[u8; ENTROPY_LEN], seed: &[u8; 64], parent: &XPrv) -> Self {
        Self {
            entropy: *entropy,
            seed: *seed,
            evm_parent: encode_xprv(parent),
            evm_parent_public: parent.public_key().to_bytes(),
        }
    }

    /// The 24 words, space-separated.
    pub fn mnemonic(&self) -> Zeroizing<String> {
        let mnemonic = bip39::Mnemonic::from_entropy(&self.entropy).expect("valid entropy");
        let mut words = Zeroizing::new(String::with_capacity(24 * 9));
        for (i, word) in mnemonic.words().enumerate() {
            if i > 0 {
                words.push(' ');
            }
            words.push_str(word);
        }
        words
    }

    pub fn seed(&self) -> &[u8; 64] {
        &self.seed
    }

    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(SECRET_LEN));
        out.push(SECRET_FORMAT);
        out.extend_from_slice(&self.entropy);
        out.extend_from_slice(&self.seed);
        out.extend_from_slice(&self.evm_parent);
        out.extend_from_slice(&self.evm_parent_public);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, KeyError> {
        match (bytes.first(), bytes.len()) {
            (Some(1), SECRET_V1_LEN) | (Some(2), SECRET_V2_LEN) => {}
            (Some(&SECRET_FORMAT), SECRET_LEN) => {}
            _ => return Err(KeyError::MalformedSecret),
        }
        let mut entropy = Zeroizing::new([0u8; ENTROPY_LEN]);
        let mut seed = Zeroizing::new([0u8; 64]);
        entropy.copy_from_slice(&bytes[1..1 + ENTROPY_LEN]);
        seed.copy_from_slice(&bytes[1 + ENTROPY_LEN..SECRET_V1_LEN]);
        if bytes.len() == SECRET_V1_LEN {
            return Self::from_parts(&entropy, &seed);
        }
        let mut parent = Zeroizing::new([0u8; PARENT_LEN]);
        parent.copy_from_slice(&bytes[SECRET_V1_LEN..SECRET_V2_LEN]);
        if bytes.len() == SECRET_V2_LEN {
            return Ok(Self::with_parent(&entropy, &seed, &decode_xprv(&parent)?));
        }
        let mut secret = Self {
            entropy: *entropy,
            seed: *seed,
            evm_parent: *parent,
            evm_parent_public: [0; PARENT_PUBLIC_LEN],
        };
        secret
            .evm_parent_public
            .copy_from_slice(&bytes[SECRET_V2_LEN..]);
        Ok(secret)
    }

    fn evm_parent(&self) -> Result<XPrv, KeyError> {
        decode_xprv(&self.evm_parent)
    }
}

fn encode_xprv(key: &XPrv) -> [u8; PARENT_LEN] {
    let attrs = key.attrs();
    let mut out = [0u8; PARENT_LEN];
    out[0] = attrs.depth;
    out[1..5].copy_from_slice(&attrs.parent_fingerprint);
    out[5..9].copy_from_slice(&attrs.child_number.to_bytes());
    out[9..41].copy_from_slice(&attrs.chain_code);
    let private = Zeroizing::new(<[u8; 32]>::from(key.private_key().to_bytes()));
    out[41..].copy_from_slice(private.as_ref());
    out
}

fn decode_xprv(bytes: &[u8; PARENT_LEN]) -> Result<XPrv, KeyError> {
    let mut key_bytes = [0u8; 33];
    key_bytes[1..].copy_from_slice(&bytes[41..]);
    let mut extended = ExtendedKey {
        prefix: Prefix::XPRV,
        attrs: ExtendedKeyAttrs {
            depth: bytes[0],
            parent_fingerprint: bytes[1..5]
                .try_into()
                .map_err(|_| KeyError::MalformedSecret)?,
            child_number: ChildNumber::from_bytes(
                bytes[5..9]
                    .try_into()
                    .map_err(|_| KeyError::MalformedSecret)?,
            ),
            chain_code: bytes[9..41]
                .try_into()
                .map_err(|_| KeyError::MalformedSecret)?,
        },
        key_bytes,
    };
    let key = XPrv::try_from(extended.clone()).map_err(|_| KeyError::MalformedSecret);
    extended.key_bytes.zeroize();
    key
}

/// How one chain family lays out its accounts. EVM is first; Solana (SLIP-10 ed25519,
/// `m/44'/501'/i'/0'`) and Bitcoin (BIP-84, `m/84'/0'/0'/0/i`) implement the same shape.
pub trait AccountScheme {
    const FAMILY: ChainFamily;
    type Signer;
    fn path(index: u32) -> String;
    /// The account's signer, its address looked up in `known` or derived and added there.
    fn signer(
        secret: &WalletSecret,
        index: u32,
        known: &AddressBook,
    ) -> Result<Self::Signer, KeyError>;
    fn account(secret: &WalletSecret, index: u32) -> Result<DerivedAccount, KeyError>;
}

/// EVM accounts at `m/44'/60'/0'/0/i`, EIP-55 addresses.
pub struct Evm;

const EVM_PARENT: &str = "m/44'/60'/0'/0";

impl Evm {
    fn derive_parent(seed: &[u8; 64]) -> Result<XPrv, KeyError> {
        let path: DerivationPath = EVM_PARENT.parse().map_err(|_| KeyError::Derivation)?;
        XPrv::derive_from_path(seed, &path).map_err(|_| KeyError::Derivation)
    }

    fn parent(secret: &WalletSecret) -> Result<XPrv, KeyError> {
        secret.evm_parent()
    }

    fn child(parent: &XPrv, index: u32) -> Result<XPrv, KeyError> {
        let number = ChildNumber::new(index, false).map_err(|_| KeyError::Derivation)?;
        parent
            .derive_child(number)
            .map_err(|_| KeyError::Derivation)
    }

    /// BIP-32's non-hardened step from the sealed parent, on its stored public key:
    /// `HMAC-SHA512(chain code, parent public key || index)`, whose left half added to
    /// the parent's key is the child's. `bip32` would first rebuild the parent's public key
    /// and then the child's, two multiplications a signature does not need; the result is
    /// the same (tested against `bip32` for many indices), and so are its refusals.
    fn child_key(secret: &WalletSecret, index: u32) -> Result<Zeroizing<NonZeroScalar>, KeyError> {
        let number = ChildNumber::new(index, false).map_err(|_| KeyError::Derivation)?;
        let mut hmac = Hmac::<Sha512>::new_from_slice(&secret.evm_parent[CHAIN_CODE])
            .expect("HMAC takes any key length");
        hmac.update(&secret.evm_parent_public);
        hmac.update(&number.to_bytes());
        let mut tweak = Zeroizing::new([0u8; 32]);
        tweak.copy_from_slice(&hmac.finalize().into_bytes()[..32]);
        let scalar = |bytes: &[u8; 32]| {
            Option::<NonZeroScalar>::from(NonZeroScalar::from_repr((*bytes).into()))
                .map(Zeroizing::new)
                .ok_or(KeyError::Derivation)
        };
        let mut parent_bytes = Zeroizing::new([0u8; 32]);
        parent_bytes.copy_from_slice(&secret.evm_parent[PRIVATE_KEY]);
        let (parent, tweak) = (scalar(&parent_bytes)?, scalar(&tweak)?);
        Option::<NonZeroScalar>::from(NonZeroScalar::new(*parent.as_ref() + tweak.as_ref()))
            .map(Zeroizing::new)
            .ok_or(KeyError::Derivation)
    }

    /// What [`AddressBook`] knows an account by: its parent's extended public key (public
    /// key and chain code, the xpub the server holds too) and its index.
    fn address_key(secret: &WalletSecret, index: u32) -> [u8; 32] {
        use sha2::Digest;
        let mut hash = Sha256::new_with_prefix(b"keystead evm address v1");
        hash.update(secret.evm_parent_public);
        hash.update(&secret.evm_parent[CHAIN_CODE]);
        hash.update(index.to_be_bytes());
        hash.finalize().into()
    }
}

/// The address of the key's public key (one curve multiplication).
fn address_of(key: &NonZeroScalar) -> Address {
    address_of_sec1(
        PublicKey::from_secret_scalar(key)
            .to_sec1_point(false)
            .as_bytes(),
    )
}

/// The address of an uncompressed SEC1 public key (`04 ‖ x ‖ y`).
fn address_of_sec1(uncompressed: &[u8]) -> Address {
    Address::from_raw_public_key(&uncompressed[1..])
}

/// The addresses of the EVM accounts this enclave has signed for, by
/// [`Evm::address_key`]. Public data, remembered so that a signature pays one curve
/// multiplication (its own) instead of two (and the signer's public key). Bounded: the
/// oldest are forgotten first; a forgotten address is derived again.
pub struct AddressBook {
    known: Mutex<BoundedMap<[u8; 32], Address>>,
}

impl AddressBook {
    pub fn new(capacity: usize) -> Self {
        Self {
            known: Mutex::new(BoundedMap::new(capacity)),
        }
    }

    fn address(&self, key: [u8; 32], derive: impl FnOnce() -> Address) -> Address {
        let known = || self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(address) = known().get(&key) {
            return *address;
        }
        let address = derive();
        known().insert(key, address);
        address
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One EVM account's signing key for the length of one request (zeroized when dropped),
/// with its address.
pub struct EvmSigner {
    key: Zeroizing<NonZeroScalar>,
    address: Address,
}

impl fmt::Debug for EvmSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EvmSigner({})", self.address)
    }
}

impl EvmSigner {
    /// The signer of a 32-byte private key, its address derived (tests sign with known
    /// keys; the service only gets signers from [`Evm::signer`]).
    #[cfg(test)]
    pub(crate) fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != 32 {
            return Err(KeyError::MalformedSecret);
        }
        let mut array = Zeroizing::new([0u8; 32]);
        array.copy_from_slice(bytes);
        let key = Option::<NonZeroScalar>::from(NonZeroScalar::from_repr((*array).into()))
            .ok_or(KeyError::MalformedSecret)?;
        Ok(Self {
            address: address_of(&key),
            key: Zeroizing::new(key),
        })
    }

    pub fn address(&self) -> Address {
        self.address
    }

    /// A low-s, RFC 6979 deterministic signature of a 32-byte hash, with its y parity:
    /// what k256's `SigningKey::sign_prehash_recoverable` computes, without the public
    /// key a `SigningKey` derives first.
    pub fn sign_hash(&self, hash: &B256) -> Signature {
        let (signature, recovery) = sign_prehashed_rfc6979::<
            Secp256k1,
            <Secp256k1 as DigestAlgorithm>::Digest,
        >(&self.key, hash.as_slice(), &[]);
        let (r, s) = signature.split_bytes();
        Signature::from_scalars_and_parity(
            B256::from_slice(&r),
            B256::from_slice(&s),
            recovery.is_y_odd(),
        )
    }
}

impl AccountScheme for Evm {
    const FAMILY: ChainFamily = ChainFamily::Evm;
    type Signer = EvmSigner;

    fn path(index: u32) -> String {
        format!("{EVM_PARENT}/{index}")
    }

    fn signer(
        secret: &WalletSecret,
        index: u32,
        known: &AddressBook,
    ) -> Result<EvmSigner, KeyError> {
        let key = Self::child_key(secret, index)?;
        let address = known.address(Self::address_key(secret, index), || address_of(&key));
        Ok(EvmSigner { key, address })
    }

    fn account(secret: &WalletSecret, index: u32) -> Result<DerivedAccount, KeyError> {
        let parent = Self::parent(secret)?;
        let child = Self::child(&parent, index)?;
        // bip32 computed the child's public key already.
        let public = child.private_key().verifying_key().to_sec1_point(false);
        Ok(DerivedAccount {
            family: ChainFamily::Evm,
            path: Self::path(index),
            index,
            address: address_of_sec1(public.as_bytes()).to_checksum(None),
            public_key: child.public_key().to_bytes().to_vec(),
            parent_xpub: parent.public_key().to_string(Prefix::XPUB),
        })
    }
}

/// Recovery codes: 25 symbols of Crockford base32 (125 bits), shown in groups of five.
pub mod recovery_code {
    use zeroize::Zeroizing;

    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    pub const SYMBOLS: usize = 25;

    /// Formats 25 random bytes (one symbol each, 5 bits used) as `XXXXX-XXXXX-...`.
    pub fn from_random(random: &[u8; SYMBOLS]) -> Zeroizing<String> {
        let mut code = Zeroizing::new(String::with_capacity(SYMBOLS + 4));
        for (i, byte) in random.iter().enumerate() {
            if i > 0 && i % 5 == 0 {
                code.push('-');
            }
            code.push(ALPHABET[(byte & 31) as usize] as char);
        }
        code
    }

    /// Accepts what a person types: any case, dashes and spaces, and the Crockford
    /// look-alikes (I, L → 1; O → 0). Returns `None` unless 25 symbols remain.
    pub fn normalize(input: &str) -> Option<Zeroizing<String>> {
        let mut out = Zeroizing::new(String::with_capacity(SYMBOLS));
        for c in input.chars() {
            let c = match c.to_ascii_uppercase() {
                '-' | ' ' => continue,
                'I' | 'L' => '1',
                'O' => '0',
                c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
                _ => return None,
            };
            out.push(c);
        }
        (out.len() == SYMBOLS).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_MNEMONIC: &str = "test test test test test test test test test test test junk";

    fn secret_from_phrase(phrase: &str) -> WalletSecret {
        // The test mnemonic has 12 words; build the secret the way decode would see it.
        let m = bip39::Mnemonic::parse(phrase).unwrap();
        let mut entropy = [0u8; 32];
        let e = m.to_entropy();
        entropy[..e.len()].copy_from_slice(&e);
        WalletSecret::from_parts(&entropy, &m.to_seed("")).unwrap()
    }

    #[test]
    fn well_known_test_mnemonic_gives_anvils_accounts() {
        let secret = secret_from_phrase(TEST_MNEMONIC);
        let expected = [
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        ];
        for (i, address) in expected.iter().enumerate() {
            let account = Evm::account(&secret, i as u32).unwrap();
            assert_eq!(&account.address, address);
            assert_eq!(account.path, format!("m/44'/60'/0'/0/{i}"));
        }
        let signer = Evm::signer(&secret, 0, &AddressBook::new(8)).unwrap();
        assert_eq!(signer.address().to_checksum(None), expected[0]);
        assert_eq!(
            hex::encode(signer.key.to_bytes()),
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        );
        assert_eq!(format!("{signer:?}"), format!("EvmSigner({})", expected[0]));
    }

    #[test]
    fn the_address_book_answers_what_it_was_told_and_forgets_the_oldest() {
        let book = AddressBook::new(2);
        let derived = |byte: u8| move || Address::repeat_byte(byte);
        assert_eq!(book.address([1; 32], derived(1)), Address::repeat_byte(1));
        // Known: not derived again (a different answer would show it was).
        assert_eq!(book.address([1; 32], derived(9)), Address::repeat_byte(1));
        book.address([2; 32], derived(2));
        book.address([3; 32], derived(3));
        assert_eq!(book.len(), 2);
        assert_eq!(book.address([1; 32], derived(7)), Address::repeat_byte(7));
        assert_eq!(book.address([3; 32], derived(9)), Address::repeat_byte(3));
    }

    #[test]
    fn an_account_is_known_by_its_wallet_as_well_as_its_index() {
        let (a, b) = (
            WalletSecret::from_entropy(&[1u8; 32]).unwrap(),
            WalletSecret::from_entropy(&[2u8; 32]).unwrap(),
        );
        let book = AddressBook::new(8);
        let first = Evm::signer(&a, 0, &book).unwrap().address();
        let other = Evm::signer(&b, 0, &book).unwrap().address();
        assert_ne!(first, other);
        assert_eq!(
            other.to_checksum(None),
            Evm::account(&b, 0).unwrap().address
        );
        assert_ne!(Evm::address_key(&a, 0), Evm::address_key(&a, 1));
    }

    #[test]
    fn the_one_step_signer_key_is_bip32s_child_for_every_index() {
        use rand::RngCore;
        let mut rng = rand::rng();
        for round in 0..4 {
            let mut entropy = [0u8; 32];
            rng.fill_bytes(&mut entropy);
            let secret = WalletSecret::from_entropy(&entropy).unwrap();
            let parent = Evm::derive_parent(secret.seed()).unwrap();
            let mut indices: Vec<u32> = (0..16).collect();
            indices.extend([rng.next_u32() >> 1, (1 << 31) - 1]);
            let book = AddressBook::new(64);
            for index in indices {
                let bip32 = Evm::child(&parent, index).unwrap();
                let ours = Evm::signer(&secret, index, &book).unwrap();
                assert_eq!(
                    ours.key.to_bytes(),
                    bip32.private_key().to_bytes(),
                    "{round}/{index}"
                );
                let address = Evm::account(&secret, index).unwrap().address;
                assert_eq!(ours.address().to_checksum(None), address);
                // Looked up this time, and still the same.
                let again = Evm::signer(&secret, index, &book).unwrap();
                assert_eq!(again.address().to_checksum(None), address);
            }
            assert_eq!(book.len(), 18);
            // Hardened indices are not accounts: both refuse them.
            assert!(Evm::signer(&secret, 1 << 31, &book).is_err());
        }
    }

    #[test]
    fn bip39_vector_256_bit_entropy() {
        // Trezor BIP-39 vectors, passphrase "TREZOR": the all-0x7f 256-bit entry.
        let entropy = [0x7fu8; 32];
        let m = bip39::Mnemonic::from_entropy(&entropy).unwrap();
        assert_eq!(
            m.to_string(),
            "legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth title"
        );
        assert_eq!(
            hex::encode(m.to_seed("TREZOR")),
            "bc09fca1804f7e69da93c2f2028eb238c227f2e9dda30cd63699232578480a4021b146ad717fbb7e451ce9eb835f43620bf5c514db0f8add49f5d121449d3e87"
        );
        let secret = WalletSecret::from_entropy(&entropy).unwrap();
        assert_eq!(secret.mnemonic().as_str(), m.to_string());
        assert_eq!(secret.seed(), &m.to_seed(""));
    }

    #[test]
    fn seed_equals_the_bip39_crates_for_random_entropy() {
        use rand::RngCore;
        let mut rng = rand::rng();
        for _ in 0..20 {
            let mut entropy = [0u8; 32];
            rng.fill_bytes(&mut entropy);
            let m = bip39::Mnemonic::from_entropy(&entropy).unwrap();
            assert_eq!(*bip39_seed(&m), m.to_seed(""));
        }
    }

    #[test]
    fn bip32_test_vector_1() {
        let seed = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let cases = [
            (
                "m",
                "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi",
            ),
            (
                "m/0'/1/2'/2/1000000000",
                "xprvA41z7zogVVwxVSgdKUHDy1SKmdb533PjDz7J6N6mV6uS3ze1ai8FHa8kmHScGpWmj4WggLyQjgPie1rFSruoUihUZREPSL39UNdE3BBDu76",
            ),
        ];
        for (path, expected) in cases {
            let path: DerivationPath = path.parse().unwrap();
            let key = XPrv::derive_from_path(&seed, &path).unwrap();
            assert_eq!(key.to_string(Prefix::XPRV).as_str(), expected);
        }
    }

    #[test]
    fn secret_encoding_round_trips_and_rejects_garbage() {
        let secret = WalletSecret::from_entropy(&[3u8; 32]).unwrap();
        let bytes = secret.encode();
        let back = WalletSecret::decode(&bytes).unwrap();
        assert_eq!(back.seed(), secret.seed());
        assert_eq!(
            Evm::account(&back, 7).unwrap(),
            Evm::account(&secret, 7).unwrap()
        );
        assert!(WalletSecret::decode(&bytes[1..]).is_err());
        assert!(WalletSecret::decode(&bytes[..SECRET_V2_LEN]).is_err());
        // Format-1 (entropy and seed) and format-2 (and the parent) secrets still open, to
        // the same accounts and signing keys.
        let book = AddressBook::new(8);
        let signed = |s: &WalletSecret| Evm::signer(s, 7, &book).unwrap().sign_hash(&B256::ZERO);
        for (format, len) in [(1, SECRET_V1_LEN), (2, SECRET_V2_LEN)] {
            let mut older = bytes[..len].to_vec();
            older[0] = format;
            let old = WalletSecret::decode(&older).unwrap();
            assert_eq!(
                Evm::account(&old, 7).unwrap(),
                Evm::account(&secret, 7).unwrap()
            );
            assert_eq!(signed(&old), signed(&secret));
            assert_eq!(old.encode(), bytes, "reseals as format {SECRET_FORMAT}");
        }
        // The stored parent is the one a full derivation from the seed gives.
        let derived = Evm::derive_parent(secret.seed()).unwrap();
        assert_eq!(
            derived.to_string(Prefix::XPRV).as_str(),
            secret
                .evm_parent()
                .unwrap()
                .to_string(Prefix::XPRV)
                .as_str()
        );
        assert!(format!("{secret:?}").contains(".."));
    }

    #[test]
    fn recovery_codes_normalize_what_people_type() {
        let code = recovery_code::from_random(&[7u8; 25]);
        assert_eq!(code.len(), 29);
        let typed = code.to_lowercase().replace('-', " ");
        assert_eq!(
            recovery_code::normalize(&typed).unwrap().as_str(),
            code.replace('-', "")
        );
        assert!(recovery_code::normalize("ABC").is_none());
        assert!(recovery_code::normalize(&format!("{}U", code.as_str())).is_none());
    }

    #[test]
    fn entropy_mixing_depends_on_both_sources() {
        let a = mix_entropy(&[1; 32], &[2; 32]);
        assert_ne!(*a, *mix_entropy(&[1; 32], &[3; 32]));
        assert_ne!(*a, *mix_entropy(&[4; 32], &[2; 32]));
        assert_eq!(*a, *mix_entropy(&[1; 32], &[2; 32]));
    }
}
