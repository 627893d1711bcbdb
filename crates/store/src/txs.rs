//! Signed transactions: the outbox (`signed`), broadcast (`pending`) and final states
//! (`confirmed`, `failed`), with idempotent inserts.

use rusqlite::params;

use crate::error::DbResultExt;
use crate::rows::TxRecord;
use crate::{
    Store, StoreError, TxRow, TxStatus, execute_write, to_db_int, with_pool, with_writer, writer,
};

const TX_COLUMNS: &str = "id, app_id, user_id, account_id, network, chain_id, from_address, \
     nonce, hash, raw, status, block_number, error, idempotency_key, request_hash, \
     created_at, updated_at";

/// What [`Store::insert_signed_tx`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsertTx {
    /// The transaction was stored (as `signed`, in the outbox); this is the stored row.
    Inserted(TxRow),
    /// The user already has a transaction under this idempotency key: that one is
    /// returned and nothing was stored. Compare its `request_hash` with the new request's.
    Existing(TxRow),
}

fn rows(records: Vec<TxRecord>) -> Result<Vec<TxRow>, StoreError> {
    records.into_iter().map(TxRow::try_from).collect()
}

impl Store {
    /// Stores a signed transaction in the outbox: status `signed`, no block number or
    /// error, whatever `tx` says. With an idempotency key the user has used before, stores
    /// nothing and returns the earlier transaction as [`InsertTx::Existing`]. `NotFound` if
    /// the user or account is not in the app; `Conflict` if the id is taken.
    pub async fn insert_signed_tx(&self, tx: TxRow) -> Result<InsertTx, StoreError> {
        let sql = format!(
            "INSERT INTO transactions ({TX_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, $12, $13, $14, $15)"
        );
        let chain_id = to_db_int(tx.chain_id, "chain id")?;
        let nonce = to_db_int(tx.nonce, "nonce")?;
        let inserted = with_writer!(
            self,
            (tx, sql),
            |sqlite| {
                let t = &tx;
                let row = params![
                    t.id,
                    t.app_id,
                    t.user_id,
                    t.account_id,
                    t.network,
                    chain_id,
                    t.from_address,
                    nonce,
                    t.hash,
                    t.raw,
                    TxStatus::Signed.as_str(),
                    t.idempotency_key,
                    t.request_hash,
                    t.created_at,
                    t.updated_at
                ];
                writer::execute(sqlite, &sql, row).map(|_| ())
            },
            |pool| sqlx::query(&sql)
                .bind(&tx.id)
                .bind(&tx.app_id)
                .bind(&tx.user_id)
                .bind(&tx.account_id)
                .bind(&tx.network)
                .bind(chain_id)
                .bind(&tx.from_address)
                .bind(nonce)
                .bind(&tx.hash)
                .bind(&tx.raw)
                .bind(TxStatus::Signed.as_str())
                .bind(&tx.idempotency_key)
                .bind(&tx.request_hash)
                .bind(tx.created_at)
                .bind(tx.updated_at)
                .execute(pool)
                .await
                .map(|_| ())
                .db()
        );
        match (inserted, &tx.idempotency_key) {
            (Ok(()), _) => Ok(InsertTx::Inserted(TxRow {
                status: TxStatus::Signed,
                block_number: None,
                error: None,
                ..tx
            })),
            (Err(StoreError::Conflict), Some(key)) => self
                .find_tx_by_idempotency_key(&tx.app_id, &tx.user_id, key)
                .await?
                .map(InsertTx::Existing)
                .ok_or(StoreError::Conflict),
            (Err(e), _) => Err(e),
        }
    }

    /// The transaction with this id in this app.
    pub async fn get_tx(&self, app_id: &str, id: &str) -> Result<TxRow, StoreError> {
        let sql = format!("SELECT {TX_COLUMNS} FROM transactions WHERE app_id = $1 AND id = $2");
        let record: TxRecord = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(id)
            .fetch_one(pool)
            .await
            .db())?;
        record.try_into()
    }

    /// The user's transaction under an idempotency key, if any.
    pub async fn find_tx_by_idempotency_key(
        &self,
        app_id: &str,
        user_id: &str,
        idempotency_key: &str,
    ) -> Result<Option<TxRow>, StoreError> {
        let sql = format!(
            "SELECT {TX_COLUMNS} FROM transactions \
             WHERE app_id = $1 AND user_id = $2 AND idempotency_key = $3"
        );
        let record: Option<TxRecord> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(user_id)
            .bind(idempotency_key)
            .fetch_optional(pool)
            .await
            .db())?;
        record.map(TxRow::try_from).transpose()
    }

    /// A user's transactions, newest first, at most `limit`.
    pub async fn list_txs(
        &self,
        app_id: &str,
        user_id: &str,
        limit: u32,
    ) -> Result<Vec<TxRow>, StoreError> {
        let sql = format!(
            "SELECT {TX_COLUMNS} FROM transactions WHERE app_id = $1 AND user_id = $2 \
             ORDER BY created_at DESC, nonce DESC, id DESC LIMIT $3"
        );
        let records = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(user_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .db())?;
        rows(records)
    }

    /// Transactions in the outbox (signed, not yet broadcast), oldest first, at most
    /// `limit`: replay them at start. Across all apps (background work, not user-facing).
    pub async fn outbox(&self, limit: u32) -> Result<Vec<TxRow>, StoreError> {
        self.by_status(TxStatus::Signed, limit).await
    }

    /// Broadcast transactions waiting for a receipt, oldest first, at most `limit`. Across
    /// all apps (background work, not user-facing).
    pub async fn pending(&self, limit: u32) -> Result<Vec<TxRow>, StoreError> {
        self.by_status(TxStatus::Pending, limit).await
    }

    async fn by_status(&self, status: TxStatus, limit: u32) -> Result<Vec<TxRow>, StoreError> {
        let sql = format!(
            "SELECT {TX_COLUMNS} FROM transactions WHERE status = $1 \
             ORDER BY created_at, chain_id, from_address, nonce, id LIMIT $2"
        );
        let records = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(status.as_str())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .db())?;
        rows(records)
    }

    /// Moves a transaction from the outbox to `pending` once a node has accepted it.
    /// Idempotent: a transaction already past `signed` is left as it is. `NotFound` if
    /// there is no such transaction.
    pub async fn mark_broadcast(&self, id: &str, now: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE transactions SET status = 'pending', updated_at = $2 \
             WHERE id = $1 AND status = 'signed'";
        let n = execute_write!(self, SQL, (id, now), [id, now])?;
        self.changed_or_exists(id, n).await
    }

    /// Records that the tracker looked at a pending transaction still without a receipt at
    /// `now` (and sent it again if the node had lost it), so the next look waits. A
    /// transaction no longer pending is left as it is; `NotFound` if there is none.
    pub async fn mark_pending_checked(&self, id: &str, now: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE transactions SET updated_at = $2 \
             WHERE id = $1 AND status = 'pending'";
        let n = execute_write!(self, SQL, (id, now), [id, now])?;
        self.changed_or_exists(id, n).await
    }

    /// Records a transaction's receipt: `confirmed` (receipt status 1, `succeeded`) or
    /// `failed` (status 0), mined in `block_number`. Applies to `signed` and `pending`
    /// transactions (a receipt can arrive for one whose broadcast was never recorded); a
    /// transaction already final is left as it is. `NotFound` if there is no such
    /// transaction.
    pub async fn mark_confirmed(
        &self,
        id: &str,
        block_number: u64,
        succeeded: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE transactions SET status = $2, block_number = $3, updated_at = $4 \
             WHERE id = $1 AND status IN ('signed', 'pending')";
        let status = if succeeded {
            TxStatus::Confirmed
        } else {
            TxStatus::Failed
        };
        let block = to_db_int(block_number, "block number")?;
        let n = execute_write!(self, SQL, (id), [id, status.as_str(), block, now])?;
        self.changed_or_exists(id, n).await
    }

    /// Marks a `signed` or `pending` transaction `failed` without a block (the node
    /// refused it), with the caller's description of why. A transaction already final is
    /// left as it is. `NotFound` if there is no such transaction.
    pub async fn mark_failed(&self, id: &str, error: &str, now: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE transactions SET status = 'failed', error = $2, updated_at = $3 \
             WHERE id = $1 AND status IN ('signed', 'pending')";
        let n = execute_write!(self, SQL, (id, error, now), [id, error, now])?;
        self.changed_or_exists(id, n).await
    }

    /// `Ok` if an update changed a row or the transaction exists (already past that
    /// state), else `NotFound`.
    async fn changed_or_exists(&self, id: &str, rows_affected: u64) -> Result<(), StoreError> {
        if rows_affected > 0 {
            return Ok(());
        }
        const SQL: &str = "SELECT id FROM transactions WHERE id = $1";
        let found: Option<String> = with_pool!(self, |pool| sqlx::query_scalar(SQL)
            .bind(id)
            .fetch_optional(pool)
            .await
            .db())?;
        found.map(|_| ()).ok_or(StoreError::NotFound)
    }
}
