//! The worked examples of `docs/enclave-protocol.md`, checked byte for byte: example
//! frames of the server↔enclave protocol, the postcard variant indices a second
//! implementation needs, and the one digest vector the document adds to
//! `crates/envelope/tests/vectors.json` (a `sign_typed_data` operation over the EIP-712
//! specification's "Mail" example hash).
//!
//! `cargo test -p keystead-enclave-proto --test doc_vectors -- --nocapture` prints them.

use keystead_enclave_proto::*;
use keystead_envelope::{Operation, Sealed};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn request(id: u64, request: Request) -> String {
    hex(&encode_request(&RequestFrame { id, request }).unwrap())
}

fn response(id: u64, reply: Reply) -> String {
    hex(&encode_response(&ResponseFrame { id, reply }).unwrap())
}

/// The postcard body of a value after its id, to read off the variant index.
fn first_byte<T: serde::Serialize>(value: &T) -> u8 {
    postcard::to_allocvec(value).unwrap()[0]
}

#[test]
fn example_frames() {
    let cases = [
        ("Ping, id 1", request(1, Request::Ping), "0000000400010100"),
        (
            "Attestation { nonce: None }, id 2",
            request(2, Request::Attestation { nonce: None }),
            "000000050001020100",
        ),
        (
            "Attestation { nonce: Some([1, 2, 3]) }, id 7",
            request(
                7,
                Request::Attestation {
                    nonce: Some(vec![1, 2, 3]),
                },
            ),
            "00000009000107010103010203",
        ),
        (
            "Err(WrongPin { remaining_tries: 3 }), no update, id 9",
            response(9, Reply::err(EnclaveError::WrongPin { remaining_tries: 3 })),
            "0000000700010901000300",
        ),
        (
            "Err(EnvelopeRejected(Replayed)), no update, id 300",
            response(
                300,
                Reply::err(EnclaveError::EnvelopeRejected(EnvelopeRejection::Replayed)),
            ),
            "000000080001ac0201030700",
        ),
        (
            "Ok(Resealed), no update, id 4",
            response(4, Reply::ok(Response::Resealed)),
            "00000006000104000500",
        ),
    ];
    for (name, got, want) in cases {
        println!("{name}: {got}");
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn sealed_values_are_raw_bytes_in_frames() {
    // A `Sealed` travels as two length-prefixed byte strings, never as base64.
    let sealed = Sealed {
        enc: vec![0xee; 32],
        ciphertext: vec![0xcc; 3],
    };
    let bytes = postcard::to_allocvec(&sealed).unwrap();
    assert_eq!(hex(&bytes), format!("20{}03cccccc", "ee".repeat(32)));
}

#[test]
fn variant_indices() {
    use keystead_envelope::TxIntent;
    let binding = WalletBinding {
        app_id: String::new(),
        wallet_id: String::new(),
    };
    let sealed = Sealed {
        enc: vec![],
        ciphertext: vec![],
    };
    let wallet = SealedWallet {
        format: 1,
        data_key: vec![],
        dr_data_key: None,
        salt: vec![],
        by_pin: vec![],
        by_recovery: vec![],
        pin_state: PinState {
            failures: 0,
            lockouts: 0,
            locked_until: 0,
            counter: 0,
            mac: vec![],
        },
    };
    let ctx = WalletContext {
        binding: binding.clone(),
        wallet: wallet.clone(),
    };
    let requests = [
        Request::Ping,
        Request::Attestation { nonce: None },
        Request::CreateWallet(CreateWallet {
            binding: binding.clone(),
            user_id: String::new(),
            client_key: String::new(),
            pin: sealed.clone(),
        }),
        Request::Sign(SignRequest {
            wallet: ctx.clone(),
            account_id: String::new(),
            account_index: 0,
            pin: sealed.clone(),
            payload: SignPayload::Message(vec![]),
        }),
        Request::Export(ExportRequest {
            wallet: ctx.clone(),
            client_key: String::new(),
            pin: sealed.clone(),
        }),
        Request::ChangePin(ChangePinRequest {
            wallet: ctx.clone(),
            pin: sealed.clone(),
            new_pin: sealed.clone(),
        }),
        Request::Recover(RecoverRequest {
            wallet: ctx.clone(),
            recovery: sealed.clone(),
            new_pin: sealed.clone(),
        }),
    ];
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(usize::from(first_byte(r)), i, "{r:?}");
    }
    let responses = [
        Response::Pong(Health {
            protocol_version: 1,
            attestation_format: String::new(),
            non_dumpable: false,
            core_dumps_disabled: false,
            memory_locked: false,
        }),
        Response::Attestation(Attestation {
            format: String::new(),
            document: vec![],
            public_key: [0; 32],
        }),
        Response::WalletCreated(WalletCreated {
            wallet,
            accounts: vec![],
            recovery_kit: sealed.clone(),
        }),
        Response::Signed(Signed {
            signature: vec![],
            signed_transaction: None,
            transaction_hash: None,
            signer: String::new(),
        }),
        Response::Exported {
            mnemonic: sealed.clone(),
        },
        Response::Resealed,
    ];
    for (i, r) in responses.iter().enumerate() {
        assert_eq!(usize::from(first_byte(r)), i, "{r:?}");
    }
    let errors = [
        EnclaveError::WrongPin { remaining_tries: 0 },
        EnclaveError::WalletLocked { retry_after: 0 },
        EnclaveError::WrongRecoveryCode,
        EnclaveError::EnvelopeRejected(EnvelopeRejection::Undecryptable),
        EnclaveError::WeakPin(String::new()),
        EnclaveError::IntentMismatch(String::new()),
        EnclaveError::InvalidRequest(String::new()),
        EnclaveError::TamperedRecord,
        EnclaveError::Kms(String::new()),
        EnclaveError::Busy,
        EnclaveError::Protocol(String::new()),
        EnclaveError::Internal,
    ];
    for (i, e) in errors.iter().enumerate() {
        assert_eq!(usize::from(first_byte(e)), i, "{e:?}");
    }
    let rejections = [
        EnvelopeRejection::Undecryptable,
        EnvelopeRejection::Malformed,
        EnvelopeRejection::WrongPurpose,
        EnvelopeRejection::WrongDigest,
        EnvelopeRejection::Expired,
        EnvelopeRejection::ExpiryTooFar,
        EnvelopeRejection::BadNonce,
        EnvelopeRejection::Replayed,
    ];
    for (i, r) in rejections.iter().enumerate() {
        assert_eq!(usize::from(first_byte(r)), i, "{r:?}");
    }
    let payloads = [
        SignPayload::Message(vec![]),
        SignPayload::TypedData(String::new()),
        SignPayload::Transaction {
            intent: TxIntent {
                chain_id: 1,
                to: String::new(),
                value: String::new(),
                data: String::new(),
                gas_limit: String::new(),
                max_fee_per_gas: String::new(),
                max_priority_fee_per_gas: String::new(),
            },
            tx: UnsignedTx::Legacy {
                chain_id: 1,
                nonce: 0,
                gas_price: 0,
                gas_limit: 0,
                to: [0; 20],
                value: [0; 32],
                data: vec![],
            },
        },
    ];
    for (i, p) in payloads.iter().enumerate() {
        assert_eq!(usize::from(first_byte(p)), i, "{p:?}");
    }
    assert_eq!(first_byte(&ChainFamily::Evm), 0);
    let result: Result<u8, u8> = Err(0);
    assert_eq!(first_byte(&result), 1);
}

/// The EIP-712 specification's "Mail" example: its signing hash (checked against the
/// typed data itself in `crates/enclave/src/sign.rs`) as a `sign_typed_data` operation.
#[test]
fn typed_data_digest_vector() {
    let hash: [u8; 32] = (0..32)
        .map(|i| {
            u8::from_str_radix(
                &"be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
                    [2 * i..2 * i + 2],
                16,
            )
            .unwrap()
        })
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let op = Operation::SignTypedData {
        app_id: "app_01".into(),
        account_id: "acc_01".into(),
        hash,
    };
    println!("{}\n{}", op.canonical_json(), op.digest_hex());
    assert_eq!(
        op.canonical_json(),
        r#"{"accountId":"acc_01","appId":"app_01","hash":"0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2","purpose":"sign_typed_data"}"#
    );
    assert_eq!(
        op.digest_hex(),
        "2e6717249969a4e3435e6654040b0d30b0f959024a02935a3c62e87a3f5bc3b3"
    );
}
