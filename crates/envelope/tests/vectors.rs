//! Reproducible test vectors for independent implementations (the widget's TypeScript,
//! anyone's own client), kept in `tests/vectors.json`.
//!
//! Each envelope lists the recipient's private key, the 32 bytes the sender's RNG
//! produced (`ephemeralIkm`, turned into the ephemeral key by RFC 9180 `DeriveKeyPair`),
//! the exact plaintext, and the resulting `enc` and `ciphertext`. An opener must recover
//! the plaintext from `enc`/`ciphertext` and the private key; a sealer given the same
//! ephemeral IKM must produce the same bytes. The digest entries give an operation
//! object, its RFC 8785 canonical JSON and its SHA-256.
//!
//! `cargo test -p keystead-envelope --test vectors` checks the stored file;
//! `KEYSTEAD_WRITE_VECTORS=1 cargo test -p keystead-envelope --test vectors -- --nocapture`
//! rewrites it from the inputs below and prints it.

use keystead_envelope::{
    CLIENT_INFO, HpkeKeyPair, Operation, PIN_INFO, PinPayload, Purpose, SUITE, SUITE_IDS, Sealed,
    TxIntent, Zeroizing, check, open, open_pin, open_recovery_code, seal, seal_pin,
    seal_recovery_code,
};
use serde_json::{Value, json};

/// Resolved when the test runs, not when it is built: a build cached from a checkout at
/// another path (CI shares its target directory) must still find this checkout's file.
fn vectors_path() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_default()
        .join("tests/vectors.json")
}

const ENCLAVE_SK: &str = "084300850cfb307927560265e23a2f0d9801f87d775efe954dca0c0f7a012215";
const PIN_IKM_E: &str = "043bd06712c1afb45a1a3b14155ec80b745fdbcba4c77be0e350e1fdff640ab1";
const PIN_NONCE: &str = "60012fd29eee4c748ebfa16a85e2de2e62f010b0447b09466804d9c34691783c";
const PIN_EXPIRES_AT: u64 = 1_750_000_300;
const CLIENT_SK: &str = "3df598e7332bb125100a5d5b1e8b9bc6ff80beaf4c8085a6c8b2644662aadebf";
const CLIENT_IKM_E: &str = "a04dd95b6d89b971cb38468731535291b486c66c2a7f21c7829e84814f1ba6fa";
const RECOVERY_CODE: &str = "K7QM-2XWD-9RTF-HP4C";

/// Hands out fixed bytes as randomness: the vector's ephemeral IKM.
struct FixedRng {
    bytes: Vec<u8>,
    pos: usize,
}

impl FixedRng {
    fn new(hex_bytes: &str) -> Self {
        Self {
            bytes: hex::decode(hex_bytes).unwrap(),
            pos: 0,
        }
    }

    fn exhausted(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

impl rand_core::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        let end = self.pos + dst.len();
        assert!(end <= self.bytes.len(), "FixedRng ran out of bytes");
        dst.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
    }
}

impl rand_core::CryptoRng for FixedRng {}

fn key_pair(sk_hex: &str) -> HpkeKeyPair {
    HpkeKeyPair::from_private_bytes(hex::decode(sk_hex).unwrap().try_into().unwrap())
}

fn message_operation() -> Operation {
    Operation::SignMessage {
        app_id: "app_01".into(),
        account_id: "acc_01".into(),
        message: b"hello keystead".to_vec(),
    }
}

fn pin_payload() -> PinPayload {
    PinPayload {
        pin: Zeroizing::new("482915".into()),
        purpose: Purpose::SignMessage,
        digest: message_operation().digest(),
        nonce: hex::decode(PIN_NONCE).unwrap(),
        expires_at: PIN_EXPIRES_AT,
    }
}

fn digest_operations() -> Vec<Operation> {
    vec![
        message_operation(),
        Operation::SignTransaction {
            app_id: "app_01".into(),
            account_id: "acc_01".into(),
            intent: TxIntent {
                chain_id: 31337,
                to: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC".into(),
                value: "1000000000000000".into(),
                data: "0x".into(),
                gas_limit: "25200".into(),
                max_fee_per_gas: "2000000000".into(),
                max_priority_fee_per_gas: "1000000000".into(),
            },
        },
        Operation::CreateWallet {
            app_id: "app_01".into(),
            user_id: "usr_01".into(),
            client_key: key_pair(CLIENT_SK).public_key_base64(),
        },
        Operation::SignTypedData {
            app_id: "app_01".into(),
            account_id: "acc_01".into(),
            hash: hex::decode("1e0ebb1d9d5fa1d4b5cbd2d6b4ec7e7e52a3d6a2e2ff9b4b1c7f2a1b0d3e4f50")
                .unwrap()
                .try_into()
                .unwrap(),
        },
        Operation::Export {
            app_id: "app_01".into(),
            wallet_id: "wal_01".into(),
            client_key: key_pair(CLIENT_SK).public_key_base64(),
        },
        Operation::ChangePin {
            app_id: "app_01".into(),
            wallet_id: "wal_01".into(),
        },
        Operation::Recover {
            app_id: "app_01".into(),
            wallet_id: "wal_01".into(),
        },
        Operation::NewPin {
            app_id: "app_01".into(),
            wallet_id: "wal_01".into(),
        },
    ]
}

fn envelope_json(
    name: &str,
    info: &[u8],
    recipient_sk: &str,
    ikm_e: &str,
    plaintext: &[u8],
    sealed: &Sealed,
) -> Value {
    json!({
        "name": name,
        "info": String::from_utf8(info.to_vec()).unwrap(),
        "infoHex": hex::encode(info),
        "aadHex": "",
        "recipientPrivateKey": recipient_sk,
        "recipientPublicKey": hex::encode(key_pair(recipient_sk).public_key()),
        "ephemeralIkm": ikm_e,
        "plaintext": String::from_utf8(plaintext.to_vec()).unwrap(),
        "plaintextHex": hex::encode(plaintext),
        "enc": hex::encode(&sealed.enc),
        "ciphertext": hex::encode(&sealed.ciphertext),
        "sealed": serde_json::to_value(sealed).unwrap(),
    })
}

fn generate() -> Value {
    let enclave = key_pair(ENCLAVE_SK);
    let mut rng = FixedRng::new(PIN_IKM_E);
    let pin_sealed = seal_pin(&enclave.public_key(), &pin_payload(), &mut rng).unwrap();
    assert!(rng.exhausted());
    let pin_plaintext = open(&enclave, PIN_INFO, &pin_sealed).unwrap();

    let client = key_pair(CLIENT_SK);
    let mut rng = FixedRng::new(CLIENT_IKM_E);
    let kit = seal_recovery_code(&client.public_key(), RECOVERY_CODE, &mut rng).unwrap();
    assert!(rng.exhausted());
    let kit_plaintext = open(&client, CLIENT_INFO, &kit).unwrap();

    let digests: Vec<Value> = digest_operations()
        .iter()
        .map(|op| {
            json!({
                "operation": serde_json::to_value(op).unwrap(),
                "canonicalJson": op.canonical_json(),
                "digest": op.digest_hex(),
            })
        })
        .collect();

    json!({
        "description": "Keystead sealed-value test vectors: HPKE (RFC 9180) base mode, single shot, empty AAD. ephemeralIkm is what the sender's RNG produced; the ephemeral key pair is DeriveKeyPair(ephemeralIkm) and enc its public key. recipientPrivateKey is the raw 32-byte X25519 key (X25519 clamps it when used). Digests are SHA-256 over the RFC 8785 canonical JSON of the operation.",
        "suite": SUITE,
        "mode": 0,
        "kemId": SUITE_IDS.0,
        "kdfId": SUITE_IDS.1,
        "aeadId": SUITE_IDS.2,
        "envelopes": [
            envelope_json("pin envelope (sign_message)", PIN_INFO, ENCLAVE_SK, PIN_IKM_E, &pin_plaintext, &pin_sealed),
            envelope_json("recovery kit (SealedToClient)", CLIENT_INFO, CLIENT_SK, CLIENT_IKM_E, &kit_plaintext, &kit),
        ],
        "digests": digests,
    })
}

fn stored() -> Value {
    let text = std::fs::read_to_string(vectors_path()).expect("tests/vectors.json");
    serde_json::from_str(&text).expect("tests/vectors.json is JSON")
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string {key}"))
}

fn hex_field(v: &Value, key: &str) -> Vec<u8> {
    hex::decode(str_field(v, key)).unwrap()
}

#[test]
fn vectors_file_is_current() {
    let generated = generate();
    if std::env::var_os("KEYSTEAD_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(vectors_path(), &text).unwrap();
        println!("{text}");
    }
    assert_eq!(
        stored(),
        generated,
        "tests/vectors.json differs from what the sealer produces"
    );
}

/// Opens the stored envelopes with nothing but the stored private keys and bytes, as an
/// independent implementation would.
#[test]
fn stored_envelopes_open() {
    let v = stored();
    assert_eq!(str_field(&v, "suite"), SUITE);
    let envelopes = v["envelopes"].as_array().unwrap();
    assert_eq!(envelopes.len(), 2);

    for env in envelopes {
        let kp = key_pair(str_field(env, "recipientPrivateKey"));
        assert_eq!(
            kp.public_key().to_vec(),
            hex_field(env, "recipientPublicKey")
        );
        let sealed = Sealed {
            enc: hex_field(env, "enc"),
            ciphertext: hex_field(env, "ciphertext"),
        };
        let wire: Sealed = serde_json::from_value(env["sealed"].clone()).unwrap();
        assert_eq!(wire, sealed);
        let info = hex_field(env, "infoHex");
        let plaintext = open(&kp, &info, &sealed).unwrap();
        assert_eq!(&plaintext[..], str_field(env, "plaintext").as_bytes());
        assert_eq!(plaintext.to_vec(), hex_field(env, "plaintextHex"));

        // Sealing again with the same ephemeral IKM gives the same bytes.
        let mut rng = FixedRng::new(str_field(env, "ephemeralIkm"));
        let again = seal(&kp.public_key(), &info, &plaintext, &mut rng).unwrap();
        assert_eq!(again, sealed);
        println!(
            "{}: enc={} ciphertext={}",
            str_field(env, "name"),
            hex::encode(&sealed.enc),
            hex::encode(&sealed.ciphertext)
        );
    }

    // The PIN envelope carries the expected payload and approves the API.md operation.
    let pin_env = &envelopes[0];
    let enclave = key_pair(str_field(pin_env, "recipientPrivateKey"));
    let sealed: Sealed = serde_json::from_value(pin_env["sealed"].clone()).unwrap();
    let payload = open_pin(&enclave, &sealed).unwrap();
    assert_eq!(*payload.pin, "482915");
    assert_eq!(payload.purpose, Purpose::SignMessage);
    assert_eq!(
        hex::encode(payload.digest),
        "1a3538ed34512b66677093a8fd576ae8965c82e2d89312a3510c81d83569f7ff"
    );
    assert_eq!(hex::encode(&payload.nonce), PIN_NONCE);
    assert_eq!(payload.expires_at, PIN_EXPIRES_AT);
    check(&payload, &message_operation(), PIN_EXPIRES_AT - 300).unwrap();

    // The recovery kit carries the recovery code.
    let kit_env = &envelopes[1];
    let client = key_pair(str_field(kit_env, "recipientPrivateKey"));
    let kit: Sealed = serde_json::from_value(kit_env["sealed"].clone()).unwrap();
    assert_eq!(*open_recovery_code(&client, &kit).unwrap(), RECOVERY_CODE);
}

#[test]
fn stored_digests_match() {
    let v = stored();
    let digests = v["digests"].as_array().unwrap();
    assert_eq!(digests.len(), 8);
    let mut purposes = Vec::new();
    for d in digests {
        let op: Operation = serde_json::from_value(d["operation"].clone()).unwrap();
        assert_eq!(op.canonical_json(), str_field(d, "canonicalJson"));
        assert_eq!(op.digest_hex(), str_field(d, "digest"));
        purposes.push(op.purpose());
    }
    for p in Purpose::ALL {
        assert!(purposes.contains(&p), "no digest vector for {p}");
    }
    // The two worked examples of API.md, byte for byte.
    assert_eq!(
        str_field(&digests[0], "canonicalJson"),
        r#"{"accountId":"acc_01","appId":"app_01","message":"0x68656c6c6f206b65797374656164","purpose":"sign_message"}"#
    );
    assert_eq!(
        str_field(&digests[0], "digest"),
        "1a3538ed34512b66677093a8fd576ae8965c82e2d89312a3510c81d83569f7ff"
    );
    assert_eq!(
        str_field(&digests[1], "canonicalJson"),
        r#"{"accountId":"acc_01","appId":"app_01","intent":{"chainId":31337,"data":"0x","gasLimit":"25200","maxFeePerGas":"2000000000","maxPriorityFeePerGas":"1000000000","to":"0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC","value":"1000000000000000"},"purpose":"sign_transaction"}"#
    );
    assert_eq!(
        str_field(&digests[1], "digest"),
        "b040b826f007ce1cc02ae0330081a56739c6c17501f19a69f8be942e9c5b0039"
    );
}
