//! The Keystead enclave: the only place private keys, seeds, mnemonics and PINs exist in
//! plaintext. It generates wallets, seals and opens them, signs, and backs them up,
//! answering the narrow protocol of `keystead-enclave-proto`.

pub mod bounded;
pub mod hardening;
pub mod keys;
pub mod pin;
pub mod replay;
pub mod seal;
pub mod service;
pub mod sign;
pub mod transport;

pub use service::{Clock, EnclaveService, ServiceConfig, ServiceParts, SystemClock};
