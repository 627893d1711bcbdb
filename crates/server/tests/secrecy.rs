//! The server never holds a secret in plaintext: after a wallet's whole life through the
//! real binary, its memory, its log and its database hold no PIN, recovery code,
//! mnemonic or private key. A control search of this test's own memory (which does hold
//! them) shows the search works.

mod common;
mod e2e;

use alloy_signer_local::{MnemonicBuilder, coins_bip39::English};
use e2e::{Db, Env, sealed};
use keystead_envelope::Operation;
use keystead_testkit::memory::{find, read_process_memory};
use reqwest::StatusCode;
use serde_json::json;

const PIN: &str = "582917";
const NEW_PIN: &str = "730461";
const WRONG_PIN: &str = "614253";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_server_memory_log_or_database() {
    let env = Env::start(Db::Sqlite).await;
    let mut user = env.user("secrecy").await;
    let wallet = user.create_wallet(PIN).await;
    let (status, _) = user.sign_message(&wallet.account_id, "hi", PIN).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = user.sign_message(&wallet.account_id, "hi", WRONG_PIN).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let phrase = user.export_mnemonic(&wallet.wallet_id, PIN).await;

    let change = Operation::ChangePin {
        app_id: user.app_id.clone(),
        wallet_id: wallet.wallet_id.clone(),
    };
    let new = Operation::NewPin {
        app_id: user.app_id.clone(),
        wallet_id: wallet.wallet_id.clone(),
    };
    let body = json!({
        "pin": sealed(&user.client.envelope(PIN, &change)),
        "newPin": sealed(&user.client.envelope(NEW_PIN, &new)),
    });
    assert_eq!(
        user.api.post("/v1/wallet/pin", body).await.0,
        StatusCode::NO_CONTENT
    );
    let recover = Operation::Recover {
        app_id: user.app_id.clone(),
        wallet_id: wallet.wallet_id.clone(),
    };
    let body = json!({
        "recovery": sealed(&user.client.envelope(&wallet.recovery_code, &recover)),
        "newPin": sealed(&user.client.envelope(PIN, &new)),
    });
    assert_eq!(
        user.api.post("/v1/wallet/recover", body).await.0,
        StatusCode::NO_CONTENT
    );

    let signer = MnemonicBuilder::<English>::default()
        .phrase(phrase.as_str())
        .index(0)
        .unwrap()
        .build()
        .unwrap();
    let private_key = signer.to_bytes();
    let words: Vec<&str> = phrase.split_whitespace().collect();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("PIN", PIN.as_bytes().to_vec()),
        ("new PIN", NEW_PIN.as_bytes().to_vec()),
        ("wrong PIN", WRONG_PIN.as_bytes().to_vec()),
        ("recovery code", wallet.recovery_code.as_bytes().to_vec()),
        (
            "recovery code without dashes",
            wallet.recovery_code.replace('-', "").into_bytes(),
        ),
        ("mnemonic", phrase.as_bytes().to_vec()),
        ("first three words", words[..3].join(" ").into_bytes()),
        ("private key", private_key.to_vec()),
        ("private key hex", hex::encode(private_key).into_bytes()),
    ];

    // The control: this process holds them, and the search finds them.
    let own = read_process_memory(std::process::id()).unwrap();
    assert!(find(&own, phrase.as_bytes()).is_some(), "control search");

    let server = read_process_memory(env.server.child.id()).unwrap();
    assert!(server.len() > 1 << 20, "read the server's memory");
    let dir = env.server.dir.path();
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // The enclave's own keyrings are its business; everything else is the server's.
        if entry.path().is_file() && !name.starts_with("kms-") {
            stored.push((name, std::fs::read(entry.path()).unwrap()));
        }
    }
    assert!(
        stored.iter().any(|(n, _)| n == "keystead.db"),
        "database searched"
    );
    assert!(
        stored.iter().any(|(n, _)| n == "server.log"),
        "log searched"
    );
    for (what, secret) in &secrets {
        assert!(
            find(&server, secret).is_none(),
            "the server's memory holds the {what}"
        );
        for (file, bytes) in &stored {
            assert!(find(bytes, secret).is_none(), "{file} holds the {what}");
        }
    }
}
