//! The local tier of one cached function on one server: its settings ([`LocalTier`]) and
//! the bounded `moka` cache of kept values ([`LocalStore`]; what is kept: `form.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use super::coherence::Ticket;
use super::form::Kept;

/// The default bound on the number of local entries of one function.
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;
/// The default bound on the bytes (keys + values, as JSON) held locally for one function.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// What an entry costs beyond its key and value (map node, `Arc`, expiry bookkeeping).
const ENTRY_OVERHEAD: u64 = 64;

/// Settings of a function's local tier: an in-process cache in front of Redis, kept
/// coherent by Redis client tracking (see the [caching module docs](super::super) and
/// `caching/local`).
///
/// ```no_run
/// use dtrsfw::redis::caching::{CachedFunction, LocalTier};
/// # fn main() -> dtrsfw::redis::Result<()> {
/// let cached = CachedFunction::builder("prices", ["sku"])
///     .expire(300)
///     .local(LocalTier::new().max_entries(50_000).max_bytes(32 << 20))
///     .build()?;
/// # let _ = cached; Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct LocalTier {
    pub(crate) max_entries: u64,
    pub(crate) max_bytes: u64,
}

impl Default for LocalTier {
    fn default() -> Self {
        LocalTier {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

impl LocalTier {
    /// The default settings (see the setters).
    pub fn new() -> Self {
        Self::default()
    }

    /// The most entries kept; least useful ones are evicted beyond it (`0` is taken as
    /// `1`). By default, [`DEFAULT_MAX_ENTRIES`] (10 000).
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.max_entries = entries.max(1);
        self
    }

    /// The most bytes kept (keys + JSON values + 64 per entry); least useful entries are
    /// evicted beyond it (at least 1 024). By default, [`DEFAULT_MAX_BYTES`] (64 MiB).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes.max(1024);
        self
    }

    /// The weight of one entry: its bytes, but at least an equal share of the capacity,
    /// so that the count of entries cannot pass `max_entries` either.
    fn weight(self, bytes: u64) -> u32 {
        let share = self.max_bytes.div_ceil(self.max_entries);
        u32::try_from(bytes.max(share)).unwrap_or(u32::MAX)
    }
}

/// One local entry: the kept value, the ticket of the fill that read it (a hit serves it
/// only while that ticket is still admitted), its size (its JSON's: the measure of a
/// value the bound in bytes uses for both forms), and how long it may live (the key's
/// TTL in Redis when it was read; `None` for a key without one).
#[derive(Clone)]
pub(crate) struct Entry {
    value: Kept,
    ticket: Ticket,
    bytes: u64,
    ttl: Option<Duration>,
}

/// An entry lives at most the TTL the key had in Redis when it was read.
struct UntilRedisTtl;

impl moka::Expiry<String, Entry> for UntilRedisTtl {
    fn expire_after_create(&self, _: &String, entry: &Entry, _: Instant) -> Option<Duration> {
        entry.ttl
    }

    fn expire_after_update(&self, _: &String, entry: &Entry, _: Instant, _: Option<Duration>) -> Option<Duration> {
        entry.ttl
    }
}

/// The local entries of one function on one server.
pub(crate) struct LocalStore {
    pub(crate) namespace: String,
    /// Hashed with foldhash, not SipHash: the keys are SHA-256 digests of the arguments,
    /// so no caller can choose colliding ones, and a hit does one hash of the key.
    cache: Cache<String, Entry, foldhash::fast::RandomState>,
    invalidations: AtomicU64,
    flushes: AtomicU64,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("namespace", &self.namespace)
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl LocalStore {
    pub(crate) fn new(namespace: &str, tier: LocalTier) -> Self {
        let cache = Cache::builder()
            .max_capacity(tier.max_bytes)
            .weigher(move |key: &String, entry: &Entry| tier.weight(key.len() as u64 + entry.bytes + ENTRY_OVERHEAD))
            .expire_after(UntilRedisTtl)
            .build_with_hasher(foldhash::fast::RandomState::default());
        LocalStore {
            namespace: namespace.to_owned(),
            cache,
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    /// Whether `key` belongs to this function's namespace (as BCAST prefixes see it).
    pub(crate) fn covers(&self, key: &str) -> bool {
        key.starts_with(&self.namespace)
    }

    /// The kept value of `key` and the ticket of the fill that read it.
    pub(crate) fn get(&self, key: &str) -> Option<(Kept, Ticket)> {
        self.cache.get(key).map(|entry| (entry.value, entry.ticket))
    }

    /// Inserts a value read from Redis by a fill holding `ticket` (`bytes`: its JSON's
    /// length) whose key had `pttl_ms` left (`-1`: no TTL).
    pub(crate) fn insert(&self, key: &str, ticket: Ticket, value: Kept, bytes: usize, pttl_ms: i64) {
        let ttl = match pttl_ms {
            -1 => None,
            ms if ms > 0 => Some(Duration::from_millis(ms.unsigned_abs())),
            // Gone (or about to be): nothing to keep.
            _ => return,
        };
        let bytes = bytes as u64;
        self.cache.insert(
            key.to_owned(),
            Entry {
                value,
                ticket,
                bytes,
                ttl,
            },
        );
    }

    pub(crate) fn remove(&self, key: &str) {
        self.cache.invalidate(key);
    }

    /// Drops `key` because Redis (or this process) invalidated it.
    pub(crate) fn invalidate(&self, key: &str) {
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        self.cache.invalidate(key);
    }

    pub(crate) fn flush(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.cache.invalidate_all();
    }

    /// `(entries, weighted bytes, invalidations, flushes)`, after finishing moka's
    /// pending evictions so the sizes are exact.
    pub(crate) fn sizes(&self) -> (u64, u64, u64, u64) {
        self.cache.run_pending_tasks();
        (
            self.cache.entry_count(),
            self.cache.weighted_size(),
            self.invalidations.load(Ordering::Relaxed),
            self.flushes.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A ticket of a fill (these tests do not check the epoch rule: `server.rs` does).
    fn ticket() -> Ticket {
        let epochs = super::super::coherence::Epochs::default();
        epochs.set_up();
        epochs.ticket().expect("up")
    }

    /// A kept value of `bytes` bytes (as its JSON would measure).
    fn kept(bytes: usize) -> (Kept, usize) {
        (Arc::new(vec![b'7'; bytes]), bytes)
    }

    fn fill(store: &LocalStore, n: u64, bytes: usize) {
        let (value, bytes) = kept(bytes);
        let ticket = ticket();
        for i in 0..n {
            store.insert(&format!("ns:{i}"), ticket, value.clone(), bytes, -1);
        }
    }

    #[test]
    fn the_entry_bound_holds() {
        let store = LocalStore::new("ns", LocalTier::new().max_entries(100));
        fill(&store, 5_000, 1);
        let (entries, _, _, _) = store.sizes();
        assert!(entries <= 100, "{entries} entries kept, bound 100");
        assert!(entries > 0);
    }

    #[test]
    fn the_byte_bound_holds() {
        let tier = LocalTier::new().max_entries(1_000_000).max_bytes(64 * 1024);
        let store = LocalStore::new("ns", tier);
        fill(&store, 5_000, 1_000);
        let (entries, bytes, _, _) = store.sizes();
        assert!(bytes <= 64 * 1024, "{bytes} bytes kept, bound 65 536");
        assert!(entries * 1_000 <= 64 * 1024, "{entries} entries of 1 000 bytes");
    }

    /// The issue's figure: a million distinct keys through one store.
    #[test]
    fn both_bounds_hold_under_a_million_distinct_keys() {
        let tier = LocalTier::new().max_entries(10_000).max_bytes(1 << 20);
        let store = LocalStore::new("ns", tier);
        fill(&store, 1_000_000, 200);
        let (entries, bytes, _, _) = store.sizes();
        assert!(entries <= 10_000, "{entries} entries, bound 10 000");
        assert!(bytes <= 1 << 20, "{bytes} bytes, bound 1 MiB");
        assert!(entries > 1_000, "the store keeps entries: {entries}");
    }

    #[test]
    fn an_entry_expires_with_the_redis_ttl_and_a_gone_key_is_not_kept() {
        let store = LocalStore::new("ns", LocalTier::new());
        let (value, bytes) = kept(1);
        store.insert("ns:a", ticket(), value.clone(), bytes, 50);
        store.insert("ns:b", ticket(), value, bytes, -2);
        assert!(store.get("ns:a").is_some());
        assert!(store.get("ns:b").is_none());
        std::thread::sleep(Duration::from_millis(120));
        assert!(store.get("ns:a").is_none(), "outlived its Redis TTL");
    }
}
