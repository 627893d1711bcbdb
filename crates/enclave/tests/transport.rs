//! Bad frames, and the client's behaviour when the enclave dies, hangs and comes back.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::*;
use keystead_enclave_client::ClientError;
use keystead_enclave_proto::*;

fn read_response(stream: &mut UnixStream) -> ResponseFrame {
    let mut prefix = [0u8; LEN_PREFIX];
    stream.read_exact(&mut prefix).unwrap();
    let mut body = vec![0u8; frame_len(prefix).unwrap()];
    stream.read_exact(&mut body).unwrap();
    decode_response(&body).unwrap()
}

fn protocol_error(frame: &ResponseFrame) -> String {
    match &frame.reply.result {
        Err(EnclaveError::Protocol(m)) => m.clone(),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_and_unknown_version_frames_get_errors_and_the_connection_goes_on() {
    let h = Harness::start().await;
    let mut stream = UnixStream::connect(&h.enclave.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();

    // Garbage of a valid length.
    stream
        .write_all(&[0, 0, 0, 5, 0, 1, 0xff, 0xff, 0xff])
        .unwrap();
    assert!(protocol_error(&read_response(&mut stream)).contains("malformed"));

    // A future protocol version.
    let mut frame = encode_request(&RequestFrame {
        id: 5,
        request: Request::Ping,
    })
    .unwrap();
    frame[4..6].copy_from_slice(&9u16.to_be_bytes());
    stream.write_all(&frame).unwrap();
    assert!(protocol_error(&read_response(&mut stream)).contains("version 9"));

    // The same connection still serves a good request.
    stream
        .write_all(
            &encode_request(&RequestFrame {
                id: 6,
                request: Request::Ping,
            })
            .unwrap(),
        )
        .unwrap();
    let reply = read_response(&mut stream);
    assert_eq!(reply.id, 6);
    assert!(matches!(reply.reply.result, Ok(Response::Pong(_))));
}

#[tokio::test]
async fn an_oversized_frame_closes_only_its_own_connection() {
    let h = Harness::start().await;
    let mut bad = UnixStream::connect(&h.enclave.socket).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    bad.write_all(&((MAX_FRAME_LEN as u32) + 1).to_be_bytes())
        .unwrap();
    assert!(protocol_error(&read_response(&mut bad)).contains("exceeds"));
    let mut rest = Vec::new();
    assert_eq!(
        bad.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the refusal"
    );

    // A half-sent frame on another connection does not stall anyone else.
    let mut slow = UnixStream::connect(&h.enclave.socket).unwrap();
    slow.write_all(&[0, 0, 1, 0, 0]).unwrap();
    let reply = h.call(Request::Ping).await;
    assert!(matches!(reply.result, Ok(Response::Pong(_))));
}

#[tokio::test]
async fn a_dead_enclave_is_reported_quickly_and_work_resumes_after_restart() {
    let mut h = Harness::start().await;
    let created = h.create_wallet(PIN).await;
    h.enclave.kill();

    let started = Instant::now();
    let err = h.client.call(Request::Ping).await.unwrap_err();
    assert!(matches!(err, ClientError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    h.enclave.restart();
    let attestation = keystead_testkit::fetch_attestation(&h.client).await;
    h.user = keystead_testkit::TestClient::attested(&attestation, APP);
    // Wallets made before the restart still open: the keys live in the KMS, not the process.
    let signed = signature_of(&h.sign_message(&created.wallet, PIN, b"after restart").await);
    assert_eq!(signed.signer, created.accounts[0].address);
}

#[tokio::test]
async fn a_hung_enclave_costs_a_caller_at_most_the_deadline() {
    let h = Harness::start().await;
    h.call(Request::Ping).await; // leaves a pooled connection
    h.enclave.pause();
    let started = Instant::now();
    let err = h.client.call(Request::Ping).await.unwrap_err();
    let waited = started.elapsed();
    h.enclave.resume();
    assert!(matches!(err, ClientError::Unavailable(_)), "{err:?}");
    let deadline = client_config().request_timeout;
    assert!(
        waited >= deadline && waited < deadline + Duration::from_millis(500),
        "{waited:?}"
    );
    // Once it runs again, so does the client.
    assert!(matches!(
        h.call(Request::Ping).await.result,
        Ok(Response::Pong(_))
    ));
}
