//! Login sessions and their rotating refresh tokens (stored as hashes the caller makes).

use rusqlite::params;

use crate::error::DbResultExt;
use crate::writer;
use crate::{
    Backend, Session, Store, StoreError, execute_write, found, with_pool, with_writer,
    with_writer_tx,
};

const SESSION_COLUMNS: &str = "id, app_id, user_id, created_at, expires_at, revoked_at";
const INSERT_SESSION: &str = "INSERT INTO sessions \
     (id, app_id, user_id, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)";
const INSERT_TOKEN: &str =
    "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)";

impl Store {
    /// Creates a session with its first refresh token (by hash), atomically. `NotFound` if
    /// the user is not in the session's app; `Conflict` if the id or hash is taken.
    pub async fn create_session(
        &self,
        session: &Session,
        refresh_token_hash: &str,
    ) -> Result<(), StoreError> {
        // On an SQLite file, two plain statements in the writer's thread (its group makes
        // the pair all or nothing). Elsewhere both rows in one round trip: in-memory SQLite
        // one query string of two statements in the pool's transaction, PostgreSQL one
        // statement inserting the session in its WITH.
        let sql = match self.backend() {
            Backend::Sqlite => {
                "INSERT INTO sessions (id, app_id, user_id, created_at, expires_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6); \
                 INSERT INTO refresh_tokens (token_hash, session_id, created_at) \
                 VALUES ($7, $1, $4)"
            }
            Backend::Postgres => {
                "WITH session AS (INSERT INTO sessions \
                 (id, app_id, user_id, created_at, expires_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, created_at) \
                 INSERT INTO refresh_tokens (token_hash, session_id, created_at) \
                 SELECT $7, id, created_at FROM session"
            }
        };
        with_writer_tx!(
            self,
            (session, refresh_token_hash),
            |sqlite| {
                let s = &session;
                let row = params![
                    s.id,
                    s.app_id,
                    s.user_id,
                    s.created_at,
                    s.expires_at,
                    s.revoked_at
                ];
                writer::execute(sqlite, INSERT_SESSION, row)?;
                let token = params![refresh_token_hash, s.id, s.created_at];
                writer::execute(sqlite, INSERT_TOKEN, token).map(|_| ())
            },
            |tx| {
                sqlx::query(sql)
                    .bind(&session.id)
                    .bind(&session.app_id)
                    .bind(&session.user_id)
                    .bind(session.created_at)
                    .bind(session.expires_at)
                    .bind(session.revoked_at)
                    .bind(&refresh_token_hash)
                    .execute(&mut *tx)
                    .await
                    .map(|_| ())
                    .db()
            }
        )
    }

    /// The session with this id in this app, live or not (see [`Session::is_live`]).
    pub async fn get_session(&self, app_id: &str, id: &str) -> Result<Session, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE app_id = $1 AND id = $2");
        if let Some(reader) = &self.inline {
            let params = rusqlite::params![app_id, id];
            return reader.one(&sql, params, crate::inline::session);
        }
        with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(id)
            .fetch_one(pool)
            .await
            .db())
    }

    /// Revokes a session (logout). Revoking it again keeps the first time. `NotFound` if
    /// the app has no such session.
    pub async fn revoke_session(&self, app_id: &str, id: &str, now: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $3) \
             WHERE app_id = $1 AND id = $2";
        let n = execute_write!(self, SQL, (app_id, id, now), [app_id, id, now])?;
        found(n)
    }

    /// Revokes every live session of a user; returns how many were revoked.
    pub async fn revoke_user_sessions(
        &self,
        app_id: &str,
        user_id: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "UPDATE sessions SET revoked_at = $3 \
             WHERE app_id = $1 AND user_id = $2 AND revoked_at IS NULL";
        execute_write!(self, SQL, (app_id, user_id, now), [app_id, user_id, now])
    }

    /// Rotates a refresh token, atomically: if `old_hash` is unused and its session (in
    /// `app_id`) is live at `now`, marks it used, stores `new_hash` for the same session and
    /// returns the session.
    ///
    /// - `old_hash` already used (a replayed or stolen token): revokes the whole session
    ///   and returns `RefreshReuse`.
    /// - unknown (or another app's) token, or its session revoked or expired: `NotFound`,
    ///   nothing changed.
    pub async fn rotate_refresh(
        &self,
        app_id: &str,
        old_hash: &str,
        new_hash: &str,
        now: i64,
    ) -> Result<Session, StoreError> {
        // The first statement writes, so on SQLite the transaction takes the write lock at
        // once (waiting out other writers) instead of failing to upgrade a stale read.
        const MARK_USED: &str = "UPDATE refresh_tokens SET used_at = $3 \
             WHERE token_hash = $1 AND used_at IS NULL AND session_id IN \
             (SELECT id FROM sessions WHERE app_id = $2 AND revoked_at IS NULL AND expires_at > $3) \
             RETURNING session_id";
        const LOOKUP: &str = "SELECT r.used_at FROM refresh_tokens r \
             JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1 AND s.app_id = $2";
        const REVOKE: &str = "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $3) \
             WHERE app_id = $2 AND id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)";
        let select_session = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        let backend = self.backend();
        with_writer!(self, (app_id, old_hash, new_hash, select_session), |pool| {
            let mut tx = pool.begin().await.db()?;
            let session_id: Option<String> = sqlx::query_scalar(MARK_USED)
                .bind(&old_hash)
                .bind(&app_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
            if let Some(session_id) = session_id {
                sqlx::query(INSERT_TOKEN)
                    .bind(&new_hash)
                    .bind(&session_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .db()?;
                let session: Session = sqlx::query_as(&select_session)
                    .bind(&session_id)
                    .fetch_one(&mut *tx)
                    .await
                    .db()?;
                tx.commit().await.db()?;
                return Ok(session);
            }
            let used_at: Option<Option<i64>> = sqlx::query_scalar(LOOKUP)
                .bind(&old_hash)
                .bind(&app_id)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
            match used_at {
                Some(Some(_)) => {
                    sqlx::query(REVOKE)
                        .bind(&old_hash)
                        .bind(&app_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    tx.commit().await.db()?;
                    tracing::warn!(?backend, "refresh token reused; session revoked");
                    Err(StoreError::RefreshReuse)
                }
                Some(None) | None => Err(StoreError::NotFound),
            }
        })
    }
}
