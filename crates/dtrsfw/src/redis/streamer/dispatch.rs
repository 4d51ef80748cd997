//! Running handlers: entries queued for a slot, slots running chunks of them, and the
//! outcomes absorbed as they come (acknowledge, retry later, dead-letter).
//!
//! [`ChannelRun`] is what one run of a channel's loop works on; the reading
//! (`read`), the taking over of pending entries (`recovery`) and the loop itself
//! (`channel_loop`) extend it.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, warn};

use super::channel::{Channel, LoopState, Shared};
use super::handler::{Delivery, Handler, join_error_text, panic_text, run_handlers};
use super::inline_slot::{InlineSlot, SlotEvent};
use super::settle::settle;
use super::stats::Counters;
use super::window::{ReadWindow, entries_in};
use crate::redis::entry_id::EntryId;
use crate::redis::observe;

/// The outcome of one entry, sent by the task that ran it, with how long its handlers
/// took (the read window's pace).
type Outcome = (tokio::task::Id, Delivery, Result<(), String>, Duration);

/// A running task's entries: their IDs (for claim renewal) and how many still have no
/// outcome.
struct Chunk {
    ids: Vec<EntryId>,
    remaining: usize,
}

/// Entries read and not finished: queued for a slot, or running. A slot runs a *chunk*
/// of entries one after the other and reports each outcome as it goes, so a fast handler
/// costs no task spawn or thread hop per entry.
///
/// With async handlers only (the usual tokio service), one slot is polled by the loop
/// itself (`inline_slot.rs`) instead of being spawned: whichever chunk starts while that
/// slot is free, so at parallelism 1 every chunk, and above it every entry of a channel
/// that receives them one at a time. A spawned slot starts only once the loop's turn has
/// yielded and the worker switched tasks, which took about 25 µs of every entry's
/// latency on an idle 2-core machine (measured from the read's reply to the handler's
/// start). Handlers that await keep the loop turning (claims renewed,
/// acknowledgements sent, other slots started) as before; the other slots are spawned
/// and run on every worker. A sync handler always gets a task of its own: it blocks
/// whatever polls it, and the loop must keep renewing its claim meanwhile.
pub(crate) struct Work {
    pub(crate) queue: VecDeque<Delivery>,
    running: JoinSet<()>,
    inline: InlineSlot<Outcome>,
    /// Whether a single slot may be polled by the loop: every handler is async.
    inline_allowed: bool,
    chunks: HashMap<tokio::task::Id, Chunk>,
    pub(crate) in_flight: usize,
    outcomes_tx: mpsc::UnboundedSender<Outcome>,
    outcomes_rx: mpsc::UnboundedReceiver<Outcome>,
    handlers: Arc<[Handler]>,
    /// How many entries to hold and read (`window.rs`).
    pub(crate) window: ReadWindow,
}

impl Work {
    pub(crate) fn new(handlers: Arc<[Handler]>, window: ReadWindow) -> Self {
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
        Work {
            queue: VecDeque::new(),
            running: JoinSet::new(),
            inline: InlineSlot::new(),
            inline_allowed: handlers.iter().all(|h| matches!(h, Handler::Async(_))),
            chunks: HashMap::new(),
            in_flight: 0,
            outcomes_tx,
            outcomes_rx,
            handlers,
            window,
        }
    }

    pub(crate) fn held(&self) -> usize {
        self.queue.len() + self.in_flight
    }

    pub(crate) fn held_ids(&self) -> Vec<EntryId> {
        self.queue
            .iter()
            .map(Delivery::id)
            .chain(self.chunks.values().flat_map(|c| c.ids.iter().copied()))
            .collect()
    }

    pub(crate) fn holds(&self, id: EntryId) -> bool {
        self.queue.iter().any(|d| d.id() == id) || self.chunks.values().any(|c| c.ids.contains(&id))
    }

    /// Hands queued entries to free slots, splitting the queue evenly among them.
    pub(crate) fn start(&mut self, ch: &Arc<Channel>) {
        let parallel = ch.opts.parallelism;
        while self.slots() < parallel && !self.queue.is_empty() {
            let take = chunk_len(self.queue.len(), parallel, self.window.pace());
            let chunk: Vec<Delivery> = self.queue.drain(..take).collect();
            let retried = chunk.iter().filter(|d| d.deliveries() > 1).count() as u64;
            if retried > 0 {
                Counters::add(&ch.counters.retried, retried);
            }
            let ids = chunk.iter().map(Delivery::id).collect();
            let (handlers, ch) = (self.handlers.clone(), ch.clone());
            let slot = move |tx| run_chunk(chunk, handlers, tx, ch, parallel > 1);
            // The loop's own task ID keys an inline slot's chunk (its outcomes carry it).
            let inline = self.inline_allowed && !self.inline.is_busy();
            let task = match tokio::task::try_id().filter(|_| inline) {
                Some(loop_task) => {
                    let tx = self.inline.sender();
                    self.inline.start(loop_task, slot(tx));
                    loop_task
                }
                None => self.running.spawn(slot(self.outcomes_tx.clone())).id(),
            };
            self.in_flight += take;
            self.chunks.insert(task, Chunk { ids, remaining: take });
        }
    }

    /// Slots running: spawned, and the one the loop polls itself.
    fn slots(&self) -> usize {
        self.running.len() + usize::from(self.inline.is_busy())
    }

    /// Whether any slot is running.
    pub(crate) fn is_running(&self) -> bool {
        self.slots() > 0
    }

    /// Stops every slot (their entries stay pending).
    pub(crate) fn abort_all(&mut self) {
        self.running.abort_all();
        self.inline.abort();
    }

    /// Waits for the next event of the work in flight; never resolves when there is none.
    pub(crate) async fn next_event(&mut self) -> Event {
        if !self.is_running() {
            return std::future::pending().await;
        }
        tokio::select! {
            biased;
            Some(outcome) = self.outcomes_rx.recv() => Event::Outcome(outcome),
            Some(joined) = self.running.join_next_with_id(), if !self.running.is_empty() => Event::Joined(joined),
            event = self.inline.next(), if self.inline.is_busy() => match event {
                SlotEvent::Outcome(outcome) => Event::Outcome(outcome),
                SlotEvent::Finished(loop_task) => Event::Joined(Ok((loop_task, ()))),
            },
        }
    }

    /// An outcome already sent, by the inline slot or a spawned one.
    fn try_outcome(&mut self) -> Option<Outcome> {
        self.inline.try_outcome().or_else(|| self.outcomes_rx.try_recv().ok())
    }
}

/// How long starting a slot takes: a task spawned, and woken on another worker. About
/// 25 µs on an idle 2-core machine, far more when that worker's CPU must first be woken
/// on a busy host.
const SLOT_START: Duration = Duration::from_micros(25);

/// How many of the `queued` entries the next slot takes, with `parallel` slots and the
/// handlers' average `pace`. An even share per slot: the whole queue with one slot (order
/// kept), one entry each when the queue is no longer than the slots. But never fewer
/// than the handlers finish in [`SLOT_START`]: a burst of fast entries then runs one
/// after the other in a slot already going (at parallelism 16, a burst of 3 entries
/// after a pause of the stream took 3 slots, 2 of them spawned, and each of those
/// entries waited for its slot to start). Handlers slower than that, or of unknown pace,
/// get a slot each.
fn chunk_len(queued: usize, parallel: usize, pace: Option<Duration>) -> usize {
    let share = queued.div_ceil(parallel);
    let fast = pace.map_or(1, |pace| entries_in(SLOT_START, pace));
    share.max(fast).min(queued)
}

/// A slot's work: runs a chunk of entries one after the other, sending each outcome.
async fn run_chunk(
    chunk: Vec<Delivery>,
    handlers: Arc<[Handler]>,
    tx: mpsc::UnboundedSender<Outcome>,
    ch: Arc<Channel>,
    blocking_pool: bool,
) {
    let task = tokio::task::id();
    let mut yielded = Instant::now();
    for d in chunk {
        let span = observe::process_span(&ch.name, &ch.group, &d.id(), d.name(), d.deliveries(), d.trace());
        let timer = observe::Timer::start();
        let started = Instant::now();
        let outcome = {
            // Pinned on the task's stack: no allocation per entry.
            let handlers_run = std::pin::pin!(run_handlers(&handlers, &d, blocking_pool));
            CatchUnwind(handlers_run)
                .instrument(span)
                .await
                .unwrap_or_else(|panic| Err(panic_text(panic.as_ref())))
        };
        ch.counters.process.processed(timer, outcome.is_ok());
        if tx.send((task, d, outcome, started.elapsed())).is_err() {
            return;
        }
        if yielded.elapsed() >= YIELD_EVERY {
            // Spawned, the loop woken by the outcomes may wait in this worker's LIFO slot,
            // which no other worker steals; polled by the loop, the chunk holds its turn.
            // Either way: let the loop absorb outcomes and send acknowledgements while a
            // long chunk of fast handlers runs.
            tokio::task::yield_now().await;
            yielded = Instant::now();
        }
    }
}

/// Polls a future, turning a panic into an error value, so that one panicking handler
/// fails its entry only, not the rest of its chunk.
struct CatchUnwind<'a, F>(Pin<&'a mut F>);

impl<F: Future> Future for CatchUnwind<'_, F> {
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

/// How long a slot runs its chunk without yielding to the loop (see `Work::start`).
const YIELD_EVERY: Duration = Duration::from_millis(1);

/// Something that happened to the work in flight.
pub(crate) enum Event {
    Outcome(Outcome),
    Joined(std::result::Result<(tokio::task::Id, ()), tokio::task::JoinError>),
}

/// One run of a channel's loop: the channel, what survives between runs, the work in
/// flight and the shutdown signal.
pub(crate) struct ChannelRun<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) ch: &'a Arc<Channel>,
    pub(crate) state: &'a mut LoopState,
    pub(crate) work: Work,
    pub(crate) stop: watch::Receiver<bool>,
}

impl ChannelRun<'_> {
    /// Applies an event: an entry's outcome (acknowledge, leave pending, or
    /// dead-letter), or a finished slot (start queued entries; entries of an aborted slot
    /// stay pending).
    pub(crate) async fn absorb(&mut self, event: Event) {
        match event {
            Event::Outcome(outcome) => self.absorb_outcome(outcome).await,
            Event::Joined(joined) => {
                let task = match &joined {
                    Ok((task, ())) => *task,
                    Err(e) => e.id(),
                };
                // Outcomes are sent before the task ends: take them first.
                while let Some(outcome) = self.work.try_outcome() {
                    self.absorb_outcome(outcome).await;
                }
                if let Some(chunk) = self.work.chunks.remove(&task) {
                    self.work.in_flight -= chunk.remaining;
                }
                if let Err(e) = joined
                    && !e.is_cancelled()
                {
                    warn!(channel = %self.ch.name, error = %join_error_text(e), "handler slot failed; its unfinished entries stay pending");
                }
                self.work.start(self.ch);
            }
        }
    }

    async fn absorb_outcome(&mut self, (task, delivery, outcome, took): Outcome) {
        self.work.window.handled(took);
        if let Some(chunk) = self.work.chunks.get_mut(&task) {
            chunk.remaining -= 1;
            self.work.in_flight -= 1;
        }
        if let Err(e) = settle(self.shared, self.ch, &mut self.state.acks, &delivery, outcome).await {
            warn!(channel = %self.ch.name, error = %e, "could not dead-letter an entry; it stays pending");
        }
    }

    /// Applies every event already available, without waiting.
    pub(crate) async fn absorb_ready(&mut self) {
        while let Some(outcome) = self.work.try_outcome() {
            self.absorb_outcome(outcome).await;
        }
        while let Some(joined) = self.work.running.try_join_next_with_id() {
            self.absorb(Event::Joined(joined)).await;
        }
    }

    /// Waits for every running slot to finish.
    pub(crate) async fn finish_running(&mut self) {
        while self.work.is_running() {
            let event = self.work.next_event().await;
            self.absorb(event).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_a_fair_share_but_fast_handlers_fill_it() {
        let us = |n| Some(Duration::from_micros(n));
        // One slot: the whole queue, in order, whatever the pace.
        assert_eq!(chunk_len(10, 1, None), 10);
        assert_eq!(chunk_len(10, 1, us(1_000)), 10);
        // Slow or unknown handlers: a fair share, one entry each below the slot count.
        assert_eq!(chunk_len(3, 16, None), 1);
        assert_eq!(chunk_len(3, 16, Some(SLOT_START)), 1);
        assert_eq!(chunk_len(40, 16, us(1_000)), 3);
        // Fast handlers: what they finish while another slot would start.
        assert_eq!(chunk_len(3, 16, us(5)), 3);
        assert_eq!(chunk_len(40, 16, us(5)), 5);
        assert_eq!(chunk_len(40, 16, Some(Duration::ZERO)), 40, "faster than the clock");
    }
}
