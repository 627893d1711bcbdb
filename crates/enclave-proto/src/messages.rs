use keystead_envelope::{Sealed, TxIntent};
use serde::{Deserialize, Serialize};

/// A request and the id the reply will carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestFrame {
    pub id: u64,
    pub request: Request,
}

/// The enclave's answer to the request with the same id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseFrame {
    pub id: u64,
    pub reply: Reply,
}

/// The outcome of a request, and the wallet record to store when it changed.
///
/// A refused PIN changes the wallet's PIN state too, so `wallet_update` travels beside
/// errors as well as results: the server must store it before it answers its caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub result: Result<Response, EnclaveError>,
    pub wallet_update: Option<SealedWallet>,
}

impl Reply {
    pub fn ok(response: Response) -> Self {
        Self {
            result: Ok(response),
            wallet_update: None,
        }
    }

    pub fn err(error: EnclaveError) -> Self {
        Self {
            result: Err(error),
            wallet_update: None,
        }
    }
}

// Messages live for one call; boxing variants would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Liveness, and what the process could do to protect itself.
    Ping,
    /// The attestation document made at boot, or a fresh one carrying `nonce`.
    Attestation {
        #[serde(with = "serde_bytes")]
        nonce: Option<Vec<u8>>,
    },
    CreateWallet(CreateWallet),
    Sign(SignRequest),
    Export(ExportRequest),
    ChangePin(ChangePinRequest),
    Recover(RecoverRequest),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Pong(Health),
    Attestation(Attestation),
    WalletCreated(WalletCreated),
    Signed(Signed),
    Exported {
        mnemonic: Sealed,
    },
    /// PIN changed or wallet recovered; the new record is in `Reply::wallet_update`.
    Resealed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub protocol_version: u16,
    pub attestation_format: String,
    /// `PR_SET_DUMPABLE` is 0.
    pub non_dumpable: bool,
    /// `RLIMIT_CORE` is 0.
    pub core_dumps_disabled: bool,
    /// `mlockall` succeeded.
    pub memory_locked: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attestation {
    /// `dev` or `nitro`.
    pub format: String,
    #[serde(with = "serde_bytes")]
    pub document: Vec<u8>,
    /// The X25519 key PIN envelopes are sealed to.
    pub public_key: [u8; 32],
}

/// Which app and wallet an operation is for: bound into every seal, wrap and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletBinding {
    pub app_id: String,
    pub wallet_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateWallet {
    pub binding: WalletBinding,
    pub user_id: String,
    /// The client's one-time X25519 key, base64 exactly as the client sent it (it is part
    /// of the approved digest); the recovery kit is sealed to it.
    pub client_key: String,
    pub pin: Sealed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletCreated {
    pub wallet: SealedWallet,
    pub accounts: Vec<DerivedAccount>,
    /// `{"recoveryCode": ...}` sealed to the client key.
    pub recovery_kit: Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedAccount {
    pub family: ChainFamily,
    pub path: String,
    pub index: u32,
    /// EIP-55 for EVM.
    pub address: String,
    /// SEC1 compressed public key.
    #[serde(with = "serde_bytes")]
    pub public_key: Vec<u8>,
    /// The extended public key of the account's parent (`m/44'/60'/0'/0` for EVM), so the
    /// server can derive further addresses without the PIN.
    pub parent_xpub: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainFamily {
    Evm,
}

/// A wallet as the server stores it. Every secret in it is sealed; the server can read
/// the PIN counters but cannot change them without the enclave noticing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedWallet {
    /// Layout version of this record and of the seals in it.
    pub format: u16,
    /// The per-wallet data key, wrapped by the primary KMS key.
    #[serde(with = "serde_bytes")]
    pub data_key: Vec<u8>,
    /// The same data key wrapped by the independent disaster-recovery KMS key, so losing
    /// the primary key loses no wallet (opening still needs the PIN).
    #[serde(with = "serde_bytes")]
    pub dr_data_key: Option<Vec<u8>>,
    #[serde(with = "serde_bytes")]
    pub salt: Vec<u8>,
    /// The wallet secret sealed under (data key, PIN).
    #[serde(with = "serde_bytes")]
    pub by_pin: Vec<u8>,
    /// The wallet secret sealed under (data key, recovery code).
    #[serde(with = "serde_bytes")]
    pub by_recovery: Vec<u8>,
    pub pin_state: PinState,
}

impl std::fmt::Debug for SealedWallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedWallet")
            .field("format", &self.format)
            .field("has_dr_copy", &self.dr_data_key.is_some())
            .field("pin_state", &self.pin_state)
            .finish_non_exhaustive()
    }
}

/// Wrong-PIN bookkeeping, authenticated by the enclave with keys only it can derive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinState {
    /// Wrong PINs since the last right one (or since the last lock-out began).
    pub failures: u32,
    /// How many lock-outs this wallet has had since the last right PIN.
    pub lockouts: u32,
    /// Unix seconds; 0 when not locked.
    pub locked_until: u64,
    /// Grows with every change, so an older state is recognisable.
    pub counter: u64,
    /// HMAC-SHA256 under a key derived from the data key.
    #[serde(with = "serde_bytes")]
    pub mac: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletContext {
    pub binding: WalletBinding,
    pub wallet: SealedWallet,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignRequest {
    pub wallet: WalletContext,
    pub account_id: String,
    pub account_index: u32,
    pub pin: Sealed,
    pub payload: SignPayload,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SignPayload {
    /// EIP-191 `personal_sign` over these bytes.
    Message(#[serde(with = "serde_bytes")] Vec<u8>),
    /// EIP-712 typed data JSON; the enclave hashes it itself.
    TypedData(String),
    /// A transaction and the intent the user approved; the enclave checks one against the other.
    Transaction { intent: TxIntent, tx: UnsignedTx },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnsignedTx {
    Legacy {
        chain_id: u64,
        nonce: u64,
        gas_price: u128,
        gas_limit: u64,
        to: [u8; 20],
        /// Big-endian U256.
        value: [u8; 32],
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    Eip1559 {
        chain_id: u64,
        nonce: u64,
        max_fee_per_gas: u128,
        max_priority_fee_per_gas: u128,
        gas_limit: u64,
        to: [u8; 20],
        value: [u8; 32],
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// 65 bytes r ‖ s ‖ v, v = 27/28 for messages and typed data, the y-parity for transactions.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// EIP-2718 encoded signed transaction.
    #[serde(with = "serde_bytes")]
    pub signed_transaction: Option<Vec<u8>>,
    pub transaction_hash: Option<[u8; 32]>,
    pub signer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportRequest {
    pub wallet: WalletContext,
    pub client_key: String,
    pub pin: Sealed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePinRequest {
    pub wallet: WalletContext,
    pub pin: Sealed,
    pub new_pin: Sealed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoverRequest {
    pub wallet: WalletContext,
    /// A PIN envelope whose `pin` field holds the recovery code.
    pub recovery: Sealed,
    pub new_pin: Sealed,
}

/// Errors the enclave reports. Each maps to one public API code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum EnclaveError {
    #[error("wrong PIN; {remaining_tries} tries left")]
    WrongPin { remaining_tries: u32 },
    #[error("wallet locked; retry after {retry_after} s")]
    WalletLocked { retry_after: u64 },
    #[error("wrong recovery code")]
    WrongRecoveryCode,
    #[error("PIN envelope rejected: {0}")]
    EnvelopeRejected(EnvelopeRejection),
    /// Carries the rule's code: `wrong_length`, `not_digits`, `repeated`, `sequential`.
    #[error("new PIN refused: {0}")]
    WeakPin(String),
    #[error("transaction does not match the approved intent: {0}")]
    IntentMismatch(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("wallet record failed its integrity check")]
    TamperedRecord,
    #[error("KMS error: {0}")]
    Kms(String),
    #[error("enclave busy")]
    Busy,
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("internal enclave error")]
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum EnvelopeRejection {
    #[error("cannot be opened with this enclave's key")]
    Undecryptable,
    #[error("malformed plaintext")]
    Malformed,
    #[error("purpose does not match the operation")]
    WrongPurpose,
    #[error("digest does not match the operation")]
    WrongDigest,
    #[error("expired")]
    Expired,
    #[error("expiry too far ahead")]
    ExpiryTooFar,
    #[error("nonce too short or too long")]
    BadNonce,
    #[error("already used")]
    Replayed,
}
