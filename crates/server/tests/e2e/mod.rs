//! End-to-end harness: anvil, an OpenID provider, and the real `keystead` binary on
//! SQLite or on PostgreSQL; and a user who logs in and seals PINs as a client does.

#![allow(dead_code)] // each test file uses a different part

use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use base64::Engine;
use keystead_enclave_proto::Attestation;
use keystead_envelope::{HpkeKeyPair, Operation, Sealed, TxIntent};
use keystead_testkit::TestClient;
use keystead_testkit::anvil::Anvil;
use keystead_testkit::oidc_provider::{ClientSpec, OidcProvider};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{keystead_json, wait_for};

pub const CLIENT_ID: &str = "keystead-e2e";
pub const ORIGIN: &str = "http://localhost:5173";

pub fn now() -> u64 {
    keystead_testkit::now_unix()
}

/// Which database the server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A fresh PostgreSQL database in the cluster `scripts/test` starts; its URL.
pub async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    const VAR: &str = "KEYSTEAD_TEST_POSTGRES_URL";
    let admin_url = std::env::var(VAR).unwrap_or_else(|_| {
        panic!(
            "{VAR} is not set: run `scripts/test`, or `source scripts/lib/postgres.sh && \
             start_test_postgres` first"
        )
    });
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "ks_e2e_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
        now()
    );
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("the admin URL names a database");
    format!("{base}/{name}")
}

/// Everything one test runs against.
pub struct Env {
    pub anvil: Anvil,
    /// A real OpenID provider (panva's oidc-provider), logins through its code flow.
    pub issuer: OidcProvider,
    pub server: ServerProcess,
    pub proxy: Option<RpcProxy>,
    pub app_id: String,
    pub app_key: String,
    pub http: reqwest::Client,
    /// The test ERC-20 listed on network `local`, when started with one.
    pub token: Option<Address>,
    db_args: Vec<String>,
}

/// Supply of the test token, all held by anvil's dev account 0 at first.
pub const TOKEN_SUPPLY: u128 = 1_000_000_000_000;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `keystead serve` on a fixed port and data directory, restartable.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    args: Vec<String>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    fn spawn(dir: &std::path::Path, base: &str, args: &[String]) -> std::process::Child {
        let listen = base.trim_start_matches("http://");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_keystead"))
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(dir)
            .args(args)
            .env("KEYSTEAD_LOG", "warn")
            .env("KEYSTEAD_CHAIN_POLL_MS", "200")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    pub fn start(dir: tempfile::TempDir, args: Vec<String>) -> ServerProcess {
        Self::start_on(dir, free_port(), args)
    }

    pub fn start_on(dir: tempfile::TempDir, port: u16, args: Vec<String>) -> ServerProcess {
        let base = format!("http://127.0.0.1:{port}");
        let child = Self::spawn(dir.path(), &base, &args);
        ServerProcess {
            child,
            base,
            dir,
            args,
        }
    }

    /// Kills the server outright (SIGKILL: no shutdown code runs) and starts it again.
    pub async fn crash_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.child = Self::spawn(self.dir.path(), &self.base, &self.args);
        wait_for(&format!("{}/readyz", self.base), 200).await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Env {
    pub async fn start(db: Db) -> Env {
        Self::start_with(db, false).await
    }

    /// With `proxy`, the server reaches anvil through an [`RpcProxy`].
    pub async fn start_with(db: Db, proxy: bool) -> Env {
        Self::start_opts(db, proxy, false).await
    }

    /// With the test ERC-20 deployed and listed (as `TST`, 6 decimals) on `local`.
    pub async fn start_with_token(db: Db) -> Env {
        Self::start_opts(db, false, true).await
    }

    async fn start_opts(db: Db, proxy: bool, token: bool) -> Env {
        let anvil = Anvil::start();
        let token = token.then(|| anvil.deploy_test_token(0, U256::from(TOKEN_SUPPLY)));
        let proxy = if proxy {
            Some(RpcProxy::start(anvil.url()).await)
        } else {
            None
        };
        let issuer = OidcProvider::start(&[ClientSpec::public(CLIENT_ID)]);
        let dir = tempfile::tempdir().unwrap();
        let mut db_args = Vec::new();
        if db == Db::Postgres {
            db_args = vec![
                "--database-url".to_string(),
                fresh_postgres_database().await,
            ];
        }
        let oidc = format!("test={}@{CLIENT_ID}", issuer.issuer());
        let mut args: Vec<&str> = vec![
            "app", "create", "--name", "e2e", "--origin", ORIGIN, "--oidc", &oidc, "--json",
        ];
        args.extend(db_args.iter().map(String::as_str));
        let created = keystead_json(dir.path(), &args);
        let rpc = proxy.as_ref().map_or(anvil.url(), |p| p.url.as_str());
        let mut serve_args = match token {
            None => vec!["--network".to_string(), format!("local=31337@{rpc}")],
            Some(token) => {
                let config = dir.path().join("keystead.toml");
                std::fs::write(
                    &config,
                    format!(
                        "[[networks]]\nid = \"local\"\nchain_id = 31337\nrpc_urls = [\"{rpc}\"]\n\
                         tokens = [{{ contract = \"{token}\", symbol = \"TST\", decimals = 6 }}]\n"
                    ),
                )
                .unwrap();
                vec!["--config".to_string(), config.display().to_string()]
            }
        };
        serve_args.extend(db_args.iter().cloned());
        let server = ServerProcess::start(dir, serve_args);
        wait_for(&format!("{}/readyz", server.base), 200).await;
        Env {
            anvil,
            issuer,
            server,
            proxy,
            app_id: created["appId"].as_str().unwrap().to_string(),
            app_key: created["appKey"].as_str().unwrap().to_string(),
            http: reqwest::Client::new(),
            token,
            db_args,
        }
    }

    /// A second app on the same server.
    pub fn create_app(&self, name: &str) -> (String, String) {
        let oidc = format!("test={}@{CLIENT_ID}", self.issuer.issuer());
        let mut args: Vec<&str> = vec![
            "app", "create", "--name", name, "--origin", ORIGIN, "--oidc", &oidc, "--json",
        ];
        args.extend(self.db_args.iter().map(String::as_str));
        let created = keystead_json(self.server.dir.path(), &args);
        (
            created["appId"].as_str().unwrap().to_string(),
            created["appKey"].as_str().unwrap().to_string(),
        )
    }

    /// An ID token for `sub`, from the provider's authorization-code flow.
    pub async fn id_token(&self, sub: &str) -> String {
        self.issuer.id_token(&self.issuer.clients()[0], sub).await
    }

    /// Logs `sub` in to the main app.
    pub async fn user(&self, sub: &str) -> User {
        self.user_of(&self.app_id, &self.app_key, sub).await
    }

    pub async fn user_of(&self, app_id: &str, app_key: &str, sub: &str) -> User {
        let api = Api {
            base: self.server.base.clone(),
            key: app_key.to_string(),
            token: None,
            http: self.http.clone(),
        };
        let (status, session) = api
            .post(
                "/v1/auth/id-token",
                json!({"provider": "test", "idToken": self.id_token(sub).await}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login: {session}");
        let api = Api {
            token: Some(session["accessToken"].as_str().unwrap().to_string()),
            ..api
        };
        let (status, me) = api.get("/v1/me").await;
        assert_eq!(status, StatusCode::OK, "{me}");
        let client = attested_client(&api, app_id).await;
        User {
            api,
            user_id: me["user"]["id"].as_str().unwrap().to_string(),
            app_id: app_id.to_string(),
            client,
        }
    }

    pub fn balance(&self, address: &str) -> U256 {
        let v = self
            .anvil
            .rpc("eth_getBalance", json!([address, "latest"]))
            .unwrap();
        v.as_str().unwrap().parse().unwrap()
    }

    pub fn nonce(&self, address: &str) -> u64 {
        let v = self
            .anvil
            .rpc("eth_getTransactionCount", json!([address, "latest"]))
            .unwrap();
        u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    }

    pub fn fund(&self, address: &str, wei: u128) {
        self.anvil
            .fund(address.parse::<Address>().unwrap(), U256::from(wei));
    }

    /// The supervised enclave process (the server's child).
    pub fn enclave_pid(&self) -> Option<i32> {
        let server_pid = self.server.child.id();
        let tasks = std::fs::read_dir(format!("/proc/{server_pid}/task")).ok()?;
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for pid in children.split_whitespace() {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim().starts_with("keystead-encl") {
                    return pid.parse().ok();
                }
            }
        }
        None
    }
}

/// Requests to the API as one app (and, once logged in, one user).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub key: String,
    pub token: Option<String>,
    pub http: reqwest::Client,
}

impl Api {
    fn with_auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let req = req.header("x-app-key", &self.key);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn answer(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        Self::answer(self.with_auth(self.http.get(format!("{}{path}", self.base)))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        Self::answer(self.with_auth(self.http.post(format!("{}{path}", self.base)).json(&body)))
            .await
    }

    pub async fn post_with_key(&self, path: &str, body: Value, key: &str) -> (StatusCode, Value) {
        Self::answer(
            self.with_auth(self.http.post(format!("{}{path}", self.base)).json(&body))
                .header("idempotency-key", key),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        Self::answer(
            self.with_auth(self.http.post(format!("{}{path}", self.base)))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }
}

pub async fn attested_client(api: &Api, app_id: &str) -> TestClient {
    let (status, att) = api.get("/v1/enclave/attestation").await;
    assert_eq!(status, StatusCode::OK, "{att}");
    let b64 = base64::engine::general_purpose::STANDARD;
    let attestation = Attestation {
        format: att["format"].as_str().unwrap().to_string(),
        document: b64.decode(att["document"].as_str().unwrap()).unwrap(),
        public_key: b64
            .decode(att["publicKey"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    };
    TestClient::attested(&attestation, app_id)
}

pub fn sealed(s: &Sealed) -> Value {
    serde_json::to_value(s).unwrap()
}

/// A logged-in user and their client-side sealing.
pub struct User {
    pub api: Api,
    pub user_id: String,
    pub app_id: String,
    pub client: TestClient,
}

/// A created wallet, as the user saw it.
pub struct Wallet {
    pub wallet_id: String,
    pub account_id: String,
    pub address: String,
    pub recovery_code: String,
}

impl User {
    /// Fetches the attestation again (the enclave's key changes when it restarts).
    pub async fn reattest(&mut self) {
        self.client = attested_client(&self.api, &self.app_id).await;
    }

    pub async fn create_wallet_raw(&mut self, pin: &str) -> (StatusCode, Value, HpkeKeyPair) {
        let (kp, client_key) = self.client.one_time_key();
        let op = Operation::CreateWallet {
            app_id: self.app_id.clone(),
            user_id: self.user_id.clone(),
            client_key: client_key.clone(),
        };
        let pin = self.client.envelope(pin, &op);
        let (status, body) = self
            .api
            .post(
                "/v1/wallet",
                json!({"pin": sealed(&pin), "clientKey": client_key}),
            )
            .await;
        (status, body, kp)
    }

    pub async fn create_wallet(&mut self, pin: &str) -> Wallet {
        let (status, body, kp) = self.create_wallet_raw(pin).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let kit: Sealed = serde_json::from_value(body["recoveryKit"].clone()).unwrap();
        let code = keystead_envelope::open_recovery_code(&kp, &kit).unwrap();
        let account = &body["accounts"][0];
        Wallet {
            wallet_id: body["walletId"].as_str().unwrap().to_string(),
            account_id: account["id"].as_str().unwrap().to_string(),
            address: account["address"].as_str().unwrap().to_string(),
            recovery_code: code.to_string(),
        }
    }

    /// Exports the wallet's mnemonic with `pin` (asserting success) and opens it with the
    /// one-time client key, as the widget would.
    pub async fn export_mnemonic(
        &mut self,
        wallet_id: &str,
        pin: &str,
    ) -> keystead_envelope::Zeroizing<String> {
        let (kp, client_key) = self.client.one_time_key();
        let op = Operation::Export {
            app_id: self.app_id.clone(),
            wallet_id: wallet_id.to_string(),
            client_key: client_key.clone(),
        };
        let pin = self.client.envelope(pin, &op);
        let (status, body) = self
            .api
            .post(
                "/v1/wallet/export",
                json!({"pin": sealed(&pin), "clientKey": client_key}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mnemonic: Sealed = serde_json::from_value(body["mnemonic"].clone()).unwrap();
        keystead_envelope::open_mnemonic(&kp, &mnemonic).unwrap()
    }

    pub async fn sign_message(
        &mut self,
        account_id: &str,
        message: &str,
        pin: &str,
    ) -> (StatusCode, Value) {
        let op = Operation::SignMessage {
            app_id: self.app_id.clone(),
            account_id: account_id.to_string(),
            message: message.as_bytes().to_vec(),
        };
        let pin = self.client.envelope(pin, &op);
        self.api
            .post(
                "/v1/sign/message",
                json!({"accountId": account_id, "message": message, "pin": sealed(&pin)}),
            )
            .await
    }

    pub async fn sign_typed_data(
        &mut self,
        account_id: &str,
        typed: &Value,
        pin: &str,
    ) -> (StatusCode, Value) {
        let parsed: alloy_dyn_abi::TypedData = serde_json::from_value(typed.clone()).unwrap();
        let hash = parsed.eip712_signing_hash().unwrap();
        let op = Operation::SignTypedData {
            app_id: self.app_id.clone(),
            account_id: account_id.to_string(),
            hash: hash.0,
        };
        let pin = self.client.envelope(pin, &op);
        self.api
            .post(
                "/v1/sign/typed-data",
                json!({"accountId": account_id, "typedData": typed, "pin": sealed(&pin)}),
            )
            .await
    }

    pub async fn prepare(&self, account_id: &str, to: &str, value: u128) -> Value {
        let (status, prepared) = self
            .api
            .post(
                "/v1/tx/prepare",
                json!({"accountId": account_id, "to": to, "value": value.to_string()}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{prepared}");
        prepared
    }

    /// The body of `tx/send` for a prepared intent, with a fresh envelope.
    pub fn send_body(&mut self, account_id: &str, prepared: &Value, pin: &str) -> Value {
        let intent: TxIntent = serde_json::from_value(prepared["intent"].clone()).unwrap();
        let op = Operation::SignTransaction {
            app_id: self.app_id.clone(),
            account_id: account_id.to_string(),
            intent,
        };
        assert_eq!(
            op.digest_hex(),
            prepared["digest"].as_str().unwrap(),
            "prepare's digest"
        );
        let pin = self.client.envelope(pin, &op);
        json!({"intent": prepared["intent"], "pin": sealed(&pin)})
    }

    pub async fn send(
        &mut self,
        account_id: &str,
        to: &str,
        value: u128,
        pin: &str,
    ) -> (StatusCode, Value) {
        let prepared = self.prepare(account_id, to, value).await;
        let body = self.send_body(account_id, &prepared, pin);
        self.api.post("/v1/tx/send", body).await
    }

    /// Polls `GET /v1/tx/{id}` until the transaction is final.
    pub async fn wait_final(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, tx) = self.api.get(&format!("/v1/tx/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{tx}");
            if tx["status"] != "pending" {
                return tx;
            }
            assert!(Instant::now() < deadline, "transaction {id} still pending");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The EIP-712 example of the specification (Mail).
pub fn mail_typed_data() -> Value {
    json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"}
            ],
            "Person": [
                {"name": "name", "type": "string"},
                {"name": "wallet", "type": "address"}
            ],
            "Mail": [
                {"name": "from", "type": "Person"},
                {"name": "to", "type": "Person"},
                {"name": "contents", "type": "string"}
            ]
        },
        "primaryType": "Mail",
        "domain": {
            "name": "Ether Mail",
            "version": "1",
            "chainId": 31337,
            "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
        },
        "message": {
            "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
            "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
            "contents": "Hello, Bob!"
        }
    })
}

/// A JSON-RPC relay in front of anvil that can drop `eth_sendRawTransaction`, as a
/// network failure between signing and broadcasting would: the one fault the real node
/// cannot be asked to produce.
pub struct RpcProxy {
    pub url: String,
    drop_sends: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RpcProxy {
    pub async fn start(upstream: &str) -> RpcProxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        let drop_sends = std::sync::Arc::new(AtomicBool::new(false));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (flag, upstream, http) = (
            drop_sends.clone(),
            upstream.to_string(),
            reqwest::Client::new(),
        );
        let relay = move |body: axum::body::Bytes| {
            let (flag, upstream, http) = (flag.clone(), upstream.clone(), http.clone());
            async move {
                let text = String::from_utf8_lossy(&body);
                if flag.load(Ordering::SeqCst) && text.contains("eth_sendRawTransaction") {
                    return (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new());
                }
                let answer = http
                    .post(&upstream)
                    .header("content-type", "application/json")
                    .body(body.to_vec())
                    .send()
                    .await
                    .unwrap();
                (axum::http::StatusCode::OK, answer.text().await.unwrap())
            }
        };
        let app = axum::Router::new().route("/", axum::routing::post(relay));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        RpcProxy {
            url,
            drop_sends,
            task,
        }
    }

    pub fn drop_sends(&self, on: bool) {
        self.drop_sends
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }
}
