//! Memory of the PIN-envelope nonces already used, until each envelope expires.

use std::collections::{BTreeSet, HashSet};

#[derive(Debug, PartialEq, Eq)]
pub enum ReplayError {
    Replayed,
    /// Full of envelopes that have not expired yet: refuse rather than forget one.
    Full,
}

pub struct ReplayGuard {
    capacity: usize,
    seen: HashSet<Vec<u8>>,
    by_expiry: BTreeSet<(u64, Vec<u8>)>,
}

impl ReplayGuard {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: HashSet::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// Records `nonce` as used until `expires_at`; refuses one seen before.
    pub fn use_once(&mut self, nonce: &[u8], expires_at: u64, now: u64) -> Result<(), ReplayError> {
        while let Some((expiry, _)) = self.by_expiry.first() {
            if *expiry >= now {
                break;
            }
            if let Some((_, old)) = self.by_expiry.pop_first() {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains(nonce) {
            return Err(ReplayError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        self.seen.insert(nonce.to_vec());
        self.by_expiry.insert((expires_at, nonce.to_vec()));
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
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
}
