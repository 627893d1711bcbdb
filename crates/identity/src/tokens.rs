//! Bearer secrets (refresh tokens, app keys) and identifiers. Only the SHA-256 hash of a
//! secret is stored; the secret itself is shown once. 32 random bytes make brute force
//! pointless, so a fast hash is the right one (no salt, no KDF) and lookups can be by
//! hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Prefix of every refresh token (so leaked tokens are recognisable by scanners).
pub const REFRESH_TOKEN_PREFIX: &str = "ksr_";
/// Prefix of every app key.
pub const APP_KEY_PREFIX: &str = "ksa_";
/// Random characters in an id made by [`new_id`] (100 bits).
pub const ID_CHARS: usize = 20;

/// The prefixes Keystead's ids use, for [`new_id`].
pub mod id_prefix {
    pub const APP: &str = "app";
    pub const USER: &str = "usr";
    pub const IDENTITY: &str = "idn";
    pub const SESSION: &str = "ses";
    pub const WALLET: &str = "wal";
    pub const ACCOUNT: &str = "acc";
    pub const TRANSACTION: &str = "tx";
}

/// Lowercase Crockford base32: no `i`, `l`, `o`, `u`, so ids read back unambiguously.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

fn new_secret<R: CryptoRng + ?Sized>(prefix: &str, rng: &mut R) -> (String, String) {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(bytes.as_mut());
    let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes.as_ref()));
    let hash = hash_token(&token);
    (token, hash)
}

/// A new refresh token (`ksr_` + 32 random bytes, base64url) and its hash to store.
pub fn new_refresh_token<R: CryptoRng + ?Sized>(rng: &mut R) -> (String, String) {
    new_secret(REFRESH_TOKEN_PREFIX, rng)
}

/// A new app key (`ksa_` + 32 random bytes, base64url) and its hash to store.
pub fn new_app_key<R: CryptoRng + ?Sized>(rng: &mut R) -> (String, String) {
    new_secret(APP_KEY_PREFIX, rng)
}

/// Lowercase hex SHA-256 of the whole token string, prefix included.
pub fn hash_token(token: &str) -> String {
    // Into a buffer: `hex::encode` collects the digits a `char` at a time.
    let mut digits = [0u8; 64];
    hex::encode_to_slice(token_digest(token), &mut digits).expect("64 digits for 32 bytes");
    String::from_utf8(digits.to_vec()).expect("hex digits are ASCII")
}

/// SHA-256 of the whole token string: [`hash_token`] before its hex, for keys kept only
/// in memory.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new id: `prefix` + `_` + 20 base32 characters (`usr_0d4k...`). A prefix that
/// already ends in `_` gets no second one.
pub fn new_id<R: CryptoRng + ?Sized>(prefix: &str, rng: &mut R) -> String {
    let mut bytes = [0u8; ID_CHARS];
    rng.fill_bytes(&mut bytes);
    let separator = if prefix.ends_with('_') { "" } else { "_" };
    let mut id = String::with_capacity(prefix.len() + 1 + ID_CHARS);
    id.push_str(prefix);
    id.push_str(separator);
    // 256 is a multiple of 32, so the low five bits of a uniform byte are uniform.
    id.extend(bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char));
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ids() {
        let mut rng = StdRng::seed_from_u64(1);
        let id = new_id(id_prefix::USER, &mut rng);
        assert!(id.starts_with("usr_"));
        assert_eq!(id.len(), 4 + ID_CHARS);
        assert!(id[4..].bytes().all(|c| ALPHABET.contains(&c)));
        assert!(new_id("ses_", &mut rng).starts_with("ses_"));
        assert_ne!(new_id("ses_", &mut rng).as_bytes()[4], b'_');
    }
}
