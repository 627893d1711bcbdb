use super::*;

fn ping(id: u64) -> RequestFrame {
    RequestFrame {
        id,
        request: Request::Ping,
    }
}

#[test]
fn request_round_trips_through_a_frame() {
    let frame = RequestFrame {
        id: 7,
        request: Request::Attestation {
            nonce: Some(vec![1, 2, 3]),
        },
    };
    let bytes = encode_request(&frame).unwrap();
    assert_eq!(decode_request_frame(&bytes).unwrap(), frame);
    let len = frame_len(bytes[..4].try_into().unwrap()).unwrap();
    assert_eq!(len, bytes.len() - 4);
}

#[test]
fn response_carries_errors_and_wallet_updates() {
    let frame = ResponseFrame {
        id: 9,
        reply: Reply::err(EnclaveError::WrongPin { remaining_tries: 3 }),
    };
    let bytes = encode_response(&frame).unwrap();
    assert_eq!(decode_response(&bytes[4..]).unwrap(), frame);
}

#[test]
fn oversized_length_prefix_is_refused_before_reading() {
    let prefix = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes();
    assert_eq!(
        frame_len(prefix),
        Err(FrameError::TooLarge(MAX_FRAME_LEN + 1))
    );
}

#[test]
fn unknown_version_is_named() {
    let mut bytes = encode_request(&ping(1)).unwrap();
    bytes[4..6].copy_from_slice(&2u16.to_be_bytes());
    assert_eq!(
        decode_request_frame(&bytes),
        Err(FrameError::UnknownVersion(2))
    );
}

#[test]
fn truncated_and_trailing_bytes_are_refused() {
    let bytes = encode_request(&ping(1)).unwrap();
    assert_eq!(
        decode_request_frame(&bytes[..bytes.len() - 1]),
        Err(FrameError::Truncated)
    );
    assert_eq!(
        decode_request_frame(&bytes[..3]),
        Err(FrameError::Truncated)
    );
    let mut long = bytes.clone();
    long.push(0);
    let n = (long.len() - 4) as u32;
    long[..4].copy_from_slice(&n.to_be_bytes());
    assert!(matches!(
        decode_request_frame(&long),
        Err(FrameError::Malformed(_))
    ));
}

#[test]
fn garbage_bodies_never_panic() {
    // A deterministic sweep; the fuzz target explores further.
    let mut state = 0x9e3779b97f4a7c15u64;
    for len in 0..512 {
        let mut body = vec![0u8; len];
        for b in &mut body {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        if len >= 2 {
            body[..2].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        }
        let _ = decode_request(&body);
        let _ = decode_response(&body);
    }
}

/// The byte fields are written as postcard bytes (one copy) rather than a sequence of
/// `u8` (one call per byte); postcard spells the two identically, so stored wallet records
/// and frames from before the change read the same. `Plain*` are the old shapes.
#[test]
fn byte_fields_encode_as_the_plain_vec_u8_shapes_did() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct PlainPinState {
        failures: u32,
        lockouts: u32,
        locked_until: u64,
        counter: u64,
        mac: Vec<u8>,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct PlainSealedWallet {
        format: u16,
        data_key: Vec<u8>,
        dr_data_key: Option<Vec<u8>>,
        salt: Vec<u8>,
        by_pin: Vec<u8>,
        by_recovery: Vec<u8>,
        pin_state: PlainPinState,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum PlainPayload {
        Message(Vec<u8>),
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct PlainSigned {
        signature: Vec<u8>,
        signed_transaction: Option<Vec<u8>>,
    }
    use serde::{Deserialize, Serialize};

    let bytes = |n: usize, seed: u8| {
        (0..n)
            .map(|i| seed.wrapping_add(i as u8))
            .collect::<Vec<u8>>()
    };
    for dr in [None, Some(bytes(200, 9))] {
        let wallet = SealedWallet {
            format: 3,
            data_key: bytes(184, 1),
            dr_data_key: dr.clone(),
            salt: bytes(16, 2),
            by_pin: bytes(300, 3),
            by_recovery: bytes(130, 4),
            pin_state: PinState {
                failures: 2,
                lockouts: 1,
                locked_until: 1_800_000_000,
                counter: 300,
                mac: bytes(32, 5),
            },
        };
        let plain = PlainSealedWallet {
            format: 3,
            data_key: bytes(184, 1),
            dr_data_key: dr,
            salt: bytes(16, 2),
            by_pin: bytes(300, 3),
            by_recovery: bytes(130, 4),
            pin_state: PlainPinState {
                failures: 2,
                lockouts: 1,
                locked_until: 1_800_000_000,
                counter: 300,
                mac: bytes(32, 5),
            },
        };
        let encoded = postcard::to_stdvec(&wallet).unwrap();
        assert_eq!(encoded, postcard::to_stdvec(&plain).unwrap());
        assert_eq!(
            postcard::from_bytes::<PlainSealedWallet>(&encoded).unwrap(),
            plain
        );
        assert_eq!(
            postcard::from_bytes::<SealedWallet>(&encoded).unwrap(),
            wallet
        );
    }

    let message = bytes(300, 7);
    assert_eq!(
        postcard::to_stdvec(&SignPayload::Message(message.clone())).unwrap(),
        postcard::to_stdvec(&PlainPayload::Message(message)).unwrap()
    );
    for tx in [None, Some(bytes(120, 8))] {
        let signed = Signed {
            signature: bytes(65, 6),
            signed_transaction: tx.clone(),
            transaction_hash: None,
            signer: String::new(),
        };
        let encoded = postcard::to_stdvec(&signed).unwrap();
        let plain = PlainSigned {
            signature: bytes(65, 6),
            signed_transaction: tx,
        };
        assert!(encoded.starts_with(&postcard::to_stdvec(&plain).unwrap()));
    }
}
