//! A short-lived cache of rendered catalog reads (body and ETag), so a hot
//! product or list page costs a hash lookup instead of a database round
//! trip ("micro-caching").
//!
//! Freshness: every write made through this process's [`Store`] bumps its
//! version, and an entry is served only while the version it was read at
//! is still current — so this process never serves its own stale data.
//! Writes by other processes (another replica on the same PostgreSQL, or a
//! `products seed` beside a running server) show within the TTL, which is
//! a second by default — far inside the `Cache-Control: max-age` clients
//! are already told they may keep a read. Memory is bounded in bytes.
//!
//! [`Store`]: crate::store::Store

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::listing::ListQuery;

/// What a cached read is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheKey {
    Product(String),
    /// Every parameter that changes the answer is part of the key.
    List {
        filter: ListQuery,
        limit: i64,
        offset: i64,
    },
    Categories,
}

impl CacheKey {
    fn size(&self) -> usize {
        match self {
            CacheKey::Product(id) => id.len(),
            CacheKey::List { filter, .. } => filter.size(),
            CacheKey::Categories => 0,
        }
    }
}

/// A JSON body as sent, with its strong ETag.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: Bytes,
    pub etag: HeaderValue,
}

impl Rendered {
    pub fn json<T: Serialize>(value: &T) -> Rendered {
        // Serializing our own types cannot fail (string keys, derived impls).
        let body = serde_json::to_vec(value).expect("response types always serialize");
        let digest = Sha256::digest(&body);
        // 128 bits of the hash tell versions of one resource apart.
        let etag = format!("\"{}\"", hex::encode(&digest[..16]));
        Rendered {
            body: Bytes::from(body),
            etag: HeaderValue::from_str(&etag).expect("quoted hex is a valid header value"),
        }
    }
}

struct Entry {
    rendered: Rendered,
    version: u64,
    stored: Instant,
}

/// Per-entry bookkeeping counted against the byte budget.
const ENTRY_OVERHEAD: usize = 128;

struct Entries {
    map: HashMap<CacheKey, Entry>,
    bytes: usize,
}

pub struct ReadCache {
    ttl: Duration,
    max_bytes: usize,
    entries: RwLock<Entries>,
}

impl ReadCache {
    /// A zero `ttl` disables caching.
    pub fn new(ttl: Duration, max_bytes: usize) -> ReadCache {
        ReadCache {
            ttl,
            max_bytes,
            entries: RwLock::new(Entries {
                map: HashMap::new(),
                bytes: 0,
            }),
        }
    }

    fn fresh(&self, entry: &Entry, version: u64, now: Instant) -> bool {
        entry.version == version && now.duration_since(entry.stored) < self.ttl
    }

    /// The entry for `key` if it was read at `version` and is younger than the TTL.
    pub fn get(&self, key: &CacheKey, version: u64) -> Option<Rendered> {
        if self.ttl.is_zero() {
            return None;
        }
        // A poisoned lock only means a panic elsewhere mid-update of a
        // plain map; the data is still a valid map, so keep using it.
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let entry = entries.map.get(key)?;
        self.fresh(entry, version, Instant::now())
            .then(|| entry.rendered.clone())
    }

    /// Keeps `rendered`, read from the database at `version`. When the
    /// budget is spent, stale entries are dropped first; if that is not
    /// enough the new entry is simply not kept.
    pub fn put(&self, key: CacheKey, version: u64, rendered: Rendered) {
        if self.ttl.is_zero() {
            return;
        }
        let size = rendered.body.len() + key.size() + ENTRY_OVERHEAD;
        if size > self.max_bytes {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = entries.map.remove(&key) {
            entries.bytes -= old.rendered.body.len() + key.size() + ENTRY_OVERHEAD;
        }
        if entries.bytes + size > self.max_bytes {
            let Entries { map, bytes } = &mut *entries;
            map.retain(|k, e| {
                let keep = self.fresh(e, version, now);
                if !keep {
                    *bytes -= e.rendered.body.len() + k.size() + ENTRY_OVERHEAD;
                }
                keep
            });
            if entries.bytes + size > self.max_bytes {
                return;
            }
        }
        entries.bytes += size;
        entries.map.insert(
            key,
            Entry {
                rendered,
                version,
                stored: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(n: usize) -> Rendered {
        Rendered::json(&"x".repeat(n))
    }

    fn key(i: usize) -> CacheKey {
        CacheKey::Product(format!("p{i}"))
    }

    #[test]
    fn entries_are_served_only_at_their_version_and_within_the_ttl() {
        let cache = ReadCache::new(Duration::from_millis(50), 1 << 20);
        cache.put(key(1), 7, rendered(10));
        assert!(cache.get(&key(1), 7).is_some());
        assert!(cache.get(&key(1), 8).is_none(), "a local write invalidates");
        assert!(cache.get(&key(2), 7).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(&key(1), 7).is_none(), "expired");
    }

    #[test]
    fn a_zero_ttl_disables_the_cache() {
        let cache = ReadCache::new(Duration::ZERO, 1 << 20);
        cache.put(key(1), 1, rendered(10));
        assert!(cache.get(&key(1), 1).is_none());
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let budget = 10 * (1000 + ENTRY_OVERHEAD + 8);
        let cache = ReadCache::new(Duration::from_secs(60), budget);
        for i in 0..100 {
            cache.put(key(i), 1, rendered(1000));
            let bytes = cache.entries.read().unwrap().bytes;
            assert!(bytes <= budget, "{bytes} > {budget}");
        }
        assert!(
            cache.get(&key(0), 1).is_some(),
            "the first entries stay while fresh"
        );
        assert!(cache.get(&key(99), 1).is_none(), "later ones are not kept");
        // Once the old ones are stale (a write happened), new ones fit again.
        cache.put(key(100), 2, rendered(1000));
        assert!(cache.get(&key(100), 2).is_some());
        // Replacing an entry does not count it twice.
        for _ in 0..50 {
            cache.put(key(100), 2, rendered(1000));
        }
        assert_eq!(cache.entries.read().unwrap().map.len(), 1);
        // An entry larger than the whole budget is never kept.
        cache.put(key(101), 2, rendered(budget));
        assert!(cache.get(&key(101), 2).is_none());
    }

    #[test]
    fn etags_follow_the_body() {
        assert_eq!(rendered(3).etag, rendered(3).etag);
        assert_ne!(rendered(3).etag, rendered(4).etag);
    }
}
