//! Keystead's command-line wallet client.
//!
//! - [`api::Client`]: a typed async client for the public HTTP API (API.md).
//! - [`attest`]: verifies the enclave's attestation; PINs are sealed only to the key it
//!   attests.
//! - [`ops`]: the operations a PIN approves, their digests' inputs, and sealing.
//! - [`session`]: the session file (mode 0600).
//! - [`cli`]: `keystead wallet ...`, which the `keystead` binary mounts.
//!
//! Secrets (PINs, the recovery code, the mnemonic, tokens) stay in zeroizing buffers and
//! never appear in an error or a `Debug` output.

pub mod api;
pub mod attest;
pub mod cli;
pub mod error;
pub mod ops;
pub mod session;

pub use api::Client;
pub use error::{ClientError, Result};
