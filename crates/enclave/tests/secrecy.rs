//! The server never holds a secret: after a full round of wallet work relayed through a
//! process standing in for the server, its memory holds no mnemonic, seed, private key,
//! PIN or recovery code; nor do the records it stores.

mod common;

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use alloy_primitives::Address;
use alloy_signer_local::{MnemonicBuilder, coins_bip39::English};
use common::{APP, PIN, client_config};
use keystead_enclave_proto::*;
use keystead_envelope::Operation;
use keystead_testkit::memory::{find, read_process_memory};
use keystead_testkit::{EnclaveProcess, TestClient, workspace_bin};

const NEW_PIN: &str = "615283";

/// The server stand-in: request frames in, reply frames out.
struct StandIn {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    next_id: u64,
}

impl StandIn {
    fn start(socket: &std::path::Path) -> Self {
        let mut child = Command::new(workspace_bin("keystead-test-standin"))
            .arg(socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        Self {
            child,
            stdin,
            stdout,
            next_id: 1,
        }
    }

    fn call(&mut self, request: Request) -> Reply {
        self.next_id += 1;
        self.stdin
            .write_all(
                &encode_request(&RequestFrame {
                    id: self.next_id,
                    request,
                })
                .unwrap(),
            )
            .unwrap();
        self.stdin.flush().unwrap();
        let mut prefix = [0u8; LEN_PREFIX];
        self.stdout.read_exact(&mut prefix).unwrap();
        let mut body = vec![0u8; frame_len(prefix).unwrap()];
        self.stdout.read_exact(&mut body).unwrap();
        let frame = decode_response(&body).unwrap();
        assert_eq!(frame.id, self.next_id);
        frame.reply
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Secrets {
    needles: Vec<(&'static str, Vec<u8>)>,
}

impl Secrets {
    fn assert_absent(&self, what: &str, haystack: &[u8]) {
        for (name, needle) in &self.needles {
            assert!(find(haystack, needle).is_none(), "{name} found in {what}");
        }
    }
}

#[test]
fn the_server_process_and_its_records_never_hold_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = EnclaveProcess::start(dir.path());
    let _ = client_config();
    let mut server = StandIn::start(&enclave.socket);

    let Ok(Response::Attestation(attestation)) =
        server.call(Request::Attestation { nonce: None }).result
    else {
        panic!("no attestation")
    };
    let mut user = TestClient::attested(&attestation, APP);
    let binding = WalletBinding {
        app_id: APP.into(),
        wallet_id: "wal_1".into(),
    };

    // Create.
    let (client_kp, client_key) = user.one_time_key();
    let op = Operation::CreateWallet {
        app_id: APP.into(),
        user_id: "usr_1".into(),
        client_key: client_key.clone(),
    };
    let pin = user.envelope(PIN, &op);
    let reply = server.call(Request::CreateWallet(CreateWallet {
        binding: binding.clone(),
        user_id: "usr_1".into(),
        client_key,
        pin,
    }));
    let Ok(Response::WalletCreated(created)) = reply.result else {
        panic!("{reply:?}")
    };
    let recovery_code =
        keystead_envelope::open_recovery_code(&client_kp, &created.recovery_kit).unwrap();
    let mut wallet = created.wallet.clone();
    let context = |wallet: &SealedWallet| WalletContext {
        binding: binding.clone(),
        wallet: wallet.clone(),
    };

    // Sign a message and a transaction.
    let op = Operation::SignMessage {
        app_id: APP.into(),
        account_id: "acc_0".into(),
        message: b"hi".to_vec(),
    };
    let pin = user.envelope(PIN, &op);
    let reply = server.call(Request::Sign(SignRequest {
        wallet: context(&wallet),
        account_id: "acc_0".into(),
        account_index: 0,
        pin,
        payload: SignPayload::Message(b"hi".to_vec()),
    }));
    let Ok(Response::Signed(signed)) = reply.result else {
        panic!("{reply:?}")
    };

    // A wrong PIN, then a PIN change.
    let pin = user.envelope("000001", &op);
    let reply = server.call(Request::Sign(SignRequest {
        wallet: context(&wallet),
        account_id: "acc_0".into(),
        account_index: 0,
        pin,
        payload: SignPayload::Message(b"hi".to_vec()),
    }));
    wallet = reply.wallet_update.unwrap();
    let op = Operation::ChangePin {
        app_id: APP.into(),
        wallet_id: "wal_1".into(),
    };
    let pin = user.envelope(PIN, &op);
    let new_pin = user.envelope(
        NEW_PIN,
        &Operation::NewPin {
            app_id: APP.into(),
            wallet_id: "wal_1".into(),
        },
    );
    let reply = server.call(Request::ChangePin(ChangePinRequest {
        wallet: context(&wallet),
        pin,
        new_pin,
    }));
    wallet = reply.wallet_update.unwrap();

    // Export.
    let (export_kp, client_key) = user.one_time_key();
    let op = Operation::Export {
        app_id: APP.into(),
        wallet_id: "wal_1".into(),
        client_key: client_key.clone(),
    };
    let pin = user.envelope(NEW_PIN, &op);
    let reply = server.call(Request::Export(ExportRequest {
        wallet: context(&wallet),
        client_key,
        pin,
    }));
    let Ok(Response::Exported { mnemonic }) = reply.result else {
        panic!("{reply:?}")
    };
    let phrase = keystead_envelope::open_mnemonic(&export_kp, &mnemonic).unwrap();

    // What the secrets are, as the client knows them.
    let bip39 =
        alloy_signer_local::coins_bip39::Mnemonic::<English>::new_from_phrase(phrase.as_str())
            .unwrap();
    let seed = bip39.to_seed(None).unwrap();
    let signer = MnemonicBuilder::<English>::default()
        .phrase(phrase.as_str())
        .index(0)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        signer.address(),
        created.accounts[0].address.parse::<Address>().unwrap()
    );
    let private_key = signer.to_bytes();
    let words: Vec<&str> = phrase.split(' ').collect();
    let secrets = Secrets {
        needles: vec![
            ("the mnemonic", phrase.as_bytes().to_vec()),
            (
                "the mnemonic's first six words",
                words[..6].join(" ").into_bytes(),
            ),
            ("the seed", seed.to_vec()),
            ("the private key", private_key.to_vec()),
            (
                "the private key in hex",
                alloy_primitives::hex::encode(private_key).into_bytes(),
            ),
            ("the PIN", PIN.as_bytes().to_vec()),
            ("the new PIN", NEW_PIN.as_bytes().to_vec()),
            ("the recovery code", recovery_code.as_bytes().to_vec()),
            (
                "the recovery code without dashes",
                recovery_code.replace('-', "").into_bytes(),
            ),
        ],
    };

    // The server's memory, read while it waits for its next request.
    let memory = read_process_memory(server.child.id()).unwrap();
    assert!(memory.len() > 100_000, "read {} bytes", memory.len());
    // Control: what the server does hold is found, so absence means something.
    assert!(
        find(&memory, &signed.signature).is_some(),
        "the signature it relayed is in its memory"
    );
    assert!(
        find(&memory, &wallet.by_pin).is_some(),
        "the sealed record it relayed is in its memory"
    );
    secrets.assert_absent("the server's memory", &memory);
    // Control: the same search over the client's memory (this test) does find them.
    let own = read_process_memory(std::process::id()).unwrap();
    for (name, needle) in &secrets.needles[..5] {
        assert!(
            find(&own, needle).is_some(),
            "{name} should be in the client's memory"
        );
    }

    // What a server stores: the wallet records, as bytes and as JSON-ish debug text.
    for record in [&created.wallet, &wallet] {
        secrets.assert_absent("a stored record", &postcard::to_allocvec(record).unwrap());
        secrets.assert_absent("a record's Debug", format!("{record:?}").as_bytes());
    }
    // Nor anything the enclave wrote to disk (keyrings hold only KMS master keys).
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            secrets.assert_absent(&path.display().to_string(), &std::fs::read(&path).unwrap());
        }
    }
}
