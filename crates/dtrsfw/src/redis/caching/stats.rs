//! Counters of cache activity, per function and per server.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of cache activity. Read with [`CachedFunction::stats`](super::CachedFunction::stats)
/// (one function) or [`cache_stats`](super::cache_stats) (everything on one server).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls answered from Redis.
    pub hits: u64,
    /// Calls that ran the function (nothing cached, or an unreadable value).
    pub misses: u64,
    /// Cache reads or writes that failed (server down, timeout, corrupt or foreign value)
    /// and were ignored; the function ran instead.
    pub errors: u64,
    /// Calls that waited for a concurrent identical call in this process and took its
    /// result instead of running the function (single-flight).
    pub joins: u64,
    /// Calls that did not touch Redis because the circuit was open.
    pub short_circuited: u64,
    /// Calls not cached because no `cache_only_for` condition held.
    pub bypassed: u64,
    /// Calls answered by the local tier (no Redis command); not counted in `hits`.
    pub local_hits: u64,
    /// Entries in the local tier now.
    pub local_entries: u64,
    /// Bytes the local tier holds now, as bounded by
    /// [`LocalTier::max_bytes`](super::LocalTier::max_bytes).
    pub local_bytes: u64,
    /// Local entries dropped because their key changed in Redis (pushes from the server,
    /// and this process's own invalidations and writes).
    pub invalidations: u64,
    /// Times the local tier was emptied: tracking lost or (re)started, a namespace
    /// invalidated, the server flushed.
    pub flushes: u64,
}

/// Atomic twin of [`CacheStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    joins: AtomicU64,
    short_circuited: AtomicU64,
    bypassed: AtomicU64,
    local_hits: AtomicU64,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Hit,
    Miss,
    Error,
    Join,
    ShortCircuit,
    Bypass,
    LocalHit,
}

impl Event {
    /// The `outcome` label of the cache-requests metric.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Event::Hit => "hit",
            Event::Miss => "miss",
            Event::Error => "error",
            Event::Join => "joined",
            Event::ShortCircuit => "short_circuited",
            Event::Bypass => "bypassed",
            Event::LocalHit => "local_hit",
        }
    }
}

impl Counters {
    pub(crate) fn record(&self, event: Event) {
        let counter = match event {
            Event::Hit => &self.hits,
            Event::Miss => &self.misses,
            Event::Error => &self.errors,
            Event::Join => &self.joins,
            Event::ShortCircuit => &self.short_circuited,
            Event::Bypass => &self.bypassed,
            Event::LocalHit => &self.local_hits,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            joins: self.joins.load(Ordering::Relaxed),
            short_circuited: self.short_circuited.load(Ordering::Relaxed),
            bypassed: self.bypassed.load(Ordering::Relaxed),
            local_hits: self.local_hits.load(Ordering::Relaxed),
            ..CacheStats::default()
        }
    }
}

impl CacheStats {
    /// Adds the local tier's sizes `(entries, bytes, invalidations, flushes)`.
    pub(crate) fn with_local(mut self, (entries, bytes, invalidations, flushes): (u64, u64, u64, u64)) -> Self {
        self.local_entries = entries;
        self.local_bytes = bytes;
        self.invalidations = invalidations;
        self.flushes = flushes;
        self
    }
}
