//! Wallets (one per app user; an opaque record with a compare-and-swap version) and the
//! accounts derived from them.

use std::sync::LazyLock;

use rusqlite::params;

use crate::error::DbResultExt;
use crate::inline;
use crate::writer;
use crate::{
    AccountRow, AccountWithRecord, AccountWithRecordRow, Backend, Store, StoreError, WalletRow,
    with_pool, with_writer, with_writer_tx,
};

/// Binds an [`AccountRow`] to `$1`…`$9` in [`ACCOUNT_COLUMNS`] order.
macro_rules! bind_account {
    ($query:expr, $account:expr) => {
        $query
            .bind(&$account.id)
            .bind(&$account.wallet_id)
            .bind(&$account.app_id)
            .bind(&$account.network)
            .bind(&$account.family)
            .bind(&$account.address)
            .bind(&$account.path)
            .bind(i64::from($account.idx))
            .bind($account.created_at)
    };
}

const WALLET_COLUMNS: &str = "id, app_id, user_id, record, record_version, created_at, updated_at";
const ACCOUNT_COLUMNS: &str =
    "id, wallet_id, app_id, network, family, address, path, idx, created_at";

/// A wallet's row, and one account's: as they are, the writer's statements on SQLite;
/// the wallet's also begins the one statement that stores both elsewhere.
static INSERT_WALLET: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO wallets ({WALLET_COLUMNS}) VALUES {}",
        numbered_rows(1, 1, 7)
    )
});
static INSERT_ACCOUNT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES {}",
        numbered_rows(1, 1, 9)
    )
});

/// An account whose wallet is the user's (`$1` app, `$2` account id, `$3` user), and the
/// same with its wallet's record and version: built once, they run on every signature.
static USER_ACCOUNT_SQL: LazyLock<String> = LazyLock::new(|| user_account_sql(""));
static USER_ACCOUNT_WITH_RECORD_SQL: LazyLock<String> =
    LazyLock::new(|| user_account_sql(", w.record, w.record_version"));

/// The query for an account (in [`ACCOUNT_COLUMNS`] order, then `extra` wallet columns)
/// whose wallet is the user's.
fn user_account_sql(extra: &str) -> String {
    let columns = ACCOUNT_COLUMNS
        .split(", ")
        .map(|c| format!("a.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {columns}{extra} FROM accounts a JOIN wallets w \
         ON w.app_id = a.app_id AND w.id = a.wallet_id \
         WHERE a.app_id = $1 AND a.id = $2 AND w.user_id = $3"
    )
}

/// `rows` parenthesized lists of `columns` numbered parameters each, from `$first` on:
/// `($8, $9), ($10, $11)` for 8, 2, 2.
fn numbered_rows(first: usize, rows: usize, columns: usize) -> String {
    let row = |r: usize| {
        let numbers: Vec<String> = (0..columns)
            .map(|c| format!("${}", first + r * columns + c))
            .collect();
        format!("({})", numbers.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

/// A wallet and `accounts` accounts in one query: on SQLite (in memory: a file goes
/// through the writer) a string of two statements, made all or nothing by the pool's
/// transaction; on PostgreSQL one statement inserting the wallet in its WITH. `$8` on
/// are the accounts' rows.
fn insert_with_accounts_sql(backend: Backend, accounts: usize) -> String {
    if accounts == 0 {
        return INSERT_WALLET.clone();
    }
    let insert_wallet = INSERT_WALLET.as_str();
    let insert_accounts = format!(
        "INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES {}",
        numbered_rows(8, accounts, 9)
    );
    match backend {
        Backend::Sqlite => format!("{insert_wallet}; {insert_accounts}"),
        Backend::Postgres => format!("WITH wallet AS ({insert_wallet}) {insert_accounts}"),
    }
}

impl Store {
    /// Stores a new wallet. Exactly one wallet per (app, user), even under concurrent
    /// calls: every other attempt gets `Conflict`. `NotFound` if the user is not in the app.
    pub async fn create_wallet(&self, wallet: &WalletRow) -> Result<(), StoreError> {
        self.create_wallet_with_accounts(wallet, &[]).await
    }

    /// Stores a new wallet and its first accounts in one transaction, so no wallet is
    /// ever stored without its accounts. `Conflict` as [`Store::create_wallet`] (nothing is
    /// stored then).
    pub async fn create_wallet_with_accounts(
        &self,
        wallet: &WalletRow,
        accounts: &[AccountRow],
    ) -> Result<(), StoreError> {
        // On an SQLite file, plain statements in the writer's thread; elsewhere one round
        // trip (see `insert_with_accounts_sql`).
        let backend = self.backend();
        with_writer_tx!(
            self,
            (wallet, accounts),
            |sqlite| {
                let w = &wallet;
                let row = params![
                    w.id,
                    w.app_id,
                    w.user_id,
                    w.record,
                    w.record_version,
                    w.created_at,
                    w.updated_at
                ];
                writer::execute(sqlite, &INSERT_WALLET, row)?;
                for a in accounts.iter() {
                    let row = params![
                        a.id,
                        a.wallet_id,
                        a.app_id,
                        a.network,
                        a.family,
                        a.address,
                        a.path,
                        a.idx,
                        a.created_at
                    ];
                    writer::execute(sqlite, &INSERT_ACCOUNT, row)?;
                }
                Ok(())
            },
            |tx| {
                let sql = insert_with_accounts_sql(backend, accounts.len());
                let query = sqlx::query(&sql)
                    .bind(&wallet.id)
                    .bind(&wallet.app_id)
                    .bind(&wallet.user_id)
                    .bind(&wallet.record)
                    .bind(wallet.record_version)
                    .bind(wallet.created_at)
                    .bind(wallet.updated_at);
                accounts
                    .iter()
                    .fold(query, |query, account| bind_account!(query, account))
                    .execute(&mut *tx)
                    .await
                    .map(|_| ())
                    .db()
            }
        )
    }

    /// The wallet with this id in this app.
    pub async fn get_wallet(&self, app_id: &str, id: &str) -> Result<WalletRow, StoreError> {
        let sql = format!("SELECT {WALLET_COLUMNS} FROM wallets WHERE app_id = $1 AND id = $2");
        with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(id)
            .fetch_one(pool)
            .await
            .db())
    }

    /// The wallet of a user of this app, if they have one.
    pub async fn wallet_for_user(
        &self,
        app_id: &str,
        user_id: &str,
    ) -> Result<Option<WalletRow>, StoreError> {
        let sql =
            format!("SELECT {WALLET_COLUMNS} FROM wallets WHERE app_id = $1 AND user_id = $2");
        if let Some(reader) = &self.inline {
            return reader.optional(&sql, rusqlite::params![app_id, user_id], inline::wallet);
        }
        with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await
            .db())
    }

    /// Compare-and-swap of a wallet's record: replaces it and its version only if the
    /// stored version is still `expected_version`. `Conflict` when the version has moved
    /// on; `NotFound` when the app has no such wallet.
    pub async fn update_wallet_record(
        &self,
        app_id: &str,
        id: &str,
        expected_version: i64,
        new_record: &[u8],
        new_version: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE wallets SET record = $4, record_version = $5, updated_at = $6 \
             WHERE app_id = $1 AND id = $2 AND record_version = $3";
        let n = with_writer!(
            self,
            (app_id, id, expected_version, new_record, new_version, now),
            |pool| sqlx::query(SQL)
                .bind(app_id)
                .bind(id)
                .bind(expected_version)
                .bind(new_record)
                .bind(new_version)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
                .db()
        );
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                // Committed or not, the database is the one to ask next.
                self.forget_record(id);
                return Err(e);
            }
        };
        if n > 0 {
            if let Some(records) = &self.records {
                records.wrote(app_id, id, new_record, new_version);
            }
            return Ok(());
        }
        self.forget_record(id);
        // Nothing changed: either there is no such wallet or its version moved on.
        self.get_wallet(app_id, id).await?;
        Err(StoreError::Conflict)
    }

    fn forget_record(&self, wallet_id: &str) {
        if let Some(records) = &self.records {
            records.forget(wallet_id);
        }
    }

    /// Stores a new account. `Conflict` if the wallet already has an account at this
    /// (network, idx) or the id is taken; `NotFound` if the wallet is not in the app.
    pub async fn create_account(&self, account: &AccountRow) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        );
        with_writer!(self, (account, sql), |pool| bind_account!(
            sqlx::query(&sql),
            account
        )
        .execute(pool)
        .await
        .map(|_| ())
        .db())
    }

    /// Stores an account unless the wallet already has one at its (network, idx): for
    /// networks configured after the wallet was made. Returns whether it was stored.
    pub async fn add_account_if_missing(&self, account: &AccountRow) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (wallet_id, network, idx) DO NOTHING"
        );
        with_writer!(self, (account, sql), |pool| bind_account!(
            sqlx::query(&sql),
            account
        )
        .execute(pool)
        .await
        .map(|r| r.rows_affected() > 0)
        .db())
    }

    /// The account with this id in this app.
    pub async fn get_account(&self, app_id: &str, id: &str) -> Result<AccountRow, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE app_id = $1 AND id = $2");
        with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(id)
            .fetch_one(pool)
            .await
            .db())
    }

    /// The account with this id in this app, only if its wallet belongs to `user_id`
    /// (one query: the ownership check every signing request makes).
    pub async fn get_user_account(
        &self,
        app_id: &str,
        user_id: &str,
        id: &str,
    ) -> Result<AccountRow, StoreError> {
        self.fetch_user_account(&USER_ACCOUNT_SQL, app_id, user_id, id)
            .await
    }

    /// [`Store::get_user_account`] with its wallet's record and version, in one query
    /// (what a signature needs, read under the wallet owner's lock).
    pub async fn get_user_account_with_record(
        &self,
        app_id: &str,
        user_id: &str,
        id: &str,
    ) -> Result<AccountWithRecord, StoreError> {
        if let Some(found) = self
            .records
            .as_ref()
            .and_then(|r| r.get(app_id, user_id, id))
        {
            return Ok(found);
        }
        let sql = USER_ACCOUNT_WITH_RECORD_SQL.as_str();
        let found: AccountWithRecord = if let Some(reader) = &self.inline {
            // One query per signature: on the calling thread (see `inline.rs`).
            let params = rusqlite::params![app_id, id, user_id];
            reader.one(sql, params, inline::account_with_record)?
        } else {
            self.fetch_user_account::<AccountWithRecordRow>(sql, app_id, user_id, id)
                .await?
                .into()
        };
        if let Some(records) = &self.records {
            records.read(user_id, &found);
        }
        Ok(found)
    }

    /// The row of `sql` (a [`user_account_sql`] query) for this account of `user_id`.
    async fn fetch_user_account<T>(
        &self,
        sql: &str,
        app_id: &str,
        user_id: &str,
        id: &str,
    ) -> Result<T, StoreError>
    where
        T: Send
            + Unpin
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(app_id)
            .bind(id)
            .bind(user_id)
            .fetch_one(pool)
            .await
            .db())
    }

    /// A wallet's accounts, by network then index.
    pub async fn list_accounts(
        &self,
        app_id: &str,
        wallet_id: &str,
    ) -> Result<Vec<AccountRow>, StoreError> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE app_id = $1 AND wallet_id = $2 \
             ORDER BY network, idx"
        );
        with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(wallet_id)
            .fetch_all(pool)
            .await
            .db())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbered_rows_count_on_from_the_first() {
        assert_eq!(super::numbered_rows(8, 2, 2), "($8, $9), ($10, $11)");
        assert_eq!(super::numbered_rows(1, 1, 3), "($1, $2, $3)");
    }
}
