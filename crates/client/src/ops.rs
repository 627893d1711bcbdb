//! What the user approves: operations, their digests' inputs, and PIN envelopes sealed to
//! an attested enclave key (API.md, "Digests: what a PIN envelope approves").
//!
//! The client computes every digest from what the user asked for, never from a digest
//! the server offers, so that a server cannot swap the operation.

use alloy_dyn_abi::TypedData;
use alloy_primitives::{Address, U256};
use keystead_envelope::{Operation, PinPayload, Sealed, TxIntent, seal_pin, validate_new_pin};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::attest::EnclaveKey;
use crate::error::{ClientError, Result};

/// How long an envelope stays valid: well under the contract's 10 minutes, and long
/// enough for a slow `tx/send`.
pub const ENVELOPE_LIFETIME_SECS: u64 = 300;

/// Seals `secret` (a PIN, or the recovery code of a `recover` envelope) approving `op`
/// to the attested enclave key, with a fresh nonce, expiring
/// [`ENVELOPE_LIFETIME_SECS`] after `now_unix`.
pub fn seal_envelope(
    enclave: &EnclaveKey,
    secret: &Zeroizing<String>,
    op: &Operation,
    now_unix: u64,
) -> Result<Sealed> {
    op.validate()?;
    let mut rng = rand::rng();
    let payload = PinPayload::for_operation(
        secret.clone(),
        op,
        now_unix + ENVELOPE_LIFETIME_SECS,
        &mut rng,
    );
    Ok(seal_pin(&enclave.public_key, &payload, &mut rng)?)
}

/// Applies the PIN rules to a PIN being chosen, before anything is sealed.
pub fn check_new_pin(pin: &str) -> Result<()> {
    validate_new_pin(pin).map_err(ClientError::WeakPin)
}

/// The bytes a message stands for: its UTF-8 bytes, or the hex it spells (`0x` optional).
pub fn message_bytes(message: &str, hex_encoded: bool) -> Result<Vec<u8>> {
    if !hex_encoded {
        return Ok(message.as_bytes().to_vec());
    }
    let digits = message.strip_prefix("0x").unwrap_or(message);
    hex::decode(digits)
        .map_err(|_| ClientError::InvalidInput("the message is not valid hex".into()))
}

/// The EIP-712 signing hash of typed data in its JSON form (`types`, `primaryType`,
/// `domain`, `message`): `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message))`.
pub fn typed_data_hash(typed_data: &Value) -> Result<[u8; 32]> {
    let typed: TypedData = serde_json::from_value(typed_data.clone())
        .map_err(|e| ClientError::InvalidInput(format!("not EIP-712 typed data: {e}")))?;
    let hash = typed
        .eip712_signing_hash()
        .map_err(|e| ClientError::InvalidInput(format!("cannot hash the typed data: {e}")))?;
    Ok(hash.0)
}

/// Reads typed data from a JSON file.
pub fn read_typed_data(path: &std::path::Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::io(format!("cannot read {}", path.display()), e))?;
    serde_json::from_str(&text)
        .map_err(|e| ClientError::InvalidInput(format!("{} is not JSON: {e}", path.display())))
}

/// A transaction as the user asked for it on the command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRequest {
    pub to: Address,
    pub value: U256,
    pub data: Vec<u8>,
}

impl TxRequest {
    /// Parses `--to`, `--value` (decimal wei) and `--data` (hex, `0x` optional).
    pub fn parse(to: &str, value: &str, data: Option<&str>) -> Result<Self> {
        let to = to
            .parse::<Address>()
            .map_err(|_| ClientError::InvalidInput("--to is not an address".into()))?;
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ClientError::InvalidInput(
                "--value is a decimal amount in wei".into(),
            ));
        }
        let value = U256::from_str_radix(value, 10)
            .map_err(|_| ClientError::InvalidInput("--value is too large".into()))?;
        let data = match data {
            None => Vec::new(),
            Some(hex_data) => hex::decode(hex_data.strip_prefix("0x").unwrap_or(hex_data))
                .map_err(|_| ClientError::InvalidInput("--data is not valid hex".into()))?,
        };
        Ok(Self { to, value, data })
    }

    /// `to` as EIP-55, the form the API takes.
    pub fn to_checksum(&self) -> String {
        self.to.to_checksum(None)
    }

    /// `value` as a decimal string.
    pub fn value_decimal(&self) -> String {
        self.value.to_string()
    }

    /// `data` as `0x` + lowercase hex, `None` when empty.
    pub fn data_hex(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| format!("0x{}", hex::encode(&self.data)))
    }

    /// Refuses an intent from `tx/prepare` whose recipient, value or data differ from
    /// this request: the user approves what they asked for, not what the server wrote.
    /// (Gas limits and fee caps are the server's to choose; the enclave enforces them.)
    pub fn check_intent(&self, intent: &TxIntent) -> Result<()> {
        let to = intent
            .to
            .parse::<Address>()
            .map_err(|_| ClientError::IntentMismatch("recipient"))?;
        if to != self.to {
            return Err(ClientError::IntentMismatch("recipient"));
        }
        if U256::from_str_radix(&intent.value, 10).ok() != Some(self.value) {
            return Err(ClientError::IntentMismatch("value"));
        }
        let data = intent
            .data
            .strip_prefix("0x")
            .and_then(|d| hex::decode(d).ok())
            .ok_or(ClientError::IntentMismatch("data"))?;
        if data != self.data {
            return Err(ClientError::IntentMismatch("data"));
        }
        Ok(())
    }
}

/// Reads the digest fields of a `tx/prepare` intent (its `network` and `from` are not
/// part of the digest).
pub fn parse_intent(intent: &Value) -> Result<TxIntent> {
    serde_json::from_value(intent.clone())
        .map_err(|e| ClientError::Decode(format!("tx/prepare intent: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keystead_attestation::AttestationFormat;
    use keystead_envelope::{HpkeKeyPair, check, open_pin};
    use serde_json::json;

    /// API.md, "Digests", first worked example, built the way `sign-message` builds it.
    #[test]
    fn sign_message_digest_matches_api_md() {
        let op = Operation::SignMessage {
            app_id: "app_01".into(),
            account_id: "acc_01".into(),
            message: message_bytes("hello keystead", false).unwrap(),
        };
        assert_eq!(
            op.digest_hex(),
            "1a3538ed34512b66677093a8fd576ae8965c82e2d89312a3510c81d83569f7ff"
        );
        // The same message given as hex has the same digest.
        let hex_op = Operation::SignMessage {
            app_id: "app_01".into(),
            account_id: "acc_01".into(),
            message: message_bytes("0x68656c6c6f206b65797374656164", true).unwrap(),
        };
        assert_eq!(hex_op.digest(), op.digest());
        assert!(message_bytes("0xzz", true).is_err());
    }

    /// API.md, "Digests", second worked example, from a prepare answer.
    #[test]
    fn sign_transaction_digest_matches_api_md() {
        let prepared = json!({"network": "local", "from": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "chainId": 31337, "to": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "value": "1000000000000000", "data": "0x", "gasLimit": "25200",
            "maxFeePerGas": "2000000000", "maxPriorityFeePerGas": "1000000000"});
        let intent = parse_intent(&prepared).unwrap();
        let request = TxRequest::parse(
            "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
            "1000000000000000",
            None,
        )
        .unwrap();
        request.check_intent(&intent).unwrap();
        assert_eq!(request.to_checksum(), intent.to);
        let op = Operation::SignTransaction {
            app_id: "app_01".into(),
            account_id: "acc_01".into(),
            intent,
        };
        assert_eq!(
            op.digest_hex(),
            "b040b826f007ce1cc02ae0330081a56739c6c17501f19a69f8be942e9c5b0039"
        );
    }

    #[test]
    fn a_swapped_intent_is_refused() {
        let request = TxRequest::parse(
            "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "1000",
            Some("0xAbCd"),
        )
        .unwrap();
        assert_eq!(request.data_hex().as_deref(), Some("0xabcd"));
        let good = TxIntent {
            chain_id: 31337,
            to: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC".into(),
            value: "1000".into(),
            data: "0xabcd".into(),
            gas_limit: "30000".into(),
            max_fee_per_gas: "1".into(),
            max_priority_fee_per_gas: "1".into(),
        };
        request.check_intent(&good).unwrap();
        let mut bad = good.clone();
        bad.to = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into();
        assert!(matches!(
            request.check_intent(&bad),
            Err(ClientError::IntentMismatch("recipient"))
        ));
        let mut bad = good.clone();
        bad.value = "1001".into();
        assert!(request.check_intent(&bad).is_err());
        let mut bad = good;
        bad.data = "0x".into();
        assert!(request.check_intent(&bad).is_err());
        assert!(TxRequest::parse("0x1234", "1", None).is_err());
        assert!(
            TxRequest::parse("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "-1", None).is_err()
        );
        assert!(
            TxRequest::parse("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "1e18", None).is_err()
        );
    }

    /// The EIP-712 specification's example ("Ether Mail"), read from a file.
    #[test]
    fn typed_data_hash_from_a_json_file() {
        let json = r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"Person":[{"name":"name","type":"string"},{"name":"wallet","type":"address"}],"Mail":[{"name":"from","type":"Person"},{"name":"to","type":"Person"},{"name":"contents","type":"string"}]},"primaryType":"Mail","domain":{"name":"Ether Mail","version":"1","chainId":1,"verifyingContract":"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},"message":{"from":{"name":"Cow","wallet":"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},"to":{"name":"Bob","wallet":"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},"contents":"Hello, Bob!"}}"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mail.json");
        std::fs::write(&path, json).unwrap();
        let value = read_typed_data(&path).unwrap();
        assert_eq!(
            hex::encode(typed_data_hash(&value).unwrap()),
            "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
        );
        assert!(typed_data_hash(&json!({"hello": 1})).is_err());
        std::fs::write(&path, "not json").unwrap();
        assert!(read_typed_data(&path).is_err());
    }

    #[test]
    fn envelopes_open_to_the_operation() {
        let mut rng = rand::rng();
        let enclave = HpkeKeyPair::generate(&mut rng);
        let key = EnclaveKey {
            public_key: enclave.public_key(),
            format: AttestationFormat::Dev,
        };
        let op = Operation::ChangePin {
            app_id: "app_01".into(),
            wallet_id: "wal_01".into(),
        };
        let now = 1_750_000_000;
        let pin = Zeroizing::new("482915".to_string());
        let sealed = seal_envelope(&key, &pin, &op, now).unwrap();
        let payload = open_pin(&enclave, &sealed).unwrap();
        assert_eq!(payload.pin.as_str(), "482915");
        assert_eq!(payload.nonce.len(), 32);
        assert_eq!(payload.expires_at, now + ENVELOPE_LIFETIME_SECS);
        check(&payload, &op, now).unwrap();
        // Not good for another operation.
        let other = Operation::NewPin {
            app_id: "app_01".into(),
            wallet_id: "wal_01".into(),
        };
        assert!(check(&payload, &other, now).is_err());
        // Two envelopes never share a nonce.
        let again = open_pin(&enclave, &seal_envelope(&key, &pin, &op, now).unwrap()).unwrap();
        assert_ne!(again.nonce, payload.nonce);
    }

    #[test]
    fn new_pins_follow_the_rules() {
        assert!(check_new_pin("482915").is_ok());
        assert!(matches!(
            check_new_pin("123456"),
            Err(ClientError::WeakPin(_))
        ));
        assert!(check_new_pin("12345").is_err());
    }
}
