//! Wallets end to end through the real binary: create, sign (recovered to the account's
//! address), export, PIN change, recovery, on SQLite and on PostgreSQL.

mod common;
mod e2e;

use alloy_primitives::{Address, Signature};
use alloy_signer_local::{MnemonicBuilder, coins_bip39::English};
use e2e::{Db, Env, mail_typed_data, sealed};
use keystead_envelope::Operation;
use reqwest::StatusCode;
use serde_json::{Value, json};

const PIN: &str = "582917";
const NEW_PIN: &str = "730461";

async fn lifecycle(db: Db) {
    let env = Env::start(db).await;
    let mut alice = env.user("alice").await;
    let (_, me) = alice.api.get("/v1/me").await;
    assert_eq!(me["status"], "pin_required");

    let wallet = alice.create_wallet(PIN).await;
    assert_eq!(wallet.recovery_code.len(), 25 + 4, "grouped recovery code");
    let (_, me) = alice.api.get("/v1/me").await;
    assert_eq!(me["status"], "complete");
    assert_eq!(me["walletId"], wallet.wallet_id.as_str());
    let (status, accounts) = alice.api.get("/v1/accounts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(accounts["accounts"][0]["network"], "local");
    assert_eq!(accounts["accounts"][0]["family"], "evm");
    assert_eq!(accounts["accounts"][0]["path"], "m/44'/60'/0'/0/0");
    let address: Address = wallet.address.parse().unwrap();
    assert_eq!(address.to_checksum(None), wallet.address, "EIP-55");

    // A second wallet is refused, and nothing changes.
    let (status, body, _) = alice.create_wallet_raw(PIN).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "wallet_exists");

    // Sign a message: the signature recovers to the account's address.
    let (status, signed) = alice
        .sign_message(&wallet.account_id, "hello keystead", PIN)
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let sig: Signature = signed["signature"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        sig.recover_address_from_msg("hello keystead").unwrap(),
        address
    );

    // Typed data: recovered from the EIP-712 signing hash.
    let typed = mail_typed_data();
    let (status, signed) = alice.sign_typed_data(&wallet.account_id, &typed, PIN).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let sig: Signature = signed["signature"].as_str().unwrap().parse().unwrap();
    let hash = serde_json::from_value::<alloy_dyn_abi::TypedData>(typed)
        .unwrap()
        .eip712_signing_hash()
        .unwrap();
    assert_eq!(sig.recover_address_from_prehash(&hash).unwrap(), address);

    // A wrong PIN: refused with the tries left, and counted.
    let (status, body) = alice
        .sign_message(&wallet.account_id, "hello", "111111")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "wrong_pin");
    assert_eq!(body["error"]["details"]["remainingTries"], 4);
    let (_, body) = alice
        .sign_message(&wallet.account_id, "hello", "111112")
        .await;
    assert_eq!(body["error"]["details"]["remainingTries"], 3);

    // Export: the mnemonic, opened by the client, derives the account's address.
    let phrase = alice.export_mnemonic(&wallet.wallet_id, PIN).await;
    let derived = MnemonicBuilder::<English>::default()
        .phrase(phrase.as_str())
        .index(0)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(derived.address(), address);

    // Change the PIN: the old one stops working, the new one works.
    let (app_id, wallet_id) = (alice.app_id.clone(), wallet.wallet_id.clone());
    let ids = |purpose: &str| match purpose {
        "change" => Operation::ChangePin {
            app_id: app_id.clone(),
            wallet_id: wallet_id.clone(),
        },
        "recover" => Operation::Recover {
            app_id: app_id.clone(),
            wallet_id: wallet_id.clone(),
        },
        _ => Operation::NewPin {
            app_id: app_id.clone(),
            wallet_id: wallet_id.clone(),
        },
    };
    let (change, new) = (ids("change"), ids("new"));
    let body = json!({
        "pin": sealed(&alice.client.envelope(PIN, &change)),
        "newPin": sealed(&alice.client.envelope(NEW_PIN, &new)),
    });
    let (status, answer) = alice.api.post("/v1/wallet/pin", body).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let (_, body) = alice.sign_message(&wallet.account_id, "x", PIN).await;
    assert_eq!(body["error"]["code"], "wrong_pin");
    let (status, body) = alice.sign_message(&wallet.account_id, "x", NEW_PIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A weak new PIN is refused with the rule.
    let body = json!({
        "pin": sealed(&alice.client.envelope(NEW_PIN, &change)),
        "newPin": sealed(&alice.client.envelope("123456", &new)),
    });
    let (status, answer) = alice.api.post("/v1/wallet/pin", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "weak_pin");

    // Recover with the code: a wrong code is refused, the right one sets a new PIN.
    let recover = ids("recover");
    let body = json!({
        "recovery": sealed(&alice.client.envelope("ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ", &recover)),
        "newPin": sealed(&alice.client.envelope(PIN, &new)),
    });
    let (status, answer) = alice.api.post("/v1/wallet/recover", body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["error"]["code"], "wrong_recovery_code");
    let body = json!({
        "recovery": sealed(&alice.client.envelope(&wallet.recovery_code, &recover)),
        "newPin": sealed(&alice.client.envelope(PIN, &new)),
    });
    let (status, answer) = alice.api.post("/v1/wallet/recover", body).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let (status, body) = alice.sign_message(&wallet.account_id, "y", PIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = alice.sign_message(&wallet.account_id, "y", NEW_PIN).await;
    assert_eq!(body["error"]["code"], "wrong_pin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_lifecycle_on_sqlite() {
    lifecycle(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_lifecycle_on_postgres() {
    lifecycle(Db::Postgres).await;
}

/// Wrong PINs sent all at once are each counted: the wallet is read, opened and stored
/// one operation at a time, so none starts from a record that misses another's count.
/// After five, even the right PIN is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_pins_are_all_counted() {
    let env = Env::start(Db::Sqlite).await;
    let mut alice = env.user("alice").await;
    let wallet = alice.create_wallet(PIN).await;
    let op = Operation::SignMessage {
        app_id: alice.app_id.clone(),
        account_id: wallet.account_id.clone(),
        message: b"guess".to_vec(),
    };
    let bodies: Vec<Value> = (0..5)
        .map(|i| {
            let pin = alice.client.envelope(&format!("90000{i}"), &op);
            json!({"accountId": wallet.account_id, "message": "guess", "pin": sealed(&pin)})
        })
        .collect();
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let api = alice.api.clone();
            tokio::spawn(async move { api.post("/v1/sign/message", body).await })
        })
        .collect();
    let (mut remaining, mut locked) = (Vec::new(), 0);
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match body["error"]["code"].as_str() {
            Some("wrong_pin") => {
                assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
                remaining.push(body["error"]["details"]["remainingTries"].as_u64().unwrap());
            }
            // The fifth wrong PIN locks the wallet.
            Some("wallet_locked") => {
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
                locked += 1;
            }
            _ => panic!("{status}: {body}"),
        }
    }
    remaining.sort_unstable();
    assert_eq!(remaining, [1, 2, 3, 4], "each guess counted once, in turn");
    assert_eq!(locked, 1);
    let (status, body) = alice.sign_message(&wallet.account_id, "now", PIN).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "wallet_locked", "{body}");
}

async fn concurrent_creates(db: Db) {
    let env = Env::start(db).await;
    let mut attempts = Vec::new();
    for _ in 0..6 {
        let mut bob = env.user("bob").await;
        attempts.push(tokio::spawn(async move {
            let (status, body, _) = bob.create_wallet_raw(PIN).await;
            (status, body)
        }));
    }
    let mut created = Vec::new();
    for attempt in attempts {
        let (status, body) = attempt.await.unwrap();
        match status {
            StatusCode::CREATED => created.push(body),
            StatusCode::CONFLICT => assert_eq!(body["error"]["code"], "wallet_exists"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one wallet");
    let bob = env.user("bob").await;
    let (_, me) = bob.api.get("/v1/me").await;
    assert_eq!(me["walletId"], created[0]["walletId"]);
    let (_, accounts) = bob.api.get("/v1/accounts").await;
    assert_eq!(accounts["accounts"], created[0]["accounts"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_make_one_wallet_on_sqlite() {
    concurrent_creates(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_make_one_wallet_on_postgres() {
    concurrent_creates(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_stores_nothing() {
    let env = Env::start(Db::Sqlite).await;
    let mut carol = env.user("carol").await;
    let check = |status: StatusCode, body: &serde_json::Value, want: StatusCode, code: &str| {
        assert_eq!(status, want, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    };
    let (s, b) = carol
        .api
        .post_raw("/v1/wallet", b"{not json".to_vec())
        .await;
    check(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
    let (s, b) = carol
        .api
        .post("/v1/wallet", json!({"clientKey": "abc"}))
        .await;
    check(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(b["error"]["message"].as_str().unwrap().contains("pin"));
    let (s, b) = carol
        .api
        .post(
            "/v1/wallet",
            json!({"pin": {"enc": 5, "ciphertext": "x"}, "clientKey": "a"}),
        )
        .await;
    check(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
    // The message says where in the body it went wrong.
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pin.ciphertext"),
        "{b}"
    );
    // A PIN sent in plain text, in the wrong shape, is refused without being echoed.
    let (s, b) = carol
        .api
        .post("/v1/wallet", json!({"pin": PIN, "clientKey": "abc"}))
        .await;
    check(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(!b.to_string().contains(PIN), "{b}");
    let big = vec![b' '; 300 * 1024];
    let (s, b) = carol.api.post_raw("/v1/wallet", big).await;
    check(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // An envelope for another operation (another user id) is refused by the enclave.
    let (kp_unused, client_key) = carol.client.one_time_key();
    drop(kp_unused);
    let op = Operation::CreateWallet {
        app_id: carol.app_id.clone(),
        user_id: "usr_someoneelse".into(),
        client_key: client_key.clone(),
    };
    let pin = carol.client.envelope(PIN, &op);
    let (s, b) = carol
        .api
        .post(
            "/v1/wallet",
            json!({"pin": sealed(&pin), "clientKey": client_key}),
        )
        .await;
    check(s, &b, StatusCode::FORBIDDEN, "envelope_rejected");
    // Nothing was stored by any of them.
    let (_, me) = carol.api.get("/v1/me").await;
    assert_eq!(me["status"], "pin_required");
    assert!(me["walletId"].is_null());
    let (s, b) = carol.api.get("/v1/accounts").await;
    check(s, &b, StatusCode::PRECONDITION_REQUIRED, "wallet_required");

    let wallet = carol.create_wallet(PIN).await;
    let (s, b) = carol.sign_message("acc_doesnotexist", "x", PIN).await;
    check(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = carol.api.get("/v1/accounts/acc_nope/balance").await;
    check(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = carol
        .api
        .post(
            "/v1/tx/prepare",
            json!({"accountId": wallet.account_id, "to": "0x1234", "value": "1"}),
        )
        .await;
    check(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
    let (s, b) = carol
        .api
        .post(
            "/v1/tx/prepare",
            json!({"accountId": wallet.account_id, "to": wallet.address, "value": "-1"}),
        )
        .await;
    check(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
    let (s, b) = carol.api.get("/v1/tx/tx_nope").await;
    check(s, &b, StatusCode::NOT_FOUND, "not_found");
    // Without a session: unauthenticated.
    let anonymous = e2e::Api {
        token: None,
        ..carol.api.clone()
    };
    let (s, b) = anonymous.get("/v1/accounts").await;
    check(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
}
