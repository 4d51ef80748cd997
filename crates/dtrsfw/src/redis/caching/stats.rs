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
        }
    }
}
