//! EvmClient against a real anvil node (started through keystead-testkit).

use std::net::TcpListener;
use std::time::Duration;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use keystead_chains::{ChainError, ChainRegistry, EvmClient, NetworkConfig, TRANSFER_GAS};
use keystead_testkit::anvil::{ANVIL_CHAIN_ID, Anvil, AnvilOptions};

const ETH: u128 = 1_000_000_000_000_000_000;

fn client(chain_id: u64, urls: &[&str]) -> EvmClient {
    let urls = urls.iter().map(|u| u.to_string()).collect();
    EvmClient::new(NetworkConfig::new("local", chain_id, urls)).expect("valid config")
}

fn client_for(anvil: &Anvil) -> EvmClient {
    client(anvil.chain_id(), &[anvil.url()])
}

/// A URL on which nothing listens (the port was free a moment ago).
fn closed_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn signer(key: [u8; 32]) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::from(key)).expect("valid key")
}

struct Transfer {
    chain_id: u64,
    nonce: u64,
    to: Address,
    value: U256,
    gas_limit: u64,
    max_fee_per_gas: u128,
    max_priority_fee_per_gas: u128,
}

/// An EIP-1559 transaction signed with the key, as EIP-2718 bytes.
fn sign(key: [u8; 32], t: &Transfer) -> Vec<u8> {
    let tx = TxEip1559 {
        chain_id: t.chain_id,
        nonce: t.nonce,
        gas_limit: t.gas_limit,
        max_fee_per_gas: t.max_fee_per_gas,
        max_priority_fee_per_gas: t.max_priority_fee_per_gas,
        to: TxKind::Call(t.to),
        value: t.value,
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let signature = signer(key)
        .sign_hash_sync(&tx.signature_hash())
        .expect("sign");
    TxEnvelope::from(tx.into_signed(signature)).encoded_2718()
}

/// A transfer from `from` with the node's current nonce and suggested fees.
async fn transfer(evm: &EvmClient, from: Address, to: Address, value: U256) -> Transfer {
    let fee = evm.fee_suggestion().await.expect("fees");
    Transfer {
        chain_id: evm.chain_id(),
        nonce: evm.pending_nonce(from).await.expect("nonce"),
        to,
        value,
        gas_limit: evm
            .estimate_gas(from, to, value, Bytes::new())
            .await
            .expect("estimate"),
        max_fee_per_gas: fee.max_fee_per_gas,
        max_priority_fee_per_gas: fee.max_priority_fee_per_gas,
    }
}

/// A fresh address nobody holds a key for.
fn fresh_address(seed: u8) -> Address {
    Address::from_slice(&keccak256([seed, 0x5e, 0xed]).as_slice()[12..])
}

async fn wait_receipt(evm: &EvmClient, hash: B256) -> keystead_chains::ReceiptInfo {
    // Automine includes the transaction before eth_sendRawTransaction answers; the loop
    // only guards against a slow machine, it asserts nothing about time.
    for _ in 0..200 {
        if let Some(receipt) = evm.receipt(hash).await.expect("receipt query") {
            return receipt;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no receipt for {hash}");
}

#[tokio::test]
async fn chain_id_is_checked() {
    let anvil = Anvil::start();
    assert_eq!(anvil.chain_id(), ANVIL_CHAIN_ID);

    let right = client_for(&anvil);
    right.check_chain().await.expect("right chain");

    let wrong = client(1, &[anvil.url()]);
    let expected = ChainError::WrongChain {
        expected: 1,
        got: ANVIL_CHAIN_ID,
    };
    assert_eq!(wrong.check_chain().await, Err(expected.clone()));
    // Every call refuses, not only the check.
    assert_eq!(wrong.balance(anvil.address(0)).await, Err(expected.clone()));
    let raw = sign(
        anvil.private_key(1),
        &Transfer {
            chain_id: 1,
            nonce: 0,
            to: anvil.address(2),
            value: U256::from(1),
            gas_limit: TRANSFER_GAS,
            max_fee_per_gas: 10_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
        },
    );
    assert_eq!(wrong.send_raw(&raw).await, Err(expected));

    // An endpoint on the wrong chain is an error even when a later one is right.
    let other = Anvil::start_with(AnvilOptions {
        chain_id: Some(5),
        ..Default::default()
    });
    let mixed = client(ANVIL_CHAIN_ID, &[other.url(), anvil.url()]);
    assert_eq!(
        mixed.balance(anvil.address(0)).await,
        Err(ChainError::WrongChain {
            expected: ANVIL_CHAIN_ID,
            got: 5
        })
    );
}

#[tokio::test]
async fn balances() {
    let anvil = Anvil::start();
    let evm = client_for(&anvil);
    assert_eq!(
        evm.balance(anvil.address(0)).await.unwrap(),
        U256::from(10_000 * ETH)
    );
    let fresh = fresh_address(1);
    assert_eq!(evm.balance(fresh).await.unwrap(), U256::ZERO);
    anvil.fund(fresh, U256::from(3 * ETH));
    assert_eq!(evm.balance(fresh).await.unwrap(), U256::from(3 * ETH));
    assert_eq!(evm.pending_nonce(fresh).await.unwrap(), 0);
}

#[tokio::test]
async fn fee_suggestion_is_sane() {
    let anvil = Anvil::start();
    let evm = client_for(&anvil);
    let fee = evm.fee_suggestion().await.unwrap();
    assert!(fee.base_fee > 0, "{fee:?}");
    assert!(fee.max_priority_fee_per_gas > 0, "{fee:?}");
    assert!(
        fee.max_fee_per_gas >= fee.base_fee + fee.max_priority_fee_per_gas,
        "{fee:?}"
    );
    assert_eq!(
        fee.max_fee_per_gas,
        2 * fee.base_fee + fee.max_priority_fee_per_gas
    );
}

#[tokio::test]
async fn gas_estimates_have_a_margin() {
    let anvil = Anvil::start();
    let evm = client_for(&anvil);
    let from = anvil.address(0);
    let to = anvil.address(1);
    let plain = evm
        .estimate_gas(from, to, U256::from(ETH), Bytes::new())
        .await
        .unwrap();
    assert!(plain >= TRANSFER_GAS, "{plain}");
    assert_eq!(plain, 25_200, "21,000 + 20 %");

    let data = Bytes::from(vec![0xab; 100]);
    let with_data = evm.estimate_gas(from, to, U256::ZERO, data).await.unwrap();
    assert!(with_data > plain, "{with_data} > {plain}");

    // A deployment is estimated too (init code that returns empty runtime code).
    let create = evm
        .estimate_gas(
            from,
            TxKind::Create,
            U256::ZERO,
            Bytes::from_static(&[0x60, 0x00, 0x60, 0x00, 0xf3]),
        )
        .await
        .unwrap();
    assert!(create > plain, "{create}");
}

#[tokio::test]
async fn send_transfer_and_read_the_receipt() {
    let anvil = Anvil::start();
    let evm = client_for(&anvil);
    let sender = anvil.address(1);
    let recipient = fresh_address(2);
    let value = U256::from(ETH / 1000);

    let sender_before = evm.balance(sender).await.unwrap();
    let recipient_before = evm.balance(recipient).await.unwrap();
    let nonce_before = evm.pending_nonce(sender).await.unwrap();

    let t = transfer(&evm, sender, recipient, value).await;
    let raw = sign(anvil.private_key(1), &t);
    let hash = evm.send_raw(&raw).await.expect("sent");
    assert_eq!(hash, keccak256(&raw));

    let receipt = wait_receipt(&evm, hash).await;
    assert!(receipt.status, "{receipt:?}");
    assert!(receipt.block_number >= 1, "{receipt:?}");
    assert_eq!(receipt.gas_used, TRANSFER_GAS);
    assert!(receipt.effective_gas_price <= t.max_fee_per_gas);

    let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    assert_eq!(
        evm.balance(recipient).await.unwrap(),
        recipient_before + value
    );
    assert_eq!(
        evm.balance(sender).await.unwrap(),
        sender_before - value - fee
    );
    assert_eq!(evm.pending_nonce(sender).await.unwrap(), nonce_before + 1);
    assert!(evm.transaction_known(hash).await.unwrap());

    // Rebroadcasting the same signed transaction (already mined) is a success with the
    // same hash, and moves nothing.
    assert_eq!(evm.send_raw(&raw).await, Ok(hash));
    assert_eq!(
        evm.balance(recipient).await.unwrap(),
        recipient_before + value
    );

    // Unknown transactions have no receipt.
    assert_eq!(evm.receipt(B256::repeat_byte(0x42)).await, Ok(None));
    assert!(
        !evm.transaction_known(B256::repeat_byte(0x42))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn insufficient_funds_from_the_node() {
    let anvil = Anvil::start();
    let evm = client_for(&anvil);
    let key = [0x11u8; 32];
    let empty = signer(key).address();
    assert_eq!(evm.balance(empty).await.unwrap(), U256::ZERO);
    let fee = evm.fee_suggestion().await.unwrap();
    let raw = sign(
        key,
        &Transfer {
            chain_id: ANVIL_CHAIN_ID,
            nonce: 0,
            to: anvil.address(0),
            value: U256::from(ETH),
            gas_limit: TRANSFER_GAS,
            max_fee_per_gas: fee.max_fee_per_gas,
            max_priority_fee_per_gas: fee.max_priority_fee_per_gas,
        },
    );
    assert_eq!(evm.send_raw(&raw).await, Err(ChainError::InsufficientFunds));
}

#[tokio::test]
async fn nonce_too_low_from_the_node() {
    let anvil = Anvil::start();
    let evm = client_for(&anvil);
    let sender = anvil.address(3);
    let first = transfer(&evm, sender, anvil.address(4), U256::from(1)).await;
    let hash = evm
        .send_raw(&sign(anvil.private_key(3), &first))
        .await
        .unwrap();
    assert!(wait_receipt(&evm, hash).await.status);

    // Another transaction (another value) with the used nonce.
    let again = Transfer {
        value: U256::from(2),
        ..first
    };
    assert_eq!(
        evm.send_raw(&sign(anvil.private_key(3), &again)).await,
        Err(ChainError::NonceTooLow)
    );
}

#[tokio::test]
async fn underpriced_replacement_and_pending_rebroadcast() {
    let anvil = Anvil::start_with(AnvilOptions {
        no_mining: true,
        ..Default::default()
    });
    let evm = client_for(&anvil);
    let sender = anvil.address(5);
    let first = transfer(&evm, sender, anvil.address(6), U256::from(1)).await;
    let first_raw = sign(anvil.private_key(5), &first);
    let hash = evm.send_raw(&first_raw).await.unwrap();
    assert_eq!(evm.receipt(hash).await, Ok(None), "pending, not mined");
    assert_eq!(evm.pending_nonce(sender).await.unwrap(), first.nonce + 1);

    // The same transaction again while it is pending: already known, a success.
    assert_eq!(evm.send_raw(&first_raw).await, Ok(hash));

    // A replacement (same nonce) with the same fees: underpriced.
    let replacement = Transfer {
        value: U256::from(2),
        ..first
    };
    assert_eq!(
        evm.send_raw(&sign(anvil.private_key(5), &replacement))
            .await,
        Err(ChainError::Underpriced)
    );

    // A fee cap under the base fee: underpriced too.
    let too_cheap = Transfer {
        nonce: first.nonce + 1,
        max_fee_per_gas: 1,
        max_priority_fee_per_gas: 1,
        ..first
    };
    assert_eq!(
        evm.send_raw(&sign(anvil.private_key(5), &too_cheap)).await,
        Err(ChainError::Underpriced)
    );

    anvil.mine();
    let receipt = wait_receipt(&evm, hash).await;
    assert!(receipt.status);
    assert_eq!(
        evm.balance(anvil.address(6)).await.unwrap(),
        U256::from(10_000 * ETH + 1)
    );
}

#[tokio::test]
async fn other_node_errors_are_rpc_errors() {
    let anvil = Anvil::start();
    let evm = client_for(&anvil);
    // Signed for another chain: the node refuses it with its own message.
    let mut t = transfer(&evm, anvil.address(7), anvil.address(8), U256::from(1)).await;
    t.chain_id = 1;
    match evm.send_raw(&sign(anvil.private_key(7), &t)).await {
        Err(ChainError::Rpc(message)) => assert!(!message.is_empty()),
        other => panic!("expected an Rpc error, got {other:?}"),
    }
    // Garbage is not a transaction.
    assert!(matches!(
        evm.send_raw(&[0x02, 0x01, 0x02]).await,
        Err(ChainError::Rpc(_))
    ));
    // An address without code answers balanceOf with nothing: an error, not a panic.
    assert!(matches!(
        evm.erc20_balance(anvil.address(0), anvil.address(1)).await,
        Err(ChainError::Rpc(_))
    ));
}

#[tokio::test]
async fn falls_back_to_the_next_url() {
    let anvil = Anvil::start();
    let closed = closed_url();

    // A refused connection: the next URL answers.
    let evm = client(ANVIL_CHAIN_ID, &[&closed, anvil.url()]);
    assert_eq!(
        evm.balance(anvil.address(0)).await.unwrap(),
        U256::from(10_000 * ETH)
    );
    evm.check_chain().await.unwrap();

    // An endpoint that accepts connections and never answers: the timeout, then the
    // next URL. (The listener is kept open; nothing accepts on it.)
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let mut config = NetworkConfig::new(
        "local",
        ANVIL_CHAIN_ID,
        vec![silent_url, anvil.url().to_string()],
    );
    config.request_timeout = Duration::from_millis(300);
    let evm = EvmClient::new(config).unwrap();
    assert_eq!(
        evm.balance(anvil.address(0)).await.unwrap(),
        U256::from(10_000 * ETH)
    );

    // Sends fall back too.
    let t = transfer(&evm, anvil.address(9), fresh_address(3), U256::from(5)).await;
    let hash = evm.send_raw(&sign(anvil.private_key(9), &t)).await.unwrap();
    assert!(wait_receipt(&evm, hash).await.status);
}

#[tokio::test]
async fn all_urls_down_is_unavailable() {
    let first = closed_url();
    let second = format!("{}/v3/SECRETAPIKEY", closed_url());
    let evm = client(ANVIL_CHAIN_ID, &[&first, &second]);
    match evm.balance(Address::ZERO).await {
        Err(ChainError::Unavailable(message)) => {
            assert!(!message.contains("SECRETAPIKEY"), "{message}");
            assert!(message.contains("eth_"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        evm.send_raw(&[0x02]).await,
        Err(ChainError::Unavailable(_))
    ));
    assert!(matches!(
        evm.check_chain().await,
        Err(ChainError::Unavailable(_))
    ));
}

#[tokio::test]
async fn registry_serves_configured_networks() {
    let anvil = Anvil::start();
    let toml_text = format!(
        r#"
        [[networks]]
        id = "local"
        chain_id = {}
        name = "Local (anvil)"
        rpc_urls = ["{}", "{}"]
        request_timeout = "5s"
        "#,
        anvil.chain_id(),
        closed_url(),
        anvil.url()
    );
    #[derive(serde::Deserialize)]
    struct File {
        networks: Vec<NetworkConfig>,
    }
    let file: File = toml::from_str(&toml_text).expect("config parses");
    let config = &file.networks[0];
    assert_eq!(config.symbol, "ETH");
    assert_eq!(config.decimals, 18);
    assert_eq!(config.request_timeout, Duration::from_secs(5));

    let registry = ChainRegistry::new(file.networks).unwrap();
    let local = registry.get("local").unwrap();
    assert_eq!(registry.by_chain_id(ANVIL_CHAIN_ID).unwrap().id(), "local");
    assert_eq!(
        local.balance(anvil.address(0)).await.unwrap(),
        U256::from(10_000 * ETH)
    );

    // Unknown keys are refused, as are invalid values.
    let unknown = toml_text.replace("name =", "colour = \"red\"\n        name =");
    assert!(toml::from_str::<File>(&unknown).is_err());
    let no_urls = r#"
        [[networks]]
        id = "local"
        chain_id = 1
        rpc_urls = []
    "#;
    assert!(toml::from_str::<File>(no_urls).is_err());
}

#[test]
fn testkit_anvil_helpers() {
    let anvil = Anvil::start_with(AnvilOptions {
        no_mining: true,
        ..Default::default()
    });
    // The dev keys are the dev accounts'.
    for i in 0..10 {
        assert_eq!(
            signer(anvil.private_key(i)).address(),
            anvil.address(i),
            "{i}"
        );
    }
    assert_eq!(
        anvil.private_key_hex(0),
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    );
    let start = anvil.block_number();
    anvil.mine();
    anvil.mine_blocks(3);
    assert_eq!(anvil.block_number(), start + 4);
    let fresh = fresh_address(9);
    anvil.set_balance(fresh, U256::from(7));
    anvil.fund(fresh, U256::from(5));
    let balance = anvil
        .rpc("eth_getBalance", serde_json::json!([fresh, "latest"]))
        .unwrap();
    assert_eq!(balance.as_str(), Some("0xc"));
    assert!(anvil.rpc("no_such_method", serde_json::json!([])).is_err());
    assert!(anvil.port() > 0 && anvil.url().ends_with(&anvil.port().to_string()));
}
