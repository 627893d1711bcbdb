//! The session file: which server and app, and the user's tokens.
//!
//! It holds bearer tokens, so it is created with mode 0600 (in a 0700 directory) and a
//! file that group or others can read is refused rather than used: another user may
//! already have copied the tokens. It is replaced atomically (write a new 0600 file,
//! then rename), so a crash never leaves half a session.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};

/// Refresh the access token when it has less than this many seconds left.
pub const REFRESH_MARGIN_SECS: u64 = 30;

/// A logged-in session, as kept in the session file.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// The server URL given to `login`.
    pub server: String,
    #[serde(serialize_with = "ser_secret", deserialize_with = "de_secret")]
    pub app_key: Zeroizing<String>,
    #[serde(serialize_with = "ser_secret", deserialize_with = "de_secret")]
    pub access_token: Zeroizing<String>,
    #[serde(serialize_with = "ser_secret", deserialize_with = "de_secret")]
    pub refresh_token: Zeroizing<String>,
    /// Unix seconds when the access token stops working.
    pub access_expires_at: u64,
    #[serde(default)]
    pub user_id: Option<String>,
    /// The attestation format the server showed at login (`dev` or `nitro`); a session
    /// that saw `nitro` never accepts `dev` later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<String>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.server)
            .field("app_key", &"<redacted>")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("access_expires_at", &self.access_expires_at)
            .field("user_id", &self.user_id)
            .field("attestation", &self.attestation)
            .finish()
    }
}

fn ser_secret<S: Serializer>(value: &Zeroizing<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value)
}

fn de_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<String>, D::Error> {
    String::deserialize(d).map(Zeroizing::new)
}

impl Session {
    /// True when the access token is expired or about to be.
    pub fn needs_refresh(&self, now_unix: u64) -> bool {
        now_unix.saturating_add(REFRESH_MARGIN_SECS) >= self.access_expires_at
    }

    /// Reads a session file, refusing one that group or others may read or write.
    pub fn load(path: &Path) -> Result<Self> {
        let mut file = match fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::Session(format!(
                    "not logged in (no session file at {}): run `keystead wallet login` first",
                    path.display()
                )));
            }
            Err(e) => {
                return Err(ClientError::io(
                    format!("cannot open the session file {}", path.display()),
                    e,
                ));
            }
        };
        let meta = file
            .metadata()
            .map_err(|e| ClientError::io("cannot stat the session file", e))?;
        if !meta.is_file() {
            return Err(ClientError::Session(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ClientError::Session(format!(
                "refusing the session file {}: its mode is {mode:04o}, so other users may \
                 read its tokens; log in again (it will be written 0600)",
                path.display()
            )));
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
        file.read_to_end(&mut bytes)
            .map_err(|e| ClientError::io("cannot read the session file", e))?;
        // Parser messages could quote a token: report the position only.
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Session(format!(
                "the session file {} is damaged (line {}, column {}); log in again",
                path.display(),
                e.line(),
                e.column()
            ))
        })
    }

    /// Writes the session file with mode 0600, replacing any previous one atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| ClientError::io(format!("cannot create {}", dir.display()), e))?;
        }
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp_name);
        let _ = fs::remove_file(&tmp);
        let mut json = Zeroizing::new(Vec::with_capacity(1024));
        serde_json::to_writer_pretty(&mut *json, self)
            .map_err(|e| ClientError::Decode(format!("cannot encode the session: {e}")))?;
        json.push(b'\n');
        let write = || -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            ClientError::io(
                format!("cannot write the session file {}", path.display()),
                e,
            )
        })
    }
}

/// The default session file: `$XDG_CONFIG_HOME/keystead/session.json`, else
/// `~/.config/keystead/session.json`.
pub fn default_path() -> Result<PathBuf> {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(config) = from_env("XDG_CONFIG_HOME") {
        return Ok(config.join("keystead").join("session.json"));
    }
    if let Some(home) = from_env("HOME") {
        return Ok(home.join(".config").join("keystead").join("session.json"));
    }
    Err(ClientError::Session(
        "no config directory ($XDG_CONFIG_HOME and $HOME are unset): pass --session FILE".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn session() -> Session {
        Session {
            server: "http://127.0.0.1:8080".into(),
            app_key: Zeroizing::new("ak_secret".into()),
            access_token: Zeroizing::new("at_secret".into()),
            refresh_token: Zeroizing::new("rt_secret".into()),
            access_expires_at: 1_000,
            user_id: Some("usr_1".into()),
            attestation: Some("dev".into()),
        }
    }

    #[test]
    fn saved_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/keystead/session.json");
        session().save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let back = Session::load(&path).unwrap();
        assert_eq!(back.access_token.as_str(), "at_secret");
        assert_eq!(back.refresh_token.as_str(), "rt_secret");
        assert_eq!(back.app_key.as_str(), "ak_secret");
        assert_eq!(back.server, "http://127.0.0.1:8080");
        // Rewriting keeps 0600 and leaves no temporary file behind.
        let mut next = back;
        next.access_token = Zeroizing::new("at_2".into());
        next.save(&path).unwrap();
        assert_eq!(Session::load(&path).unwrap().access_token.as_str(), "at_2");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.json");
        session().save(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = Session::load(&path).unwrap_err();
            assert!(matches!(err, ClientError::Session(_)), "{mode:o}");
            assert!(!err.to_string().contains("secret"));
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(Session::load(&path).is_ok());
    }

    #[test]
    fn missing_and_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.json");
        assert!(
            Session::load(&path)
                .unwrap_err()
                .to_string()
                .contains("login")
        );
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        file.write_all(br#"{"server": "x", "accessToken": "at_secret""#)
            .unwrap();
        let err = Session::load(&path).unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn expiry_and_debug() {
        let s = session();
        assert!(!s.needs_refresh(900));
        assert!(s.needs_refresh(980));
        assert!(!format!("{s:?}").contains("secret"));
    }
}
