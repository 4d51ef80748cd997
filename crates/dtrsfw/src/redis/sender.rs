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
//! `durability.rs` (the `WAIT`/`WAITAOF` of a durable send and their replies),
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
//! # Durability
//!
//! By default a send returns as soon as the primary has written the entry. Redis
//! replicates asynchronously: if the primary dies before a replica has the entry and a
//! replica is promoted (Sentinel, Cluster), an entry whose ID was returned is gone. Opt in
//! to wait for more:
//!
//! ```no_run
//! use std::time::Duration;
//! use dtrsfw::redis::sender::{Message, Sender, SenderOptions};
//!
//! # async fn run(redis: dtrsfw::redis::RedisInstance, message: Message) -> Result<(), dtrsfw::redis::Error> {
//! let options = SenderOptions::new()
//!     .set_wait_for_replicas(1) // WAIT 1 <timeout>
//!     .set_durability_timeout(Duration::from_millis(500));
//! let sender = Sender::with_options(&redis, options);
//! sender.register_channel("orders")?;
//! match sender.send_message("orders", &message).await {
//!     Ok(id) => println!("{id} is on the primary and one replica"),
//!     Err(err) if err.is_not_durable() => {
//!         // Written (err.written_ids()), but no replica confirmed it in time: keep it
//!         // (it may be lost in a failover right now) or send again (a duplicate).
//!     }
//!     Err(err) => return Err(err), // not written, or not known to be
//! }
//! # Ok(()) }
//! ```
//!
//! - [`SenderOptions::set_wait_for_replicas`]`(n)`: `WAIT n <timeout>`, the entry is in
//!   the memory of `n` replicas. A failover that promotes one of them keeps it (Sentinel
//!   and Cluster promote the most up-to-date replica they can reach).
//! - [`SenderOptions::set_wait_for_aof`]`(local, n)`: `WAITAOF`, the entry is fsynced to
//!   the append-only file of the primary (`local`) and of `n` replicas, so it survives a
//!   restart of those nodes. Redis >= 7.2 or Valkey >= 8.0: the sender checks once per
//!   instance, before its first write, that the server has `WAITAOF` (and, for `local`,
//!   `appendonly yes`) and refuses with [`ErrorKind::InvalidInput`](super::ErrorKind::InvalidInput)
//!   otherwise, writing nothing (Debian's Redis 7.0 is refused).
//! - Both may be set; each wait has [`SenderOptions::set_durability_timeout`] (1 s by
//!   default), and together they must be shorter than `redis_socket_timeout`.
//!
//! The wait commands go in the same pipeline as the `XADD`s, after them: one round trip
//! per single send and per chunk of a batch (a batch of up to
//! [`SenderOptions::set_batch_size`] messages waits once). Being on the same connection
//! is what makes the wait cover the send's writes. On a Cluster the pipeline goes to the
//! primary that owns the channel's slot, so the wait counts that primary's replicas
//! (during a failover redis-rs may send it to another node first; that node refuses the
//! `XADD` with `MOVED` and the whole pipeline is sent again to the owner, so a `WAIT`
//! reply from elsewhere is never used); under
//! [Sentinel](crate::redis::connection#redis-sentinel) it goes to the current primary.
//!
//! Under failover (tests `cluster_failover.rs` and `sentinel.rs`, soaks by
//! `scripts/failover-soak.sh`): with `wait_for_replicas(1)`, no acknowledged send was
//! lost when the primary was killed (Cluster: 0 of 3 489 in 10 runs; Sentinel: 0 of 2 624
//! in 10 runs). Without it none was lost either in those local runs (0 of 3 602 and 0 of
//! 2 178): the loss window is the replication lag at the moment of the crash, tiny on one
//! machine, larger across a network.
//!
//! When the requirement is not met in time, the send fails with
//! [`ErrorKind::NotDurable`](super::ErrorKind::NotDurable): the entries WERE written and
//! [`Error::written_ids`](super::Error::written_ids) lists them (for a batch, every entry
//! written by the call; the chunks after the unconfirmed one are not sent). It is not
//! retried, since a retry would write the entries again.
//!
//! Costs. Each durable send waits for the replica's acknowledgement (one more hop, a
//! replica's round trip plus its processing); `dtredis bench` rows
//! `publish_single_wait1` / `publish_batch_wait1` measure it beside the plain rows: on a
//! local primary + replica (Redis 7.0, loaded 2-core machine) `WAIT 1` halves throughput,
//! 6 032/s → 3 072/s for single sends and 103 287/s → 53 373/s in batches of 100, and
//! our durable sends run at 0.87–0.89 of a bare redis-rs `XADD` + `WAIT` pipeline
//! (`docs/performance.md` in the repository). With a remote replica add its round trip.
//! `WAITAOF` adds an fsync per wait (not benchmarked). A wait also
//! holds the connection it runs on: async sends share the instance's multiplexed
//! connection, so while a `WAIT` is outstanding (at most the durability timeout, when no
//! replica answers) the commands queued behind it on that connection wait too. Give
//! durable sends their own [`RedisInstance`](crate::redis::RedisInstance) if other work
//! on the instance must not wait.
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
mod durability;
mod edge;
mod options;
mod retention;
mod send;

pub use channels::Sender;
pub use options::SenderOptions;
pub use retention::Retention;
