//! A typed async client for Keystead's public HTTP API (API.md, "Endpoints").
//!
//! It does HTTP and JSON only: sealing PINs and checking the attestation are the
//! caller's ([`crate::attest`], [`crate::ops`]), so that nothing here ever sees a PIN.

use std::fmt;
use std::time::Duration;

use keystead_envelope::Sealed;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A session's tokens as `POST /v1/auth/id-token` and `/v1/auth/refresh` return them.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionTokens {
    #[serde(deserialize_with = "de_zeroizing")]
    pub access_token: Zeroizing<String>,
    #[serde(deserialize_with = "de_zeroizing")]
    pub refresh_token: Zeroizing<String>,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: User,
    /// `pin_required`, `register_required` or `complete`.
    pub status: String,
}

impl fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTokens")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("user", &self.user)
            .field("status", &self.status)
            .finish()
    }
}

fn de_zeroizing<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Zeroizing<String>, D::Error> {
    String::deserialize(d).map(Zeroizing::new)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
}

/// `GET /v1/me`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    pub user: User,
    pub status: String,
    #[serde(default)]
    pub wallet_id: Option<String>,
}

/// `GET /v1/app`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    pub app_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub networks: Vec<Value>,
    #[serde(default)]
    pub login_providers: Vec<Value>,
}

/// `GET /v1/enclave/attestation`, unverified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationResponse {
    pub format: String,
    pub document: String,
    pub public_key: String,
    pub suite: String,
}

/// An account: `{"id", "network", "family", "address", "path"}`, plus whatever optional
/// fields the server adds (kept, so `--json` prints the server's objects unchanged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub network: String,
    pub family: String,
    pub address: String,
    pub path: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /v1/wallet`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWallet {
    pub wallet_id: String,
    pub accounts: Vec<Account>,
    pub recovery_kit: Sealed,
}

/// `POST /v1/wallet/export`.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportedWallet {
    pub mnemonic: Sealed,
}

/// `{"signature"}` of the signing endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureResponse {
    pub signature: String,
}

/// `POST /v1/tx/prepare`: the intent exactly as the server wrote it (it goes back to
/// `tx/send` unchanged) and the server's digest (informational: the client computes its
/// own).
#[derive(Debug, Clone, Deserialize)]
pub struct PreparedTx {
    pub intent: Value,
    #[serde(default)]
    pub digest: Option<String>,
}

/// `POST /v1/tx/send` (202) and `GET /v1/tx/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxStatus {
    pub id: String,
    pub hash: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_number: Option<Value>,
}

/// `POST /v1/tx/sign`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedTx {
    pub signed_transaction: String,
    pub hash: String,
}

/// How `POST /v1/sign/message` reads `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageEncoding {
    Utf8,
    Hex,
}

/// A client of one Keystead server for one app, optionally logged in.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    app_key: Zeroizing<String>,
    access_token: Option<Zeroizing<String>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("logged_in", &self.access_token.is_some())
            .finish()
    }
}

impl Client {
    /// A client for the server at `server_url` (`https://wallet.example` or
    /// `http://127.0.0.1:8080`), calling as the app whose key is `app_key`.
    pub fn new(server_url: &str, app_key: &str) -> Result<Self> {
        let base = server_url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ClientError::InvalidInput(
                "the server URL must start with https:// or http://".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("keystead-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base,
            app_key: Zeroizing::new(app_key.to_string()),
            access_token: None,
        })
    }

    /// The server URL, without a trailing slash.
    pub fn server_url(&self) -> &str {
        &self.base
    }

    /// Uses `token` as `Authorization: Bearer` from now on.
    pub fn set_access_token(&mut self, token: Zeroizing<String>) {
        self.access_token = Some(token);
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-App-Key", self.app_key.as_str());
        if let Some(token) = &self.access_token {
            req = req.bearer_auth(token.as_str());
        }
        req
    }

    async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let response = req.send().await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(body) if body.get("error").is_some_and(Value::is_object) => {
                Err(ClientError::Api { status, body })
            }
            _ => Err(ClientError::UnexpectedStatus { status }),
        }
    }

    async fn json<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        let response = self.send(req).await?;
        let bytes = response.bytes().await?;
        // serde's message names the field, never quotes a long value back.
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn empty(&self, req: RequestBuilder) -> Result<()> {
        self.send(req).await.map(drop)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.json(self.request(Method::GET, path)).await
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T> {
        self.json(self.request(Method::POST, path).json(body)).await
    }

    /// `POST /v1/auth/id-token`.
    pub async fn login_id_token(&self, provider: &str, id_token: &str) -> Result<SessionTokens> {
        self.post(
            "/v1/auth/id-token",
            &json!({"provider": provider, "idToken": id_token}),
        )
        .await
    }

    /// `POST /v1/auth/refresh`: the refresh token rotates, so keep the new one.
    pub async fn refresh(&self, refresh_token: &str) -> Result<SessionTokens> {
        self.post("/v1/auth/refresh", &json!({"refreshToken": refresh_token}))
            .await
    }

    /// `POST /v1/auth/logout`.
    pub async fn logout(&self) -> Result<()> {
        self.empty(self.request(Method::POST, "/v1/auth/logout"))
            .await
    }

    /// `GET /v1/me`.
    pub async fn me(&self) -> Result<Me> {
        self.get("/v1/me").await
    }

    /// `GET /v1/app`.
    pub async fn app(&self) -> Result<AppInfo> {
        self.get("/v1/app").await
    }

    /// `GET /v1/enclave/attestation`, unverified: see [`crate::attest::verify`].
    pub async fn attestation(&self) -> Result<AttestationResponse> {
        self.get("/v1/enclave/attestation").await
    }

    /// `POST /v1/wallet`.
    pub async fn create_wallet(&self, pin: &Sealed, client_key: &str) -> Result<CreatedWallet> {
        self.post("/v1/wallet", &json!({"pin": pin, "clientKey": client_key}))
            .await
    }

    /// `GET /v1/accounts`.
    pub async fn accounts(&self) -> Result<Vec<Account>> {
        #[derive(Deserialize)]
        struct Accounts {
            accounts: Vec<Account>,
        }
        Ok(self.get::<Accounts>("/v1/accounts").await?.accounts)
    }

    /// `GET /v1/accounts/{id}/balance`, as the server wrote it.
    pub async fn balance(&self, account_id: &str) -> Result<Value> {
        self.get(&format!(
            "/v1/accounts/{}/balance",
            path_segment(account_id)?
        ))
        .await
    }

    /// `POST /v1/sign/message`.
    pub async fn sign_message(
        &self,
        account_id: &str,
        message: &str,
        encoding: MessageEncoding,
        pin: &Sealed,
    ) -> Result<SignatureResponse> {
        self.post(
            "/v1/sign/message",
            &json!({"accountId": account_id, "message": message, "encoding": encoding, "pin": pin}),
        )
        .await
    }

    /// `POST /v1/sign/typed-data`.
    pub async fn sign_typed_data(
        &self,
        account_id: &str,
        typed_data: &Value,
        pin: &Sealed,
    ) -> Result<SignatureResponse> {
        self.post(
            "/v1/sign/typed-data",
            &json!({"accountId": account_id, "typedData": typed_data, "pin": pin}),
        )
        .await
    }

    /// `POST /v1/tx/prepare`.
    pub async fn tx_prepare(
        &self,
        account_id: &str,
        to: &str,
        value: &str,
        data: Option<&str>,
    ) -> Result<PreparedTx> {
        let mut body = json!({"accountId": account_id, "to": to, "value": value});
        if let Some(data) = data {
            body["data"] = Value::from(data);
        }
        self.post("/v1/tx/prepare", &body).await
    }

    /// `POST /v1/tx/sign`: signs without broadcasting.
    pub async fn tx_sign(&self, intent: &Value, pin: &Sealed) -> Result<SignedTx> {
        self.post("/v1/tx/sign", &json!({"intent": intent, "pin": pin}))
            .await
    }

    /// `POST /v1/tx/send`; with an `Idempotency-Key` a retry returns the first result
    /// and never broadcasts twice.
    pub async fn tx_send(
        &self,
        intent: &Value,
        pin: &Sealed,
        idempotency_key: Option<&str>,
    ) -> Result<TxStatus> {
        let mut req = self
            .request(Method::POST, "/v1/tx/send")
            .json(&json!({"intent": intent, "pin": pin}));
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        self.json(req).await
    }

    /// `GET /v1/tx/{id}`.
    pub async fn tx_get(&self, id: &str) -> Result<TxStatus> {
        self.get(&format!("/v1/tx/{}", path_segment(id)?)).await
    }

    /// `POST /v1/wallet/export`.
    pub async fn export(&self, pin: &Sealed, client_key: &str) -> Result<ExportedWallet> {
        self.post(
            "/v1/wallet/export",
            &json!({"pin": pin, "clientKey": client_key}),
        )
        .await
    }

    /// `POST /v1/wallet/pin` (204).
    pub async fn change_pin(&self, pin: &Sealed, new_pin: &Sealed) -> Result<()> {
        self.empty(
            self.request(Method::POST, "/v1/wallet/pin")
                .json(&json!({"pin": pin, "newPin": new_pin})),
        )
        .await
    }

    /// `POST /v1/wallet/recover` (204).
    pub async fn recover(&self, recovery: &Sealed, new_pin: &Sealed) -> Result<()> {
        self.empty(
            self.request(Method::POST, "/v1/wallet/recover")
                .json(&json!({"recovery": recovery, "newPin": new_pin})),
        )
        .await
    }
}

/// Refuses ids that would change the path (`/`, `?`, `#`, `%`, `..`): ids are opaque
/// strings the server returned, never paths.
fn path_segment(id: &str) -> Result<&str> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':'));
    if ok {
        Ok(id)
    } else {
        Err(ClientError::InvalidInput(format!("not a valid id: {id:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_the_path() {
        assert!(path_segment("acc_01HXYZ").is_ok());
        for bad in ["", "..", "a/b", "a?b", "a#b", "a%2f", "a b"] {
            assert!(path_segment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_urls_are_checked() {
        assert!(Client::new("ftp://x", "k").is_err());
        let c = Client::new("http://127.0.0.1:8080/", "k").unwrap();
        assert_eq!(c.server_url(), "http://127.0.0.1:8080");
        assert!(!format!("{c:?}").contains("\"k\""));
    }

    #[test]
    fn accounts_keep_extra_fields() {
        let json = json!({"id": "a", "network": "local", "family": "evm", "address": "0x00", "path": "m/44'/60'/0'/0/0", "label": "main"});
        let account: Account = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&account).unwrap(), json);
    }

    #[test]
    fn session_tokens_debug_redacts() {
        let tokens: SessionTokens = serde_json::from_value(json!({
            "accessToken": "secret-access", "refreshToken": "secret-refresh", "expiresIn": 900,
            "user": {"id": "usr_1", "email": null}, "status": "complete"
        }))
        .unwrap();
        let debug = format!("{tokens:?}");
        assert!(!debug.contains("secret"));
    }
}
