//! Key management for Keystead wallet data keys.
//!
//! Every wallet secret is sealed under its own 32-byte *data key*. The data key
//! is never stored in plaintext: a KMS wraps it (encrypts it under a master key
//! the KMS holds) and only the wrapped form leaves the enclave. Each wrap is
//! bound to an [`EncryptionContext`] (the app and wallet it belongs to), so a
//! wrapped key copied onto another wallet will not open.
//!
//! Only the enclave process uses this crate: it alone can read the master key,
//! so plaintext data keys exist only inside the enclave.
//!
//! Backends:
//! - [`LocalKms`]: a master keyring in a local file (mode `0600`), with key
//!   versions for rotation. A second, independent instance (another file,
//!   another key id, e.g. `"dr"`) serves as the disaster-recovery KMS.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

mod local;
mod wrap;

pub use local::{LocalKms, os_rng};
pub use wrap::{MAX_KEY_ID_LEN, WRAP_MAGIC, WrappedKeyInfo, inspect_wrapped};

/// Length in bytes of a data key.
pub const DATA_KEY_LEN: usize = 32;

/// Largest request accepted by [`Kms::generate_random`].
pub const MAX_RANDOM_LEN: usize = 1024;

/// What a data key belongs to. Bound into every wrap as associated data:
/// unwrapping with a different context fails with [`KmsError::DecryptFailed`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EncryptionContext {
    pub app_id: String,
    pub wallet_id: String,
}

impl EncryptionContext {
    pub fn new(app_id: impl Into<String>, wallet_id: impl Into<String>) -> Self {
        Self {
            app_id: app_id.into(),
            wallet_id: wallet_id.into(),
        }
    }
}

/// A freshly generated data key: the plaintext (for use inside the enclave,
/// wiped on drop) and its wrapped form (safe to store).
pub struct DataKey {
    pub plaintext: Zeroizing<[u8; DATA_KEY_LEN]>,
    pub wrapped: Vec<u8>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("plaintext", &"<redacted>")
            .field("wrapped_len", &self.wrapped.len())
            .finish()
    }
}

/// Errors from a KMS backend.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// The wrap names a master key (or key version) this KMS does not hold.
    #[error("master key {key_id:?} version {version} not found")]
    KeyNotFound { key_id: String, version: u32 },
    /// Authentication failed: wrong encryption context, or the wrap was altered.
    #[error("data key decryption failed (wrong context or tampered wrap)")]
    DecryptFailed,
    /// A wrapped key or keyring that cannot be parsed.
    #[error("malformed: {0}")]
    Malformed(String),
    /// Reading or writing the keyring failed (including refusing a keyring
    /// whose file permissions are too open).
    #[error("keyring I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The backend (or its randomness source) cannot serve the request now.
    #[error("KMS unavailable: {0}")]
    Unavailable(String),
    /// The caller passed an unacceptable argument.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// A key management service that wraps and unwraps per-wallet data keys.
///
/// Callers hold it as `Arc<dyn Kms>`.
#[async_trait::async_trait]
pub trait Kms: Send + Sync {
    /// A short name for logs, e.g. `"local:primary"`. Never secret.
    fn name(&self) -> &str;

    /// Generate a fresh 32-byte data key and wrap it under the current master
    /// key, bound to `ctx`.
    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey, KmsError>;

    /// Unwrap a data key produced by [`Kms::generate_data_key`] with the same `ctx`.
    async fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, KmsError>;

    /// Wrap an existing data key under the current master key, bound to `ctx`: how a
    /// second, independent KMS keeps a disaster-recovery copy of a wallet's data key,
    /// and how a key recovered from that copy is wrapped again under a new primary key.
    async fn wrap_data_key(
        &self,
        plaintext: &[u8; DATA_KEY_LEN],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError>;

    /// `len` bytes from the KMS's random source (`len <= MAX_RANDOM_LEN`).
    async fn generate_random(&self, len: usize) -> Result<Zeroizing<Vec<u8>>, KmsError>;
}
