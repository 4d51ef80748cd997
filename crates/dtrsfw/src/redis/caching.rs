//! Function caching in Redis, wire-compatible with `dtpyfw.redis.caching`.
//!
//! A cached call is looked up under a key derived from its arguments; on a miss the
//! function runs and its result is stored. Keys and values are exactly the Python
//! package's, so Python and Rust services share a cache:
//!
//! - **key**: `namespace:` + sha256 hex of the arguments as a JSON object
//!   (`{"name": value, ...}`, declaration order) in Python `json.dumps` default
//!   formatting (`", "` / `": "` separators, non-ASCII as `\uXXXX`, floats as `repr`);
//!   arguments named in `skip_cache_keys` left out; the namespace alone when no argument
//!   is left. See the README section "Caching" for which Rust values give byte-identical
//!   keys.
//! - **value**: zlib-compressed JSON of the result (any JSON is accepted on read).
//!
//! Two ways in: the function API, [`CachedFunction`] (the Python `cache_function` /
//! `acache_function`), and the attribute macro [`cache_wrapper`] (the Python
//! `@cache_wrapper`), which expands to calls into the function API.
//!
//! Beyond the Python package:
//!
//! - **Fail-open with bounded cost.** A cache read or write never fails the call: Redis
//!   down, slow, or a corrupt or foreign value → the function runs, a `tracing` warning
//!   is emitted (a corrupt entry is overwritten). Each cache command is bounded by a short
//!   [timeout](CachedFunctionBuilder::timeout), and after repeated failures a circuit
//!   opens so further calls skip Redis entirely until a periodic probe succeeds.
//! - **Single-flight.** Concurrent calls of one key in one process share one lookup and
//!   one computation; when the computing caller fails or is cancelled, a waiting caller
//!   takes over. Errors are never shared or cached.
//! - **Invalidation** of one call ([`invalidate`]) or a whole namespace
//!   ([`invalidate_namespace`], SCAN + UNLINK), and **counters** ([`CacheStats`]).
//!
//! The sync and async APIs share every decision (keys, conditions, codecs, circuit,
//! single-flight); they differ only in the I/O edge: the async side uses the instance's
//! multiplexed client under a `tokio` deadline, the sync side a few dedicated
//! connections whose socket timeouts are the cache timeout.
//!
//! ```no_run
//! use dtrsfw::redis::caching::{CacheArgs, CachedFunction};
//! # fn main() -> dtrsfw::redis::Result<()> {
//! # let redis = dtrsfw::redis::RedisInstance::new(dtrsfw::redis::RedisConfig::from_env()?)?;
//! let cached = CachedFunction::builder("cars", ["year", "state"])
//!     .expire(3600)
//!     .cache_only_for("state", "in", &["used", "new"])
//!     .build()?;
//! let count = cached.call(&redis, &CacheArgs::new().arg("year", &2020).arg("state", &"used"), || 42_u64);
//! # let _ = count; Ok(()) }
//! ```

mod condition;
mod pyjson;
mod state;
pub(crate) use self::state::ServerState;

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use self::condition::Condition;
pub use self::condition::{OPERATORS, Operator};
pub use self::state::CacheStats;
use self::state::{CircuitSettings, Counters, Event, Outcome, Role};
use super::connection::{RedisInstance, with_deadline};
use super::error::{Error, ErrorKind, Result};

/// The attribute macro: caches a function's results in Redis. See the crate README
/// section "Caching" and [`dtrsfw_macros::cache_wrapper`].
pub use dtrsfw_macros::cache_wrapper;

/// The default bound on one cache command.
pub const DEFAULT_CACHE_TIMEOUT: Duration = Duration::from_millis(250);
/// The default number of consecutive failures that opens the circuit.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// The default time the circuit stays open before a probe.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(1);

/// The arguments of one call: names and values, in order. Values are serialized as soon
/// as they are added (to Python-formatted JSON), so `CacheArgs` borrows nothing.
///
/// A value that cannot be serialized (a map with non-string keys, a failing `Serialize`)
/// does not fail anything: the call then runs without the cache, with a warning.
///
/// ```
/// use dtrsfw::redis::caching::CacheArgs;
///
/// let args = CacheArgs::new().arg("x", &1).arg("state", "used");
/// assert_eq!(args.to_json(), r#"{"x": 1, "state": "used"}"#);
/// ```
#[derive(Clone, Default)]
pub struct CacheArgs {
    entries: Vec<(Cow<'static, str>, String)>,
    error: Option<String>,
}

impl fmt::Debug for CacheArgs {
    // Argument values may be personal data: Debug shows the names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheArgs")
            .field("names", &self.entries.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl CacheArgs {
    /// No arguments.
    pub fn new() -> Self {
        CacheArgs::default()
    }

    /// Adds the argument `name` with `value`.
    pub fn arg<T: Serialize + ?Sized>(mut self, name: impl Into<Cow<'static, str>>, value: &T) -> Self {
        self.push(name, value);
        self
    }

    /// Adds the argument `name` with `value`, in place.
    pub fn push<T: Serialize + ?Sized>(&mut self, name: impl Into<Cow<'static, str>>, value: &T) {
        let name = name.into();
        match pyjson::to_python_json(value) {
            Ok(json) => self.entries.push((name, json)),
            Err(e) => {
                self.error
                    .get_or_insert_with(|| format!("argument {name:?} cannot be serialized: {e}"));
            }
        }
    }

    /// The arguments as the JSON object that is hashed into the key (Python formatting).
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (i, (name, value)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&pyjson::to_python_json(name.as_ref()).unwrap_or_default());
            out.push_str(": ");
            out.push_str(value);
        }
        out.push('}');
        out
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The cache key of a call with `args` in `namespace` (no argument skipped), as the
/// Python package computes it for keyword arguments.
///
/// ```
/// use dtrsfw::redis::caching::{cache_key, CacheArgs};
///
/// assert_eq!(cache_key("ns", &CacheArgs::new()), "ns");
/// let key = cache_key("ns", &CacheArgs::new().arg("x", &1).arg("state", "used"));
/// // python3 -c 'import json,hashlib; print(hashlib.sha256(json.dumps({"x": 1, "state": "used"}).encode()).hexdigest())'
/// assert_eq!(key, "ns:35518bae13e75c666fc5e4837d43620966266d4e7cc3844b4e5f485d5da5fc5a");
/// ```
pub fn cache_key(namespace: &str, args: &CacheArgs) -> String {
    pyjson::cache_key(namespace, args.entries.iter().map(|(n, v)| (n.as_ref(), v.as_str())))
}

/// Builds a [`CachedFunction`]; [`build`](Self::build) validates everything.
#[derive(Debug)]
#[must_use]
pub struct CachedFunctionBuilder {
    namespace: String,
    arguments: Vec<String>,
    expire: Option<u64>,
    conditions: Vec<(String, String, std::result::Result<Value, String>)>,
    skip: Vec<String>,
    timeout: Duration,
    circuit: CircuitSettings,
}

impl CachedFunctionBuilder {
    /// Time to live of cached values, in seconds, set atomically with the value
    /// (`SET ... EX`). `0` means no expiry, as in the Python package.
    /// By default, values never expire.
    pub fn expire(mut self, seconds: u64) -> Self {
        self.expire = (seconds > 0).then_some(seconds);
        self
    }

    /// Adds a condition: the call is cached when `argument operator value` holds for
    /// this or any other condition. `operator` is one of [`OPERATORS`] (see
    /// [`Operator`]). By default, every call is cached.
    pub fn cache_only_for<T: Serialize + ?Sized>(mut self, argument: &str, operator: &str, value: &T) -> Self {
        let value = serde_json::to_value(value).map_err(|e| e.to_string());
        self.conditions.push((argument.to_owned(), operator.to_owned(), value));
        self
    }

    /// Arguments left out of the key (request ids, connections, ...). By default, every
    /// argument is part of the key.
    pub fn skip_cache_keys<I, S>(mut self, arguments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.skip.extend(arguments.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// The longest one cache command (GET, SET) may take before the call gives up on the
    /// cache and runs the function. A call whose read timed out or could not connect
    /// does not try to write either, so an unreachable or stalled server costs a call at
    /// most this much. By default, [`DEFAULT_CACHE_TIMEOUT`] (250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Consecutive connection failures or timeouts (of any cached function on the same
    /// server) after which calls skip Redis. By default, [`DEFAULT_FAILURE_THRESHOLD`] (3).
    pub fn circuit_failure_threshold(mut self, failures: u32) -> Self {
        self.circuit.failure_threshold = failures.max(1);
        self
    }

    /// How long calls skip Redis once the circuit opened, before one call probes it
    /// again. By default, [`DEFAULT_COOL_DOWN`] (1 s).
    pub fn circuit_cool_down(mut self, cool_down: Duration) -> Self {
        self.circuit.cool_down = cool_down;
        self
    }

    /// Validates the options: every operator known, every condition and skipped
    /// argument one of the declared arguments, every condition value serializable.
    pub fn build(self) -> Result<CachedFunction> {
        let known = |name: &str, what: &str| {
            if self.arguments.iter().any(|a| a == name) {
                Ok(())
            } else {
                Err(Error::invalid_input(format!(
                    "{what} names {name:?}, which is not an argument; the arguments are: {}",
                    self.arguments.join(", ")
                )))
            }
        };
        let mut conditions = Vec::with_capacity(self.conditions.len());
        for (argument, operator, value) in &self.conditions {
            known(argument, "cache_only_for")?;
            let operator: Operator = operator.parse()?;
            let value = value.clone().map_err(|e| {
                Error::invalid_input(format!(
                    "cache_only_for value for {argument:?} cannot be serialized: {e}"
                ))
            })?;
            conditions.push(Condition {
                argument: argument.clone(),
                operator,
                value,
            });
        }
        for skipped in &self.skip {
            known(skipped, "skip_cache_keys")?;
        }
        Ok(CachedFunction {
            inner: Arc::new(Spec {
                namespace: self.namespace,
                arguments: self.arguments,
                expire: self.expire,
                conditions,
                skip: self.skip,
                timeout: self.timeout,
                circuit: self.circuit,
                counters: Counters::default(),
            }),
        })
    }
}

#[derive(Debug)]
struct Spec {
    namespace: String,
    arguments: Vec<String>,
    expire: Option<u64>,
    conditions: Vec<Condition>,
    skip: Vec<String>,
    timeout: Duration,
    circuit: CircuitSettings,
    counters: Counters,
}

/// A function's cache settings: namespace, declared arguments, expiry, conditions,
/// skipped arguments. Cheap to clone (clones share counters). The Rust form of the
/// Python `cache_function(func, redis, namespace, expire, cache_only_for,
/// skip_cache_keys, **kwargs)`: `CachedFunction::builder(namespace, arguments)...build()?`
/// once, then [`call`](Self::call) / [`call_async`](Self::call_async) (or the `try_`
/// forms for functions returning `Result`) for each call.
#[derive(Debug, Clone)]
pub struct CachedFunction {
    inner: Arc<Spec>,
}

/// What a leader's cache lookup found.
/// Whether a cache read failed because the server is unreachable or too slow (not
/// because of what it answered): the call then gives up on the cache for its write too,
/// so that one call costs at most one cache timeout, not one per command.
fn gave_up<R>(read: &Result<R>) -> bool {
    matches!(read, Err(e) if e.is_transient())
}

enum Lookup<T> {
    Hit(T, Arc<[u8]>),
    Miss,
}

impl CachedFunction {
    /// Starts the settings of a function cached under `namespace` whose arguments are
    /// named `arguments` (in declaration order; conditions and skips are checked against
    /// them).
    pub fn builder<I, S>(namespace: impl Into<String>, arguments: I) -> CachedFunctionBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        CachedFunctionBuilder {
            namespace: namespace.into(),
            arguments: arguments.into_iter().map(|s| s.as_ref().to_owned()).collect(),
            expire: None,
            conditions: Vec::new(),
            skip: Vec::new(),
            timeout: DEFAULT_CACHE_TIMEOUT,
            circuit: CircuitSettings {
                failure_threshold: DEFAULT_FAILURE_THRESHOLD,
                cool_down: DEFAULT_COOL_DOWN,
            },
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// This function's counters.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }

    /// The key a call with `args` is stored under (skipped arguments left out).
    pub fn key(&self, args: &CacheArgs) -> String {
        let spec = &self.inner;
        pyjson::cache_key(
            &spec.namespace,
            args.entries
                .iter()
                .filter(|(n, _)| !spec.skip.iter().any(|s| s == n))
                .map(|(n, v)| (n.as_ref(), v.as_str())),
        )
    }

    fn record(&self, server: &ServerState, event: Event) {
        self.inner.counters.record(event);
        server.counters.record(event);
    }

    /// The key to use, or `None` when this call is not to be cached.
    fn prepare(&self, server: &ServerState, args: &CacheArgs) -> Option<String> {
        let spec = &self.inner;
        if let Some(error) = &args.error {
            tracing::warn!(namespace = %spec.namespace, %error, "redis cache: call not cached");
            self.record(server, Event::Error);
            return None;
        }
        if let Some((name, _)) = args
            .entries
            .iter()
            .find(|(n, _)| !spec.arguments.iter().any(|a| a == n))
        {
            tracing::warn!(
                namespace = %spec.namespace, argument = %name,
                "redis cache: call not cached, argument not declared in the builder"
            );
            self.record(server, Event::Error);
            return None;
        }
        if !spec.conditions.is_empty()
            && !spec
                .conditions
                .iter()
                .any(|c| c.holds(&argument_value(args, &c.argument)))
        {
            self.record(server, Event::Bypass);
            return None;
        }
        Some(self.key(args))
    }

    /// Applies the circuit to one command's outcome: `Some` on success; on failure a
    /// warning, an error count, and (for connection trouble) a circuit failure.
    fn settle<R>(&self, server: &ServerState, what: &str, result: Result<R>) -> Option<R> {
        match result {
            Ok(r) => {
                server.circuit.success();
                Some(r)
            }
            Err(e) => {
                if e.is_transient() {
                    server.circuit.failure(self.inner.circuit);
                }
                tracing::warn!(namespace = %self.inner.namespace, error = %e, "redis cache: {what} failed, ignored");
                self.record(server, Event::Error);
                None
            }
        }
    }

    fn allowed(&self, server: &ServerState) -> bool {
        let allowed = server.circuit.allow(self.inner.circuit);
        if !allowed {
            self.record(server, Event::ShortCircuit);
        }
        allowed
    }

    /// Turns the stored bytes into a value, or a miss (with a warning when unreadable).
    fn interpret<T: DeserializeOwned>(&self, server: &ServerState, key: &str, raw: Option<Vec<u8>>) -> Lookup<T> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            tracing::debug!(key, "redis cache: miss");
            return Lookup::Miss;
        };
        match decode_value::<T>(&raw) {
            Ok((value, json)) => {
                tracing::debug!(key, "redis cache: hit");
                self.record(server, Event::Hit);
                Lookup::Hit(value, json)
            }
            Err(e) => {
                tracing::warn!(
                    namespace = %self.inner.namespace, error = %e,
                    "redis cache: stored value unreadable, recomputing and overwriting"
                );
                self.record(server, Event::Error);
                Lookup::Miss
            }
        }
    }

    fn set_cmd(&self, key: &str, value: &[u8]) -> redis::Cmd {
        set_cmd(key, value, self.inner.expire)
    }

    // ---- async edge ----

    async fn query_async<R: redis::FromRedisValue>(&self, redis: &RedisInstance, cmd: &redis::Cmd) -> Result<R> {
        with_deadline(self.inner.timeout, "redis cache command", async {
            let mut client = redis.get_async_redis_client().await?;
            cmd.query_async(&mut client)
                .await
                .map_err(|e| Error::redis("redis cache", e))
        })
        .await
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
    pub async fn try_call_async<T, E, Fut>(&self, redis: &RedisInstance, args: &CacheArgs, fut: Fut) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        Fut: Future<Output = Result<T, E>>,
    {
        let server = ServerState::of(redis);
        let Some(key) = self.prepare(&server, args) else {
            return fut.await;
        };
        loop {
            let guard = match server.join(&key) {
                Role::Leader(guard) => guard,
                Role::Waiter(flight) => match flight.wait().await {
                    Outcome::Done(json) => return self.joined(&server, &json, fut).await,
                    // The leader failed or was cancelled: try to lead.
                    Outcome::Abandoned | Outcome::Pending => continue,
                },
            };
            let mut reachable = true;
            if self.allowed(&server) {
                let raw = self.query_async(redis, &get_cmd(&key)).await;
                reachable = !gave_up(&raw);
                if let Some(raw) = self.settle(&server, "read", raw)
                    && let Lookup::Hit(value, json) = self.interpret(&server, &key, raw)
                {
                    guard.complete(json);
                    return Ok(value);
                }
            }
            self.record(&server, Event::Miss);
            // Cancelled here, `guard` drops and a waiter takes over.
            let value = fut.await?;
            if let Some((json, compressed)) = self.encode(&server, &value) {
                if reachable && self.allowed(&server) {
                    let written = self.query_async::<()>(redis, &self.set_cmd(&key, &compressed)).await;
                    self.settle(&server, "write", written);
                }
                guard.complete(json);
            }
            return Ok(value);
        }
    }

    /// A waiter's end: decode the leader's value; should it not fit this caller's type,
    /// compute independently.
    async fn joined<T, E, Fut>(&self, server: &ServerState, json: &[u8], fut: Fut) -> Result<T, E>
    where
        T: DeserializeOwned,
        Fut: Future<Output = Result<T, E>>,
    {
        match serde_json::from_slice(json) {
            Ok(value) => {
                self.record(server, Event::Join);
                Ok(value)
            }
            Err(e) => {
                tracing::warn!(namespace = %self.inner.namespace, error = %e, "redis cache: shared value does not decode");
                self.record(server, Event::Error);
                fut.await
            }
        }
    }

    fn encode<T: Serialize>(&self, server: &ServerState, value: &T) -> Option<(Arc<[u8]>, Vec<u8>)> {
        match encode_value(value) {
            Ok(pair) => Some(pair),
            Err(e) => {
                tracing::warn!(namespace = %self.inner.namespace, error = %e, "redis cache: result not cacheable");
                self.record(server, Event::Error);
                None
            }
        }
    }

    // ---- sync edge ----

    fn query_sync<R: redis::FromRedisValue>(
        &self,
        redis: &RedisInstance,
        server: &ServerState,
        cmd: &redis::Cmd,
    ) -> Result<R> {
        server.with_sync_connection(redis, self.inner.timeout, |conn| cmd.query(conn))
    }

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
    pub fn try_call<T, E, F>(&self, redis: &RedisInstance, args: &CacheArgs, f: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T, E>,
    {
        let server = ServerState::of(redis);
        let Some(key) = self.prepare(&server, args) else {
            return f();
        };
        loop {
            let guard = match server.join(&key) {
                Role::Leader(guard) => guard,
                Role::Waiter(flight) => match flight.wait_blocking() {
                    Outcome::Done(json) => {
                        return match serde_json::from_slice(&json) {
                            Ok(value) => {
                                self.record(&server, Event::Join);
                                Ok(value)
                            }
                            Err(e) => {
                                tracing::warn!(namespace = %self.inner.namespace, error = %e, "redis cache: shared value does not decode");
                                self.record(&server, Event::Error);
                                f()
                            }
                        };
                    }
                    Outcome::Abandoned | Outcome::Pending => continue,
                },
            };
            let mut reachable = true;
            if self.allowed(&server) {
                let raw = self.query_sync(redis, &server, &get_cmd(&key));
                reachable = !gave_up(&raw);
                if let Some(raw) = self.settle(&server, "read", raw)
                    && let Lookup::Hit(value, json) = self.interpret(&server, &key, raw)
                {
                    guard.complete(json);
                    return Ok(value);
                }
            }
            self.record(&server, Event::Miss);
            let value = f()?;
            if let Some((json, compressed)) = self.encode(&server, &value) {
                if reachable && self.allowed(&server) {
                    let written = self.query_sync::<()>(redis, &server, &self.set_cmd(&key, &compressed));
                    self.settle(&server, "write", written);
                }
                guard.complete(json);
            }
            return Ok(value);
        }
    }

    /// Deletes the entry of the call with `args` (skipped arguments ignored); `true` if
    /// there was one. Unlike cached calls, this reports Redis errors.
    pub fn invalidate(&self, redis: &RedisInstance, args: &CacheArgs) -> Result<bool> {
        unlink_key(redis, &self.key(args))
    }

    /// The async twin of [`invalidate`](Self::invalidate).
    pub async fn invalidate_async(&self, redis: &RedisInstance, args: &CacheArgs) -> Result<bool> {
        unlink_key_async(redis, &self.key(args)).await
    }
}

/// The value of `name` in `args` as JSON (`null` if absent, as Python's `kwargs.get`).
fn argument_value(args: &CacheArgs, name: &str) -> Value {
    args.get(name)
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or(Value::Null)
}

fn get_cmd(key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("GET");
    cmd.arg(key);
    cmd
}

/// One atomic write: `SET key value [EX n]` (the Python package does DEL then SETEX).
fn set_cmd(key: &str, value: &[u8], expire: Option<u64>) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if let Some(seconds) = expire.filter(|s| *s > 0) {
        cmd.arg("EX").arg(seconds);
    }
    cmd
}

/// The stored form of a value: zlib-compressed JSON in Python formatting. Also returns
/// the JSON, which single-flight waiters decode.
fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<(Arc<[u8]>, Vec<u8>)> {
    let json = pyjson::to_python_json(value).map_err(|e| Error::serialization("encoding the cached value", e))?;
    let mut encoder =
        flate2::write::ZlibEncoder::new(Vec::with_capacity(json.len() / 2 + 16), flate2::Compression::default());
    encoder
        .write_all(json.as_bytes())
        .and_then(|()| encoder.finish())
        .map(|compressed| (Arc::from(json.into_bytes()), compressed))
        .map_err(|e| Error::new(ErrorKind::Serialization, format!("compressing the cached value: {e}")))
}

/// The value stored in `raw` (zlib-compressed JSON, any formatting), with its JSON.
fn decode_value<T: DeserializeOwned>(raw: &[u8]) -> Result<(T, Arc<[u8]>)> {
    let mut json = Vec::with_capacity(raw.len() * 4);
    flate2::read::ZlibDecoder::new(raw)
        .read_to_end(&mut json)
        .map_err(|e| Error::new(ErrorKind::Serialization, format!("cached value is not zlib data: {e}")))?;
    let value = serde_json::from_slice(&json).map_err(|e| Error::serialization("decoding the cached value", e))?;
    Ok((value, Arc::from(json)))
}

fn default_spec_for(namespace: &str) -> CachedFunction {
    // `cache_data` shares the circuit and counters with the server's other cache users.
    CachedFunction::builder(namespace, std::iter::empty::<&str>())
        .build()
        .unwrap_or_else(|_| unreachable!("no conditions, nothing to validate"))
}

/// Stores `value` under `key` (zlib-compressed JSON, expiring after `expire` seconds if
/// given) and returns it: the Python `cache_data`. Never fails: a Redis problem is
/// logged as a warning.
///
/// ```no_run
/// # fn f(redis: dtrsfw::redis::RedisInstance) {
/// let user = dtrsfw::redis::caching::cache_data(&redis, serde_json::json!({"id": 123}), "user:123", Some(3600));
/// # }
/// ```
pub fn cache_data<T: Serialize>(redis: &RedisInstance, value: T, key: &str, expire: Option<u64>) -> T {
    let cache = default_spec_for(key);
    let server = ServerState::of(redis);
    if let Some((_, compressed)) = cache.encode(&server, &value)
        && cache.allowed(&server)
    {
        let written = cache.query_sync::<()>(redis, &server, &set_cmd(key, &compressed, expire));
        cache.settle(&server, "write", written);
    }
    value
}

/// The async twin of [`cache_data`].
pub async fn cache_data_async<T: Serialize>(redis: &RedisInstance, value: T, key: &str, expire: Option<u64>) -> T {
    let cache = default_spec_for(key);
    let server = ServerState::of(redis);
    if let Some((_, compressed)) = cache.encode(&server, &value)
        && cache.allowed(&server)
    {
        let written = cache.query_async::<()>(redis, &set_cmd(key, &compressed, expire)).await;
        cache.settle(&server, "write", written);
    }
    value
}

/// Reads a cached value written by [`cache_data`], a cached function, or the Python
/// package: `None` when absent. Errors (server, corrupt value) are reported.
pub fn get_cached<T: DeserializeOwned>(redis: &RedisInstance, key: &str) -> Result<Option<T>> {
    let raw: Option<Vec<u8>> = get_cmd(key)
        .query(&mut redis.get_redis_client())
        .map_err(|e| Error::redis("GET", e))?;
    raw.map(|raw| decode_value(&raw).map(|(v, _)| v)).transpose()
}

/// The async twin of [`get_cached`].
pub async fn get_cached_async<T: DeserializeOwned>(redis: &RedisInstance, key: &str) -> Result<Option<T>> {
    let mut client = redis.get_async_redis_client().await?;
    let raw: Option<Vec<u8>> = get_cmd(key)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis("GET", e))?;
    raw.map(|raw| decode_value(&raw).map(|(v, _)| v)).transpose()
}

/// Counters of every cached function (and `cache_data`) using `redis`'s server, in this
/// process.
pub fn cache_stats(redis: &RedisInstance) -> CacheStats {
    ServerState::of(redis).counters.snapshot()
}

/// Deletes the entry of the call with `args` in `namespace`; `true` if there was one.
/// Pass the arguments that are part of the key (not the skipped ones).
pub fn invalidate(redis: &RedisInstance, namespace: &str, args: &CacheArgs) -> Result<bool> {
    unlink_key(redis, &cache_key(namespace, args))
}

/// The async twin of [`invalidate`].
pub async fn invalidate_async(redis: &RedisInstance, namespace: &str, args: &CacheArgs) -> Result<bool> {
    unlink_key_async(redis, &cache_key(namespace, args)).await
}

fn unlink_key(redis: &RedisInstance, key: &str) -> Result<bool> {
    let n: u64 = redis::cmd("UNLINK")
        .arg(key)
        .query(&mut redis.get_redis_client())
        .map_err(|e| Error::redis("UNLINK", e))?;
    Ok(n > 0)
}

async fn unlink_key_async(redis: &RedisInstance, key: &str) -> Result<bool> {
    let mut client = redis.get_async_redis_client().await?;
    let n: u64 = redis::cmd("UNLINK")
        .arg(key)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis("UNLINK", e))?;
    Ok(n > 0)
}

/// Keys examined per SCAN step (and so at most unlinked per UNLINK).
const SCAN_COUNT: usize = 1000;

/// `namespace:*` with glob characters of the namespace escaped.
fn namespace_pattern(namespace: &str) -> String {
    let mut pattern = String::with_capacity(namespace.len() + 2);
    for c in namespace.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str(":*");
    pattern
}

fn scan_cmd(cursor: u64, pattern: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(SCAN_COUNT);
    cmd
}

fn unlink_cmd(keys: &[String]) -> redis::Cmd {
    let mut cmd = redis::cmd("UNLINK");
    cmd.arg(keys);
    cmd
}

/// Deletes every entry of `namespace` (the keys `namespace:*` and the no-argument key
/// `namespace`) without blocking the server: SCAN in steps, UNLINK each step's keys.
/// Returns how many keys were deleted. Note that a namespace `a` also covers keys of a
/// namespace `a:b`, as their keys share the prefix.
pub fn invalidate_namespace(redis: &RedisInstance, namespace: &str) -> Result<u64> {
    let mut conn = redis.get_redis()?;
    let pattern = namespace_pattern(namespace);
    let mut deleted: u64 = unlink_cmd(&[namespace.to_owned()])
        .query(&mut conn)
        .map_err(|e| Error::redis("UNLINK", e))?;
    // On a cluster each primary holds a share of the keys and has its own SCAN cursor:
    // scan every primary (redis-rs sends each SCAN to the node named). UNLINK of one
    // step's keys may span slots; redis-rs splits it per slot.
    let targets = conn
        .connection_mut()
        .scan_targets()
        .map_err(|e| Error::redis("CLUSTER SLOTS", e))?;
    for node in &targets {
        let mut cursor = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = conn
                .connection_mut()
                .query_on(node.as_ref(), &scan_cmd(cursor, &pattern))
                .map_err(|e| Error::redis("SCAN", e))?;
            if !keys.is_empty() {
                let n: u64 = unlink_cmd(&keys)
                    .query(&mut conn)
                    .map_err(|e| Error::redis("UNLINK", e))?;
                deleted += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    tracing::debug!(
        namespace,
        deleted,
        nodes = targets.len(),
        "redis cache: namespace invalidated"
    );
    Ok(deleted)
}

/// The async twin of [`invalidate_namespace`].
pub async fn invalidate_namespace_async(redis: &RedisInstance, namespace: &str) -> Result<u64> {
    let mut client = redis.get_async_redis_client().await?;
    let pattern = namespace_pattern(namespace);
    let mut deleted: u64 = unlink_cmd(&[namespace.to_owned()])
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis("UNLINK", e))?;
    let targets = client
        .scan_targets()
        .await
        .map_err(|e| Error::redis("CLUSTER SLOTS", e))?;
    for node in &targets {
        let mut cursor = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = client
                .query_on(node.as_ref(), &scan_cmd(cursor, &pattern))
                .await
                .map_err(|e| Error::redis("SCAN", e))?;
            if !keys.is_empty() {
                let n: u64 = unlink_cmd(&keys)
                    .query_async(&mut client)
                    .await
                    .map_err(|e| Error::redis("UNLINK", e))?;
                deleted += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    tracing::debug!(
        namespace,
        deleted,
        nodes = targets.len(),
        "redis cache: namespace invalidated"
    );
    Ok(deleted)
}

/// Support for the code `#[cache_wrapper]` generates; not a public API.
#[doc(hidden)]
pub mod __private {
    use super::{CachedFunction, CachedFunctionBuilder};

    /// Builds the settings of a wrapped function. The macro has validated everything
    /// it can see at compile time; what remains (a condition value failing to
    /// serialize) makes the function run uncached rather than panic.
    pub fn build(builder: CachedFunctionBuilder) -> Option<CachedFunction> {
        match builder.build() {
            Ok(cached) => Some(cached),
            Err(e) => {
                tracing::warn!(error = %e, "redis cache: cache_wrapper options invalid, function runs uncached");
                None
            }
        }
    }

    /// Coerces the `redis = ...` expression (a `RedisInstance`, a reference, a lazily
    /// initialised static) to a reference.
    pub fn instance(redis: &crate::redis::RedisInstance) -> &crate::redis::RedisInstance {
        redis
    }
}
