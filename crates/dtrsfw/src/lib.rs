//! # dtrsfw
//!
//! The Redis sub-package of the DealerTower framework, rebuilt in Rust and
//! wire-compatible with the Python `dtpyfw[redis]`: connection management, function
//! caching, Redis Streams publishing and consuming, and health checks.
//!
//! Everything lives under [`redis`] (feature `redis`, on by default, mirrors
//! `pip install dtpyfw[redis]`), mirroring `dtpyfw.redis`. Where to read on:
//!
//! | concept | module (the guide is its documentation) | runnable example |
//! |---|---|---|
//! | configuration, connections, Redis Cluster | [`redis::config`], [`redis::connection`] | `examples/config_health.rs` |
//! | health checks | [`redis::health`] | `examples/config_health.rs` |
//! | caching | [`redis::caching`], [`cache_wrapper`] | `examples/cache_wrapper.rs`, `examples/cache_function.rs` |
//! | publishing to streams | [`redis::sender`] | `examples/sender.rs` |
//! | consuming streams | [`redis::streamer`] | `examples/consumer.rs`, `examples/blocking_consumer.rs` |
//! | errors | [`redis::error`] | |
//!
//! # Working with Python services
//!
//! Rust services join the streams and caches of services on `dtpyfw` (tested against the
//! real `dtpyfw==0.6.51` from PyPI in `crates/dtrsfw/tests/interop.rs` and
//! `crates/dtrsfw/tests/sender.rs`, through `crates/dtrsfw/tests/python/peer.py`):
//!
//! - **Stream entries**: fields `name` (text) and `body` (JSON text), as
//!   `Message.get_json_encoded()`. We write compact JSON (`{"id":1}`), Python writes
//!   `{"id": 1}`; both read either. Extra fields are ignored by both.
//! - **Consumer groups**: `<channel>:<service>:cg`, created at `$` (new messages) by
//!   default as in Python, or at `0`; a Python and a Rust instance of one service share
//!   the group and split the work, each message handled once when nothing fails (tested
//!   with 400 messages).
//! - **Differences**: the Python consumer keeps an at-most-once ZSET
//!   (`stream:<channel>:group:<group>:processed`) and acknowledges even when a handler
//!   fails (it logs a "dead letter" but keeps nothing); ours is at-least-once, retries,
//!   and writes real dead letters to `<channel>:dlq`. In a shared group, entries a Python
//!   instance fails are acknowledged by it and not retried.
//! - **Cache keys and values**: identical for keyword calls — see [`redis::caching`] for
//!   the exact format and the value types that give byte-identical keys (integers,
//!   strings with any Unicode, booleans, null, lists, ordered maps, finite floats).
//!   Verified both ways with the real package: a value cached by Python's
//!   `cache_wrapper` is a hit for the Rust `#[cache_wrapper]` function with the same
//!   namespace and argument names, and the reverse, with identical decoded values.
//!   Python hashes positional arguments separately, so only keyword calls share entries;
//!   map arguments must list their keys in the same order on both sides (use `BTreeMap`
//!   in Rust and sorted dicts in Python, or a struct and the same field order).
//! - **Connection URLs**: both percent-encode credentials; we also encode `/`, and a
//!   password-only URL is `redis://:pw@host` (the Python package writes
//!   `redis://pw@host`, which redis-py reads as a user name).

// Doc examples are user-facing code: a warning in one (an unused `mut`, an unused
// binding) is a bug in the docs, so doctests fail on warnings. Except `dead_code`: a
// `no_run` example that needs `.await` or an instance is wrapped in a hidden function
// (`# async fn run(redis: RedisInstance) { .. }`) that is never called, by design.
#![doc(test(attr(deny(warnings), allow(dead_code))))]

#[cfg(feature = "redis")]
pub mod redis;

/// Caches a function's results in Redis: see [`redis::caching`].
#[cfg(feature = "redis")]
pub use dtrsfw_macros::cache_wrapper;

/// Compiles (and, where they need no server, runs) every Rust code block of the README, so
/// that the front page's examples stay true. `README.md` in this crate is a link to the
/// repository's README, which `cargo package` copies into the package.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
