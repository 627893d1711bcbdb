//! Wallets: creation, accounts, and every enclave call made for a wallet (sign, export,
//! PIN change, recovery), with the wallet record kept in step with the enclave.
//!
//! The server never sees a key or a PIN: it passes sealed envelopes and sealed records
//! between the client, the enclave and the database. What it must get right is the
//! bookkeeping: one wallet per user, the record the enclave returns stored before the
//! caller hears the answer (a wrong PIN changes it too), and the signer checked against
//! the account the user named.

use keystead_enclave_proto::{
    ChainFamily, CreateWallet, DerivedAccount, Request, Response, SealedWallet, Signed,
    WalletBinding, WalletContext,
};
use keystead_envelope::Sealed;
use keystead_identity::{id_prefix, new_id};
use keystead_store::{AccountRow, StoreError, WalletRow};
use keystead_types::ErrorCode;
use rand::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::http::{ApiError, AppState};

/// Layout of [`StoredWallet`] records.
const RECORD_FORMAT: u16 = 1;

/// What the `record` column of a wallet holds: the enclave's sealed wallet and the
/// public account data it derived (kept so accounts on networks configured later can
/// be listed without the PIN).
#[derive(Serialize, Deserialize)]
pub struct StoredWallet {
    pub format: u16,
    pub sealed: SealedWallet,
    pub derived: Vec<DerivedAccount>,
}

impl StoredWallet {
    pub fn encode(&self) -> Result<Vec<u8>, ApiError> {
        postcard::to_stdvec(self).map_err(|e| ApiError::internal(format!("encoding a wallet: {e}")))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ApiError> {
        let stored: Self = postcard::from_bytes(bytes)
            .map_err(|e| ApiError::internal(format!("decoding a wallet record: {e}")))?;
        if stored.format != RECORD_FORMAT {
            return Err(ApiError::internal(format!(
                "wallet record format {} is not known",
                stored.format
            )));
        }
        Ok(stored)
    }
}

/// A new wallet, as `POST /v1/wallet` answers it.
pub struct CreatedWallet {
    pub wallet_id: String,
    pub accounts: Vec<AccountRow>,
    pub recovery_kit: Sealed,
}

fn wallet_required() -> ApiError {
    ApiError::new(ErrorCode::WalletRequired, "create a wallet first")
}

fn unexpected(response: &Response) -> ApiError {
    let kind = match response {
        Response::Pong(_) => "pong",
        Response::Attestation(_) => "attestation",
        Response::WalletCreated(_) => "wallet created",
        Response::Signed(_) => "signed",
        Response::Exported { .. } => "exported",
        Response::Resealed => "resealed",
    };
    ApiError::internal(format!("unexpected enclave response: {kind}"))
}

/// The account rows of a wallet on every configured network: EVM accounts are the same
/// address on each EVM network.
fn account_rows<R: CryptoRng + ?Sized>(
    state: &AppState,
    app_id: &str,
    wallet_id: &str,
    derived: &[DerivedAccount],
    now: i64,
    rng: &mut R,
) -> Vec<AccountRow> {
    let mut rows = Vec::new();
    for network in state.chains.configs() {
        for account in derived.iter().filter(|a| a.family == ChainFamily::Evm) {
            rows.push(AccountRow {
                id: new_id(id_prefix::ACCOUNT, rng),
                wallet_id: wallet_id.to_string(),
                app_id: app_id.to_string(),
                network: network.id.clone(),
                family: "evm".into(),
                address: account.address.clone(),
                path: account.path.clone(),
                idx: account.index,
                created_at: now,
            });
        }
    }
    rows
}

/// Creates the caller's wallet. Exactly one per user: a second attempt, even a
/// concurrent one, gets `wallet_exists` and nothing of it is stored.
pub async fn create<R: CryptoRng + ?Sized>(
    state: &AppState,
    caller: &Caller,
    pin: Sealed,
    client_key: String,
    now: i64,
    rng: &mut R,
) -> Result<CreatedWallet, ApiError> {
    let (app_id, user_id) = (&caller.claims.app_id, &caller.claims.user_id);
    let exists = || ApiError::new(ErrorCode::WalletExists, "the user already has a wallet");
    if state
        .store
        .wallet_for_user(app_id, user_id)
        .await?
        .is_some()
    {
        return Err(exists());
    }
    let wallet_id = new_id(id_prefix::WALLET, rng);
    let reply = state
        .enclave
        .call(Request::CreateWallet(CreateWallet {
            binding: WalletBinding {
                app_id: app_id.clone(),
                wallet_id: wallet_id.clone(),
            },
            user_id: user_id.clone(),
            client_key,
            pin,
        }))
        .await?;
    let created = match reply.result? {
        Response::WalletCreated(created) => created,
        other => return Err(unexpected(&other)),
    };
    let accounts = account_rows(state, app_id, &wallet_id, &created.accounts, now, rng);
    let record = StoredWallet {
        format: RECORD_FORMAT,
        sealed: created.wallet,
        derived: created.accounts,
    };
    let row = WalletRow {
        id: wallet_id.clone(),
        app_id: app_id.clone(),
        user_id: user_id.clone(),
        record: record.encode()?,
        record_version: 1,
        created_at: now,
        updated_at: now,
    };
    match state
        .store
        .create_wallet_with_accounts(&row, &accounts)
        .await
    {
        Ok(()) => Ok(CreatedWallet {
            wallet_id,
            accounts,
            recovery_kit: created.recovery_kit,
        }),
        // A concurrent create won; this one's keys are dropped unseen.
        Err(StoreError::Conflict) => Err(exists()),
        Err(e) => Err(e.into()),
    }
}

/// The caller's wallet, or `wallet_required`.
pub async fn caller_wallet(state: &AppState, caller: &Caller) -> Result<WalletRow, ApiError> {
    state
        .store
        .wallet_for_user(&caller.claims.app_id, &caller.claims.user_id)
        .await?
        .ok_or_else(wallet_required)
}

/// The caller's accounts, adding those of networks configured since the wallet was made.
pub async fn accounts<R: CryptoRng + ?Sized>(
    state: &AppState,
    caller: &Caller,
    now: i64,
    rng: &mut R,
) -> Result<Vec<AccountRow>, ApiError> {
    let wallet = caller_wallet(state, caller).await?;
    let app_id = &caller.claims.app_id;
    let mut listed = state.store.list_accounts(app_id, &wallet.id).await?;
    let missing = state
        .chains
        .configs()
        .any(|n| !listed.iter().any(|a| a.network == n.id));
    if missing {
        let stored = StoredWallet::decode(&wallet.record)?;
        for row in account_rows(state, app_id, &wallet.id, &stored.derived, now, rng) {
            state.store.add_account_if_missing(&row).await?;
        }
        listed = state.store.list_accounts(app_id, &wallet.id).await?;
    }
    Ok(listed)
}

/// One of the caller's accounts; `not_found` for anyone else's.
pub async fn caller_account(
    state: &AppState,
    caller: &Caller,
    account_id: &str,
) -> Result<AccountRow, ApiError> {
    state
        .store
        .get_user_account(&caller.claims.app_id, &caller.claims.user_id, account_id)
        .await
        .map_err(account_error)
}

fn account_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::new(ErrorCode::NotFound, "no such account"),
        e => e.into(),
    }
}

/// A wallet record as read under its owner's lock: what the enclave gets, and the
/// version the record it returns must replace.
struct LockedRecord {
    wallet_id: String,
    record: std::sync::Arc<[u8]>,
    version: i64,
}

impl From<WalletRow> for LockedRecord {
    fn from(row: WalletRow) -> Self {
        Self {
            wallet_id: row.id,
            record: row.record.into(),
            version: row.record_version,
        }
    }
}

/// Runs one enclave operation on a user's wallet: under the owner's lock (a user has one
/// wallet), from the record `load` reads once the lock is held, storing the record the
/// enclave returns (beside errors too) before answering. `load` may read more than the
/// record in the same query; that extra (`T`) is handed to `build` and returned.
async fn call_locked<T>(
    state: &AppState,
    caller: &Caller,
    load: impl Future<Output = Result<(LockedRecord, T), ApiError>>,
    now: i64,
    build: impl FnOnce(WalletContext, &T) -> Request,
) -> Result<(T, Response), ApiError> {
    let app_id = &caller.claims.app_id;
    let _guard = state.wallet_locks.lock(&caller.claims.user_id).await;
    // Read only now: a record read before the lock could miss a wrong PIN counted meanwhile.
    let (locked, extra) = load.await?;
    // The sealed wallet goes to the enclave; the rest stays to store an update with.
    let StoredWallet {
        format,
        sealed,
        derived,
    } = StoredWallet::decode(&locked.record)?;
    let request = build(
        WalletContext {
            binding: WalletBinding {
                app_id: app_id.clone(),
                wallet_id: locked.wallet_id.clone(),
            },
            wallet: sealed,
        },
        &extra,
    );
    let reply = state.enclave.call(request).await?;
    if let Some(update) = reply.wallet_update {
        let stored = StoredWallet {
            format,
            sealed: update,
            derived,
        };
        // Another server changed the record meanwhile: this answer cannot be trusted to
        // have counted (a wrong PIN would go unrecorded), so it is not given.
        state
            .store
            .update_wallet_record(
                app_id,
                &locked.wallet_id,
                locked.version,
                &stored.encode()?,
                locked.version + 1,
                now,
            )
            .await
            .map_err(|e| ApiError::internal(format!("storing the wallet record: {e}")))?;
    }
    Ok((extra, reply.result?))
}

/// One enclave operation on the caller's own wallet (`wallet_required` without one).
pub async fn call_with_caller_wallet(
    state: &AppState,
    caller: &Caller,
    now: i64,
    build: impl FnOnce(WalletContext) -> Request,
) -> Result<Response, ApiError> {
    let load = async { Ok((caller_wallet(state, caller).await?.into(), ())) };
    let ((), response) = call_locked(state, caller, load, now, |wallet, ()| build(wallet)).await?;
    Ok(response)
}

/// Asks the enclave to sign for `account`, one of the caller's (checked by the caller
/// of this function), and checks that the key it used is that account's.
pub async fn sign(
    state: &AppState,
    caller: &Caller,
    account: &AccountRow,
    pin: Sealed,
    payload: keystead_enclave_proto::SignPayload,
    now: i64,
) -> Result<Signed, ApiError> {
    let load = async {
        let row = state
            .store
            .get_wallet(&caller.claims.app_id, &account.wallet_id)
            .await?;
        Ok((row.into(), ()))
    };
    let ((), response) = call_locked(state, caller, load, now, |wallet, ()| {
        sign_request(wallet, account, pin, payload)
    })
    .await?;
    check_signer(account, response)
}

/// [`sign`] for the caller's account `account_id`, found (with its wallet's record) in one
/// query under the lock; `not_found` when the caller has no such account.
pub async fn sign_for_account(
    state: &AppState,
    caller: &Caller,
    account_id: &str,
    pin: Sealed,
    payload: keystead_enclave_proto::SignPayload,
    now: i64,
) -> Result<Signed, ApiError> {
    let load = async {
        let found = state
            .store
            .get_user_account_with_record(&caller.claims.app_id, &caller.claims.user_id, account_id)
            .await
            .map_err(account_error)?;
        let locked = LockedRecord {
            wallet_id: found.account.wallet_id.clone(),
            record: found.record,
            version: found.record_version,
        };
        Ok((locked, found.account))
    };
    let (account, response) = call_locked(state, caller, load, now, |wallet, account| {
        sign_request(wallet, account, pin, payload)
    })
    .await?;
    check_signer(&account, response)
}

fn sign_request(
    wallet: WalletContext,
    account: &AccountRow,
    pin: Sealed,
    payload: keystead_enclave_proto::SignPayload,
) -> Request {
    Request::Sign(keystead_enclave_proto::SignRequest {
        wallet,
        account_id: account.id.clone(),
        account_index: account.idx,
        pin,
        payload,
    })
}

fn check_signer(account: &AccountRow, response: Response) -> Result<Signed, ApiError> {
    let signed = match response {
        Response::Signed(signed) => signed,
        other => return Err(unexpected(&other)),
    };
    if !signed.signer.eq_ignore_ascii_case(&account.address) {
        return Err(ApiError::internal(format!(
            "the enclave signed for {} instead of account {}",
            signed.signer, account.id
        )));
    }
    Ok(signed)
}

/// `Resealed` or an internal error.
pub fn expect_resealed(response: Response) -> Result<(), ApiError> {
    match response {
        Response::Resealed => Ok(()),
        other => Err(unexpected(&other)),
    }
}
