//! A cached call: look up, or compute and store, sharing one computation among
//! concurrent identical calls. Written once ([`CachedFunction::flow`]); the sync and
//! async methods only choose the edge (see `edge.rs`).

use std::convert::Infallible;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::args::CacheArgs;
use super::commands::set_cmd;
use super::edge::{AsyncIo, CallIo, SyncIo, run_sync};
use super::flight::{FlightGuard, Outcome, Role};
use super::function::CachedFunction;
use super::local::{AsJson, LocalForm, LocalStore};
use super::policy::{Lookup, gave_up};
use super::server::ServerState;
use super::stats::Event;
use super::tiered::Fill;
use crate::redis::connection::RedisInstance;
use crate::redis::observe;

impl CachedFunction {
    /// Runs `f` through the cache (the Python `cache_function`). `f` only runs on a miss.
    ///
    /// This blocks the calling thread (on Redis, and, on a concurrent miss of the same key,
    /// on the caller computing it). Inside an async task use
    /// [`call_async`](Self::call_async): a blocking call that waits for an async caller of
    /// the same key running on the same thread would wait forever.
    ///
    /// ```no_run
    /// # fn f(redis: dtrsfw::redis::RedisInstance) -> dtrsfw::redis::Result<()> {
    /// use dtrsfw::redis::caching::{CacheArgs, CachedFunction};
    /// let cached = CachedFunction::builder("square", ["x"]).build()?;
    /// let y: i64 = cached.call(&redis, &CacheArgs::new().arg("x", &12), || 144);
    /// assert_eq!(y, 144);
    /// # Ok(()) }
    /// ```
    pub fn call<T, F>(&self, redis: &RedisInstance, args: &CacheArgs, f: F) -> T
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> T,
    {
        match self.try_call(redis, args, || Ok::<T, Infallible>(f())) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// Like [`call`](Self::call) for a computation that may fail: only `Ok` values are
    /// cached (and shared with concurrent callers).
    ///
    /// # Errors
    ///
    /// The error of `f`, when it runs and fails. Redis problems are never returned: as with
    /// [`call`](Self::call), they are logged and the call runs uncached.
    pub fn try_call<T, E, F>(&self, redis: &RedisInstance, args: &CacheArgs, f: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T, E>,
    {
        // `f` runs (on this thread) when the flow awaits it, i.e. only on a miss.
        run_sync(self.flow::<SyncIo, AsJson, T, E, _>(redis, args, async move { f() }))
    }

    /// Runs `fut` through the cache (the async `cache_function`). `fut` is only awaited
    /// on a miss.
    ///
    /// ```no_run
    /// # async fn f(redis: dtrsfw::redis::RedisInstance) -> dtrsfw::redis::Result<()> {
    /// use dtrsfw::redis::caching::{CacheArgs, CachedFunction};
    /// let cached = CachedFunction::builder("user", ["id"]).expire(60).build()?;
    /// let name: String = cached
    ///     .call_async(&redis, &CacheArgs::new().arg("id", &7), async { "Ada".to_owned() })
    ///     .await;
    /// assert_eq!(name, "Ada");
    /// # Ok(()) }
    /// ```
    pub async fn call_async<T, Fut>(&self, redis: &RedisInstance, args: &CacheArgs, fut: Fut) -> T
    where
        T: Serialize + DeserializeOwned,
        Fut: Future<Output = T>,
    {
        match self
            .try_call_async(redis, args, async { Ok::<T, Infallible>(fut.await) })
            .await
        {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// Like [`call_async`](Self::call_async) for a computation that may fail: only `Ok`
    /// values are cached (and shared with concurrent callers); an `Err` is returned to
    /// this caller alone.
    ///
    /// # Errors
    ///
    /// The error of `fut`, when it is awaited and fails. Redis problems are never returned:
    /// as with [`call_async`](Self::call_async), they are logged and the call runs
    /// uncached.
    pub async fn try_call_async<T, E, Fut>(&self, redis: &RedisInstance, args: &CacheArgs, fut: Fut) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        Fut: Future<Output = Result<T, E>>,
    {
        self.flow::<AsyncIo, AsJson, T, E, Fut>(redis, args, fut).await
    }

    /// The cached call: not cached → compute; served locally (in the form `K`); a
    /// concurrent identical call in flight → take its value (or take over when it
    /// fails); else lead: look up, compute, store.
    pub(super) async fn flow<I, K, T, E, Fut>(
        &self,
        redis: &RedisInstance,
        args: &CacheArgs,
        compute: Fut,
    ) -> Result<T, E>
    where
        I: CallIo,
        K: LocalForm<T>,
        T: Serialize + DeserializeOwned,
        Fut: Future<Output = Result<T, E>>,
    {
        let server = ServerState::of(redis);
        let Some(key) = self.prepare(&server, args) else {
            return compute.await;
        };
        let local = self.local_store(redis, &server);
        if let Some(value) = local.and_then(|store| self.local_hit::<T, K>(&server, store, &key)) {
            return Ok(value);
        }
        loop {
            match server.flights.join(&key) {
                Role::Leader(guard) => {
                    let leader = Leader {
                        server: &server,
                        key: &key,
                        guard,
                        local,
                    };
                    return self.lead::<I, K, T, E, Fut>(redis, leader, compute).await;
                }
                Role::Waiter(flight) => match I::wait(&flight).await {
                    Outcome::Done(json) => {
                        return match self.take_shared(&server, &json) {
                            Some(value) => Ok(value),
                            None => compute.await,
                        };
                    }
                    // The leader failed or was cancelled: try to lead.
                    Outcome::Abandoned | Outcome::Pending => continue,
                },
            }
        }
    }

    /// The leader's part: read; on a miss compute, write (unless the read found the
    /// server unreachable), and hand the value to the waiters. A value read from Redis
    /// also fills the local tier, if any (its ticket taken before the read).
    async fn lead<I, K, T, E, Fut>(&self, redis: &RedisInstance, leader: Leader<'_>, compute: Fut) -> Result<T, E>
    where
        I: CallIo,
        K: LocalForm<T>,
        T: Serialize + DeserializeOwned,
        Fut: Future<Output = Result<T, E>>,
    {
        let Leader {
            server,
            key,
            guard,
            local,
        } = leader;
        let timeout = self.inner.timeout;
        let mut reachable = true;
        if self.allowed(server) {
            let ticket = local.and_then(|_| server.tracking.ticket());
            let timer = observe::Timer::start();
            let read = self.read::<I>(redis, server, key, ticket).await;
            observe::cache_lookup(&self.inner.namespace, timer);
            reachable = !gave_up(&read);
            if let Some((raw, pttl)) = self.settle(server, "read", read)
                && let Lookup::Hit(value, json) = self.interpret(server, key, raw)
            {
                if let (Some(store), Some(ticket), Some(pttl_ms)) = (local, ticket, pttl) {
                    let fill = Fill {
                        server,
                        store,
                        ticket,
                        key,
                        pttl_ms,
                    };
                    self.fill_local::<T, K>(&fill, &value, &json);
                }
                guard.complete(json);
                return Ok(value);
            }
        }
        self.record(server, Event::Miss);
        // Cancelled here, `guard` drops and a waiter takes over.
        let timer = observe::Timer::start();
        let value = compute.await;
        observe::cache_compute(&self.inner.namespace, timer);
        let value = value?;
        if let Some((json, compressed)) = self.encode(server, &value) {
            if reachable && self.allowed(server) {
                let set = set_cmd(key, &compressed, self.inner.expire);
                let written = I::query::<()>(redis, server, timeout, &set).await;
                self.settle(server, "write", written);
            }
            guard.complete(json);
        }
        Ok(value)
    }
}

/// What the leader of a flight works with.
struct Leader<'a> {
    server: &'a ServerState,
    key: &'a str,
    guard: FlightGuard<'a>,
    /// The function's local store, when it has a local tier on this server.
    local: Option<&'a Arc<LocalStore>>,
}
