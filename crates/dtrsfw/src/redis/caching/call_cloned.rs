//! The cached calls for a function with a local tier whose values are kept decoded: a
//! local hit is a clone of the kept value (no Redis command, no zlib, no JSON). Same flow
//! as `call.rs` (`CachedFunction::flow`), another form of the kept value (`Typed`).

use std::convert::Infallible;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::args::CacheArgs;
use super::edge::{AsyncIo, SyncIo, run_sync};
use super::function::CachedFunction;
use super::local::Typed;
use crate::redis::connection::RedisInstance;

impl CachedFunction {
    /// Like [`call`](Self::call), with the local tier (if any) keeping the decoded value:
    /// a local hit returns a clone of it, which is why `T` must be `Clone + Send + Sync +
    /// 'static`. `#[cache_wrapper(local = true)]` calls this. Without a local tier it
    /// behaves exactly as [`call`](Self::call). Call one function one way: a value kept
    /// by [`call`](Self::call) is not served here (nor the reverse); such a call reads
    /// Redis.
    ///
    /// ```no_run
    /// # fn f(redis: dtrsfw::redis::RedisInstance) -> dtrsfw::redis::Result<()> {
    /// use dtrsfw::redis::caching::{CacheArgs, CachedFunction, LocalTier};
    /// let cached = CachedFunction::builder("square", ["x"]).local(LocalTier::new()).build()?;
    /// let y: i64 = cached.call_cloned(&redis, &CacheArgs::new().arg("x", &12), || 144);
    /// assert_eq!(y, 144);
    /// # Ok(()) }
    /// ```
    pub fn call_cloned<T, F>(&self, redis: &RedisInstance, args: &CacheArgs, f: F) -> T
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> T,
    {
        match self.try_call_cloned(redis, args, || Ok::<T, Infallible>(f())) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// [`try_call`](Self::try_call) with decoded values kept locally (see
    /// [`call_cloned`](Self::call_cloned)).
    ///
    /// ```no_run
    /// # fn f(redis: dtrsfw::redis::RedisInstance) -> dtrsfw::redis::Result<()> {
    /// use dtrsfw::redis::caching::{CacheArgs, CachedFunction, LocalTier};
    /// let cached = CachedFunction::builder("parse", ["s"]).local(LocalTier::new()).build()?;
    /// let n: Result<i64, std::num::ParseIntError> =
    ///     cached.try_call_cloned(&redis, &CacheArgs::new().arg("s", "42"), || "42".parse());
    /// assert_eq!(n, Ok(42));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `f`, when it runs and fails (never a Redis problem).
    pub fn try_call_cloned<T, E, F>(&self, redis: &RedisInstance, args: &CacheArgs, f: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Result<T, E>,
    {
        run_sync(self.flow::<SyncIo, Typed, T, E, _>(redis, args, async move { f() }))
    }

    /// [`call_async`](Self::call_async) with decoded values kept locally (see
    /// [`call_cloned`](Self::call_cloned)).
    ///
    /// ```no_run
    /// # async fn f(redis: dtrsfw::redis::RedisInstance) -> dtrsfw::redis::Result<()> {
    /// use dtrsfw::redis::caching::{CacheArgs, CachedFunction, LocalTier};
    /// let cached = CachedFunction::builder("user", ["id"]).local(LocalTier::new()).build()?;
    /// let name: String = cached
    ///     .call_cloned_async(&redis, &CacheArgs::new().arg("id", &7), async { "Ada".to_owned() })
    ///     .await;
    /// assert_eq!(name, "Ada");
    /// # Ok(()) }
    /// ```
    pub async fn call_cloned_async<T, Fut>(&self, redis: &RedisInstance, args: &CacheArgs, fut: Fut) -> T
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        Fut: Future<Output = T>,
    {
        match self
            .try_call_cloned_async(redis, args, async { Ok::<T, Infallible>(fut.await) })
            .await
        {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// [`try_call_async`](Self::try_call_async) with decoded values kept locally (see
    /// [`call_cloned`](Self::call_cloned)).
    ///
    /// ```no_run
    /// # async fn f(redis: dtrsfw::redis::RedisInstance) -> dtrsfw::redis::Result<()> {
    /// use dtrsfw::redis::caching::{CacheArgs, CachedFunction, LocalTier};
    /// let cached = CachedFunction::builder("parse", ["s"]).local(LocalTier::new()).build()?;
    /// let n: Result<i64, std::num::ParseIntError> = cached
    ///     .try_call_cloned_async(&redis, &CacheArgs::new().arg("s", "42"), async { "42".parse() })
    ///     .await;
    /// assert_eq!(n, Ok(42));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `fut`, when it is awaited and fails (never a Redis problem).
    pub async fn try_call_cloned_async<T, E, Fut>(
        &self,
        redis: &RedisInstance,
        args: &CacheArgs,
        fut: Fut,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>>,
    {
        self.flow::<AsyncIo, Typed, T, E, Fut>(redis, args, fut).await
    }
}
