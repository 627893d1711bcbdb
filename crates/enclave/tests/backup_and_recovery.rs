//! The seed's third flow: recovery code, PIN change, export, and the disaster-recovery copy.

mod common;

use common::*;
use keystead_enclave_proto::*;
use keystead_envelope::Operation;

async fn change_pin(h: &mut Harness, wallet: &SealedWallet, old: &str, new: &str) -> Reply {
    let op = Operation::ChangePin {
        app_id: APP.into(),
        wallet_id: "wal_1".into(),
    };
    let pin = h.user.envelope(old, &op);
    let new_pin = h.new_pin_envelope(new);
    h.call(Request::ChangePin(ChangePinRequest {
        wallet: h.context(wallet),
        pin,
        new_pin,
    }))
    .await
}

async fn recover(h: &mut Harness, wallet: &SealedWallet, code: &str, new: &str) -> Reply {
    let op = Operation::Recover {
        app_id: APP.into(),
        wallet_id: "wal_1".into(),
    };
    let recovery = h.user.envelope(code, &op);
    let new_pin = h.new_pin_envelope(new);
    h.call(Request::Recover(RecoverRequest {
        wallet: h.context(wallet),
        recovery,
        new_pin,
    }))
    .await
}

#[tokio::test]
async fn pin_change_keeps_the_keys_and_retires_the_old_pin() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    let reply = change_pin(&mut h, &created.wallet, PIN, "615283").await;
    assert_eq!(reply.result, Ok(Response::Resealed));
    let wallet = reply.wallet_update.unwrap();
    let signed = signature_of(&h.sign_message(&wallet, "615283", b"hi").await);
    assert_eq!(signed.signer, created.accounts[0].address);
    let reply = h.sign_message(&wallet, PIN, b"hi").await;
    assert!(matches!(reply.result, Err(EnclaveError::WrongPin { .. })));
    // A weak new PIN is refused before the old one is even tried.
    let reply = change_pin(&mut h, &wallet, "615283", "222222").await;
    assert!(matches!(reply.result, Err(EnclaveError::WeakPin(_))));
    assert_eq!(reply.wallet_update, None);
}

#[tokio::test]
async fn the_recovery_code_reopens_a_locked_wallet_under_a_new_pin() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    let mut wallet = created.wallet.clone();
    for _ in 0..5 {
        wallet = h
            .sign_message(&wallet, "000001", b"hi")
            .await
            .wallet_update
            .unwrap();
    }
    assert!(wallet.pin_state.locked_until > 0);

    let reply = recover(&mut h, &wallet, "ABCDE-FGHJK-MNPQR-STVWX-YZ012", "615283").await;
    assert_eq!(reply.result, Err(EnclaveError::WrongRecoveryCode));
    // Typed as a person would: lower case, spaces instead of dashes.
    let typed = created.recovery_code.to_lowercase().replace('-', " ");
    let reply = recover(&mut h, &wallet, &typed, "615283").await;
    assert_eq!(reply.result, Ok(Response::Resealed), "{reply:?}");
    let wallet = reply.wallet_update.unwrap();
    assert_eq!(
        (wallet.pin_state.failures, wallet.pin_state.locked_until),
        (0, 0),
        "the lock resets"
    );
    let signed = signature_of(&h.sign_message(&wallet, "615283", b"hi").await);
    assert_eq!(signed.signer, created.accounts[0].address);
}

#[tokio::test]
async fn losing_the_primary_kms_key_loses_no_wallet() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    // The primary keyring is destroyed; a new one is made at the next start.
    h.enclave.kill();
    std::fs::remove_file(h.enclave.dir.join("kms-primary.json")).unwrap();
    h.enclave.restart();
    let attestation = keystead_testkit::fetch_attestation(&h.client).await;
    h.user = keystead_testkit::TestClient::attested(&attestation, APP);

    // The PIN still opens the wallet, through the DR copy, and the record comes back
    // re-wrapped under the new primary key.
    let reply = h.sign_message(&created.wallet, PIN, b"hi").await;
    assert_eq!(signature_of(&reply).signer, created.accounts[0].address);
    let restored = reply.wallet_update.expect("re-wrapped record");
    assert_ne!(restored.data_key, created.wallet.data_key);
    // Without the DR keyring as well, the restored record opens on the new primary alone.
    h.enclave.kill();
    std::fs::remove_file(h.enclave.dir.join("kms-dr.json")).unwrap();
    h.enclave.restart();
    let attestation = keystead_testkit::fetch_attestation(&h.client).await;
    h.user = keystead_testkit::TestClient::attested(&attestation, APP);
    let reply = h.sign_message(&restored, PIN, b"hi").await;
    assert_eq!(signature_of(&reply).signer, created.accounts[0].address);
    // The DR copy still needs the PIN: a wrong one opens nothing.
    let reply = h.sign_message(&created.wallet, "000001", b"hi").await;
    assert!(reply.result.is_err());
}

#[tokio::test]
async fn without_a_dr_copy_a_lost_primary_key_is_reported_not_hidden() {
    let mut h = Harness::start_with(false).await;
    let created = h.create_wallet(PIN).await;
    assert_eq!(created.wallet.dr_data_key, None);
    h.enclave.kill();
    std::fs::remove_file(h.enclave.dir.join("kms-primary.json")).unwrap();
    h.enclave.restart();
    let attestation = keystead_testkit::fetch_attestation(&h.client).await;
    h.user = keystead_testkit::TestClient::attested(&attestation, APP);
    let reply = h.sign_message(&created.wallet, PIN, b"hi").await;
    assert!(
        matches!(reply.result, Err(EnclaveError::Kms(_))),
        "{reply:?}"
    );
}
