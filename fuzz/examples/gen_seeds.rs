//! Writes the seed corpus under `fuzz/seeds/<target>/`:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds
//! ```
//!
//! Deterministic (seeded RNG), so rerunning it rewrites the same files.

use std::fs;
use std::path::{Path, PathBuf};

use keystead_enclave_proto::{
    ChainFamily, ChangePinRequest, CreateWallet, DerivedAccount, EnclaveError, EnvelopeRejection,
    Health, LEN_PREFIX, PinState, Reply, Request, RequestFrame, Response, ResponseFrame,
    SealedWallet, SignPayload, SignRequest, UnsignedTx, WalletBinding, WalletContext,
    decode_request_frame, decode_response, encode_request, encode_response,
};
use keystead_envelope::{
    PIN_INFO, PinPayload, Sealed, TxIntent, Zeroizing, check, open_pin, seal, seal_pin,
    seal_recovery_code,
};
use keystead_fuzz::{NOW, key_pair, operation};
use rand::SeedableRng as _;
use rand::rngs::StdRng;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    println!("{:>6} bytes  {}", bytes.len(), path.display());
}

fn binding() -> WalletBinding {
    WalletBinding {
        app_id: "app_01".into(),
        wallet_id: "wal_01".into(),
    }
}

fn wallet() -> SealedWallet {
    SealedWallet {
        format: 1,
        data_key: vec![0xd0; 40],
        dr_data_key: Some(vec![0xd1; 40]),
        salt: vec![0x5a; 16],
        by_pin: vec![0xb0; 60],
        by_recovery: vec![0xb1; 60],
        pin_state: PinState {
            failures: 1,
            lockouts: 0,
            locked_until: 0,
            counter: 3,
            mac: vec![0xac; 32],
        },
    }
}

fn main() {
    let seeds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let mut rng = StdRng::seed_from_u64(0);
    let kp = key_pair();
    let pk = kp.public_key();

    // A PIN envelope that opens with the fuzz key and passes `check` at NOW.
    let payload = PinPayload::for_operation(
        Zeroizing::new("482915".into()),
        &operation(),
        NOW + 300,
        &mut rng,
    );
    let pin = seal_pin(&pk, &payload, &mut rng).unwrap();
    let opened = open_pin(&kp, &pin).expect("the seed envelope opens");
    check(&opened, &operation(), NOW).expect("the seed envelope passes check");
    let new_pin = seal(&pk, PIN_INFO, br#"{"pin":"739104"}"#, &mut rng).unwrap();

    // frame_decoder: whole frames (`*.frame`) and bare bodies (`*.body`).
    let dir = seeds.join("frame_decoder");
    fs::create_dir_all(&dir).unwrap();
    let requests = [
        (
            "ping",
            RequestFrame {
                id: 1,
                request: Request::Ping,
            },
        ),
        (
            "attestation",
            RequestFrame {
                id: 2,
                request: Request::Attestation {
                    nonce: Some(vec![0xab; 32]),
                },
            },
        ),
        (
            "attestation_no_nonce",
            RequestFrame {
                id: 3,
                request: Request::Attestation { nonce: None },
            },
        ),
        (
            "create_wallet",
            RequestFrame {
                id: 4,
                request: Request::CreateWallet(CreateWallet {
                    binding: binding(),
                    user_id: "usr_01".into(),
                    client_key: kp.public_key_base64(),
                    pin: pin.clone(),
                }),
            },
        ),
        (
            "sign_tx",
            RequestFrame {
                id: 5,
                request: Request::Sign(SignRequest {
                    wallet: WalletContext {
                        binding: binding(),
                        wallet: wallet(),
                    },
                    account_id: "acc_01".into(),
                    account_index: 0,
                    pin: pin.clone(),
                    payload: SignPayload::Transaction {
                        intent: TxIntent {
                            chain_id: 31337,
                            to: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC".into(),
                            value: "1000000000000000".into(),
                            data: "0x".into(),
                            gas_limit: "25200".into(),
                            max_fee_per_gas: "2000000000".into(),
                            max_priority_fee_per_gas: "1000000000".into(),
                        },
                        tx: UnsignedTx::Eip1559 {
                            chain_id: 31337,
                            nonce: 0,
                            max_fee_per_gas: 2_000_000_000,
                            max_priority_fee_per_gas: 1_000_000_000,
                            gas_limit: 25_200,
                            to: [0x3c; 20],
                            value: [0; 32],
                            data: vec![],
                        },
                    },
                }),
            },
        ),
        (
            "sign_message",
            RequestFrame {
                id: 6,
                request: Request::Sign(SignRequest {
                    wallet: WalletContext {
                        binding: binding(),
                        wallet: wallet(),
                    },
                    account_id: "acc_01".into(),
                    account_index: 1,
                    pin: pin.clone(),
                    payload: SignPayload::Message(b"hello keystead".to_vec()),
                }),
            },
        ),
        (
            "change_pin",
            RequestFrame {
                id: 7,
                request: Request::ChangePin(ChangePinRequest {
                    wallet: WalletContext {
                        binding: binding(),
                        wallet: wallet(),
                    },
                    pin: pin.clone(),
                    new_pin: new_pin.clone(),
                }),
            },
        ),
    ];
    for (name, frame) in &requests {
        let bytes = encode_request(frame).unwrap();
        assert_eq!(&decode_request_frame(&bytes).unwrap(), frame);
        write(&dir, &format!("req_{name}.frame"), &bytes);
        write(&dir, &format!("req_{name}.body"), &bytes[LEN_PREFIX..]);
    }
    let responses = [
        (
            "pong",
            ResponseFrame {
                id: 1,
                reply: Reply::ok(Response::Pong(Health {
                    protocol_version: 1,
                    attestation_format: "dev".into(),
                    non_dumpable: true,
                    core_dumps_disabled: true,
                    memory_locked: false,
                })),
            },
        ),
        (
            "wallet_created",
            ResponseFrame {
                id: 4,
                reply: Reply::ok(Response::WalletCreated(
                    keystead_enclave_proto::WalletCreated {
                        wallet: wallet(),
                        accounts: vec![DerivedAccount {
                            family: ChainFamily::Evm,
                            path: "m/44'/60'/0'/0/0".into(),
                            index: 0,
                            address: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".into(),
                            public_key: vec![0x02; 33],
                            parent_xpub: "xpub6".into(),
                        }],
                        recovery_kit: seal_recovery_code(&pk, "ABCD-EFGH-JKLM", &mut rng).unwrap(),
                    },
                )),
            },
        ),
        (
            "wrong_pin",
            ResponseFrame {
                id: 6,
                reply: Reply {
                    result: Err(EnclaveError::EnvelopeRejected(EnvelopeRejection::Expired)),
                    wallet_update: Some(wallet()),
                },
            },
        ),
    ];
    for (name, frame) in &responses {
        let bytes = encode_response(frame).unwrap();
        assert_eq!(&decode_response(&bytes[LEN_PREFIX..]).unwrap(), frame);
        write(&dir, &format!("resp_{name}.body"), &bytes[LEN_PREFIX..]);
    }

    // envelope_opener: the three readings of its input.
    let dir = seeds.join("envelope_opener");
    fs::create_dir_all(&dir).unwrap();
    let raw = |s: &Sealed| [s.enc.as_slice(), s.ciphertext.as_slice()].concat();
    // (a) enc || ciphertext: a valid PIN envelope and a valid SealedToClient.
    write(&dir, "sealed_pin.raw", &raw(&pin));
    let kit = seal_recovery_code(&pk, "ABCD-EFGH-JKLM", &mut rng).unwrap();
    write(&dir, "sealed_client.raw", &raw(&kit));
    // (b) the same PIN envelope as JSON.
    write(
        &dir,
        "sealed_pin.json",
        serde_json::to_string(&pin).unwrap().as_bytes(),
    );
    // (c) plaintexts: one that passes `check`, one for another purpose.
    write(
        &dir,
        "payload_ok.json",
        &serde_json::to_vec(&payload).unwrap(),
    );
    let other = PinPayload {
        pin: Zeroizing::new("ABCD-EFGH-JKLM".into()),
        purpose: keystead_envelope::Purpose::Recover,
        digest: [0x11; 32],
        nonce: vec![0x22; 16],
        expires_at: NOW - 1,
    };
    write(
        &dir,
        "payload_recover.json",
        &serde_json::to_vec(&other).unwrap(),
    );
}
