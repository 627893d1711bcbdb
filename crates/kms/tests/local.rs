use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keystead_kms::{EncryptionContext, Kms, KmsError, LocalKms, WrappedKeyInfo, inspect_wrapped};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn ctx(app: &str, wallet: &str) -> EncryptionContext {
    EncryptionContext::new(app, wallet)
}

fn keyring_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("master.json")
}

fn open(path: &Path, key_id: &str, seed: u64) -> LocalKms {
    LocalKms::open_or_create(path, key_id, rng(seed)).expect("open keyring")
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Hex of every master key in the keyring file.
fn master_keys_hex(path: &Path) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect()
}

fn header_len(key_id: &str) -> usize {
    4 + 1 + key_id.len() + 4
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn create_writes_0600_keyring() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    assert!(!path.exists());
    let kms = open(&path, "primary", 1);
    assert!(path.exists());
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(kms.name(), "local:primary");
    assert_eq!(kms.key_id(), "primary");
    assert_eq!(kms.current_version(), 1);
    assert_eq!(kms.versions(), vec![1]);

    let v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["key_id"], "primary");
    assert_eq!(v["versions"][0]["version"], 1);
    assert_eq!(v["versions"][0]["key"].as_str().unwrap().len(), 64);
    assert!(v["versions"][0]["created_at"].as_u64().is_some());

    // No temp files left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("master.json")]);
}

#[tokio::test]
async fn reopen_reads_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    let c = ctx("app-1", "wallet-1");
    let (plain, wrapped, before) = {
        let kms = open(&path, "primary", 1);
        let dk = kms.generate_data_key(&c).await.unwrap();
        (*dk.plaintext, dk.wrapped.clone(), fs::read(&path).unwrap())
    };
    // A different RNG seed must not matter: the key comes from the file.
    let kms = open(&path, "primary", 99);
    assert_eq!(fs::read(&path).unwrap(), before, "reopen must not rewrite");
    let opened = kms.decrypt_data_key(&wrapped, &c).await.unwrap();
    assert_eq!(*opened, plain);
}

#[test]
fn group_or_world_accessible_keyring_is_refused() {
    for mode in [0o644, 0o640, 0o604, 0o660, 0o606] {
        let dir = tempfile::tempdir().unwrap();
        let path = keyring_path(&dir);
        drop(open(&path, "primary", 1));
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let err = LocalKms::open_or_create(&path, "primary", rng(2)).unwrap_err();
        match &err {
            KmsError::Io(e) => assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied),
            other => panic!("expected Io, got {other:?}"),
        }
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
    // 0400 (owner read-only) is fine.
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    drop(open(&path, "primary", 1));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    assert!(LocalKms::open_or_create(&path, "primary", rng(2)).is_ok());
}

#[tokio::test]
async fn round_trip_and_arc_dyn() {
    let dir = tempfile::tempdir().unwrap();
    let kms: Arc<dyn Kms> = Arc::new(open(&keyring_path(&dir), "primary", 1));
    let c = ctx("app", "wallet");
    let dk = kms.generate_data_key(&c).await.unwrap();
    assert_eq!(dk.wrapped.len(), header_len("primary") + 12 + 32 + 16);
    assert!(dk.wrapped.starts_with(b"KSK1"));
    assert_eq!(
        inspect_wrapped(&dk.wrapped).unwrap(),
        WrappedKeyInfo {
            key_id: "primary".into(),
            version: 1
        }
    );
    let opened = kms.decrypt_data_key(&dk.wrapped, &c).await.unwrap();
    assert_eq!(*opened, *dk.plaintext);

    // Fresh keys and nonces each time.
    let dk2 = kms.generate_data_key(&c).await.unwrap();
    assert_ne!(*dk2.plaintext, *dk.plaintext);
    assert_ne!(dk2.wrapped, dk.wrapped);
}

#[tokio::test]
async fn wrong_context_fails() {
    let dir = tempfile::tempdir().unwrap();
    let kms = open(&keyring_path(&dir), "primary", 1);
    let dk = kms.generate_data_key(&ctx("ab", "c")).await.unwrap();
    for wrong in [
        ctx("a", "bc"),
        ctx("ab", "d"),
        ctx("ax", "c"),
        ctx("c", "ab"),
        ctx("", "abc"),
        ctx("abc", ""),
    ] {
        assert!(
            matches!(
                kms.decrypt_data_key(&dk.wrapped, &wrong).await,
                Err(KmsError::DecryptFailed)
            ),
            "{wrong:?}"
        );
    }
    assert!(
        kms.decrypt_data_key(&dk.wrapped, &ctx("ab", "c"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn every_flipped_bit_fails() {
    let dir = tempfile::tempdir().unwrap();
    let kms = open(&keyring_path(&dir), "primary", 1);
    let c = ctx("app", "wallet");
    let dk = kms.generate_data_key(&c).await.unwrap();
    let hlen = header_len("primary");
    for i in 0..dk.wrapped.len() {
        for bit in 0..8 {
            let mut bad = dk.wrapped.clone();
            bad[i] ^= 1 << bit;
            let res = kms.decrypt_data_key(&bad, &c).await;
            if i >= hlen {
                // Nonce, ciphertext, tag: authentication fails.
                assert!(
                    matches!(res, Err(KmsError::DecryptFailed)),
                    "byte {i} bit {bit}: {res:?}"
                );
            } else {
                // Header: magic/length/key id/version no longer name our key.
                assert!(
                    matches!(
                        res,
                        Err(KmsError::Malformed(_)
                            | KmsError::KeyNotFound { .. }
                            | KmsError::DecryptFailed)
                    ),
                    "byte {i} bit {bit}: {res:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn wrap_from_other_keyring_is_key_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let primary = open(&dir.path().join("primary.json"), "primary", 1);
    let dr = open(&dir.path().join("dr.json"), "dr", 2);
    assert_eq!(dr.name(), "local:dr");
    let c = ctx("app", "wallet");

    let from_dr = dr.generate_data_key(&c).await.unwrap();
    match primary.decrypt_data_key(&from_dr.wrapped, &c).await {
        Err(KmsError::KeyNotFound { key_id, version }) => {
            assert_eq!(key_id, "dr");
            assert_eq!(version, 1);
        }
        other => panic!("expected KeyNotFound, got {other:?}"),
    }
    let from_primary = primary.generate_data_key(&c).await.unwrap();
    assert!(matches!(
        dr.decrypt_data_key(&from_primary.wrapped, &c).await,
        Err(KmsError::KeyNotFound { .. })
    ));
    // Each opens its own.
    assert!(dr.decrypt_data_key(&from_dr.wrapped, &c).await.is_ok());

    // Same key id, different file (different key): authentication fails.
    let impostor = open(&dir.path().join("other.json"), "primary", 3);
    assert!(matches!(
        impostor.decrypt_data_key(&from_primary.wrapped, &c).await,
        Err(KmsError::DecryptFailed)
    ));
}

#[tokio::test]
async fn a_data_key_wrapped_by_a_second_keyring_survives_losing_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let primary = open(&dir.path().join("primary.json"), "primary", 1);
    let dr = open(&dir.path().join("dr.json"), "dr", 2);
    let c = ctx("app", "wallet");
    let key = primary.generate_data_key(&c).await.unwrap();
    let dr_copy = dr.wrap_data_key(&key.plaintext, &c).await.unwrap();
    assert_ne!(dr_copy, key.wrapped);

    // The primary keyring is lost: a new one under the same id opens nothing old...
    std::fs::remove_file(dir.path().join("primary.json")).unwrap();
    let new_primary = open(&dir.path().join("primary.json"), "primary", 9);
    assert!(
        new_primary
            .decrypt_data_key(&key.wrapped, &c)
            .await
            .is_err()
    );
    // ...but the DR copy gives back the same key, which the new primary wraps again.
    let restored = dr.decrypt_data_key(&dr_copy, &c).await.unwrap();
    assert_eq!(*restored, *key.plaintext);
    let rewrapped = new_primary.wrap_data_key(&restored, &c).await.unwrap();
    assert_eq!(
        *new_primary.decrypt_data_key(&rewrapped, &c).await.unwrap(),
        *key.plaintext
    );
    assert!(
        dr.decrypt_data_key(&dr_copy, &ctx("app", "other"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn rotate_adds_version_and_old_wraps_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    let kms = open(&path, "primary", 1);
    let c = ctx("app", "wallet");
    let old = kms.generate_data_key(&c).await.unwrap();
    assert_eq!(inspect_wrapped(&old.wrapped).unwrap().version, 1);

    assert_eq!(kms.rotate(at(1_800_000_000)).unwrap(), 2);
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(kms.current_version(), 2);
    assert_eq!(kms.versions(), vec![1, 2]);
    let keys = master_keys_hex(&path);
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);

    let new = kms.generate_data_key(&c).await.unwrap();
    assert_eq!(inspect_wrapped(&new.wrapped).unwrap().version, 2);
    assert_eq!(
        *kms.decrypt_data_key(&old.wrapped, &c).await.unwrap(),
        *old.plaintext
    );
    assert_eq!(
        *kms.decrypt_data_key(&new.wrapped, &c).await.unwrap(),
        *new.plaintext
    );

    // After a restart both still open and version 2 is current.
    drop(kms);
    let kms = open(&path, "primary", 5);
    assert_eq!(kms.current_version(), 2);
    assert!(kms.decrypt_data_key(&old.wrapped, &c).await.is_ok());
    assert!(kms.decrypt_data_key(&new.wrapped, &c).await.is_ok());

    // An unknown version is KeyNotFound.
    let mut future = new.wrapped.clone();
    let vpos = header_len("primary") - 4;
    future[vpos..vpos + 4].copy_from_slice(&7u32.to_be_bytes());
    match kms.decrypt_data_key(&future, &c).await {
        Err(KmsError::KeyNotFound { key_id, version }) => {
            assert_eq!(key_id, "primary");
            assert_eq!(version, 7);
        }
        other => panic!("expected KeyNotFound, got {other:?}"),
    }

    // No temp files left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn rotation_by_another_instance_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    let a = open(&path, "primary", 1);
    let b = open(&path, "primary", 2);
    let c = ctx("app", "wallet");
    assert_eq!(a.rotate(at(1)).unwrap(), 2);
    let wrapped = a.generate_data_key(&c).await.unwrap().wrapped;
    assert!(matches!(
        b.decrypt_data_key(&wrapped, &c).await,
        Err(KmsError::KeyNotFound { version: 2, .. })
    ));
    b.reload().unwrap();
    assert!(b.decrypt_data_key(&wrapped, &c).await.is_ok());
    // b rotating keeps a's version 2.
    assert_eq!(b.rotate(at(2)).unwrap(), 3);
    assert_eq!(b.versions(), vec![1, 2, 3]);
}

#[tokio::test]
async fn replaced_keyring_is_not_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    let kms = open(&path, "primary", 1);
    // Someone swaps the file for a different keyring with the same key id.
    fs::remove_file(&path).unwrap();
    drop(open(&path, "primary", 2));
    assert!(matches!(kms.rotate(at(1)), Err(KmsError::Malformed(_))));
    assert!(matches!(kms.reload(), Err(KmsError::Malformed(_))));
}

#[tokio::test]
async fn truncated_and_garbage_wraps_are_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let kms = open(&keyring_path(&dir), "primary", 1);
    let c = ctx("app", "wallet");
    let dk = kms.generate_data_key(&c).await.unwrap();
    for len in 0..dk.wrapped.len() {
        let res = kms.decrypt_data_key(&dk.wrapped[..len], &c).await;
        assert!(
            matches!(res, Err(KmsError::Malformed(_))),
            "len {len}: {res:?}"
        );
    }
    let mut long = dk.wrapped.clone();
    long.push(0);
    assert!(matches!(
        kms.decrypt_data_key(&long, &c).await,
        Err(KmsError::Malformed(_))
    ));

    let mut junk = rng(7);
    for len in [0usize, 1, 4, 5, 16, 64, 65, 200, 4096] {
        let mut g = vec![0u8; len];
        rand_core::RngCore::fill_bytes(&mut junk, &mut g);
        assert!(matches!(
            kms.decrypt_data_key(&g, &c).await,
            Err(KmsError::Malformed(_))
        ));
        // Garbage behind a valid magic, including a lying length byte.
        let mut g2 = b"KSK1".to_vec();
        g2.extend_from_slice(&g);
        assert!(matches!(
            kms.decrypt_data_key(&g2, &c).await,
            Err(KmsError::Malformed(_))
        ));
    }
    // Length byte 255 with nothing after it.
    assert!(matches!(
        kms.decrypt_data_key(b"KSK1\xff", &c).await,
        Err(KmsError::Malformed(_))
    ));
    // Key id that is not UTF-8 / not allowed.
    let mut bad_id = b"KSK1\x02\xff\xfe".to_vec();
    bad_id.extend_from_slice(&[0u8; 4 + 12 + 32 + 16]);
    assert!(matches!(
        kms.decrypt_data_key(&bad_id, &c).await,
        Err(KmsError::Malformed(_))
    ));
}

#[tokio::test]
async fn debug_shows_no_key_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = keyring_path(&dir);
    let kms = open(&path, "primary", 1);
    kms.rotate(at(1)).unwrap();
    let dk = kms.generate_data_key(&ctx("app", "wallet")).await.unwrap();

    let dk_hex = hex::encode(*dk.plaintext);
    let dk_debug = format!("{dk:?} {dk:#?}");
    assert!(!dk_debug.contains(&dk_hex), "{dk_debug}");
    assert!(!dk_debug.to_lowercase().contains(&dk_hex[..16]));
    // Not as a decimal byte list either.
    let bytes_debug = format!("{:?}", &dk.plaintext[..4]);
    assert!(!dk_debug.contains(bytes_debug.trim_matches(|c| c == '[' || c == ']')));

    let kms_debug = format!("{kms:?} {kms:#?}");
    for key_hex in master_keys_hex(&path) {
        assert!(!kms_debug.contains(&key_hex), "{kms_debug}");
        assert!(!kms_debug.contains(&key_hex[..16]));
    }
    assert!(!kms_debug.contains(&dk_hex));
    assert!(kms_debug.contains("local:primary"));
}

#[tokio::test]
async fn generate_random_limits() {
    let dir = tempfile::tempdir().unwrap();
    let kms = open(&keyring_path(&dir), "primary", 1);
    assert!(kms.generate_random(0).await.unwrap().is_empty());
    assert_eq!(kms.generate_random(32).await.unwrap().len(), 32);
    let big = kms.generate_random(1024).await.unwrap();
    assert_eq!(big.len(), 1024);
    assert!(big.iter().any(|&b| b != 0));
    assert!(matches!(
        kms.generate_random(1025).await,
        Err(KmsError::InvalidArgument(_))
    ));
    let a = kms.generate_random(32).await.unwrap();
    let b = kms.generate_random(32).await.unwrap();
    assert_ne!(*a, *b);
}

#[tokio::test]
async fn seeded_rng_is_deterministic() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let k1 = open(&keyring_path(&d1), "primary", 42);
    let k2 = open(&keyring_path(&d2), "primary", 42);
    assert_eq!(
        master_keys_hex(&keyring_path(&d1)),
        master_keys_hex(&keyring_path(&d2))
    );
    assert_eq!(
        *k1.generate_random(16).await.unwrap(),
        *k2.generate_random(16).await.unwrap()
    );
}

#[test]
fn bad_key_ids_and_keyrings_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for id in ["", "a/b", "with space", "ü"] {
        assert!(matches!(
            LocalKms::open_or_create(&dir.path().join("x.json"), id, rng(1)),
            Err(KmsError::InvalidArgument(_))
        ));
    }
    assert!(!dir.path().join("x.json").exists());

    // Existing keyring under another key id.
    let path = keyring_path(&dir);
    drop(open(&path, "primary", 1));
    assert!(matches!(
        LocalKms::open_or_create(&path, "dr", rng(1)),
        Err(KmsError::InvalidArgument(_))
    ));

    // Corrupted keyrings: Malformed, and the message quotes no key material.
    let write = |body: &str| {
        fs::write(&path, body).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    };
    let secret = "ab".repeat(31); // 62 hex chars: wrong length
    for body in [
        String::new(),
        "not json".to_owned(),
        r#"{"key_id":"primary","versions":[]}"#.to_owned(),
        format!(
            r#"{{"key_id":"primary","versions":[{{"version":1,"key":"{secret}","created_at":0}}]}}"#
        ),
        format!(
            r#"{{"key_id":"primary","versions":[{{"version":"{secret}","key":"{secret}","created_at":0}}]}}"#
        ),
        format!(
            r#"{{"key_id":"primary","versions":[{{"version":0,"key":"{secret}cd","created_at":0}}]}}"#
        ),
        format!(
            r#"{{"key_id":"primary","versions":[{{"version":1,"key":"{secret}cd","created_at":0}},{{"version":1,"key":"{secret}ef","created_at":0}}]}}"#
        ),
    ] {
        write(&body);
        let err = LocalKms::open_or_create(&path, "primary", rng(1)).unwrap_err();
        assert!(matches!(err, KmsError::Malformed(_)), "{body}: {err:?}");
        assert!(!err.to_string().contains(&secret[..16]), "{err}");
    }
}

#[test]
fn missing_parent_dir_is_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope").join("master.json");
    assert!(matches!(
        LocalKms::open_or_create(&path, "primary", rng(1)),
        Err(KmsError::Io(_))
    ));
}

#[test]
fn os_rng_works() {
    let dir = tempfile::tempdir().unwrap();
    let kms =
        LocalKms::open_or_create(&keyring_path(&dir), "primary", keystead_kms::os_rng()).unwrap();
    assert_eq!(kms.current_version(), 1);
}
