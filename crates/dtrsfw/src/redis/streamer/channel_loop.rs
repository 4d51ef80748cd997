//! The loop of one channel: absorb finished work, renew claims, do housekeeping, take
//! over pending entries, read new ones, back off after failures, drain on shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{Instrument, debug, debug_span, warn};

use super::acks::{ACK_DELAY, flush_acks, flush_or_keep};
use super::channel::{Channel, Shared};
use super::delete_on_ack;
use super::dispatch::{ChannelRun, Work};
use super::gauges;
use super::housekeeping::remove_idle_consumers_of;
use super::read::ReadOutcome;
use super::reply::RawEntry;
use super::settle::admit;
use super::shutdown::wait_stop;
use super::window::ReadWindow;
use crate::redis::entry_id::EntryId;
use crate::redis::error::Result;

/// How a loop runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunMode {
    /// One batch (`consume_messages`) or until shutdown (`persist_*`).
    pub(crate) once: bool,
    pub(crate) block: Duration,
    pub(crate) rest: Duration,
}

/// Runs the loop of one channel: one batch, or until `stop` turns true. Then drains:
/// in-flight handlers get the shutdown timeout, acknowledgements are flushed.
/// Returns the number of entries whose handlers succeeded.
pub(crate) async fn run(shared: &Shared, ch: &Arc<Channel>, mode: RunMode, stop: watch::Receiver<bool>) -> Result<u64> {
    let handlers = ch.handlers_to_run()?;
    let mut guard = ch.state.lock().await;
    let processed_before = ch.counters.processed.load(Ordering::Relaxed);
    let mut channel_loop = ChannelLoop::new(
        ChannelRun {
            shared,
            ch,
            state: &mut guard,
            work: Work::new(handlers, ReadWindow::new(ch.opts.parallelism, ch.opts.read_ahead)),
            stop,
        },
        mode,
    );
    let result = channel_loop
        .turns()
        .instrument(debug_span!("consume", channel = %ch.name, group = %ch.group))
        .await;
    channel_loop.drain().await;
    result?;
    Ok(ch.counters.processed.load(Ordering::Relaxed) - processed_before)
}

/// The state of one run of the loop: the run itself and its schedule.
struct ChannelLoop<'a> {
    run: ChannelRun<'a>,
    mode: RunMode,
    /// When the acknowledgements gathered while handlers run are sent, unless the next
    /// read comes first (`None`: none waiting).
    acks_due: Option<Instant>,
    renew_every: Duration,
    next_renew: Instant,
    housekeeping_every: Duration,
    next_housekeeping: Instant,
    /// The next `delete_when_acked_by_all` pass (`None`: the option is off).
    next_delete_pass: Option<Instant>,
    /// The pause after the next Redis failure.
    backoff: Duration,
    /// Whether a read returned (the end of a `once` batch).
    read_done: bool,
}

/// What a turn of the loop leads to.
enum Next {
    Turn,
    Stop,
}

impl<'a> ChannelLoop<'a> {
    fn new(run: ChannelRun<'a>, mode: RunMode) -> Self {
        let (opts, options) = (&run.ch.opts, &run.shared.options);
        if !mode.once {
            // An earlier run may have left entries under our name (a read abandoned at
            // shutdown, a lost reply).
            run.state.own_pending_from = Some(EntryId::ZERO);
        }
        let renew_every = opts.reclaim_idle / 3;
        ChannelLoop {
            acks_due: None,
            renew_every,
            next_renew: Instant::now() + renew_every,
            housekeeping_every: (options.idle_consumer_timeout / 4).max(Duration::from_secs(1)),
            next_housekeeping: Instant::now(),
            next_delete_pass: opts.delete_when_acked_by_all.then(Instant::now),
            backoff: first_backoff(mode),
            read_done: false,
            mode,
            run,
        }
    }

    async fn turns(&mut self) -> Result<()> {
        loop {
            if let Next::Stop = self.turn().await? {
                return Ok(());
            }
        }
    }

    async fn turn(&mut self) -> Result<Next> {
        self.run.absorb_ready().await;
        self.run.work.start(self.run.ch);
        if self.mode.once && self.read_done {
            self.run.finish_running().await;
            return Ok(Next::Stop);
        }
        if *self.run.stop.borrow() {
            return Ok(Next::Stop);
        }
        let now = Instant::now();
        self.periodic(now).await;
        let window = &self.run.work.window;
        let free = window.capacity().saturating_sub(self.run.work.held());
        if free < window.refill_at() || !self.run.work.queue.is_empty() {
            self.wait_busy(now).await;
            return Ok(Next::Turn);
        }
        if self.take_over(now, free).await {
            return Ok(Next::Turn);
        }
        self.acks_due = None;
        let block = self.block_for(now);
        let read = self.run.read_new(free, block).await;
        self.after_read(read, free).await?;
        Ok(Next::Turn)
    }

    /// Busy: waits for progress (or a renewal, or shutdown). Acknowledgements waiting
    /// [`ACK_DELAY`] are sent meanwhile, so that slow handlers running a batch read ahead
    /// do not leave finished entries unacknowledged (and redone after a crash) until
    /// the next read; fast ones gather many per `XACK`.
    async fn wait_busy(&mut self, now: Instant) {
        let due = if self.run.state.acks.is_empty() {
            self.acks_due = None;
            None
        } else {
            Some(*self.acks_due.get_or_insert(now + ACK_DELAY))
        };
        let flush_at = due.unwrap_or(now);
        tokio::select! {
            event = self.run.work.next_event() => self.run.absorb(event).await,
            () = tokio::time::sleep_until(self.next_renew.into()) => {}
            () = tokio::time::sleep_until(flush_at.into()), if due.is_some() => self.flush_acks().await,
            () = wait_stop(&mut self.run.stop) => {}
        }
    }

    async fn flush_acks(&mut self) {
        self.acks_due = None;
        flush_or_keep(self.run.shared, self.run.ch, &mut self.run.state.acks).await;
    }

    /// Claim renewal and housekeeping, when due.
    async fn periodic(&mut self, now: Instant) {
        let ch = self.run.ch;
        if now >= self.next_renew {
            self.next_renew = now + self.renew_every;
            if let Err(e) = self.run.renew().await {
                warn!(channel = %ch.name, error = %e, "could not renew claims");
            }
        }
        if !self.mode.once && now >= self.next_housekeeping {
            self.next_housekeeping = now + self.housekeeping_every;
            if let Err(e) = remove_idle_consumers_of(self.run.shared, ch).await {
                debug!(channel = %ch.name, error = %e, "housekeeping failed");
            }
        }
        if self.next_delete_pass.is_some_and(|t| now >= t) {
            self.next_delete_pass = Some(now + delete_on_ack::PASS_EVERY);
            if let Err(e) = delete_on_ack::pass(self.run.shared, ch).await {
                warn!(channel = %ch.name, error = %e, "delete-on-ack pass failed; will retry");
            }
        }
        let held = self.run.work.held();
        gauges::refresh(&mut self.run.state.gauges, now, self.run.shared, ch, held).await;
    }

    /// Our own lost pending entries first, then reclaim: old entries go before new ones.
    /// Returns whether entries were queued (then they run before anything is read).
    /// Gathered acknowledgements are sent before either reads a pending list (it must not
    /// find finished entries there); otherwise they ride in the read's pipeline.
    async fn take_over(&mut self, now: Instant, free: usize) -> bool {
        let ch = self.run.ch;
        if self.run.state.own_pending_from.is_some() {
            self.flush_acks().await;
            match self.run.recover_own(free).await {
                Ok(()) if !self.run.work.queue.is_empty() => return true,
                Ok(()) => {}
                Err(e) => {
                    warn!(channel = %ch.name, error = %e, "could not take back own pending entries");
                    if e.is_response() {
                        // Not a lost connection: give up rather than fail every turn.
                        self.run.state.own_pending_from = None;
                    }
                }
            }
        }
        if self.run.state.next_reclaim.is_some_and(|t| now < t) {
            return false;
        }
        let later = now + ch.opts.reclaim_idle / 2;
        self.flush_acks().await;
        match self.run.reclaim(free).await {
            Ok(more) => {
                self.run.state.next_reclaim = Some(if more { now } else { later });
                !self.run.work.queue.is_empty()
            }
            Err(e) => {
                if e.server_code() != Some("NOGROUP") {
                    warn!(channel = %ch.name, error = %e, "reclaim failed");
                }
                if !e.is_response() {
                    // The reply may be lost with entries claimed to us.
                    self.run.state.own_pending_from.get_or_insert(EntryId::ZERO);
                }
                self.run.state.next_reclaim = Some(later);
                false
            }
        }
    }

    /// Block in Redis while idle, but not past the next reclaim or renewal.
    fn block_for(&self, now: Instant) -> Duration {
        let mut block = self.mode.block;
        for t in [self.run.state.next_reclaim, self.next_delete_pass]
            .into_iter()
            .flatten()
        {
            block = block.min(t.saturating_duration_since(now));
        }
        if self.run.work.held() > 0 {
            block = block.min(self.next_renew.saturating_duration_since(now));
        }
        block
    }

    /// Queues what a read returned, or backs off after a failure (fails a `once` batch).
    async fn after_read(&mut self, read: Result<ReadOutcome>, asked: usize) -> Result<()> {
        match read {
            Ok(ReadOutcome::Entries(entries)) => {
                self.run.work.window.after_read(asked, entries.len());
                self.read_done = true;
                self.backoff = first_backoff(self.mode);
                self.queue_read(entries).await;
            }
            Ok(ReadOutcome::Stopped) => {}
            Err(e) if self.mode.once => return Err(e),
            Err(e) => {
                warn!(channel = %self.run.ch.name, error = %e, pause = ?self.backoff, "reading failed; retrying");
                if e.is_transient() {
                    // A failover may land on another server version.
                    self.run.shared.redis.note_connection_lost();
                }
                tokio::select! {
                    () = tokio::time::sleep(self.backoff) => {}
                    () = wait_stop(&mut self.run.stop) => {}
                }
                self.backoff = (self.backoff * 2).min(self.run.shared.options.max_backoff);
            }
        }
        Ok(())
    }

    async fn queue_read(&mut self, entries: Vec<RawEntry>) {
        let (shared, ch) = (self.run.shared, self.run.ch);
        if !entries.is_empty() {
            debug!(channel = %ch.name, count = entries.len(), "read entries");
        }
        for entry in entries {
            match admit(shared, ch, entry, 1, &mut self.run.state.acks).await {
                Ok(Some(d)) => self.run.work.queue.push_back(d),
                Ok(None) => {}
                Err(e) => {
                    warn!(channel = %ch.name, error = %e, "could not dead-letter a malformed entry; it stays pending");
                }
            }
        }
    }

    /// Stops: queued entries are not started, running handlers get the shutdown timeout,
    /// acknowledgements are flushed, then what was not finished is released to the other
    /// instances (see [`ChannelRun::release`]).
    async fn drain(&mut self) {
        let run = &mut self.run;
        let mut unfinished: Vec<EntryId> = run.work.queue.drain(..).map(|d| d.id()).collect();
        let deadline = tokio::time::Instant::now() + run.shared.options.shutdown_timeout;
        while run.work.is_running() {
            if let Ok(event) = tokio::time::timeout_at(deadline, run.work.next_event()).await {
                run.absorb(event).await;
                unfinished.extend(run.work.queue.drain(..).map(|d| d.id()));
            } else {
                warn!(channel = %run.ch.name, abandoned = run.work.in_flight, "shutdown timeout: unfinished entries released");
                unfinished.extend(run.work.held_ids());
                run.work.abort_all();
                break;
            }
        }
        for attempt in 0..3u32 {
            match flush_acks(run.shared, run.ch, &mut run.state.acks).await {
                Ok(()) => break,
                Err(e) => {
                    warn!(channel = %run.ch.name, error = %e, attempt, "acknowledgement failed while stopping");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
            }
        }
        // After the acknowledgements: an entry acknowledged is no longer pending, and
        // releasing it first could hand it to another instance.
        if let Err(e) = run.release(&unfinished).await {
            warn!(channel = %run.ch.name, error = %e, entries = unfinished.len(), "could not release unfinished entries; they stay pending until reclaimed");
        }
    }
}

fn first_backoff(mode: RunMode) -> Duration {
    mode.rest.max(Duration::from_millis(20))
}
