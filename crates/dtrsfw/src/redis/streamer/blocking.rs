//! `BlockingConsumer`: the blocking twin of [`Consumer`], running the same async code on a
//! small runtime it owns.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::consumer::Consumer;
use super::handler::Delivery;
use super::options::{ChannelOptions, ConsumerOptions};
use super::shutdown::ShutdownHandle;
use super::stats::ConsumerStats;
use crate::redis::connection::RedisInstance;
use crate::redis::error::{Error, Result};

/// The blocking API of the consumer: every method of [`Consumer`] under the same name,
/// without `async`. Must not be called from inside an async runtime (it would block it);
/// use [`Consumer`] there.
///
/// ```no_run
/// use std::time::Duration;
/// use dtrsfw::redis::{BlockingConsumer, ChannelOptions, RedisConfig, RedisInstance};
///
/// let redis = RedisInstance::new(RedisConfig::from_env()?)?;
/// let consumer = BlockingConsumer::new(&redis, "mailer")?;
/// consumer.register_channel("orders", ChannelOptions::new())?;
/// consumer.register_handler("orders", |name, _payload| {
///     println!("got {name}");
///     Ok::<(), String>(())
/// })?;
/// let stop = consumer.shutdown_handle();
/// # stop.shutdown();
/// consumer.persist_consume_all_channels(Duration::from_millis(100), Duration::from_secs(1))?;
/// # Ok::<(), dtrsfw::redis::Error>(())
/// ```
pub struct BlockingConsumer {
    consumer: Consumer,
    runtime: tokio::runtime::Runtime,
}

impl fmt::Debug for BlockingConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingConsumer")
            .field("consumer", &self.consumer)
            .finish()
    }
}

impl BlockingConsumer {
    /// See [`Consumer::new`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::new`].
    pub fn new(redis: &RedisInstance, consumer_name: &str) -> Result<Self> {
        BlockingConsumer::with_options(redis, consumer_name, ConsumerOptions::default())
    }

    /// See [`Consumer::with_options`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::with_options`].
    pub fn with_options(redis: &RedisInstance, consumer_name: &str, options: ConsumerOptions) -> Result<Self> {
        // Two workers: the channel loops and handlers make progress side by side while a
        // sync handler runs inline on one of them.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dtrsfw-consumer")
            .enable_all()
            .build()
            .map_err(|e| Error::invalid_input(format!("cannot start the consumer runtime: {e}")))?;
        Ok(BlockingConsumer {
            consumer: Consumer::with_options(redis, consumer_name, options)?,
            runtime,
        })
    }

    /// The async consumer this wraps (sharing channels, handlers and shutdown).
    pub fn as_async(&self) -> &Consumer {
        &self.consumer
    }

    /// See [`Consumer::service`].
    pub fn service(&self) -> &str {
        self.consumer.service()
    }

    /// See [`Consumer::consumer_name`].
    pub fn consumer_name(&self) -> &str {
        self.consumer.consumer_name()
    }

    /// See [`Consumer::group_name`].
    pub fn group_name(&self, channel: &str) -> String {
        self.consumer.group_name(channel)
    }

    /// See [`Consumer::register_channel`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::register_channel`].
    pub fn register_channel(&self, channel: &str, options: ChannelOptions) -> Result<()> {
        self.runtime.block_on(self.consumer.register_channel(channel, options))
    }

    /// See [`Consumer::register_handler`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::register_handler`].
    pub fn register_handler<F, E>(&self, channel: &str, handler: F) -> Result<()>
    where
        F: Fn(&str, &serde_json::Value) -> std::result::Result<(), E> + Send + Sync + 'static,
        E: fmt::Display,
    {
        self.consumer.register_handler(channel, handler)
    }

    /// See [`Consumer::register_typed_handler`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::register_typed_handler`].
    pub fn register_typed_handler<T, F, E>(&self, channel: &str, handler: F) -> Result<()>
    where
        T: DeserializeOwned,
        F: Fn(&str, T) -> std::result::Result<(), E> + Send + Sync + 'static,
        E: fmt::Display,
    {
        self.consumer.register_typed_handler(channel, handler)
    }

    /// See [`Consumer::register_async_handler`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::register_async_handler`].
    pub fn register_async_handler<F, Fut, E>(&self, channel: &str, handler: F) -> Result<()>
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        self.consumer.register_async_handler(channel, handler)
    }

    /// See [`Consumer::consume_messages`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::consume_messages`].
    pub fn consume_messages(&self, channel: &str, group: &str, block_time: Duration) -> Result<u64> {
        self.runtime
            .block_on(self.consumer.consume_messages(channel, group, block_time))
    }

    /// See [`Consumer::persist_consume_messages`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::persist_consume_messages`].
    pub fn persist_consume_messages(
        &self,
        channel: &str,
        group: &str,
        rest_time: Duration,
        block_time: Duration,
    ) -> Result<()> {
        self.runtime.block_on(
            self.consumer
                .persist_consume_messages(channel, group, rest_time, block_time),
        )
    }

    /// See [`Consumer::consume_all_channels`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::consume_all_channels`].
    pub fn consume_all_channels(&self, block_time: Duration) -> Result<u64> {
        self.runtime.block_on(self.consumer.consume_all_channels(block_time))
    }

    /// See [`Consumer::persist_consume_all_channels`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::persist_consume_all_channels`].
    pub fn persist_consume_all_channels(&self, rest_time: Duration, block_time: Duration) -> Result<()> {
        self.runtime
            .block_on(self.consumer.persist_consume_all_channels(rest_time, block_time))
    }

    /// See [`Consumer::shutdown_handle`]; call it from another thread to stop a running
    /// `persist_*`.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.consumer.shutdown_handle()
    }

    /// See [`Consumer::shutdown`].
    pub fn shutdown(&self) {
        self.consumer.shutdown();
    }

    /// See [`Consumer::clean_up_consumed_messages`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::clean_up_consumed_messages`].
    pub fn clean_up_consumed_messages(&self) -> Result<u64> {
        self.runtime.block_on(self.consumer.clean_up_consumed_messages())
    }

    /// See [`Consumer::remove_idle_consumers`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::remove_idle_consumers`].
    pub fn remove_idle_consumers(&self) -> Result<u64> {
        self.runtime.block_on(self.consumer.remove_idle_consumers())
    }

    /// See [`Consumer::get_stats`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::get_stats`].
    pub fn get_stats(&self) -> Result<ConsumerStats> {
        self.runtime.block_on(self.consumer.get_stats())
    }
}
