//! EVM transactions: prepare (what the user approves), sign, and send through the
//! outbox with a nonce reserved in the database.
//!
//! Sending, step by step, under the sending account's lock (this server's, and on
//! PostgreSQL the database's, so that every server sharing it takes turns):
//! 1. an `Idempotency-Key` seen before returns the first transaction (same body) or
//!    `idempotency_conflict` (another body), before anything else happens;
//! 2. the next nonce is reserved in the database (never below the node's pending count);
//! 3. the enclave signs, checking the transaction against the approved intent;
//! 4. the signed transaction is stored in the outbox (`signed`), then broadcast and
//!    marked `pending`.
//!
//! A refusal before the broadcast (wrong PIN, a refused node answer) gives the nonce
//! back, so no gap is left: under the lock it is always the last one handed out. If the
//! node cannot be reached after signing, or the server dies between 4's store and
//! broadcast, the outbox keeps the transaction and the tracker broadcasts it later:
//! broadcasting the same signed bytes twice is harmless (same hash, same nonce), so
//! nothing is lost or sent twice.

use std::sync::Arc;

use alloy_primitives::{Address, Bytes, U256};
use keystead_chains::{ChainError, EvmClient};
use keystead_enclave_proto::{SignPayload, Signed, UnsignedTx};
use keystead_envelope::{Operation, Sealed, TxIntent};
use keystead_identity::{id_prefix, new_id};
use keystead_store::{AccountRow, InsertTx, SenderLock, StoreError, TxRow, TxStatus};
use keystead_types::ErrorCode;
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::http::{ApiError, AppState};
use crate::wallet;

/// A transaction as the user approves it: what `tx/prepare` answers and `tx/sign` and
/// `tx/send` take back. Amounts are decimal strings, addresses EIP-55.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Intent {
    pub network: String,
    pub chain_id: u64,
    pub from: String,
    pub to: String,
    pub value: String,
    /// `0x`-hex call data; `"0x"` when empty.
    pub data: String,
    pub gas_limit: String,
    pub max_fee_per_gas: String,
    pub max_priority_fee_per_gas: String,
}

impl Intent {
    /// The part of the intent the PIN envelope approves, exactly as given.
    pub fn approved(&self) -> TxIntent {
        TxIntent {
            chain_id: self.chain_id,
            to: self.to.clone(),
            value: self.value.clone(),
            data: self.data.clone(),
            gas_limit: self.gas_limit.clone(),
            max_fee_per_gas: self.max_fee_per_gas.clone(),
            max_priority_fee_per_gas: self.max_priority_fee_per_gas.clone(),
        }
    }

    /// What an idempotent retry is compared by: the whole intent.
    fn request_hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(json))
    }
}

/// What `tx/prepare` answers.
pub struct Prepared {
    pub intent: Intent,
    /// The `sign_transaction` digest the client's envelope must carry.
    pub digest: String,
    /// `gasLimit × maxFeePerGas`: the most the fee can be.
    pub max_fee: U256,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

fn parse_address(text: &str, field: &str) -> Result<Address, ApiError> {
    let address: Address = text
        .parse()
        .map_err(|_| invalid(format!("{field} is not an address")))?;
    // Mixed case must be a valid EIP-55 checksum: a typo is caught, not sent.
    let hex = text.trim_start_matches("0x");
    let mixed =
        hex.chars().any(|c| c.is_ascii_lowercase()) && hex.chars().any(|c| c.is_ascii_uppercase());
    if mixed && address.to_checksum(None) != text {
        return Err(invalid(format!("{field} has a wrong EIP-55 checksum")));
    }
    Ok(address)
}

fn parse_amount(text: &str, field: &str) -> Result<U256, ApiError> {
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return Err(invalid(format!(
            "{field} must be a decimal string of base units"
        )));
    }
    U256::from_str_radix(text, 10).map_err(|_| invalid(format!("{field} is too large")))
}

fn parse_data(text: Option<&str>) -> Result<Bytes, ApiError> {
    let text = text.unwrap_or("0x");
    let hex = text
        .strip_prefix("0x")
        .ok_or_else(|| invalid("data must be 0x-prefixed hex"))?;
    hex::decode(hex)
        .map(Bytes::from)
        .map_err(|_| invalid("data must be 0x-prefixed hex"))
}

fn parse_u<T: TryFrom<U256>>(text: &str, field: &str) -> Result<T, ApiError> {
    T::try_from(parse_amount(text, field)?).map_err(|_| invalid(format!("{field} is too large")))
}

fn network_of(state: &AppState, network: &str) -> Result<Arc<EvmClient>, ApiError> {
    state
        .chains
        .get(network)
        .cloned()
        .ok_or_else(|| invalid(format!("network {network:?} is not configured")))
}

/// The unsigned EIP-1559 transaction for an intent and a nonce.
fn unsigned(intent: &Intent, nonce: u64) -> Result<UnsignedTx, ApiError> {
    Ok(UnsignedTx::Eip1559 {
        chain_id: intent.chain_id,
        nonce,
        max_fee_per_gas: parse_u(&intent.max_fee_per_gas, "maxFeePerGas")?,
        max_priority_fee_per_gas: parse_u(
            &intent.max_priority_fee_per_gas,
            "maxPriorityFeePerGas",
        )?,
        gas_limit: parse_u(&intent.gas_limit, "gasLimit")?,
        to: parse_address(&intent.to, "to")?.0.0,
        value: parse_amount(&intent.value, "value")?.to_be_bytes(),
        data: parse_data(Some(&intent.data))?.to_vec(),
    })
}

/// Estimates gas and fees for a transfer or call from one of the caller's accounts.
pub async fn prepare(
    state: &AppState,
    caller: &Caller,
    account_id: &str,
    to: &str,
    value: &str,
    data: Option<&str>,
) -> Result<Prepared, ApiError> {
    let account = wallet::caller_account(state, caller, account_id).await?;
    let to = parse_address(to, "to")?;
    let value_wei = parse_amount(value, "value")?;
    let data = parse_data(data)?;
    let client = network_of(state, &account.network)?;
    let from = parse_address(&account.address, "from")?;
    let (gas_limit, fees) = tokio::try_join!(
        client.estimate_gas(from, to, value_wei, data.clone()),
        client.fee_suggestion()
    )?;
    let intent = Intent {
        network: account.network.clone(),
        chain_id: client.chain_id(),
        from: from.to_checksum(None),
        to: to.to_checksum(None),
        value: value_wei.to_string(),
        data: alloy_primitives::hex::encode_prefixed(&data),
        gas_limit: gas_limit.to_string(),
        max_fee_per_gas: fees.max_fee_per_gas.to_string(),
        max_priority_fee_per_gas: fees.max_priority_fee_per_gas.to_string(),
    };
    let digest = Operation::SignTransaction {
        app_id: caller.claims.app_id.clone(),
        account_id: account.id.clone(),
        intent: intent.approved(),
    }
    .digest_hex();
    let max_fee = U256::from(gas_limit) * U256::from(fees.max_fee_per_gas);
    Ok(Prepared {
        intent,
        digest,
        max_fee,
    })
}

/// The caller's account an intent sends from: by id when given, else by network and
/// `from` address.
async fn sending_account<R: CryptoRng + ?Sized>(
    state: &AppState,
    caller: &Caller,
    intent: &Intent,
    account_id: Option<&str>,
    now: i64,
    rng: &mut R,
) -> Result<AccountRow, ApiError> {
    let account = match account_id {
        Some(id) => wallet::caller_account(state, caller, id).await?,
        None => wallet::accounts(state, caller, now, rng)
            .await?
            .into_iter()
            .find(|a| a.network == intent.network && a.address.eq_ignore_ascii_case(&intent.from))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    "no account of yours sends from that address on that network",
                )
            })?,
    };
    if account.network != intent.network || !account.address.eq_ignore_ascii_case(&intent.from) {
        return Err(invalid(
            "the intent's network and from do not match the account",
        ));
    }
    Ok(account)
}

fn checked_client(state: &AppState, intent: &Intent) -> Result<Arc<EvmClient>, ApiError> {
    let client = network_of(state, &intent.network)?;
    if client.chain_id() != intent.chain_id {
        return Err(invalid(format!(
            "chainId {} is not network {}'s ({})",
            intent.chain_id,
            intent.network,
            client.chain_id()
        )));
    }
    Ok(client)
}

/// Signs a transaction without broadcasting it, at the account's next nonce on chain.
pub async fn sign<R: CryptoRng + ?Sized>(
    state: &AppState,
    caller: &Caller,
    intent: &Intent,
    account_id: Option<&str>,
    pin: Sealed,
    now: i64,
    rng: &mut R,
) -> Result<Signed, ApiError> {
    let account = sending_account(state, caller, intent, account_id, now, rng).await?;
    let client = checked_client(state, intent)?;
    let nonce = client
        .pending_nonce(parse_address(&intent.from, "from")?)
        .await?;
    let payload = SignPayload::Transaction {
        intent: intent.approved(),
        tx: unsigned(intent, nonce)?,
    };
    wallet::sign(state, caller, &account, pin, payload, now).await
}

/// An earlier send under the same idempotency key: the same transaction for the same
/// intent, `idempotency_conflict` for another.
fn replayed(existing: TxRow, request_hash: &str) -> Result<TxRow, ApiError> {
    if existing.request_hash.as_deref() == Some(request_hash) {
        Ok(existing)
    } else {
        Err(ApiError::new(
            ErrorCode::IdempotencyConflict,
            "this Idempotency-Key was used for another transaction",
        ))
    }
}

/// Signs and broadcasts a transaction; see the module documentation for the steps.
#[allow(clippy::too_many_arguments)]
pub async fn send<R: CryptoRng + ?Sized>(
    state: &AppState,
    caller: &Caller,
    intent: &Intent,
    account_id: Option<&str>,
    pin: Sealed,
    idempotency_key: Option<&str>,
    now: i64,
    rng: &mut R,
) -> Result<TxRow, ApiError> {
    let (app_id, user_id) = (&caller.claims.app_id, &caller.claims.user_id);
    let request_hash = intent.request_hash();
    if let Some(key) = idempotency_key {
        if key.is_empty() || key.len() > 255 {
            return Err(invalid("Idempotency-Key must be 1 to 255 characters"));
        }
        if let Some(existing) = state
            .store
            .find_tx_by_idempotency_key(app_id, user_id, key)
            .await?
        {
            return replayed(existing, &request_hash);
        }
    }
    let account = sending_account(state, caller, intent, account_id, now, rng).await?;
    let client = checked_client(state, intent)?;
    let from = parse_address(&intent.from, "from")?;
    let sender = from.to_checksum(None).to_ascii_lowercase();
    let chain_id = intent.chain_id;
    // Every field is checked before a nonce is taken.
    unsigned(intent, 0)?;

    let locks = lock_sending_account(state, chain_id, &sender).await?;
    let sent = async {
        // A concurrent retry with the same key may have finished while this one waited.
        if let Some(key) = idempotency_key
            && let Some(existing) = state
                .store
                .find_tx_by_idempotency_key(app_id, user_id, key)
                .await?
        {
            return replayed(existing, &request_hash);
        }
        let floor = client.pending_nonce(from).await?;
        let nonce = state.store.reserve_nonce(chain_id, &sender, floor).await?;
        let give_back = || async {
            if let Err(e) = state.store.release_nonce(chain_id, &sender, nonce).await {
                tracing::error!(error = %e, chain_id, nonce, "could not give a nonce back");
            }
        };
        let tx = match unsigned(intent, nonce) {
            Ok(tx) => tx,
            Err(e) => {
                give_back().await;
                return Err(e);
            }
        };
        let payload = SignPayload::Transaction {
            intent: intent.approved(),
            tx,
        };
        let signed = match wallet::sign(state, caller, &account, pin, payload, now).await {
            Ok(signed) => signed,
            Err(e) => {
                give_back().await;
                return Err(e);
            }
        };
        let (Some(raw), Some(hash)) = (signed.signed_transaction, signed.transaction_hash) else {
            give_back().await;
            return Err(ApiError::internal(
                "the enclave returned no signed transaction",
            ));
        };
        let row = TxRow {
            id: new_id(id_prefix::TRANSACTION, rng),
            app_id: app_id.clone(),
            user_id: user_id.clone(),
            account_id: account.id.clone(),
            network: intent.network.clone(),
            chain_id,
            from_address: from.to_checksum(None),
            nonce,
            hash: alloy_primitives::hex::encode_prefixed(hash),
            raw,
            status: TxStatus::Signed,
            block_number: None,
            error: None,
            idempotency_key: idempotency_key.map(str::to_string),
            request_hash: Some(request_hash.clone()),
            created_at: now,
            updated_at: now,
        };
        let mut row = match state.store.insert_signed_tx(row).await {
            Ok(InsertTx::Inserted(row)) => row,
            Ok(InsertTx::Existing(existing)) => {
                give_back().await;
                return replayed(existing, &request_hash);
            }
            Err(e) => {
                give_back().await;
                return Err(e.into());
            }
        };
        match client.send_raw(&row.raw).await {
            Ok(_) => {
                state.store.mark_broadcast(&row.id, now).await?;
                row.status = TxStatus::Pending;
            }
            // It may or may not have reached the node: the outbox sends it again later.
            Err(ChainError::Unavailable(cause)) => {
                tracing::warn!(tx = %row.id, %cause, "broadcast failed; left in the outbox");
            }
            Err(refused) => {
                tracing::info!(tx = %row.id, error = %refused, "node refused the transaction");
                state
                    .store
                    .mark_failed(&row.id, &refused.to_string(), now)
                    .await?;
                give_back().await;
                return Err(refused.into());
            }
        }
        Ok(row)
    }
    .await;
    locks.release().await;
    sent
}

/// Both locks of one sending account, held by whatever hands out or gives back its
/// nonces: this server's, then every server's sharing the database (PostgreSQL). A nonce
/// is only given back while nothing after it was handed out, which these make certain.
pub(crate) struct SendingLocks<'a> {
    _here: tokio::sync::MutexGuard<'a, ()>,
    everywhere: SenderLock,
}

impl SendingLocks<'_> {
    pub(crate) async fn release(self) {
        self.everywhere.release().await;
    }
}

/// Waits for and takes [`SendingLocks`] for `sender` (lowercase hex, as
/// `Store::reserve_nonce` takes it) on `chain_id`.
pub(crate) async fn lock_sending_account<'a>(
    state: &'a AppState,
    chain_id: u64,
    sender: &str,
) -> Result<SendingLocks<'a>, StoreError> {
    let here = state.account_locks.lock((chain_id, sender)).await;
    let everywhere = state.store.lock_sender(chain_id, sender).await?;
    Ok(SendingLocks {
        _here: here,
        everywhere,
    })
}

/// One of the caller's transactions; a pending one's receipt is looked up on the way.
pub async fn get(state: &AppState, caller: &Caller, id: &str, now: i64) -> Result<TxRow, ApiError> {
    let not_found = || ApiError::new(ErrorCode::NotFound, "no such transaction");
    let tx = match state.store.get_tx(&caller.claims.app_id, id).await {
        Ok(tx) if tx.user_id == caller.claims.user_id => tx,
        Ok(_) | Err(keystead_store::StoreError::NotFound) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if tx.status == TxStatus::Pending && crate::tracker::check_receipt(state, &tx, now).await {
        return Ok(state.store.get_tx(&caller.claims.app_id, id).await?);
    }
    Ok(tx)
}

/// The API's name for a stored status: the outbox is `pending` to the user.
pub fn public_status(status: TxStatus) -> &'static str {
    match status {
        TxStatus::Signed | TxStatus::Pending => "pending",
        TxStatus::Confirmed => "confirmed",
        TxStatus::Failed => "failed",
    }
}
