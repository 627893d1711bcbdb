//! Signing inside the enclave: EIP-191 messages, EIP-712 typed data, and transactions
//! checked field by field against the intent the user approved.

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy_dyn_abi::TypedData;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, eip191_hash_message};

use keystead_enclave_proto::{Signed, UnsignedTx};
use keystead_envelope::TxIntent;

use crate::keys::EvmSigner;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("typed data is invalid: {0}")]
    TypedData(String),
    #[error("intent field {0} is not in canonical form")]
    IntentNotCanonical(&'static str),
    #[error("transaction {0} differs from the approved intent")]
    Mismatch(&'static str),
}

/// The EIP-712 signing hash of typed data, computed from the JSON itself.
pub fn typed_data_hash(json: &str) -> Result<B256, SignError> {
    let typed: TypedData =
        serde_json::from_str(json).map_err(|e| SignError::TypedData(e.to_string()))?;
    typed
        .eip712_signing_hash()
        .map_err(|e| SignError::TypedData(e.to_string()))
}

fn signed(sig: alloy_primitives::Signature, signer: &EvmSigner) -> Signed {
    Signed {
        signature: sig.as_bytes().to_vec(),
        signed_transaction: None,
        transaction_hash: None,
        signer: signer.address().to_checksum(None),
    }
}

/// EIP-191 `personal_sign`.
pub fn sign_message(signer: &EvmSigner, message: &[u8]) -> Signed {
    signed(signer.sign_hash(&eip191_hash_message(message)), signer)
}

/// Signs an EIP-712 hash the caller computed with [`typed_data_hash`].
pub fn sign_typed_hash(signer: &EvmSigner, hash: &B256) -> Signed {
    signed(signer.sign_hash(hash), signer)
}

/// The intent as numbers, refusing any field not written the one way a client writes it,
/// since the approved digest covers the text.
struct ParsedIntent {
    chain_id: u64,
    to: Address,
    value: U256,
    data: Vec<u8>,
    gas_limit: u64,
    max_fee_per_gas: u128,
    max_priority_fee_per_gas: u128,
}

fn decimal<T: std::str::FromStr>(text: &str, field: &'static str) -> Result<T, SignError> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(SignError::IntentNotCanonical(field));
    }
    text.parse()
        .map_err(|_| SignError::IntentNotCanonical(field))
}

fn parse_intent(intent: &TxIntent) -> Result<ParsedIntent, SignError> {
    let to: Address = intent
        .to
        .parse()
        .map_err(|_| SignError::IntentNotCanonical("to"))?;
    if to.to_checksum(None) != intent.to {
        return Err(SignError::IntentNotCanonical("to"));
    }
    let data_hex = intent
        .data
        .strip_prefix("0x")
        .ok_or(SignError::IntentNotCanonical("data"))?;
    if data_hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(SignError::IntentNotCanonical("data"));
    }
    let data = hex::decode(data_hex).map_err(|_| SignError::IntentNotCanonical("data"))?;
    Ok(ParsedIntent {
        chain_id: intent.chain_id,
        to,
        value: decimal::<U256>(&intent.value, "value")?,
        data,
        gas_limit: decimal(&intent.gas_limit, "gasLimit")?,
        max_fee_per_gas: decimal(&intent.max_fee_per_gas, "maxFeePerGas")?,
        max_priority_fee_per_gas: decimal(
            &intent.max_priority_fee_per_gas,
            "maxPriorityFeePerGas",
        )?,
    })
}

fn require(ok: bool, field: &'static str) -> Result<(), SignError> {
    if ok {
        Ok(())
    } else {
        Err(SignError::Mismatch(field))
    }
}

/// Checks the transaction against the intent (same chain, recipient, value and data;
/// gas and fees within the caps the user saw), then signs it.
pub fn sign_transaction(
    signer: &EvmSigner,
    intent: &TxIntent,
    tx: &UnsignedTx,
) -> Result<Signed, SignError> {
    let want = parse_intent(intent)?;
    let envelope: TxEnvelope = match tx {
        UnsignedTx::Legacy {
            chain_id,
            nonce,
            gas_price,
            gas_limit,
            to,
            value,
            data,
        } => {
            check_common(&want, *chain_id, to, value, data, *gas_limit)?;
            require(*gas_price <= want.max_fee_per_gas, "gasPrice")?;
            let tx = TxLegacy {
                chain_id: Some(*chain_id),
                nonce: *nonce,
                gas_price: *gas_price,
                gas_limit: *gas_limit,
                to: TxKind::Call(Address::from(*to)),
                value: U256::from_be_bytes(*value),
                input: Bytes::copy_from_slice(data),
            };
            let sig = signer.sign_hash(&tx.signature_hash());
            tx.into_signed(sig).into()
        }
        UnsignedTx::Eip1559 {
            chain_id,
            nonce,
            max_fee_per_gas,
            max_priority_fee_per_gas,
            gas_limit,
            to,
            value,
            data,
        } => {
            check_common(&want, *chain_id, to, value, data, *gas_limit)?;
            require(*max_fee_per_gas <= want.max_fee_per_gas, "maxFeePerGas")?;
            require(
                *max_priority_fee_per_gas <= want.max_priority_fee_per_gas
                    && max_priority_fee_per_gas <= max_fee_per_gas,
                "maxPriorityFeePerGas",
            )?;
            let tx = TxEip1559 {
                chain_id: *chain_id,
                nonce: *nonce,
                gas_limit: *gas_limit,
                max_fee_per_gas: *max_fee_per_gas,
                max_priority_fee_per_gas: *max_priority_fee_per_gas,
                to: TxKind::Call(Address::from(*to)),
                value: U256::from_be_bytes(*value),
                access_list: Default::default(),
                input: Bytes::copy_from_slice(data),
            };
            let sig = signer.sign_hash(&tx.signature_hash());
            tx.into_signed(sig).into()
        }
    };
    Ok(Signed {
        signature: envelope.signature().as_rsy().to_vec(),
        signed_transaction: Some(envelope.encoded_2718()),
        transaction_hash: Some(envelope.tx_hash().0),
        signer: signer.address().to_checksum(None),
    })
}

fn check_common(
    want: &ParsedIntent,
    chain_id: u64,
    to: &[u8; 20],
    value: &[u8; 32],
    data: &[u8],
    gas_limit: u64,
) -> Result<(), SignError> {
    require(chain_id == want.chain_id, "chainId")?;
    require(Address::from(*to) == want.to, "to")?;
    require(U256::from_be_bytes(*value) == want.value, "value")?;
    require(data == want.data.as_slice(), "data")?;
    require(gas_limit <= want.gas_limit, "gasLimit")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::Transaction;
    use alloy_consensus::transaction::SignerRecoverable;
    use alloy_eips::eip2718::Decodable2718;

    const KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    fn signer() -> EvmSigner {
        EvmSigner::from_slice(&hex::decode(KEY).unwrap()).unwrap()
    }

    fn alloy_signer() -> alloy_signer_local::PrivateKeySigner {
        KEY.parse().unwrap()
    }

    fn intent() -> TxIntent {
        TxIntent {
            chain_id: 31337,
            to: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC".into(),
            value: "1000000000000000".into(),
            data: "0x".into(),
            gas_limit: "25200".into(),
            max_fee_per_gas: "2000000000".into(),
            max_priority_fee_per_gas: "1000000000".into(),
        }
    }

    fn eip1559() -> UnsignedTx {
        let to: Address = intent().to.parse().unwrap();
        UnsignedTx::Eip1559 {
            chain_id: 31337,
            nonce: 4,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            gas_limit: 21_000,
            to: to.into(),
            value: U256::from(1_000_000_000_000_000u64).to_be_bytes(),
            data: vec![],
        }
    }

    #[test]
    fn message_signature_recovers_to_the_signer() {
        let out = sign_message(&signer(), b"hello keystead");
        let sig = alloy_primitives::Signature::try_from(out.signature.as_slice()).unwrap();
        assert_eq!(
            sig.recover_address_from_msg(b"hello keystead").unwrap(),
            signer().address()
        );
        assert_eq!(out.signer, alloy_signer().address().to_checksum(None));
        assert_eq!(out.signature[64], sig.v() as u8 + 27);
    }

    /// RFC 6979 signatures are deterministic: the enclave's k256 0.14 signer and alloy's
    /// own (k256 0.13) must give the same bytes, low-s and parity included.
    #[test]
    fn signatures_equal_alloys_signer_byte_for_byte() {
        use alloy_signer::SignerSync;
        let (ours, theirs) = (signer(), alloy_signer());
        for i in 0u32..64 {
            let message = format!("message {i}");
            assert_eq!(
                sign_message(&ours, message.as_bytes()).signature,
                theirs
                    .sign_message_sync(message.as_bytes())
                    .unwrap()
                    .as_bytes()
                    .to_vec()
            );
            let hash = alloy_primitives::keccak256(i.to_be_bytes());
            assert_eq!(
                sign_typed_hash(&ours, &hash).signature,
                theirs.sign_hash_sync(&hash).unwrap().as_bytes().to_vec()
            );
        }
    }

    #[test]
    fn transaction_matching_the_intent_is_signed_and_recoverable() {
        let out = sign_transaction(&signer(), &intent(), &eip1559()).unwrap();
        let raw = out.signed_transaction.unwrap();
        let decoded = TxEnvelope::decode_2718(&mut raw.as_slice()).unwrap();
        assert_eq!(decoded.recover_signer().unwrap(), signer().address());
        assert_eq!(decoded.tx_hash().0, out.transaction_hash.unwrap());
        assert_eq!(decoded.nonce(), 4);
    }

    #[test]
    fn legacy_transaction_is_signed_with_eip155() {
        let UnsignedTx::Eip1559 { to, value, .. } = eip1559() else {
            unreachable!()
        };
        let tx = UnsignedTx::Legacy {
            chain_id: 31337,
            nonce: 0,
            gas_price: 1_500_000_000,
            gas_limit: 21_000,
            to,
            value,
            data: vec![],
        };
        let out = sign_transaction(&signer(), &intent(), &tx).unwrap();
        let decoded =
            TxEnvelope::decode_2718(&mut out.signed_transaction.unwrap().as_slice()).unwrap();
        assert_eq!(decoded.recover_signer().unwrap(), signer().address());
        assert_eq!(decoded.chain_id(), Some(31337));
    }

    #[test]
    fn every_deviation_from_the_intent_is_refused() {
        let base = eip1559();
        type Change = Box<dyn Fn(&mut UnsignedTx)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "chainId",
                Box::new(|t| {
                    if let UnsignedTx::Eip1559 { chain_id, .. } = t {
                        *chain_id = 1
                    }
                }),
            ),
            (
                "to",
                Box::new(|t| {
                    if let UnsignedTx::Eip1559 { to, .. } = t {
                        to[0] ^= 1
                    }
                }),
            ),
            (
                "value",
                Box::new(|t| {
                    if let UnsignedTx::Eip1559 { value, .. } = t {
                        value[31] ^= 1
                    }
                }),
            ),
            (
                "data",
                Box::new(|t| {
                    if let UnsignedTx::Eip1559 { data, .. } = t {
                        data.push(0)
                    }
                }),
            ),
            (
                "gasLimit",
                Box::new(|t| {
                    if let UnsignedTx::Eip1559 { gas_limit, .. } = t {
                        *gas_limit = 25_201
                    }
                }),
            ),
            (
                "maxFeePerGas",
                Box::new(|t| {
                    if let UnsignedTx::Eip1559 {
                        max_fee_per_gas, ..
                    } = t
                    {
                        *max_fee_per_gas += 1
                    }
                }),
            ),
            (
                "maxPriorityFeePerGas",
                Box::new(|t| {
                    if let UnsignedTx::Eip1559 {
                        max_priority_fee_per_gas,
                        ..
                    } = t
                    {
                        *max_priority_fee_per_gas += 1
                    }
                }),
            ),
        ];
        for (field, change) in cases {
            let mut tx = base.clone();
            change(&mut tx);
            assert_eq!(
                sign_transaction(&signer(), &intent(), &tx).unwrap_err(),
                SignError::Mismatch(field)
            );
        }
    }

    #[test]
    fn non_canonical_intents_are_refused() {
        let mut lower = intent();
        lower.to = lower.to.to_lowercase();
        assert_eq!(
            sign_transaction(&signer(), &lower, &eip1559()).unwrap_err(),
            SignError::IntentNotCanonical("to")
        );
        let mut padded = intent();
        padded.value = "01000000000000000".into();
        assert_eq!(
            sign_transaction(&signer(), &padded, &eip1559()).unwrap_err(),
            SignError::IntentNotCanonical("value")
        );
    }

    #[test]
    fn typed_data_hash_matches_the_eip712_example() {
        // The "Mail" example of EIP-712.
        let json = r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"Person":[{"name":"name","type":"string"},{"name":"wallet","type":"address"}],"Mail":[{"name":"from","type":"Person"},{"name":"to","type":"Person"},{"name":"contents","type":"string"}]},"primaryType":"Mail","domain":{"name":"Ether Mail","version":"1","chainId":1,"verifyingContract":"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},"message":{"from":{"name":"Cow","wallet":"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},"to":{"name":"Bob","wallet":"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},"contents":"Hello, Bob!"}}"#;
        assert_eq!(
            hex::encode(typed_data_hash(json).unwrap()),
            "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
        );
        assert!(matches!(
            typed_data_hash("{}"),
            Err(SignError::TypedData(_))
        ));
    }
}
