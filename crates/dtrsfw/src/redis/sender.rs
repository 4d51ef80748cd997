//! `Sender`: publishes [`Message`]s to Redis streams (the Python `dtpyfw.redis.sender`).
//!
//! ```no_run
//! use dtrsfw::redis::sender::{Message, Retention, Sender};
//! use dtrsfw::redis::{RedisConfig, RedisInstance};
//!
//! # async fn run() -> Result<(), dtrsfw::redis::Error> {
//! let redis = RedisInstance::new(RedisConfig::from_env()?)?;
//! let sender = Sender::new(&redis); // Clone + Send + Sync; share it
//! sender.register_channel_with("orders", Retention::MaxLen(1_000_000))?;
//! let id = sender
//!     .send_message("orders", &Message::new("order.created", &serde_json::json!({"id": 1}))?)
//!     .await?;
//! println!("written as {id}");
//! let batch = vec![Message::new("order.created", &serde_json::json!({"id": 2}))?];
//! let ids = sender.send_messages("orders", &batch).await?; // one round trip per 1000
//! println!("{} more", ids.len());
//! # Ok(()) }
//! ```
//!
//! A runnable program: `examples/sender.rs` in this crate.
//!
//! # What is written
//!
//! An entry has exactly the Python package's fields: `name` and `body` (JSON text, as
//! `Message.get_json_encoded()`), so `dtpyfw` consumers read what `Sender` writes and the
//! other way round. We write compact JSON (`{"id":1}`), Python writes `{"id": 1}`; both
//! read either.
//!
//! Sending to a channel that was not registered ([`Sender::register_channel`],
//! [`Sender::register_channel_with`]) is an [`ErrorKind::InvalidInput`] error naming
//! it. [`Sender::send_messages`] pipelines a batch: one round trip per
//! [`SenderOptions::set_batch_size`] messages (1000 by default), returning the IDs in
//! order.
//!
//! # Sync and async
//!
//! Every send has an async form (`send_message`, `send_messages`) on the instance's shared
//! multiplexed connection, and a blocking twin (`send_message_blocking`,
//! `send_messages_blocking`) on its sync connection pool. Both build the same commands, parse
//! the same replies and take the same retry decisions through the private functions of this
//! module; only the I/O call and the sleep differ. The blocking twins need no runtime and
//! may be called from any thread (inside a tokio runtime they block that worker, as any
//! blocking call does: prefer the async form there).
//!
//! # Retries and duplicates
//!
//! A send that fails with a transient error ([`Error::is_transient`]: lost connection,
//! timeout, server loading or failing over) is tried again after an exponential backoff, at
//! most [`SenderOptions::set_max_attempts`] times in all; then the last error is returned.
//! Other errors (unregistered channel, `WRONGTYPE`, ACL refusal, ...) are returned at once.
//!
//! A failure can be *ambiguous*: the server may have written the entry and the reply been
//! lost (a timeout, or the connection breaking after the command left). The retry then
//! writes the message a second time, under a new entry ID. Delivery is therefore
//! at-least-once; consumers that must not act twice should deduplicate on a key of the
//! body. Set the attempt count to 1 for at-most-once sends.
//!
//! # Retention
//!
//! A channel registered with a [`Retention`] is trimmed by the `XADD` itself, on every send
//! (`XADD key MAXLEN ~ n * ...` or `XADD key MINID ~ <now - age> * ...`). The `~` makes the
//! trim approximate: Redis drops only whole internal nodes (up to `stream-node-max-entries`,
//! 100 by default), which costs next to nothing, so the stream may keep a few more entries
//! than the bound.
//!
//! # Logs
//!
//! `debug` per send (channel, message name, ID), `warn` per retry and on giving up;
//! bodies are never logged.
//!
//! # On a Redis Cluster
//!
//! A channel is one stream key, so one slot: single sends and pipelined batches go to its
//! primary in one round trip. A redirection redis-rs could not follow in time (the slot's
//! owner being replaced) counts as transient and is retried like a lost connection.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{Cmd, Pipeline, Value};

use super::connection::RedisInstance;
pub use super::entry_id::EntryId;
use super::error::{Error, ErrorKind, Result};
pub use super::message::Message;

/// How a channel's stream is kept bounded; applied by every `XADD` to it (see the
/// [module docs](self#retention)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retention {
    /// Keep about the newest `n` entries (`MAXLEN ~ n`).
    MaxLen(u64),
    /// Drop entries older than this (`MINID ~ <now - age>`). The age is measured against
    /// this process's clock, the IDs carry the server's: keep the clocks in sync (NTP) or
    /// leave a margin. Needs Redis 6.2 or later.
    MinAge(Duration),
}

/// Options of a [`Sender`]: retries and batching.
///
/// ```
/// use std::time::Duration;
/// use dtrsfw::redis::sender::SenderOptions;
///
/// let options = SenderOptions::new()
///     .set_max_attempts(5)
///     .set_initial_backoff(Duration::from_millis(20))
///     .set_batch_size(200);
/// assert_ne!(options, SenderOptions::new());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SenderOptions {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    batch_size: usize,
}

impl Default for SenderOptions {
    fn default() -> Self {
        SenderOptions {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            batch_size: 1000,
        }
    }
}

impl SenderOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times in all a send is tried when it fails with a transient error; 1 means
    /// no retry (at-most-once, see the [module docs](self#retries-and-duplicates)). Values
    /// below 1 count as 1. Each attempt is bounded by the instance's socket timeout, plus
    /// its connect timeout when the attempt must first open the shared connection (from a
    /// cold start, or when the last connect failed). So a send against a server that does
    /// not answer fails after at most `attempts × socket timeout` plus the backoffs while
    /// the connection is open, `attempts × connect timeout` plus the backoffs from a cold
    /// start (no connection can be opened), and never more than
    /// `attempts × (connect + socket timeout)` plus the backoffs. By default, 4.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The wait before the first retry; each further retry waits twice as long, up to
    /// [`set_max_backoff`](Self::set_max_backoff). By default, 50 ms.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest wait between two attempts. By default, 1 s.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The most `XADD`s sent in one pipeline (one round trip) by
    /// [`Sender::send_messages`]; a larger batch goes in several. Bounds the memory of a
    /// request and the time the shared connection is held by one batch. Values below 1
    /// count as 1. By default, 1000.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// The wait before the next try after try number `attempt` (1-based) failed with
    /// `err`, or `None` when the error is final: not transient, or no attempt left.
    fn retry_delay(&self, attempt: u32, err: &Error) -> Option<Duration> {
        if attempt >= self.max_attempts || !err.is_transient() {
            return None;
        }
        let doubled = self.initial_backoff.saturating_mul(1u32 << (attempt - 1).min(16));
        Some(doubled.min(self.max_backoff))
    }
}

/// The retry bookkeeping of one send, shared by the sync and async I/O loops.
struct Attempts<'a> {
    options: &'a SenderOptions,
    channel: &'a str,
    attempt: u32,
}

impl<'a> Attempts<'a> {
    fn new(options: &'a SenderOptions, channel: &'a str) -> Self {
        Attempts {
            options,
            channel,
            attempt: 1,
        }
    }

    /// The context of an error of the current attempt.
    fn context(&self, what: &dyn fmt::Display) -> String {
        format!(
            "{what} to channel {:?} (attempt {} of {})",
            self.channel, self.attempt, self.options.max_attempts
        )
    }

    /// Decides what follows a failure: `Ok(delay)` to sleep then try again, `Err` to give
    /// up with that error.
    fn failed(&mut self, err: Error) -> Result<Duration> {
        match self.options.retry_delay(self.attempt, &err) {
            Some(delay) => {
                tracing::warn!(
                    channel = self.channel,
                    attempt = self.attempt,
                    max_attempts = self.options.max_attempts,
                    delay_ms = delay.as_millis() as u64,
                    error = %err,
                    "stream send failed, retrying"
                );
                self.attempt += 1;
                Ok(delay)
            }
            None => {
                if err.is_transient() {
                    tracing::warn!(channel = self.channel, error = %err, "stream send failed, giving up");
                } else {
                    tracing::debug!(channel = self.channel, error = %err, "stream send failed");
                }
                Err(err)
            }
        }
    }
}

/// `XADD <channel> [MAXLEN|MINID ~ bound] * name <name> body <body>`.
fn xadd(channel: &str, retention: Option<Retention>, message: &Message, now: SystemTime) -> Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(channel);
    match retention {
        Some(Retention::MaxLen(n)) => {
            cmd.arg("MAXLEN").arg("~").arg(n);
        }
        Some(Retention::MinAge(age)) => {
            cmd.arg("MINID").arg("~").arg(min_id_ms(now, age));
        }
        None => {}
    }
    cmd.arg("*");
    for (field, value) in message.get_json_encoded() {
        cmd.arg(field).arg(value);
    }
    cmd
}

/// The oldest millisecond a `MinAge(age)` stream keeps, at `now`.
fn min_id_ms(now: SystemTime, age: Duration) -> u64 {
    let now_ms = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    u64::try_from(now_ms.saturating_sub(age.as_millis())).unwrap_or(u64::MAX)
}

/// One pipeline of `XADD`s for a chunk of a batch.
fn xadd_pipeline(channel: &str, retention: Option<Retention>, messages: &[Message], now: SystemTime) -> Pipeline {
    let mut pipe = redis::Pipeline::with_capacity(messages.len());
    // Per-command replies, so a refused XADD keeps its server code (see `parse_ids`).
    pipe.ignore_errors();
    for message in messages {
        pipe.add_command(xadd(channel, retention, message, now));
    }
    pipe
}

/// The entry ID in an `XADD` reply.
fn parse_id(reply: &Value) -> Result<EntryId> {
    let parsed = match reply {
        Value::BulkString(bytes) => EntryId::parse_bytes(bytes),
        Value::SimpleString(text) => EntryId::parse_bytes(text.as_bytes()),
        _ => None,
    };
    parsed.ok_or_else(|| {
        Error::new(
            ErrorKind::Response,
            format!("XADD answered {reply:?} instead of an entry ID"),
        )
    })
}

/// The entry IDs in the replies of a pipeline of `expected` `XADD`s. A refused `XADD`
/// becomes the error, with its server code (so `LOADING` is still seen as transient), in
/// the words of `context` plus which message was refused and how many of the chunk were
/// written.
fn parse_ids(replies: &[Value], expected: usize, ids: &mut Vec<EntryId>, context: &dyn Fn() -> String) -> Result<()> {
    if replies.len() != expected {
        return Err(Error::new(
            ErrorKind::Response,
            format!("{}: {} replies to {expected} XADD", context(), replies.len()),
        ));
    }
    let refused = replies.iter().enumerate().find_map(|(index, reply)| match reply {
        Value::ServerError(err) => Some((index, err)),
        _ => None,
    });
    if let Some((refused, err)) = refused {
        let written = replies.iter().filter(|r| !matches!(r, Value::ServerError(_))).count();
        return Err(Error::redis(
            format!(
                "{}: message {refused} of the chunk was refused, {written} of the chunk written",
                context()
            ),
            err.clone().into(),
        ));
    }
    for reply in replies {
        ids.push(parse_id(reply)?);
    }
    Ok(())
}

/// What a chunk of a batch is, for error messages: which messages, and how many were
/// written before.
struct ChunkLabel {
    start: usize,
    end: usize,
    total: usize,
}

impl fmt::Display for ChunkLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sending messages {}..{} of a batch of {} ({} written before)",
            self.start, self.end, self.total, self.start
        )
    }
}

struct Inner {
    redis: RedisInstance,
    options: SenderOptions,
    /// Registered channels and their retention. Read on every send, written only by
    /// registration, so a read lock (uncontended in practice) is all the hot path pays.
    channels: RwLock<HashMap<String, Option<Retention>>>,
}

/// Publishes messages to registered stream channels; the Python `Sender`.
///
/// Cheap to clone and `Send + Sync`: clones share the registered channels and the
/// instance's connections (one multiplexed connection for every async task, the sync pool
/// for blocking sends), never a connection per call. See the [module docs](self) for the
/// sync/async scheme, retries and retention.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
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
    pub fn new(redis: &RedisInstance) -> Self {
        Self::with_options(redis, SenderOptions::default())
    }

    /// A sender on `redis` with `options`.
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
    pub fn options(&self) -> &SenderOptions {
        &self.inner.options
    }

    /// Declares `channel` (a stream key) as one this sender publishes to, without a
    /// retention bound. Registering again replaces the retention. No I/O: the stream is
    /// created by the first send. Fails when the name is empty.
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
    pub fn register_channel_with(&self, channel: impl Into<String>, retention: Retention) -> Result<()> {
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
    pub fn is_registered(&self, channel: &str) -> bool {
        self.inner
            .channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(channel)
    }

    /// The retention of a registered channel; an error naming the channel otherwise.
    fn retention_of(&self, channel: &str) -> Result<Option<Retention>> {
        let channels = self.inner.channels.read().unwrap_or_else(|e| e.into_inner());
        match channels.get(channel) {
            Some(retention) => Ok(*retention),
            None if channel.is_empty() => Err(Error::invalid_input("channel name is empty")),
            None => Err(Error::invalid_input(format!(
                "channel {channel:?} is not registered with this sender (call register_channel({channel:?}) first)"
            ))),
        }
    }

    /// Appends `message` to the stream `channel` and returns its entry ID. The channel must
    /// be registered. Transient failures are retried (see the [module
    /// docs](self#retries-and-duplicates), a retry may write a duplicate).
    pub async fn send_message(&self, channel: &str, message: &Message) -> Result<EntryId> {
        let cmd = xadd(channel, self.retention_of(channel)?, message, SystemTime::now());
        let mut attempts = Attempts::new(&self.inner.options, channel);
        loop {
            let result = async {
                let mut client = self.inner.redis.get_async_redis_client().await?;
                let reply: Value = cmd
                    .query_async(&mut client)
                    .await
                    .map_err(|e| Error::redis(attempts.context(&"sending a message"), e))?;
                parse_id(&reply)
            }
            .await;
            match result {
                Ok(id) => {
                    tracing::debug!(channel, message = message.name(), %id, "message sent");
                    return Ok(id);
                }
                Err(err) => tokio::time::sleep(attempts.failed(err)?).await,
            }
        }
    }

    /// Appends `messages` to the stream `channel`, in order, pipelined: one round trip per
    /// chunk of at most [`SenderOptions::set_batch_size`] messages. Returns the entry IDs
    /// in the order of `messages` (strictly increasing).
    ///
    /// A chunk that fails transiently is sent again whole, so a retry may duplicate the
    /// chunk's entries that were written. On a final error, the chunks before the failing
    /// one are in the stream; the error message says how many messages were written.
    pub async fn send_messages(&self, channel: &str, messages: &[Message]) -> Result<Vec<EntryId>> {
        let retention = self.retention_of(channel)?;
        let mut ids = Vec::with_capacity(messages.len());
        for (index, chunk) in messages.chunks(self.inner.options.batch_size).enumerate() {
            let start = index * self.inner.options.batch_size;
            let label = ChunkLabel {
                start,
                end: start + chunk.len(),
                total: messages.len(),
            };
            let pipe = xadd_pipeline(channel, retention, chunk, SystemTime::now());
            let mut attempts = Attempts::new(&self.inner.options, channel);
            loop {
                let result = async {
                    let mut client = self.inner.redis.get_async_redis_client().await?;
                    let replies: Vec<Value> = pipe
                        .query_async(&mut client)
                        .await
                        .map_err(|e| Error::redis(attempts.context(&label), e))?;
                    parse_ids(&replies, chunk.len(), &mut ids, &|| attempts.context(&label))
                }
                .await;
                match result {
                    Ok(()) => break,
                    Err(err) => {
                        // A reply that failed to parse halfway must not leave IDs behind.
                        ids.truncate(start);
                        tokio::time::sleep(attempts.failed(err)?).await;
                    }
                }
            }
        }
        tracing::debug!(channel, count = messages.len(), "messages sent");
        Ok(ids)
    }

    /// The blocking twin of [`send_message`](Self::send_message), on the sync connection
    /// pool.
    pub fn send_message_blocking(&self, channel: &str, message: &Message) -> Result<EntryId> {
        let cmd = xadd(channel, self.retention_of(channel)?, message, SystemTime::now());
        let mut client = self.inner.redis.get_redis_client();
        let mut attempts = Attempts::new(&self.inner.options, channel);
        loop {
            let result = cmd
                .query::<Value>(&mut client)
                .map_err(|e| Error::redis(attempts.context(&"sending a message"), e))
                .and_then(|reply| parse_id(&reply));
            match result {
                Ok(id) => {
                    tracing::debug!(channel, message = message.name(), %id, "message sent");
                    return Ok(id);
                }
                Err(err) => std::thread::sleep(attempts.failed(err)?),
            }
        }
    }

    /// The blocking twin of [`send_messages`](Self::send_messages), on the sync connection
    /// pool.
    pub fn send_messages_blocking(&self, channel: &str, messages: &[Message]) -> Result<Vec<EntryId>> {
        let retention = self.retention_of(channel)?;
        let mut client = self.inner.redis.get_redis_client();
        let mut ids = Vec::with_capacity(messages.len());
        for (index, chunk) in messages.chunks(self.inner.options.batch_size).enumerate() {
            let start = index * self.inner.options.batch_size;
            let label = ChunkLabel {
                start,
                end: start + chunk.len(),
                total: messages.len(),
            };
            let pipe = xadd_pipeline(channel, retention, chunk, SystemTime::now());
            let mut attempts = Attempts::new(&self.inner.options, channel);
            loop {
                let result = pipe
                    .query::<Vec<Value>>(&mut client)
                    .map_err(|e| Error::redis(attempts.context(&label), e))
                    .and_then(|replies| parse_ids(&replies, chunk.len(), &mut ids, &|| attempts.context(&label)));
                match result {
                    Ok(()) => break,
                    Err(err) => {
                        ids.truncate(start);
                        std::thread::sleep(attempts.failed(err)?);
                    }
                }
            }
        }
        tracing::debug!(channel, count = messages.len(), "messages sent");
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient() -> Error {
        Error::redis(
            "test",
            redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset")),
        )
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stops_after_the_last_attempt() {
        let options = SenderOptions::new()
            .set_max_attempts(5)
            .set_initial_backoff(Duration::from_millis(100))
            .set_max_backoff(Duration::from_millis(300));
        let err = transient();
        assert!(err.is_transient());
        let delays: Vec<_> = (1..=5).map(|a| options.retry_delay(a, &err)).collect();
        assert_eq!(
            delays,
            [100, 200, 300, 300]
                .map(|ms| Some(Duration::from_millis(ms)))
                .into_iter()
                .chain([None])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn non_transient_errors_are_not_retried() {
        let options = SenderOptions::new();
        assert_eq!(options.retry_delay(1, &Error::invalid_input("x")), None);
        assert_eq!(
            SenderOptions::new().set_max_attempts(0).retry_delay(1, &transient()),
            None
        );
    }

    #[test]
    fn xadd_carries_retention_then_the_python_fields() {
        let message = Message::from_json("n", r#"{"a":1}"#).unwrap();
        let now = UNIX_EPOCH + Duration::from_millis(10_000);
        let args = |cmd: &Cmd| -> Vec<String> {
            cmd.args_iter()
                .map(|a| match a {
                    redis::Arg::Simple(b) => String::from_utf8(b.to_vec()).unwrap(),
                    _ => "<cursor>".into(),
                })
                .collect()
        };
        assert_eq!(
            args(&xadd("s", None, &message, now)),
            ["XADD", "s", "*", "name", "n", "body", r#"{"a":1}"#]
        );
        assert_eq!(
            args(&xadd("s", Some(Retention::MaxLen(5)), &message, now))[..6],
            ["XADD", "s", "MAXLEN", "~", "5", "*"]
        );
        assert_eq!(
            args(&xadd(
                "s",
                Some(Retention::MinAge(Duration::from_secs(4))),
                &message,
                now
            ))[..6],
            ["XADD", "s", "MINID", "~", "6000", "*"]
        );
    }

    #[test]
    fn sender_is_shareable_across_tasks_and_threads() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Sender>();
        shareable::<SenderOptions>();
        shareable::<EntryId>();
    }

    #[test]
    fn entry_ids_parse_strictly() {
        assert_eq!("0-1".parse::<EntryId>().unwrap(), EntryId::new(0, 1));
        for bad in ["", "1", "-1", "1-", "a-1", "1-2-3", "1 -2", "99999999999999999999999-0"] {
            assert!(bad.parse::<EntryId>().is_err(), "{bad:?}");
        }
        assert!(parse_id(&Value::Nil).unwrap_err().is_response());
    }
}
