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
//! (default 1: in order). A read fetches as many entries as there are free slots, plus
//! a read-ahead that saves round trips when handlers are fast. Sync handlers run inline
//! at parallelism 1 and on tokio's blocking pool above it: one thread hop per entry,
//! the right price for handlers that block (file I/O, a sync client, CPU work) and a
//! heavy one for handlers that take microseconds. For many cheap or I/O-bound handlers
//! at once, register an async handler
//! ([`Consumer::register_async_handler`](crate::redis::Consumer::register_async_handler)):
//! it runs on the runtime's worker threads, no hop (`dtredis bench`'s latency rows use one; with
//! a sync handler, `parallelism(16)` at 20 000 messages/s on 2 cores fell behind:
//! p99 119 ms against 5 ms at parallelism 1).
//!
//! With async handlers only, the channel's loop polls one slot itself rather than handing
//! it to a task of its own: at parallelism 1 every entry, above it the next chunk of
//! entries whenever that slot is free (so every entry of a channel that receives them one
//! at a time); the other slots are spawned tasks, run by every worker. An entry in the
//! loop's slot starts without waiting for a task switch (about 25 µs less from read to
//! handler on a 2-core machine). While its handler awaits, the loop goes on renewing
//! claims, sending acknowledgements and starting other slots as usual; an async handler
//! that computes for seconds *without awaiting* would hold the loop meanwhile, as it
//! would hold a runtime worker anyway: run such work in `tokio::task::spawn_blocking`, or
//! register a sync handler, which always gets a task of its own.
//!
//! Entries go to slots in chunks, each run one after the other: an even share of what
//! is waiting, but never fewer than the handlers finish, at their average pace over the
//! last few entries, in about the time another slot takes to start (25 µs). So a burst
//! of handlers that take microseconds runs in the slots already going instead of waiting
//! for task switches, while handlers slower than that, or not yet timed, get a slot each.
//!
//! # Reading and acknowledging under load
//!
//! By default the read-ahead is adaptive ([`ChannelOptions::read_ahead`] fixes it). A
//! read returns whatever has arrived, up to its count, so a lone message is handed over
//! as soon as it arrives whatever the count. Once handlers have been timed, a read asks
//! at least for the free slots plus what one slot finishes in about 200 µs (one round
//! trip) at their pace: the burst that follows a pause of the stream (a stalled
//! producer, a network blip) comes in one read instead of one read per doubling. When a
//! read comes back full (the stream holds more: a backlog), the next one asks for twice
//! as many, up to 64 entries beyond the slots and to about 5 ms of queued work at the
//! handlers' measured pace; a short read halves it again, down to that floor. Entries
//! read ahead are pending in Redis under this instance's name like running ones: their
//! claims are renewed, a crash leaves them to be reclaimed, and at shutdown those not
//! started are released (see Shutdown). At parallelism 1 they still
//! run one at a time, in stream order.
//!
//! Acknowledgements are batched: an entry's ID is queued once its handlers finished, and
//! the queue goes out as one `XACK` pipelined just ahead of the next read (one round trip
//! for both; Redis runs the `XACK` first, so it never holds more entries for the instance
//! than its window), or after 10 ms while handlers are still busy, or after 10 ms of a
//! blocking read. Under load one round trip serves a whole batch; an entry is
//! acknowledged within about 10 ms of its handlers finishing.
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
//! are flushed. What was not finished (entries read ahead and never started, handlers
//! still running at the timeout) is then *released*: it stays pending under this
//! instance's name, its delivery count unchanged, but its idle time is set to
//! [`ChannelOptions::reclaim_idle`] (`XCLAIM ... IDLE ... JUSTID`), so the next reclaim
//! pass of any instance of the service takes it at once, rather than a whole reclaim
//! idle time later (the next loop of this instance takes it back at start anyway). If
//! the release fails (the server is gone), the entries are reclaimed as after a crash.
//!
//! # Cleanup
//!
//! [`Consumer::clean_up_consumed_messages`] deletes, for channels registered with
//! [`ChannelOptions::message_cleanup`], exactly the entries older than the oldest entry
//! still needed by one of the listed [`consumers`](ChannelOptions::consumers) services
//! (not yet delivered to its group, or pending there); a listed service without a group
//! blocks deletion. Cost: `XINFO GROUPS`, one `XPENDING` summary per listed group, one
//! `XTRIM MINID` — independent of the stream length. It does not use Redis 8.2's
//! `XTRIM ... ACKED`, even where the server has it: that deletes every acknowledged
//! entry, also those after one still pending (checked on 8.2.3), which is not this rule's
//! result (the entries older than the oldest one still needed), and it protects the
//! entries of groups that are not listed, which this rule does not.
//!
//! [`ChannelOptions::delete_when_acked_by_all`] deletes entries as they are acknowledged
//! by every group of the stream (plus the listed services' groups) instead, with no call
//! needed; see its documentation for the exact rule on each server.
//!
//! # Server compatibility
//!
//! Tested on Redis 7.0, Valkey 8.1, Redis 8.2 and Valkey 9.1 (`scripts/test.sh`). What is
//! used where; "8.2 commands" means `XACKDEL` and the `ACKED` option of `XADD`/`XTRIM`,
//! detected by capability ([`ServerCapabilities`](crate::redis::ServerCapabilities),
//! shown by `dtredis info`), never by product name:
//!
//! | feature | Redis 7.0 | Valkey 8.1 | Redis 8.2 | Valkey 9.1 |
//! |---|---|---|---|---|
//! | consumer groups, reclaim (`XAUTOCLAIM`), dead letters, lag in stats | yes | yes | yes | yes |
//! | [`Retention::MaxLen`](crate::redis::Retention::MaxLen) / `MinAge` (`XADD ... MAXLEN ~ n` / `MINID ~`) | yes | yes | yes | yes |
//! | [`Retention::MaxLenAcked`](crate::redis::Retention::MaxLenAcked) / `MinAgeAcked` (`XADD ... MAXLEN n ACKED`) | refused at registration | refused | yes | refused |
//! | [`clean_up_consumed_messages`](Consumer::clean_up_consumed_messages) (`XINFO GROUPS`, `XPENDING`, `XTRIM MINID`) | yes | yes | yes | yes |
//! | [`delete_when_acked_by_all`](ChannelOptions::delete_when_acked_by_all): acknowledgement | `XACK` | `XACK` | `XACKDEL ... ACKED` | `XACK` |
//! | `delete_when_acked_by_all`: the 5 s pass | cleanup rule over every group (prefix) | cleanup rule | `XTRIM MINID <t> ACKED` | cleanup rule |
//! | 8.2 commands detected | no | no | yes (8.2.3) | no (9.1.2 has no `XACKDEL`) |
//!
//! Redis 8.2.2 to 8.4 remove nothing with an *approximate* `~ ... ACKED` trim
//! (redis/redis#14656, checked on 8.2.3), so the acknowledged-only forms trim exactly.
//! Exact acknowledged-only trimming scans the unacknowledged entries at the head of the
//! stream on every `XADD`: keep consumers within the bound (see
//! [`Retention::MaxLenAcked`](crate::redis::Retention::MaxLenAcked)).
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

// Layers, lowest first (a file imports only files above it in this list, and
// `crate::redis::{connection, entry_id, error, message}`): reply, options, stats,
// handler, names, shutdown, window (pure pieces) · channel (a registered channel and the state
// its loop keeps) · acks, dead_letter (the field contract and its writer, with the
// operator functions) · settle (what happens to one entry) · dispatch (running handlers:
// `ChannelRun`, what one run of a loop works on) · read, recovery, housekeeping, cleanup,
// delete_on_ack (the commands a run sends; delete_on_ack uses cleanup) · channel_loop (the loop and its schedule) · consumer,
// consume (the public type) · blocking (its sync twin).
mod acks;
mod blocking;
mod channel;
mod channel_loop;
mod cleanup;
mod consume;
mod consumer;
mod dead_letter;
mod delete_on_ack;
mod dispatch;
mod gauges;
mod handler;
mod housekeeping;
mod inline_slot;
mod names;
mod options;
mod read;
mod recovery;
// Visible to the crate: `inspect` decodes `XINFO GROUPS`/`CONSUMERS` with it too.
pub(crate) mod reply;
mod settle;
mod shutdown;
mod stats;
mod window;

pub use self::blocking::BlockingConsumer;
pub use self::consumer::Consumer;
pub use self::dead_letter::{
    DeadLetter, ReplayReport, dead_letter_stream, list_dead_letters, purge_dead_letters, replay_dead_letters,
};
pub(crate) use self::dead_letter::{
    letters as dead_letters_of, range as dead_letter_range, replay_letter, replay_where,
};
pub use self::handler::Delivery;
pub use self::names::group_name;
pub use self::options::{ChannelOptions, ConsumerOptions, StartFrom};
pub use self::shutdown::ShutdownHandle;
pub use self::stats::{ChannelStats, ConsumerStats};
