//! The OAuth 2 authorization-code flow with PKCE (RFC 7636), run by the server for a
//! login popup: where to send the user, and exchanging the code for an ID token, which is
//! then checked by [`OidcVerifier::verify`] like any other (plus its `nonce`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::oidc::{IdTokenError, OidcVerifier, ProviderConfig};

/// What the server keeps between sending the user to the provider and the callback.
#[derive(Clone)]
pub struct PendingLogin {
    /// `state`: 32 random bytes, base64url; the key of the pending login.
    pub state: String,
    /// The PKCE verifier: 32 random bytes, base64url.
    pub code_verifier: Zeroizing<String>,
    /// `nonce`: the ID token must carry it.
    pub nonce: String,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin").finish_non_exhaustive()
    }
}

fn random_b64<R: CryptoRng + ?Sized>(rng: &mut R) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl PendingLogin {
    pub fn new<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self {
            state: random_b64(rng),
            code_verifier: Zeroizing::new(random_b64(rng)),
            nonce: random_b64(rng),
        }
    }

    /// `BASE64URL(SHA-256(verifier))`, the S256 challenge.
    pub fn code_challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.code_verifier.as_bytes()))
    }
}

/// Why a code login failed. Safe to show: no variant carries a code or a token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeFlowError {
    #[error("the provider's metadata is unusable: {0}")]
    Metadata(String),
    #[error("the provider refused the code: {0}")]
    Exchange(String),
    #[error("the ID token's nonce does not match the login")]
    NonceMismatch,
    #[error(transparent)]
    IdToken(#[from] IdTokenError),
}

impl OidcVerifier {
    /// The URL to send the user to: the provider's authorization endpoint with the
    /// client, the redirect URI, `state`, `nonce` and the S256 challenge.
    pub async fn authorization_url(
        &self,
        provider: &ProviderConfig,
        redirect_uri: &str,
        pending: &PendingLogin,
        now: u64,
    ) -> Result<String, CodeFlowError> {
        let endpoint = self
            .code_endpoints(provider, now)
            .await?
            .authorization
            .ok_or_else(|| CodeFlowError::Metadata("no authorization_endpoint".into()))?;
        let mut url = self
            .check_endpoint(&endpoint)
            .map_err(CodeFlowError::Metadata)?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &provider.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid email")
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &pending.code_challenge())
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Exchanges an authorization code at the provider's token endpoint (a public client:
    /// PKCE, no secret) and verifies the ID token it returns, including its nonce.
    pub async fn exchange_code(
        &self,
        provider: &ProviderConfig,
        redirect_uri: &str,
        pending: &PendingLogin,
        code: &str,
        now: u64,
    ) -> Result<crate::IdClaims, CodeFlowError> {
        let endpoint = self
            .code_endpoints(provider, now)
            .await?
            .token
            .ok_or_else(|| CodeFlowError::Metadata("no token_endpoint".into()))?;
        let url = self
            .check_endpoint(&endpoint)
            .map_err(CodeFlowError::Metadata)?;
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("client_id", &provider.client_id)
            .append_pair("code_verifier", &pending.code_verifier)
            .finish();
        let response = self
            .http()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| CodeFlowError::Exchange(e.without_url().to_string()))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|_| CodeFlowError::Exchange(format!("{status}, not JSON")))?;
        if !status.is_success() {
            let error = body
                .get("error")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("unknown");
            return Err(CodeFlowError::Exchange(format!("{status} {error}")));
        }
        let id_token = body
            .get("id_token")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| CodeFlowError::Exchange("no id_token in the answer".into()))?;
        let claims = self.verify(provider, id_token, now).await?;
        if claims.nonce.as_deref() != Some(pending.nonce.as_str()) {
            return Err(CodeFlowError::NonceMismatch);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn challenge_is_s256_of_the_verifier() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let pending = PendingLogin::new(&mut rng);
        // RFC 7636 appendix B's example.
        let rfc = PendingLogin {
            code_verifier: Zeroizing::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into()),
            ..pending.clone()
        };
        assert_eq!(
            rfc.code_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(pending.state.len(), 43);
        assert_ne!(pending.state, pending.nonce);
        assert!(!format!("{pending:?}").contains(pending.code_verifier.as_str()));
    }
}
