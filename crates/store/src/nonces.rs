//! Per-(chain, sender) nonce assignment, atomic across every server sharing the database.

use sqlx::Postgres;
use sqlx::pool::PoolConnection;

use rusqlite::params;

use crate::error::DbResultExt;
use crate::writer;
use crate::{Store, StoreError, execute_write, from_db_int, to_db_int, with_writer};

/// Connections kept for senders' locks on PostgreSQL: sends from this many accounts at
/// once per server; more wait for a connection.
pub(crate) const SENDER_LOCK_CONNECTIONS: u32 = 32;

/// A sending account held across every server sharing a PostgreSQL database, from
/// [`Store::lock_sender`] until [`SenderLock::release`]. Dropped unreleased (a send
/// cancelled midway), it closes its connection, and PostgreSQL releases the lock with the
/// session. On SQLite it holds nothing (one server per database file).
#[must_use = "the lock is held until released"]
pub struct SenderLock {
    held: Option<(PoolConnection<Postgres>, String)>,
}

impl SenderLock {
    /// Releases the lock (on PostgreSQL, an advisory unlock on the session that took it).
    pub async fn release(mut self) {
        if let Some((mut connection, key)) = self.held.take() {
            let unlocked: Result<bool, _> =
                sqlx::query_scalar("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
                    .bind(&key)
                    .fetch_one(&mut *connection)
                    .await;
            if !matches!(unlocked, Ok(true)) {
                tracing::warn!("a sender's lock was not released; closing its session");
                connection.close_on_drop();
            }
        }
    }
}

impl Drop for SenderLock {
    fn drop(&mut self) {
        if let Some((mut connection, _)) = self.held.take() {
            connection.close_on_drop();
        }
    }
}

impl Store {
    /// Waits for and takes the lock of one sending account (`address` as
    /// [`Store::reserve_nonce`] takes it) across every server sharing this database, for
    /// reserving a nonce, signing and broadcasting as one step: a nonce given back after a
    /// refusal is then always the last one handed out, so no gap is left even with
    /// several servers. PostgreSQL: a session advisory lock keyed by a hash of the chain
    /// and address (computed by the database, so every server agrees); SQLite: nothing to
    /// take beyond the server's own lock.
    pub async fn lock_sender(
        &self,
        chain_id: u64,
        address: &str,
    ) -> Result<SenderLock, StoreError> {
        let Some(pool) = &self.sender_locks else {
            return Ok(SenderLock { held: None });
        };
        let connection = pool.acquire().await.db()?;
        // Held by the guard before the lock is asked for: if this future is dropped while
        // waiting, the session is closed rather than returned to the pool holding it.
        let mut lock = SenderLock {
            held: Some((connection, format!("keystead sender {chain_id} {address}"))),
        };
        if let Some((connection, key)) = lock.held.as_mut() {
            sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
                .bind(&*key)
                .execute(&mut **connection)
                .await
                .db()?;
        }
        Ok(lock)
    }

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
        let reserved: i64 = with_writer!(
            self,
            (address),
            |sqlite| writer::query_one(sqlite, SQL, params![chain_id, address, floor]),
            |pool| sqlx::query_scalar(SQL)
                .bind(chain_id)
                .bind(address)
                .bind(floor)
                .fetch_one(pool)
                .await
                .db()
        )?;
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
        let n = execute_write!(self, SQL, (address), [chain_id, address, nonce])?;
        Ok(n > 0)
    }
}
