//! Sending ETH end to end: anvil, a real OpenID provider, the real binary. Transfers are
//! checked on the chain: receipts, balances, nonces.

mod common;
mod e2e;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use alloy_primitives::U256;
use e2e::{Db, Env, User, Wallet};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PIN: &str = "582917";
const ETH: u128 = 1_000_000_000_000_000_000;
/// anvil's second development account: a recipient nobody else sends to here.
const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

async fn funded_user(env: &Env, sub: &str, wei: u128) -> (User, Wallet) {
    let mut user = env.user(sub).await;
    let wallet = user.create_wallet(PIN).await;
    if wei > 0 {
        env.fund(&wallet.address, wei);
    }
    (user, wallet)
}

/// The transaction's receipt, waiting for anvil to mine it (automine is asynchronous).
fn receipt(env: &Env, hash: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let receipt = env
            .anvil
            .rpc("eth_getTransactionReceipt", json!([hash]))
            .unwrap();
        if !receipt.is_null() {
            return receipt;
        }
        assert!(Instant::now() < deadline, "no receipt for {hash}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn quantity(v: &Value) -> U256 {
    v.as_str().unwrap().parse().unwrap()
}

async fn send_eth(db: Db) {
    let env = Env::start(db).await;
    let (mut alice, wallet) = funded_user(&env, "alice", 10 * ETH).await;
    let value = ETH / 1000;
    let sender_before = env.balance(&wallet.address);
    let recipient_before = env.balance(RECIPIENT);

    let prepared = alice.prepare(&wallet.account_id, RECIPIENT, value).await;
    let intent = &prepared["intent"];
    assert_eq!(intent["from"], wallet.address.as_str());
    assert_eq!(intent["to"], RECIPIENT);
    assert_eq!(intent["chainId"], 31337);
    assert_eq!(intent["data"], "0x");
    let gas: u64 = intent["gasLimit"].as_str().unwrap().parse().unwrap();
    assert!((21_000..=25_200).contains(&gas), "gas with margin: {gas}");

    let body = alice.send_body(&wallet.account_id, &prepared, PIN);
    let (status, sent) = alice.api.post("/v1/tx/send", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(sent["status"], "pending");
    let tx = alice.wait_final(sent["id"].as_str().unwrap()).await;
    assert_eq!(tx["status"], "confirmed", "{tx}");
    assert_eq!(tx["hash"], sent["hash"]);

    let mined = receipt(&env, sent["hash"].as_str().unwrap());
    assert_eq!(mined["status"], "0x1");
    assert_eq!(
        mined["blockNumber"]
            .as_str()
            .map(|b| u64::from_str_radix(&b[2..], 16).unwrap()),
        tx["blockNumber"].as_u64()
    );
    let fee = quantity(&mined["gasUsed"]) * quantity(&mined["effectiveGasPrice"]);
    assert_eq!(
        env.balance(&wallet.address),
        sender_before - U256::from(value) - fee,
        "sender pays value plus fee"
    );
    assert_eq!(
        env.balance(RECIPIENT),
        recipient_before + U256::from(value),
        "recipient gets value"
    );

    // tx/sign signs without broadcasting: the chain's nonce does not move.
    let prepared = alice.prepare(&wallet.account_id, RECIPIENT, value).await;
    let body = alice.send_body(&wallet.account_id, &prepared, PIN);
    let (status, signed) = alice.api.post("/v1/tx/sign", body).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert!(
        signed["signedTransaction"]
            .as_str()
            .unwrap()
            .starts_with("0x02")
    );
    assert_eq!(env.nonce(&wallet.address), 1);
    // It is a valid transaction for the next nonce: anvil takes it.
    let hash = env
        .anvil
        .rpc(
            "eth_sendRawTransaction",
            json!([signed["signedTransaction"]]),
        )
        .unwrap();
    assert_eq!(hash, signed["hash"]);
    assert_eq!(receipt(&env, hash.as_str().unwrap())["status"], "0x1");

    // The balance endpoint reads the chain.
    let (status, balance) = alice
        .api
        .get(&format!("/v1/accounts/{}/balance", wallet.account_id))
        .await;
    assert_eq!(status, StatusCode::OK, "{balance}");
    assert_eq!(balance["native"]["symbol"], "ETH");
    assert_eq!(balance["native"]["decimals"], 18);
    assert_eq!(
        balance["native"]["amount"].as_str().unwrap(),
        env.balance(&wallet.address).to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_eth_on_sqlite() {
    send_eth(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_eth_on_postgres() {
    send_eth(Db::Postgres).await;
}

/// `transfer(to, amount)` call data.
fn erc20_transfer_data(to: &str, amount: u128) -> String {
    format!(
        "0xa9059cbb{:0>64}{amount:064x}",
        to.trim_start_matches("0x").to_lowercase()
    )
}

/// A listed ERC-20: its balance through the API, and a transfer of it sent by the wallet
/// and read back from the token contract.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erc20_balance_and_transfer() {
    let env = Env::start_with_token(Db::Sqlite).await;
    let token = env.token.unwrap();
    let token_text = token.to_checksum(None);
    let (mut alice, wallet) = funded_user(&env, "alice", ETH).await;
    let owner: alloy_primitives::Address = wallet.address.parse().unwrap();
    let recipient: alloy_primitives::Address = RECIPIENT.parse().unwrap();

    // The app lists the token; the wallet holds none yet.
    let (status, app) = alice.api.get("/v1/app").await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(
        app["networks"][0]["tokens"],
        json!([{"contract": token_text, "symbol": "TST", "decimals": 6}])
    );
    let balance_path = format!("/v1/accounts/{}/balance", wallet.account_id);
    let (_, balance) = alice.api.get(&balance_path).await;
    assert_eq!(
        balance["tokens"],
        json!([{"contract": token_text, "symbol": "TST", "decimals": 6, "amount": "0"}])
    );

    // Dev account 0 (holding the supply) gives the wallet 5 TST.
    let gift = 5_000_000u128;
    let hash = env
        .anvil
        .rpc(
            "eth_sendTransaction",
            json!([{"from": env.anvil.address(0), "to": token, "data": erc20_transfer_data(&wallet.address, gift)}]),
        )
        .unwrap();
    assert_eq!(receipt(&env, hash.as_str().unwrap())["status"], "0x1");
    let (_, balance) = alice.api.get(&balance_path).await;
    assert_eq!(balance["tokens"][0]["amount"], gift.to_string());
    assert_eq!(
        env.anvil.token_balance(token, owner),
        U256::from(gift),
        "the API reads what the contract holds"
    );

    // The wallet sends 1.25 TST: value 0, the call data names recipient and amount.
    let amount = 1_250_000u128;
    let data = erc20_transfer_data(RECIPIENT, amount);
    let (status, prepared) = alice
        .api
        .post(
            "/v1/tx/prepare",
            json!({"accountId": wallet.account_id, "to": token_text, "value": "0", "data": data}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{prepared}");
    assert_eq!(prepared["intent"]["data"], data);
    let gas: u64 = prepared["intent"]["gasLimit"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        gas > 21_000,
        "a contract call costs more than a transfer: {gas}"
    );
    let body = alice.send_body(&wallet.account_id, &prepared, PIN);
    let (status, sent) = alice.api.post("/v1/tx/send", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let tx = alice.wait_final(sent["id"].as_str().unwrap()).await;
    assert_eq!(tx["status"], "confirmed", "{tx}");
    let mined = receipt(&env, sent["hash"].as_str().unwrap());
    assert_eq!(mined["status"], "0x1");
    assert_eq!(mined["to"].as_str().unwrap(), token_text.to_lowercase());

    assert_eq!(
        env.anvil.token_balance(token, owner),
        U256::from(gift - amount)
    );
    assert_eq!(
        env.anvil.token_balance(token, recipient),
        U256::from(amount)
    );
    let (_, balance) = alice.api.get(&balance_path).await;
    assert_eq!(balance["tokens"][0]["amount"], (gift - amount).to_string());
}

async fn twenty_concurrent_sends(db: Db) {
    let env = Env::start(db).await;
    let (mut bob, wallet) = funded_user(&env, "bob", 10 * ETH).await;
    let recipient_before = env.balance(RECIPIENT);
    let prepared = bob.prepare(&wallet.account_id, RECIPIENT, 1000).await;
    let mut sends = Vec::new();
    for _ in 0..20 {
        let body = bob.send_body(&wallet.account_id, &prepared, PIN);
        let api = bob.api.clone();
        sends.push(tokio::spawn(
            async move { api.post("/v1/tx/send", body).await },
        ));
    }
    let mut ids = Vec::new();
    let mut nonces = BTreeSet::new();
    for send in sends {
        let (status, sent) = send.await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
        nonces.insert(sent["nonce"].as_u64().unwrap());
        ids.push(sent["id"].as_str().unwrap().to_string());
    }
    assert_eq!(nonces, (0..20).collect(), "gapless, distinct nonces");
    for id in &ids {
        let tx = bob.wait_final(id).await;
        assert_eq!(tx["status"], "confirmed", "{tx}");
        assert_eq!(receipt(&env, tx["hash"].as_str().unwrap())["status"], "0x1");
    }
    assert_eq!(env.nonce(&wallet.address), 20);
    assert_eq!(
        env.balance(RECIPIENT),
        recipient_before + U256::from(20_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_sends_all_confirm_on_sqlite() {
    twenty_concurrent_sends(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_sends_all_confirm_on_postgres() {
    twenty_concurrent_sends(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_broadcasts_once() {
    let env = Env::start(Db::Sqlite).await;
    let (mut carol, wallet) = funded_user(&env, "carol", ETH).await;
    let recipient_before = env.balance(RECIPIENT);
    let prepared = carol.prepare(&wallet.account_id, RECIPIENT, 777).await;
    let body = carol.send_body(&wallet.account_id, &prepared, PIN);
    // The same request twice at once, and once more after: one transaction.
    let (a, b) = tokio::join!(
        carol
            .api
            .post_with_key("/v1/tx/send", body.clone(), "order-42"),
        carol
            .api
            .post_with_key("/v1/tx/send", body.clone(), "order-42")
    );
    let (c_status, c) = carol
        .api
        .post_with_key("/v1/tx/send", body.clone(), "order-42")
        .await;
    for (status, sent) in [&a, &b, &(c_status, c.clone())] {
        assert_eq!(*status, StatusCode::ACCEPTED, "{sent}");
        assert_eq!(sent["id"], a.1["id"]);
        assert_eq!(sent["hash"], a.1["hash"]);
    }
    carol.wait_final(a.1["id"].as_str().unwrap()).await;
    assert_eq!(env.nonce(&wallet.address), 1, "broadcast once");
    assert_eq!(env.balance(RECIPIENT), recipient_before + U256::from(777));

    // The same key for another transaction is refused.
    let other = carol.prepare(&wallet.account_id, RECIPIENT, 778).await;
    let body = carol.send_body(&wallet.account_id, &other, PIN);
    let (status, refused) = carol
        .api
        .post_with_key("/v1/tx/send", body, "order-42")
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_conflict");
    assert_eq!(env.nonce(&wallet.address), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sends_map_to_codes_and_leave_no_nonce_gap() {
    let env = Env::start(Db::Sqlite).await;
    let (mut dave, wallet) = funded_user(&env, "dave", 0).await;
    // The value but not the fee: the node refuses the send.
    env.fund(&wallet.address, 1000);
    let prepared = dave.prepare(&wallet.account_id, RECIPIENT, 1000).await;
    let body = dave.send_body(&wallet.account_id, &prepared, PIN);
    let (status, refused) = dave.api.post("/v1/tx/send", body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "insufficient_funds");
    // A wrong PIN refuses the send before anything is signed.
    env.fund(&wallet.address, ETH);
    let prepared = dave.prepare(&wallet.account_id, RECIPIENT, 1000).await;
    let body = dave.send_body(&wallet.account_id, &prepared, "111111");
    let (status, refused) = dave.api.post("/v1/tx/send", body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "wrong_pin");
    // An intent altered after approval is refused by the enclave.
    let mut body = dave.send_body(&wallet.account_id, &prepared, PIN);
    body["intent"]["value"] = json!("999999");
    let (status, refused) = dave.api.post("/v1/tx/send", body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "envelope_rejected");
    // None of them used a nonce: the next send is nonce 0 and confirms.
    let body = dave.send_body(&wallet.account_id, &prepared, PIN);
    let (status, sent) = dave.api.post("/v1/tx/send", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(sent["nonce"], 0);
    let tx = dave.wait_final(sent["id"].as_str().unwrap()).await;
    assert_eq!(tx["status"], "confirmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_is_replayed_after_a_crash_between_signing_and_broadcast() {
    let mut env = Env::start_with(Db::Sqlite, true).await;
    let (mut erin, wallet) = funded_user(&env, "erin", ETH).await;
    let recipient_before = env.balance(RECIPIENT);
    let proxy = env.proxy.as_ref().unwrap();
    proxy.drop_sends(true);
    let (status, sent) = erin.send(&wallet.account_id, RECIPIENT, 4242, PIN).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(sent["status"], "pending");
    assert_eq!(env.nonce(&wallet.address), 0, "not broadcast");
    // The server dies with the transaction in its outbox; the node comes back.
    env.server.crash_and_restart().await;
    env.proxy.as_ref().unwrap().drop_sends(false);
    erin.reattest().await;
    let tx = erin.wait_final(sent["id"].as_str().unwrap()).await;
    assert_eq!(tx["status"], "confirmed", "{tx}\n{}", env.server.log());
    assert_eq!(tx["hash"], sent["hash"]);
    assert_eq!(env.nonce(&wallet.address), 1, "sent exactly once");
    assert_eq!(env.balance(RECIPIENT), recipient_before + U256::from(4242));
    // The next send follows on with the next nonce.
    let (status, next) = erin.send(&wallet.account_id, RECIPIENT, 1, PIN).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{next}");
    assert_eq!(next["nonce"], 1);
    assert_eq!(
        erin.wait_final(next["id"].as_str().unwrap()).await["status"],
        "confirmed"
    );
}

/// Sends 777 wei with automine off, so the node keeps the transaction in its pool
/// unmined; automine stays off. The send's answer.
async fn send_777_unmined(env: &Env, user: &mut User, wallet: &Wallet) -> Value {
    env.anvil.rpc("evm_setAutomine", json!([false])).unwrap();
    let (status, sent) = user.send(&wallet.account_id, RECIPIENT, 777, PIN).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    sent
}

/// Makes the node lose a pooled transaction, as a mempool eviction or a restart would.
fn lose(env: &Env, sent: &Value) {
    let hash = sent["hash"].as_str().unwrap();
    let known = || {
        !env.anvil
            .rpc("eth_getTransactionByHash", json!([hash]))
            .unwrap()
            .is_null()
    };
    assert!(known(), "in the node's pool");
    env.anvil
        .rpc("anvil_dropTransaction", json!([hash]))
        .unwrap();
    assert!(!known(), "lost by the node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_transaction_the_node_lost_is_sent_again() {
    let env = Env::start(Db::Sqlite).await;
    let (mut gina, wallet) = funded_user(&env, "gina", ETH).await;
    let recipient_before = env.balance(RECIPIENT);
    let sent = send_777_unmined(&env, &mut gina, &wallet).await;
    lose(&env, &sent);
    env.anvil.rpc("evm_setAutomine", json!([true])).unwrap();
    // Nothing else is sent: only the tracker's second broadcast can get it mined (about
    // six seconds on, at the tests' 200-ms passes).
    let tx = gina.wait_final(sent["id"].as_str().unwrap()).await;
    assert_eq!(tx["status"], "confirmed", "{tx}\n{}", env.server.log());
    assert_eq!(env.nonce(&wallet.address), 1, "mined once");
    assert_eq!(env.balance(RECIPIENT), recipient_before + U256::from(777));
    assert!(
        env.server
            .log()
            .contains("the node lost a pending transaction; sent again"),
        "{}",
        env.server.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_transaction_whose_nonce_another_transaction_spent_fails() {
    let env = Env::start(Db::Sqlite).await;
    let (mut hugo, wallet) = funded_user(&env, "hugo", ETH).await;
    let recipient_before = env.balance(RECIPIENT);
    let sent = send_777_unmined(&env, &mut hugo, &wallet).await;
    lose(&env, &sent);
    let hash = sent["hash"].as_str().unwrap();
    // The same account spends nonce 0 on another transaction, as a wallet holding the
    // exported key elsewhere would; anvil signs it for the impersonated address.
    env.anvil
        .rpc("anvil_impersonateAccount", json!([wallet.address]))
        .unwrap();
    let other = env
        .anvil
        .rpc(
            "eth_sendTransaction",
            json!([{"from": wallet.address, "to": RECIPIENT, "value": "0x1", "nonce": "0x0", "gas": "0x5208"}]),
        )
        .unwrap();
    env.anvil.rpc("evm_mine", json!([])).unwrap();
    env.anvil.rpc("evm_setAutomine", json!([true])).unwrap();
    assert_eq!(env.nonce(&wallet.address), 1, "nonce 0 spent by the other");
    assert_ne!(other.as_str(), Some(hash));

    let tx = hugo.wait_final(sent["id"].as_str().unwrap()).await;
    assert_eq!(tx["status"], "failed", "{tx}\n{}", env.server.log());
    assert!(
        tx["error"]
            .as_str()
            .is_some_and(|e| e.contains("another transaction from this account used nonce 0")),
        "{tx}"
    );
    assert_eq!(env.nonce(&wallet.address), 1, "nothing else mined");
    assert_eq!(
        env.balance(RECIPIENT),
        recipient_before + U256::from(1),
        "only the other transaction's value arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_transactions_the_sender_can_no_longer_pay_for_fail_and_give_their_nonces_back() {
    let env = Env::start(Db::Sqlite).await;
    let (mut ivy, wallet) = funded_user(&env, "ivy", ETH).await;
    let recipient_before = env.balance(RECIPIENT);
    let first = send_777_unmined(&env, &mut ivy, &wallet).await;
    let second = send_777_unmined(&env, &mut ivy, &wallet).await;
    lose(&env, &second);
    lose(&env, &first);
    env.anvil
        .rpc("anvil_setBalance", json!([wallet.address, "0x0"]))
        .unwrap();
    env.anvil.rpc("evm_setAutomine", json!([true])).unwrap();

    // Nonce 1 is the last handed out: failed first, its nonce given back; then nonce 0,
    // the last in its turn (it stayed pending while nonce 1 waited behind it).
    for sent in [&second, &first] {
        let tx = ivy.wait_final(sent["id"].as_str().unwrap()).await;
        assert_eq!(tx["status"], "failed", "{tx}\n{}", env.server.log());
        assert!(
            tx["error"]
                .as_str()
                .is_some_and(|e| e.contains("insufficient funds")),
            "{tx}"
        );
    }
    assert_eq!(env.nonce(&wallet.address), 0, "nothing mined");

    // Funded again, the next send takes nonce 0: no gap was left.
    env.anvil
        .rpc(
            "anvil_setBalance",
            json!([wallet.address, format!("{ETH:#x}")]),
        )
        .unwrap();
    let (status, sent) = ivy.send(&wallet.account_id, RECIPIENT, 555, PIN).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let tx = ivy.wait_final(sent["id"].as_str().unwrap()).await;
    assert_eq!(tx["status"], "confirmed", "{tx}");
    assert_eq!(env.nonce(&wallet.address), 1);
    assert_eq!(env.balance(RECIPIENT), recipient_before + U256::from(555));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enclave_killed_gives_enclave_unavailable_then_recovers() {
    let env = Env::start(Db::Sqlite).await;
    let (mut frank, wallet) = funded_user(&env, "frank", 0).await;
    let pid = env.enclave_pid().expect("the server runs an enclave");
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let started = Instant::now();
    let (status, body) = frank.sign_message(&wallet.account_id, "hi", PIN).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "enclave_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered within the enclave request timeout"
    );
    // The supervisor starts a new enclave (with a new key: attest again).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = frank.api.get("/v1/enclave/attestation").await;
        if status == StatusCode::OK && env.enclave_pid().is_some_and(|p| p != pid) {
            break;
        }
        assert!(Instant::now() < deadline, "no new enclave");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    frank.reattest().await;
    let (status, body) = frank.sign_message(&wallet.account_id, "hi", PIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_isolated() {
    let env = Env::start(Db::Sqlite).await;
    let (mut alice, wallet) = funded_user(&env, "alice", ETH).await;
    let (status, sent) = alice.send(&wallet.account_id, RECIPIENT, 5, PIN).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let tx_id = sent["id"].as_str().unwrap().to_string();

    let (b_id, b_key) = env.create_app("b");
    // A's session presented with B's key: refused.
    let mut crossed = alice.api.clone();
    crossed.key = b_key.clone();
    for path in ["/v1/me", "/v1/accounts", &format!("/v1/tx/{tx_id}")] {
        let (status, body) = crossed.get(path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_eq!(body["error"]["details"]["reason"], "wrong_app");
    }
    // The same person logged in to B is another user, who sees nothing of A's.
    let mut alice_b = env.user_of(&b_id, &b_key, "alice").await;
    assert_ne!(alice_b.user_id, alice.user_id);
    let (_, me) = alice_b.api.get("/v1/me").await;
    assert!(me["walletId"].is_null(), "{me}");
    let (status, _) = alice_b.api.get("/v1/accounts").await;
    assert_eq!(status, StatusCode::PRECONDITION_REQUIRED);
    let b_wallet = alice_b.create_wallet(PIN).await;
    assert_ne!(b_wallet.address, wallet.address, "a wallet per app");
    for path in [
        format!("/v1/tx/{tx_id}"),
        format!("/v1/accounts/{}/balance", wallet.account_id),
    ] {
        let (status, body) = alice_b.api.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, body) = alice_b.sign_message(&wallet.account_id, "x", PIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = alice_b
        .api
        .post(
            "/v1/tx/prepare",
            json!({"accountId": wallet.account_id, "to": RECIPIENT, "value": "1"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Another user of the same app sees none of alice's either.
    let gina = env.user("gina").await;
    let (status, _) = gina.api.get(&format!("/v1/tx/{tx_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
