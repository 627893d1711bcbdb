//! The background half of sending: broadcasts what is left in the outbox (after a crash,
//! or while a node was unreachable) and records receipts of pending transactions.

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

/// Runs passes every `interval` until `shutdown` turns true. The first pass runs at once,
/// so a restarted server replays its outbox before anything else is sent.
pub async fn run(state: SharedState, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        let now = crate::auth::now_secs();
        replay_outbox(&state, now).await;
        track_receipts(&state, now).await;
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

async fn track_receipts(state: &AppState, now: i64) {
    let pending = match state.store.pending(BATCH).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "reading pending transactions");
            return;
        }
    };
    for tx in pending {
        check_receipt(state, &tx, now).await;
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
