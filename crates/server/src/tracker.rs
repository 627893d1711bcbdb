//! The background half of sending: broadcasts what is left in the outbox (after a crash,
//! or while a node was unreachable), records receipts of pending transactions, and
//! sends again a pending transaction the node no longer knows: a node may lose what it
//! accepted (a mempool eviction, a restart), and every later nonce of its sender would
//! wait behind it for good. Sending the same signed bytes again is harmless (same hash,
//! same nonce; `send_raw` takes "already known" and an already-mined transaction as
//! success). One whose nonce another transaction of the account spent can never be
//! mined, and one its sender can no longer pay for holds nothing else back once it is
//! the sender's last: each is marked failed rather than left pending for good.

use std::time::Duration;

use alloy_primitives::B256;
use keystead_chains::ChainError;
use keystead_store::TxRow;
use tokio::sync::watch;

use crate::http::{AppState, SharedState};

/// Transactions looked at per pass, per state.
const BATCH: u32 = 200;
/// An outbox entry younger than this is probably still being sent by its request.
const OUTBOX_GRACE_SECS: i64 = 2;

/// A pending transaction without a receipt is looked up on the node after this many
/// passes since its broadcast or last look (30 s at the default one-second interval).
const RECHECK_AFTER_PASSES: u128 = 30;

/// Runs passes every `interval` until `shutdown` turns true. The first pass runs at once,
/// so a restarted server replays its outbox before anything else is sent.
pub async fn run(state: SharedState, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let recheck_after = i64::try_from((interval.as_millis() * RECHECK_AFTER_PASSES / 1000).max(1))
        .unwrap_or(i64::MAX);
    loop {
        let now = crate::auth::now_secs();
        replay_outbox(&state, now).await;
        track_receipts(&state, now, recheck_after).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Broadcasts every outbox entry older than the grace period.
pub async fn replay_outbox(state: &AppState, now: i64) {
    let outbox = match state.store.outbox(BATCH).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "reading the outbox");
            return;
        }
    };
    for tx in outbox
        .into_iter()
        .filter(|tx| tx.created_at <= now - OUTBOX_GRACE_SECS)
    {
        let Some(client) = state.chains.get(&tx.network) else {
            tracing::warn!(tx = %tx.id, network = %tx.network, "outbox entry for a network no longer configured");
            continue;
        };
        let result = match client.send_raw(&tx.raw).await {
            Ok(_) => state.store.mark_broadcast(&tx.id, now).await,
            Err(ChainError::Unavailable(cause)) => {
                tracing::debug!(tx = %tx.id, %cause, "outbox replay: node unreachable");
                continue;
            }
            Err(refused) => {
                tracing::warn!(tx = %tx.id, error = %refused, "outbox replay refused");
                state
                    .store
                    .mark_failed(&tx.id, &refused.to_string(), now)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(tx = %tx.id, error = %e, "recording an outbox replay");
        } else {
            tracing::info!(tx = %tx.id, "outbox entry broadcast");
        }
    }
}

/// Records the receipts of pending transactions, and looks again at those without one
/// `recheck_after` seconds or more after their broadcast or last look.
async fn track_receipts(state: &AppState, now: i64, recheck_after: i64) {
    let pending = match state.store.pending(BATCH).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "reading pending transactions");
            return;
        }
    };
    for tx in pending {
        if !check_receipt(state, &tx, now).await && tx.updated_at <= now - recheck_after {
            resend_if_lost(state, &tx, now).await;
        }
    }
}

/// Sends a pending transaction again if the node no longer knows it. One it still holds
/// waits: a low fee can keep a transaction in a real mempool for minutes. A refusal
/// leaves it pending too (its receipt may still come; funds may arrive), except when
/// its nonce is spent by another transaction (it can never be mined: failed), or when the
/// sender cannot pay for it and its nonce is the sender's last (failed, the nonce given
/// back). Otherwise the next look waits for `recheck_after` again.
async fn resend_if_lost(state: &AppState, tx: &TxRow, now: i64) {
    let (Some(client), Ok(hash)) = (state.chains.get(&tx.network), tx.hash.parse::<B256>()) else {
        return;
    };
    match client.transaction_known(hash).await {
        Ok(true) => {}
        Ok(false) => match client.send_raw(&tx.raw).await {
            Ok(_) => {
                tracing::warn!(tx = %tx.id, nonce = tx.nonce, "the node lost a pending transaction; sent again")
            }
            // `send_raw` has looked the transaction up after the refusal and the node
            // does not know it: another transaction of this account (signed elsewhere
            // with an exported key) took the nonce.
            Err(ChainError::NonceTooLow) => {
                fail_replaced(state, tx, now).await;
                return;
            }
            Err(ChainError::InsufficientFunds) if fail_unfunded_if_last(state, tx, now).await => {
                return;
            }
            Err(e) => {
                tracing::warn!(tx = %tx.id, nonce = tx.nonce, error = %e, "the node lost a pending transaction; sending it again failed")
            }
        },
        Err(e) => {
            tracing::debug!(tx = %tx.id, error = %e, "looking up a pending transaction");
            return;
        }
    }
    if let Err(e) = state.store.mark_pending_checked(&tx.id, now).await {
        tracing::warn!(tx = %tx.id, error = %e, "recording a pending transaction's check");
    }
}

/// Marks failed a pending transaction whose nonce another transaction spent, after a last
/// look for its own receipt: a transfer shown failed that was in fact mined would invite
/// the user to pay twice.
async fn fail_replaced(state: &AppState, tx: &TxRow, now: i64) {
    if check_receipt(state, tx, now).await {
        return;
    }
    let error = format!(
        "replaced: another transaction from this account used nonce {} first; this one was never mined",
        tx.nonce
    );
    tracing::warn!(tx = %tx.id, nonce = tx.nonce, "another transaction used a pending transaction's nonce; marked failed");
    record_failure(state, tx, &error, now).await;
}

/// Fails a lost transaction the node now refuses for want of funds, and gives its nonce
/// back, if that nonce is still its sender's last: as a refusal at the first broadcast
/// does, so the next send takes the nonce and leaves no gap. One with later nonces behind
/// it stays pending (they wait on it, and it is sent again at each look, to be mined once
/// funds arrive); once they have failed, it is the last. Under the sender's locks, as a
/// send reserves its nonce. Whether it was failed.
async fn fail_unfunded_if_last(state: &AppState, tx: &TxRow, now: i64) -> bool {
    let sender = tx.from_address.to_ascii_lowercase();
    let locks = match crate::transfer::lock_sending_account(state, tx.chain_id, &sender).await {
        Ok(locks) => locks,
        Err(e) => {
            tracing::warn!(tx = %tx.id, error = %e, "locking a sender to fail a refused transaction");
            return false;
        }
    };
    // The nonce first: if the failure cannot be recorded, the transaction stays pending
    // and, once the nonce is spent by the next send, is failed as replaced.
    let failed = match state
        .store
        .release_nonce(tx.chain_id, &sender, tx.nonce)
        .await
    {
        Ok(true) => {
            let error = format!(
                "lost by the node and refused when sent again: {}",
                ChainError::InsufficientFunds
            );
            tracing::warn!(tx = %tx.id, nonce = tx.nonce, "a lost transaction cannot be paid for; marked failed, its nonce given back");
            record_failure(state, tx, &error, now).await;
            true
        }
        Ok(false) => false,
        Err(e) => {
            tracing::warn!(tx = %tx.id, error = %e, "giving back a refused transaction's nonce");
            false
        }
    };
    locks.release().await;
    failed
}

async fn record_failure(state: &AppState, tx: &TxRow, error: &str, now: i64) {
    if let Err(e) = state.store.mark_failed(&tx.id, error, now).await {
        tracing::warn!(tx = %tx.id, error = %e, "recording a transaction's failure");
    }
}

/// Looks up a pending transaction's receipt and records it; whether it was recorded.
pub async fn check_receipt(state: &AppState, tx: &TxRow, now: i64) -> bool {
    let Some(client) = state.chains.get(&tx.network) else {
        return false;
    };
    let Ok(hash) = tx.hash.parse::<B256>() else {
        tracing::error!(tx = %tx.id, "stored transaction hash is not a hash");
        return false;
    };
    match client.receipt(hash).await {
        Ok(Some(receipt)) => {
            match state
                .store
                .mark_confirmed(&tx.id, receipt.block_number, receipt.status, now)
                .await
            {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(tx = %tx.id, error = %e, "recording a receipt");
                    false
                }
            }
        }
        Ok(None) => false,
        Err(e) => {
            tracing::debug!(tx = %tx.id, error = %e, "receipt lookup failed");
            false
        }
    }
}
