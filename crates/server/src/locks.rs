//! Striped async locks: one operation at a time per wallet, and per sending account.
//!
//! A wallet's PIN counter lives in its stored record, so two enclave calls on one wallet
//! must not both start from the same record (the second's wrong-PIN count would be
//! lost). A sender's nonces are handed out in order, and a nonce is only given back when
//! nothing after it was handed out, so sends from one account run one after another.
//! Striping keeps memory fixed; two keys sharing a stripe only wait for each other.

use std::hash::{BuildHasher, Hash};

use tokio::sync::{Mutex, MutexGuard};

pub struct Locks {
    hasher: std::collections::hash_map::RandomState,
    stripes: Vec<Mutex<()>>,
}

impl Locks {
    pub fn new(stripes: usize) -> Self {
        Self {
            hasher: Default::default(),
            stripes: (0..stripes.max(1)).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Waits for and takes the lock of `key`'s stripe.
    pub async fn lock(&self, key: impl Hash) -> MutexGuard<'_, ()> {
        let stripe = self.hasher.hash_one(key) as usize % self.stripes.len();
        self.stripes[stripe].lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_holder_per_key() {
        let locks = Arc::new(Locks::new(8));
        let inside = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (locks, inside) = (locks.clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                let _guard = locks.lock("wal_1").await;
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
}
