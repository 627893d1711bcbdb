//! Users of an app and the login identities linked to them.

use rusqlite::params;

use crate::error::DbResultExt;
use crate::writer;
use crate::{
    Backend, Identity, LoginUser, Store, StoreError, User, execute_write, found, with_pool,
    with_writer, with_writer_tx,
};

const INSERT_USER: &str =
    "INSERT INTO users (id, app_id, email, created_at) VALUES ($1, $2, $3, $4)";
const INSERT_IDENTITY: &str =
    "INSERT INTO identities (app_id, provider, subject, user_id) VALUES ($1, $2, $3, $4)";

impl Store {
    /// Creates a user. `Conflict` if the id is taken, `NotFound` if the app does not exist.
    pub async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        with_writer!(self, (user), |pool| sqlx::query(INSERT_USER)
            .bind(&user.id)
            .bind(&user.app_id)
            .bind(&user.email)
            .bind(user.created_at)
            .execute(pool)
            .await
            .map(|_| ())
            .db())
    }

    /// Creates a user together with their first identity, atomically. `Conflict` if the
    /// identity is already linked (a concurrent first login won: look the user up again).
    pub async fn create_user_with_identity(
        &self,
        user: &User,
        provider: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        // As in `create_session`: plain statements in the writer's thread on an SQLite file,
        // one round trip elsewhere.
        let sql = match self.backend() {
            Backend::Sqlite => {
                "INSERT INTO users (id, app_id, email, created_at) VALUES ($1, $2, $3, $4); \
                 INSERT INTO identities (app_id, provider, subject, user_id) \
                 VALUES ($2, $5, $6, $1)"
            }
            Backend::Postgres => {
                "WITH new_user AS (INSERT INTO users (id, app_id, email, created_at) \
                 VALUES ($1, $2, $3, $4) RETURNING id, app_id) \
                 INSERT INTO identities (app_id, provider, subject, user_id) \
                 SELECT app_id, $5, $6, id FROM new_user"
            }
        };
        with_writer_tx!(
            self,
            (user, provider, subject),
            |sqlite| {
                let u = &user;
                let row = params![u.id, u.app_id, u.email, u.created_at];
                writer::execute(sqlite, INSERT_USER, row)?;
                let identity = params![u.app_id, provider, subject, u.id];
                writer::execute(sqlite, INSERT_IDENTITY, identity).map(|_| ())
            },
            |tx| {
                sqlx::query(sql)
                    .bind(&user.id)
                    .bind(&user.app_id)
                    .bind(&user.email)
                    .bind(user.created_at)
                    .bind(&provider)
                    .bind(&subject)
                    .execute(&mut *tx)
                    .await
                    .map(|_| ())
                    .db()
            }
        )
    }

    /// The user with this id in this app.
    pub async fn get_user(&self, app_id: &str, id: &str) -> Result<User, StoreError> {
        const SQL: &str =
            "SELECT id, app_id, email, created_at FROM users WHERE app_id = $1 AND id = $2";
        with_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(app_id)
            .bind(id)
            .fetch_one(pool)
            .await
            .db())
    }

    /// Sets (or clears) a user's email.
    pub async fn set_user_email(
        &self,
        app_id: &str,
        id: &str,
        email: Option<&str>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE users SET email = $3 WHERE app_id = $1 AND id = $2";
        let email = email.map(str::to_owned);
        let n = execute_write!(self, SQL, (app_id, id, email), [app_id, id, email])?;
        found(n)
    }

    /// The user an identity (provider, subject) is linked to in this app, if any.
    pub async fn find_user_by_identity(
        &self,
        app_id: &str,
        provider: &str,
        subject: &str,
    ) -> Result<Option<User>, StoreError> {
        Ok(self
            .find_login_user(app_id, provider, subject)
            .await?
            .map(|found| found.user))
    }

    /// [`Store::find_user_by_identity`], and whether the user has a wallet, in one query
    /// (a login needs both).
    pub async fn find_login_user(
        &self,
        app_id: &str,
        provider: &str,
        subject: &str,
    ) -> Result<Option<LoginUser>, StoreError> {
        const SQL: &str = "SELECT u.id, u.app_id, u.email, u.created_at, \
             EXISTS (SELECT 1 FROM wallets w WHERE w.app_id = u.app_id AND w.user_id = u.id) \
             AS has_wallet FROM identities i \
             JOIN users u ON u.app_id = i.app_id AND u.id = i.user_id \
             WHERE i.app_id = $1 AND i.provider = $2 AND i.subject = $3";
        if let Some(reader) = &self.inline {
            let params = rusqlite::params![app_id, provider, subject];
            return reader.optional(SQL, params, crate::inline::login_user);
        }
        with_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(app_id)
            .bind(provider)
            .bind(subject)
            .fetch_optional(pool)
            .await
            .db())
    }

    /// Links an identity to a user of the same app. `Conflict` if the identity is linked
    /// already; `NotFound` if the user is not in that app.
    pub async fn link_identity(&self, identity: &Identity) -> Result<(), StoreError> {
        with_writer!(self, (identity), |pool| sqlx::query(INSERT_IDENTITY)
            .bind(&identity.app_id)
            .bind(&identity.provider)
            .bind(&identity.subject)
            .bind(&identity.user_id)
            .execute(pool)
            .await
            .map(|_| ())
            .db())
    }

    /// A user's identities, by provider and subject.
    pub async fn list_identities(
        &self,
        app_id: &str,
        user_id: &str,
    ) -> Result<Vec<Identity>, StoreError> {
        const SQL: &str = "SELECT app_id, provider, subject, user_id FROM identities \
             WHERE app_id = $1 AND user_id = $2 ORDER BY provider, subject";
        with_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(app_id)
            .bind(user_id)
            .fetch_all(pool)
            .await
            .db())
    }
}
