//! The store's error type and the mapping from sqlx's and rusqlite's errors.

/// What can go wrong in the store. Messages never contain values bound into SQL.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No such row (for the caller's app), or a reference to a row that does not exist.
    #[error("not found")]
    NotFound,
    /// A unique key is taken, or a compare-and-swap lost the race.
    #[error("conflict")]
    Conflict,
    /// A refresh token was presented a second time; its session has been revoked.
    #[error("refresh token reused; session revoked")]
    RefreshReuse,
    /// The database failed or refused the request.
    #[error("database error: {0}")]
    Database(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
}

/// Classifies a sqlx error. Deliberately not a `From` impl, so sqlx stays out of the
/// public API.
pub(crate) fn from_sqlx(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                StoreError::Conflict
            } else if db.is_foreign_key_violation() {
                StoreError::NotFound
            } else {
                StoreError::Database(describe_database_error(db.as_ref()))
            }
        }
        other => StoreError::Database(other.to_string()),
    }
}

/// The driver's code and message, except for data exceptions (SQLSTATE class 22), whose
/// PostgreSQL messages can quote the offending value: for those only the code is kept.
fn describe_database_error(db: &dyn sqlx::error::DatabaseError) -> String {
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    if code.starts_with("22") {
        format!("data exception (code {code})")
    } else {
        format!("{} (code {code})", db.message())
    }
}

/// Classifies a rusqlite error as [`from_sqlx`] does a sqlx one: no row is `NotFound`, a
/// taken unique key `Conflict`, a missing referenced row `NotFound`. SQLite's messages
/// name the constraint, never a bound value.
pub(crate) fn from_rusqlite(error: rusqlite::Error) -> StoreError {
    use rusqlite::ffi;
    match error {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(failure, message) => match failure.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                StoreError::Conflict
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => StoreError::NotFound,
            code => StoreError::Database(format!(
                "{} (code {code})",
                message.unwrap_or_else(|| failure.to_string())
            )),
        },
        other => StoreError::Database(other.to_string()),
    }
}

/// `.db()` turns a sqlx result into a store result.
pub(crate) trait DbResultExt<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> DbResultExt<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(from_sqlx)
    }
}
