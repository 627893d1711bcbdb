//! The `local` backend: a master keyring in a local file.
//!
//! The keyring file is JSON:
//!
//! ```json
//! { "key_id": "primary",
//!   "versions": [ { "version": 1, "key": "<64 hex chars>", "created_at": 1700000000 } ] }
//! ```
//!
//! `created_at` is in seconds since the Unix epoch. The highest version is the
//! current one: new wraps use it, and every listed version still unwraps.
//! The file is created with mode `0600`; a keyring readable or writable by
//! group or others is refused.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use aes_gcm::{AeadInPlace, Aes256Gcm, KeyInit};
use rand_core::TryCryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::wrap::{self, ParsedWrap};
use crate::{DATA_KEY_LEN, DataKey, EncryptionContext, Kms, KmsError, MAX_RANDOM_LEN};

/// Largest keyring file we are willing to read.
const MAX_KEYRING_BYTES: u64 = 1 << 20;

/// The operating system's random source, for production use:
/// `LocalKms::open_or_create(path, "primary", keystead_kms::os_rng())`.
/// Failures of the OS source surface as [`KmsError::Unavailable`], not panics.
pub fn os_rng() -> rand_core::OsRng {
    rand_core::OsRng
}

/// Object-safe wrapper over a fallible cryptographic RNG.
trait DynRng: Send {
    fn fill(&mut self, dst: &mut [u8]) -> Result<(), KmsError>;
}

struct RngBox<R>(R);

impl<R: TryCryptoRng + Send> DynRng for RngBox<R> {
    fn fill(&mut self, dst: &mut [u8]) -> Result<(), KmsError> {
        self.0
            .try_fill_bytes(dst)
            .map_err(|e| KmsError::Unavailable(format!("random source failed: {e}")))
    }
}

/// One master key version, held in memory.
struct MasterKey {
    key: Zeroizing<[u8; 32]>,
    created_at: u64,
}

/// The in-memory keyring: versions by number; the highest is current.
struct Keyring {
    versions: BTreeMap<u32, MasterKey>,
}

impl Keyring {
    fn current(&self) -> Option<(u32, &MasterKey)> {
        self.versions.last_key_value().map(|(v, k)| (*v, k))
    }

    /// Every version in `self` is present in `other` with the same key.
    fn is_contained_in(&self, other: &Keyring) -> bool {
        self.versions.iter().all(|(v, k)| {
            other
                .versions
                .get(v)
                .is_some_and(|o| o.key.as_slice() == k.key.as_slice())
        })
    }

    fn serialize(&self, key_id: &str) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let mut versions = Vec::with_capacity(self.versions.len());
        for (version, mk) in &self.versions {
            versions.push(KeyringFileVersion {
                version: *version,
                key: encode_key_hex(&mk.key)?,
                created_at: mk.created_at,
            });
        }
        let file = KeyringFile {
            key_id: key_id.to_owned(),
            versions,
        };
        // Pre-size so the buffer holding hex keys is not reallocated (which
        // would leave unzeroized copies behind).
        let mut out = Zeroizing::new(Vec::with_capacity(512 + 192 * self.versions.len()));
        serde_json::to_writer_pretty(&mut *out, &file)
            .map_err(|_| KmsError::Malformed("cannot serialize keyring".into()))?;
        out.push(b'\n');
        Ok(out)
    }

    fn parse(bytes: &[u8], expected_key_id: &str, path: &Path) -> Result<Self, KmsError> {
        // Do not echo serde_json's message: it can quote values from the file.
        let file: KeyringFile = serde_json::from_slice(bytes).map_err(|e| {
            KmsError::Malformed(format!(
                "keyring {} is not valid ({:?} error at line {}, column {})",
                path.display(),
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        if file.key_id != expected_key_id {
            return Err(KmsError::InvalidArgument(format!(
                "keyring {} holds key id {:?}, expected {:?}",
                path.display(),
                file.key_id,
                expected_key_id
            )));
        }
        if file.versions.is_empty() {
            return Err(KmsError::Malformed(format!(
                "keyring {} has no key versions",
                path.display()
            )));
        }
        let mut versions = BTreeMap::new();
        for v in &file.versions {
            if v.version == 0 {
                return Err(KmsError::Malformed(format!(
                    "keyring {}: key versions start at 1",
                    path.display()
                )));
            }
            let mut key = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(v.key.as_bytes(), &mut key[..]).map_err(|_| {
                KmsError::Malformed(format!(
                    "keyring {}: version {} key is not 64 hex characters",
                    path.display(),
                    v.version
                ))
            })?;
            let mk = MasterKey {
                key,
                created_at: v.created_at,
            };
            if versions.insert(v.version, mk).is_some() {
                return Err(KmsError::Malformed(format!(
                    "keyring {}: version {} listed twice",
                    path.display(),
                    v.version
                )));
            }
        }
        Ok(Self { versions })
    }
}

fn encode_key_hex(key: &[u8; 32]) -> Result<String, KmsError> {
    let mut buf = Zeroizing::new([0u8; 64]);
    hex::encode_to_slice(key, &mut buf[..])
        .map_err(|_| KmsError::Malformed("cannot encode key".into()))?;
    let s = std::str::from_utf8(&buf[..])
        .map_err(|_| KmsError::Malformed("cannot encode key".into()))?;
    Ok(s.to_owned())
}

#[derive(Serialize, Deserialize)]
struct KeyringFile {
    key_id: String,
    versions: Vec<KeyringFileVersion>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct KeyringFileVersion {
    version: u32,
    /// 32-byte key, lowercase hex.
    key: String,
    created_at: u64,
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Refuse anything but a regular file that only its owner can access.
fn check_keyring_file(file: &File, path: &Path) -> Result<(), KmsError> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(KmsError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("keyring {} is not a regular file", path.display()),
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KmsError::Io(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "keyring {} has mode {mode:03o}, which gives group/other access; \
                 refusing to use it (run `chmod 600 {}`)",
                path.display(),
                path.display()
            ),
        )));
    }
    Ok(())
}

/// Read and parse the keyring at `path`. A missing file is `KmsError::Io`
/// with kind `NotFound`.
fn read_keyring(path: &Path, key_id: &str) -> Result<Keyring, KmsError> {
    let file = File::open(path)?;
    check_keyring_file(&file, path)?;
    let hint = file.metadata()?.len().min(MAX_KEYRING_BYTES);
    let cap = usize::try_from(hint).unwrap_or(0).saturating_add(1);
    let mut buf = Zeroizing::new(Vec::with_capacity(cap));
    file.take(MAX_KEYRING_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_KEYRING_BYTES {
        return Err(KmsError::Malformed(format!(
            "keyring {} is larger than {MAX_KEYRING_BYTES} bytes",
            path.display()
        )));
    }
    Keyring::parse(&buf, key_id, path)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

enum Install {
    /// Create `path`; fail with `AlreadyExists` if it is there.
    CreateNew,
    /// Atomically replace `path`.
    Replace,
}

/// Write `contents` to a fresh `0600` temp file next to `path`, sync it, and
/// install it at `path` (hard link for create-new, rename for replace), then
/// sync the directory.
fn install_file(path: &Path, contents: &[u8], how: Install, nonce: u64) -> Result<(), KmsError> {
    let dir = parent_dir(path);
    let name = path.file_name().ok_or_else(|| {
        KmsError::InvalidArgument(format!("{} is not a file path", path.display()))
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{nonce:016x}"));
    let tmp = dir.join(tmp_name);

    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = (|| -> io::Result<()> {
        // The umask may have narrowed the mode; make it exactly 0600.
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(contents)?;
        f.sync_all()
    })();
    drop(f);
    let installed = written.and_then(|()| match how {
        Install::CreateNew => fs::hard_link(&tmp, path),
        Install::Replace => fs::rename(&tmp, path),
    });
    match how {
        Install::CreateNew => {
            let _ = fs::remove_file(&tmp);
        }
        Install::Replace => {
            if installed.is_err() {
                let _ = fs::remove_file(&tmp);
            }
        }
    }
    installed?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// A KMS whose master keyring lives in a local file.
///
/// Each instance serves one key id; a wrap made under another key id is
/// [`KmsError::KeyNotFound`]. Run a second instance (another file, another key
/// id such as `"dr"`) for disaster-recovery copies.
pub struct LocalKms {
    path: PathBuf,
    key_id: String,
    name: String,
    keyring: RwLock<Keyring>,
    rng: Mutex<Box<dyn DynRng>>,
    /// Serializes rotate/reload within this process.
    file_lock: Mutex<()>,
}

impl fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ring = self.keyring.read().unwrap_or_else(PoisonError::into_inner);
        let versions: Vec<u32> = ring.versions.keys().copied().collect();
        f.debug_struct("LocalKms")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("key_versions", &versions)
            .finish_non_exhaustive()
    }
}

impl LocalKms {
    /// Open the keyring at `path`, or create it (mode `0600`, one fresh key,
    /// version 1) if the file does not exist.
    ///
    /// Fails if the existing file gives group/other any access, holds another
    /// key id, or cannot be parsed. `rng` supplies all randomness (master keys,
    /// data keys, nonces); pass [`os_rng()`] in production.
    pub fn open_or_create<R>(path: &Path, key_id: &str, rng: R) -> Result<Self, KmsError>
    where
        R: TryCryptoRng + Send + 'static,
    {
        wrap::validate_key_id(key_id)?;
        let mut rng: Box<dyn DynRng> = Box::new(RngBox(rng));
        let keyring = match read_keyring(path, key_id) {
            Ok(ring) => ring,
            Err(KmsError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                create_keyring(path, key_id, rng.as_mut(), SystemTime::now())?
            }
            Err(e) => return Err(e),
        };
        Ok(Self {
            path: path.to_owned(),
            key_id: key_id.to_owned(),
            name: format!("local:{key_id}"),
            keyring: RwLock::new(keyring),
            rng: Mutex::new(rng),
            file_lock: Mutex::new(()),
        })
    }

    /// The master key id this instance serves.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Where the keyring file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The version new wraps use.
    pub fn current_version(&self) -> u32 {
        let ring = self.keyring.read().unwrap_or_else(PoisonError::into_inner);
        ring.current().map_or(0, |(v, _)| v)
    }

    /// All key versions held, ascending.
    pub fn versions(&self) -> Vec<u32> {
        let ring = self.keyring.read().unwrap_or_else(PoisonError::into_inner);
        ring.versions.keys().copied().collect()
    }

    /// Add a new master key version (created at `now`) to the keyring file
    /// and make it current. Wraps under older versions still open.
    ///
    /// The file is re-read first (so versions added by another process are
    /// kept) and replaced atomically. Returns the new version number.
    pub fn rotate(&self, now: SystemTime) -> Result<u32, KmsError> {
        let _guard = self
            .file_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut ring = self.read_file_checked()?;
        let (latest, _) = ring
            .current()
            .ok_or_else(|| KmsError::Malformed("keyring has no key versions".into()))?;
        let next = latest
            .checked_add(1)
            .ok_or_else(|| KmsError::InvalidArgument("key version space exhausted".into()))?;
        let mut key = Zeroizing::new([0u8; 32]);
        self.fill_random(&mut key[..])?;
        ring.versions.insert(
            next,
            MasterKey {
                key,
                created_at: unix_seconds(now),
            },
        );
        let bytes = ring.serialize(&self.key_id)?;
        let nonce = self.random_u64()?;
        install_file(&self.path, &bytes, Install::Replace, nonce)?;
        *self.keyring.write().unwrap_or_else(PoisonError::into_inner) = ring;
        Ok(next)
    }

    /// Re-read the keyring file, picking up versions added by another process.
    pub fn reload(&self) -> Result<(), KmsError> {
        let _guard = self
            .file_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ring = self.read_file_checked()?;
        *self.keyring.write().unwrap_or_else(PoisonError::into_inner) = ring;
        Ok(())
    }

    /// Read the file and check it still holds every key we hold in memory
    /// (a replaced keyring must not silently orphan existing wraps).
    fn read_file_checked(&self) -> Result<Keyring, KmsError> {
        let ring = read_keyring(&self.path, &self.key_id)?;
        let held = self.keyring.read().unwrap_or_else(PoisonError::into_inner);
        if !held.is_contained_in(&ring) {
            return Err(KmsError::Malformed(format!(
                "keyring {} no longer holds all key versions this process loaded; refusing to use it",
                self.path.display()
            )));
        }
        Ok(ring)
    }

    fn fill_random(&self, dst: &mut [u8]) -> Result<(), KmsError> {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        rng.fill(dst)
    }

    fn random_u64(&self) -> Result<u64, KmsError> {
        let mut b = [0u8; 8];
        self.fill_random(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn cipher_for(&self, version: u32) -> Result<Aes256Gcm, KmsError> {
        let ring = self.keyring.read().unwrap_or_else(PoisonError::into_inner);
        let mk = ring
            .versions
            .get(&version)
            .ok_or_else(|| KmsError::KeyNotFound {
                key_id: self.key_id.clone(),
                version,
            })?;
        Aes256Gcm::new_from_slice(mk.key.as_slice())
            .map_err(|_| KmsError::Malformed("master key has wrong length".into()))
    }
}

fn create_keyring(
    path: &Path,
    key_id: &str,
    rng: &mut dyn DynRng,
    now: SystemTime,
) -> Result<Keyring, KmsError> {
    let mut key = Zeroizing::new([0u8; 32]);
    rng.fill(&mut key[..])?;
    let mut ring = Keyring {
        versions: BTreeMap::new(),
    };
    ring.versions.insert(
        1,
        MasterKey {
            key,
            created_at: unix_seconds(now),
        },
    );
    let bytes = ring.serialize(key_id)?;
    let mut nonce = [0u8; 8];
    rng.fill(&mut nonce)?;
    match install_file(path, &bytes, Install::CreateNew, u64::from_le_bytes(nonce)) {
        Ok(()) => Ok(ring),
        // Another process created it first: use theirs.
        Err(KmsError::Io(e)) if e.kind() == io::ErrorKind::AlreadyExists => {
            read_keyring(path, key_id)
        }
        Err(e) => Err(e),
    }
}

impl LocalKms {
    fn wrap(
        &self,
        plaintext: &[u8; DATA_KEY_LEN],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let version = self.current_version();
        let cipher = self.cipher_for(version)?;
        let mut header = wrap::encode_header(&self.key_id, version)?;
        let aad = wrap::build_aad(&header, ctx)?;
        let mut nonce = [0u8; wrap::NONCE_LEN];
        self.fill_random(&mut nonce)?;
        let mut sealed = Zeroizing::new(*plaintext);
        let tag = cipher
            .encrypt_in_place_detached(&nonce.into(), &aad, &mut sealed[..])
            .map_err(|_| KmsError::Unavailable("data key encryption failed".into()))?;
        header.extend_from_slice(&nonce);
        header.extend_from_slice(&sealed[..]);
        header.extend_from_slice(&tag);
        Ok(header)
    }
}

#[async_trait::async_trait]
impl Kms for LocalKms {
    fn name(&self) -> &str {
        &self.name
    }

    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<DataKey, KmsError> {
        let mut plaintext = Zeroizing::new([0u8; DATA_KEY_LEN]);
        self.fill_random(&mut plaintext[..])?;
        let wrapped = self.wrap(&plaintext, ctx)?;
        Ok(DataKey { plaintext, wrapped })
    }

    async fn wrap_data_key(
        &self,
        plaintext: &[u8; DATA_KEY_LEN],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        self.wrap(plaintext, ctx)
    }

    async fn decrypt_data_key(
        &self,
        wrapped: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, KmsError> {
        let parsed = ParsedWrap::parse(wrapped)?;
        if parsed.key_id != self.key_id {
            return Err(KmsError::KeyNotFound {
                key_id: parsed.key_id.to_owned(),
                version: parsed.version,
            });
        }
        let cipher = self.cipher_for(parsed.version)?;
        let aad = wrap::build_aad(parsed.header, ctx)?;
        let mut out = Zeroizing::new(*parsed.ciphertext);
        cipher
            .decrypt_in_place_detached(
                &(*parsed.nonce).into(),
                &aad,
                &mut out[..],
                &(*parsed.tag).into(),
            )
            .map_err(|_| KmsError::DecryptFailed)?;
        Ok(out)
    }

    async fn generate_random(&self, len: usize) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        if len > MAX_RANDOM_LEN {
            return Err(KmsError::InvalidArgument(format!(
                "at most {MAX_RANDOM_LEN} random bytes per request, asked for {len}"
            )));
        }
        let mut out = Zeroizing::new(vec![0u8; len]);
        self.fill_random(&mut out[..])?;
        Ok(out)
    }
}
