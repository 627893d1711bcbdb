//! Access tokens, the published JWKS, the key file, refresh tokens and app keys.

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keystead_identity::{
    AccessClaims, AccessTokenError, KeyFileError, SessionPublicKey, SessionSigner, hash_token,
    new_app_key, new_id, new_refresh_token,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

const NOW: u64 = 1_700_000_000;
const TTL: u64 = 900;

fn rng() -> StdRng {
    StdRng::from_os_rng()
}

fn claims() -> AccessClaims {
    AccessClaims {
        app_id: "app_01".into(),
        user_id: "usr_01".into(),
        session_id: "ses_01".into(),
    }
}

fn b64_json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn with_part(token: &str, index: usize, value: &Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[index] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap());
    parts.join(".")
}

#[test]
fn access_token_round_trip() {
    let signer = SessionSigner::generate(&mut rng());
    let token = signer.issue_access_token(&claims(), NOW, TTL, &mut rng());
    assert_eq!(
        signer.verify_access_token(&token, "app_01", NOW + 10),
        Ok(claims())
    );

    let parts: Vec<&str> = token.split('.').collect();
    let header = b64_json(parts[0]);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], signer.kid());
    let payload = b64_json(parts[1]);
    assert_eq!(payload["iss"], "keystead");
    assert_eq!(payload["aud"], "app_01");
    assert_eq!(payload["sub"], "usr_01");
    assert_eq!(payload["sid"], "ses_01");
    assert_eq!(payload["iat"], NOW);
    assert_eq!(payload["exp"], NOW + TTL);
    assert!(payload["jti"].as_str().is_some_and(|j| j.len() >= 16));

    // Every token gets its own jti.
    let again = signer.issue_access_token(&claims(), NOW, TTL, &mut rng());
    assert_ne!(
        b64_json(again.split('.').nth(1).unwrap())["jti"],
        payload["jti"]
    );
}

#[test]
fn expired_access_token_refused() {
    let signer = SessionSigner::generate(&mut rng());
    let token = signer.issue_access_token(&claims(), NOW, TTL, &mut rng());
    assert!(
        signer
            .verify_access_token(&token, "app_01", NOW + TTL - 1)
            .is_ok()
    );
    assert_eq!(
        signer.verify_access_token(&token, "app_01", NOW + TTL),
        Err(AccessTokenError::Expired)
    );
    // Issued "in the future" (another server's clock far ahead).
    assert_eq!(
        signer.verify_access_token(&token, "app_01", NOW - 120),
        Err(AccessTokenError::IssuedInFuture)
    );
}

#[test]
fn access_token_for_another_app_refused() {
    let signer = SessionSigner::generate(&mut rng());
    let token = signer.issue_access_token(&claims(), NOW, TTL, &mut rng());
    assert_eq!(
        signer.verify_access_token(&token, "app_02", NOW),
        Err(AccessTokenError::WrongApp)
    );
}

#[test]
fn tampered_access_token_refused() {
    let signer = SessionSigner::generate(&mut rng());
    let token = signer.issue_access_token(&claims(), NOW, TTL, &mut rng());
    let parts: Vec<&str> = token.split('.').collect();

    let mut payload = b64_json(parts[1]);
    payload["sub"] = json!("usr_admin");
    assert_eq!(
        signer.verify_access_token(&with_part(&token, 1, &payload), "app_01", NOW),
        Err(AccessTokenError::BadSignature)
    );
    let mut payload = b64_json(parts[1]);
    payload["exp"] = json!(NOW + 1_000_000);
    assert_eq!(
        signer.verify_access_token(&with_part(&token, 1, &payload), "app_01", NOW),
        Err(AccessTokenError::BadSignature)
    );
    // alg none, and HS256, under our kid.
    let mut header = b64_json(parts[0]);
    header["alg"] = json!("none");
    let unsigned = with_part(&token, 0, &header);
    let unsigned = format!("{}.", unsigned.rsplit_once('.').unwrap().0);
    assert_eq!(
        signer.verify_access_token(&unsigned, "app_01", NOW),
        Err(AccessTokenError::UnsupportedAlgorithm)
    );
    header["alg"] = json!("HS256");
    assert_eq!(
        signer.verify_access_token(&with_part(&token, 0, &header), "app_01", NOW),
        Err(AccessTokenError::UnsupportedAlgorithm)
    );
    // Garbage.
    for bad in ["", "a.b.c", "x", &token[..token.len() / 2]] {
        assert!(signer.verify_access_token(bad, "app_01", NOW).is_err());
    }
}

#[test]
fn access_token_signed_by_another_key_refused() {
    let signer = SessionSigner::generate(&mut rng());
    let other = SessionSigner::generate(&mut rng());
    assert_ne!(signer.kid(), other.kid());
    let token = other.issue_access_token(&claims(), NOW, TTL, &mut rng());
    assert_eq!(
        signer.verify_access_token(&token, "app_01", NOW),
        Err(AccessTokenError::UnknownKey)
    );
    // The other key's signature under our kid.
    let mut header = b64_json(token.split('.').next().unwrap());
    header["kid"] = json!(signer.kid());
    let forged = with_part(&token, 0, &header);
    assert_eq!(
        signer.verify_access_token(&forged, "app_01", NOW),
        Err(AccessTokenError::BadSignature)
    );
}

#[test]
fn previous_keys_still_verify_after_rotation() {
    let old = SessionSigner::generate(&mut rng());
    let old_token = old.issue_access_token(&claims(), NOW, TTL, &mut rng());
    let new =
        SessionSigner::generate(&mut rng()).with_previous([old.public_key(), old.public_key()]);
    assert_eq!(
        new.verify_access_token(&old_token, "app_01", NOW),
        Ok(claims())
    );
    let jwks = new.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "current and one previous, deduplicated");
    assert_eq!(keys[0]["kid"], new.kid());
    assert_eq!(keys[1]["kid"], old.kid());
    // New tokens are signed by the new key.
    let token = new.issue_access_token(&claims(), NOW, TTL, &mut rng());
    assert_eq!(
        old.verify_access_token(&token, "app_01", NOW),
        Err(AccessTokenError::UnknownKey)
    );
    // A previous key read back from the published JWK.
    let from_jwk = SessionPublicKey::from_jwk(&keys[1]).unwrap();
    assert_eq!(from_jwk, old.public_key());
    let mut wrong = keys[1].clone();
    wrong["kid"] = json!("ks1-0000000000000000");
    assert!(SessionPublicKey::from_jwk(&wrong).is_err());
}

#[test]
fn published_jwks_verifies_tokens_independently() {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    let signer = SessionSigner::generate(&mut rng());
    let now = keystead_testkit::now_unix();
    let token = signer.issue_access_token(&claims(), now, TTL, &mut rng());

    // Only what is published: the JWKS document and the token.
    let published = serde_json::to_string(&signer.jwks()).unwrap();
    let set: JwkSet = serde_json::from_str(&published).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("kid published");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["app_01"]);
    validation.set_issuer(&["keystead"]);
    let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).expect("verifies");
    assert_eq!(data.claims["sub"], "usr_01");
    assert_eq!(data.claims["sid"], "ses_01");

    // And it refuses a token from another key under the same kid.
    let other = SessionSigner::generate(&mut rng());
    let forged = other.issue_access_token(&claims(), now, TTL, &mut rng());
    let mut forged_header = b64_json(forged.split('.').next().unwrap());
    forged_header["kid"] = json!(signer.kid());
    let forged = with_part(&forged, 0, &forged_header);
    assert!(jsonwebtoken::decode::<Value>(&forged, &key, &validation).is_err());

    // The JWKS carries no private material.
    let jwk_value = &signer.jwks()["keys"][0];
    assert!(jwk_value.get("d").is_none());
    assert_eq!(jwk_value["kty"], "OKP");
    assert_eq!(jwk_value["crv"], "Ed25519");
    assert_eq!(jwk_value["alg"], "EdDSA");
    assert_eq!(jwk_value["use"], "sig");
}

#[test]
fn key_file_created_0600_and_reloaded_with_same_kid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys").join("session-key.pem");
    let created = SessionSigner::load_or_create(&path, &mut rng()).unwrap();

    let metadata = std::fs::metadata(&path).unwrap();
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8 PEM"
    );
    // No temporary files left behind.
    let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(entries.len(), 1);

    let reloaded = SessionSigner::load_or_create(&path, &mut rng()).unwrap();
    assert_eq!(reloaded.kid(), created.kid());
    let loaded = SessionSigner::load(&path).unwrap();
    assert_eq!(loaded.kid(), created.kid());
    // A token from the first instance verifies with the reloaded one.
    let token = created.issue_access_token(&claims(), NOW, TTL, &mut rng());
    assert_eq!(
        reloaded.verify_access_token(&token, "app_01", NOW),
        Ok(claims())
    );
    assert_eq!(*reloaded.to_pkcs8_pem(), text);

    // Debug shows the kid and nothing of the key.
    let shown = format!("{created:?}");
    assert!(shown.contains(created.kid()));
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!shown.contains(&body[16..32]));
    assert!(!shown.to_lowercase().contains("private"));
}

#[test]
fn bad_key_files_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.pem");
    std::fs::write(&path, "not a key").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(
        SessionSigner::load_or_create(&path, &mut rng()),
        Err(KeyFileError::InvalidFile { .. })
    ));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "not a key",
        "never overwritten"
    );
    assert!(matches!(
        SessionSigner::load(&dir.path().join("missing.pem")),
        Err(KeyFileError::Io { .. })
    ));
    // A key others could read is refused, not used: it may already have leaked.
    let open = dir.path().join("open.pem");
    SessionSigner::load_or_create(&open, &mut rng()).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o620] {
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
        assert!(
            matches!(
                SessionSigner::load_or_create(&open, &mut rng()),
                Err(KeyFileError::TooOpen { .. })
            ),
            "{mode:o}"
        );
    }
    // openssl's form of an Ed25519 key is accepted.
    let openssl = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
                   -----END PRIVATE KEY-----\n";
    let signer = SessionSigner::from_pkcs8_pem(openssl).unwrap();
    assert!(signer.kid().starts_with("ks1-"));
}

#[test]
fn refresh_tokens_unique_and_hash_stable() {
    let mut rng = rng();
    let (token, hash) = new_refresh_token(&mut rng);
    assert!(token.starts_with("ksr_"));
    assert_eq!(token.len(), 4 + 43, "32 bytes base64url");
    assert!(
        token[4..]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    assert_eq!(hash.len(), 64);
    assert_eq!(hash_token(&token), hash);
    assert_eq!(hash_token(&token), hash_token(&token.clone()));
    assert_ne!(hash_token(&token), hash_token(&format!("{token}x")));
    // A known vector: SHA-256("abc").
    assert_eq!(
        hash_token("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );

    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let (token, hash) = new_refresh_token(&mut rng);
        assert!(seen.insert(token));
        assert!(seen.insert(hash));
    }

    let (key, key_hash) = new_app_key(&mut rng);
    assert!(key.starts_with("ksa_"));
    assert_eq!(key.len(), 4 + 43);
    assert_eq!(hash_token(&key), key_hash);
}

#[test]
fn ids_have_prefix_and_twenty_base32_chars() {
    let mut rng = rng();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let id = new_id("usr", &mut rng);
        assert!(id.starts_with("usr_"));
        assert_eq!(id.len(), 24);
        assert!(
            id[4..]
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        assert!(seen.insert(id));
    }
    // Deterministic for a seeded RNG (tests can pin ids).
    let a = new_id("ses", &mut StdRng::seed_from_u64(7));
    let b = new_id("ses", &mut StdRng::seed_from_u64(7));
    assert_eq!(a, b);
}
