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

// Layers, lowest first (a file imports only files above it in this list, and
// `crate::redis::{connection, error}`): lock, stats, circuit, flight, sync_conns, server
// (per-server state) · pyjson, codec, commands, operator, condition, args (pure) ·
// function, builder, policy (decisions) · edge (the sync/async I/O seam) · call, admin
// (the flows, written once) · macro_support.
mod admin;
mod args;
mod builder;
mod call;
mod circuit;
mod codec;
mod commands;
mod condition;
mod edge;
mod flight;
mod function;
mod lock;
mod operator;
mod policy;
mod pyjson;
mod server;
mod stats;
mod sync_conns;

pub use self::admin::{
    cache_data, cache_data_async, cache_stats, get_cached, get_cached_async, invalidate, invalidate_async,
    invalidate_namespace, invalidate_namespace_async,
};
pub use self::args::{CacheArgs, cache_key};
pub use self::builder::{CachedFunctionBuilder, DEFAULT_CACHE_TIMEOUT, DEFAULT_COOL_DOWN, DEFAULT_FAILURE_THRESHOLD};
pub use self::function::CachedFunction;
pub use self::operator::{OPERATORS, Operator};
pub use self::stats::CacheStats;

/// The attribute macro: caches a function's results in Redis. See the crate README
/// section "Caching" and [`dtrsfw_macros::cache_wrapper`].
pub use dtrsfw_macros::cache_wrapper;

/// Support for the code `#[cache_wrapper]` generates; not a public API.
#[doc(hidden)]
#[path = "macro_support.rs"]
pub mod __private;
