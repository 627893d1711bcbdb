//! The records the store reads and writes: plain structs with public fields. Times are
//! Unix seconds; ids are strings the caller makes (`app_…`, `usr_…`, ...).

use std::fmt;
use std::sync::Arc;

use crate::StoreError;

/// A tenant.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct App {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// An app key, stored as the SHA-256 hex of the key (hashed by the caller).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AppKey {
    pub key_hash: String,
    pub app_id: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// An identity provider an app accepts logins from.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AppProvider {
    pub app_id: String,
    /// The app's name for the provider, unique per app.
    pub name: String,
    /// Only `"oidc"` today (the schema refuses anything else).
    pub kind: String,
    pub issuer: String,
    pub client_id: String,
}

/// A user of one app.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub id: String,
    pub app_id: String,
    pub email: Option<String>,
    pub created_at: i64,
}

/// A user found at login, with whether they have a wallet in the app yet.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct LoginUser {
    #[sqlx(flatten)]
    pub user: User,
    pub has_wallet: bool,
}

/// A login identity (provider, subject) linked to a user, unique per app.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Identity {
    pub app_id: String,
    pub provider: String,
    pub subject: String,
    pub user_id: String,
}

/// A login session. Live while `revoked_at` is `None` and `now < expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

impl Session {
    /// Whether the session can still be used at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A user's wallet: one per (app, user). `record` is opaque to the store (the caller
/// encodes it); `record_version` is the caller's counter for compare-and-swap updates.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WalletRow {
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    pub record: Vec<u8>,
    pub record_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl fmt::Debug for WalletRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalletRow")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("user_id", &self.user_id)
            .field("record", &format_args!("<{} bytes>", self.record.len()))
            .field("record_version", &self.record_version)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// An account with its wallet's record and version: what signing for it needs. Shared,
/// so a sole server hands out what it keeps in memory without copying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountWithRecord {
    pub account: Arc<AccountRow>,
    pub record: Arc<[u8]>,
    pub record_version: i64,
}

/// [`AccountWithRecord`] as the query answers it.
#[derive(sqlx::FromRow)]
pub(crate) struct AccountWithRecordRow {
    #[sqlx(flatten)]
    account: AccountRow,
    record: Vec<u8>,
    record_version: i64,
}

impl From<AccountWithRecordRow> for AccountWithRecord {
    fn from(row: AccountWithRecordRow) -> Self {
        Self {
            account: Arc::new(row.account),
            record: row.record.into(),
            record_version: row.record_version,
        }
    }
}

/// An account (address) derived from a wallet, unique per (wallet, network, idx).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountRow {
    pub id: String,
    pub wallet_id: String,
    pub app_id: String,
    pub network: String,
    /// The chain family, e.g. `"evm"`.
    pub family: String,
    pub address: String,
    /// The derivation path, e.g. `"m/44'/60'/0'/0/0"`.
    pub path: String,
    #[sqlx(try_from = "i64")]
    pub idx: u32,
    pub created_at: i64,
}

/// Where a transaction is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxStatus {
    /// Signed and in the outbox, not yet handed to a node.
    Signed,
    /// Broadcast, waiting for a receipt.
    Pending,
    /// Mined with receipt status 1.
    Confirmed,
    /// Mined with receipt status 0, or refused by the node.
    Failed,
}

impl TxStatus {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            TxStatus::Signed => "signed",
            TxStatus::Pending => "pending",
            TxStatus::Confirmed => "confirmed",
            TxStatus::Failed => "failed",
        }
    }

    /// Parses a stored `status` value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "signed" => Some(TxStatus::Signed),
            "pending" => Some(TxStatus::Pending),
            "confirmed" => Some(TxStatus::Confirmed),
            "failed" => Some(TxStatus::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for TxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signed transaction and what became of it.
#[derive(Clone, PartialEq, Eq)]
pub struct TxRow {
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    pub account_id: String,
    pub network: String,
    pub chain_id: u64,
    pub from_address: String,
    pub nonce: u64,
    /// The transaction hash, known once it is signed.
    pub hash: String,
    /// The signed transaction bytes, broadcast as they are.
    pub raw: Vec<u8>,
    pub status: TxStatus,
    pub block_number: Option<u64>,
    /// Why it failed, when the node refused it (caller's words; no secrets).
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    /// The caller's hash of the request that made it, compared on an idempotent retry.
    pub request_hash: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl fmt::Debug for TxRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxRow")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("user_id", &self.user_id)
            .field("account_id", &self.account_id)
            .field("network", &self.network)
            .field("chain_id", &self.chain_id)
            .field("from_address", &self.from_address)
            .field("nonce", &self.nonce)
            .field("hash", &self.hash)
            .field("raw", &format_args!("<{} bytes>", self.raw.len()))
            .field("status", &self.status)
            .field("block_number", &self.block_number)
            .field("error", &self.error)
            .field("idempotency_key", &self.idempotency_key)
            .field("request_hash", &self.request_hash)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// `transactions` as the database holds it: signed integers and a status string.
#[derive(sqlx::FromRow)]
pub(crate) struct TxRecord {
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    pub account_id: String,
    pub network: String,
    pub chain_id: i64,
    pub from_address: String,
    pub nonce: i64,
    pub hash: String,
    pub raw: Vec<u8>,
    pub status: String,
    pub block_number: Option<i64>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TryFrom<TxRecord> for TxRow {
    type Error = StoreError;

    fn try_from(r: TxRecord) -> Result<Self, StoreError> {
        let status = TxStatus::parse(&r.status)
            .ok_or_else(|| StoreError::Database("stored transaction status is unknown".into()))?;
        Ok(TxRow {
            id: r.id,
            app_id: r.app_id,
            user_id: r.user_id,
            account_id: r.account_id,
            network: r.network,
            chain_id: crate::from_db_int(r.chain_id, "chain id")?,
            from_address: r.from_address,
            nonce: crate::from_db_int(r.nonce, "nonce")?,
            hash: r.hash,
            raw: r.raw,
            status,
            block_number: r
                .block_number
                .map(|b| crate::from_db_int(b, "block number"))
                .transpose()?,
            error: r.error,
            idempotency_key: r.idempotency_key,
            request_hash: r.request_hash,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A login in flight through the authorization-code flow. `code_verifier` is a PKCE
/// secret for minutes: `Debug` hides it.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OAuthLogin {
    pub state: String,
    pub app_id: String,
    /// The app's name for the provider.
    pub provider: String,
    pub code_verifier: String,
    pub nonce: String,
    /// The origin the result page may post the session to.
    pub return_origin: String,
    pub expires_at: i64,
}

impl fmt::Debug for OAuthLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthLogin")
            .field("app_id", &self.app_id)
            .field("provider", &self.provider)
            .field("return_origin", &self.return_origin)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
