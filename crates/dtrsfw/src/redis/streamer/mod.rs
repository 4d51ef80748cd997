//! The Redis Streams consumer: one consumer group per *service*, at-least-once delivery,
//! reclaim of stalled entries, a dead-letter stream, graceful shutdown and exact cleanup.
//!
//! # Model
//!
//! [`Consumer::new(redis, "billing")`](Consumer::new) names a **service**. For each
//! registered channel it reads with the consumer group `<channel>:<service>:cg` (the
//! naming of `dtpyfw`, so Python and Rust instances of one service share a group), so
//! every service receives every message (fan-out) and the instances of one service share
//! the work (load balancing). Each instance reads under a unique consumer name
//! `<service>.<host>.<pid>.<random8>` (host from `POD_NAME`, `HOSTNAME` or the system),
//! restricted to `[A-Za-z0-9._:-]`.
//!
//! Runnable programs: `examples/consumer.rs` (async, with a graceful shutdown) and
//! `examples/blocking_consumer.rs` in this crate.
//!
//! # Delivery
//!
//! - An entry is acknowledged only when **every** handler of its channel returned `Ok`
//!   (acknowledgements are batched into one `XACK`). A handler error or panic leaves the
//!   entry pending.
//! - Pending entries idle longer than [`ChannelOptions::reclaim_idle`] (default 60 s) are
//!   taken over with `XAUTOCLAIM` and retried, whether they failed here or belong to a
//!   dead instance. An instance renews the claim on the entries it holds, so a long
//!   handler keeps its entry.
//! - When a loop starts, and after a connection failure, the instance takes back the
//!   entries pending under its own name that it does not hold (a read whose reply was
//!   lost with the connection, a read abandoned at shutdown) at once, without waiting for
//!   the reclaim idle time.
//! - Consuming a channel that has no handler is an error, raised before anything is
//!   read (with [`Consumer::consume_all_channels`] and the `persist_*` loops: before any
//!   channel is read), so no entry is ever acknowledged without being handled.
//! - After [`ChannelOptions::max_deliveries`] (default 5) deliveries without success the entry is
//!   written to the dead-letter stream and only then acknowledged. A malformed entry goes
//!   there at once. A pending ID whose entry was deleted is acknowledged and counted
//!   ([`ChannelStats::deleted_pending`]). Nothing is dropped silently.
//! - Unlike `dtpyfw`, which keeps a ZSET `stream:<channel>:group:<group>:processed` to
//!   process each message at most once, this consumer is at-least-once and writes no such
//!   key: handlers should be idempotent.
//!
//! # The dead-letter stream `<channel>:dlq`
//!
//! Each entry has these fields (a contract for tools such as `dtredis dlq`; readers must
//! ignore fields they do not know, later versions may add some):
//!
//! | field | content |
//! |---|---|
//! | `name` | the original `name`, verbatim (absent if the entry had none) |
//! | `body` | the original `body`, verbatim bytes (absent if the entry had none) |
//! | `id` | the original entry ID |
//! | `reason` | `malformed` (no `name`/`body`, not UTF-8, body not JSON) or `max_deliveries` |
//! | `error` | the last handler error, or what is malformed |
//! | `service` | the service that gave up on it |
//! | `deliveries` | how many times it was delivered to that service |
//! | `time` | when it was dead-lettered, milliseconds since the Unix epoch |
//!
//! # Parallelism
//!
//! [`ChannelOptions::parallelism`]`(n)` runs up to `n` handlers at once per channel
//! (default 1: in order). A read fetches only as many entries as there are free slots,
//! plus [`ChannelOptions::read_ahead`] (default 0) to save round trips when handlers are
//! fast. Sync handlers run inline at parallelism 1 and on tokio's blocking pool above it.
//!
//! # Loops and self-healing
//!
//! A busy loop reads again at once; an idle one waits in Redis `BLOCK` (`block_time`).
//! Lost connections are reopened with exponential backoff: `rest_time` is the first
//! pause after a Redis failure, doubling up to [`ConsumerOptions::max_backoff`]. When
//! the group or the stream was deleted (`NOGROUP`), the group is recreated **at the
//! start of what the stream holds (`0`)**: entries published meanwhile are not lost, at
//! the price of redelivering older ones.
//!
//! # Shutdown
//!
//! [`Consumer::shutdown`], a [`ShutdownHandle`] (usable from any thread), or the future
//! given to [`Consumer::persist_consume_all_channels_until`]: reading stops, in-flight
//! handlers get [`ConsumerOptions::shutdown_timeout`] (default 30 s), acknowledgements
//! are flushed; unfinished entries stay pending for other instances.
//!
//! # Cleanup
//!
//! [`Consumer::clean_up_consumed_messages`] deletes, for channels registered with
//! [`ChannelOptions::message_cleanup`], exactly the entries older than the oldest entry
//! still needed by one of the listed [`consumers`](ChannelOptions::consumers) services
//! (not yet delivered to its group, or pending there); a listed service without a group
//! blocks deletion. Cost: `XINFO GROUPS`, one `XPENDING` summary per listed group, one
//! `XTRIM MINID` — independent of the stream length.
//!
//! # Housekeeping and stats
//!
//! Consumers of the service idle longer than [`ConsumerOptions::idle_consumer_timeout`]
//! (default 24 h) with nothing pending are removed; [`Consumer::get_stats`] reports per
//! channel processed, failed, retried, dead-lettered, reclaimed, lag and pending.
//! `tracing` spans per batch (`consume`) and per handler (`handler`).
//!
//! # On a Redis Cluster
//!
//! Each channel is read by its own `XREADGROUP` (never one spanning slots), so it blocks
//! on the node owning that stream. Reclaim, acknowledgements, cleanup and stats are
//! commands on that one stream; the dead-letter stream `<channel>:dlq` usually hashes to
//! another slot and is written by its own `XADD`. After a failover the reading loop
//! reconnects (capped backoff, [`ConsumerOptions::max_backoff`], 1 s by default, so
//! reading resumes within about a second of the failover) and entries delivered but not
//! acknowledged are reclaimed and retried: at-least-once holds.
//!
//! # Sync and async
//!
//! [`Consumer`] is async (tokio). [`BlockingConsumer`] is its blocking twin with the same
//! method names: it owns a small runtime and runs the same async code on it, like
//! mini-redis's blocking client, so the logic exists once.
//!
//! ```no_run
//! use std::time::Duration;
//! use dtrsfw::redis::{ChannelOptions, Consumer, RedisConfig, RedisInstance, StartFrom};
//!
//! # async fn run() -> dtrsfw::redis::Result<()> {
//! let redis = RedisInstance::new(RedisConfig::from_env()?)?;
//! let consumer = Consumer::new(&redis, "billing")?;
//! consumer
//!     .register_channel(
//!         "orders",
//!         ChannelOptions::new()
//!             .start_from(StartFrom::Beginning)
//!             .parallelism(8)
//!             .consumers(["billing", "mailer"])
//!             .message_cleanup(true),
//!     )
//!     .await?;
//! consumer.register_handler("orders", |name, payload| {
//!     println!("{name}: {payload}");
//!     Ok::<(), String>(())
//! })?;
//! consumer
//!     .persist_consume_all_channels_until(Duration::from_millis(100), Duration::from_secs(1), async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await?;
//! # Ok(()) }
//! ```

mod blocking;
mod cleanup;
mod dead_letter;
mod handler;
mod options;
mod reply;
mod stats;
mod worker;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::Value;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

pub use self::blocking::BlockingConsumer;
pub(crate) use self::dead_letter::replay_letter;
pub use self::dead_letter::{
    DeadLetter, ReplayReport, dead_letter_stream, list_dead_letters, purge_dead_letters, replay_dead_letters,
};
pub use self::handler::Delivery;
use self::handler::Handler;
pub use self::options::{ChannelOptions, ConsumerOptions, StartFrom};
pub use self::stats::{ChannelStats, ConsumerStats};
use self::worker::{Channel, RunMode, Shared};
use super::connection::RedisInstance;
use super::error::{Error, Result};

/// Replaces every run of characters outside `[A-Za-z0-9._:-]` with `-` and truncates, as
/// `dtpyfw` does for its names.
fn sanitize(s: &str, max_len: usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_run = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    out.chars().take(max_len).collect()
}

/// The consumer group of `service` on `channel`: `<channel>:<service>:cg`.
pub fn group_name(channel: &str, service: &str) -> String {
    format!("{channel}:{}:cg", sanitize(service, 128))
}

fn host_name() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .or_else(|_| std::fs::read_to_string("/etc/hostname"))
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Eight hex characters that differ between instances (std's per-process random hash
/// keys, mixed with the time and a counter; no cryptographic strength needed).
fn random8() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    format!("{:08x}", h.finish() as u32)
}

/// Stops the `persist_*` loops of a [`Consumer`]: they stop reading, let in-flight
/// handlers finish (within [`ConsumerOptions::shutdown_timeout`]), flush
/// acknowledgements and return. Cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl ShutdownHandle {
    /// Requests shutdown. Idempotent; a consumer that was shut down stays shut down (see
    /// [`Consumer::shutdown`]).
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }

    /// Whether shutdown was requested.
    pub fn is_shutdown(&self) -> bool {
        *self.tx.borrow()
    }
}

struct Inner {
    shared: Shared,
    channels: RwLock<BTreeMap<String, Arc<Channel>>>,
    stop: Arc<watch::Sender<bool>>,
}

/// A Redis Streams consumer for one service. See the [module docs](self).
///
/// Cheap to clone; clones share channels, handlers, counters and shutdown.
#[derive(Clone)]
pub struct Consumer {
    inner: Arc<Inner>,
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
    pub fn new(redis: &RedisInstance, consumer_name: &str) -> Result<Self> {
        Consumer::with_options(redis, consumer_name, ConsumerOptions::default())
    }

    /// A consumer with explicit [`ConsumerOptions`].
    pub fn with_options(redis: &RedisInstance, consumer_name: &str, options: ConsumerOptions) -> Result<Self> {
        let service = sanitize(consumer_name, 128);
        if service.is_empty() {
            return Err(Error::invalid_input("consumer (service) name is empty"));
        }
        let instance = format!(
            "{service}.{}.{}.{}",
            sanitize(&host_name(), 64),
            std::process::id(),
            random8()
        );
        let (tx, _) = watch::channel(false);
        Ok(Consumer {
            inner: Arc::new(Inner {
                shared: Shared {
                    redis: redis.clone(),
                    consumer_name: sanitize(&instance, 200),
                    service,
                    options,
                },
                channels: RwLock::new(BTreeMap::new()),
                stop: Arc::new(tx),
            }),
        })
    }

    /// The service name (sanitized), which names the groups.
    pub fn service(&self) -> &str {
        &self.inner.shared.service
    }

    /// This instance's unique consumer name inside the groups.
    pub fn consumer_name(&self) -> &str {
        &self.inner.shared.consumer_name
    }

    /// This service's group on `channel`: `<channel>:<service>:cg`.
    pub fn group_name(&self, channel: &str) -> String {
        group_name(channel, &self.inner.shared.service)
    }

    /// The registered channels, in name order.
    pub fn channel_names(&self) -> Vec<String> {
        self.inner
            .channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn channel(&self, channel: &str) -> Result<Arc<Channel>> {
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
            worker::create_group(&self.inner.shared, channel, &group, options.start_from.as_id()).await?;
        }
        let ch = Arc::new(Channel {
            name: channel.into(),
            dlq: format!("{channel}:dlq"),
            group,
            opts: options,
            handlers: RwLock::new(Arc::from(Vec::new())),
            counters: Default::default(),
            state: Default::default(),
        });
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
        let ch = self.channel(channel)?;
        let mut handlers = ch.handlers.write().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<Handler> = handlers.iter().cloned().collect();
        list.push(handler);
        *handlers = Arc::from(list);
        Ok(())
    }

    /// Adds a sync handler to `channel`: it gets the message name and the decoded JSON
    /// payload. Handlers run in registration order; the entry is acknowledged when all
    /// return `Ok`. Handlers added while a loop runs take effect at its next start.
    ///
    /// A sync handler runs inline on the consuming task when the channel's parallelism is
    /// 1 (no thread hop, order kept) and on tokio's blocking pool otherwise, so that
    /// blocking handlers really run side by side.
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
        )
    }

    /// Adds a sync handler that gets the body decoded as `T`. A body that does not decode
    /// as `T` counts as a failure of this handler (retried, then dead-lettered).
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

    fn check_group(&self, ch: &Channel, group: &str) -> Result<()> {
        if group == ch.group || group == self.inner.shared.service {
            Ok(())
        } else {
            Err(Error::invalid_input(format!(
                "group {group:?} is not this consumer's group on {:?} (expected {:?} or the service name)",
                ch.name, ch.group
            )))
        }
    }

    /// Processes one batch of `channel`: reclaims stalled entries if due, reads new ones
    /// (waiting up to `block_time` in Redis `BLOCK` when there are none), runs the
    /// handlers, acknowledges, and returns how many entries were processed successfully.
    /// `group` is this consumer's group on the channel, or its service name.
    ///
    /// Fails before reading anything when `channel` has no handler (its entries would be
    /// acknowledged unhandled), as do the other `consume_*` methods.
    ///
    /// Bounded: before it reads, a batch sends at most one command on the shared
    /// connection (the reclaim), then reads on a connection of its own, opened on the first
    /// read. Against a server that does not answer, the first batch after
    /// [`register_channel`](Self::register_channel) (which opened the shared connection)
    /// fails within `socket timeout + connect timeout`.
    pub async fn consume_messages(&self, channel: &str, group: &str, block_time: Duration) -> Result<u64> {
        let ch = self.channel(channel)?;
        self.check_group(&ch, group)?;
        let mode = RunMode {
            once: true,
            block: block_time,
            rest: Duration::ZERO,
        };
        worker::run(&self.inner.shared, &ch, mode, self.inner.stop.subscribe()).await
    }

    /// Consumes `channel` until shutdown ([`shutdown`](Self::shutdown) or a
    /// [`ShutdownHandle`]); then drains and returns. A busy loop reads the next batch at
    /// once; an idle one waits in Redis `BLOCK` up to `block_time`. `rest_time` is the
    /// first pause after a Redis failure (doubled per failure, up to
    /// [`ConsumerOptions::max_backoff`]); the loop never sleeps otherwise.
    pub async fn persist_consume_messages(
        &self,
        channel: &str,
        group: &str,
        rest_time: Duration,
        block_time: Duration,
    ) -> Result<()> {
        let ch = self.channel(channel)?;
        self.check_group(&ch, group)?;
        let mode = RunMode {
            once: false,
            block: block_time,
            rest: rest_time,
        };
        worker::run(&self.inner.shared, &ch, mode, self.inner.stop.subscribe())
            .await
            .map(|_| ())
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

    fn reading_channels(&self) -> Vec<Arc<Channel>> {
        self.channels_where(|c| c.opts.read_messages)
    }

    async fn run_all(&self, mode: RunMode) -> Result<u64> {
        let channels = self.reading_channels();
        // Every channel is checked before any is read: one without a handler stops them all.
        for ch in &channels {
            ch.handlers_to_run()?;
        }
        let mut set = tokio::task::JoinSet::new();
        for ch in channels {
            let this = self.clone();
            let stop = self.inner.stop.subscribe();
            set.spawn(async move { worker::run(&this.inner.shared, &ch, mode, stop).await });
        }
        let mut total = 0;
        let mut first_error = None;
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Ok(n)) => total += n,
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        first_error.map_or(Ok(total), Err)
    }

    /// One batch of every reading channel, side by side (each on its own connection, so
    /// idle channels block together, not one after the other). Returns the number of
    /// entries processed successfully. Fails before reading any channel when one of the
    /// reading channels has no handler.
    pub async fn consume_all_channels(&self, block_time: Duration) -> Result<u64> {
        self.run_all(RunMode {
            once: true,
            block: block_time,
            rest: Duration::ZERO,
        })
        .await
    }

    /// Consumes every reading channel until shutdown, then drains and returns. See
    /// [`persist_consume_messages`](Self::persist_consume_messages) for `rest_time` and
    /// `block_time`.
    pub async fn persist_consume_all_channels(&self, rest_time: Duration, block_time: Duration) -> Result<()> {
        self.run_all(RunMode {
            once: false,
            block: block_time,
            rest: rest_time,
        })
        .await
        .map(|_| ())
    }

    /// [`persist_consume_all_channels`](Self::persist_consume_all_channels) until
    /// `shutdown` resolves (e.g. `tokio::signal::ctrl_c()`), then a graceful stop.
    pub async fn persist_consume_all_channels_until(
        &self,
        rest_time: Duration,
        block_time: Duration,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let run = self.persist_consume_all_channels(rest_time, block_time);
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => return result,
            () = shutdown => self.shutdown(),
        }
        run.await
    }

    /// A handle that stops this consumer's loops from anywhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            tx: self.inner.stop.clone(),
        }
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
    pub async fn clean_up_consumed_messages(&self) -> Result<u64> {
        let channels = self.channels_where(|c| c.opts.message_cleanup);
        let mut deleted = 0;
        for ch in channels {
            deleted += cleanup::clean_channel(&self.inner.shared, &ch).await?;
        }
        Ok(deleted)
    }

    /// Removes from this service's groups the consumers idle longer than
    /// [`ConsumerOptions::idle_consumer_timeout`] with nothing pending (names left by
    /// dead instances). The `persist_*` loops do this periodically. Returns how many were
    /// removed.
    pub async fn remove_idle_consumers(&self) -> Result<u64> {
        let mut removed = 0;
        for ch in self.reading_channels() {
            removed += remove_idle_consumers_of(&self.inner.shared, &ch).await?;
        }
        Ok(removed)
    }

    /// Per channel: this instance's counters, and the group's lag and pending count from
    /// Redis (left `None` for a channel Redis could not be asked about).
    pub async fn get_stats(&self) -> Result<ConsumerStats> {
        let channels = self.channels_where(|_| true);
        let mut client = self.inner.shared.redis.get_async_redis_client().await?;
        let mut stats = ConsumerStats::default();
        for ch in channels {
            let mut s = ch.counters.snapshot(ch.group.clone());
            let info = redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(&*ch.name)
                .query_async::<Value>(&mut client)
                .await;
            if let Ok(info) = info
                && let Some(r) = reply::records(&info)
                    .into_iter()
                    .find(|r| r.string("name").as_deref() == Some(ch.group.as_str()))
            {
                s.lag = r.u64("lag");
                s.pending = r.u64("pending");
            }
            stats.channels.insert(ch.name.to_string(), s);
        }
        Ok(stats)
    }
}

/// Housekeeping of one channel's group: `XGROUP DELCONSUMER` for idle consumers with
/// nothing pending (never this instance).
pub(crate) async fn remove_idle_consumers_of(shared: &Shared, ch: &Channel) -> Result<u64> {
    let mut client = shared.redis.get_async_redis_client().await?;
    let info: Value = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&*ch.name)
        .arg(&ch.group)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("listing the consumers of {}", ch.group), e))?;
    let limit = shared.options.idle_consumer_timeout.as_millis() as u64;
    let mut removed = 0;
    for r in reply::records(&info) {
        let (Some(name), Some(pending), Some(idle)) = (r.string("name"), r.u64("pending"), r.u64("idle")) else {
            continue;
        };
        if name == shared.consumer_name || pending > 0 || idle <= limit {
            continue;
        }
        let _: Value = redis::cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg(&*ch.name)
            .arg(&ch.group)
            .arg(&name)
            .query_async(&mut client)
            .await
            .map_err(|e| Error::redis(format!("removing consumer {name} from {}", ch.group), e))?;
        tracing::debug!(channel = %ch.name, consumer = %name, idle_ms = idle, "removed idle consumer");
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized_like_dtpyfw() {
        assert_eq!(sanitize("my service/ä!x", 128), "my-service-x");
        assert_eq!(group_name("orders", "billing"), "orders:billing:cg");
        assert_eq!(sanitize("abcdef", 3), "abc");
        assert_eq!(random8().len(), 8);
    }
}
