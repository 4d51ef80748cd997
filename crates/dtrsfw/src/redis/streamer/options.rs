//! Options of the consumer and of each registered channel.

use std::time::Duration;

/// Where a newly created consumer group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartFrom {
    /// Only entries added after the group is created (`$`), the Python package's default.
    #[default]
    NewMessages,
    /// Every entry already in the stream (`0`).
    Beginning,
}

impl StartFrom {
    pub(crate) fn as_id(self) -> &'static str {
        match self {
            StartFrom::NewMessages => "$",
            StartFrom::Beginning => "0",
        }
    }
}

/// How one channel is consumed and cleaned up: the four parameters of the seed's
/// `register_channel(channel, read_messages, consumers, message_cleanup)` plus the
/// delivery knobs.
///
/// ```
/// use std::time::Duration;
/// use dtrsfw::redis::{ChannelOptions, StartFrom};
///
/// let opts = ChannelOptions::new()
///     .consumers(["billing", "mailer"])
///     .message_cleanup(true)
///     .start_from(StartFrom::Beginning)
///     .parallelism(8)
///     .max_deliveries(5)
///     .reclaim_idle(Duration::from_secs(30));
/// assert_eq!(opts.get_parallelism(), 8);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChannelOptions {
    pub(crate) read_messages: bool,
    pub(crate) consumers: Vec<String>,
    pub(crate) message_cleanup: bool,
    pub(crate) delete_when_acked_by_all: bool,
    pub(crate) start_from: StartFrom,
    pub(crate) parallelism: usize,
    /// `None`: adaptive (see `window.rs`).
    pub(crate) read_ahead: Option<usize>,
    pub(crate) max_deliveries: u64,
    pub(crate) reclaim_idle: Duration,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            read_messages: true,
            consumers: Vec::new(),
            message_cleanup: false,
            delete_when_acked_by_all: false,
            start_from: StartFrom::NewMessages,
            parallelism: 1,
            read_ahead: None,
            max_deliveries: 5,
            reclaim_idle: Duration::from_secs(60),
        }
    }
}

impl ChannelOptions {
    /// The defaults: read, no cleanup, new messages only, one handler at a time, five
    /// deliveries, reclaim after 60 s idle.
    #[must_use]
    pub fn new() -> Self {
        ChannelOptions::default()
    }

    /// Whether this instance reads the channel (`false`: the channel is registered for
    /// [`clean_up_consumed_messages`](super::Consumer::clean_up_consumed_messages) only).
    /// By default, `true`.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn read_messages(mut self, read: bool) -> Self {
        self.read_messages = read;
        self
    }

    /// The services whose acknowledgement an entry needs before cleanup may delete it.
    /// By default, none (and cleanup then deletes nothing).
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn consumers<S: Into<String>>(mut self, services: impl IntoIterator<Item = S>) -> Self {
        self.consumers = services.into_iter().map(Into::into).collect();
        self
    }

    /// Whether `clean_up_consumed_messages` trims this channel. By default, `false`.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn message_cleanup(mut self, cleanup: bool) -> Self {
        self.message_cleanup = cleanup;
        self
    }

    /// Deletes each entry of this channel once every group that must see it has received
    /// and acknowledged it, with no call to
    /// [`clean_up_consumed_messages`](super::Consumer::clean_up_consumed_messages) needed.
    ///
    /// The groups that must see it are **every consumer group of the stream** (groups of
    /// services not listed in [`consumers`](Self::consumers) count too: their entries are
    /// kept for them) **plus the group of every listed service** (a listed service without
    /// a group yet blocks deletion until its group exists). Then:
    ///
    /// - On Redis 8.2 and later (detected, see
    ///   [`ServerCapabilities`](crate::redis::ServerCapabilities)), this consumer
    ///   acknowledges with `XACKDEL <channel> <group> ACKED IDS ...`: the entry is deleted
    ///   by the acknowledgement of the last group to acknowledge it, if that is a
    ///   `dtrsfw` consumer with this option. The loop also runs a pass when it starts and
    ///   every 5 seconds (`XINFO GROUPS`, `XTRIM <channel> MINID <t> ACKED`) that deletes
    ///   the entries every group acknowledged by a plain `XACK` (another service, a Python
    ///   one), and switches to plain `XACK` while a listed service has no group.
    /// - On older servers (Redis 7.x, Valkey 8.1 and 9.1), acknowledgements are plain
    ///   `XACK` and the same pass, every 5 seconds, deletes what the cleanup rule of
    ///   [`clean_up_consumed_messages`](super::Consumer::clean_up_consumed_messages)
    ///   allows over the groups above: every entry older than the oldest one a group has
    ///   not received or still has pending. An acknowledged entry newer than one still
    ///   pending stays until that one is settled.
    ///
    /// Either way an entry some group has not acknowledged is never deleted. The pass runs
    /// in this channel's consuming loop only (`consume_*`, `persist_*`); on a channel that
    /// is not read here, [`clean_up_consumed_messages`](super::Consumer::clean_up_consumed_messages)
    /// runs the same pass. It replaces [`message_cleanup`](Self::message_cleanup)'s rule
    /// for this channel. By default, `false`.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn delete_when_acked_by_all(mut self, delete: bool) -> Self {
        self.delete_when_acked_by_all = delete;
        self
    }

    /// Where the group starts when `register_channel` creates it (an existing group keeps
    /// its position). By default, [`StartFrom::NewMessages`].
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn start_from(mut self, start: StartFrom) -> Self {
        self.start_from = start;
        self
    }

    /// The most entries whose handlers run at once in this instance (at least 1). With 1,
    /// entries are handled one after the other in stream order. By default, 1.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn parallelism(mut self, handlers: usize) -> Self {
        self.parallelism = handlers.max(1);
        self
    }

    /// How many entries beyond the free handler slots one read may fetch, to save round
    /// trips when handlers are fast. They wait locally (their claim renewed like running
    /// ones, pending in Redis so a crash leaves them to be reclaimed) and are handed to
    /// free slots in order. Setting it fixes the number; `read_ahead(0)` reads only for
    /// free slots (one `XREADGROUP` and one `XACK` per entry at parallelism 1). Keep it 0
    /// when several instances share the work and handlers are slow, so that idle
    /// instances get the entries.
    ///
    /// By default, adaptive: before the first handler finished, nothing is read ahead;
    /// then the read-ahead is at least what one slot finishes in about 200 µs (one round
    /// trip to Redis) at the handlers' measured pace, so the burst after a pause of the
    /// stream comes in one read; each full read (a backlog) doubles it, up to 64 entries
    /// and to what the slots finish in about 5 ms (so slow handlers read nothing ahead),
    /// and each short read halves it down to that floor. Handlers still run one at a
    /// time and in stream order at parallelism 1.
    ///
    /// ```
    /// use dtrsfw::redis::ChannelOptions;
    ///
    /// let opts = ChannelOptions::new().read_ahead(0);
    /// assert_eq!(opts.get_read_ahead(), Some(0));
    /// assert_eq!(ChannelOptions::new().get_read_ahead(), None, "adaptive");
    /// ```
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn read_ahead(mut self, entries: usize) -> Self {
        self.read_ahead = Some(entries);
        self
    }

    /// Deliveries after which a still-failing entry goes to the dead-letter stream (at
    /// least 1). By default, 5.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn max_deliveries(mut self, deliveries: u64) -> Self {
        self.max_deliveries = deliveries.max(1);
        self
    }

    /// How long an entry stays pending, unacknowledged and unrenewed, before any instance
    /// of the service reclaims (`XAUTOCLAIM`) and retries it. Entries in progress renew
    /// their claim at a third of this, so only failed entries and those of dead instances
    /// are taken. By default, 60 seconds.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn reclaim_idle(mut self, idle: Duration) -> Self {
        self.reclaim_idle = idle.max(Duration::from_millis(10));
        self
    }

    /// See [`read_messages`](Self::read_messages).
    #[must_use]
    pub fn get_read_messages(&self) -> bool {
        self.read_messages
    }

    /// See [`consumers`](Self::consumers).
    #[must_use]
    pub fn get_consumers(&self) -> &[String] {
        &self.consumers
    }

    /// See [`message_cleanup`](Self::message_cleanup).
    #[must_use]
    pub fn get_message_cleanup(&self) -> bool {
        self.message_cleanup
    }

    /// See [`delete_when_acked_by_all`](Self::delete_when_acked_by_all).
    #[must_use]
    pub fn get_delete_when_acked_by_all(&self) -> bool {
        self.delete_when_acked_by_all
    }

    /// See [`parallelism`](Self::parallelism).
    #[must_use]
    pub fn get_parallelism(&self) -> usize {
        self.parallelism
    }

    /// See [`read_ahead`](Self::read_ahead): the fixed read-ahead, `None` when adaptive.
    #[must_use]
    pub fn get_read_ahead(&self) -> Option<usize> {
        self.read_ahead
    }
}

/// Options of a [`Consumer`](super::Consumer) as a whole.
///
/// ```
/// use std::time::Duration;
/// use dtrsfw::redis::ConsumerOptions;
///
/// let opts = ConsumerOptions::new().shutdown_timeout(Duration::from_secs(10));
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsumerOptions {
    pub(crate) shutdown_timeout: Duration,
    pub(crate) idle_consumer_timeout: Duration,
    pub(crate) max_backoff: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            shutdown_timeout: Duration::from_secs(30),
            idle_consumer_timeout: Duration::from_secs(24 * 3600),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl ConsumerOptions {
    /// The defaults.
    #[must_use]
    pub fn new() -> Self {
        ConsumerOptions::default()
    }

    /// How long shutdown waits for in-flight handlers; those still running then are
    /// abandoned and their entries released to another instance (see the [module
    /// docs](super#shutdown)). By default, 30
    /// seconds.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Consumers of this service's groups idle longer than this with nothing pending are
    /// removed by housekeeping (dead instances leave their names behind). By default, 24
    /// hours.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn idle_consumer_timeout(mut self, idle: Duration) -> Self {
        self.idle_consumer_timeout = idle;
        self
    }

    /// The longest pause between reconnection attempts after Redis failed; it bounds how
    /// long after the server's return (or a failover) reading resumes. By default, 1
    /// second.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff.max(Duration::from_millis(10));
        self
    }
}
