//! The per-channel read/dispatch loop: read, reclaim, run handlers, acknowledge,
//! dead-letter, renew claims, recover from failures, drain on shutdown.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::redis::connection::AsyncBlockingConnection;
use redis::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, debug_span, warn};

use super::dead_letter;
use super::handler::{Delivery, Handler, join_error_text, panic_text, run_handlers};
use super::options::{ChannelOptions, ConsumerOptions};
use super::reply::{self, RawEntry};
use super::stats::Counters;
use crate::redis::connection::RedisInstance;
use crate::redis::entry_id::EntryId;
use crate::redis::error::{Error, Result};
use crate::redis::message::Message;

/// Dead-letter reasons (the `reason` field).
pub(crate) const REASON_MALFORMED: &str = "malformed";
pub(crate) const REASON_MAX_DELIVERIES: &str = "max_deliveries";

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
    /// The loop state; one loop (or one `consume_messages`) per channel at a time.
    pub(crate) state: tokio::sync::Mutex<LoopState>,
}

impl Channel {
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

/// What survives between batches of one channel.
#[derive(Default)]
pub(crate) struct LoopState {
    /// The dedicated connection for blocking reads, and the block it was sized for.
    conn: Option<(AsyncBlockingConnection, Duration)>,
    reclaim_cursor: Option<EntryId>,
    next_reclaim: Option<Instant>,
    /// Acknowledgements not yet sent (kept across failures: `XACK` is idempotent).
    acks: Vec<EntryId>,
    /// Where to continue re-taking this instance's own pending entries, when some may
    /// have been delivered to it without it knowing (see [`recover_own`]); `None` when
    /// there is nothing to look for.
    own_pending_from: Option<EntryId>,
}

/// How a loop runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunMode {
    /// One batch (`consume_messages`) or until shutdown (`persist_*`).
    pub(crate) once: bool,
    pub(crate) block: Duration,
    pub(crate) rest: Duration,
}

/// The outcome of one entry, sent by the task that ran it.
type Outcome = (tokio::task::Id, Delivery, Result<(), String>);

/// A running task's entries: their IDs (for claim renewal) and how many still have no
/// outcome.
struct Chunk {
    ids: Vec<EntryId>,
    remaining: usize,
}

/// Entries read and not finished: queued for a slot, or running. A slot runs a *chunk*
/// of entries one after the other and reports each outcome as it goes, so a fast handler
/// costs no task spawn or thread hop per entry.
struct Work {
    queue: VecDeque<Delivery>,
    running: JoinSet<()>,
    chunks: HashMap<tokio::task::Id, Chunk>,
    in_flight: usize,
    outcomes_tx: mpsc::UnboundedSender<Outcome>,
    outcomes_rx: mpsc::UnboundedReceiver<Outcome>,
    handlers: Arc<[Handler]>,
}

impl Work {
    fn new(handlers: Arc<[Handler]>) -> Self {
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
        Work {
            queue: VecDeque::new(),
            running: JoinSet::new(),
            chunks: HashMap::new(),
            in_flight: 0,
            outcomes_tx,
            outcomes_rx,
            handlers,
        }
    }

    fn held(&self) -> usize {
        self.queue.len() + self.in_flight
    }

    fn held_ids(&self) -> Vec<EntryId> {
        self.queue
            .iter()
            .map(Delivery::id)
            .chain(self.chunks.values().flat_map(|c| c.ids.iter().copied()))
            .collect()
    }

    fn holds(&self, id: EntryId) -> bool {
        self.queue.iter().any(|d| d.id() == id) || self.chunks.values().any(|c| c.ids.contains(&id))
    }

    /// Hands queued entries to free slots, splitting the queue evenly among them.
    fn start(&mut self, ch: &Arc<Channel>) {
        let parallel = ch.opts.parallelism;
        while self.running.len() < parallel && !self.queue.is_empty() {
            // An even share of the queue per slot: the whole queue with one slot (order
            // kept), one entry each when the queue is no longer than the slots.
            let take = self.queue.len().div_ceil(parallel);
            let chunk: Vec<Delivery> = self.queue.drain(..take).collect();
            let retried = chunk.iter().filter(|d| d.deliveries() > 1).count() as u64;
            if retried > 0 {
                Counters::add(&ch.counters.retried, retried);
            }
            let ids = chunk.iter().map(Delivery::id).collect();
            let (handlers, tx, name) = (self.handlers.clone(), self.outcomes_tx.clone(), ch.name.clone());
            let blocking_pool = parallel > 1;
            let handle = self.running.spawn(async move {
                let task = tokio::task::id();
                for d in chunk {
                    let span = debug_span!("handler", channel = %name, id = %d.id(), name = %d.name(), deliveries = d.deliveries());
                    let outcome = CatchUnwind(Box::pin(run_handlers(&handlers, &d, blocking_pool)))
                        .instrument(span)
                        .await
                        .unwrap_or_else(|panic| Err(panic_text(panic.as_ref())));
                    if tx.send((task, d, outcome)).is_err() {
                        return;
                    }
                }
            });
            self.in_flight += take;
            self.chunks.insert(handle.id(), Chunk { ids, remaining: take });
        }
    }
}

/// Polls a future, turning a panic into an error value, so that one panicking handler
/// fails its entry only, not the rest of its chunk.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::result::Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.get_mut().0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Something that happened to the work in flight.
enum Event {
    Outcome(Outcome),
    Joined(std::result::Result<(tokio::task::Id, ()), tokio::task::JoinError>),
}

/// Applies an event: an entry's outcome (acknowledge, leave pending, or dead-letter), or
/// a finished slot (start queued entries; entries of an aborted slot stay pending).
async fn absorb(shared: &Shared, ch: &Arc<Channel>, work: &mut Work, acks: &mut Vec<EntryId>, event: Event) {
    match event {
        Event::Outcome((task, delivery, outcome)) => {
            if let Some(chunk) = work.chunks.get_mut(&task) {
                chunk.remaining -= 1;
                work.in_flight -= 1;
            }
            if let Err(e) = settle(shared, ch, acks, &delivery, outcome).await {
                warn!(channel = %ch.name, error = %e, "could not dead-letter an entry; it stays pending");
            }
        }
        Event::Joined(joined) => {
            let task = match &joined {
                Ok((task, ())) => *task,
                Err(e) => e.id(),
            };
            // Outcomes are sent before the task ends: take them first.
            while let Ok(outcome) = work.outcomes_rx.try_recv() {
                Box::pin(absorb(shared, ch, work, acks, Event::Outcome(outcome))).await;
            }
            if let Some(chunk) = work.chunks.remove(&task) {
                work.in_flight -= chunk.remaining;
            }
            if let Err(e) = joined
                && !e.is_cancelled()
            {
                warn!(channel = %ch.name, error = %join_error_text(e), "handler slot failed; its unfinished entries stay pending");
            }
            work.start(ch);
        }
    }
}

/// Waits for the next event of the work in flight; never resolves when there is none.
async fn next_event(work: &mut Work) -> Event {
    if work.running.is_empty() {
        return std::future::pending().await;
    }
    tokio::select! {
        biased;
        Some(outcome) = work.outcomes_rx.recv() => Event::Outcome(outcome),
        Some(joined) = work.running.join_next_with_id() => Event::Joined(joined),
    }
}

/// Applies every event already available, without waiting.
async fn absorb_ready(shared: &Shared, ch: &Arc<Channel>, work: &mut Work, acks: &mut Vec<EntryId>) {
    while let Ok(outcome) = work.outcomes_rx.try_recv() {
        absorb(shared, ch, work, acks, Event::Outcome(outcome)).await;
    }
    while let Some(joined) = work.running.try_join_next_with_id() {
        absorb(shared, ch, work, acks, Event::Joined(joined)).await;
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Writes an entry to `<channel>:dlq`. The field layout is a contract (see the module
/// docs); the caller acknowledges the entry only after this succeeded.
async fn dead_letter(
    shared: &Shared,
    ch: &Channel,
    id: EntryId,
    fields: &[(Vec<u8>, Vec<u8>)],
    reason: &str,
    error: &str,
    deliveries: u64,
) -> Result<()> {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(&ch.dlq).arg("*");
    for (key, value) in fields {
        if key.as_slice() == b"name" || key.as_slice() == b"body" {
            cmd.arg(key).arg(value);
        }
    }
    cmd.arg(dead_letter::FIELD_ID)
        .arg(id)
        .arg(dead_letter::FIELD_REASON)
        .arg(reason)
        .arg(dead_letter::FIELD_ERROR)
        .arg(error)
        .arg(dead_letter::FIELD_SERVICE)
        .arg(&shared.service)
        .arg(dead_letter::FIELD_DELIVERIES)
        .arg(deliveries)
        .arg(dead_letter::FIELD_TIME)
        .arg(now_ms());
    let mut client = shared.redis.get_async_redis_client().await?;
    let _: Value = cmd
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("writing to dead-letter stream {}", ch.dlq), e))?;
    Counters::add(&ch.counters.dead_lettered, 1);
    warn!(channel = %ch.name, %id, reason, deliveries, "entry moved to the dead-letter stream");
    Ok(())
}

/// Acknowledges the IDs in `acks`, in one command; on failure they stay for the next try.
async fn flush_acks(shared: &Shared, ch: &Channel, acks: &mut Vec<EntryId>) -> Result<()> {
    if acks.is_empty() {
        return Ok(());
    }
    let mut client = shared.redis.get_async_redis_client().await?;
    let _: Value = redis::cmd("XACK")
        .arg(&*ch.name)
        .arg(&ch.group)
        .arg(&*acks)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("acknowledging on {}", ch.name), e))?;
    acks.clear();
    Ok(())
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

/// Turns a raw entry into a delivery, or dead-letters it as malformed (and queues the
/// acknowledgement). Returns `None` when the entry was dead-lettered.
async fn admit(
    shared: &Shared,
    ch: &Arc<Channel>,
    entry: RawEntry,
    deliveries: u64,
    acks: &mut Vec<EntryId>,
) -> Result<Option<Delivery>> {
    match Message::from_fields(entry.fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))) {
        Ok(message) => Ok(Some(Delivery::new(ch.name.clone(), entry.id, message, deliveries))),
        Err(why) => {
            dead_letter(
                shared,
                ch,
                entry.id,
                &entry.fields,
                REASON_MALFORMED,
                &why.to_string(),
                deliveries,
            )
            .await?;
            acks.push(entry.id);
            Ok(None)
        }
    }
}

/// Acts on one entry's outcome: acknowledge, leave pending for a retry, or dead-letter.
async fn settle(
    shared: &Shared,
    ch: &Arc<Channel>,
    acks: &mut Vec<EntryId>,
    delivery: &Delivery,
    outcome: Result<(), String>,
) -> Result<()> {
    match outcome {
        Ok(()) => {
            Counters::add(&ch.counters.processed, 1);
            acks.push(delivery.id());
        }
        Err(error) => {
            Counters::add(&ch.counters.failed, 1);
            if exhausted_after_failure(delivery.deliveries(), ch.opts.max_deliveries) {
                let fields = delivery
                    .message()
                    .get_json_encoded()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()));
                dead_letter(
                    shared,
                    ch,
                    delivery.id(),
                    &fields,
                    REASON_MAX_DELIVERIES,
                    &error,
                    delivery.deliveries(),
                )
                .await?;
                acks.push(delivery.id());
            } else {
                warn!(channel = %ch.name, id = %delivery.id(), deliveries = delivery.deliveries(), %error,
                    "handler failed; the entry stays pending and will be retried");
            }
        }
    }
    Ok(())
}

/// A failed delivery is the last one when it reached the maximum: dead-letter it now
/// rather than wait for the idle time only to give up.
pub(crate) fn exhausted_after_failure(deliveries: u64, max_deliveries: u64) -> bool {
    deliveries >= max_deliveries
}

/// A reclaimed entry already delivered more than the maximum (its instances kept dying
/// on it, so no failure was ever recorded) is dead-lettered without running again.
pub(crate) fn exhausted_before_running(deliveries: u64, max_deliveries: u64) -> bool {
    deliveries > max_deliveries
}

/// How long a read may wait before the acknowledgements gathered meanwhile are sent
/// without waiting for it (see `read_new`).
const ACK_DURING_READ: Duration = Duration::from_millis(10);

/// What a read produced.
enum ReadOutcome {
    Entries(Vec<RawEntry>),
    Stopped,
}

/// Resolves once shutdown was requested (at once if it already was). A dropped sender
/// never resolves it, rather than spinning a `select!`.
pub(crate) async fn wait_stop(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn block_ms(block: Duration) -> Option<u64> {
    let ms = block.as_millis() as u64;
    (ms > 0).then_some(ms)
}

/// Takes over entries pending longer than the reclaim idle time (failed here, or held by
/// a dead instance) and queues them; deleted ones are acknowledged and counted, and those
/// past the maximum deliveries are dead-lettered. Returns whether there may be more.
async fn reclaim(
    shared: &Shared,
    ch: &Arc<Channel>,
    state: &mut LoopState,
    work: &mut Work,
    count: usize,
) -> Result<bool> {
    let cursor = state.reclaim_cursor.unwrap_or(EntryId::ZERO);
    let mut client = shared.redis.get_async_redis_client().await?;
    let value: Value = redis::cmd("XAUTOCLAIM")
        .arg(&*ch.name)
        .arg(&ch.group)
        .arg(&shared.consumer_name)
        .arg(ch.opts.reclaim_idle.as_millis() as u64)
        .arg(&cursor)
        .arg("COUNT")
        .arg(count)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("reclaiming pending entries of {}", ch.name), e))?;
    let (next, claimed, deleted) = reply::xautoclaim(&value);
    let more = next != EntryId::ZERO;
    state.reclaim_cursor = more.then_some(next);
    for id in deleted {
        Counters::add(&ch.counters.deleted_pending, 1);
        state.acks.push(id);
    }
    let (claimed, gone): (Vec<_>, Vec<_>) = claimed
        .into_iter()
        .filter(|e| !work.holds(e.id))
        .partition(|e| !e.fields.is_empty());
    for entry in gone {
        // Redis before 7.0 returns deleted entries with nil fields instead of a list.
        Counters::add(&ch.counters.deleted_pending, 1);
        state.acks.push(entry.id);
    }
    if claimed.is_empty() {
        return Ok(more);
    }
    // XAUTOCLAIM does not say how often each entry was delivered; XPENDING over the
    // claimed range does (one command per reclaim batch).
    let (first, last) = (claimed[0].id, claimed[claimed.len() - 1].id);
    let rows: Value = redis::cmd("XPENDING")
        .arg(&*ch.name)
        .arg(&ch.group)
        .arg(first)
        .arg(last)
        .arg(claimed.len() + work.held() + 1)
        .arg(&shared.consumer_name)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("reading delivery counts on {}", ch.name), e))?;
    let counts: HashMap<EntryId, u64> = reply::xpending_rows(&rows)
        .into_iter()
        .map(|r| (r.id, r.deliveries))
        .collect();
    Counters::add(&ch.counters.reclaimed, claimed.len() as u64);
    debug!(channel = %ch.name, count = claimed.len(), "reclaimed pending entries");
    queue_taken_over(shared, ch, state, work, claimed, &counts).await?;
    Ok(more)
}

/// Queues entries just claimed by this instance, with their delivery counts; those
/// delivered more than the maximum are dead-lettered, malformed ones too.
async fn queue_taken_over(
    shared: &Shared,
    ch: &Arc<Channel>,
    state: &mut LoopState,
    work: &mut Work,
    claimed: Vec<RawEntry>,
    counts: &HashMap<EntryId, u64>,
) -> Result<()> {
    for entry in claimed {
        let deliveries = counts.get(&entry.id).copied().unwrap_or(2);
        if exhausted_before_running(deliveries, ch.opts.max_deliveries) {
            // Delivered often enough without success (typically: it crashes its instance).
            let error = format!(
                "delivered {deliveries} times without success (max {})",
                ch.opts.max_deliveries
            );
            dead_letter(
                shared,
                ch,
                entry.id,
                &entry.fields,
                REASON_MAX_DELIVERIES,
                &error,
                deliveries,
            )
            .await?;
            state.acks.push(entry.id);
            continue;
        }
        if let Some(d) = admit(shared, ch, entry, deliveries, &mut state.acks).await? {
            work.queue.push_back(d);
        }
    }
    Ok(())
}

/// Takes again the entries pending under this instance's own name that it does not
/// hold: entries Redis delivered to a read (or a reclaim) whose reply was lost with the
/// connection, or to an earlier run of the loop. Without this they would wait for the
/// reclaim idle time (a minute by default) although nothing is wrong with them. Called
/// when a loop starts and after a connection failure; one page of up to `count` per
/// call, until the pending list is exhausted.
async fn recover_own(
    shared: &Shared,
    ch: &Arc<Channel>,
    state: &mut LoopState,
    work: &mut Work,
    count: usize,
) -> Result<()> {
    let Some(from) = state.own_pending_from else {
        return Ok(());
    };
    let mut client = shared.redis.get_async_redis_client().await?;
    let rows: Value = redis::cmd("XPENDING")
        .arg(&*ch.name)
        .arg(&ch.group)
        .arg(from)
        .arg("+")
        .arg(count.max(1) + work.held())
        .arg(&shared.consumer_name)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("listing own pending entries of {}", ch.name), e))?;
    let rows = reply::xpending_rows(&rows);
    state.own_pending_from = rows.last().map(|r| r.id.successor());
    // Not the ones held here, nor those done whose acknowledgement waits to be sent.
    let acked: std::collections::HashSet<EntryId> = state.acks.iter().copied().collect();
    let lost: Vec<_> = rows
        .into_iter()
        .filter(|r| !work.holds(r.id) && !acked.contains(&r.id))
        .collect();
    if lost.is_empty() {
        return Ok(());
    }
    // XCLAIM to ourselves: the entries' fields, the idle time reset (so no other instance
    // takes them meanwhile) and the delivery count raised, as for any redelivery.
    let value: Value = redis::cmd("XCLAIM")
        .arg(&*ch.name)
        .arg(&ch.group)
        .arg(&shared.consumer_name)
        .arg(0)
        .arg(lost.iter().map(|r| r.id).collect::<Vec<_>>())
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("taking own pending entries of {}", ch.name), e))?;
    let claimed: Vec<RawEntry> = reply::xclaim(&value)
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .collect();
    for row in &lost {
        if !claimed.iter().any(|e| e.id == row.id) {
            // Deleted from the stream: nothing to run, acknowledge (idempotent).
            Counters::add(&ch.counters.deleted_pending, 1);
            state.acks.push(row.id);
        }
    }
    let counts: HashMap<EntryId, u64> = lost.into_iter().map(|r| (r.id, r.deliveries + 1)).collect();
    Counters::add(&ch.counters.reclaimed, claimed.len() as u64);
    debug!(channel = %ch.name, count = claimed.len(), "took back own pending entries");
    queue_taken_over(shared, ch, state, work, claimed, &counts).await
}

/// Renews our claim on held entries (`XCLAIM ... JUSTID`, idle reset, delivery count
/// unchanged) so that no other instance reclaims an entry whose handler still runs.
async fn renew(shared: &Shared, ch: &Channel, ids: &[EntryId]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut client = shared.redis.get_async_redis_client().await?;
    let _: Value = redis::cmd("XCLAIM")
        .arg(&*ch.name)
        .arg(&ch.group)
        .arg(&shared.consumer_name)
        .arg(0)
        .arg(ids)
        .arg("JUSTID")
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("renewing claims on {}", ch.name), e))?;
    Ok(())
}

/// Runs the loop of one channel: one batch, or until `stop` turns true. Then drains:
/// in-flight handlers get the shutdown timeout, acknowledgements are flushed.
/// Returns the number of entries whose handlers succeeded.
pub(crate) async fn run(
    shared: &Shared,
    ch: &Arc<Channel>,
    mode: RunMode,
    mut stop: watch::Receiver<bool>,
) -> Result<u64> {
    let handlers = ch.handlers_to_run()?;
    let mut guard = ch.state.lock().await;
    let state = &mut *guard;
    if !mode.once {
        // An earlier run may have left entries under our name (a read abandoned at
        // shutdown, a lost reply).
        state.own_pending_from = Some(EntryId::ZERO);
    }
    let processed_before = ch.counters.processed.load(std::sync::atomic::Ordering::Relaxed);
    let mut work = Work::new(handlers);
    let capacity = ch.opts.parallelism + ch.opts.read_ahead;
    // Read again once this many entries can be taken (and none is waiting for a slot):
    // with read-ahead, refill in large batches rather than one entry per finished one.
    let refill_at = (capacity / 2).min(ch.opts.read_ahead).max(1);
    let renew_every = ch.opts.reclaim_idle / 3;
    let mut next_renew = Instant::now() + renew_every;
    let housekeeping_every = (shared.options.idle_consumer_timeout / 4).max(Duration::from_secs(1));
    let mut next_housekeeping = Instant::now();
    let mut backoff = mode.rest.max(Duration::from_millis(20));
    let mut read_done = false;
    let result: Result<()> = async {
        loop {
            absorb_ready(shared, ch, &mut work, &mut state.acks).await;
            work.start(ch);
            if mode.once && read_done {
                while !work.running.is_empty() {
                    let event = next_event(&mut work).await;
                    absorb(shared, ch, &mut work, &mut state.acks, event).await;
                }
                break Ok(());
            }
            if *stop.borrow() {
                break Ok(());
            }
            let now = Instant::now();
            if now >= next_renew {
                next_renew = now + renew_every;
                if let Err(e) = renew(shared, ch, &work.held_ids()).await {
                    warn!(channel = %ch.name, error = %e, "could not renew claims");
                }
            }
            if !mode.once && now >= next_housekeeping {
                next_housekeeping = now + housekeeping_every;
                if let Err(e) = super::remove_idle_consumers_of(shared, ch).await {
                    debug!(channel = %ch.name, error = %e, "housekeeping failed");
                }
            }
            let free = capacity.saturating_sub(work.held());
            if free < refill_at || !work.queue.is_empty() {
                // Busy: wait for progress (or a renewal, or shutdown).
                tokio::select! {
                    event = next_event(&mut work) => absorb(shared, ch, &mut work, &mut state.acks, event).await,
                    _ = tokio::time::sleep_until(next_renew.into()) => {}
                    _ = wait_stop(&mut stop) => {}
                }
                continue;
            }
            if let Err(e) = flush_acks(shared, ch, &mut state.acks).await {
                warn!(channel = %ch.name, error = %e, "acknowledgement failed; will retry");
            }
            // Our own pending entries first, then reclaim: old entries go before new ones.
            if state.own_pending_from.is_some() {
                match recover_own(shared, ch, state, &mut work, free).await {
                    Ok(()) if !work.queue.is_empty() => continue,
                    Ok(()) => {}
                    Err(e) => {
                        warn!(channel = %ch.name, error = %e, "could not take back own pending entries");
                        if e.is_response() {
                            // Not a lost connection: give up rather than fail every turn.
                            state.own_pending_from = None;
                        }
                    }
                }
            }
            if state.next_reclaim.is_none_or(|t| now >= t) {
                match reclaim(shared, ch, state, &mut work, free).await {
                    Ok(more) => {
                        state.next_reclaim = Some(if more { now } else { now + ch.opts.reclaim_idle / 2 });
                        if !work.queue.is_empty() {
                            continue;
                        }
                    }
                    Err(e) => {
                        if e.server_code() != Some("NOGROUP") {
                            warn!(channel = %ch.name, error = %e, "reclaim failed");
                        }
                        if !e.is_response() {
                            // The reply may be lost with entries claimed to us.
                            state.own_pending_from.get_or_insert(EntryId::ZERO);
                        }
                        state.next_reclaim = Some(now + ch.opts.reclaim_idle / 2);
                    }
                }
            }
            // Block in Redis while idle, but not past the next reclaim or renewal.
            let mut block = mode.block;
            if let Some(t) = state.next_reclaim {
                block = block.min(t.saturating_duration_since(now));
            }
            if work.held() > 0 {
                block = block.min(next_renew.saturating_duration_since(now));
            }
            match read_new(shared, ch, state, free, block, &mut work, &mut stop).await {
                Ok(ReadOutcome::Entries(entries)) => {
                    read_done = true;
                    backoff = mode.rest.max(Duration::from_millis(20));
                    if !entries.is_empty() {
                        debug!(channel = %ch.name, count = entries.len(), "read entries");
                    }
                    for entry in entries {
                        match admit(shared, ch, entry, 1, &mut state.acks).await {
                            Ok(Some(d)) => work.queue.push_back(d),
                            Ok(None) => {}
                            Err(e) => {
                                warn!(channel = %ch.name, error = %e, "could not dead-letter a malformed entry; it stays pending")
                            }
                        }
                    }
                }
                Ok(ReadOutcome::Stopped) => {}
                Err(e) if mode.once => break Err(e),
                Err(e) => {
                    warn!(channel = %ch.name, error = %e, pause = ?backoff, "reading failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = wait_stop(&mut stop) => {}
                    }
                    backoff = (backoff * 2).min(shared.options.max_backoff);
                }
            }
        }
    }
    .instrument(debug_span!("consume", channel = %ch.name, group = %ch.group))
    .await;
    drain(shared, ch, state, &mut work).await;
    result?;
    Ok(ch.counters.processed.load(std::sync::atomic::Ordering::Relaxed) - processed_before)
}

/// Stops: queued entries are dropped (they stay pending and will be reclaimed), running
/// handlers get the shutdown timeout, acknowledgements are flushed.
async fn drain(shared: &Shared, ch: &Arc<Channel>, state: &mut LoopState, work: &mut Work) {
    work.queue.clear();
    let deadline = tokio::time::Instant::now() + shared.options.shutdown_timeout;
    while !work.running.is_empty() {
        match tokio::time::timeout_at(deadline, next_event(work)).await {
            Ok(event) => {
                absorb(shared, ch, work, &mut state.acks, event).await;
                work.queue.clear();
            }
            Err(_) => {
                warn!(channel = %ch.name, abandoned = work.in_flight, "shutdown timeout: unfinished entries stay pending");
                work.running.abort_all();
                break;
            }
        }
    }
    for attempt in 0..3u32 {
        match flush_acks(shared, ch, &mut state.acks).await {
            Ok(()) => break,
            Err(e) => {
                warn!(channel = %ch.name, error = %e, attempt, "acknowledgement failed while stopping");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
}

/// One `XREADGROUP ... >` for up to `count` new entries on the dedicated connection,
/// while finishing handlers are collected and shutdown is watched. Recovers a deleted
/// group (`NOGROUP`) by recreating it.
#[allow(clippy::too_many_arguments)]
async fn read_new(
    shared: &Shared,
    ch: &Arc<Channel>,
    state: &mut LoopState,
    count: usize,
    block: Duration,
    work: &mut Work,
    stop: &mut watch::Receiver<bool>,
) -> Result<ReadOutcome> {
    let needs_conn = match &state.conn {
        Some((_, sized)) => *sized < block,
        None => true,
    };
    if needs_conn {
        let sized = block.max(Duration::from_secs(1));
        let conn = shared.redis.get_async_blocking_connection(sized).await?;
        state.conn = Some((conn, sized));
    }
    let Some((conn, _)) = state.conn.as_mut() else {
        return Ok(ReadOutcome::Stopped);
    };
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(&ch.group)
        .arg(&shared.consumer_name)
        .arg("COUNT")
        .arg(count);
    if let Some(ms) = block_ms(block) {
        cmd.arg("BLOCK").arg(ms);
    }
    cmd.arg("STREAMS").arg(&*ch.name).arg(">");
    let value = {
        let read = cmd.query_async::<Value>(conn);
        tokio::pin!(read);
        // Entries that finish while the read waits are acknowledged once it has waited
        // ACK_DURING_READ (an idle BLOCK), on the shared connection; a busy stream answers
        // sooner and keeps its acknowledgements batched for the next turn. Otherwise an
        // entry handled during a long BLOCK would stay unacknowledged for up to the block
        // time, and be redone after a crash.
        let flush = tokio::time::sleep(ACK_DURING_READ);
        tokio::pin!(flush);
        loop {
            tokio::select! {
                value = &mut read => break value,
                event = next_event(work) => absorb(shared, ch, work, &mut state.acks, event).await,
                () = &mut flush, if !state.acks.is_empty() => {
                    if let Err(e) = flush_acks(shared, ch, &mut state.acks).await {
                        debug!(channel = %ch.name, error = %e, "acknowledgement failed; kept for the next flush");
                    }
                    flush.as_mut().reset(tokio::time::Instant::now() + ACK_DURING_READ);
                }
                // Shutdown interrupts the block; anything Redis delivered to the abandoned read
                // stays pending under our name and is taken back when a loop runs again.
                _ = wait_stop(stop) => return Ok(ReadOutcome::Stopped),
            }
        }
    };
    match value {
        Ok(value) => Ok(ReadOutcome::Entries(reply::xreadgroup(&value))),
        Err(e) => {
            let err = Error::redis(format!("reading {} as {}", ch.name, ch.group), e);
            if err.server_code() == Some("NOGROUP") {
                // The stream or the group was deleted: recreate from the start of what the
                // stream holds (at-least-once prefers a repeat to a loss).
                warn!(channel = %ch.name, group = %ch.group, "group missing; recreating it");
                match create_group(shared, &ch.name, &ch.group, "0").await {
                    Ok(()) => {
                        state.reclaim_cursor = None;
                        return Ok(ReadOutcome::Entries(Vec::new()));
                    }
                    Err(e) => return Err(e),
                }
            }
            if !err.is_response() {
                // The connection may be broken: open a fresh one next time. The server may
                // have delivered entries whose reply is lost: look for them.
                state.conn = None;
                state.own_pending_from.get_or_insert(EntryId::ZERO);
            }
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_decisions_give_exactly_max_deliveries_runs() {
        // With max 3: runs on deliveries 1, 2, 3; the third failure dead-letters.
        let max = 3;
        assert!(!exhausted_after_failure(1, max));
        assert!(!exhausted_after_failure(2, max));
        assert!(exhausted_after_failure(3, max));
        // A reclaimed entry on its 3rd delivery still runs; on its 4th it does not.
        assert!(!exhausted_before_running(3, max));
        assert!(exhausted_before_running(4, max));
    }

    #[test]
    fn block_zero_means_no_block_argument() {
        assert_eq!(block_ms(Duration::ZERO), None);
        assert_eq!(block_ms(Duration::from_micros(500)), None);
        assert_eq!(block_ms(Duration::from_millis(1500)), Some(1500));
    }
}
