//! Signing's account and wallet-record reads, from memory, for a server that owns its
//! SQLite database alone ([`crate::Store::become_sole_server`]).
//!
//! A signature reads its account and its wallet's sealed record: one SQLite query, about
//! a fifth of the server's CPU per signature in a profile at concurrency 16 (a read
//! transaction's file locks, four B-tree descents, the row's copies). An account never
//! changes once stored, and a record changes only through `update_wallet_record`, so a
//! process that is the only one writing records can keep both: the account for good, the
//! record as it last wrote or read it, replaced only by a newer version. Only then: a
//! second server changing a record (a wrong PIN counted, a PIN changed) would leave this
//! one presenting the enclave an older PIN state, which is why the claim comes first.
//!
//! Nothing secret is kept: a record is sealed by the enclave, as it is in the database.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::{AccountRow, AccountWithRecord};

/// Accounts and records kept, each: about 15 MB at most (a record is about 0.9 KB).
const REMEMBERED: NonZeroUsize = NonZeroUsize::new(10_000).unwrap();

struct Record {
    app_id: String,
    bytes: Arc<[u8]>,
    version: i64,
}

pub(crate) struct RecordCache {
    /// The locked claim file: what makes keeping records correct, held as long as they are.
    _claim: std::fs::File,
    /// By account id (unique across apps): the row and the user whose wallet holds it.
    /// Rows and records are shared with the requests they answer, never copied.
    accounts: Mutex<LruCache<String, (Arc<AccountRow>, String)>>,
    /// By wallet id (unique across apps).
    records: Mutex<LruCache<String, Record>>,
}

impl std::fmt::Debug for RecordCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCache").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RecordCache {
    /// Records kept under `claim`, a file already locked for this process alone.
    pub(crate) fn new(claim: std::fs::File) -> Self {
        Self::with_capacity(claim, REMEMBERED)
    }

    fn with_capacity(claim: std::fs::File, capacity: NonZeroUsize) -> Self {
        Self {
            _claim: claim,
            accounts: Mutex::new(LruCache::new(capacity)),
            records: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// What `get_user_account_with_record` would read, when both parts are here. Anything
    /// else (another app's or user's account included) is left to the database.
    pub(crate) fn get(
        &self,
        app_id: &str,
        user_id: &str,
        account_id: &str,
    ) -> Option<AccountWithRecord> {
        let account = {
            let mut accounts = lock(&self.accounts);
            let (row, owner) = accounts.get(account_id)?;
            if row.app_id != app_id || owner != user_id {
                return None;
            }
            Arc::clone(row)
        };
        let mut records = lock(&self.records);
        let record = records.get(&account.wallet_id)?;
        if record.app_id != app_id {
            return None;
        }
        Some(AccountWithRecord {
            record: Arc::clone(&record.bytes),
            record_version: record.version,
            account,
        })
    }

    /// Keeps what the database answered for `user_id`.
    pub(crate) fn read(&self, user_id: &str, found: &AccountWithRecord) {
        let account = &found.account;
        lock(&self.accounts).put(account.id.clone(), (account.clone(), user_id.to_owned()));
        self.keep(
            &account.app_id,
            &account.wallet_id,
            Arc::clone(&found.record),
            found.record_version,
        );
    }

    /// Keeps a record this process has just stored.
    pub(crate) fn wrote(&self, app_id: &str, wallet_id: &str, record: &[u8], version: i64) {
        self.keep(app_id, wallet_id, record.into(), version);
    }

    /// Drops a wallet's record: a write of it failed, so the database is the one to ask.
    pub(crate) fn forget(&self, wallet_id: &str) {
        lock(&self.records).pop(wallet_id);
    }

    /// Versions only grow: a read that began before a write committed must not put the
    /// older record back.
    fn keep(&self, app_id: &str, wallet_id: &str, bytes: Arc<[u8]>, version: i64) {
        let mut records = lock(&self.records);
        if let Some(kept) = records.get(wallet_id)
            && kept.app_id == app_id
            && kept.version >= version
        {
            return;
        }
        records.put(
            wallet_id.to_owned(),
            Record {
                app_id: app_id.to_owned(),
                bytes,
                version,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(
        app: &str,
        account: &str,
        wallet: &str,
        record: &[u8],
        version: i64,
    ) -> AccountWithRecord {
        AccountWithRecord {
            account: Arc::new(AccountRow {
                id: account.into(),
                wallet_id: wallet.into(),
                app_id: app.into(),
                network: "local".into(),
                family: "evm".into(),
                address: "0x00".into(),
                path: "m/44'/60'/0'/0/0".into(),
                idx: 0,
                created_at: 0,
            }),
            record: record.into(),
            record_version: version,
        }
    }

    #[test]
    fn answers_only_the_owner_in_the_same_app() {
        let cache = RecordCache::new(tempfile::tempfile().unwrap());
        assert_eq!(cache.get("app", "alice", "acc"), None);
        let alice = found("app", "acc", "wal", b"r1", 1);
        cache.read("alice", &alice);
        assert_eq!(cache.get("app", "alice", "acc"), Some(alice));
        assert_eq!(cache.get("app", "bob", "acc"), None);
        assert_eq!(cache.get("other", "alice", "acc"), None);
    }

    #[test]
    fn a_record_is_replaced_only_by_a_newer_version() {
        let cache = RecordCache::new(tempfile::tempfile().unwrap());
        cache.read("alice", &found("app", "acc", "wal", b"r2", 2));
        cache.wrote("app", "wal", b"r3", 3);
        assert_eq!(&*cache.get("app", "alice", "acc").unwrap().record, b"r3");
        // A read that started before the write finishes after it.
        cache.read("alice", &found("app", "acc", "wal", b"r2", 2));
        let kept = cache.get("app", "alice", "acc").unwrap();
        assert_eq!((&*kept.record, kept.record_version), (&b"r3"[..], 3));
        cache.forget("wal");
        assert_eq!(cache.get("app", "alice", "acc"), None);
        cache.read("alice", &found("app", "acc", "wal", b"r2", 2));
        assert_eq!(cache.get("app", "alice", "acc").unwrap().record_version, 2);
    }

    #[test]
    fn keeps_at_most_its_capacity() {
        let cache = RecordCache::with_capacity(
            tempfile::tempfile().unwrap(),
            NonZeroUsize::new(2).unwrap(),
        );
        for i in 0..3 {
            let id = i.to_string();
            cache.read("alice", &found("app", &id, &id, b"r", 1));
        }
        assert_eq!(lock(&cache.accounts).len(), 2);
        assert_eq!(lock(&cache.records).len(), 2);
        assert_eq!(
            cache.get("app", "alice", "0"),
            None,
            "least recently used out"
        );
        assert!(cache.get("app", "alice", "2").is_some());
    }
}
