//! [`Consumer`]: the async consumer of one service, its channels and handlers.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::channel::{Channel, Shared, create_group};
use super::cleanup;
use super::delete_on_ack;
use super::handler::{Delivery, Handler};
use super::housekeeping::remove_idle_consumers_of;
use super::names::{group_name, instance_name, sanitize};
use super::options::{ChannelOptions, ConsumerOptions};
use super::shutdown::ShutdownHandle;
use super::stats::{ConsumerStats, group_figures};
use crate::redis::connection::RedisInstance;
use crate::redis::error::{Error, Result};

pub(super) struct Inner {
    pub(super) shared: Shared,
    channels: RwLock<BTreeMap<String, Arc<Channel>>>,
    pub(super) stop: Arc<watch::Sender<bool>>,
}

/// A Redis Streams consumer for one service. See the [module docs](super).
///
/// Cheap to clone; clones share channels, handlers, counters and shutdown.
#[derive(Clone)]
pub struct Consumer {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("service", &self.inner.shared.service)
            .field("consumer_name", &self.inner.shared.consumer_name)
            .field("channels", &self.channel_names())
            .finish()
    }
}

impl Consumer {
    /// A consumer for the service `consumer_name`, with default options. Nothing is
    /// sent to Redis until a channel is registered. Fails when the name is empty.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when the name is
    /// empty once sanitized.
    pub fn new(redis: &RedisInstance, consumer_name: &str) -> Result<Self> {
        Consumer::with_options(redis, consumer_name, ConsumerOptions::default())
    }

    /// A consumer with explicit [`ConsumerOptions`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when the name
    /// is empty once sanitized.
    pub fn with_options(redis: &RedisInstance, consumer_name: &str, options: ConsumerOptions) -> Result<Self> {
        let service = sanitize(consumer_name, 128);
        if service.is_empty() {
            return Err(Error::invalid_input("consumer (service) name is empty"));
        }
        let (tx, _) = watch::channel(false);
        Ok(Consumer {
            inner: Arc::new(Inner {
                shared: Shared {
                    redis: redis.clone(),
                    consumer_name: instance_name(&service),
                    service,
                    options,
                },
                channels: RwLock::new(BTreeMap::new()),
                stop: Arc::new(tx),
            }),
        })
    }

    /// The service name (sanitized), which names the groups.
    #[must_use]
    pub fn service(&self) -> &str {
        &self.inner.shared.service
    }

    /// This instance's unique consumer name inside the groups.
    #[must_use]
    pub fn consumer_name(&self) -> &str {
        &self.inner.shared.consumer_name
    }

    /// This service's group on `channel`: `<channel>:<service>:cg`.
    #[must_use]
    pub fn group_name(&self, channel: &str) -> String {
        group_name(channel, &self.inner.shared.service)
    }

    /// The registered channels, in name order.
    #[must_use]
    pub fn channel_names(&self) -> Vec<String> {
        self.inner
            .channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    pub(super) fn channel(&self, channel: &str) -> Result<Arc<Channel>> {
        self.inner
            .channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(channel)
            .cloned()
            .ok_or_else(|| Error::invalid_input(format!("channel {channel:?} is not registered with this consumer")))
    }

    /// Registers `channel` (the seed's `register_channel(channel, read_messages,
    /// consumers, message_cleanup)`: those are fields of `options`) and, when it reads,
    /// creates its group (and the stream) unless they exist. Idempotent on the Redis side;
    /// registering the same channel twice in one consumer is an error.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when the channel
    /// name is empty or already registered here; the Redis error when the group cannot be
    /// created.
    pub async fn register_channel(&self, channel: &str, options: ChannelOptions) -> Result<()> {
        if channel.is_empty() {
            return Err(Error::invalid_input("channel name is empty"));
        }
        if self
            .inner
            .channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(channel)
        {
            return Err(Error::invalid_input(format!(
                "channel {channel:?} is already registered"
            )));
        }
        let group = self.group_name(channel);
        if options.read_messages {
            create_group(&self.inner.shared, channel, &group, options.start_from.as_id()).await?;
        }
        let ch = Arc::new(Channel::new(channel, &self.inner.shared.service, group, options));
        let mut channels = self.inner.channels.write().unwrap_or_else(|e| e.into_inner());
        if channels.contains_key(channel) {
            return Err(Error::invalid_input(format!(
                "channel {channel:?} is already registered"
            )));
        }
        channels.insert(channel.to_owned(), ch);
        Ok(())
    }

    fn add_handler(&self, channel: &str, handler: Handler) -> Result<()> {
        self.channel(channel)?.add_handler(handler);
        Ok(())
    }

    /// Adds a sync handler to `channel`: it gets the message name and the decoded JSON
    /// payload. Handlers run in registration order; the entry is acknowledged when all
    /// return `Ok`. Handlers added while a loop runs take effect at its next start.
    ///
    /// A sync handler runs inline on the consuming task when the channel's parallelism is
    /// 1 (no thread hop, order kept) and on tokio's blocking pool otherwise, so that
    /// blocking handlers really run side by side.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when `channel` is
    /// not registered.
    pub fn register_handler<F, E>(&self, channel: &str, handler: F) -> Result<()>
    where
        F: Fn(&str, &serde_json::Value) -> std::result::Result<(), E> + Send + Sync + 'static,
        E: fmt::Display,
    {
        self.add_handler(
            channel,
            Handler::Sync(Arc::new(move |d: &Delivery| {
                handler(d.name(), d.payload()).map_err(|e| e.to_string())
            })),
        )?;
        self.channel(channel)?
            .wants_payload
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Adds a sync handler that gets the body decoded as `T`. A body that does not decode
    /// as `T` counts as a failure of this handler (retried, then dead-lettered).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when `channel` is
    /// not registered.
    pub fn register_typed_handler<T, F, E>(&self, channel: &str, handler: F) -> Result<()>
    where
        T: DeserializeOwned,
        F: Fn(&str, T) -> std::result::Result<(), E> + Send + Sync + 'static,
        E: fmt::Display,
    {
        self.add_handler(
            channel,
            Handler::Sync(Arc::new(move |d: &Delivery| {
                let body: T = d.body_as().map_err(|e| e.to_string())?;
                handler(d.name(), body).map_err(|e| e.to_string())
            })),
        )
    }

    /// Adds an async handler; it gets the whole [`Delivery`] (ID, name, payload,
    /// delivery count).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when `channel` is
    /// not registered.
    pub fn register_async_handler<F, Fut, E>(&self, channel: &str, handler: F) -> Result<()>
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        let handler = Arc::new(handler);
        self.add_handler(
            channel,
            Handler::Async(Arc::new(move |d: Delivery| {
                let fut = handler(d);
                Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
            })),
        )
    }

    /// A snapshot of the registered channels that satisfy `keep` (the lock is not held
    /// across the awaits that follow).
    fn channels_where(&self, keep: impl Fn(&Channel) -> bool) -> Vec<Arc<Channel>> {
        self.inner
            .channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|c| keep(c))
            .cloned()
            .collect()
    }

    pub(super) fn reading_channels(&self) -> Vec<Arc<Channel>> {
        self.channels_where(|c| c.opts.read_messages)
    }

    /// A handle that stops this consumer's loops from anywhere.
    #[must_use]
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(self.inner.stop.clone())
    }

    /// Requests a graceful stop of the `persist_*` loops (see [`ShutdownHandle`]).
    ///
    /// Final: this consumer and its clones cannot be started again. Every later
    /// `consume_*` or `persist_*` call returns at once, `Ok` and without reading anything
    /// (so a shutdown requested before a loop starts stops it too, with no race). To
    /// consume again, create a new [`Consumer`] for the service and register its channels:
    /// the group and everything pending in it are still there, the new instance takes over
    /// what this one left pending.
    pub fn shutdown(&self) {
        self.shutdown_handle().shutdown();
    }

    /// Deletes, from every channel registered with `message_cleanup`, the entries that
    /// every service listed in its `consumers` has received and acknowledged; returns how
    /// many were deleted. An entry a listed service has not read, or still has pending, is
    /// never deleted, and a listed service without a group yet blocks deletion; every
    /// entry older than the oldest one still needed is deleted. A few commands per channel
    /// and listed group, whatever the stream length.
    ///
    /// # Errors
    ///
    /// The Redis error when a channel's groups cannot be read or its stream cannot be
    /// trimmed.
    pub async fn clean_up_consumed_messages(&self) -> Result<u64> {
        let channels = self.channels_where(|c| c.opts.message_cleanup || c.opts.delete_when_acked_by_all);
        let mut deleted = 0;
        for ch in channels {
            deleted += if ch.opts.delete_when_acked_by_all {
                delete_on_ack::pass(&self.inner.shared, &ch).await?
            } else {
                cleanup::clean_channel(&self.inner.shared, &ch).await?
            };
        }
        Ok(deleted)
    }

    /// Removes from this service's groups the consumers idle longer than
    /// [`ConsumerOptions::idle_consumer_timeout`] with nothing pending (names left by
    /// dead instances). The `persist_*` loops do this periodically. Returns how many were
    /// removed.
    ///
    /// # Errors
    ///
    /// The Redis error when a group's consumers cannot be listed or removed.
    pub async fn remove_idle_consumers(&self) -> Result<u64> {
        let mut removed = 0;
        for ch in self.reading_channels() {
            removed += remove_idle_consumers_of(&self.inner.shared, &ch).await?;
        }
        Ok(removed)
    }

    /// Per channel: this instance's counters, and the group's lag and pending count from
    /// Redis (left `None` for a channel Redis could not be asked about).
    ///
    /// # Errors
    ///
    /// The connection error when Redis cannot be reached; a channel Redis cannot answer
    /// about is reported with `None` figures instead.
    pub async fn get_stats(&self) -> Result<ConsumerStats> {
        let channels = self.channels_where(|_| true);
        let mut client = self.inner.shared.redis.get_async_redis_client().await?;
        let mut stats = ConsumerStats::default();
        for ch in channels {
            let mut s = ch.counters.snapshot(ch.group.clone());
            (s.lag, s.pending) = group_figures(&mut client, &ch.name, &ch.group).await;
            stats.channels.insert(ch.name.to_string(), s);
        }
        Ok(stats)
    }
}
