//! A small time-bounded cache for lookups every request repeats (an app by its key's
//! hash). Entries live `ttl`; a change made elsewhere (a rotated key) is seen within it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value stored for `key` less than `ttl` before `now`.
    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        self.get_even_stale(key, now)
            .and_then(|(v, fresh)| fresh.then_some(v))
    }

    /// The value stored for `key`, and whether it was stored less than `ttl` before `now`
    /// (an older one stays until the cache is full).
    pub fn get_even_stale(&self, key: &K, now: Instant) -> Option<(V, bool)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .map(|(v, at)| (v.clone(), now.saturating_duration_since(*at) < self.ttl))
    }

    /// Stores a value seen at `now`. When full, expired entries go first, then all.
    pub fn put(&self, key: K, value: V, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, (_, at)| now.saturating_duration_since(*at) < self.ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (value, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_capacity_is_kept() {
        let cache = TtlCache::new(Duration::from_secs(5), 2);
        let t0 = Instant::now();
        cache.put("a", 1, t0);
        assert_eq!(cache.get(&"a", t0 + Duration::from_secs(4)), Some(1));
        assert_eq!(cache.get(&"a", t0 + Duration::from_secs(5)), None);
        assert_eq!(
            cache.get_even_stale(&"a", t0 + Duration::from_secs(5)),
            Some((1, false))
        );
        assert_eq!(
            cache.get_even_stale(&"a", t0 + Duration::from_secs(4)),
            Some((1, true))
        );
        cache.put("b", 2, t0);
        cache.put("c", 3, t0 + Duration::from_secs(6));
        assert_eq!(cache.get(&"c", t0 + Duration::from_secs(6)), Some(3));
        assert_eq!(
            cache.get(&"b", t0 + Duration::from_secs(1)),
            None,
            "evicted when full"
        );
        assert_eq!(cache.entries.lock().unwrap().len(), 1);
    }
}
