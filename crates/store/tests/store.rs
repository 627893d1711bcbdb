//! The store suite, written once (`cases`) and run on SQLite and on PostgreSQL.
//!
//! The PostgreSQL half needs `KEYSTEAD_TEST_POSTGRES_URL` (set by `scripts/test`, or by
//! `source scripts/lib/postgres.sh && start_test_postgres`); without it those tests fail.

mod common;

use common::TestDb;

/// Two servers on one PostgreSQL database: a sender's lock taken by one holds the other
/// off until released, or until dropped unreleased (its session closed); other senders
/// are not held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_sender_locks_hold_across_servers() {
    use std::time::Duration;
    let db = TestDb::postgres().await;
    let (a, b) = (db.store.clone(), db.second_server().await);
    let sender = "0x00000000000000000000000000000000000000aa";
    let held = a.lock_sender(31337, sender).await.unwrap();
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { b.lock_sender(31337, sender).await.unwrap() }
    });
    // Another account, or the same address on another chain, is free meanwhile.
    let other = b.lock_sender(31337, "0x00000000000000000000000000000000000000bb");
    tokio::time::timeout(Duration::from_secs(5), other)
        .await
        .expect("another sender is not held up")
        .unwrap()
        .release()
        .await;
    let other_chain = tokio::time::timeout(Duration::from_secs(5), b.lock_sender(1, sender));
    other_chain
        .await
        .expect("another chain")
        .unwrap()
        .release()
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the second server waits for the first"
    );
    held.release().await;
    let taken = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("taken once released")
        .unwrap();
    // Dropped without release (a cancelled send): the session closes and frees it.
    drop(taken);
    let again = tokio::time::timeout(Duration::from_secs(5), a.lock_sender(31337, sender));
    again
        .await
        .expect("freed by the closed session")
        .unwrap()
        .release()
        .await;
    // A waiter cancelled while waiting leaves nothing held behind.
    let held = a.lock_sender(31337, sender).await.unwrap();
    let cancelled = tokio::time::timeout(Duration::from_millis(200), b.lock_sender(31337, sender));
    assert!(cancelled.await.is_err(), "still held");
    held.release().await;
    let after = tokio::time::timeout(Duration::from_secs(5), a.lock_sender(31337, sender));
    after
        .await
        .expect("the cancelled waiter holds nothing")
        .unwrap()
        .release()
        .await;
    b.close().await;
    db.finish().await;
}

/// For each case, a test on SQLite (`sqlite::NAME`) and one on PostgreSQL
/// (`postgres::NAME`), each against a fresh, migrated database.
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = crate::TestDb::sqlite().await;
                    crate::cases::$name(db.store.clone()).await;
                    db.finish().await;
                }
            )*
        }
        /// SQLite as `keystead serve` opens it: claimed by one server, signing's reads
        /// answered from memory where they can be.
        mod sole_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = crate::TestDb::sqlite().await;
                    let store = db.store.clone().become_sole_server().unwrap();
                    crate::cases::$name(store).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = crate::TestDb::postgres().await;
                    crate::cases::$name(db.store.clone()).await;
                    db.finish().await;
                }
            )*
        }
    };
}

store_tests!(
    migrations_are_idempotent,
    app_keys_origins_providers_round_trip,
    identities_lead_to_users,
    concurrent_first_logins_make_one_user,
    one_wallet_per_user_under_concurrent_creates,
    wallet_record_compare_and_swap,
    accounts_round_trip,
    apps_are_isolated,
    sessions_revoke,
    refresh_rotation_and_reuse,
    concurrent_refresh_rotation_succeeds_once,
    concurrent_nonces_are_distinct_and_consecutive,
    chain_floor_raises_the_next_nonce,
    idempotent_insert_returns_existing_tx,
    outbox_pending_confirm_transitions,
    records_round_trip_arbitrary_bytes,
    wallet_with_accounts_is_all_or_nothing,
    missing_accounts_are_added_once,
    released_nonce_is_reused_only_when_last,
    app_with_origins_providers_and_key_is_all_or_nothing,
    oauth_logins_are_single_use_and_expire,
    user_accounts_are_found_only_for_their_owner,
    concurrent_writes_are_durable_when_answered_and_fail_alone,
    mixed_concurrent_writes_fail_alone,
);

#[tokio::test]
async fn sqlite_in_memory_works() {
    let store = keystead_store::Store::connect("sqlite::memory:")
        .await
        .unwrap();
    assert_eq!(store.backend(), keystead_store::Backend::Sqlite);
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    cases::seed_app(&store, "app_mem").await;
    // The single connection keeps the database alive across calls.
    assert_eq!(store.get_app("app_mem").await.unwrap().name, "app app_mem");
    store.close().await;
}

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    // No `mode=rwc`: the file is created anyway.
    let store = keystead_store::Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    cases::seed_app(&store, "app_wal").await;
    assert!(path.exists());
    assert!(
        dir.path().join("new.db-wal").exists(),
        "journal mode is WAL"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_migrations_of_one_sqlite_file_all_succeed() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display());
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                // A pool each, as separate processes would have.
                let store = keystead_store::Store::connect(&url).await.unwrap();
                let migrated = store.migrate().await;
                store.close().await;
                migrated
            }));
        }
        for task in tasks {
            task.await
                .unwrap()
                .expect("every concurrent migration succeeds");
        }
    }
}

/// One server per SQLite file: a second claim fails, with a message that says why, until
/// every clone of the first store is gone. Other stores (the CLI's) open it meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_sqlite_file_is_refused_until_the_first_is_gone() {
    let db = TestDb::sqlite().await;
    let first = db.store.clone().become_sole_server().unwrap();
    let clone = first.clone();
    let refused = db.second_server().await.become_sole_server().unwrap_err();
    let keystead_store::StoreError::Database(message) = refused else {
        panic!("{refused:?}");
    };
    assert!(message.contains("another keystead server"), "{message}");
    assert!(message.contains("keystead.db-server.lock"), "{message}");
    cases::seed_app(&db.second_server().await, "app_cli").await;
    drop(first);
    assert!(
        db.second_server().await.become_sole_server().is_err(),
        "a clone still holds it"
    );
    drop(clone);
    db.second_server().await.become_sole_server().unwrap();
    db.finish().await;
}

/// A sole server answers signing's read from memory: a record changed behind its back
/// (what the claim exists to prevent) is not seen, and its own next write of that record
/// loses the compare-and-swap, after which it reads the database again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sole_server_reads_records_from_memory_and_rereads_after_a_lost_swap() {
    let db = TestDb::sqlite().await;
    let sole = db.store.clone().become_sole_server().unwrap();
    let (user, wallet, account) = cases::seed_owner(&sole, "app_a").await;
    let read = |store: keystead_store::Store| {
        let (user, account) = (user.clone(), account.clone());
        async move {
            let found = store
                .get_user_account_with_record("app_a", &user, &account)
                .await
                .unwrap();
            (found.record.to_vec(), found.record_version)
        }
    };
    let first = read(sole.clone()).await;
    let behind = db.second_server().await;
    behind
        .update_wallet_record(
            "app_a",
            &wallet,
            first.1,
            b"changed elsewhere",
            first.1 + 1,
            1,
        )
        .await
        .unwrap();
    assert_eq!(read(sole.clone()).await, first, "answered from memory");
    assert_eq!(
        sole.update_wallet_record("app_a", &wallet, first.1, b"mine", first.1 + 1, 2)
            .await,
        Err(keystead_store::StoreError::Conflict)
    );
    assert_eq!(
        read(sole.clone()).await,
        (b"changed elsewhere".to_vec(), first.1 + 1),
        "read again after the lost swap"
    );
    // Its own writes are what it answers next.
    sole.update_wallet_record("app_a", &wallet, first.1 + 1, b"mine", first.1 + 2, 3)
        .await
        .unwrap();
    assert_eq!(read(sole.clone()).await, (b"mine".to_vec(), first.1 + 2));
    db.finish().await;
}

#[tokio::test]
async fn unsupported_url_is_refused() {
    let err = keystead_store::Store::connect("mysql://localhost/x")
        .await
        .unwrap_err();
    assert!(
        matches!(err, keystead_store::StoreError::Database(_)),
        "{err:?}"
    );
}

mod cases {
    use keystead_store::{
        AccountRow, App, AppProvider, Identity, InsertTx, LoginUser, Session, Store, StoreError,
        TxRow, TxStatus, User, WalletRow,
    };

    const T0: i64 = 1_700_000_000;

    pub async fn seed_app(store: &Store, id: &str) -> App {
        let app = App {
            id: id.into(),
            name: format!("app {id}"),
            created_at: T0,
        };
        store.create_app(&app).await.unwrap();
        app
    }

    async fn seed_user(store: &Store, app_id: &str, id: &str) -> User {
        let user = User {
            id: id.into(),
            app_id: app_id.into(),
            email: Some(format!("{id}@example.com")),
            created_at: T0,
        };
        store.create_user(&user).await.unwrap();
        user
    }

    fn wallet(id: &str, app_id: &str, user_id: &str, record: &[u8]) -> WalletRow {
        WalletRow {
            id: id.into(),
            app_id: app_id.into(),
            user_id: user_id.into(),
            record: record.to_vec(),
            record_version: 1,
            created_at: T0,
            updated_at: T0,
        }
    }

    fn account(id: &str, wallet_id: &str, app_id: &str, network: &str, idx: u32) -> AccountRow {
        AccountRow {
            id: id.into(),
            wallet_id: wallet_id.into(),
            app_id: app_id.into(),
            network: network.into(),
            family: "evm".into(),
            address: format!("0x{idx:040x}"),
            path: format!("m/44'/60'/0'/0/{idx}"),
            idx,
            created_at: T0,
        }
    }

    /// An app with a user, a wallet and an EVM account: (user, wallet, account) ids.
    pub async fn seed_owner(store: &Store, app_id: &str) -> (String, String, String) {
        seed_app(store, app_id).await;
        let user = format!("usr_{app_id}");
        let wal = format!("wal_{app_id}");
        let acc = format!("acc_{app_id}");
        seed_user(store, app_id, &user).await;
        store
            .create_wallet(&wallet(&wal, app_id, &user, b"rec"))
            .await
            .unwrap();
        store
            .create_account(&account(&acc, &wal, app_id, "anvil", 0))
            .await
            .unwrap();
        (user, wal, acc)
    }

    fn tx(id: &str, app_id: &str, user_id: &str, account_id: &str, nonce: u64) -> TxRow {
        TxRow {
            id: id.into(),
            app_id: app_id.into(),
            user_id: user_id.into(),
            account_id: account_id.into(),
            network: "anvil".into(),
            chain_id: 31337,
            from_address: "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266".into(),
            nonce,
            hash: format!("0x{nonce:064x}"),
            raw: vec![0x02, 0xf8, nonce as u8],
            status: TxStatus::Signed,
            block_number: None,
            error: None,
            idempotency_key: None,
            request_hash: None,
            created_at: T0 + nonce as i64,
            updated_at: T0 + nonce as i64,
        }
    }

    fn session(id: &str, app_id: &str, user_id: &str, expires_at: i64) -> Session {
        Session {
            id: id.into(),
            app_id: app_id.into(),
            user_id: user_id.into(),
            created_at: T0,
            expires_at,
            revoked_at: None,
        }
    }

    /// Many writes at once (on SQLite: grouped into shared commits by the single writer):
    /// each is readable the moment it is answered, and one that fails — a duplicate
    /// refresh-token hash, after its session row was already inserted — leaves nothing
    /// and does not disturb the writes committed beside it.
    pub async fn concurrent_writes_are_durable_when_answered_and_fail_alone(store: Store) {
        seed_app(&store, "app_grp").await;
        seed_user(&store, "app_grp", "usr_grp").await;
        let expires = T0 + 3_600;
        let mut tasks = Vec::new();
        for i in 0..120 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                // Every fourth session reuses hash 0 (taken by session 0, or by a twin).
                let hash = if i % 4 == 0 {
                    "hash_0".to_string()
                } else {
                    format!("hash_{i}")
                };
                let s = session(&format!("ses_grp_{i}"), "app_grp", "usr_grp", expires);
                let created = store.create_session(&s, &hash).await;
                if created.is_ok() {
                    // Answered: so readable now, through any connection.
                    let found = store.get_session("app_grp", &s.id).await;
                    assert_eq!(found.as_ref().map(|f| &f.id), Ok(&s.id), "session {i}");
                }
                (i, created)
            }));
        }
        let mut ok = 0;
        let mut conflicts = Vec::new();
        for task in tasks {
            let (i, created) = task.await.unwrap();
            match created {
                Ok(()) => ok += 1,
                Err(StoreError::Conflict) => conflicts.push(i),
                Err(e) => panic!("session {i}: {e:?}"),
            }
        }
        // 90 distinct hashes plus exactly one winner of hash_0.
        assert_eq!(ok, 91);
        assert_eq!(conflicts.len(), 29);
        for i in conflicts {
            assert_eq!(
                store.get_session("app_grp", &format!("ses_grp_{i}")).await,
                Err(StoreError::NotFound),
                "the refused session {i} left no row"
            );
        }
    }

    /// Writes of one statement and of several, failing and not, in the same groups: a
    /// wallet whose account insert fails (after the wallet row went in) leaves neither,
    /// a user with a taken id is refused, and every other write is stored whole.
    pub async fn mixed_concurrent_writes_fail_alone(store: Store) {
        seed_app(&store, "app_mix").await;
        for i in 0..30 {
            seed_user(&store, "app_mix", &format!("usr_mix_{i}")).await;
        }
        let owner = wallet("wal_owner", "app_mix", "usr_mix_0", b"rec");
        let taken = account("acc_taken", "wal_owner", "app_mix", "local", 0);
        store
            .create_wallet_with_accounts(&owner, &[taken])
            .await
            .unwrap();
        let mut wallets = Vec::new();
        let mut users = Vec::new();
        for i in 1..30 {
            let wallet_store = store.clone();
            wallets.push(tokio::spawn(async move {
                // Every third wallet's second account takes an id already used.
                let id = format!("wal_mix_{i}");
                let first = account(&format!("acc_mix_{i}"), &id, "app_mix", "local", 0);
                let second_id = if i % 3 == 0 {
                    "acc_taken".to_string()
                } else {
                    format!("acc_mix_{i}_b")
                };
                let second = account(&second_id, &id, "app_mix", "base", 0);
                let w = wallet(&id, "app_mix", &format!("usr_mix_{i}"), b"rec");
                (
                    i,
                    wallet_store
                        .create_wallet_with_accounts(&w, &[first, second])
                        .await,
                )
            }));
            let user_store = store.clone();
            users.push(tokio::spawn(async move {
                // Every fourth user reuses an existing id.
                let id = if i % 4 == 0 {
                    "usr_mix_1".to_string()
                } else {
                    format!("usr_new_{i}")
                };
                let user = User {
                    id,
                    app_id: "app_mix".into(),
                    email: None,
                    created_at: T0,
                };
                (i, user_store.create_user(&user).await)
            }));
        }
        for task in wallets {
            let (i, created) = task.await.unwrap();
            let stored = store
                .wallet_for_user("app_mix", &format!("usr_mix_{i}"))
                .await;
            let first = store.get_account("app_mix", &format!("acc_mix_{i}")).await;
            if i % 3 == 0 {
                assert_eq!(created, Err(StoreError::Conflict), "wallet {i}");
                assert_eq!(stored, Ok(None), "refused wallet {i} left no row");
                assert_eq!(first, Err(StoreError::NotFound), "nor its first account");
            } else {
                assert_eq!(created, Ok(()), "wallet {i}");
                assert!(stored.unwrap().is_some(), "wallet {i} stored");
                assert_eq!(
                    store
                        .list_accounts("app_mix", &format!("wal_mix_{i}"))
                        .await
                        .unwrap()
                        .len(),
                    2
                );
            }
        }
        for task in users {
            let (i, created) = task.await.unwrap();
            if i % 4 == 0 {
                assert_eq!(created, Err(StoreError::Conflict), "user {i}");
            } else {
                assert_eq!(created, Ok(()), "user {i}");
                assert!(
                    store
                        .get_user("app_mix", &format!("usr_new_{i}"))
                        .await
                        .is_ok()
                );
            }
        }
    }

    pub async fn migrations_are_idempotent(store: Store) {
        // The harness migrated once already.
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
        seed_app(&store, "app_m").await;
        store.migrate().await.unwrap();
        assert_eq!(store.list_apps().await.unwrap().len(), 1);
    }

    pub async fn app_keys_origins_providers_round_trip(store: Store) {
        let app = seed_app(&store, "app_a").await;
        assert_eq!(store.get_app("app_a").await.unwrap(), app);
        assert_eq!(store.create_app(&app).await, Err(StoreError::Conflict));
        assert_eq!(store.get_app("app_zz").await, Err(StoreError::NotFound));
        seed_app(&store, "app_b").await;
        let ids: Vec<_> = store
            .list_apps()
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(ids, ["app_a", "app_b"]);

        // Keys: stored by hash, looked up while live, rotated atomically.
        store.add_app_key("app_a", "hash1", T0).await.unwrap();
        assert_eq!(store.app_for_key("hash1").await.unwrap(), app);
        assert_eq!(
            store.add_app_key("app_b", "hash1", T0).await,
            Err(StoreError::Conflict)
        );
        assert_eq!(
            store.add_app_key("app_zz", "hash9", T0).await,
            Err(StoreError::NotFound)
        );
        store
            .rotate_app_key("app_a", "hash2", T0 + 5)
            .await
            .unwrap();
        assert_eq!(store.app_for_key("hash1").await, Err(StoreError::NotFound));
        assert_eq!(store.app_for_key("hash2").await.unwrap().id, "app_a");
        let keys = store.list_app_keys("app_a").await.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].key_hash, "hash1");
        assert_eq!(keys[0].revoked_at, Some(T0 + 5));
        assert_eq!(keys[1].revoked_at, None);
        assert_eq!(
            store.revoke_app_key("app_b", "hash2", T0).await,
            Err(StoreError::NotFound)
        );
        store
            .revoke_app_key("app_a", "hash2", T0 + 6)
            .await
            .unwrap();
        assert_eq!(store.app_for_key("hash2").await, Err(StoreError::NotFound));
        assert_eq!(
            store.rotate_app_key("app_zz", "hash3", T0).await,
            Err(StoreError::NotFound)
        );

        // Origins: a set per app.
        store
            .add_app_origin("app_a", "https://b.example")
            .await
            .unwrap();
        store
            .add_app_origin("app_a", "https://a.example")
            .await
            .unwrap();
        store
            .add_app_origin("app_a", "https://a.example")
            .await
            .unwrap();
        assert_eq!(
            store.list_app_origins("app_a").await.unwrap(),
            ["https://a.example", "https://b.example"]
        );
        assert!(
            store
                .app_allows_origin("app_a", "https://a.example")
                .await
                .unwrap()
        );
        assert!(
            !store
                .app_allows_origin("app_b", "https://a.example")
                .await
                .unwrap()
        );
        // A preflight names no app: the origin counts if any app registered it.
        assert!(
            store
                .origin_registered_anywhere("https://a.example")
                .await
                .unwrap()
        );
        assert!(
            !store
                .origin_registered_anywhere("https://evil.example")
                .await
                .unwrap()
        );
        store
            .remove_app_origin("app_a", "https://b.example")
            .await
            .unwrap();
        assert_eq!(
            store.remove_app_origin("app_a", "https://b.example").await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store.add_app_origin("app_zz", "https://x").await,
            Err(StoreError::NotFound)
        );

        // Providers: put replaces by name.
        let mut google = AppProvider {
            app_id: "app_a".into(),
            name: "google".into(),
            kind: "oidc".into(),
            issuer: "https://accounts.google.com".into(),
            client_id: "client-1".into(),
        };
        store.put_app_provider(&google).await.unwrap();
        google.client_id = "client-2".into();
        store.put_app_provider(&google).await.unwrap();
        assert_eq!(
            store.get_app_provider("app_a", "google").await.unwrap(),
            google
        );
        assert_eq!(
            store.get_app_provider("app_b", "google").await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store.list_app_providers("app_a").await.unwrap(),
            [google.clone()]
        );
        let bad = AppProvider {
            kind: "saml".into(),
            name: "x".into(),
            ..google.clone()
        };
        assert!(matches!(
            store.put_app_provider(&bad).await,
            Err(StoreError::Database(_))
        ));
        store.remove_app_provider("app_a", "google").await.unwrap();
        assert!(store.list_app_providers("app_a").await.unwrap().is_empty());
    }

    pub async fn identities_lead_to_users(store: Store) {
        seed_app(&store, "app_a").await;
        seed_app(&store, "app_b").await;
        let user = User {
            id: "usr_1".into(),
            app_id: "app_a".into(),
            email: None,
            created_at: T0,
        };
        store
            .create_user_with_identity(&user, "google", "sub-1")
            .await
            .unwrap();
        assert_eq!(
            store
                .find_user_by_identity("app_a", "google", "sub-1")
                .await
                .unwrap(),
            Some(user.clone())
        );
        assert_eq!(
            store
                .find_user_by_identity("app_a", "google", "sub-2")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .find_user_by_identity("app_b", "google", "sub-1")
                .await
                .unwrap(),
            None
        );

        // At login: the same user, and whether they have a wallet yet (only in their app).
        let login = |app: &'static str| {
            let store = store.clone();
            async move { store.find_login_user(app, "google", "sub-1").await.unwrap() }
        };
        assert_eq!(
            login("app_a").await,
            Some(LoginUser {
                user: user.clone(),
                has_wallet: false
            })
        );
        assert_eq!(login("app_b").await, None);
        store
            .create_wallet(&wallet("wal_login", "app_a", "usr_1", b"rec"))
            .await
            .unwrap();
        assert_eq!(
            login("app_a").await,
            Some(LoginUser {
                user: user.clone(),
                has_wallet: true
            })
        );

        let second = Identity {
            app_id: "app_a".into(),
            provider: "github".into(),
            subject: "42".into(),
            user_id: "usr_1".into(),
        };
        store.link_identity(&second).await.unwrap();
        assert_eq!(
            store.link_identity(&second).await,
            Err(StoreError::Conflict)
        );
        assert_eq!(
            store
                .find_user_by_identity("app_a", "github", "42")
                .await
                .unwrap()
                .map(|u| u.id),
            Some("usr_1".to_string())
        );
        assert_eq!(
            store.list_identities("app_a", "usr_1").await.unwrap().len(),
            2
        );

        // The same (provider, subject) is a different identity in another app, and an
        // identity cannot point at another app's user.
        let other = seed_user(&store, "app_b", "usr_b").await;
        let cross = Identity {
            user_id: "usr_1".into(),
            app_id: "app_b".into(),
            ..second.clone()
        };
        assert_eq!(store.link_identity(&cross).await, Err(StoreError::NotFound));
        let same_sub_b = Identity {
            user_id: other.id.clone(),
            app_id: "app_b".into(),
            ..second
        };
        store.link_identity(&same_sub_b).await.unwrap();

        store
            .set_user_email("app_a", "usr_1", Some("a@example.com"))
            .await
            .unwrap();
        assert_eq!(
            store
                .get_user("app_a", "usr_1")
                .await
                .unwrap()
                .email
                .as_deref(),
            Some("a@example.com")
        );
        assert_eq!(
            store.set_user_email("app_b", "usr_1", None).await,
            Err(StoreError::NotFound)
        );
        // A user with an existing id, or in an app that does not exist.
        assert_eq!(store.create_user(&user).await, Err(StoreError::Conflict));
        let orphan = User {
            id: "usr_9".into(),
            app_id: "app_zz".into(),
            ..user
        };
        assert_eq!(store.create_user(&orphan).await, Err(StoreError::NotFound));
    }

    pub async fn concurrent_first_logins_make_one_user(store: Store) {
        seed_app(&store, "app_a").await;
        let mut tasks = Vec::new();
        for i in 0..10 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let user = User {
                    id: format!("usr_{i}"),
                    app_id: "app_a".into(),
                    email: None,
                    created_at: T0,
                };
                store
                    .create_user_with_identity(&user, "google", "sub-1")
                    .await
            }));
        }
        let mut ok = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => ok += 1,
                Err(e) => assert_eq!(e, StoreError::Conflict),
            }
        }
        assert_eq!(ok, 1);
        let winner = store
            .find_user_by_identity("app_a", "google", "sub-1")
            .await
            .unwrap();
        let winner = winner.expect("one user");
        // The losers' user rows were rolled back with their identity.
        for i in 0..10 {
            let id = format!("usr_{i}");
            let found = store.get_user("app_a", &id).await;
            assert_eq!(found.is_ok(), id == winner.id, "{id}");
        }
    }

    pub async fn one_wallet_per_user_under_concurrent_creates(store: Store) {
        seed_app(&store, "app_a").await;
        seed_user(&store, "app_a", "usr_1").await;
        let mut tasks = Vec::new();
        for i in 0..10 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let w = wallet(&format!("wal_{i}"), "app_a", "usr_1", &[i as u8]);
                store.create_wallet(&w).await.map(|()| w)
            }));
        }
        let mut created = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(w) => created.push(w),
                Err(e) => assert_eq!(e, StoreError::Conflict),
            }
        }
        assert_eq!(created.len(), 1, "exactly one create wins");
        let stored = store.wallet_for_user("app_a", "usr_1").await.unwrap();
        assert_eq!(stored.as_ref(), Some(&created[0]));
        assert_eq!(store.wallet_for_user("app_a", "usr_2").await.unwrap(), None);
        // A wallet for a user who does not exist.
        let w = wallet("wal_x", "app_a", "usr_nobody", b"");
        assert_eq!(store.create_wallet(&w).await, Err(StoreError::NotFound));
    }

    pub async fn wallet_record_compare_and_swap(store: Store) {
        seed_app(&store, "app_a").await;
        seed_user(&store, "app_a", "usr_1").await;
        store
            .create_wallet(&wallet("wal_1", "app_a", "usr_1", b"v1"))
            .await
            .unwrap();

        store
            .update_wallet_record("app_a", "wal_1", 1, b"v2", 2, T0 + 10)
            .await
            .unwrap();
        let w = store.get_wallet("app_a", "wal_1").await.unwrap();
        assert_eq!(
            (w.record.as_slice(), w.record_version, w.updated_at),
            (&b"v2"[..], 2, T0 + 10)
        );
        assert_eq!(w.created_at, T0);

        // A stale version loses and changes nothing.
        assert_eq!(
            store
                .update_wallet_record("app_a", "wal_1", 1, b"stale", 3, T0 + 11)
                .await,
            Err(StoreError::Conflict)
        );
        assert_eq!(
            store.get_wallet("app_a", "wal_1").await.unwrap().record,
            b"v2"
        );
        assert_eq!(
            store
                .update_wallet_record("app_a", "wal_9", 2, b"x", 3, T0)
                .await,
            Err(StoreError::NotFound)
        );

        // Concurrent swaps from the same version: exactly one wins.
        let mut tasks = Vec::new();
        for i in 0..10u8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .update_wallet_record("app_a", "wal_1", 2, &[i], 3, T0 + 20)
                    .await
                    .map(|()| i)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(i) => winners.push(i),
                Err(e) => assert_eq!(e, StoreError::Conflict),
            }
        }
        assert_eq!(winners.len(), 1);
        let w = store.get_wallet("app_a", "wal_1").await.unwrap();
        assert_eq!((w.record, w.record_version), (vec![winners[0]], 3));
    }

    pub async fn accounts_round_trip(store: Store) {
        let (_, wal, acc) = seed_owner(&store, "app_a").await;
        let second = account("acc_2", &wal, "app_a", "anvil", u32::MAX);
        store.create_account(&second).await.unwrap();
        let third = account("acc_3", &wal, "app_a", "base", 0);
        store.create_account(&third).await.unwrap();
        assert_eq!(store.get_account("app_a", "acc_2").await.unwrap(), second);
        let ids: Vec<_> = store
            .list_accounts("app_a", &wal)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(ids, [acc.as_str(), "acc_2", "acc_3"]);
        // The same (wallet, network, idx) twice.
        let dup = account("acc_4", &wal, "app_a", "anvil", 0);
        assert_eq!(store.create_account(&dup).await, Err(StoreError::Conflict));
        let orphan = account("acc_5", "wal_nope", "app_a", "anvil", 1);
        assert_eq!(
            store.create_account(&orphan).await,
            Err(StoreError::NotFound)
        );
    }

    pub async fn wallet_with_accounts_is_all_or_nothing(store: Store) {
        seed_app(&store, "app_a").await;
        seed_user(&store, "app_a", "usr_1").await;
        let w = wallet("wal_1", "app_a", "usr_1", b"rec");
        let a = account("acc_1", "wal_1", "app_a", "local", 0);
        let b = account("acc_2", "wal_1", "app_a", "base", 0);
        store
            .create_wallet_with_accounts(&w, &[a.clone(), b.clone()])
            .await
            .unwrap();
        let listed = store.list_accounts("app_a", "wal_1").await.unwrap();
        assert_eq!(listed, [b, a]);
        // A second wallet for the same user fails as a whole: neither it nor its
        // account is stored.
        let w2 = wallet("wal_2", "app_a", "usr_1", b"rec");
        let a2 = account("acc_3", "wal_2", "app_a", "local", 0);
        assert_eq!(
            store.create_wallet_with_accounts(&w2, &[a2]).await,
            Err(StoreError::Conflict)
        );
        assert_eq!(
            store.get_wallet("app_a", "wal_2").await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store.get_account("app_a", "acc_3").await,
            Err(StoreError::NotFound)
        );
        // A failing account insert rolls the wallet back too.
        seed_user(&store, "app_a", "usr_2").await;
        let w3 = wallet("wal_3", "app_a", "usr_2", b"rec");
        let taken = account("acc_1", "wal_3", "app_a", "local", 0);
        assert_eq!(
            store.create_wallet_with_accounts(&w3, &[taken]).await,
            Err(StoreError::Conflict)
        );
        assert_eq!(store.wallet_for_user("app_a", "usr_2").await, Ok(None));
    }

    pub async fn user_accounts_are_found_only_for_their_owner(store: Store) {
        let (user, _, acc) = seed_owner(&store, "app_a").await;
        let found = store.get_user_account("app_a", &user, &acc).await.unwrap();
        assert_eq!(found, store.get_account("app_a", &acc).await.unwrap());
        seed_user(&store, "app_a", "usr_other").await;
        assert_eq!(
            store.get_user_account("app_a", "usr_other", &acc).await,
            Err(StoreError::NotFound)
        );
        let (user_b, _, _) = seed_owner(&store, "app_b").await;
        assert_eq!(
            store.get_user_account("app_b", &user_b, &acc).await,
            Err(StoreError::NotFound)
        );

        // With the wallet's record and version, under the same ownership rules.
        let wallet = store.get_wallet("app_a", &found.wallet_id).await.unwrap();
        let with_record = store
            .get_user_account_with_record("app_a", &user, &acc)
            .await
            .unwrap();
        assert_eq!(*with_record.account, found);
        assert_eq!(*with_record.record, wallet.record[..]);
        assert_eq!(with_record.record_version, wallet.record_version);
        for (app, owner) in [("app_a", "usr_other"), ("app_b", user_b.as_str())] {
            assert_eq!(
                store.get_user_account_with_record(app, owner, &acc).await,
                Err(StoreError::NotFound)
            );
        }
    }

    pub async fn missing_accounts_are_added_once(store: Store) {
        let (_, wal, _) = seed_owner(&store, "app_a").await;
        let base = account("acc_b1", &wal, "app_a", "base", 0);
        assert_eq!(store.add_account_if_missing(&base).await, Ok(true));
        let again = account("acc_b2", &wal, "app_a", "base", 0);
        assert_eq!(store.add_account_if_missing(&again).await, Ok(false));
        assert_eq!(
            store.get_account("app_a", "acc_b2").await,
            Err(StoreError::NotFound)
        );
        assert_eq!(store.list_accounts("app_a", &wal).await.unwrap().len(), 2);
    }

    pub async fn released_nonce_is_reused_only_when_last(store: Store) {
        let addr = "0xabc";
        assert_eq!(store.reserve_nonce(1, addr, 0).await, Ok(0));
        assert_eq!(store.release_nonce(1, addr, 0).await, Ok(true));
        assert_eq!(store.reserve_nonce(1, addr, 0).await, Ok(0));
        assert_eq!(store.reserve_nonce(1, addr, 0).await, Ok(1));
        // Nonce 0 is no longer the last one handed out: it stays spent.
        assert_eq!(store.release_nonce(1, addr, 0).await, Ok(false));
        assert_eq!(store.reserve_nonce(1, addr, 0).await, Ok(2));
        // Never-reserved counters and other chains are untouched.
        assert_eq!(store.release_nonce(1, "0xnone", 0).await, Ok(false));
        assert_eq!(store.release_nonce(2, addr, 2).await, Ok(false));
        assert_eq!(store.reserve_nonce(1, addr, 0).await, Ok(3));
    }

    pub async fn app_with_origins_providers_and_key_is_all_or_nothing(store: Store) {
        let provider = |app_id: &str| AppProvider {
            app_id: app_id.into(),
            name: "google".into(),
            kind: "oidc".into(),
            issuer: "https://accounts.google.com".into(),
            client_id: "client".into(),
        };
        let app = |id: &str| App {
            id: id.into(),
            name: format!("app {id}"),
            created_at: T0,
        };
        let origins = vec!["https://a.example".to_string()];
        store
            .create_app_with(&app("app_x"), &origins, &[provider("app_x")], "hash_x")
            .await
            .unwrap();
        assert_eq!(store.app_for_key("hash_x").await.unwrap().id, "app_x");
        assert_eq!(store.list_app_origins("app_x").await.unwrap(), origins);
        assert_eq!(
            store.list_app_providers("app_x").await.unwrap(),
            [provider("app_x")]
        );
        // The key hash is taken: nothing of the second app is stored.
        assert_eq!(
            store
                .create_app_with(&app("app_y"), &origins, &[provider("app_y")], "hash_x")
                .await,
            Err(StoreError::Conflict)
        );
        assert_eq!(store.get_app("app_y").await, Err(StoreError::NotFound));
        assert!(store.list_app_origins("app_y").await.unwrap().is_empty());
        assert!(store.list_app_providers("app_y").await.unwrap().is_empty());
    }

    pub async fn oauth_logins_are_single_use_and_expire(store: Store) {
        seed_app(&store, "app_a").await;
        let login = |state: &str, expires_at: i64| keystead_store::OAuthLogin {
            state: state.into(),
            app_id: "app_a".into(),
            provider: "google".into(),
            code_verifier: "verifier".into(),
            nonce: "nonce".into(),
            return_origin: "http://127.0.0.1:8080".into(),
            expires_at,
        };
        store
            .put_oauth_login(&login("s1", T0 + 600), T0)
            .await
            .unwrap();
        store
            .put_oauth_login(&login("s2", T0 + 10), T0)
            .await
            .unwrap();
        assert_eq!(
            store.take_oauth_login("s1", T0 + 1).await,
            Ok(login("s1", T0 + 600))
        );
        assert_eq!(
            store.take_oauth_login("s1", T0 + 2).await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store.take_oauth_login("s2", T0 + 10).await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store.take_oauth_login("nope", T0).await,
            Err(StoreError::NotFound)
        );
        let mut orphan = login("s3", T0 + 600);
        orphan.app_id = "app_nope".into();
        assert_eq!(
            store.put_oauth_login(&orphan, T0).await,
            Err(StoreError::NotFound)
        );
        assert!(!format!("{:?}", login("s4", 0)).contains("verifier"));
    }

    pub async fn apps_are_isolated(store: Store) {
        let (user_a, wal_a, acc_a) = seed_owner(&store, "app_a").await;
        let (user_b, _, _) = seed_owner(&store, "app_b").await;
        let mut t = tx("tx_a", "app_a", &user_a, &acc_a, 0);
        t.idempotency_key = Some("k1".into());
        store.insert_signed_tx(t).await.unwrap();
        store
            .create_session(&session("ses_a", "app_a", &user_a, T0 + 3600), "rt_a")
            .await
            .unwrap();
        let ident = Identity {
            app_id: "app_a".into(),
            provider: "google".into(),
            subject: "sub-a".into(),
            user_id: user_a.clone(),
        };
        store.link_identity(&ident).await.unwrap();

        // App B, asking with app A's ids, finds nothing and changes nothing.
        assert_eq!(
            store.get_user("app_b", &user_a).await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store.get_wallet("app_b", &wal_a).await,
            Err(StoreError::NotFound)
        );
        assert_eq!(store.wallet_for_user("app_b", &user_a).await.unwrap(), None);
        assert_eq!(
            store.get_account("app_b", &acc_a).await,
            Err(StoreError::NotFound)
        );
        assert!(
            store
                .list_accounts("app_b", &wal_a)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.get_tx("app_b", "tx_a").await,
            Err(StoreError::NotFound)
        );
        assert!(
            store
                .list_txs("app_b", &user_a, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .find_tx_by_idempotency_key("app_b", &user_a, "k1")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store.get_session("app_b", "ses_a").await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store
                .find_user_by_identity("app_b", "google", "sub-a")
                .await
                .unwrap(),
            None
        );
        assert!(
            store
                .list_identities("app_b", &user_a)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .update_wallet_record("app_b", &wal_a, 1, b"evil", 2, T0)
                .await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store.revoke_session("app_b", "ses_a", T0).await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store.rotate_refresh("app_b", "rt_a", "rt_evil", T0).await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store.revoke_user_sessions("app_b", &user_a, T0).await,
            Ok(0)
        );
        // Nor can B attach records to A's user, wallet or account.
        let w = wallet("wal_evil", "app_b", &user_a, b"");
        assert_eq!(store.create_wallet(&w).await, Err(StoreError::NotFound));
        let a = account("acc_evil", &wal_a, "app_b", "anvil", 7);
        assert_eq!(store.create_account(&a).await, Err(StoreError::NotFound));
        let s = session("ses_evil", "app_b", &user_a, T0 + 3600);
        assert_eq!(
            store.create_session(&s, "rt_evil").await,
            Err(StoreError::NotFound)
        );
        let t = tx("tx_evil", "app_b", &user_b, &acc_a, 1);
        assert_eq!(store.insert_signed_tx(t).await, Err(StoreError::NotFound));

        // App A still has everything, untouched.
        assert_eq!(
            store.get_wallet("app_a", &wal_a).await.unwrap().record,
            b"rec"
        );
        assert!(
            store
                .get_session("app_a", "ses_a")
                .await
                .unwrap()
                .is_live(T0)
        );
        let rotated = store
            .rotate_refresh("app_a", "rt_a", "rt_a2", T0 + 1)
            .await
            .unwrap();
        assert_eq!(rotated.id, "ses_a");
        assert_eq!(store.list_txs("app_a", &user_a, 10).await.unwrap().len(), 1);
    }

    pub async fn sessions_revoke(store: Store) {
        seed_app(&store, "app_a").await;
        seed_user(&store, "app_a", "usr_1").await;
        let s1 = session("ses_1", "app_a", "usr_1", T0 + 100);
        store.create_session(&s1, "rt_1").await.unwrap();
        store
            .create_session(&session("ses_2", "app_a", "usr_1", T0 + 100), "rt_2")
            .await
            .unwrap();
        assert_eq!(
            store
                .create_session(&session("ses_3", "app_a", "usr_1", T0 + 100), "rt_1")
                .await,
            Err(StoreError::Conflict),
            "a refresh token hash is unique"
        );
        assert_eq!(
            store.get_session("app_a", "ses_3").await,
            Err(StoreError::NotFound)
        );

        let got = store.get_session("app_a", "ses_1").await.unwrap();
        assert_eq!(got, s1);
        assert!(got.is_live(T0 + 99));
        assert!(!got.is_live(T0 + 100));

        store
            .revoke_session("app_a", "ses_1", T0 + 5)
            .await
            .unwrap();
        store
            .revoke_session("app_a", "ses_1", T0 + 6)
            .await
            .unwrap();
        assert_eq!(
            store
                .get_session("app_a", "ses_1")
                .await
                .unwrap()
                .revoked_at,
            Some(T0 + 5)
        );
        assert_eq!(
            store.revoke_session("app_a", "ses_9", T0).await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store.revoke_user_sessions("app_a", "usr_1", T0 + 7).await,
            Ok(1)
        );
        assert_eq!(
            store
                .get_session("app_a", "ses_2")
                .await
                .unwrap()
                .revoked_at,
            Some(T0 + 7)
        );
    }

    pub async fn refresh_rotation_and_reuse(store: Store) {
        seed_app(&store, "app_a").await;
        seed_user(&store, "app_a", "usr_1").await;
        let s = session("ses_1", "app_a", "usr_1", T0 + 1000);
        store.create_session(&s, "rt_1").await.unwrap();

        assert_eq!(
            store
                .rotate_refresh("app_a", "rt_1", "rt_2", T0 + 1)
                .await
                .unwrap(),
            s
        );
        assert_eq!(
            store
                .rotate_refresh("app_a", "rt_2", "rt_3", T0 + 2)
                .await
                .unwrap(),
            s
        );
        assert_eq!(
            store
                .rotate_refresh("app_a", "rt_unknown", "rt_x", T0 + 2)
                .await,
            Err(StoreError::NotFound)
        );
        // The new hash must be fresh; a clash rolls back and leaves rt_3 usable.
        assert_eq!(
            store.rotate_refresh("app_a", "rt_3", "rt_1", T0 + 3).await,
            Err(StoreError::Conflict)
        );
        // Replaying a spent token revokes the session...
        assert_eq!(
            store.rotate_refresh("app_a", "rt_1", "rt_4", T0 + 4).await,
            Err(StoreError::RefreshReuse)
        );
        let revoked = store.get_session("app_a", "ses_1").await.unwrap();
        assert_eq!(revoked.revoked_at, Some(T0 + 4));
        // ...so the latest, unspent token no longer works either.
        assert_eq!(
            store.rotate_refresh("app_a", "rt_3", "rt_5", T0 + 5).await,
            Err(StoreError::NotFound)
        );

        // An expired session's token does not rotate, and is not spent by trying.
        let s2 = session("ses_2", "app_a", "usr_1", T0 + 10);
        store.create_session(&s2, "rt_s2").await.unwrap();
        assert_eq!(
            store
                .rotate_refresh("app_a", "rt_s2", "rt_s2b", T0 + 10)
                .await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store
                .rotate_refresh("app_a", "rt_s2", "rt_s2b", T0 + 9)
                .await
                .unwrap(),
            s2
        );
    }

    pub async fn concurrent_refresh_rotation_succeeds_once(store: Store) {
        seed_app(&store, "app_a").await;
        seed_user(&store, "app_a", "usr_1").await;
        store
            .create_session(&session("ses_1", "app_a", "usr_1", T0 + 1000), "rt_0")
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .rotate_refresh("app_a", "rt_0", &format!("rt_new_{i}"), T0 + 1)
                    .await
            }));
        }
        let mut ok = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => ok += 1,
                Err(e) => assert_eq!(e, StoreError::RefreshReuse),
            }
        }
        assert_eq!(ok, 1, "one rotation wins");
        // The others were reuses of a spent token: the session is revoked.
        let s = store.get_session("app_a", "ses_1").await.unwrap();
        assert_eq!(s.revoked_at, Some(T0 + 1));
    }

    pub async fn concurrent_nonces_are_distinct_and_consecutive(store: Store) {
        let addr = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.reserve_nonce(31337, addr, 0).await
            }));
        }
        let mut nonces = Vec::new();
        for task in tasks {
            nonces.push(task.await.unwrap().unwrap());
        }
        nonces.sort_unstable();
        assert_eq!(nonces, (0..20).collect::<Vec<u64>>());
        assert_eq!(store.reserve_nonce(31337, addr, 0).await, Ok(20));
        // Another sender, or the same sender on another chain, counts separately.
        assert_eq!(store.reserve_nonce(31337, "0xother", 0).await, Ok(0));
        assert_eq!(store.reserve_nonce(1, addr, 0).await, Ok(0));
    }

    pub async fn chain_floor_raises_the_next_nonce(store: Store) {
        let addr = "0xabc";
        assert_eq!(store.reserve_nonce(1, addr, 0).await, Ok(0));
        assert_eq!(store.reserve_nonce(1, addr, 0).await, Ok(1));
        // The chain has seen transactions sent from elsewhere.
        assert_eq!(store.reserve_nonce(1, addr, 10).await, Ok(10));
        // A floor below the stored counter does not lower it.
        assert_eq!(store.reserve_nonce(1, addr, 0).await, Ok(11));
        assert_eq!(store.reserve_nonce(1, addr, 5).await, Ok(12));
        // A first reservation starts at the floor.
        assert_eq!(store.reserve_nonce(1, "0xnew", 7).await, Ok(7));
        assert_eq!(store.reserve_nonce(1, "0xnew", 0).await, Ok(8));
        // Values beyond what the database holds are refused, not wrapped.
        assert!(matches!(
            store.reserve_nonce(1, addr, u64::MAX).await,
            Err(StoreError::Database(_))
        ));
        assert!(matches!(
            store.reserve_nonce(1, addr, i64::MAX as u64).await,
            Err(StoreError::Database(_))
        ));
        assert!(matches!(
            store.reserve_nonce(u64::MAX, addr, 0).await,
            Err(StoreError::Database(_))
        ));
        assert_eq!(store.reserve_nonce(1, addr, 0).await, Ok(13));
    }

    pub async fn idempotent_insert_returns_existing_tx(store: Store) {
        let (user, _, acc) = seed_owner(&store, "app_a").await;
        let other_user = seed_user(&store, "app_a", "usr_other").await;
        let mut first = tx("tx_1", "app_a", &user, &acc, 0);
        first.idempotency_key = Some("key-1".into());
        first.request_hash = Some("req-hash-1".into());
        // Fields a signed insert ignores.
        first.status = TxStatus::Confirmed;
        first.block_number = Some(9);
        let stored = match store.insert_signed_tx(first.clone()).await.unwrap() {
            InsertTx::Inserted(row) => row,
            other => panic!("expected Inserted, got {other:?}"),
        };
        assert_eq!(stored.status, TxStatus::Signed);
        assert_eq!(stored.block_number, None);
        assert_eq!(store.get_tx("app_a", "tx_1").await.unwrap(), stored);

        // A retry with the same key, however its body differs, returns the first.
        let mut retry = tx("tx_2", "app_a", &user, &acc, 1);
        retry.idempotency_key = Some("key-1".into());
        retry.request_hash = Some("req-hash-2".into());
        assert_eq!(
            store.insert_signed_tx(retry).await,
            Ok(InsertTx::Existing(stored.clone()))
        );
        assert_eq!(
            store.get_tx("app_a", "tx_2").await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store
                .find_tx_by_idempotency_key("app_a", &user, "key-1")
                .await
                .unwrap(),
            Some(stored)
        );

        // Keys are per user; transactions without a key never collide.
        let mut theirs = tx("tx_3", "app_a", &other_user.id, &acc, 2);
        theirs.idempotency_key = Some("key-1".into());
        assert!(matches!(
            store.insert_signed_tx(theirs).await,
            Ok(InsertTx::Inserted(_))
        ));
        for (id, nonce) in [("tx_4", 3), ("tx_5", 4)] {
            let t = tx(id, "app_a", &user, &acc, nonce);
            assert!(matches!(
                store.insert_signed_tx(t).await,
                Ok(InsertTx::Inserted(_))
            ));
        }
        // The same id twice (no key) is a conflict.
        let dup = tx("tx_4", "app_a", &user, &acc, 5);
        assert_eq!(store.insert_signed_tx(dup).await, Err(StoreError::Conflict));
        let listed: Vec<_> = store
            .list_txs("app_a", &user, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(listed, ["tx_5", "tx_4", "tx_1"]);
        assert_eq!(store.list_txs("app_a", &user, 1).await.unwrap().len(), 1);
    }

    pub async fn outbox_pending_confirm_transitions(store: Store) {
        let (user, _, acc) = seed_owner(&store, "app_a").await;
        for (id, nonce) in [("tx_c", 2), ("tx_a", 0), ("tx_b", 1), ("tx_d", 3)] {
            store
                .insert_signed_tx(tx(id, "app_a", &user, &acc, nonce))
                .await
                .unwrap();
        }
        let ids = |rows: Vec<TxRow>| rows.into_iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.outbox(10).await.unwrap()),
            ["tx_a", "tx_b", "tx_c", "tx_d"]
        );
        assert_eq!(ids(store.outbox(2).await.unwrap()), ["tx_a", "tx_b"]);
        assert!(store.pending(10).await.unwrap().is_empty());

        store.mark_broadcast("tx_a", T0 + 100).await.unwrap();
        store.mark_broadcast("tx_b", T0 + 100).await.unwrap();
        store.mark_broadcast("tx_a", T0 + 101).await.unwrap(); // idempotent
        assert_eq!(ids(store.outbox(10).await.unwrap()), ["tx_c", "tx_d"]);
        assert_eq!(ids(store.pending(10).await.unwrap()), ["tx_a", "tx_b"]);
        let a = store.get_tx("app_a", "tx_a").await.unwrap();
        assert_eq!((a.status, a.updated_at), (TxStatus::Pending, T0 + 100));
        // A pending transaction sent again is still pending, broadcast later; one still in
        // the outbox is not touched.
        store.mark_pending_checked("tx_a", T0 + 150).await.unwrap();
        store.mark_pending_checked("tx_c", T0 + 150).await.unwrap();
        let a = store.get_tx("app_a", "tx_a").await.unwrap();
        assert_eq!((a.status, a.updated_at), (TxStatus::Pending, T0 + 150));
        let c = store.get_tx("app_a", "tx_c").await.unwrap();
        assert_eq!((c.status, c.updated_at), (TxStatus::Signed, T0 + 2));

        store
            .mark_confirmed("tx_a", 17, true, T0 + 200)
            .await
            .unwrap();
        store
            .mark_confirmed("tx_b", 18, false, T0 + 200)
            .await
            .unwrap();
        // The node refused tx_c; tx_d's receipt arrives though its broadcast was never
        // recorded (a crash between the two).
        store
            .mark_failed("tx_c", "nonce too low", T0 + 300)
            .await
            .unwrap();
        store
            .mark_confirmed("tx_d", 19, true, T0 + 300)
            .await
            .unwrap();
        assert!(store.outbox(10).await.unwrap().is_empty());
        assert!(store.pending(10).await.unwrap().is_empty());

        let get = |id: &'static str| {
            let store = store.clone();
            async move { store.get_tx("app_a", id).await.unwrap() }
        };
        let a = get("tx_a").await;
        assert_eq!(
            (a.status, a.block_number, a.updated_at),
            (TxStatus::Confirmed, Some(17), T0 + 200)
        );
        let b = get("tx_b").await;
        assert_eq!((b.status, b.block_number), (TxStatus::Failed, Some(18)));
        let c = get("tx_c").await;
        assert_eq!(
            (c.status, c.error.as_deref(), c.block_number),
            (TxStatus::Failed, Some("nonce too low"), None)
        );
        assert_eq!(get("tx_d").await.status, TxStatus::Confirmed);

        // Final states stay final.
        store.mark_failed("tx_a", "late", T0 + 400).await.unwrap();
        store.mark_broadcast("tx_a", T0 + 400).await.unwrap();
        store.mark_pending_checked("tx_a", T0 + 400).await.unwrap();
        store
            .mark_confirmed("tx_b", 99, true, T0 + 400)
            .await
            .unwrap();
        assert_eq!(get("tx_a").await, a);
        assert_eq!(get("tx_b").await, b);

        for result in [
            store.mark_broadcast("tx_zz", T0).await,
            store.mark_pending_checked("tx_zz", T0).await,
            store.mark_confirmed("tx_zz", 1, true, T0).await,
            store.mark_failed("tx_zz", "x", T0).await,
        ] {
            assert_eq!(result, Err(StoreError::NotFound));
        }
    }

    pub async fn records_round_trip_arbitrary_bytes(store: Store) {
        let (user, _, acc) = seed_owner(&store, "app_a").await;
        seed_user(&store, "app_a", "usr_2").await;
        seed_user(&store, "app_a", "usr_3").await;
        let every_byte: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let not_utf8 = vec![0xff, 0xfe, 0x00, 0x00, 0xc3, 0x28, 0x00];
        let big: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();

        for (id, user_id, record) in [
            ("wal_2", "usr_2", &every_byte),
            ("wal_3", "usr_3", &Vec::new()),
        ] {
            store
                .create_wallet(&wallet(id, "app_a", user_id, record))
                .await
                .unwrap();
            assert_eq!(&store.get_wallet("app_a", id).await.unwrap().record, record);
        }
        for (version, record) in [
            (1, &not_utf8),
            (2, &big),
            (3, &Vec::new()),
            (4, &every_byte),
        ] {
            store
                .update_wallet_record("app_a", "wal_2", version, record, version + 1, T0)
                .await
                .unwrap();
            assert_eq!(
                &store.get_wallet("app_a", "wal_2").await.unwrap().record,
                record
            );
        }

        let mut t = tx("tx_bytes", "app_a", &user, &acc, 0);
        t.raw = every_byte.clone();
        store.insert_signed_tx(t).await.unwrap();
        assert_eq!(
            store.get_tx("app_a", "tx_bytes").await.unwrap().raw,
            every_byte
        );
        assert_eq!(store.outbox(1).await.unwrap()[0].raw, every_byte);
    }
}
