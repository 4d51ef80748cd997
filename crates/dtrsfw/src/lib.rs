//! # dtrsfw
//!
//! The Redis sub-package of the DealerTower framework, rebuilt in Rust and
//! wire-compatible with the Python `dtpyfw[redis]`: connection management, function
//! caching, Redis Streams publishing and consuming, and health checks.
//!
//! Everything lives under [`redis`] (feature `redis`, on by default), mirroring
//! `dtpyfw.redis`.

#[cfg(feature = "redis")]
pub mod redis;

/// Caches a function's results in Redis: see [`redis::caching`].
#[cfg(feature = "redis")]
pub use dtrsfw_macros::cache_wrapper;
