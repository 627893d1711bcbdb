//! The protocol between the Keystead server and its enclave.
//!
//! A frame on the wire is a 4-byte big-endian body length followed by the body. The body
//! starts with the 2-byte big-endian protocol version, then the postcard encoding of a
//! [`RequestFrame`] or [`ResponseFrame`] payload. The version sits outside the postcard
//! payload so a peer can refuse an unknown version without guessing at its layout.
//! Nothing here does I/O: transports (Unix socket locally, vsock on Nitro) read and
//! write frames with [`frame_len`], [`encode_request`] and friends.

mod messages;

pub use messages::*;

use serde::{Serialize, de::DeserializeOwned};

/// The only protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Largest body a peer accepts. Typed data and calldata are the big items; 1 MiB leaves
/// room for both while bounding what a bad peer can make the other allocate.
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge(usize),
    #[error("frame is shorter than its header")]
    Truncated,
    #[error("unsupported protocol version {0}")]
    UnknownVersion(u16),
    #[error("malformed frame body: {0}")]
    Malformed(String),
}

/// Reads the length prefix and checks it against the limit.
pub fn frame_len(prefix: [u8; LEN_PREFIX]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    if len < 2 {
        return Err(FrameError::Truncated);
    }
    Ok(len)
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; LEN_PREFIX];
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    let out = postcard::to_extend(value, out).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let body_len = out.len() - LEN_PREFIX;
    if body_len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(body_len));
    }
    let mut out = out;
    out[..LEN_PREFIX].copy_from_slice(&(body_len as u32).to_be_bytes());
    Ok(out)
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(body.len()));
    }
    let (version, payload) = body.split_first_chunk::<2>().ok_or(FrameError::Truncated)?;
    let version = u16::from_be_bytes(*version);
    if version != PROTOCOL_VERSION {
        return Err(FrameError::UnknownVersion(version));
    }
    let (value, rest) =
        postcard::take_from_bytes(payload).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(value)
}

/// Encodes a whole frame, length prefix included.
pub fn encode_request(frame: &RequestFrame) -> Result<Vec<u8>, FrameError> {
    encode(frame)
}

/// Encodes a whole frame, length prefix included.
pub fn encode_response(frame: &ResponseFrame) -> Result<Vec<u8>, FrameError> {
    encode(frame)
}

/// Decodes a frame body (without the length prefix).
pub fn decode_request(body: &[u8]) -> Result<RequestFrame, FrameError> {
    decode(body)
}

/// Decodes a frame body (without the length prefix).
pub fn decode_response(body: &[u8]) -> Result<ResponseFrame, FrameError> {
    decode(body)
}

/// Decodes a complete frame, length prefix included, as a fuzzer or a test holds it.
pub fn decode_request_frame(bytes: &[u8]) -> Result<RequestFrame, FrameError> {
    let (prefix, body) = bytes
        .split_first_chunk::<LEN_PREFIX>()
        .ok_or(FrameError::Truncated)?;
    let len = frame_len(*prefix)?;
    if body.len() != len {
        return Err(FrameError::Truncated);
    }
    decode_request(body)
}

#[cfg(test)]
mod tests;
