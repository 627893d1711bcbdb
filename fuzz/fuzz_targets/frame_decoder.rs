//! Arbitrary bytes through the server <-> enclave framing: as a whole frame (length prefix
//! included), as a bare request or response body, and as a length prefix. Nothing may
//! panic, and whatever decodes must survive encode -> decode unchanged.
#![no_main]

use keystead_enclave_proto::{
    LEN_PREFIX, decode_request, decode_request_frame, decode_response, encode_request,
    encode_response, frame_len,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(prefix) = data.first_chunk::<LEN_PREFIX>() {
        let _ = frame_len(*prefix);
    }

    // A whole frame, prefix included.
    if let Ok(frame) = decode_request_frame(data) {
        let bytes = encode_request(&frame).expect("a decoded request re-encodes");
        let again = decode_request_frame(&bytes).expect("a re-encoded request decodes");
        assert_eq!(again, frame, "request frame changed through encode/decode");
    }

    // A bare body: reaches the postcard payload without having to match the prefix.
    if let Ok(request) = decode_request(data) {
        let bytes = encode_request(&request).expect("a decoded request re-encodes");
        let again = decode_request(&bytes[LEN_PREFIX..]).expect("a re-encoded request decodes");
        assert_eq!(again, request, "request body changed through encode/decode");
    }

    if let Ok(response) = decode_response(data) {
        let bytes = encode_response(&response).expect("a decoded response re-encodes");
        let again = decode_response(&bytes[LEN_PREFIX..]).expect("a re-encoded response decodes");
        assert_eq!(
            again, response,
            "response body changed through encode/decode"
        );
    }
});
