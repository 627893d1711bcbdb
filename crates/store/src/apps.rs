//! Apps (tenants): their hashed keys, allowed origins and identity providers.

use crate::error::DbResultExt;
use crate::{
    App, AppKey, AppProvider, Store, StoreError, execute_write, found, with_pool, with_writer,
};

const INSERT_APP: &str = "INSERT INTO apps (id, name, created_at) VALUES ($1, $2, $3)";
const INSERT_KEY: &str = "INSERT INTO app_keys (key_hash, app_id, created_at) VALUES ($1, $2, $3)";
const INSERT_ORIGIN: &str = "INSERT INTO app_origins (app_id, origin) VALUES ($1, $2) \
     ON CONFLICT (app_id, origin) DO NOTHING";
const PUT_PROVIDER: &str = "INSERT INTO app_providers (app_id, name, kind, issuer, client_id) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id, name) DO UPDATE \
     SET kind = excluded.kind, issuer = excluded.issuer, client_id = excluded.client_id";

impl Store {
    /// Creates an app with its origins, identity providers and first key, all or nothing.
    /// `Conflict` if the id or the key hash is taken (then nothing is stored).
    pub async fn create_app_with(
        &self,
        app: &App,
        origins: &[String],
        providers: &[AppProvider],
        key_hash: &str,
    ) -> Result<(), StoreError> {
        with_writer!(self, (app, origins, providers, key_hash), |pool| {
            let mut tx = pool.begin().await.db()?;
            sqlx::query(INSERT_APP)
                .bind(&app.id)
                .bind(&app.name)
                .bind(app.created_at)
                .execute(&mut *tx)
                .await
                .db()?;
            for origin in origins {
                sqlx::query(INSERT_ORIGIN)
                    .bind(&app.id)
                    .bind(origin)
                    .execute(&mut *tx)
                    .await
                    .db()?;
            }
            for provider in providers {
                sqlx::query(PUT_PROVIDER)
                    .bind(&app.id)
                    .bind(&provider.name)
                    .bind(&provider.kind)
                    .bind(&provider.issuer)
                    .bind(&provider.client_id)
                    .execute(&mut *tx)
                    .await
                    .db()?;
            }
            sqlx::query(INSERT_KEY)
                .bind(key_hash)
                .bind(&app.id)
                .bind(app.created_at)
                .execute(&mut *tx)
                .await
                .db()?;
            tx.commit().await.db()
        })
    }

    /// Creates an app. `Conflict` if the id is taken.
    pub async fn create_app(&self, app: &App) -> Result<(), StoreError> {
        with_writer!(self, (app), |pool| sqlx::query(INSERT_APP)
            .bind(&app.id)
            .bind(&app.name)
            .bind(app.created_at)
            .execute(pool)
            .await
            .map(|_| ())
            .db())
    }

    /// The app with this id (administration; not reachable from a user's request).
    pub async fn get_app(&self, id: &str) -> Result<App, StoreError> {
        const SQL: &str = "SELECT id, name, created_at FROM apps WHERE id = $1";
        with_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(id)
            .fetch_one(pool)
            .await
            .db())
    }

    /// Every app, oldest first.
    pub async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        const SQL: &str = "SELECT id, name, created_at FROM apps ORDER BY created_at, id";
        with_pool!(self, |pool| sqlx::query_as(SQL).fetch_all(pool).await.db())
    }

    /// Adds a key (its SHA-256 hex, hashed by the caller) to an app. `NotFound` if the app
    /// does not exist, `Conflict` if the hash is already stored.
    pub async fn add_app_key(
        &self,
        app_id: &str,
        key_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        with_writer!(self, (app_id, key_hash, now), |pool| sqlx::query(
            INSERT_KEY
        )
        .bind(key_hash)
        .bind(app_id)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
        .db())
    }

    /// Adds `new_key_hash` and revokes every other live key of the app, atomically.
    pub async fn rotate_app_key(
        &self,
        app_id: &str,
        new_key_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        const INSERT: &str =
            "INSERT INTO app_keys (key_hash, app_id, created_at) VALUES ($1, $2, $3)";
        const REVOKE: &str = "UPDATE app_keys SET revoked_at = $3 \
             WHERE app_id = $2 AND key_hash <> $1 AND revoked_at IS NULL";
        with_writer!(self, (app_id, new_key_hash, now), |pool| {
            let mut tx = pool.begin().await.db()?;
            for sql in [INSERT, REVOKE] {
                sqlx::query(sql)
                    .bind(&new_key_hash)
                    .bind(&app_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .db()?;
            }
            tx.commit().await.db()
        })
    }

    /// Revokes one key of an app. `NotFound` if the app has no such live key.
    pub async fn revoke_app_key(
        &self,
        app_id: &str,
        key_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE app_keys SET revoked_at = $3 \
             WHERE key_hash = $1 AND app_id = $2 AND revoked_at IS NULL";
        let n = execute_write!(self, SQL, (app_id, key_hash, now), [key_hash, app_id, now])?;
        found(n)
    }

    /// An app's keys (live and revoked), oldest first.
    pub async fn list_app_keys(&self, app_id: &str) -> Result<Vec<AppKey>, StoreError> {
        const SQL: &str = "SELECT key_hash, app_id, created_at, revoked_at FROM app_keys \
             WHERE app_id = $1 ORDER BY created_at, key_hash";
        with_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(app_id)
            .fetch_all(pool)
            .await
            .db())
    }

    /// The app a live (unrevoked) key belongs to, by the key's hash. `NotFound` for an
    /// unknown or revoked key.
    pub async fn app_for_key(&self, key_hash: &str) -> Result<App, StoreError> {
        const SQL: &str = "SELECT a.id, a.name, a.created_at FROM app_keys k \
             JOIN apps a ON a.id = k.app_id WHERE k.key_hash = $1 AND k.revoked_at IS NULL";
        with_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(key_hash)
            .fetch_one(pool)
            .await
            .db())
    }

    /// Allows an origin (e.g. `https://app.example`) for an app; adding it twice is fine.
    /// `NotFound` if the app does not exist.
    pub async fn add_app_origin(&self, app_id: &str, origin: &str) -> Result<(), StoreError> {
        with_writer!(self, (app_id, origin), |pool| sqlx::query(INSERT_ORIGIN)
            .bind(app_id)
            .bind(origin)
            .execute(pool)
            .await
            .map(|_| ())
            .db())
    }

    /// Removes an allowed origin. `NotFound` if it was not allowed.
    pub async fn remove_app_origin(&self, app_id: &str, origin: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM app_origins WHERE app_id = $1 AND origin = $2";
        let n = execute_write!(self, SQL, (app_id, origin), [app_id, origin])?;
        found(n)
    }

    /// An app's allowed origins, sorted.
    pub async fn list_app_origins(&self, app_id: &str) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT origin FROM app_origins WHERE app_id = $1 ORDER BY origin";
        with_pool!(self, |pool| sqlx::query_scalar(SQL)
            .bind(app_id)
            .fetch_all(pool)
            .await
            .db())
    }

    /// Whether the app allows this exact origin.
    pub async fn app_allows_origin(&self, app_id: &str, origin: &str) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT origin FROM app_origins WHERE app_id = $1 AND origin = $2";
        let row: Option<String> = with_pool!(self, |pool| sqlx::query_scalar(SQL)
            .bind(app_id)
            .bind(origin)
            .fetch_optional(pool)
            .await
            .db())?;
        Ok(row.is_some())
    }

    /// Whether any app has registered `origin`: what a CORS preflight, which names no
    /// app, can be answered from. One query, however many apps there are.
    pub async fn origin_registered_anywhere(&self, origin: &str) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT origin FROM app_origins WHERE origin = $1 LIMIT 1";
        let row: Option<String> = with_pool!(self, |pool| sqlx::query_scalar(SQL)
            .bind(origin)
            .fetch_optional(pool)
            .await
            .db())?;
        Ok(row.is_some())
    }

    /// Adds an identity provider to an app, or replaces the one with the same name.
    /// `NotFound` if the app does not exist.
    pub async fn put_app_provider(&self, provider: &AppProvider) -> Result<(), StoreError> {
        with_writer!(self, (provider), |pool| sqlx::query(PUT_PROVIDER)
            .bind(&provider.app_id)
            .bind(&provider.name)
            .bind(&provider.kind)
            .bind(&provider.issuer)
            .bind(&provider.client_id)
            .execute(pool)
            .await
            .map(|_| ())
            .db())
    }

    /// One of an app's identity providers, by name.
    pub async fn get_app_provider(
        &self,
        app_id: &str,
        name: &str,
    ) -> Result<AppProvider, StoreError> {
        const SQL: &str = "SELECT app_id, name, kind, issuer, client_id FROM app_providers \
             WHERE app_id = $1 AND name = $2";
        with_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(app_id)
            .bind(name)
            .fetch_one(pool)
            .await
            .db())
    }

    /// An app's identity providers, by name.
    pub async fn list_app_providers(&self, app_id: &str) -> Result<Vec<AppProvider>, StoreError> {
        const SQL: &str = "SELECT app_id, name, kind, issuer, client_id FROM app_providers \
             WHERE app_id = $1 ORDER BY name";
        with_pool!(self, |pool| sqlx::query_as(SQL)
            .bind(app_id)
            .fetch_all(pool)
            .await
            .db())
    }

    /// Removes an identity provider from an app. `NotFound` if it has none by that name.
    pub async fn remove_app_provider(&self, app_id: &str, name: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM app_providers WHERE app_id = $1 AND name = $2";
        let n = execute_write!(self, SQL, (app_id, name), [app_id, name])?;
        found(n)
    }
}
