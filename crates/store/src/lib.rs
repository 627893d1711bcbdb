//! keystead-store: Keystead's database access and migrations, on SQLite and PostgreSQL.
//!
//! [`Store::connect`] takes a URL — `sqlite://PATH?mode=rwc`, `sqlite::memory:` or
//! `postgres://...` — and [`Store::migrate`] applies the embedded migrations
//! (`migrations/sqlite/`, `migrations/postgres/`). Every method is async and returns
//! `Result<_, StoreError>`; records are plain structs with public fields ([`App`],
//! [`User`], [`Session`], [`WalletRow`], [`AccountRow`], [`TxRow`], ...).
//!
//! # One codebase, two backends: why an enum of pools and not `sqlx::Any`
//!
//! The store holds either a `SqlitePool` or a `PgPool`, and each method's body is written
//! once inside the crate-private `with_pool!` macro, which expands it for both pools. So
//! the SQL text is shared (both dialects accept `$1` placeholders, `ON CONFLICT ... DO
//! UPDATE`, `RETURNING` and partial unique indexes), while each expansion is type-checked
//! against its real driver: `i64` binds as SQLite `INTEGER` and PostgreSQL `BIGINT`,
//! `Vec<u8>` as `BLOB` and `BYTEA`, and a Rust type a driver cannot bind or decode is a
//! compile error. `sqlx::Any`
//! would give one expansion, but every bind and every column then passes through its
//! reduced run-time value type, so mismatches surface as decode errors in production; it
//! needs a process-global `install_default_drivers` call; and it builds connections from a
//! URL only, so SQLite's WAL mode and busy timeout would have to be PRAGMAs issued in an
//! `after_connect` hook instead of typed `SqliteConnectOptions`. The cost of the enum is
//! that each method is compiled twice, which is small. Where the dialects
//! disagree (none today beyond the migrations themselves) a method matches on the backend.
//!
//! No `query!` macros are used (sqlx's `macros` feature is on only because `migrate!` and
//! `FromRow` live behind it): queries are checked at run time, so building never needs a
//! database.
//!
//! # Rules the methods follow
//!
//! - Time is a parameter (Unix seconds, `i64`); the store never reads the clock.
//! - Ids, key hashes and token hashes are made by the caller.
//! - Everything a user-facing request reaches takes the caller's `app_id` and filters by
//!   it, so one app can never read or change another app's users, sessions, wallets,
//!   accounts or transactions; the schema backs this up with foreign keys on
//!   `(app_id, user_id)` and `(app_id, wallet_id)`/`(app_id, account_id)`.
//! - A unique-key violation is [`StoreError::Conflict`]; a missing row, or a reference to
//!   a row that does not exist (foreign-key violation), is [`StoreError::NotFound`]. Error
//!   messages never carry bound values.
//! - Unsigned values (chain ids, nonces, block numbers, account indexes) are stored as
//!   64-bit signed integers; a value above `i64::MAX` is refused with
//!   [`StoreError::Database`] rather than wrapped.

mod apps;
mod error;
mod inline;
mod nonces;
mod oauth;
mod positional;
mod records;
mod rows;
mod sessions;
mod txs;
mod users;
mod wallets;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use error::StoreError;
pub use nonces::SenderLock;
pub use rows::{
    AccountRow, AccountWithRecord, App, AppKey, AppProvider, Identity, LoginUser, OAuthLogin,
    Session, TxRow, TxStatus, User, WalletRow,
};
pub use txs::InsertTx;

use error::DbResultExt;
use rows::AccountWithRecordRow;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long an SQLite connection waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Expands `$body` once per backend with `$pool` bound to that backend's pool. The body
/// must evaluate to the same (backend-independent) type in both expansions.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Like [`with_pool!`] for one statement that writes (or several under a transaction
/// `$body` begins itself): on an SQLite file, `$body` runs on the single writer's
/// connection in a group commit ([`writer`]); elsewhere on the pool. The listed arguments
/// are turned into owned values first (the writer runs on its own thread, and may run
/// `$body` again when it redoes a group), and `$body` must evaluate to a
/// `Result<_, StoreError>`.
///
/// Given two bodies, `|sqlite| $direct, |conn| $body`, an SQLite file runs `$direct`
/// instead, on the writer's own rusqlite connection `sqlite` in the writer's thread (the
/// hot writes, see [`writer`]); `$direct` may run twice, so it uses the owned arguments
/// by reference.
macro_rules! with_writer {
    ($store:expr, ($($owned:ident),* $(,)?), |$sqlite:ident| $direct:expr,
        |$conn:ident| $body:expr) => {
        $crate::with_writer!(@direct One, $store, ($($owned),*), |$sqlite| $direct, |$conn|
            $body, $body)
    };
    ($store:expr, ($($owned:ident),* $(,)?), |$conn:ident| $body:expr) => {
        $crate::with_writer!(@run One, $store, ($($owned),*), |$conn| $body, $body, $body)
    };
    (@run $statements:ident, $store:expr, ($($owned:ident),*), |$conn:ident| $writer_body:expr,
        $sqlite_body:expr, $postgres_body:expr) => {{
        $(#[allow(clippy::clone_on_copy, clippy::redundant_clone)] let $owned = $owned.to_owned();)*
        match (&$store.pool, &$store.writer) {
            (_, Some(writer)) => {
                writer
                    .write(
                        $crate::writer::Statements::$statements,
                        move |$conn: &mut ::sqlx::SqliteConnection| {
                            $(#[allow(clippy::clone_on_copy, clippy::redundant_clone)]
                            let $owned = $owned.clone();)*
                            Box::pin(async move {
                                #[allow(unused_imports)]
                                use ::sqlx::Connection as _;
                                $writer_body
                            })
                        },
                    )
                    .await
            }
            ($crate::Pool::Sqlite($conn), None) => $sqlite_body,
            ($crate::Pool::Postgres($conn), None) => $postgres_body,
        }
    }};
    (@direct $statements:ident, $store:expr, ($($owned:ident),*), |$sqlite:ident| $direct:expr,
        |$conn:ident| $sqlite_body:expr, $postgres_body:expr) => {{
        $(#[allow(clippy::clone_on_copy, clippy::redundant_clone)] let $owned = $owned.to_owned();)*
        match (&$store.pool, &$store.writer) {
            (_, Some(writer)) => {
                writer
                    .write_direct(
                        $crate::writer::Statements::$statements,
                        move |$sqlite: &::rusqlite::Connection| $direct,
                    )
                    .await
            }
            ($crate::Pool::Sqlite($conn), None) => $sqlite_body,
            ($crate::Pool::Postgres($conn), None) => $postgres_body,
        }
    }};
}
pub(crate) use with_writer;

/// One statement through [`with_writer!`], its `$args` bound as `$1`, `$2`, … (on an
/// SQLite file, on the writer's rusqlite connection); the number of rows it changed.
macro_rules! execute_write {
    ($store:expr, $sql:expr, ($($owned:ident),* $(,)?), [$($arg:expr),* $(,)?]) => {
        $crate::with_writer!(
            $store,
            ($($owned),*),
            |sqlite| $crate::writer::execute(sqlite, $sql, ::rusqlite::params![$($arg),*])
                .map(|n| n as u64),
            |pool| {
                let query = ::sqlx::query($sql);
                $(let query = query.bind($arg);)*
                $crate::error::DbResultExt::db(
                    query.execute(pool).await.map(|r| r.rows_affected()),
                )
            }
        )
    };
}
pub(crate) use execute_write;

/// Like [`with_writer!`] for several statements that must all happen or none: `$tx` is a
/// connection inside a transaction, and `$body` (a `Result<_, StoreError>`) keeps its
/// writes only if it returns `Ok`. On an SQLite file the writer's group is that
/// transaction (no savepoint of its own, see [`writer`]); elsewhere `$body` runs in a
/// transaction of its own, committed on `Ok`. Takes a `|sqlite| $direct` body first as
/// [`with_writer!`] does.
macro_rules! with_writer_tx {
    ($store:expr, ($($owned:ident),* $(,)?), |$sqlite:ident| $direct:expr,
        |$tx:ident| $body:expr) => {
        $crate::with_writer!(@direct Several, $store, ($($owned),*), |$sqlite| $direct, |$tx|
            $crate::in_transaction!($tx, $body), $crate::in_transaction!($tx, $body))
    };
    ($store:expr, ($($owned:ident),* $(,)?), |$tx:ident| $body:expr) => {
        $crate::with_writer!(@run Several, $store, ($($owned),*), |$tx| $body,
            $crate::in_transaction!($tx, $body), $crate::in_transaction!($tx, $body))
    };
}
pub(crate) use with_writer_tx;

/// `$body` with `$pool` rebound to a connection in a new transaction of that pool,
/// committed if `$body` is `Ok` and rolled back otherwise.
macro_rules! in_transaction {
    ($pool:ident, $body:expr) => {
        async {
            let mut transaction = $pool.begin().await.db()?;
            let result = {
                let $pool = &mut *transaction;
                $body
            };
            if result.is_ok() {
                transaction.commit().await.db()?;
            }
            result
        }
        .await
    };
}
pub(crate) use in_transaction;

/// The database: a connection pool for SQLite or PostgreSQL. Cheap to clone (the pool is
/// shared).
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// SQLite file databases: the one connection every write goes through.
    writer: Option<std::sync::Arc<writer::Writer>>,
    /// SQLite file databases: the database file, and the file locked while migrating.
    database_file: Option<std::path::PathBuf>,
    migration_lock: Option<std::path::PathBuf>,
    /// SQLite file databases: connections for the hot reads, run on the calling thread.
    inline: Option<std::sync::Arc<inline::InlineReader>>,
    /// A sole server's SQLite file ([`Store::become_sole_server`]): signing's reads from
    /// memory, with the claim that makes that correct (held while any clone lives).
    records: Option<std::sync::Arc<records::RecordCache>>,
    /// PostgreSQL: the connections that hold senders' locks ([`Store::lock_sender`]),
    /// apart from the pool so that a send holding one can still run its queries.
    sender_locks: Option<PgPool>,
}

impl Store {
    /// Connects to `url`: `sqlite://PATH?mode=rwc` (`sqlite://PATH` also creates the file),
    /// `sqlite::memory:`, or `postgres://...` / `postgresql://...`. SQLite runs in WAL mode
    /// with a 5 s busy timeout and foreign keys on. Does not run migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut migration_lock = None;
        let mut database_file = None;
        let mut writer = None;
        let mut sender_locks = None;
        let mut inline = None;
        let pool = if url.starts_with("sqlite:") {
            if !is_in_memory(url) {
                let options = SqliteConnectOptions::from_str(url).db()?;
                migration_lock = Some(beside(options.get_filename(), "-migrate.lock"));
                database_file = Some(options.get_filename().to_path_buf());
            }
            // The first connection to a new file switches it to WAL, which fails rather
            // than waits when another process does the same: take the lock for it too.
            let _guard = match &migration_lock {
                Some(path) => Some(lock_file(path.clone()).await?),
                None => None,
            };
            let (pool, options) = connect_sqlite(url).await?;
            if !is_in_memory(url) {
                inline = Some(std::sync::Arc::new(inline::InlineReader::open(
                    options.get_filename(),
                    SQLITE_BUSY_TIMEOUT,
                )?));
                writer = Some(std::sync::Arc::new(
                    writer::Writer::start(
                        options.clone(),
                        options.get_filename(),
                        SQLITE_BUSY_TIMEOUT,
                    )
                    .await?,
                ));
            }
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            sender_locks = Some(
                PgPoolOptions::new()
                    .max_connections(nonces::SENDER_LOCK_CONNECTIONS)
                    .connect_lazy(url)
                    .db()?,
            );
            Pool::Postgres(PgPoolOptions::new().connect(url).await.db()?)
        } else {
            return Err(StoreError::Database(
                "unsupported database URL: expected sqlite:... or postgres://...".into(),
            ));
        };
        Ok(Self {
            pool,
            writer,
            database_file,
            migration_lock,
            sender_locks,
            inline,
            records: None,
        })
    }

    /// Claims an SQLite file database for this process alone, for as long as this store
    /// or a clone of it lives (an exclusive lock on a file beside the database), and
    /// from then on answers signing's account and wallet-record reads from memory where
    /// it can (`records.rs`). That is correct only while no other process changes wallet
    /// records, hence the claim: a second `keystead serve` on the same file is refused
    /// here. Commands that do not write wallet records (`keystead app ...`) still run
    /// beside it. PostgreSQL, which several servers share, and in-memory databases are
    /// returned as they are.
    pub fn become_sole_server(mut self) -> Result<Self, StoreError> {
        let Some(database) = &self.database_file else {
            return Ok(self);
        };
        let path = beside(database, "-server.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path);
        let path = path.display();
        let file = file.map_err(|e| StoreError::Database(format!("opening {path}: {e}")))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Database(format!(
                    "another keystead server is using this database ({path} is locked); \
                     an SQLite database serves one server (use PostgreSQL for several)"
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Database(format!("locking {path}: {e}")));
            }
        }
        self.records = Some(std::sync::Arc::new(records::RecordCache::new(file)));
        Ok(self)
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies every embedded migration not yet applied. Safe to run again, and from
    /// several processes at once: under an advisory lock on PostgreSQL, and under an
    /// exclusive lock on a file beside the database on SQLite (where sqlx takes none, so
    /// `keystead app create` racing a first `keystead serve` could otherwise collide).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let result = match &self.pool {
            Pool::Sqlite(pool) => {
                let _lock = match &self.migration_lock {
                    Some(path) => Some(lock_file(path.clone()).await?),
                    None => None,
                };
                SQLITE_MIGRATIONS.run(pool).await
            }
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        };
        result.map_err(|e| StoreError::Migration(e.to_string()))?;
        tracing::debug!(backend = ?self.backend(), "database migrations applied");
        Ok(())
    }

    /// Answers when the database does (for readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ())
            .db())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.stop().await;
        }
        with_pool!(self, |pool| pool.close().await);
        if let Some(locks) = &self.sender_locks {
            locks.close().await;
        }
    }
}

/// `database` with `suffix` appended to its file name (`keystead.db-migrate.lock`).
fn beside(database: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut path = database.as_os_str().to_owned();
    path.push(suffix);
    path.into()
}

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Opens and exclusively locks `path` (created if missing); unlocked when dropped.
async fn lock_file(path: std::path::PathBuf) -> Result<std::fs::File, StoreError> {
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| StoreError::Migration(format!("migration lock task: {e}")))?
    .map_err(|e| StoreError::Migration(format!("migration lock: {e}")))
}

async fn connect_sqlite(url: &str) -> Result<(SqlitePool, SqliteConnectOptions), StoreError> {
    let in_memory = is_in_memory(url);
    let mut options = SqliteConnectOptions::from_str(url)
        .db()?
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    let mut pool = SqlitePoolOptions::new();
    if in_memory {
        // An in-memory database lives as long as a connection to it: keep exactly one.
        pool = pool
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    } else {
        // WAL lets readers run beside the single writer. `synchronous` stays FULL (the
        // default): a committed wallet or outbox row must survive a power cut.
        options = options.journal_mode(SqliteJournalMode::Wal);
        // sqlx pings a pooled connection before each use by default: for SQLite that is
        // one more round trip to the connection's worker thread per query, and a
        // connection to a local file does not go stale (a broken one fails its query).
        pool = pool.test_before_acquire(false);
    }
    let pool = pool.connect_with(options.clone()).await.db()?;
    Ok((pool, options))
}

/// `Ok` when a statement changed at least one row, else `NotFound`.
fn found(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Converts an unsigned value to the signed 64-bit integer both databases store.
fn to_db_int(value: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Database(format!("{what} exceeds i64::MAX")))
}

/// Converts a stored signed integer back to the unsigned value it holds.
fn from_db_int(value: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Database(format!("stored {what} is negative")))
}
