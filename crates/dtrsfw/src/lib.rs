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
