//! Key generation and every kind of signature, through the real enclave process, each
//! verified by recovering the signer.

mod common;

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{Transaction, TxEnvelope};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, Signature, U256};
use alloy_signer_local::{MnemonicBuilder, coins_bip39::English};
use common::*;
use keystead_enclave_proto::*;
use keystead_envelope::Operation;

const MAIL: &str = r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"Person":[{"name":"name","type":"string"},{"name":"wallet","type":"address"}],"Mail":[{"name":"from","type":"Person"},{"name":"to","type":"Person"},{"name":"contents","type":"string"}]},"primaryType":"Mail","domain":{"name":"Ether Mail","version":"1","chainId":1,"verifyingContract":"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},"message":{"from":{"name":"Cow","wallet":"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},"to":{"name":"Bob","wallet":"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},"contents":"Hello, Bob!"}}"#;
const BOB: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

fn address(account: &DerivedAccount) -> Address {
    account.address.parse().unwrap()
}

#[tokio::test]
async fn wallet_creation_gives_an_account_and_a_recovery_code() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    assert_eq!(created.accounts.len(), 1);
    let account = &created.accounts[0];
    assert_eq!(account.path, "m/44'/60'/0'/0/0");
    assert_eq!(
        account.address,
        address(account).to_checksum(None),
        "EIP-55"
    );
    assert!(account.parent_xpub.starts_with("xpub"));
    assert_eq!(created.recovery_code.len(), 29);
    assert!(created.wallet.dr_data_key.is_some());
    // A second wallet is a different wallet.
    let other = h.create_wallet(PIN).await;
    assert_ne!(other.accounts[0].address, account.address);
}

#[tokio::test]
async fn personal_sign_recovers_to_the_account() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    let reply = h
        .sign_message(&created.wallet, PIN, b"hello keystead")
        .await;
    assert_eq!(
        reply.wallet_update, None,
        "a right PIN on a clean record changes nothing"
    );
    let signed = signature_of(&reply);
    let sig = Signature::try_from(signed.signature.as_slice()).unwrap();
    assert_eq!(
        sig.recover_address_from_msg(b"hello keystead").unwrap(),
        address(&created.accounts[0])
    );
    assert_eq!(signed.signer, created.accounts[0].address);
}

#[tokio::test]
async fn typed_data_is_hashed_in_the_enclave_and_recovers_to_the_account() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    let typed: alloy_dyn_abi::TypedData = serde_json::from_str(MAIL).unwrap();
    let hash = typed.eip712_signing_hash().unwrap();
    let op = Operation::SignTypedData {
        app_id: APP.into(),
        account_id: "acc_0".into(),
        hash: hash.0,
    };
    let envelope = h.user.envelope(PIN, &op);
    let reply = h
        .call(h.sign_request(
            &created.wallet,
            envelope,
            SignPayload::TypedData(MAIL.into()),
        ))
        .await;
    let sig = Signature::try_from(signature_of(&reply).signature.as_slice()).unwrap();
    assert_eq!(
        sig.recover_address_from_prehash(&hash).unwrap(),
        address(&created.accounts[0])
    );

    // The same envelope approves only that hash: other typed data is refused.
    let changed = MAIL.replace("Hello, Bob!", "Send me everything");
    let envelope = h.user.envelope(PIN, &op);
    let reply = h
        .call(h.sign_request(&created.wallet, envelope, SignPayload::TypedData(changed)))
        .await;
    assert_eq!(
        reply.result,
        Err(EnclaveError::EnvelopeRejected(
            EnvelopeRejection::WrongDigest
        ))
    );
}

fn eip1559(nonce: u64) -> UnsignedTx {
    UnsignedTx::Eip1559 {
        chain_id: 31337,
        nonce,
        max_fee_per_gas: 2_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        gas_limit: 21_000,
        to: BOB.parse::<Address>().unwrap().into(),
        value: U256::from(1_000_000_000_000_000u64).to_be_bytes(),
        data: vec![],
    }
}

#[tokio::test]
async fn transactions_are_signed_after_matching_the_intent() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    let intent = intent(BOB);
    let op = Operation::SignTransaction {
        app_id: APP.into(),
        account_id: "acc_0".into(),
        intent: intent.clone(),
    };

    let legacy = UnsignedTx::Legacy {
        chain_id: 31337,
        nonce: 1,
        gas_price: 1_500_000_000,
        gas_limit: 21_000,
        to: BOB.parse::<Address>().unwrap().into(),
        value: U256::from(1_000_000_000_000_000u64).to_be_bytes(),
        data: vec![],
    };
    for tx in [eip1559(0), legacy] {
        let envelope = h.user.envelope(PIN, &op);
        let payload = SignPayload::Transaction {
            intent: intent.clone(),
            tx: tx.clone(),
        };
        let signed = signature_of(
            &h.call(h.sign_request(&created.wallet, envelope, payload))
                .await,
        );
        let raw = signed.signed_transaction.unwrap();
        let decoded = TxEnvelope::decode_2718(&mut raw.as_slice()).unwrap();
        assert_eq!(
            decoded.recover_signer().unwrap(),
            address(&created.accounts[0])
        );
        assert_eq!(decoded.tx_hash().0, signed.transaction_hash.unwrap());
        assert_eq!(decoded.to(), Some(BOB.parse().unwrap()));
        assert_eq!(decoded.chain_id(), Some(31337));
    }

    // A server that raises the value after the user approved gets nothing signed.
    let UnsignedTx::Eip1559 { .. } = eip1559(2) else {
        unreachable!()
    };
    let mut tampered = eip1559(2);
    if let UnsignedTx::Eip1559 { value, .. } = &mut tampered {
        *value = U256::from(10u64.pow(18)).to_be_bytes();
    }
    let envelope = h.user.envelope(PIN, &op);
    let payload = SignPayload::Transaction {
        intent: intent.clone(),
        tx: tampered,
    };
    let reply = h
        .call(h.sign_request(&created.wallet, envelope, payload))
        .await;
    assert!(
        matches!(reply.result, Err(EnclaveError::IntentMismatch(ref m)) if m.contains("value")),
        "{reply:?}"
    );

    // Nor with a changed intent under the old approval.
    let mut other_intent = intent.clone();
    other_intent.value = "1000000000000000000".into();
    let envelope = h.user.envelope(PIN, &op);
    let payload = SignPayload::Transaction {
        intent: other_intent,
        tx: eip1559(3),
    };
    let reply = h
        .call(h.sign_request(&created.wallet, envelope, payload))
        .await;
    assert_eq!(
        reply.result,
        Err(EnclaveError::EnvelopeRejected(
            EnvelopeRejection::WrongDigest
        ))
    );
}

#[tokio::test]
async fn export_reveals_the_mnemonic_of_the_same_accounts_only_to_the_client() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    let (reply, client_kp) = h.export(&created.wallet, PIN).await;
    let Ok(Response::Exported { mnemonic }) = reply.result else {
        panic!("export failed: {reply:?}")
    };
    let phrase = keystead_envelope::open_mnemonic(&client_kp, &mnemonic).unwrap();
    assert_eq!(phrase.split(' ').count(), 24);
    // An independent BIP-39/BIP-32 implementation derives the same address.
    let signer = MnemonicBuilder::<English>::default()
        .phrase(phrase.as_str())
        .index(0)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(signer.address(), address(&created.accounts[0]));
    // Another key cannot open it.
    let (_, _) = h.user.one_time_key();
    let (other_kp, _) = h.user.one_time_key();
    assert!(keystead_envelope::open_mnemonic(&other_kp, &mnemonic).is_err());
}

#[tokio::test]
async fn health_reports_the_hardening_and_the_process_shows_it() {
    let h = Harness::start().await;
    let Ok(Response::Pong(health)) = h.call(Request::Ping).await.result else {
        panic!("no pong")
    };
    assert_eq!(health.protocol_version, PROTOCOL_VERSION);
    assert_eq!(health.attestation_format, "dev");
    assert!(health.non_dumpable && health.core_dumps_disabled);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", h.enclave.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert!(core.split_whitespace().nth(4) == Some("0"), "{core}");
    if health.memory_locked {
        let status = std::fs::read_to_string(format!("/proc/{}/status", h.enclave.pid())).unwrap();
        let locked = status.lines().find(|l| l.starts_with("VmLck:")).unwrap();
        assert_ne!(locked.split_whitespace().nth(1), Some("0"), "{locked}");
    }
}
