//! ID-token verification against a real, certified OpenID provider (panva's
//! oidc-provider, started by testkit): tokens it issues through the authorization-code
//! flow with PKCE verify, and are refused for another client or with a changed
//! signature. Needs `KEYSTEAD_OIDC_PROVIDER_DIR` (scripts/test sets it).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keystead_identity::{IdTokenError, OidcVerifier, ProviderConfig};
use keystead_testkit::now_unix;
use keystead_testkit::oidc_provider::{ClientSpec, OidcProvider};

fn config(provider: &OidcProvider, client_id: &str) -> ProviderConfig {
    ProviderConfig {
        name: "real".into(),
        issuer: provider.issuer(),
        client_id: client_id.into(),
    }
}

#[tokio::test]
async fn real_provider_tokens_verify_and_tampering_is_refused() {
    let public = ClientSpec::public("keystead-web");
    let confidential = ClientSpec::confidential("keystead-backend", "backend-secret");
    let mut provider = OidcProvider::start(&[public.clone(), confidential.clone()]);
    let verifier = OidcVerifier::new().expect("verifier");

    // A public client (PKCE, no secret).
    let token = provider.id_token(&public, "alice").await;
    let claims = verifier
        .verify(&config(&provider, "keystead-web"), &token, now_unix())
        .await
        .expect("the real provider's token verifies");
    assert_eq!(claims.subject, "alice");
    assert_eq!(claims.email.as_deref(), Some("alice@example.test"));
    assert_eq!(claims.email_verified, Some(true));
    assert_eq!(claims.issuer, provider.issuer());

    // The same token for another client: wrong audience.
    assert_eq!(
        verifier
            .verify(&config(&provider, "keystead-backend"), &token, now_unix())
            .await,
        Err(IdTokenError::WrongAudience)
    );

    // One byte of the signature changed.
    let (signed, signature) = token.rsplit_once('.').expect("three parts");
    let mut signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    signature[17] ^= 0x01;
    let tampered = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&signature));
    assert_eq!(
        verifier
            .verify(&config(&provider, "keystead-web"), &tampered, now_unix())
            .await,
        Err(IdTokenError::BadSignature)
    );

    // A confidential client (client_secret_basic), another user.
    let token = provider.id_token(&confidential, "bob").await;
    let claims = verifier
        .verify(&config(&provider, "keystead-backend"), &token, now_unix())
        .await
        .expect("confidential client's token verifies");
    assert_eq!(claims.subject, "bob");
    assert_eq!(claims.email.as_deref(), Some("bob@example.test"));

    // After a restart (same issuer, same fixed key) its new tokens verify with the keys
    // the verifier already holds.
    provider.restart();
    let token = provider.id_token(&public, "alice").await;
    let claims = verifier
        .verify(&config(&provider, "keystead-web"), &token, now_unix())
        .await
        .expect("token after a restart verifies");
    assert_eq!(claims.subject, "alice");
}

#[tokio::test]
async fn unknown_client_cannot_log_in() {
    let provider = OidcProvider::start(&[ClientSpec::public("known")]);
    let error = provider
        .try_id_token(&ClientSpec::public("unknown"), "alice")
        .await
        .expect_err("an unregistered client gets no token");
    assert!(
        format!("{error:#}").contains("invalid_client"),
        "unexpected error: {error:#}"
    );
}
