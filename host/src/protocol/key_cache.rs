//! Keys decoded once and kept: a nats-server signs and seals with the same
//! keys for its whole life, so decoding a key (a curve point decompression, a
//! Diffie-Hellman) once per server instead of once per request saves tens of
//! microseconds on each.

use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept before the cache starts over: servers restart with new keys,
/// and a cache that only grows would let the keys of long-gone servers (or
/// junk) pile up.
const MAX_KEYS: usize = 1024;

/// Values derived from public keys, by the key's text form.
pub(crate) struct KeyCache<V> {
    known: Mutex<HashMap<String, V>>,
}

impl<V> Default for KeyCache<V> {
    fn default() -> Self {
        KeyCache {
            known: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> KeyCache<V> {
    /// The value kept for `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<V> {
        self.known.lock().ok()?.get(key).cloned()
    }

    /// Keeps `value` for `key`; starts over when the cache is full.
    pub(crate) fn insert(&self, key: &str, value: V) {
        if let Ok(mut known) = self.known.lock() {
            if known.len() >= MAX_KEYS && !known.contains_key(key) {
                known.clear();
            }
            known.insert(key.to_string(), value);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.known.lock().map_or(0, |known| known.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_values_and_starts_over_when_full() {
        let cache = KeyCache::default();
        for i in 0..MAX_KEYS {
            cache.insert(&i.to_string(), i);
        }
        assert_eq!(cache.get("7"), Some(7));
        assert_eq!(cache.len(), MAX_KEYS);
        cache.insert("one more", 0);
        assert_eq!(cache.len(), 1, "a full cache starts over");
        assert_eq!(cache.get("7"), None);
        assert_eq!(cache.get("one more"), Some(0));
    }
}
