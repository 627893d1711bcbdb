//! Operations a PIN envelope approves, and their digests.
//!
//! `digest` = SHA-256 over the RFC 8785 (JCS) canonical JSON of the operation object
//! `{"purpose": P, "appId": ..., ...fields}`. The serde form of [`Operation`] *is* that
//! object, so `serde_json::from_str::<Operation>` reads one back.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::error::EnvelopeError;

/// The largest integer a JSON number (an IEEE 754 double) holds exactly: 2^53 - 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// What a PIN envelope is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    CreateWallet,
    SignMessage,
    SignTypedData,
    SignTransaction,
    Export,
    ChangePin,
    Recover,
    NewPin,
}

impl Purpose {
    /// Every purpose.
    pub const ALL: [Purpose; 8] = [
        Purpose::CreateWallet,
        Purpose::SignMessage,
        Purpose::SignTypedData,
        Purpose::SignTransaction,
        Purpose::Export,
        Purpose::ChangePin,
        Purpose::Recover,
        Purpose::NewPin,
    ];

    /// The wire name (`create_wallet`, `sign_message`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::CreateWallet => "create_wallet",
            Purpose::SignMessage => "sign_message",
            Purpose::SignTypedData => "sign_typed_data",
            Purpose::SignTransaction => "sign_transaction",
            Purpose::Export => "export",
            Purpose::ChangePin => "change_pin",
            Purpose::Recover => "recover",
            Purpose::NewPin => "new_pin",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transaction as `POST /v1/tx/prepare` returned it: the `intent` of a
/// `sign_transaction` operation.
///
/// Strings are hashed exactly as given (addresses EIP-55, amounts decimal strings,
/// `data` `"0x"` when empty); nothing is normalized. Other fields of the prepare answer
/// (`network`, `from`) are ignored when reading one and are not part of the digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxIntent {
    /// A JSON number; at most 2^53 - 1 ([`MAX_SAFE_INTEGER`]).
    #[serde(deserialize_with = "de_chain_id")]
    pub chain_id: u64,
    pub to: String,
    pub value: String,
    pub data: String,
    pub gas_limit: String,
    pub max_fee_per_gas: String,
    pub max_priority_fee_per_gas: String,
}

fn de_chain_id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let id = u64::deserialize(d)?;
    if id > MAX_SAFE_INTEGER {
        return Err(serde::de::Error::custom("chainId above 2^53 - 1"));
    }
    Ok(id)
}

/// An operation a user approves with a PIN envelope. See API.md, "Digests".
///
/// Ids are the strings the API returns; `client_key` is the base64 X25519 key exactly as
/// the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    tag = "purpose",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Operation {
    CreateWallet {
        app_id: String,
        user_id: String,
        client_key: String,
    },
    SignMessage {
        app_id: String,
        account_id: String,
        /// The message bytes (a `utf8` message is its UTF-8 bytes); `0x`-hex in JSON.
        #[serde(with = "hex0x_vec")]
        message: Vec<u8>,
    },
    SignTypedData {
        app_id: String,
        account_id: String,
        /// The EIP-712 signing hash; `0x`-hex in JSON.
        #[serde(with = "hex0x_32")]
        hash: [u8; 32],
    },
    SignTransaction {
        app_id: String,
        account_id: String,
        intent: TxIntent,
    },
    Export {
        app_id: String,
        wallet_id: String,
        client_key: String,
    },
    ChangePin {
        app_id: String,
        wallet_id: String,
    },
    Recover {
        app_id: String,
        wallet_id: String,
    },
    NewPin {
        app_id: String,
        wallet_id: String,
    },
}

impl Operation {
    /// The purpose an envelope approving this operation must carry.
    pub fn purpose(&self) -> Purpose {
        match self {
            Operation::CreateWallet { .. } => Purpose::CreateWallet,
            Operation::SignMessage { .. } => Purpose::SignMessage,
            Operation::SignTypedData { .. } => Purpose::SignTypedData,
            Operation::SignTransaction { .. } => Purpose::SignTransaction,
            Operation::Export { .. } => Purpose::Export,
            Operation::ChangePin { .. } => Purpose::ChangePin,
            Operation::Recover { .. } => Purpose::Recover,
            Operation::NewPin { .. } => Purpose::NewPin,
        }
    }

    /// The app the operation is for.
    pub fn app_id(&self) -> &str {
        match self {
            Operation::CreateWallet { app_id, .. }
            | Operation::SignMessage { app_id, .. }
            | Operation::SignTypedData { app_id, .. }
            | Operation::SignTransaction { app_id, .. }
            | Operation::Export { app_id, .. }
            | Operation::ChangePin { app_id, .. }
            | Operation::Recover { app_id, .. }
            | Operation::NewPin { app_id, .. } => app_id,
        }
    }

    /// Refuses an operation whose canonical JSON would be ambiguous: a `chainId` above
    /// 2^53 - 1 (JCS writes numbers as IEEE 754 doubles, so two such ids can share a
    /// digest). [`crate::check`] calls this.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        match self {
            Operation::SignTransaction { intent, .. } if intent.chain_id > MAX_SAFE_INTEGER => {
                Err(EnvelopeError::ChainIdOutOfRange(intent.chain_id))
            }
            _ => Ok(()),
        }
    }

    /// The RFC 8785 (JCS) canonical JSON of the operation object.
    pub fn canonical_json(&self) -> String {
        // Serializing strings, byte strings as hex strings and one integer into memory
        // cannot fail.
        serde_jcs::to_string(self).expect("an operation always serializes")
    }

    /// SHA-256 of [`Operation::canonical_json`]: what a PIN envelope's `digest` holds.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.canonical_json().as_bytes()).into()
    }

    /// [`Operation::digest`] as lowercase hex, the way a PIN envelope carries it.
    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest())
    }
}

/// Lowercase hex with a `0x` prefix, read strictly (no uppercase, no missing prefix).
fn decode_hex0x(s: &str) -> Option<Vec<u8>> {
    let digits = s.strip_prefix("0x")?;
    if !digits
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    hex::decode(digits).ok()
}

mod hex0x_vec {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{}", hex::encode(bytes)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        decode_hex0x(&s)
            .ok_or_else(|| serde::de::Error::custom("expected 0x-prefixed lowercase hex"))
    }
}

mod hex0x_32 {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        hex0x_vec::serialize(bytes, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let bytes = hex0x_vec::deserialize(d)?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| serde::de::Error::custom("expected 32 bytes of 0x-prefixed hex"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message_example() -> Operation {
        Operation::SignMessage {
            app_id: "app_01".into(),
            account_id: "acc_01".into(),
            message: b"hello keystead".to_vec(),
        }
    }

    fn transaction_example() -> Operation {
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
        }
    }

    /// API.md, "Digests", first worked example.
    #[test]
    fn api_md_sign_message_vector() {
        let op = message_example();
        assert_eq!(
            op.canonical_json(),
            r#"{"accountId":"acc_01","appId":"app_01","message":"0x68656c6c6f206b65797374656164","purpose":"sign_message"}"#
        );
        assert_eq!(
            op.digest_hex(),
            "1a3538ed34512b66677093a8fd576ae8965c82e2d89312a3510c81d83569f7ff"
        );
        assert_eq!(op.purpose(), Purpose::SignMessage);
    }

    /// API.md, "Digests", second worked example.
    #[test]
    fn api_md_sign_transaction_vector() {
        let op = transaction_example();
        assert_eq!(
            op.canonical_json(),
            r#"{"accountId":"acc_01","appId":"app_01","intent":{"chainId":31337,"data":"0x","gasLimit":"25200","maxFeePerGas":"2000000000","maxPriorityFeePerGas":"1000000000","to":"0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC","value":"1000000000000000"},"purpose":"sign_transaction"}"#
        );
        assert_eq!(
            op.digest_hex(),
            "b040b826f007ce1cc02ae0330081a56739c6c17501f19a69f8be942e9c5b0039"
        );
    }

    #[test]
    fn canonical_json_reads_back() {
        for op in [message_example(), transaction_example()] {
            let back: Operation = serde_json::from_str(&op.canonical_json()).unwrap();
            assert_eq!(back, op);
        }
        // The prepare answer's extra intent fields are ignored.
        let json = r#"{"purpose":"sign_transaction","appId":"app_01","accountId":"acc_01","intent":{"network":"anvil","from":"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266","chainId":31337,"to":"0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC","value":"1000000000000000","data":"0x","gasLimit":"25200","maxFeePerGas":"2000000000","maxPriorityFeePerGas":"1000000000"}}"#;
        let op: Operation = serde_json::from_str(json).unwrap();
        assert_eq!(op, transaction_example());
    }

    #[test]
    fn every_purpose_has_its_fields() {
        let cases = [
            (
                Operation::CreateWallet {
                    app_id: "a".into(),
                    user_id: "u".into(),
                    client_key: "k+/=".into(),
                },
                r#"{"appId":"a","clientKey":"k+/=","purpose":"create_wallet","userId":"u"}"#,
            ),
            (
                Operation::SignTypedData {
                    app_id: "a".into(),
                    account_id: "c".into(),
                    hash: [0xab; 32],
                },
                r#"{"accountId":"c","appId":"a","hash":"0xabababababababababababababababababababababababababababababababab","purpose":"sign_typed_data"}"#,
            ),
            (
                Operation::Export {
                    app_id: "a".into(),
                    wallet_id: "w".into(),
                    client_key: "k".into(),
                },
                r#"{"appId":"a","clientKey":"k","purpose":"export","walletId":"w"}"#,
            ),
            (
                Operation::ChangePin {
                    app_id: "a".into(),
                    wallet_id: "w".into(),
                },
                r#"{"appId":"a","purpose":"change_pin","walletId":"w"}"#,
            ),
            (
                Operation::Recover {
                    app_id: "a".into(),
                    wallet_id: "w".into(),
                },
                r#"{"appId":"a","purpose":"recover","walletId":"w"}"#,
            ),
            (
                Operation::NewPin {
                    app_id: "a".into(),
                    wallet_id: "w".into(),
                },
                r#"{"appId":"a","purpose":"new_pin","walletId":"w"}"#,
            ),
            (
                Operation::SignMessage {
                    app_id: "a".into(),
                    account_id: "c".into(),
                    message: vec![],
                },
                r#"{"accountId":"c","appId":"a","message":"0x","purpose":"sign_message"}"#,
            ),
        ];
        for (op, json) in cases {
            assert_eq!(op.canonical_json(), json);
            assert!(op.canonical_json().contains(op.purpose().as_str()));
            let back: Operation = serde_json::from_str(json).unwrap();
            assert_eq!(back, op);
        }
    }

    #[test]
    fn purposes_serialize_snake_case() {
        for p in Purpose::ALL {
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.as_str())
            );
            assert_eq!(p.to_string(), p.as_str());
        }
    }

    #[test]
    fn jcs_escapes_and_orders_like_rfc_8785() {
        // Control characters, quotes, non-ASCII and astral characters in ids.
        let op = Operation::ChangePin {
            app_id: "\u{1}\"\\\n/é€😀\u{7f}".into(),
            wallet_id: "w".into(),
        };
        assert_eq!(
            op.canonical_json(),
            "{\"appId\":\"\\u0001\\\"\\\\\\n/é€😀\u{7f}\",\"purpose\":\"change_pin\",\"walletId\":\"w\"}"
        );
        let back: Operation = serde_json::from_str(&op.canonical_json()).unwrap();
        assert_eq!(back, op);
    }

    #[test]
    fn chain_id_bounds() {
        let mut op = transaction_example();
        if let Operation::SignTransaction { intent, .. } = &mut op {
            intent.chain_id = MAX_SAFE_INTEGER;
        }
        assert_eq!(op.validate(), Ok(()));
        assert!(
            op.canonical_json()
                .contains("\"chainId\":9007199254740991,")
        );
        if let Operation::SignTransaction { intent, .. } = &mut op {
            intent.chain_id = MAX_SAFE_INTEGER + 1;
        }
        assert_eq!(
            op.validate(),
            Err(EnvelopeError::ChainIdOutOfRange(MAX_SAFE_INTEGER + 1))
        );
        let json = transaction_example()
            .canonical_json()
            .replace("31337", "9007199254740992");
        assert!(serde_json::from_str::<Operation>(&json).is_err());
    }

    #[test]
    fn tx_intent_postcard_round_trip() {
        let Operation::SignTransaction { intent, .. } = transaction_example() else {
            unreachable!()
        };
        let bytes = postcard::to_allocvec(&intent).unwrap();
        let back: TxIntent = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, intent);
        let mut big = intent.clone();
        big.chain_id = MAX_SAFE_INTEGER + 1;
        let bytes = postcard::to_allocvec(&big).unwrap();
        assert!(postcard::from_bytes::<TxIntent>(&bytes).is_err());
    }

    #[test]
    fn strict_hex_on_read() {
        for bad in [
            r#"{"purpose":"sign_message","appId":"a","accountId":"c","message":"68656c"}"#,
            r#"{"purpose":"sign_message","appId":"a","accountId":"c","message":"0x68656C"}"#,
            r#"{"purpose":"sign_message","appId":"a","accountId":"c","message":"0x686"}"#,
            r#"{"purpose":"sign_typed_data","appId":"a","accountId":"c","hash":"0xabab"}"#,
            r#"{"purpose":"sign_nothing","appId":"a"}"#,
            r#"{"purpose":"change_pin","appId":"a"}"#,
        ] {
            assert!(serde_json::from_str::<Operation>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn different_operations_have_different_digests() {
        let a = Operation::ChangePin {
            app_id: "a".into(),
            wallet_id: "w".into(),
        };
        let b = Operation::NewPin {
            app_id: "a".into(),
            wallet_id: "w".into(),
        };
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.app_id(), "a");
    }
}
