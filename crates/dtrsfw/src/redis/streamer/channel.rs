//! A registered channel, what the consumer shares with its loops, and the group a channel
//! is read with.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::Value;
use tracing::debug;

use super::handler::Handler;
use super::names::dead_letter_stream;
use super::options::{ChannelOptions, ConsumerOptions};
use super::stats::Counters;
use crate::redis::connection::{AsyncBlockingConnection, RedisInstance};
use crate::redis::entry_id::EntryId;
use crate::redis::error::{Error, Result};
use crate::redis::observe::LoopGauges;

/// What the whole consumer shares with its channel loops.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) redis: RedisInstance,
    pub(crate) service: String,
    pub(crate) consumer_name: String,
    pub(crate) options: ConsumerOptions,
}

/// A registered channel.
pub(crate) struct Channel {
    pub(crate) name: Arc<str>,
    pub(crate) group: String,
    pub(crate) dlq: String,
    pub(crate) opts: ChannelOptions,
    pub(crate) handlers: RwLock<Arc<[Handler]>>,
    pub(crate) counters: Counters,
    /// Whether acknowledgements delete (`XACKDEL ... ACKED`); set by the
    /// `delete_when_acked_by_all` pass (see `delete_on_ack`), false otherwise.
    pub(crate) ack_deletes: AtomicBool,
    /// Whether a handler takes the decoded payload (`register_handler`): then entries
    /// are decoded into a JSON value when read, the parse that checks them.
    pub(crate) wants_payload: AtomicBool,
    /// What survives between batches; one loop (or one `consume_messages`) per channel
    /// at a time.
    pub(crate) state: tokio::sync::Mutex<LoopState>,
}

impl Channel {
    pub(crate) fn new(name: &str, service: &str, group: String, opts: ChannelOptions) -> Self {
        Channel {
            name: name.into(),
            dlq: dead_letter_stream(name),
            group,
            opts,
            handlers: RwLock::new(Arc::from(Vec::new())),
            counters: Counters::new(name, service),
            ack_deletes: AtomicBool::new(false),
            wants_payload: AtomicBool::new(false),
            state: tokio::sync::Mutex::default(),
        }
    }

    /// The handlers a loop starting now runs. With none, reading the channel would
    /// acknowledge its entries unhandled (data loss), so consuming it is refused before
    /// anything is read.
    pub(crate) fn handlers_to_run(&self) -> Result<Arc<[Handler]>> {
        let handlers = self.handlers.read().unwrap_or_else(|e| e.into_inner()).clone();
        if handlers.is_empty() {
            return Err(Error::invalid_input(format!(
                "channel {:?} has no handler: register one before consuming it",
                self.name
            )));
        }
        Ok(handlers)
    }

    /// Adds a handler; loops starting later run it.
    pub(crate) fn add_handler(&self, handler: Handler) {
        let mut handlers = self.handlers.write().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<Handler> = handlers.iter().cloned().collect();
        list.push(handler);
        *handlers = Arc::from(list);
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("group", &self.group)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// What survives between batches (and runs) of one channel's loop.
#[derive(Default)]
pub(crate) struct LoopState {
    /// The dedicated connection for blocking reads, and the block it was sized for.
    pub(crate) conn: Option<(AsyncBlockingConnection, Duration)>,
    pub(crate) reclaim_cursor: Option<EntryId>,
    pub(crate) next_reclaim: Option<Instant>,
    /// Acknowledgements not yet sent (kept across failures: `XACK` is idempotent).
    pub(crate) acks: Vec<EntryId>,
    /// Where to continue re-taking this instance's own pending entries, when some may
    /// have been delivered to it without it knowing (see `recovery`); `None` when there
    /// is nothing to look for.
    pub(crate) own_pending_from: Option<EntryId>,
    /// The gauges and when they are next refreshed (`gauges.rs`), made on first use.
    pub(crate) gauges: Option<LoopGauges>,
}

/// Creates the group (and the stream) unless it exists.
pub(crate) async fn create_group(shared: &Shared, channel: &str, group: &str, start: &str) -> Result<()> {
    let mut client = shared.redis.get_async_redis_client().await?;
    match redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(channel)
        .arg(group)
        .arg(start)
        .arg("MKSTREAM")
        .query_async::<Value>(&mut client)
        .await
    {
        Ok(_) => {
            debug!(channel, group, start, "consumer group created");
            Ok(())
        }
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(Error::redis(format!("creating group {group} on {channel}"), e)),
    }
}
