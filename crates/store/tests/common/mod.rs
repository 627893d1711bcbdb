//! A fresh, migrated database per test: an SQLite file in a temporary directory, or a
//! PostgreSQL database with a unique name created through `KEYSTEAD_TEST_POSTGRES_URL`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use keystead_store::Store;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

pub const POSTGRES_URL_VAR: &str = "KEYSTEAD_TEST_POSTGRES_URL";

pub struct TestDb {
    pub store: Store,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("keystead.db").display()
        );
        let store = Store::connect(&url).await.expect("connect to SQLite");
        store.migrate().await.expect("migrate SQLite");
        TestDb {
            store,
            cleanup: Cleanup::Sqlite { _dir: dir },
        }
    }

    pub async fn postgres() -> TestDb {
        let admin_url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
            panic!(
                "{POSTGRES_URL_VAR} is not set, so the PostgreSQL half of the store suite cannot \
                 run. Run `scripts/test`, which starts PostgreSQL, or start one yourself: \
                 `source scripts/lib/postgres.sh && start_test_postgres && \
                 trap stop_test_postgres EXIT` and then `cargo test -p keystead-store`."
            )
        });
        let name = unique_database_name();
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("connect to {POSTGRES_URL_VAR}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let store = Store::connect(&database_url(&admin_url, &name))
            .await
            .expect("connect to PostgreSQL");
        store.migrate().await.expect("migrate PostgreSQL");
        TestDb {
            store,
            cleanup: Cleanup::Postgres { admin_url, name },
        }
    }

    /// Another store on the same database, as a second server would open it.
    pub async fn second_server(&self) -> Store {
        let url = match &self.cleanup {
            Cleanup::Sqlite { _dir } => format!(
                "sqlite://{}?mode=rwc",
                _dir.path().join("keystead.db").display()
            ),
            Cleanup::Postgres { admin_url, name } => database_url(admin_url, name),
        };
        Store::connect(&url).await.expect("connect a second store")
    }

    /// Closes the store and drops the PostgreSQL database (a failed test leaves its
    /// database behind in the throwaway cluster, for inspection).
    pub async fn finish(self) {
        self.store.close().await;
        if let Cleanup::Postgres { admin_url, name } = self.cleanup {
            let mut admin = PgConnection::connect(&admin_url).await.expect("reconnect");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .expect("drop test database");
            admin.close().await.ok();
        }
    }
}

fn unique_database_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "ks_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `admin_url` with its database name replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{authority}/{name}?{query}"),
        None => format!("{authority}/{name}"),
    }
}

#[test]
fn database_url_replaces_only_the_name() {
    assert_eq!(
        database_url("postgres://postgres@127.0.0.1:55432/keystead_test", "x"),
        "postgres://postgres@127.0.0.1:55432/x"
    );
    assert_eq!(
        database_url("postgres://u:p@h:1/db?sslmode=disable", "x"),
        "postgres://u:p@h:1/x?sslmode=disable"
    );
    assert_eq!(database_url("postgres://h:1", "x"), "postgres://h:1/x");
}
