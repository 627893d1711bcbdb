//! Memory of the PIN-envelope nonces already used, until each envelope expires.
//!
//! Held for every envelope of the last minutes (up to `capacity`), so each entry is
//! kept small and fixed-size: the first 128 bits of the nonce's SHA-256 in a hash set
//! (split in shards), and the same 128 bits in a list per expiry second. A nonce seen
//! before always maps to the same entry, so a replay is always refused; two different
//! nonces sharing an entry would need a SHA-256 collision in 128 bits, and would only
//! refuse the later envelope. (Nonces of any length and shape map alike, so a client's
//! non-random nonce bytes cannot make two envelopes look alike.)

use std::collections::{BTreeMap, HashSet};

use sha2::{Digest, Sha256};

#[derive(Debug, PartialEq, Eq)]
pub enum ReplayError {
    Replayed,
    /// Full of envelopes that have not expired yet: refuse rather than forget one.
    Full,
}

/// The set is split so that growing it rehashes one shard at a time: a single set of 1.8
/// million entries took 108 ms to grow here, every signature waiting on the lock meanwhile.
const SHARDS: usize = 64;
/// A shard holding less than a quarter of its room gives the rest back (keeping twice
/// what it holds, and at least `MIN_SHARD_ROOM`): after a burst of signing the memory is
/// returned as its envelopes expire, instead of staying at the peak (locked in RAM, as
/// the enclave's pages are) for the life of the process.
const SHRINK_BELOW: usize = 4;
const MIN_SHARD_ROOM: usize = 256;

pub struct ReplayGuard {
    capacity: usize,
    /// Entries by their low bits (SHA-256 output, so evenly spread).
    seen: Vec<HashSet<u128>>,
    /// The entries of `seen`, by the second their envelopes expire.
    by_expiry: BTreeMap<u64, Vec<u128>>,
}

fn entry(nonce: &[u8]) -> u128 {
    let digest = Sha256::digest(nonce);
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

impl ReplayGuard {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: (0..SHARDS).map(|_| HashSet::new()).collect(),
            by_expiry: BTreeMap::new(),
        }
    }

    fn shard(&mut self, entry: u128) -> &mut HashSet<u128> {
        &mut self.seen[entry as usize % SHARDS]
    }

    /// Records `nonce` as used until `expires_at`; refuses one seen before.
    pub fn use_once(&mut self, nonce: &[u8], expires_at: u64, now: u64) -> Result<(), ReplayError> {
        let mut forgot = false;
        while let Some(first) = self.by_expiry.first_entry() {
            if *first.key() >= now {
                break;
            }
            for old in first.remove() {
                self.shard(old).remove(&old);
            }
            forgot = true;
        }
        if forgot {
            self.shrink_sparse_shards();
        }
        let entry = entry(nonce);
        if self.shard(entry).contains(&entry) {
            return Err(ReplayError::Replayed);
        }
        if self.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        self.shard(entry).insert(entry);
        self.by_expiry.entry(expires_at).or_default().push(entry);
        Ok(())
    }

    fn len(&self) -> usize {
        self.seen.iter().map(HashSet::len).sum()
    }

    /// At most once a second (expiries are whole seconds), so a shrinking shard's rehash
    /// is paid for by the entries that left it.
    fn shrink_sparse_shards(&mut self) {
        for shard in &mut self.seen {
            if shard.capacity() > MIN_SHARD_ROOM && shard.len() * SHRINK_BELOW < shard.capacity() {
                shard.shrink_to((shard.len() * 2).max(MIN_SHARD_ROOM));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_works_once_until_it_expires() {
        let mut g = ReplayGuard::new(10);
        assert_eq!(g.use_once(b"n1", 100, 50), Ok(()));
        assert_eq!(g.use_once(b"n1", 100, 60), Err(ReplayError::Replayed));
        assert_eq!(g.use_once(b"n2", 200, 60), Ok(()));
        // After n1's expiry its memory is freed (an expired envelope is refused anyway).
        assert_eq!(g.use_once(b"n3", 300, 150), Ok(()));
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn full_memory_refuses_instead_of_forgetting() {
        let mut g = ReplayGuard::new(2);
        g.use_once(b"a", 100, 0).unwrap();
        g.use_once(b"b", 100, 0).unwrap();
        assert_eq!(g.use_once(b"c", 100, 0), Err(ReplayError::Full));
        assert_eq!(g.use_once(b"a", 100, 0), Err(ReplayError::Replayed));
    }

    #[test]
    fn every_nonce_is_remembered_until_its_own_expiry() {
        let mut g = ReplayGuard::new(100_000);
        // Expiries out of arrival order, many sharing a second.
        let expiry = |i: u64| 1_000 + (i * 7919) % 600;
        for i in 0..50_000u64 {
            assert_eq!(g.use_once(&i.to_be_bytes(), expiry(i), 500), Ok(()));
        }
        for i in 0..50_000u64 {
            assert_eq!(
                g.use_once(&i.to_be_bytes(), expiry(i), 900),
                Err(ReplayError::Replayed)
            );
        }
        // At 1,300 every envelope expiring before it is forgotten, and no other.
        assert_eq!(g.use_once(b"later", 2_000, 1_300), Ok(()));
        let kept = (0..50_000u64).filter(|&i| expiry(i) >= 1_300).count();
        assert_eq!(g.len(), kept + 1);
        for i in (0..50_000u64).filter(|&i| expiry(i) >= 1_300) {
            assert_eq!(
                g.use_once(&i.to_be_bytes(), expiry(i), 1_300),
                Err(ReplayError::Replayed)
            );
        }
    }

    #[test]
    fn memory_is_given_back_as_a_burst_expires() {
        let room = |g: &ReplayGuard| g.seen.iter().map(HashSet::capacity).sum::<usize>();
        let mut g = ReplayGuard::new(1_000_000);
        for i in 0..200_000u64 {
            g.use_once(&i.to_be_bytes(), 1_000 + i % 2, 500).unwrap();
        }
        let at_peak = room(&g);
        assert!(at_peak >= 200_000);
        // Half the burst expires (second 1,000): the shards keep room for what is left.
        g.use_once(b"after", 2_000, 1_001).unwrap();
        assert_eq!(g.len(), 100_001);
        assert!(room(&g) >= 100_001);
        // All of it: the shards shrink to a small fraction of the peak, and what is
        // still remembered is still refused.
        g.use_once(b"later", 2_000, 1_002).unwrap();
        assert_eq!(g.len(), 2);
        assert!(room(&g) * 4 < at_peak, "{} of {at_peak} kept", room(&g));
        assert_eq!(
            g.use_once(b"after", 2_000, 1_003),
            Err(ReplayError::Replayed)
        );
    }

    #[test]
    fn nonces_differing_only_in_length_or_tail_are_different() {
        let mut g = ReplayGuard::new(10);
        let long = [7u8; 64];
        assert_eq!(g.use_once(&long[..16], 100, 0), Ok(()));
        assert_eq!(g.use_once(&long[..17], 100, 0), Ok(()));
        assert_eq!(g.use_once(&long, 100, 0), Ok(()));
        let mut tail = long;
        tail[63] = 8;
        assert_eq!(g.use_once(&tail, 100, 0), Ok(()));
        assert_eq!(g.use_once(&long[..17], 100, 0), Err(ReplayError::Replayed));
    }
}
