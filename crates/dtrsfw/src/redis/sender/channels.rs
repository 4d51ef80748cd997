//! [`Sender`]: the handle, its options and its registered channels.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use super::options::SenderOptions;
use super::retention::Retention;
use crate::redis::connection::RedisInstance;
use crate::redis::error::{Error, Result};

pub(super) struct Inner {
    pub(super) redis: RedisInstance,
    pub(super) options: SenderOptions,
    /// Registered channels and their retention. Read on every send, written only by
    /// registration, so a read lock (uncontended in practice) is all the hot path pays.
    channels: RwLock<HashMap<String, Option<Retention>>>,
}

/// Publishes messages to registered stream channels; the Python `Sender`.
///
/// Cheap to clone and `Send + Sync`: clones share the registered channels and the
/// instance's connections (one multiplexed connection for every async task, the sync pool
/// for blocking sends), never a connection per call. See the [module docs](super) for the
/// sync/async scheme, retries and retention.
#[derive(Clone)]
pub struct Sender {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let channels = self.inner.channels.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&String> = channels.keys().collect();
        names.sort();
        f.debug_struct("Sender")
            .field("redis", &self.inner.redis)
            .field("channels", &names)
            .field("options", &self.inner.options)
            .finish()
    }
}

impl Sender {
    /// A sender on `redis` with the default [`SenderOptions`]. Connects on first send.
    #[must_use]
    pub fn new(redis: &RedisInstance) -> Self {
        Self::with_options(redis, SenderOptions::default())
    }

    /// A sender on `redis` with `options`.
    #[must_use]
    pub fn with_options(redis: &RedisInstance, options: SenderOptions) -> Self {
        Sender {
            inner: Arc::new(Inner {
                redis: redis.clone(),
                options,
                channels: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// The options this sender was built with.
    #[must_use]
    pub fn options(&self) -> &SenderOptions {
        &self.inner.options
    }

    /// Declares `channel` (a stream key) as one this sender publishes to, without a
    /// retention bound. Registering again replaces the retention. No I/O: the stream is
    /// created by the first send.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when the name is
    /// empty.
    pub fn register_channel(&self, channel: impl Into<String>) -> Result<()> {
        self.register(channel.into(), None)
    }

    /// [`register_channel`](Self::register_channel) with a retention policy applied by
    /// every send to it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use dtrsfw::redis::sender::{Retention, Sender};
    /// # let redis = dtrsfw::redis::RedisInstance::new(dtrsfw::redis::RedisConfig::new().set_redis_host("localhost"))?;
    ///
    /// let sender = Sender::new(&redis);
    /// sender.register_channel_with("orders", Retention::MaxLen(100_000))?;
    /// sender.register_channel_with("audit", Retention::MinAge(Duration::from_secs(7 * 24 * 3600)))?;
    /// # Ok::<(), dtrsfw::redis::Error>(())
    /// ```
    ///
    /// An acknowledged-only retention ([`Retention::MaxLenAcked`],
    /// [`Retention::MinAgeAcked`]) first asks the server what it supports
    /// ([`RedisInstance::server_capabilities_blocking`](crate::redis::RedisInstance::server_capabilities_blocking): one blocking round trip on the
    /// sync pool, cached per connection) and is refused on a server without the `ACKED`
    /// option (anything before Redis 8.2, Valkey 9.1 included), with an error naming the
    /// server and its version. From async code prefer
    /// [`register_channel_with_async`](Self::register_channel_with_async).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when the name is
    /// empty or the retention needs a newer server; the connection's error when the
    /// server cannot be asked.
    pub fn register_channel_with(&self, channel: impl Into<String>, retention: Retention) -> Result<()> {
        if retention.acked_only() {
            retention.check_supported(&self.inner.redis.server_capabilities_blocking()?)?;
        }
        self.register(channel.into(), Some(retention))
    }

    /// [`register_channel_with`](Self::register_channel_with) for async code: the
    /// detection an acknowledged-only retention needs runs on the shared connection.
    ///
    /// ```no_run
    /// use dtrsfw::redis::sender::{Retention, Sender};
    /// # async fn f(redis: dtrsfw::redis::RedisInstance) -> dtrsfw::redis::Result<()> {
    /// let sender = Sender::new(&redis);
    /// // Fails on a server before Redis 8.2, naming its version.
    /// sender.register_channel_with_async("orders", Retention::MaxLenAcked(10_000)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`register_channel_with`](Self::register_channel_with).
    pub async fn register_channel_with_async(&self, channel: impl Into<String>, retention: Retention) -> Result<()> {
        if retention.acked_only() {
            retention.check_supported(&self.inner.redis.server_capabilities().await?)?;
        }
        self.register(channel.into(), Some(retention))
    }

    fn register(&self, channel: String, retention: Option<Retention>) -> Result<()> {
        if channel.is_empty() {
            return Err(Error::invalid_input("channel name is empty"));
        }
        tracing::debug!(channel = %channel, ?retention, "channel registered");
        self.inner
            .channels
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(channel, retention);
        Ok(())
    }

    /// Whether `channel` is registered.
    #[must_use]
    pub fn is_registered(&self, channel: &str) -> bool {
        self.inner
            .channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(channel)
    }

    /// The retention of a registered channel; an error naming the channel otherwise.
    pub(super) fn retention_of(&self, channel: &str) -> Result<Option<Retention>> {
        let channels = self.inner.channels.read().unwrap_or_else(|e| e.into_inner());
        match channels.get(channel) {
            Some(retention) => Ok(*retention),
            None if channel.is_empty() => Err(Error::invalid_input("channel name is empty")),
            None => Err(Error::invalid_input(format!(
                "channel {channel:?} is not registered with this sender (call register_channel({channel:?}) first)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::sender::EntryId;

    #[test]
    fn sender_is_shareable_across_tasks_and_threads() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Sender>();
        shareable::<SenderOptions>();
        shareable::<EntryId>();
    }
}
