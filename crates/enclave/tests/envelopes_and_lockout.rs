//! Every misuse of a PIN envelope, and wrong-PIN counting, against the real enclave.

mod common;

use common::*;
use keystead_enclave_proto::*;
use keystead_envelope::{HpkeKeyPair, Operation, PinPayload, Zeroizing};
use keystead_testkit::now_unix;
use rand::SeedableRng;

fn rejected(reply: &Reply, why: EnvelopeRejection) {
    assert_eq!(
        reply.result,
        Err(EnclaveError::EnvelopeRejected(why)),
        "{reply:?}"
    );
    assert_eq!(
        reply.wallet_update, None,
        "a refused envelope costs no PIN try"
    );
}

#[tokio::test]
async fn an_envelope_for_another_purpose_is_refused() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    let export_op = Operation::Export {
        app_id: APP.into(),
        wallet_id: "wal_1".into(),
        client_key: "x".into(),
    };
    let envelope = h.user.envelope(PIN, &export_op);
    let reply = h
        .call(h.sign_request(
            &created.wallet,
            envelope,
            SignPayload::Message(b"hi".to_vec()),
        ))
        .await;
    rejected(&reply, EnvelopeRejection::WrongPurpose);
}

#[tokio::test]
async fn an_envelope_for_another_operation_of_the_same_kind_is_refused() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    let envelope = h.user.envelope(PIN, &h.message_op(b"approve 1 token"));
    let reply = h
        .call(h.sign_request(
            &created.wallet,
            envelope,
            SignPayload::Message(b"approve all tokens".to_vec()),
        ))
        .await;
    rejected(&reply, EnvelopeRejection::WrongDigest);
    // Another app's approval of the same message does not carry over either.
    let other_app = Operation::SignMessage {
        app_id: "app_other".into(),
        account_id: "acc_0".into(),
        message: b"hi".to_vec(),
    };
    let envelope = h.user.envelope(PIN, &other_app);
    let reply = h
        .call(h.sign_request(
            &created.wallet,
            envelope,
            SignPayload::Message(b"hi".to_vec()),
        ))
        .await;
    rejected(&reply, EnvelopeRejection::WrongDigest);
}

#[tokio::test]
async fn expired_and_far_future_envelopes_are_refused() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    let op = h.message_op(b"hi");
    let expired = h.user.envelope_expiring(PIN, &op, now_unix() - 5);
    let reply = h
        .call(h.sign_request(
            &created.wallet,
            expired,
            SignPayload::Message(b"hi".to_vec()),
        ))
        .await;
    rejected(&reply, EnvelopeRejection::Expired);
    let far = h.user.envelope_expiring(PIN, &op, now_unix() + 3600);
    let reply = h
        .call(h.sign_request(&created.wallet, far, SignPayload::Message(b"hi".to_vec())))
        .await;
    rejected(&reply, EnvelopeRejection::ExpiryTooFar);
}

#[tokio::test]
async fn a_replayed_envelope_is_refused() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    let request = h.message_request(&created.wallet, PIN, b"hi");
    signature_of(&h.call(request.clone()).await);
    rejected(&h.call(request).await, EnvelopeRejection::Replayed);
}

#[tokio::test]
async fn a_full_replay_memory_refuses_new_envelopes_and_forgets_none() {
    // Room for two nonces: the wallet's creation and one signature.
    let mut h = Harness::start_with_args(true, &["--replay-capacity", "2"]).await;
    let created = h.create_wallet(PIN).await;
    let first = h.message_request(&created.wallet, PIN, b"one");
    signature_of(&h.call(first.clone()).await);

    let reply = h.sign_message(&created.wallet, PIN, b"two").await;
    assert_eq!(reply.result, Err(EnclaveError::Busy), "{reply:?}");
    assert_eq!(
        reply.wallet_update, None,
        "a refused envelope costs no PIN try"
    );
    // Full, yet the spent nonce is still remembered.
    rejected(&h.call(first).await, EnvelopeRejection::Replayed);
}

#[tokio::test]
async fn an_envelope_sealed_to_another_key_is_refused() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let stranger = HpkeKeyPair::generate(&mut rng);
    let payload = PinPayload::for_operation(
        Zeroizing::new(PIN.into()),
        &h.message_op(b"hi"),
        now_unix() + 60,
        &mut rng,
    );
    let envelope = keystead_envelope::seal_pin(&stranger.public_key(), &payload, &mut rng).unwrap();
    let reply = h
        .call(h.sign_request(
            &created.wallet,
            envelope,
            SignPayload::Message(b"hi".to_vec()),
        ))
        .await;
    rejected(&reply, EnvelopeRejection::Undecryptable);
    // A bit flipped in transit is the same to the enclave.
    let mut flipped = h.user.envelope(PIN, &h.message_op(b"hi"));
    flipped.ciphertext[3] ^= 1;
    let reply = h
        .call(h.sign_request(
            &created.wallet,
            flipped,
            SignPayload::Message(b"hi".to_vec()),
        ))
        .await;
    rejected(&reply, EnvelopeRejection::Undecryptable);
}

#[tokio::test]
async fn weak_pins_are_refused_at_creation() {
    let mut h = Harness::start().await;
    for weak in ["111111", "123456", "987654", "12345", "12a456"] {
        let (_, client_key) = h.user.one_time_key();
        let op = Operation::CreateWallet {
            app_id: APP.into(),
            user_id: h.user_id.clone(),
            client_key: client_key.clone(),
        };
        let pin = h.user.envelope(weak, &op);
        let reply = h
            .call(Request::CreateWallet(CreateWallet {
                binding: h.binding.clone(),
                user_id: h.user_id.clone(),
                client_key,
                pin,
            }))
            .await;
        assert!(
            matches!(reply.result, Err(EnclaveError::WeakPin(_))),
            "{weak}: {reply:?}"
        );
        assert!(
            !format!("{reply:?}").contains(weak),
            "the refusal must not echo the PIN"
        );
    }
}

#[tokio::test]
async fn wrong_pins_count_down_then_lock_and_the_server_cannot_undo_it() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    let mut wallet = created.wallet.clone();
    for remaining in (1..=4).rev() {
        let reply = h.sign_message(&wallet, "000001", b"hi").await;
        assert_eq!(
            reply.result,
            Err(EnclaveError::WrongPin {
                remaining_tries: remaining
            })
        );
        wallet = reply.wallet_update.expect("a wrong PIN changes the record");
        assert_eq!(wallet.pin_state.failures, 5 - remaining);
    }
    let reply = h.sign_message(&wallet, "000001", b"hi").await;
    let Err(EnclaveError::WalletLocked { retry_after }) = reply.result else {
        panic!("{reply:?}")
    };
    assert!((55..=60).contains(&retry_after), "{retry_after}");
    wallet = reply.wallet_update.unwrap();

    // Locked: the right PIN is refused too, with the time left.
    let reply = h.sign_message(&wallet, PIN, b"hi").await;
    assert!(
        matches!(reply.result, Err(EnclaveError::WalletLocked { .. })),
        "{reply:?}"
    );

    // A server that presents the record from before the failures gets the lock anyway.
    let reply = h.sign_message(&created.wallet, PIN, b"hi").await;
    assert!(
        matches!(reply.result, Err(EnclaveError::WalletLocked { .. })),
        "{reply:?}"
    );
    assert_eq!(
        reply
            .wallet_update
            .as_ref()
            .map(|w| w.pin_state.locked_until),
        Some(wallet.pin_state.locked_until)
    );

    // Editing the counters by hand breaks the record's MAC.
    let mut forged = wallet.clone();
    forged.pin_state.failures = 0;
    forged.pin_state.locked_until = 0;
    forged.pin_state.counter += 10;
    let reply = h.sign_message(&forged, PIN, b"hi").await;
    assert_eq!(reply.result, Err(EnclaveError::TamperedRecord));
}

#[tokio::test]
async fn a_right_pin_resets_the_count() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    let reply = h.sign_message(&created.wallet, "000001", b"hi").await;
    let wallet = reply.wallet_update.unwrap();
    let reply = h.sign_message(&wallet, PIN, b"hi").await;
    signature_of(&reply);
    let wallet = reply.wallet_update.expect("the reset is a new record");
    assert_eq!(wallet.pin_state.failures, 0);
    let reply = h.sign_message(&wallet, "000001", b"hi").await;
    assert_eq!(
        reply.result,
        Err(EnclaveError::WrongPin { remaining_tries: 4 })
    );
}
