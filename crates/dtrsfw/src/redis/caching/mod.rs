//! Function caching in Redis, wire-compatible with `dtpyfw.redis.caching`.
//!
//! A cached call is looked up under a key derived from its arguments; on a miss the
//! function runs and its result is stored. Keys and values are exactly the Python
//! package's format, so a Python service and a Rust service calling the same function
//! with the same (keyword) arguments share entries.
//!
//! Two ways in: the function API, [`CachedFunction`] (the Python `cache_function` /
//! `acache_function`), and the attribute macro [`cache_wrapper`] (the Python
//! `@cache_wrapper`), which expands to calls into the function API. Runnable programs:
//! `examples/cache_wrapper.rs` and `examples/cache_function.rs` in this crate.
//!
//! # The attribute macro
//!
//! ```no_run
//! use std::sync::LazyLock;
//!
//! use dtrsfw::cache_wrapper;
//! use dtrsfw::redis::{RedisConfig, RedisInstance};
//!
//! static REDIS: LazyLock<RedisInstance> = LazyLock::new(|| {
//!     RedisInstance::new(RedisConfig::from_env().expect("REDIS_* variables")).expect("a valid configuration")
//! });
//!
//! #[cache_wrapper(
//!     redis = REDIS,                        // a RedisInstance, a reference, or a lazily initialised static
//!     namespace = "cars",
//!     expire = 3600,                        // seconds; omit for no expiry
//!     cache_only_for = [state in ["used", "new"], year >= 2020],  // cached when ANY holds
//!     skip_cache_keys = [request_id],       // not part of the key (need not be Serialize)
//! )]
//! async fn count_cars(state: &str, year: i32, request_id: &str) -> Result<u64, std::io::Error> {
//!     println!("[{request_id}] counting {state} cars from {year}");
//!     Ok(42)
//! }
//! ```
//!
//! Condition syntax: `argument operator value`, operators `in`, `not in` (or `not_in`),
//! `==`, `!=`, `<`, `<=`, `>`, `>=`; `value` is any serializable Rust expression. Unknown
//! keys, unknown operators, conditions or skips naming a missing argument, argument
//! patterns other than plain names, and items other than functions with a body are
//! compile errors that list the valid choices. `self` is never part of the key. A
//! function returning `…Result<T, E>` caches `Ok` only. The function API
//! ([`CachedFunction`]) takes the same options and validates them in
//! [`build()`](CachedFunctionBuilder::build).
//!
//! # The function API
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
//!
//! `.call(&redis, &args, || ..)` / `.call_async(&redis, &args, fut).await`;
//! [`try_call`](CachedFunction::try_call) / [`try_call_async`](CachedFunction::try_call_async)
//! for functions returning `Result` (only `Ok` is cached). [`cache_data`] /
//! [`cache_data_async`] store a value under a key of your own (the Python `cache_data`),
//! [`get_cached`] reads one back.
//!
//! # Key and value
//!
//! - **Key** (what the Python package computes for keyword arguments):
//!   `namespace + ":" + sha256_hex(json.dumps({name: value, ...}))` with the arguments in
//!   declaration order, those in `skip_cache_keys` left out, Python's default
//!   `json.dumps` formatting (`", "` and `": "` separators, everything outside printable
//!   ASCII as lowercase `\uXXXX`, astral characters as surrogate pairs, floats as
//!   `repr`). No argument left → the key is the namespace alone; an empty namespace →
//!   the hash alone.
//! - **Value**: `zlib.compress(json.dumps(result))` — JSON in the same Python
//!   formatting, zlib-compressed (default level). Any JSON is accepted on read. Written
//!   atomically with its TTL (`SET key value EX n`; the Python package does `DEL` then
//!   `SETEX`).
//!
//! **Byte-identical keys with Python** (tested against `python3`'s own `json.dumps` +
//! `hashlib`, for a table of cases and 2000 random strings, integers and floats):
//!
//! | Rust argument value | Python value giving the same key |
//! |---|---|
//! | integers up to 64 bits (`i8`…`i64`, `u8`…`u64`) | `int` |
//! | `&str`, `String`, `char` (any Unicode, quotes, control characters, DEL) | `str` |
//! | `bool`; `None`, `()` | `True`/`False`; `None` |
//! | `Vec`, slices, arrays, tuples | `list` (or `tuple`) |
//! | structs (field order), `BTreeMap`, ordered maps with string or integer keys | `dict` built in the same key order (integer keys become strings on both sides) |
//! | any finite `f64` (and `f32`, by its shortest digits) | `float` with the same value (`1.0`, `12.5`, `1e+16`, `1e-05`, subnormals: 2000 random bit patterns checked) |
//!
//! Where they differ: `NaN`/`±inf` (we write `null`, Python `NaN`/`Infinity`); `HashMap`
//! (iteration order is unspecified, so its keys are not even stable between Rust
//! processes — use `BTreeMap`, a struct or an insertion-ordered map); bytes (`serde`
//! gives a list of integers, Python `str(b"..")`); dates and enums (serde's
//! representation vs Python's `default=str`); positional Python calls (the package
//! hashes `args` separately, so only keyword calls share keys).
//!
//! # Beyond the Python package
//!
//! - **Fail-open with bounded cost.** A cache read or write never fails the call: Redis
//!   down, slow, or a corrupt or foreign value → the function runs, a `tracing` warning
//!   is emitted (a corrupt entry is overwritten). Each cache command (and connecting, for
//!   the sync side) is bounded by a short [timeout](CachedFunctionBuilder::timeout)
//!   (default 250 ms); after 3 consecutive connection failures or timeouts the circuit
//!   opens and calls skip Redis for 1 s, then one call probes
//!   ([`circuit_failure_threshold`](CachedFunctionBuilder::circuit_failure_threshold),
//!   [`circuit_cool_down`](CachedFunctionBuilder::circuit_cool_down)). The circuit, the
//!   in-flight table and the server-wide counters are kept per server URL, so every
//!   cached function on a server shares one view of its health.
//! - **Single-flight.** Concurrent calls of one key in one process share one lookup and
//!   one computation; when the computing caller fails or is cancelled, a waiting caller
//!   takes over. Errors are never shared or cached.
//! - **Invalidation** of one call ([`invalidate`], or [`CachedFunction::invalidate`],
//!   which drops skipped arguments) or a whole namespace ([`invalidate_namespace`]):
//!   SCAN + UNLINK in steps of 1000, never `KEYS`/`FLUSH*`; returns the count. A
//!   namespace `a` also covers `a:b`'s keys (they share the prefix). Async twins
//!   ([`invalidate_async`], [`invalidate_namespace_async`]).
//! - **Counters**: [`CacheStats`] `{ hits, misses, errors, joins, short_circuited,
//!   bypassed }`, and for the local tier `{ local_hits, local_entries, local_bytes,
//!   invalidations, flushes }`, per function ([`CachedFunction::stats`]) and per server
//!   ([`cache_stats`]).
//! - **Deliberate differences**: a cached JSON `null` is a hit (Python recomputes it); an
//!   empty `cache_only_for` caches every call (Python's `[]` caches none).
//!
//! # The local tier
//!
//! Opt-in per function: `#[cache_wrapper(..., local = true)]` (or `local_capacity = N`)
//! or [`.local(LocalTier::new().max_entries(n).max_bytes(b))`](CachedFunctionBuilder::local).
//! An in-process cache of values read from Redis, kept decoded (the macro, and
//! [`CachedFunction::call_cloned`]: a hit is a clone, so `T: Clone + Send + Sync +
//! 'static`) or as JSON (the plain `call*` methods), in front of Redis, kept coherent by Redis client tracking (RESP3 `CLIENT TRACKING ... BCAST` on the
//! function's namespace). Without it, nothing changes. With it, keys and values in Redis
//! are unchanged (Python services keep sharing them).
//!
//! - **When to turn it on**: functions read much more often than their entries change,
//!   where the Redis round trip of every call is what costs. A local hit sends no command
//!   to Redis and does no zlib and (`call_cloned*`) no JSON: it derives the key and clones
//!   the kept value (return an `Arc<T>` when that clone is costly).
//! - **The guarantee, as tested** (`tests/cache_local.rs` on Redis 7.0 and Valkey 8.1,
//!   `dtredis/tests/cache_local.rs`): after a write by another client (another instance,
//!   the real `dtpyfw`'s `DEL` + `SETEX`, `dtredis cache invalidate`,
//!   `invalidate_namespace`, a plain `DEL`), calls return the new value as soon as the
//!   server's invalidation arrived (within 2 s in the tests; the `cache_invalidation_visible`
//!   bench row gives the distribution: sub-millisecond median); this process's own
//!   [`invalidate`], [`invalidate_namespace`] and [`cache_data`] apply at once; an entry
//!   never outlives the key's TTL in Redis; a fill whose `GET` raced a write never keeps
//!   the old value (tested deterministically through a bandwidth-limited proxy, both
//!   forms); when the tracking
//!   connection is killed (`CLIENT KILL`) the tier is flushed, calls read Redis, and local
//!   hits resume once tracking is back; entries and bytes stay within their bounds
//!   (1 000 000 distinct keys on the store). Across processes (`tests/cache_coherence.rs`:
//!   2 writer processes, a reader process of 4 tasks, 16 keys, random pauses; quiet, with
//!   the tracking connection killed every 150 ms, and with the server restarted twice):
//!   each task's versions of a key never go backwards, and every read started 50 ms or
//!   more after a write of its key completed returns that version or a newer one.
//! - **Costs**: one extra connection per server (a thread with a small runtime drives
//!   it, `PING` every second); memory up to `max_bytes` per function (default 64 MiB,
//!   10 000 entries); a `PTTL` pipelined with the `GET` of each fill; the server sends an invalidation for every
//!   write under the namespace, held locally or not.
//! - **Redis Cluster**: every node that serves slots (primaries and replicas) gets its own
//!   tracking connection, so the tier works there too (`tests/cache_local_cluster.rs`, on
//!   Redis 7.0 and Valkey 8.1: hits send no command to any node, a write on any primary is
//!   seen). A manual `CLUSTER FAILOVER` flushes nothing (the promoted replica was
//!   subscribed); a lost node (`kill -9`) flushes the tier, and calls go to Redis until the
//!   new topology is subscribed (about 1 s after the promotion in the tests). Details in
//!   [`local`].
//! - **Redis Sentinel**: no local tier. A push connection would have to follow the
//!   primary across failovers, which the Sentinel client does not offer; the tracker says
//!   so once (a `warn` event) and every call goes to Redis, as without the option.
//! - **Figures** (`dtredis bench --only cache_local --json`, release build, a ~1 KB value
//!   (10 listings) returned by `call_cloned*`, medians of 3 runs on a 2-core machine at a
//!   load average of 10-15): a local hit 59 000/s sync and 57 000/s async against 4 400/s
//!   and 2 200/s for a bare redis-rs `GET` loop on Redis 7.0 (ratios 12.7 and 28.1); on
//!   Valkey 8.1 65 000/s and 48 000/s against 4 300/s and 2 200/s (11.6 and 29.0). The
//!   ratio target of 50 is not met on this machine; a hit's cost is mostly the clone of
//!   the value (about 50 allocations here), the key (JSON + sha256) and `moka`'s lookup. A
//!   write by another connection is seen by a reader after a median of 0.24 ms (Redis 7.0)
//!   / 1.4 ms (Valkey 8.1), p99 32 ms on both under that load (target 5 ms: not met here).
//!
//! The design (tracking mode, connection, epochs, why not redis-rs's `cache-aio`) is in
//! [`local`].
//!
//! # Sync and async
//!
//! The sync and async APIs share every decision (keys, conditions, codecs, circuit,
//! single-flight); they differ only in the I/O edge: the async side uses the instance's
//! multiplexed client under a `tokio` deadline, the sync side a few dedicated
//! connections whose connect and socket timeouts are the cache timeout.
//!
//! # On a Redis Cluster
//!
//! Keys (`namespace:<sha256>`) spread over the slots. [`invalidate_namespace`] SCANs
//! every primary (redis-rs sends each `SCAN` to the node named) and UNLINKs what it
//! finds. Fail-open and the circuit breaker are per `RedisInstance` URL, so per cluster.

// Layers, lowest first (a file imports only files above it in this list, and
// `crate::redis::{connection, error}`): lock, stats, circuit, flight, sync_conns, server
// (per-server state) · pyjson, codec, commands, operator, condition, args (pure) ·
// function, builder, policy (decisions) · edge (the sync/async I/O seam) · tiered (the
// local tier's part of a call) · call, call_cloned, admin (the flows, written once) ·
// macro_support.
// `local/` (the local tier: epochs, store, tracker) sits with the per-server state: it
// imports only lock and connection.
mod admin;
mod args;
mod builder;
mod call;
mod call_cloned;
mod circuit;
mod codec;
mod commands;
mod condition;
mod edge;
mod flight;
mod function;
pub mod local;
mod lock;
mod operator;
mod policy;
mod pyjson;
mod server;
mod stats;
mod sync_conns;
mod tiered;

pub use self::admin::{
    cache_data, cache_data_async, cache_stats, get_cached, get_cached_async, invalidate, invalidate_async,
    invalidate_namespace, invalidate_namespace_async,
};
pub use self::args::{CacheArgs, cache_key};
pub use self::builder::{CachedFunctionBuilder, DEFAULT_CACHE_TIMEOUT, DEFAULT_COOL_DOWN, DEFAULT_FAILURE_THRESHOLD};
pub use self::function::CachedFunction;
pub use self::local::LocalTier;
pub use self::operator::{OPERATORS, Operator};
pub use self::stats::CacheStats;

/// The attribute macro: caches a function's results in Redis. See the
/// [module docs](self) and [`dtrsfw_macros::cache_wrapper`].
pub use dtrsfw_macros::cache_wrapper;

/// Support for the code `#[cache_wrapper]` generates; not a public API.
#[doc(hidden)]
#[path = "macro_support.rs"]
pub mod __private;
