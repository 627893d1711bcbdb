//! ID-token verification against a real (in-process) OpenID provider.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keystead_identity::{IdTokenError, OidcVerifier, ProviderConfig};
use keystead_testkit::oidc::{TestIssuer, TokenSpec};
use serde_json::{Value, json};

const NOW: u64 = 1_700_000_000;
const CLIENT: &str = "client-123";

fn provider(issuer: &TestIssuer) -> ProviderConfig {
    ProviderConfig {
        name: "test".into(),
        issuer: issuer.issuer(),
        client_id: CLIENT.into(),
    }
}

async fn setup() -> (TestIssuer, OidcVerifier, ProviderConfig) {
    let issuer = TestIssuer::start().await;
    let provider = provider(&issuer);
    (issuer, OidcVerifier::new().expect("verifier"), provider)
}

fn spec() -> TokenSpec {
    TokenSpec::new("user-1", CLIENT, NOW)
}

#[tokio::test]
async fn valid_token_accepted_with_claims() {
    let (issuer, verifier, provider) = setup().await;
    let token = issuer.mint(&spec());
    let claims = verifier
        .verify(&provider, &token, NOW)
        .await
        .expect("valid");
    assert_eq!(claims.subject, "user-1");
    assert_eq!(claims.email.as_deref(), Some("user-1@example.com"));
    assert_eq!(claims.email_verified, Some(true));
    assert_eq!(claims.issuer, issuer.issuer());

    // Without email claims.
    let token = issuer.mint(&TokenSpec {
        email: None,
        email_verified: None,
        ..spec()
    });
    let claims = verifier
        .verify(&provider, &token, NOW)
        .await
        .expect("valid");
    assert_eq!((claims.email, claims.email_verified), (None, None));

    // ES256 with the EC key, and RS512 with the RSA key whose JWK names no other alg...
    let token = issuer.mint(&TokenSpec {
        alg: Some("ES256".into()),
        ..spec()
    });
    verifier
        .verify(&provider, &token, NOW)
        .await
        .expect("ES256");
    // ...while the keys were fetched once.
    assert_eq!(issuer.jwks_fetches(), 1);
    assert_eq!(issuer.discovery_fetches(), 1);
}

#[tokio::test]
async fn audience_as_array_accepted() {
    let (issuer, verifier, provider) = setup().await;
    let token = issuer.mint(&TokenSpec {
        aud: json!(["other-client", CLIENT]),
        ..spec()
    });
    let claims = verifier
        .verify(&provider, &token, NOW)
        .await
        .expect("valid");
    assert_eq!(claims.subject, "user-1");
}

#[tokio::test]
async fn expired_refused_beyond_leeway() {
    let (issuer, verifier, provider) = setup().await;
    let token = issuer.mint(&TokenSpec {
        iat: NOW - 3600,
        exp: NOW - 61,
        ..spec()
    });
    assert_eq!(
        verifier.verify(&provider, &token, NOW).await,
        Err(IdTokenError::Expired)
    );
    // 30 s past exp is within the 60 s leeway.
    let token = issuer.mint(&TokenSpec {
        iat: NOW - 3600,
        exp: NOW - 30,
        ..spec()
    });
    assert!(verifier.verify(&provider, &token, NOW).await.is_ok());
    // The same token, later.
    assert_eq!(
        verifier.verify(&provider, &token, NOW + 100).await,
        Err(IdTokenError::Expired)
    );
}

#[tokio::test]
async fn issued_in_future_and_not_yet_valid_refused() {
    let (issuer, verifier, provider) = setup().await;
    let token = issuer.mint(&TokenSpec {
        iat: NOW + 120,
        exp: NOW + 600,
        ..spec()
    });
    assert_eq!(
        verifier.verify(&provider, &token, NOW).await,
        Err(IdTokenError::IssuedInFuture)
    );
    let token = issuer.mint(&TokenSpec {
        nbf: Some(NOW + 120),
        ..spec()
    });
    assert_eq!(
        verifier.verify(&provider, &token, NOW).await,
        Err(IdTokenError::NotYetValid)
    );
    assert!(verifier.verify(&provider, &token, NOW + 61).await.is_ok());
}

#[tokio::test]
async fn wrong_audience_refused() {
    let (issuer, verifier, provider) = setup().await;
    let token = issuer.mint(&TokenSpec {
        aud: json!("someone-else"),
        ..spec()
    });
    assert_eq!(
        verifier.verify(&provider, &token, NOW).await,
        Err(IdTokenError::WrongAudience)
    );
    let token = issuer.mint(&TokenSpec {
        aud: json!(["a", "b"]),
        ..spec()
    });
    assert_eq!(
        verifier.verify(&provider, &token, NOW).await,
        Err(IdTokenError::WrongAudience)
    );
}

#[tokio::test]
async fn wrong_issuer_refused_without_fetching() {
    let (issuer, verifier, provider) = setup().await;
    let token = issuer.mint(&TokenSpec {
        issuer: Some("https://accounts.example.com".into()),
        ..spec()
    });
    assert_eq!(
        verifier.verify(&provider, &token, NOW).await,
        Err(IdTokenError::WrongIssuer)
    );
    assert_eq!(issuer.discovery_fetches(), 0);
    assert_eq!(issuer.jwks_fetches(), 0);
}

#[tokio::test]
async fn alg_none_refused() {
    let (issuer, verifier, provider) = setup().await;
    let token = issuer.mint(&TokenSpec {
        alg: Some("none".into()),
        ..spec()
    });
    assert!(token.ends_with('.'), "unsigned token");
    assert_eq!(
        verifier.verify(&provider, &token, NOW).await,
        Err(IdTokenError::UnsupportedAlgorithm)
    );
    // Spelling variants too, and nothing was fetched for any of them.
    for alg in ["None", "NONE", "nOnE"] {
        let token = issuer.mint(&TokenSpec {
            alg: Some(alg.into()),
            ..spec()
        });
        assert_eq!(
            verifier.verify(&provider, &token, NOW).await,
            Err(IdTokenError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
    assert_eq!(issuer.jwks_fetches(), 0);
}

#[tokio::test]
async fn hs256_signed_with_rsa_public_key_refused() {
    let (issuer, verifier, provider) = setup().await;
    let token = issuer.mint(&TokenSpec {
        alg: Some("HS256-with-public-key".into()),
        ..spec()
    });
    // The token really is the confusion attack: a verifier that let the token pick HS256
    // and used the public key as the secret would accept it.
    let naive_key = jsonwebtoken::DecodingKey::from_secret(issuer.rsa_public_pem().as_bytes());
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "HS256");
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    assert!(
        jsonwebtoken::crypto::verify(
            signature,
            signing_input.as_bytes(),
            &naive_key,
            jsonwebtoken::Algorithm::HS256
        )
        .unwrap()
    );

    assert_eq!(
        verifier.verify(&provider, &token, NOW).await,
        Err(IdTokenError::UnsupportedAlgorithm)
    );
    for alg in ["HS384", "HS512"] {
        let token = issuer.mint(&TokenSpec {
            alg: Some(alg.into()),
            ..spec()
        });
        assert_eq!(
            verifier.verify(&provider, &token, NOW).await,
            Err(IdTokenError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn algorithm_must_fit_the_key() {
    let (issuer, verifier, provider) = setup().await;
    // The RSA JWK says alg RS256: a PS256 signature by the same key is refused.
    let token = issuer.mint(&TokenSpec {
        alg: Some("PS256".into()),
        ..spec()
    });
    assert_eq!(
        verifier.verify(&provider, &token, NOW).await,
        Err(IdTokenError::UnsupportedAlgorithm)
    );
    // An ES256 header naming the RSA key.
    let token = issuer.mint(&TokenSpec {
        alg: Some("ES256".into()),
        kid: Some(issuer.kid()),
        ..spec()
    });
    assert_eq!(
        verifier.verify(&provider, &token, NOW).await,
        Err(IdTokenError::UnsupportedAlgorithm)
    );
    // An RS256 header naming the EC key.
    let token = issuer.mint(&TokenSpec {
        kid: Some(issuer.ec_kid()),
        ..spec()
    });
    assert_eq!(
        verifier.verify(&provider, &token, NOW).await,
        Err(IdTokenError::UnsupportedAlgorithm)
    );
}

#[tokio::test]
async fn tampered_payload_refused() {
    let (issuer, verifier, provider) = setup().await;
    let token = issuer.mint(&spec());
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("admin");
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let tampered = parts.join(".");
    assert_eq!(
        verifier.verify(&provider, &tampered, NOW).await,
        Err(IdTokenError::BadSignature)
    );
    // A truncated signature, and no signature at all.
    let (input, signature) = token.rsplit_once('.').unwrap();
    let truncated = format!("{input}.{}", &signature[..signature.len() - 4]);
    assert_eq!(
        verifier.verify(&provider, &truncated, NOW).await,
        Err(IdTokenError::BadSignature)
    );
    assert_eq!(
        verifier.verify(&provider, &format!("{input}."), NOW).await,
        Err(IdTokenError::BadSignature)
    );
}

#[tokio::test]
async fn malformed_refused() {
    let (issuer, verifier, provider) = setup().await;
    for bad in [
        "",
        "not a token",
        "a.b",
        "a.b.c.d",
        "e30.e30.",
        "%%%.%%%.%%%",
    ] {
        assert_eq!(
            verifier.verify(&provider, bad, NOW).await,
            Err(IdTokenError::Malformed),
            "{bad:?}"
        );
    }
    let huge = "a".repeat(100_000);
    assert_eq!(
        verifier.verify(&provider, &huge, NOW).await,
        Err(IdTokenError::Malformed)
    );
    // Signed, but `exp` is a string.
    let mut extra = serde_json::Map::new();
    extra.insert("exp".into(), json!("tomorrow"));
    let token = issuer.mint(&TokenSpec { extra, ..spec() });
    assert_eq!(
        verifier.verify(&provider, &token, NOW).await,
        Err(IdTokenError::Malformed)
    );
}

#[tokio::test]
async fn token_from_another_issuers_key_refused() {
    let (issuer, verifier, provider) = setup().await;
    let other = TestIssuer::start().await;
    // Naming our issuer and our key id, signed by the other issuer's key.
    let forged = other.mint(&TokenSpec {
        issuer: Some(issuer.issuer()),
        kid: Some(issuer.kid()),
        ..spec()
    });
    assert_eq!(
        verifier.verify(&provider, &forged, NOW).await,
        Err(IdTokenError::BadSignature)
    );
    // Naming our issuer but its own key id: a key our issuer does not publish.
    let forged = other.mint(&TokenSpec {
        issuer: Some(issuer.issuer()),
        ..spec()
    });
    assert_eq!(
        verifier.verify(&provider, &forged, NOW + 31).await,
        Err(IdTokenError::UnknownKey)
    );
    // The other issuer's own token, for the same client id.
    let theirs = other.mint(&spec());
    assert_eq!(
        verifier.verify(&provider, &theirs, NOW).await,
        Err(IdTokenError::WrongIssuer)
    );
    assert_eq!(other.jwks_fetches(), 0);
}

#[tokio::test]
async fn unknown_kid_refused_after_one_bounded_refetch() {
    let (issuer, verifier, provider) = setup().await;
    verifier
        .verify(&provider, &issuer.mint(&spec()), NOW)
        .await
        .expect("valid");
    assert_eq!(issuer.jwks_fetches(), 1);

    let unknown = issuer.mint(&TokenSpec {
        kid: Some("no-such-key".into()),
        ..spec()
    });
    // Past the 30 s window: one refetch, then refused.
    assert_eq!(
        verifier.verify(&provider, &unknown, NOW + 31).await,
        Err(IdTokenError::UnknownKey)
    );
    assert_eq!(issuer.jwks_fetches(), 2);
    // Again right away: refused without fetching.
    assert_eq!(
        verifier.verify(&provider, &unknown, NOW + 32).await,
        Err(IdTokenError::UnknownKey)
    );
    assert_eq!(issuer.jwks_fetches(), 2);
    // A token with no kid and several keys published is refused too (no fetch).
    let no_kid = issuer.mint(&TokenSpec {
        no_kid: true,
        ..spec()
    });
    assert_eq!(
        verifier.verify(&provider, &no_kid, NOW + 33).await,
        Err(IdTokenError::UnknownKey)
    );
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn rotated_key_accepted_via_refetch() {
    let (issuer, verifier, provider) = setup().await;
    let old_kid = issuer.kid();
    verifier
        .verify(&provider, &issuer.mint(&spec()), NOW)
        .await
        .expect("valid");
    assert_eq!(issuer.jwks_fetches(), 1);

    let new_kid = issuer.rotate_key();
    assert_ne!(new_kid, old_kid);
    let token = issuer.mint(&TokenSpec::new("user-2", CLIENT, NOW + 40));
    let claims = verifier
        .verify(&provider, &token, NOW + 40)
        .await
        .expect("accepted after refetch");
    assert_eq!(claims.subject, "user-2");
    assert_eq!(issuer.jwks_fetches(), 2);

    // The old kid is still published and known: a signature by the new key under the
    // old kid is a bad signature, and costs no fetch.
    let old = issuer.mint(&TokenSpec {
        kid: Some(old_kid),
        ..spec()
    });
    assert_eq!(
        verifier.verify(&provider, &old, NOW + 41).await,
        Err(IdTokenError::BadSignature)
    );
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn rotated_key_within_window_waits_for_the_window() {
    let (issuer, verifier, provider) = setup().await;
    verifier
        .verify(&provider, &issuer.mint(&spec()), NOW)
        .await
        .expect("valid");
    issuer.rotate_key();
    let token = issuer.mint(&spec());
    assert_eq!(
        verifier.verify(&provider, &token, NOW + 10).await,
        Err(IdTokenError::UnknownKey)
    );
    assert_eq!(issuer.jwks_fetches(), 1);
    assert!(verifier.verify(&provider, &token, NOW + 30).await.is_ok());
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn flood_of_unknown_kids_fetches_at_most_once_per_window() {
    let (issuer, verifier, provider) = setup().await;
    verifier
        .verify(&provider, &issuer.mint(&spec()), NOW)
        .await
        .expect("valid");
    assert_eq!(issuer.jwks_fetches(), 1);

    // 300 unknown kids over 90 s, ten per second, from clones sharing the cache.
    let mut fetches_at = Vec::new();
    for i in 0..300u64 {
        let now = NOW + i * 3 / 10;
        let token = issuer.mint(&TokenSpec {
            kid: Some(format!("random-kid-{i}")),
            ..TokenSpec::new("flood", CLIENT, now)
        });
        let before = issuer.jwks_fetches();
        let clone = verifier.clone();
        assert_eq!(
            clone.verify(&provider, &token, now).await,
            Err(IdTokenError::UnknownKey)
        );
        if issuer.jwks_fetches() > before {
            fetches_at.push(now - NOW);
        }
    }
    // The window opens at 30, 60 (and 90 is past the end).
    assert_eq!(fetches_at, vec![30, 60]);
    assert_eq!(issuer.jwks_fetches(), 3);
}

#[tokio::test]
async fn concurrent_unknown_kids_fetch_once() {
    let (issuer, verifier, provider) = setup().await;
    verifier
        .verify(&provider, &issuer.mint(&spec()), NOW)
        .await
        .expect("valid");
    let mut tasks = Vec::new();
    for i in 0..50 {
        let token = issuer.mint(&TokenSpec {
            kid: Some(format!("kid-{i}")),
            ..spec()
        });
        let verifier = verifier.clone();
        let provider = provider.clone();
        tasks.push(tokio::spawn(async move {
            verifier.verify(&provider, &token, NOW + 45).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), Err(IdTokenError::UnknownKey));
    }
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn discovery_issuer_mismatch_refused() {
    let (issuer, verifier, provider) = setup().await;
    issuer.set_discovery_issuer(Some("https://impostor.example"));
    let token = issuer.mint(&spec());
    match verifier.verify(&provider, &token, NOW).await {
        Err(IdTokenError::Discovery(message)) => {
            assert!(message.contains("impostor"), "{message}");
        }
        other => panic!("expected a discovery error, got {other:?}"),
    }
    assert_eq!(
        issuer.jwks_fetches(),
        0,
        "JWKS not fetched from a wrong discovery"
    );

    // A trailing slash is a different issuer too.
    let slash = ProviderConfig {
        issuer: format!("{}/", issuer.issuer()),
        ..provider.clone()
    };
    issuer.set_discovery_issuer(None);
    let token = issuer.mint(&TokenSpec {
        issuer: Some(slash.issuer.clone()),
        ..spec()
    });
    assert!(matches!(
        verifier.verify(&slash, &token, NOW).await,
        Err(IdTokenError::Discovery(_))
    ));
    // Once the provider is fixed, logins work again (after the short failure back-off).
    let token = issuer.mint(&spec());
    assert!(verifier.verify(&provider, &token, NOW + 5).await.is_ok());
}

#[tokio::test]
async fn unreachable_provider_is_a_discovery_error() {
    // Bind and drop, so nothing listens on that port.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let issuer_url = format!("http://127.0.0.1:{port}");
    let provider = ProviderConfig {
        name: "down".into(),
        issuer: issuer_url.clone(),
        client_id: CLIENT.into(),
    };
    let issuer = TestIssuer::start().await;
    let token = issuer.mint(&TokenSpec {
        issuer: Some(issuer_url),
        ..spec()
    });
    let verifier = OidcVerifier::new().unwrap();
    assert!(matches!(
        verifier.verify(&provider, &token, NOW).await,
        Err(IdTokenError::Discovery(_))
    ));
    // Within the back-off the cached failure answers, without another connection.
    assert!(matches!(
        verifier.verify(&provider, &token, NOW + 1).await,
        Err(IdTokenError::Discovery(_))
    ));
}

#[tokio::test]
async fn non_loopback_plain_http_issuer_refused() {
    let verifier = OidcVerifier::new().unwrap();
    let provider = ProviderConfig {
        name: "plain".into(),
        issuer: "http://example.com".into(),
        client_id: CLIENT.into(),
    };
    let issuer = TestIssuer::start().await;
    let token = issuer.mint(&TokenSpec {
        issuer: Some("http://example.com".into()),
        ..spec()
    });
    match verifier.verify(&provider, &token, NOW).await {
        Err(IdTokenError::Discovery(message)) => assert!(message.contains("plain HTTP")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn errors_never_carry_token_contents() {
    let (issuer, verifier, provider) = setup().await;
    let token = issuer.mint(&TokenSpec {
        sub: "secret-subject".into(),
        aud: json!("secret-audience"),
        ..spec()
    });
    let error = verifier.verify(&provider, &token, NOW).await.unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("secret"), "{shown}");
}
