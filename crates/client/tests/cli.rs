//! `keystead wallet ...` end to end: the real `keystead` binary (server and command line),
//! its enclave, anvil and an in-process OpenID issuer. Needs `KEYSTEAD_ANVIL` (or anvil in
//! the tools directory: `source scripts/lib/anvil.sh && ensure_anvil`) and the workspace
//! binaries (`cargo build --workspace --bins`).

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::str::FromStr as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy_dyn_abi::TypedData;
use alloy_primitives::{Address, B256, Signature, U256};
use alloy_signer_local::MnemonicBuilder;
use alloy_signer_local::coins_bip39::English;
use common::{Pins, Wallet, create_app, start_server, wait_for};
use keystead_testkit::anvil::Anvil;
use keystead_testkit::oidc::{TestIssuer, TokenSpec};
use serde_json::{Value, json};

const CLIENT_ID: &str = "keystead-cli-test";
const PIN: &str = "482915";
const NEW_PIN: &str = "730194";
const RECOVERED_PIN: &str = "246813";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn balance_of(anvil: &Anvil, address: Address) -> U256 {
    let answer = anvil
        .rpc("eth_getBalance", json!([address, "latest"]))
        .expect("eth_getBalance");
    answer
        .as_str()
        .and_then(|s| U256::from_str(s).ok())
        .expect("a quantity")
}

/// Waits for the transaction's receipt on anvil.
fn receipt(anvil: &Anvil, hash: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = anvil
            .rpc("eth_getTransactionReceipt", json!([hash]))
            .expect("eth_getTransactionReceipt");
        if !r.is_null() {
            return r;
        }
        assert!(Instant::now() < deadline, "no receipt for {hash}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn signature(value: &Value) -> Signature {
    let hex = value["signature"].as_str().expect("a signature string");
    Signature::from_str(hex).expect("a 65-byte signature")
}

const MAIL: &str = r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"Person":[{"name":"name","type":"string"},{"name":"wallet","type":"address"}],"Mail":[{"name":"from","type":"Person"},{"name":"to","type":"Person"},{"name":"contents","type":"string"}]},"primaryType":"Mail","domain":{"name":"Ether Mail","version":"1","chainId":31337,"verifyingContract":"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},"message":{"from":{"name":"Cow","wallet":"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},"to":{"name":"Bob","wallet":"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},"contents":"Hello, Bob!"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_commands_end_to_end() {
    let anvil = Anvil::start();
    let issuer = TestIssuer::start().await;
    let data = tempfile::tempdir().expect("data dir");
    let oidc = format!("test={}@{CLIENT_ID}", issuer.issuer());
    let (_app_id, app_key) = create_app(data.path(), "CLI test", &oidc);
    let server = start_server(data.path(), anvil.url());
    wait_for(&format!("{}/readyz", server.base), 200).await;

    let home = tempfile::tempdir().expect("home");
    let wallet = Wallet {
        session: home.path().join("config/keystead/session.json"),
        home: home.path().to_path_buf(),
    };

    // Without a session nothing works, and the error is an error object.
    let err = wallet.fails(&["accounts"], Pins::None);
    assert_eq!(err["error"]["code"], "unauthenticated", "{err}");

    // login: the session file is private.
    let token = issuer.mint(&TokenSpec::new("alice", CLIENT_ID, now()));
    let login = wallet.ok(
        &[
            "login",
            "--server",
            &server.base,
            "--app-key",
            &app_key,
            "--provider",
            "test",
            "--id-token",
            &token,
        ],
        Pins::None,
    );
    assert_eq!(login["user"]["id"].as_str().map(str::is_empty), Some(false));
    assert_eq!(mode(&wallet.session), 0o600);
    let saved = std::fs::read_to_string(&wallet.session).expect("session file");
    assert!(saved.contains(&server.base));

    // create: the PIN rules are applied before anything is sealed.
    let err = wallet.fails(&["create"], Pins::Stdin("123456\n"));
    assert_eq!(err["error"]["code"], "weak_pin", "{err}");
    let created = wallet.ok(&["create"], Pins::Stdin(&format!("{PIN}\n")));
    let wallet_id = created["walletId"].as_str().expect("walletId").to_string();
    assert!(!wallet_id.is_empty());
    let recovery_code = created["recoveryCode"]
        .as_str()
        .expect("recoveryCode")
        .to_string();
    assert!(!recovery_code.is_empty());
    let accounts = created["accounts"].as_array().expect("accounts").clone();
    assert!(!accounts.is_empty(), "{created}");
    let account = accounts[0].clone();
    let account_id = account["id"].as_str().expect("account id").to_string();
    let address: Address = account["address"]
        .as_str()
        .expect("address")
        .parse()
        .expect("an address");
    assert_eq!(
        account["address"].as_str(),
        Some(address.to_checksum(None).as_str()),
        "addresses are EIP-55"
    );
    // A second wallet is refused by the server, its error printed verbatim.
    let err = wallet.fails(&["create"], Pins::Stdin(&format!("{PIN}\n")));
    assert_eq!(err["error"]["code"], "wallet_exists", "{err}");

    // accounts
    let listed = wallet.ok(&["accounts"], Pins::None);
    assert_eq!(listed, json!({ "accounts": accounts }));

    // sign-message, PIN from the environment.
    let pin_env = [("KEYSTEAD_PIN", PIN)];
    let signed = wallet.ok(
        &[
            "sign-message",
            "--account",
            &account_id,
            "--message",
            "hello keystead",
        ],
        Pins::Env(&pin_env),
    );
    assert_eq!(signed.as_object().map(|o| o.len()), Some(1), "{signed}");
    assert_eq!(
        signature(&signed)
            .recover_address_from_msg("hello keystead")
            .expect("recover"),
        address
    );

    // sign-typed-data from a file.
    let mail = home.path().join("mail.json");
    std::fs::write(&mail, MAIL).expect("write typed data");
    let signed = wallet.ok(
        &[
            "sign-typed-data",
            "--account",
            &account_id,
            "--file",
            mail.to_str().expect("utf-8 path"),
        ],
        Pins::Env(&pin_env),
    );
    let typed: TypedData = serde_json::from_str(MAIL).expect("typed data");
    let hash: B256 = typed.eip712_signing_hash().expect("hash");
    assert_eq!(
        signature(&signed)
            .recover_address_from_prehash(&hash)
            .expect("recover"),
        address
    );

    // send: funded account, real transfer on anvil, idempotent retry.
    anvil.fund(address, U256::from(10u64).pow(U256::from(18u64)));
    let recipient = anvil.address(5);
    let before = balance_of(&anvil, recipient);
    let value = U256::from(1_000_000_000_000_000u64);
    let send_args = [
        "send",
        "--account",
        &account_id,
        "--to",
        &recipient.to_checksum(None),
        "--value",
        "1000000000000000",
        "--idempotency-key",
        "cli-test-1",
    ];
    let sent = wallet.ok(&send_args, Pins::Env(&pin_env));
    let mut keys: Vec<&str> = sent
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["hash", "id", "status"], "{sent}");
    let hash = sent["hash"].as_str().expect("hash").to_string();
    let r = receipt(&anvil, &hash);
    assert_eq!(r["status"], "0x1", "{r}");
    assert_eq!(
        r["to"].as_str().map(str::to_lowercase),
        Some(format!("{recipient:#x}"))
    );
    assert_eq!(balance_of(&anvil, recipient), before + value);
    // The same key again: the first result, nothing broadcast twice. `--wait` follows
    // it (GET /v1/tx/{id}) until it is confirmed.
    let again = wallet.ok(&[&send_args[..], &["--wait"]].concat(), Pins::Env(&pin_env));
    assert_eq!(again["id"], sent["id"], "{again}");
    assert_eq!(again["hash"], sent["hash"], "{again}");
    assert_eq!(again["status"], "confirmed", "{again}");
    anvil.mine();
    assert_eq!(balance_of(&anvil, recipient), before + value);

    // balance
    let balance = wallet.ok(&["balance", "--account", &account_id], Pins::None);
    let amount = balance["native"]["amount"]
        .as_str()
        .and_then(|a| U256::from_str_radix(a, 10).ok())
        .expect("native amount");
    assert_eq!(amount, balance_of(&anvil, address), "{balance}");

    // export: the mnemonic derives the account.
    let exported = wallet.ok(&["export"], Pins::Env(&pin_env));
    let mnemonic = exported["mnemonic"].as_str().expect("mnemonic");
    let derived = MnemonicBuilder::<English>::default()
        .phrase(mnemonic)
        .derivation_path("m/44'/60'/0'/0/0")
        .expect("path")
        .build()
        .expect("derive");
    assert_eq!(derived.address(), address);

    // change-pin (current and new PIN on stdin); the old PIN stops working.
    wallet.ok(&["change-pin"], Pins::Stdin(&format!("{PIN}\n{NEW_PIN}\n")));
    let sign_args = [
        "sign-message",
        "--account",
        &account_id,
        "--message",
        "after change",
    ];
    let err = wallet.fails(&sign_args, Pins::Env(&pin_env));
    assert_eq!(err["error"]["code"], "wrong_pin", "{err}");
    let signed = wallet.ok(&sign_args, Pins::Env(&[("KEYSTEAD_PIN", NEW_PIN)]));
    assert_eq!(
        signature(&signed)
            .recover_address_from_msg("after change")
            .expect("recover"),
        address
    );

    // recover with the recovery code sets a new PIN.
    wallet.ok(
        &["recover", "--recovery-code", &recovery_code],
        Pins::Env(&[("KEYSTEAD_NEW_PIN", RECOVERED_PIN)]),
    );
    let signed = wallet.ok(&sign_args, Pins::Env(&[("KEYSTEAD_PIN", RECOVERED_PIN)]));
    assert_eq!(
        signature(&signed)
            .recover_address_from_msg("after change")
            .expect("recover"),
        address
    );
    let err = wallet.fails(&sign_args, Pins::Env(&[("KEYSTEAD_PIN", NEW_PIN)]));
    assert_eq!(err["error"]["code"], "wrong_pin", "{err}");

    // An expired access token is refreshed and the file rewritten, still 0600.
    let mut session: Value =
        serde_json::from_str(&std::fs::read_to_string(&wallet.session).expect("session file"))
            .expect("session JSON");
    let old_access = session["accessToken"].clone();
    session["accessExpiresAt"] = json!(0);
    std::fs::write(&wallet.session, session.to_string()).expect("rewrite session");
    wallet.ok(&["accounts"], Pins::None);
    let session: Value =
        serde_json::from_str(&std::fs::read_to_string(&wallet.session).expect("session file"))
            .expect("session JSON");
    assert_ne!(session["accessToken"], old_access);
    assert!(session["accessExpiresAt"].as_u64() > Some(now()));
    assert_eq!(mode(&wallet.session), 0o600);

    // A session file others can read is refused, not used.
    std::fs::set_permissions(&wallet.session, std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let err = wallet.fails(&["accounts"], Pins::None);
    assert_eq!(err["error"]["code"], "unauthenticated", "{err}");
    std::fs::set_permissions(&wallet.session, std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    wallet.ok(&["accounts"], Pins::None);

    // No secret ever reached the session directory besides the tokens.
    let saved = std::fs::read_to_string(&wallet.session).expect("session file");
    for secret in [
        PIN,
        NEW_PIN,
        RECOVERED_PIN,
        recovery_code.as_str(),
        mnemonic,
    ] {
        assert!(!saved.contains(secret));
    }
    drop(server);
}
