//! A JSON-RPC client for one EVM network, over its RPC URLs with fallback.

use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy_provider::network::ReceiptResponse;
use alloy_provider::transport::{RpcError, TransportErrorKind};
use alloy_provider::{Provider, RootProvider};
use alloy_rpc_types_eth::{TransactionInput, TransactionRequest};
use tracing::{debug, warn};
use url::Url;

use crate::config::{NetworkConfig, duration_text, parse_rpc_url, redact_url};
use crate::error::{ChainError, ConfigError, NodeErrorKind, classify, safe_text};

/// Gas of a plain value transfer.
pub const TRANSFER_GAS: u64 = 21_000;

/// An endpoint that failed at the transport level is tried after the healthy ones for
/// this long (it is still tried, last, so a cool-down never causes a failure).
const COOL_DOWN: Duration = Duration::from_secs(30);

/// EIP-1559 fee caps to offer the user, in wei per gas.
///
/// `max_fee_per_gas = 2 × base_fee + max_priority_fee_per_gas`: the base fee can rise by
/// at most 12.5 % a block, so twice the current base fee keeps the transaction
/// includable through about six consecutive full blocks, while the sender only ever pays
/// the base fee of the block that includes it plus the tip. This is the cap the user
/// approves; the enclave refuses to sign above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeSuggestion {
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
    /// The latest block's base fee.
    pub base_fee: u128,
}

impl FeeSuggestion {
    /// The suggestion for a base fee and a tip (see the type's documentation).
    pub fn from_base_fee(base_fee: u128, max_priority_fee_per_gas: u128) -> Self {
        Self {
            max_fee_per_gas: base_fee
                .saturating_mul(2)
                .saturating_add(max_priority_fee_per_gas),
            max_priority_fee_per_gas,
            base_fee,
        }
    }
}

/// What a mined transaction's receipt says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptInfo {
    /// `true` when the transaction succeeded, `false` when it reverted.
    pub status: bool,
    pub block_number: u64,
    pub gas_used: u64,
    /// Wei per gas actually paid; the fee is `gas_used × effective_gas_price`.
    pub effective_gas_price: u128,
}

/// A gas estimate with the safety margin `prepare` uses: +20 % rounded up, and never
/// below [`TRANSFER_GAS`]. A plain transfer's 21,000 becomes 25,200; unused gas is not
/// charged, the margin only keeps state changes between estimate and inclusion from
/// making the transaction run out of gas.
pub fn gas_with_margin(estimate: u64) -> u64 {
    estimate
        .saturating_add(estimate.div_ceil(5))
        .max(TRANSFER_GAS)
}

/// A client for one EVM network. Every request goes to the configured RPC URLs in order:
/// an endpoint that fails at the transport level (refused, reset, HTTP error, unreadable
/// answer, rate limit) or does not answer within `request_timeout` is skipped for the
/// next one; an error answer from a node (nonce too low, revert...) is final. Endpoints
/// that failed in the last 30 seconds are tried after the others.
///
/// Before an endpoint's first use (and again after it failed) the client asks its
/// `eth_chainId`; an endpoint on another chain makes every call fail with
/// [`ChainError::WrongChain`] until the configuration is fixed, so nothing is ever
/// signed against or sent to the wrong chain.
///
/// Cheap to share: put it in an `Arc`. Its methods take `&self` and may run concurrently.
pub struct EvmClient {
    config: NetworkConfig,
    endpoints: Vec<Endpoint>,
}

struct Endpoint {
    /// Scheme, host and port only: safe to log and show.
    shown: String,
    /// The full URL, to scrub from transport error texts.
    full: String,
    provider: RootProvider,
    state: Mutex<EndpointState>,
}

#[derive(Default)]
struct EndpointState {
    chain_verified: bool,
    failed_at: Option<Instant>,
}

/// Why one attempt on one endpoint did not give an answer.
enum Attempt {
    /// The endpoint did not answer usefully: try the next one.
    Transport(String),
    /// The node answered with an error: final.
    Node { code: i64, message: String },
    /// The endpoint serves another chain: final.
    WrongChain(u64),
    /// A local problem (encoding a request): final.
    Local(String),
}

/// Why a request failed on every endpoint, or was refused by one.
enum Failure {
    Node { code: i64, message: String },
    Fatal(ChainError),
}

impl Failure {
    fn into_error(self) -> ChainError {
        match self {
            Failure::Node { code, message } => ChainError::from_node_error(code, &message),
            Failure::Fatal(e) => e,
        }
    }
}

impl EvmClient {
    /// A client for the network; validates the configuration. No request is made yet.
    pub fn new(config: NetworkConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut endpoints = Vec::with_capacity(config.rpc_urls.len());
        for text in &config.rpc_urls {
            let url: Url = parse_rpc_url(text).map_err(|reason| ConfigError::Invalid {
                network: config.id.clone(),
                reason,
            })?;
            endpoints.push(Endpoint {
                shown: redact_url(&url),
                full: url.as_str().to_string(),
                provider: RootProvider::new_http(url),
                state: Mutex::new(EndpointState::default()),
            });
        }
        Ok(Self { config, endpoints })
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// The network's id in Keystead (`"local"`).
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The configured chain id.
    pub fn chain_id(&self) -> u64 {
        self.config.chain_id
    }

    /// Checks that an endpoint answers and serves the configured chain: `Ok` when the
    /// first reachable endpoint reports the configured chain id. For readiness checks.
    pub async fn check_chain(&self) -> Result<(), ChainError> {
        self.run("eth_chainId", |p| async move { p.get_chain_id().await })
            .await
            .map_err(Failure::into_error)
            .and_then(|got| {
                if got == self.config.chain_id {
                    Ok(())
                } else {
                    Err(ChainError::WrongChain {
                        expected: self.config.chain_id,
                        got,
                    })
                }
            })
    }

    /// The native balance at the latest block, in wei.
    pub async fn balance(&self, address: Address) -> Result<U256, ChainError> {
        self.run("eth_getBalance", move |p| async move {
            p.get_balance(address).latest().await
        })
        .await
        .map_err(Failure::into_error)
    }

    /// The next nonce for the address, counting its pending transactions.
    pub async fn pending_nonce(&self, address: Address) -> Result<u64, ChainError> {
        self.run("eth_getTransactionCount", move |p| async move {
            p.get_transaction_count(address).pending().await
        })
        .await
        .map_err(Failure::into_error)
    }

    /// Fee caps from the latest block's base fee and the node's suggested tip
    /// (`eth_maxPriorityFeePerGas`); see [`FeeSuggestion`] for the formula.
    pub async fn fee_suggestion(&self) -> Result<FeeSuggestion, ChainError> {
        let block = self.run("eth_getBlockByNumber", |p| async move {
            p.get_block_by_number(BlockNumberOrTag::Latest).await
        });
        let tip = self.run("eth_maxPriorityFeePerGas", |p| async move {
            p.get_max_priority_fee_per_gas().await
        });
        let (block, tip) = tokio::join!(block, tip);
        let block = block
            .map_err(Failure::into_error)?
            .ok_or_else(|| ChainError::Rpc("the node has no latest block".to_string()))?;
        let tip = tip.map_err(Failure::into_error)?;
        let base_fee = block.header.base_fee_per_gas.ok_or_else(|| {
            ChainError::Rpc(
                "the latest block has no base fee: the network does not support EIP-1559"
                    .to_string(),
            )
        })?;
        Ok(FeeSuggestion::from_base_fee(u128::from(base_fee), tip))
    }

    /// The gas limit to use for a transaction: the node's estimate with
    /// [`gas_with_margin`]. `to` is an address, or `TxKind::Create` for a deployment.
    /// A transaction that would revert gives [`ChainError::Rpc`] with the reason; one the
    /// sender cannot pay the value of, [`ChainError::InsufficientFunds`].
    pub async fn estimate_gas(
        &self,
        from: Address,
        to: impl Into<TxKind>,
        value: U256,
        data: Bytes,
    ) -> Result<u64, ChainError> {
        let request = TransactionRequest {
            from: Some(from),
            to: Some(to.into()),
            value: Some(value),
            input: TransactionInput::both(data),
            ..Default::default()
        };
        let estimate = self
            .run("eth_estimateGas", move |p| {
                let request = request.clone();
                async move { p.estimate_gas(request).await }
            })
            .await
            .map_err(Failure::into_error)?;
        Ok(gas_with_margin(estimate))
    }

    /// Broadcasts a signed transaction (its EIP-2718 encoding) and returns its hash.
    ///
    /// Idempotent: sending a transaction the node already has ("already known") or has
    /// already mined is a success with the same hash, so a retry after a timeout or a
    /// crash is always safe.
    pub async fn send_raw(&self, raw: &[u8]) -> Result<B256, ChainError> {
        let hash = keccak256(raw);
        let encoded = Bytes::copy_from_slice(raw);
        let sent = self
            .run("eth_sendRawTransaction", move |p| {
                let encoded = encoded.clone();
                async move {
                    p.raw_request::<_, B256>("eth_sendRawTransaction".into(), (encoded,))
                        .await
                }
            })
            .await;
        match sent {
            Ok(answered) => {
                if answered != hash {
                    warn!(
                        network = %self.config.id,
                        %hash, %answered,
                        "the node answered another hash than the transaction's own"
                    );
                }
                Ok(hash)
            }
            Err(Failure::Node { code, message }) => {
                let kind = classify(code, &message);
                debug!(network = %self.config.id, %hash, code, message = %safe_text(&message), ?kind, "eth_sendRawTransaction refused");
                match kind {
                    NodeErrorKind::AlreadyKnown => Ok(hash),
                    // The same transaction may have been mined (nonce too low) or still be
                    // pending (some nodes answer "underpriced" to a resend): look it up.
                    NodeErrorKind::NonceTooLow | NodeErrorKind::Underpriced => {
                        match self.transaction_known(hash).await {
                            Ok(true) => Ok(hash),
                            _ => Err(ChainError::from_node_error(code, &message)),
                        }
                    }
                    _ => Err(ChainError::from_node_error(code, &message)),
                }
            }
            Err(Failure::Fatal(e)) => Err(e),
        }
    }

    /// Whether the node knows the transaction (pending or mined).
    pub async fn transaction_known(&self, hash: B256) -> Result<bool, ChainError> {
        self.run("eth_getTransactionByHash", move |p| async move {
            p.get_transaction_by_hash(hash).await
        })
        .await
        .map(|tx| tx.is_some())
        .map_err(Failure::into_error)
    }

    /// The receipt of a mined transaction; `None` while it is pending or unknown.
    pub async fn receipt(&self, hash: B256) -> Result<Option<ReceiptInfo>, ChainError> {
        let receipt = self
            .run("eth_getTransactionReceipt", move |p| async move {
                p.get_transaction_receipt(hash).await
            })
            .await
            .map_err(Failure::into_error)?;
        Ok(receipt.and_then(|r| {
            Some(ReceiptInfo {
                status: r.status(),
                block_number: r.block_number()?,
                gas_used: r.gas_used,
                effective_gas_price: r.effective_gas_price,
            })
        }))
    }

    /// An ERC-20 token balance at the latest block (`balanceOf(owner)` by `eth_call`).
    /// A contract that reverts or answers with less than a word gives [`ChainError::Rpc`].
    pub async fn erc20_balance(&self, token: Address, owner: Address) -> Result<U256, ChainError> {
        // balanceOf(address) = 0x70a08231, then the address left-padded to 32 bytes.
        let mut call = Vec::with_capacity(36);
        call.extend_from_slice(&[0x70, 0xa0, 0x82, 0x31]);
        call.extend_from_slice(&[0u8; 12]);
        call.extend_from_slice(owner.as_slice());
        let request = TransactionRequest {
            to: Some(TxKind::Call(token)),
            input: TransactionInput::both(Bytes::from(call)),
            ..Default::default()
        };
        let answer = self
            .run("eth_call", move |p| {
                let request = request.clone();
                async move { p.call(request).latest().await }
            })
            .await
            .map_err(Failure::into_error)?;
        match answer.get(..32) {
            Some(word) => Ok(U256::from_be_slice(word)),
            None => Err(ChainError::Rpc(format!(
                "{token} answered balanceOf with {} bytes: is it an ERC-20 contract?",
                answer.len()
            ))),
        }
    }

    /// Endpoints in configured order, those that failed recently last.
    fn ordered(&self) -> Vec<&Endpoint> {
        let now = Instant::now();
        let cooling = |e: &Endpoint| {
            e.lock()
                .failed_at
                .is_some_and(|at| now.duration_since(at) < COOL_DOWN)
        };
        let (healthy, cool): (Vec<&Endpoint>, Vec<&Endpoint>) =
            self.endpoints.iter().partition(|e| !cooling(e));
        healthy.into_iter().chain(cool).collect()
    }

    /// Runs one request on the endpoints in turn until one answers.
    async fn run<T, F, Fut>(&self, method: &'static str, call: F) -> Result<T, Failure>
    where
        F: Fn(RootProvider) -> Fut,
        Fut: Future<Output = Result<T, RpcError<TransportErrorKind>>>,
    {
        let mut problems = Vec::new();
        for endpoint in self.ordered() {
            match self.attempt(endpoint, &call).await {
                Ok(value) => {
                    endpoint.lock().failed_at = None;
                    return Ok(value);
                }
                Err(Attempt::Transport(problem)) => {
                    warn!(
                        network = %self.config.id,
                        endpoint = %endpoint.shown,
                        method,
                        %problem,
                        "RPC endpoint failed; trying the next"
                    );
                    {
                        let mut state = endpoint.lock();
                        state.failed_at = Some(Instant::now());
                        // It may come back as another node: check its chain again.
                        state.chain_verified = false;
                    }
                    problems.push(format!("{} ({problem})", endpoint.shown));
                }
                Err(Attempt::Node { code, message }) => {
                    return Err(Failure::Node { code, message });
                }
                Err(Attempt::WrongChain(got)) => {
                    warn!(
                        network = %self.config.id,
                        endpoint = %endpoint.shown,
                        expected = self.config.chain_id,
                        got,
                        "RPC endpoint serves another chain; refusing to use it"
                    );
                    return Err(Failure::Fatal(ChainError::WrongChain {
                        expected: self.config.chain_id,
                        got,
                    }));
                }
                Err(Attempt::Local(problem)) => {
                    return Err(Failure::Fatal(ChainError::Rpc(problem)));
                }
            }
        }
        Err(Failure::Fatal(ChainError::Unavailable(format!(
            "network {}: no RPC endpoint answered {method}: {}",
            self.config.id,
            problems.join("; ")
        ))))
    }

    async fn attempt<T, F, Fut>(&self, endpoint: &Endpoint, call: &F) -> Result<T, Attempt>
    where
        F: Fn(RootProvider) -> Fut,
        Fut: Future<Output = Result<T, RpcError<TransportErrorKind>>>,
    {
        if !endpoint.lock().chain_verified {
            let got = self
                .timed(endpoint, endpoint.provider.get_chain_id())
                .await
                .map_err(|e| match e {
                    // A node that cannot say its chain id is no use to us.
                    Attempt::Node { message, .. } => {
                        Attempt::Transport(format!("eth_chainId refused: {}", safe_text(&message)))
                    }
                    other => other,
                })?;
            if got != self.config.chain_id {
                return Err(Attempt::WrongChain(got));
            }
            endpoint.lock().chain_verified = true;
        }
        self.timed(endpoint, call(endpoint.provider.clone())).await
    }

    /// One request with the timeout, its error sorted into an [`Attempt`].
    async fn timed<T>(
        &self,
        endpoint: &Endpoint,
        request: impl Future<Output = Result<T, RpcError<TransportErrorKind>>>,
    ) -> Result<T, Attempt> {
        let timeout = self.config.request_timeout;
        match tokio::time::timeout(timeout, request).await {
            Err(_) => Err(Attempt::Transport(format!(
                "no answer within {}",
                duration_text::format(timeout)
            ))),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(sort_error(endpoint, error)),
        }
    }
}

fn sort_error(endpoint: &Endpoint, error: RpcError<TransportErrorKind>) -> Attempt {
    match error {
        RpcError::ErrorResp(payload) => {
            let message = payload.message.to_string();
            if classify(payload.code, &message) == NodeErrorKind::RateLimited {
                Attempt::Transport(format!("rate limited: {}", safe_text(&message)))
            } else {
                Attempt::Node {
                    code: payload.code,
                    message,
                }
            }
        }
        RpcError::Transport(kind) => Attempt::Transport(endpoint.scrub(&error_chain(&kind))),
        RpcError::NullResp => Attempt::Transport("null answer".to_string()),
        RpcError::DeserError { err, .. } => Attempt::Transport(format!("unreadable answer: {err}")),
        RpcError::SerError(err) => Attempt::Local(format!("could not encode the request: {err}")),
        RpcError::UnsupportedFeature(feature) => Attempt::Local(format!("unsupported: {feature}")),
        RpcError::LocalUsageError(err) => Attempt::Local(safe_text(&err.to_string())),
    }
}

/// An error and its sources, `a: b: c`, with repeated parts dropped.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

impl Endpoint {
    fn lock(&self) -> std::sync::MutexGuard<'_, EndpointState> {
        // The state is two plain fields: a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the full URL (which may hold an API key) in a transport error text.
    fn scrub(&self, text: &str) -> String {
        let trimmed = self.full.trim_end_matches('/');
        safe_text(
            &text
                .replace(&self.full, &self.shown)
                .replace(trimmed, &self.shown),
        )
    }
}

impl fmt::Debug for EvmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvmClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins() {
        assert_eq!(gas_with_margin(21_000), 25_200);
        assert_eq!(gas_with_margin(0), TRANSFER_GAS);
        assert_eq!(gas_with_margin(10_000), TRANSFER_GAS);
        assert_eq!(gas_with_margin(50_001), 60_002);
        assert_eq!(gas_with_margin(u64::MAX), u64::MAX);
    }

    #[test]
    fn fee_formula() {
        let fee = FeeSuggestion::from_base_fee(1_000_000_000, 1_000_000_000);
        assert_eq!(fee.max_fee_per_gas, 3_000_000_000);
        assert_eq!(fee.base_fee, 1_000_000_000);
        assert_eq!(
            FeeSuggestion::from_base_fee(u128::MAX, 1).max_fee_per_gas,
            u128::MAX
        );
    }

    #[test]
    fn transport_errors_do_not_show_the_url() {
        let url: Url = "https://node.example.com/v3/SECRETKEY".parse().unwrap();
        let endpoint = Endpoint {
            shown: redact_url(&url),
            full: url.as_str().to_string(),
            provider: RootProvider::new_http(url),
            state: Mutex::new(EndpointState::default()),
        };
        let text = endpoint.scrub(
            "error sending request for url (https://node.example.com/v3/SECRETKEY): refused",
        );
        assert!(!text.contains("SECRETKEY"), "{text}");
        assert!(text.contains("https://node.example.com/…"), "{text}");
    }
}
