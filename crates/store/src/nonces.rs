//! Per-(chain, sender) nonce assignment, atomic across every server sharing the database.

use crate::error::DbResultExt;
use crate::{Store, StoreError, from_db_int, to_db_int, with_writer};

impl Store {
    /// Hands out the next nonce for `address` on `chain_id`: `max(stored next nonce,
    /// floor_from_chain)`, and stores that plus one. One statement (an upsert with
    /// `RETURNING`), so concurrent callers — on any server — each get a distinct nonce,
    /// consecutively. `floor_from_chain` is the node's pending transaction count, which
    /// lifts the counter past transactions sent from elsewhere.
    ///
    /// The address is matched exactly as given: normalise it (e.g. lowercase EVM hex)
    /// before calling.
    pub async fn reserve_nonce(
        &self,
        chain_id: u64,
        address: &str,
        floor_from_chain: u64,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "INSERT INTO nonces (chain_id, address, next_nonce) \
             VALUES ($1, $2, $3 + 1) \
             ON CONFLICT (chain_id, address) DO UPDATE SET next_nonce = \
             (CASE WHEN nonces.next_nonce > $3 THEN nonces.next_nonce ELSE $3 END) + 1 \
             RETURNING next_nonce - 1";
        let chain_id = to_db_int(chain_id, "chain id")?;
        // Leave room for the `+ 1`, so the database never sees an overflow.
        let floor = to_db_int(floor_from_chain, "nonce floor")?;
        if floor == i64::MAX {
            return Err(StoreError::Database("nonce floor exceeds i64::MAX".into()));
        }
        let reserved: i64 = with_writer!(self, (address), |pool| sqlx::query_scalar(SQL)
            .bind(chain_id)
            .bind(address)
            .bind(floor)
            .fetch_one(pool)
            .await
            .db())?;
        from_db_int(reserved, "nonce")
    }

    /// Gives back a nonce that was reserved but never reached a node (the enclave refused
    /// to sign, or the node refused the transaction), if it is still the last one handed
    /// out. Returns whether it was given back; `false` means a later nonce was reserved
    /// meanwhile, and the caller must not reuse this one.
    pub async fn release_nonce(
        &self,
        chain_id: u64,
        address: &str,
        nonce: u64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE nonces SET next_nonce = $3 \
             WHERE chain_id = $1 AND address = $2 AND next_nonce = $3 + 1";
        let chain_id = to_db_int(chain_id, "chain id")?;
        let nonce = to_db_int(nonce, "nonce")?;
        if nonce == i64::MAX {
            return Ok(false);
        }
        let n = with_writer!(self, (address), |pool| sqlx::query(SQL)
            .bind(chain_id)
            .bind(address)
            .bind(nonce)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
            .db())?;
        Ok(n > 0)
    }
}
