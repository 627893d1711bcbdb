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
