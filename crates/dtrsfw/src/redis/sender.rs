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
//! [`Sender::register_channel_with`]) is an
//! [`ErrorKind::InvalidInput`](super::ErrorKind::InvalidInput) error naming it.
//! [`Sender::send_messages`] pipelines a batch: one round trip per
//! [`SenderOptions::set_batch_size`] messages (1000 by default), returning the IDs in
//! order.
//!
//! # Sync and async
//!
//! Every send has an async form (`send_message`, `send_messages`) on the instance's shared
//! multiplexed connection, and a blocking twin (`send_message_blocking`,
//! `send_messages_blocking`) on its sync connection pool. Each flow is written once, as
//! `async` code over a small I/O seam (`sender/edge.rs`): the same commands, replies,
//! retry decisions and backoff; only the I/O call and the sleep differ. The blocking
//! twins drive that code on the calling thread with no runtime and may be called from any
//! thread (inside a tokio runtime they block that worker, as any blocking call does:
//! prefer the async form there).
//!
//! The files of this module: `options.rs` ([`SenderOptions`], the backoff),
//! `retention.rs` ([`Retention`]), `channels.rs` ([`Sender`] and its registered
//! channels), `command.rs` (the `XADD`s and their replies), `attempts.rs` (the retry
//! bookkeeping), `send.rs` (the send flows) and `edge.rs` (the sync and async I/O).
//!
//! # Retries and duplicates
//!
//! A send that fails with a transient error ([`Error::is_transient`](super::Error::is_transient): lost connection,
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
//! That trimming drops entries whether or not they were consumed. The acknowledged-only
//! forms, [`Retention::MaxLenAcked`] (`XADD key MAXLEN n ACKED * ...`) and
//! [`Retention::MinAgeAcked`] (`MINID <now - age> ACKED`), trim only entries every
//! consumer group of the stream has read and acknowledged (with no group at all, they
//! trim like the plain forms). They need Redis 8.2: registering a channel with one asks
//! the server ([`RedisInstance::server_capabilities`](super::RedisInstance::server_capabilities))
//! and is refused on a server without the `ACKED` option, with an error naming its
//! product and version; they are never downgraded to a trim that could drop unconsumed
//! entries. They trim exactly (no `~`): an approximate `~ ... ACKED` trim removes nothing
//! on Redis 8.2.2 to 8.4 (redis/redis#14656). If the server is replaced by an older one
//! later (a failover), sends to such a channel fail with the server's syntax error
//! rather than trim differently. Which server supports what: the
//! [compatibility table](super::streamer#server-compatibility).
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

pub use super::entry_id::EntryId;
pub use super::message::Message;

mod attempts;
mod channels;
mod command;
mod edge;
mod options;
mod retention;
mod send;

pub use channels::Sender;
pub use options::SenderOptions;
pub use retention::Retention;
