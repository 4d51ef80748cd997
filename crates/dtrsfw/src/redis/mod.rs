//! The Redis sub-package: configuration, connections, caching, streams and health.
//!
//! Module for module the layout of `dtpyfw.redis`; the main types are re-exported here.
//!
//! ```no_run
//! use dtrsfw::redis::{is_redis_connected, RedisConfig, RedisInstance};
//!
//! let redis = RedisInstance::new(RedisConfig::from_env()?)?;
//! let (ok, error) = is_redis_connected(&redis);
//! if !ok {
//!     eprintln!("redis is down: {error:?}");
//! }
//! # Ok::<(), dtrsfw::redis::Error>(())
//! ```

pub mod caching;
pub mod config;
pub mod connection;
mod entry_id;
pub mod error;
pub mod health;
pub mod inspect;
pub mod message;
pub mod observe;
pub mod sender;
pub mod streamer;
mod sync_edge;

pub use caching::{CacheArgs, CacheStats, CachedFunction, cache_data, cache_data_async};
pub use config::{ConfigValue, RedisConfig};
pub use connection::{
    AsyncBlockingConnection, AsyncRedisClient, PooledConnection, RedisClient, RedisInstance, ServerCapabilities,
    SyncConnection,
};
pub use entry_id::EntryId;
pub use error::{Error, ErrorKind, Result};
pub use health::{is_redis_connected, is_redis_connected_async};
pub use message::Message;
pub use sender::{Retention, Sender, SenderOptions};
pub use streamer::{
    BlockingConsumer, ChannelOptions, ChannelStats, Consumer, ConsumerOptions, ConsumerStats, Delivery, ShutdownHandle,
    StartFrom,
};
