//! A cached function: its validated settings and counters.

use std::sync::Arc;
use std::time::Duration;

use super::admin::{unlink_key, unlink_key_async};
use super::args::CacheArgs;
use super::circuit::CircuitSettings;
use super::condition::Condition;
use super::local::LocalSlot;
use super::stats::{CacheStats, Counters};
use crate::redis::connection::RedisInstance;
use crate::redis::error::Result;

/// The validated settings, shared by the clones of a [`CachedFunction`].
#[derive(Debug)]
pub(super) struct Spec {
    pub(super) namespace: String,
    pub(super) arguments: Vec<String>,
    pub(super) expire: Option<u64>,
    pub(super) conditions: Vec<Condition>,
    pub(super) skip: Vec<String>,
    pub(super) timeout: Duration,
    pub(super) circuit: CircuitSettings,
    pub(super) counters: Counters,
    /// The local tier, when opted in.
    pub(super) local: Option<LocalSlot>,
}

/// A function's cache settings: namespace, declared arguments, expiry, conditions,
/// skipped arguments. Cheap to clone (clones share counters). The Rust form of the
/// Python `cache_function(func, redis, namespace, expire, cache_only_for,
/// skip_cache_keys, **kwargs)`: `CachedFunction::builder(namespace, arguments)...build()?`
/// once, then [`call`](Self::call) / [`call_async`](Self::call_async) (or the `try_`
/// forms for functions returning `Result`) for each call.
#[derive(Debug, Clone)]
pub struct CachedFunction {
    pub(super) inner: Arc<Spec>,
}

impl CachedFunction {
    /// The namespace.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// This function's counters.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        let stats = self.inner.counters.snapshot();
        match self.inner.local.as_ref().and_then(LocalSlot::current) {
            Some(store) => stats.with_local(store.sizes()),
            None => stats,
        }
    }

    /// The key a call with `args` is stored under (skipped arguments left out).
    #[must_use]
    pub fn key(&self, args: &CacheArgs) -> String {
        let spec = &self.inner;
        args.key_without(&spec.namespace, |name| spec.skip.iter().any(|s| s == name))
    }

    /// Deletes the entry of the call with `args` (skipped arguments ignored); `true` if
    /// there was one. Unlike cached calls, this reports Redis errors.
    ///
    /// # Errors
    ///
    /// A connection, timeout or server error from Redis (see
    /// [`Error::kind`](crate::redis::Error::kind)).
    pub fn invalidate(&self, redis: &RedisInstance, args: &CacheArgs) -> Result<bool> {
        unlink_key(redis, &self.key(args))
    }

    /// The async twin of [`invalidate`](Self::invalidate).
    ///
    /// # Errors
    ///
    /// As [`invalidate`](Self::invalidate).
    pub async fn invalidate_async(&self, redis: &RedisInstance, args: &CacheArgs) -> Result<bool> {
        unlink_key_async(redis, &self.key(args)).await
    }

    /// The settings `cache_data` writes with: none of a function's, but the server's
    /// circuit and counters are shared with its other cache users.
    pub(super) fn for_data(key: &str) -> CachedFunction {
        CachedFunction::builder(key, std::iter::empty::<&str>())
            .build()
            .unwrap_or_else(|_| unreachable!("no conditions, nothing to validate"))
    }
}
