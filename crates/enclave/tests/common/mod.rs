//! Shared set-up for the enclave's process tests: a real `keystead-enclave`, the server's
//! client, and a client that seals PINs the way the widget does.
#![allow(dead_code)]

use std::time::Duration;

use keystead_enclave_client::{ClientConfig, EnclaveClient};
use keystead_enclave_proto::*;
use keystead_envelope::{HpkeKeyPair, Operation, Sealed, TxIntent};
use keystead_testkit::{EnclaveProcess, TestClient, fetch_attestation};

pub const PIN: &str = "480927";
pub const APP: &str = "app_test";

pub struct Harness {
    pub enclave: EnclaveProcess,
    pub client: EnclaveClient,
    pub user: TestClient,
    pub binding: WalletBinding,
    pub user_id: String,
    _dir: tempfile::TempDir,
}

pub struct Created {
    pub wallet: SealedWallet,
    pub accounts: Vec<DerivedAccount>,
    pub recovery_code: String,
}

pub fn client_config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        max_idle: 4,
        max_in_flight: 128,
    }
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    pub async fn start_with(with_dr: bool) -> Self {
        Self::start_with_args(with_dr, &[]).await
    }

    /// An enclave started with further command-line arguments.
    pub async fn start_with_args(with_dr: bool, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let enclave = EnclaveProcess::start_with_args(dir.path(), with_dr, args);
        let client = EnclaveClient::new(&enclave.socket, client_config());
        let attestation = fetch_attestation(&client).await;
        let user = TestClient::attested(&attestation, APP);
        Self {
            enclave,
            client,
            user,
            binding: WalletBinding {
                app_id: APP.into(),
                wallet_id: "wal_1".into(),
            },
            user_id: "usr_1".into(),
            _dir: dir,
        }
    }

    pub async fn call(&self, request: Request) -> Reply {
        self.client.call(request).await.expect("enclave reachable")
    }

    pub async fn create_wallet(&mut self, pin: &str) -> Created {
        let (client_kp, client_key) = self.user.one_time_key();
        let op = Operation::CreateWallet {
            app_id: APP.into(),
            user_id: self.user_id.clone(),
            client_key: client_key.clone(),
        };
        let envelope = self.user.envelope(pin, &op);
        let reply = self
            .call(Request::CreateWallet(CreateWallet {
                binding: self.binding.clone(),
                user_id: self.user_id.clone(),
                client_key,
                pin: envelope,
            }))
            .await;
        let Ok(Response::WalletCreated(created)) = reply.result else {
            panic!("create failed: {:?}", reply.result)
        };
        let code =
            keystead_envelope::open_recovery_code(&client_kp, &created.recovery_kit).unwrap();
        Created {
            wallet: created.wallet,
            accounts: created.accounts,
            recovery_code: code.to_string(),
        }
    }

    pub fn context(&self, wallet: &SealedWallet) -> WalletContext {
        WalletContext {
            binding: self.binding.clone(),
            wallet: wallet.clone(),
        }
    }

    pub fn message_op(&self, message: &[u8]) -> Operation {
        Operation::SignMessage {
            app_id: APP.into(),
            account_id: "acc_0".into(),
            message: message.to_vec(),
        }
    }

    pub fn sign_request(
        &self,
        wallet: &SealedWallet,
        pin: Sealed,
        payload: SignPayload,
    ) -> Request {
        Request::Sign(SignRequest {
            wallet: self.context(wallet),
            account_id: "acc_0".into(),
            account_index: 0,
            pin,
            payload,
        })
    }

    /// A request to sign `message`, with a fresh envelope for it.
    pub fn message_request(&mut self, wallet: &SealedWallet, pin: &str, message: &[u8]) -> Request {
        let envelope = self.user.envelope(pin, &self.message_op(message));
        self.sign_request(wallet, envelope, SignPayload::Message(message.to_vec()))
    }

    pub async fn sign_message(
        &mut self,
        wallet: &SealedWallet,
        pin: &str,
        message: &[u8],
    ) -> Reply {
        let request = self.message_request(wallet, pin, message);
        self.call(request).await
    }

    pub async fn export(&mut self, wallet: &SealedWallet, pin: &str) -> (Reply, HpkeKeyPair) {
        let (kp, client_key) = self.user.one_time_key();
        let op = Operation::Export {
            app_id: APP.into(),
            wallet_id: self.binding.wallet_id.clone(),
            client_key: client_key.clone(),
        };
        let envelope = self.user.envelope(pin, &op);
        let reply = self
            .call(Request::Export(ExportRequest {
                wallet: self.context(wallet),
                client_key,
                pin: envelope,
            }))
            .await;
        (reply, kp)
    }

    pub fn new_pin_envelope(&mut self, new_pin: &str) -> Sealed {
        let op = Operation::NewPin {
            app_id: APP.into(),
            wallet_id: self.binding.wallet_id.clone(),
        };
        self.user.envelope(new_pin, &op)
    }
}

pub fn intent(to: &str) -> TxIntent {
    TxIntent {
        chain_id: 31337,
        to: to.into(),
        value: "1000000000000000".into(),
        data: "0x".into(),
        gas_limit: "25200".into(),
        max_fee_per_gas: "2000000000".into(),
        max_priority_fee_per_gas: "1000000000".into(),
    }
}

pub fn signature_of(reply: &Reply) -> Signed {
    match &reply.result {
        Ok(Response::Signed(signed)) => signed.clone(),
        other => panic!("expected a signature, got {other:?}"),
    }
}
