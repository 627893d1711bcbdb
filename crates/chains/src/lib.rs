//! keystead-chains: the networks Keystead serves and the node clients that read them and
//! broadcast to them. EVM first: [`EvmClient`] speaks JSON-RPC over HTTP(S) to each
//! network's RPC URLs in order, with a timeout and fallback, checks that every endpoint
//! serves the configured chain, and maps node errors to the stable kinds of
//! [`ChainError`].

mod config;
mod error;
mod evm;
mod registry;

pub use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
pub use config::{DEFAULT_REQUEST_TIMEOUT, MAX_TOKENS, NetworkConfig, TokenConfig};
pub use error::{ChainError, ConfigError};
pub use evm::{EvmClient, FeeSuggestion, ReceiptInfo, TRANSFER_GAS, gas_with_margin};
pub use registry::ChainRegistry;
