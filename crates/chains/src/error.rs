//! Errors, and the mapping of node error messages to stable kinds.

/// What went wrong talking to a chain. The kinds are stable; the server maps each to an
/// API error code. Every message is safe to show: RPC URLs appear only as scheme, host
/// and port, and node messages are shortened and stripped of control characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The sender cannot pay for gas × fee + value.
    #[error("insufficient funds for gas and value")]
    InsufficientFunds,
    /// The transaction's nonce was already used by a mined transaction.
    #[error("nonce too low: the account already used this nonce")]
    NonceTooLow,
    /// The fee is too low: below the base fee or the node's minimum, or too low to
    /// replace a pending transaction with the same nonce.
    #[error("transaction underpriced: the fee is too low")]
    Underpriced,
    /// No endpoint answered: every RPC URL failed at the transport level or timed out.
    #[error("chain unavailable: {0}")]
    Unavailable(String),
    /// An endpoint serves another chain than the configured one. Nothing is sent to it.
    #[error("wrong chain: configured chain id {expected}, the node reports {got}")]
    WrongChain { expected: u64, got: u64 },
    /// Any other error the node answered with (a revert, an invalid transaction...).
    #[error("node error: {0}")]
    Rpc(String),
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("network {network:?}: {reason}")]
    Invalid { network: String, reason: String },
    #[error("two networks have the id {0:?}")]
    DuplicateId(String),
    #[error("networks {first:?} and {second:?} have the same chain id {chain_id}")]
    DuplicateChainId {
        chain_id: u64,
        first: String,
        second: String,
    },
}

/// What a node's error answer means to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeErrorKind {
    InsufficientFunds,
    NonceTooLow,
    Underpriced,
    /// The node already has this very transaction (a rebroadcast).
    AlreadyKnown,
    /// The endpoint refuses to serve us now: worth trying the next one.
    RateLimited,
    Other,
}

/// Classifies a JSON-RPC error by its code and message. Clients word the same errors
/// differently (geth and erigon `nonce too low`, Nethermind `OldNonce`, Besu
/// `NONCE_TOO_LOW`...), so messages are compared lowercased with everything but letters
/// and digits removed.
pub(crate) fn classify(code: i64, message: &str) -> NodeErrorKind {
    let m: String = message
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));

    // A contract's own words ("execution reverted: insufficient balance") are not the
    // node's verdict on the transaction.
    if m.contains("revert") {
        return NodeErrorKind::Other;
    }
    if has(&[
        "alreadyknown", // geth, erigon, Nethermind AlreadyKnown, Besu TRANSACTION_ALREADY_KNOWN
        "knowntransaction", // parity, older geth: "known transaction: <hash>"
        "alreadyimported", // anvil, openethereum: "transaction already imported"
        "alreadyinthepool",
        "alreadyinpool",
    ]) {
        return NodeErrorKind::AlreadyKnown;
    }
    if has(&[
        "noncetoolow",             // geth, erigon, reth, anvil, Besu NONCE_TOO_LOW
        "oldnonce",                // Nethermind OldNonce
        "nonceisnolongervalid",    // some hosted endpoints
        "noncehasalreadybeenused", // some hosted endpoints
    ]) {
        return NodeErrorKind::NonceTooLow;
    }
    if has(&[
        "underpriced", // "transaction underpriced", "replacement transaction underpriced"
        "feetoolow",   // Nethermind FeeTooLow, FeeTooLowToCompete
        "feecaptoolow",
        "gaspricetoolow",                   // Besu GAS_PRICE_TOO_LOW
        "maxfeepergaslessthanblockbasefee", // geth ErrFeeCapTooLow
        "gaspricelessthanbasefee",
        "gaspricebelowminimum",
        "tiptoolow",
    ]) {
        return NodeErrorKind::Underpriced;
    }
    if has(&[
        "insufficientfunds",   // geth, erigon, reth, anvil, Nethermind InsufficientFunds
        "insufficientbalance", //
        "upfrontcostexceedsbalance", // Besu UPFRONT_COST_EXCEEDS_BALANCE
        "senderdoesnthaveenoughfunds", // parity
        "notenoughfunds",
    ]) {
        return NodeErrorKind::InsufficientFunds;
    }
    if code == -32005 || has(&["ratelimit", "toomanyrequests", "requestcountexceeded"]) {
        return NodeErrorKind::RateLimited;
    }
    NodeErrorKind::Other
}

impl ChainError {
    /// The stable kind for a node's error answer (its JSON-RPC code and message).
    /// "Already known" and rate-limit answers, which [`crate::EvmClient`] handles
    /// itself, come out as [`ChainError::Rpc`].
    pub fn from_node_error(code: i64, message: &str) -> ChainError {
        match classify(code, message) {
            NodeErrorKind::InsufficientFunds => ChainError::InsufficientFunds,
            NodeErrorKind::NonceTooLow => ChainError::NonceTooLow,
            NodeErrorKind::Underpriced => ChainError::Underpriced,
            NodeErrorKind::AlreadyKnown | NodeErrorKind::RateLimited | NodeErrorKind::Other => {
                ChainError::Rpc(safe_text(message))
            }
        }
    }
}

/// At most this many characters of a node's message are kept.
const MAX_MESSAGE: usize = 300;

/// A node's text made safe to log and show: control characters replaced, length capped.
pub(crate) fn safe_text(text: &str) -> String {
    let mut out: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE)
        .collect();
    if text.trim().chars().count() > MAX_MESSAGE {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("(no message)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(message: &str) -> ChainError {
        ChainError::from_node_error(-32000, message)
    }

    #[test]
    fn insufficient_funds_messages() {
        for m in [
            "insufficient funds for gas * price + value",
            "insufficient funds for gas * price + value: address 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 have 0 want 21000000000000",
            "insufficient funds for transfer",
            "InsufficientFunds, Balance is zero, cannot pay gas",
            "UPFRONT_COST_EXCEEDS_BALANCE",
            "Insufficient funds. The account you tried to send transaction from does not have enough funds. Required 100 and got: 0.",
            "err: insufficient funds for gas * price + value: address 0x01 have 1 want 2 (supplied gas 21000)",
        ] {
            assert_eq!(kind(m), ChainError::InsufficientFunds, "{m}");
        }
    }

    #[test]
    fn nonce_too_low_messages() {
        for m in [
            "nonce too low",
            "nonce too low: next nonce 5, tx nonce 3",
            "NONCE_TOO_LOW",
            "OldNonce, Current nonce: 5, nonce of rejected tx: 3",
            "Nonce too low. Expected nonce to be 5 but got 3.",
        ] {
            assert_eq!(kind(m), ChainError::NonceTooLow, "{m}");
        }
        // Too high is another problem.
        assert!(matches!(kind("nonce too high"), ChainError::Rpc(_)));
    }

    #[test]
    fn underpriced_messages() {
        for m in [
            "replacement transaction underpriced",
            "transaction underpriced",
            "transaction underpriced: tip needed 1, tip permitted 0",
            "REPLACEMENT_UNDERPRICED",
            "max fee per gas less than block base fee: address 0x01, maxFeePerGas: 1, baseFee: 7",
            "FeeTooLow, EffectivePriorityFeePerGas too low 0 < 1",
            "FeeTooLowToCompete",
            "GAS_PRICE_TOO_LOW",
        ] {
            assert_eq!(kind(m), ChainError::Underpriced, "{m}");
        }
    }

    #[test]
    fn already_known_and_rate_limits_are_recognised() {
        for m in [
            "already known",
            "AlreadyKnown",
            "known transaction: 0xabc",
            "TRANSACTION_ALREADY_KNOWN",
            "transaction already imported",
        ] {
            assert_eq!(classify(-32000, m), NodeErrorKind::AlreadyKnown, "{m}");
        }
        assert_eq!(
            classify(-32005, "limit exceeded"),
            NodeErrorKind::RateLimited
        );
        assert_eq!(
            classify(429, "Too Many Requests"),
            NodeErrorKind::RateLimited
        );
        assert_eq!(
            classify(-32000, "exceeds block gas limit"),
            NodeErrorKind::Other
        );
        // Not for the caller to see as a kind.
        assert!(matches!(kind("already known"), ChainError::Rpc(_)));
    }

    #[test]
    fn reverts_are_not_mistaken_for_kinds() {
        for m in [
            "execution reverted: insufficient balance",
            "execution reverted: nonce too low",
            "VM Exception while processing transaction: revert not enough funds",
        ] {
            assert!(matches!(kind(m), ChainError::Rpc(_)), "{m}");
        }
    }

    #[test]
    fn other_errors_keep_a_safe_message() {
        assert_eq!(
            kind("execution reverted: ERC20: transfer amount exceeds balance"),
            ChainError::Rpc("execution reverted: ERC20: transfer amount exceeds balance".into())
        );
        let long = "x".repeat(1000);
        let ChainError::Rpc(shown) = kind(&long) else {
            panic!("expected Rpc")
        };
        assert_eq!(shown.chars().count(), MAX_MESSAGE + 1);
        let ChainError::Rpc(shown) = kind("bad\u{1b}[31m\nthing") else {
            panic!("expected Rpc")
        };
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(kind(""), ChainError::Rpc("(no message)".into()));
    }
}
