//! Contents of small, hot files (repomd.xml, InRelease, .treeinfo, iPXE scripts) kept in memory.
//!
//! Entries are keyed on the file's identity, size and modification time, so a changed or replaced file is
//! simply a different key and is never served stale; old versions age out. Eviction drops the least
//! recently used quarter of the entries at once, which keeps inserts cheap when the cache is full.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use bytes::Bytes;

use crate::http::source::Meta;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    id: u64,
    len: u64,
    mtime_nanos: u128,
}

impl Key {
    pub fn of(meta: &Meta) -> Key {
        Key {
            id: meta.id,
            len: meta.len,
            mtime_nanos: meta
                .modified
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        }
    }
}

struct Entry {
    data: Bytes,
    last_used: AtomicU64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, Entry>,
    bytes: u64,
}

pub struct FileCache {
    max_file: u64,
    capacity: u64,
    entries: RwLock<Entries>,
    clock: AtomicU64,
}

impl FileCache {
    /// Holds files of at most `max_file` bytes, `capacity` bytes in all (0 disables the cache).
    pub fn new(max_file: u64, capacity: u64) -> FileCache {
        FileCache {
            max_file: max_file.min(capacity),
            capacity,
            entries: RwLock::default(),
            clock: AtomicU64::new(0),
        }
    }

    pub fn accepts(&self, meta: &Meta) -> bool {
        meta.len <= self.max_file && self.capacity > 0
    }

    pub fn get(&self, key: &Key) -> Option<Bytes> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let entry = entries.map.get(key)?;
        entry.last_used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        Some(entry.data.clone())
    }

    pub fn insert(&self, key: Key, data: Bytes) {
        let len = data.len() as u64;
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.bytes + len > self.capacity {
            let mut by_age: Vec<(u64, Key)> = entries
                .map
                .iter()
                .map(|(k, e)| (e.last_used.load(Ordering::Relaxed), *k))
                .collect();
            by_age.sort_unstable_by_key(|(age, _)| *age);
            for (_, k) in &by_age[..by_age.len().div_ceil(4)] {
                if let Some(e) = entries.map.remove(k) {
                    entries.bytes -= e.data.len() as u64;
                }
            }
            if entries.bytes + len > self.capacity {
                return;
            }
        }
        let last_used = AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed));
        if let Some(old) = entries.map.insert(key, Entry { data, last_used }) {
            entries.bytes -= old.data.len() as u64;
        }
        entries.bytes += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn key(id: u64, len: u64) -> Key {
        Key::of(&Meta {
            id,
            len,
            modified: UNIX_EPOCH,
        })
    }

    #[test]
    fn hit_miss_and_eviction() {
        let cache = FileCache::new(4, 8);
        assert!(cache.accepts(&Meta {
            id: 1,
            len: 4,
            modified: SystemTime::now()
        }));
        assert!(!cache.accepts(&Meta {
            id: 1,
            len: 5,
            modified: SystemTime::now()
        }));
        cache.insert(key(1, 4), Bytes::from_static(b"aaaa"));
        cache.insert(key(2, 4), Bytes::from_static(b"bbbb"));
        assert_eq!(cache.get(&key(1, 4)).unwrap(), "aaaa");
        assert!(
            cache.get(&key(1, 3)).is_none(),
            "a different size is a different file"
        );
        // full: inserting evicts the least recently used (2), keeps the recently read (1)
        cache.insert(key(3, 4), Bytes::from_static(b"cccc"));
        assert!(cache.get(&key(2, 4)).is_none());
        assert_eq!(cache.get(&key(1, 4)).unwrap(), "aaaa");
        assert_eq!(cache.get(&key(3, 4)).unwrap(), "cccc");
    }
}
