//! Hot reads on an SQLite file, run on the calling thread.
//!
//! sqlx runs every SQLite query on its connection's own worker thread and hands the rows
//! back: two thread wake-ups per query, which under load cost several times the query.
//! A profile of the server signing at concurrency 16 found 30% of its CPU on those
//! threads, for one indexed read per signature. The reads on every signature, login and
//! wallet creation take microseconds on cached pages, so they run where they are asked,
//! on a few connections of their own that only read (`query_only`). In WAL mode a reader
//! never waits for the writer, and each statement sees the last commit, as a pooled read
//! would; it can only wait (up to the busy timeout, holding its runtime thread) while
//! another process recovers the WAL after a crash, which the server never does at work.
//! They share the one SQLite library sqlx links (the same `libsqlite3-sys`), so the
//! process's file locks are coordinated as for any two connections.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

use crate::error::from_rusqlite;
use crate::positional::positional;
use crate::{AccountRow, AccountWithRecord, LoginUser, Session, StoreError, User, WalletRow};

/// Connections kept: more than the threads that read at once (the runtime's workers).
const CONNECTIONS: usize = 4;

pub(crate) struct InlineReader {
    connections: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for InlineReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineReader")
            .field("connections", &self.connections.len())
            .finish()
    }
}

impl InlineReader {
    /// Opens the connections to the database file at `path` (which exists: the pool
    /// created it), each waiting up to `busy_timeout` for a lock as the pool's do.
    pub(crate) fn open(path: &Path, busy_timeout: std::time::Duration) -> Result<Self, StoreError> {
        let connections = (0..CONNECTIONS)
            .map(|_| {
                let connection = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                connection.busy_timeout(busy_timeout)?;
                connection.pragma_update(None, "query_only", true)?;
                Ok(Mutex::new(connection))
            })
            .collect::<Result<_, rusqlite::Error>>()
            .map_err(from_rusqlite)?;
        Ok(Self {
            connections,
            next: AtomicUsize::new(0),
        })
    }

    /// The row `sql` finds with `params`, mapped by `map`; `None` when there is none.
    pub(crate) fn optional<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        let sql = positional(sql);
        self.read(|connection| {
            connection
                .prepare_cached(&sql)?
                .query_row(params, map)
                .optional()
        })
    }

    /// [`InlineReader::optional`], `NotFound` when there is no row.
    pub(crate) fn one<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.optional(sql, params, map)?.ok_or(StoreError::NotFound)
    }

    /// Runs `read` on a free connection (or waits for one: each is held for one short
    /// query, never across an `.await`).
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let count = self.connections.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..count {
            if let Ok(connection) = self.connections[(first + i) % count].try_lock() {
                return read(&connection).map_err(from_rusqlite);
            }
        }
        let connection = self.connections[first % count]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        read(&connection).map_err(from_rusqlite)
    }
}

// Rows in the column order of the queries that read them (`SESSION_COLUMNS`,
// `WALLET_COLUMNS`, `ACCOUNT_COLUMNS` then record and version, a user then `has_wallet`).

pub(crate) fn session(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: row.get(0)?,
        app_id: row.get(1)?,
        user_id: row.get(2)?,
        created_at: row.get(3)?,
        expires_at: row.get(4)?,
        revoked_at: row.get(5)?,
    })
}

pub(crate) fn wallet(row: &Row<'_>) -> rusqlite::Result<WalletRow> {
    Ok(WalletRow {
        id: row.get(0)?,
        app_id: row.get(1)?,
        user_id: row.get(2)?,
        record: row.get(3)?,
        record_version: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

pub(crate) fn account_with_record(row: &Row<'_>) -> rusqlite::Result<AccountWithRecord> {
    Ok(AccountWithRecord {
        account: std::sync::Arc::new(AccountRow {
            id: row.get(0)?,
            wallet_id: row.get(1)?,
            app_id: row.get(2)?,
            network: row.get(3)?,
            family: row.get(4)?,
            address: row.get(5)?,
            path: row.get(6)?,
            idx: row.get(7)?,
            created_at: row.get(8)?,
        }),
        record: row.get::<_, Vec<u8>>(9)?.into(),
        record_version: row.get(10)?,
    })
}

pub(crate) fn login_user(row: &Row<'_>) -> rusqlite::Result<LoginUser> {
    Ok(LoginUser {
        user: User {
            id: row.get(0)?,
            app_id: row.get(1)?,
            email: row.get(2)?,
            created_at: row.get(3)?,
        },
        has_wallet: row.get(4)?,
    })
}
