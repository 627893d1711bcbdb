//! Logins in flight through the authorization-code flow (single use, expiring).

use crate::error::DbResultExt;
use crate::{OAuthLogin, Store, StoreError, with_writer};

const COLUMNS: &str = "state, app_id, provider, code_verifier, nonce, return_origin, expires_at";

impl Store {
    /// Stores a pending login; first drops every expired one. `NotFound` if the app does
    /// not exist, `Conflict` if the state is taken.
    pub async fn put_oauth_login(&self, login: &OAuthLogin, now: i64) -> Result<(), StoreError> {
        const PURGE: &str = "DELETE FROM oauth_logins WHERE expires_at <= $1";
        let insert =
            format!("INSERT INTO oauth_logins ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)");
        with_writer!(self, (login, insert), |pool| {
            let mut tx = pool.begin().await.db()?;
            sqlx::query(PURGE).bind(now).execute(&mut *tx).await.db()?;
            sqlx::query(&insert)
                .bind(&login.state)
                .bind(&login.app_id)
                .bind(&login.provider)
                .bind(&login.code_verifier)
                .bind(&login.nonce)
                .bind(&login.return_origin)
                .bind(login.expires_at)
                .execute(&mut *tx)
                .await
                .db()?;
            tx.commit().await.db()
        })
    }

    /// Takes (deletes and returns) the pending login with this state. `NotFound` when there
    /// is none, it was taken already, or it has expired.
    pub async fn take_oauth_login(&self, state: &str, now: i64) -> Result<OAuthLogin, StoreError> {
        let sql = format!("DELETE FROM oauth_logins WHERE state = $1 RETURNING {COLUMNS}");
        let login: Option<OAuthLogin> =
            with_writer!(self, (state, sql), |pool| sqlx::query_as(&sql)
                .bind(state)
                .fetch_optional(pool)
                .await
                .db())?;
        login
            .filter(|l| l.expires_at > now)
            .ok_or(StoreError::NotFound)
    }
}
