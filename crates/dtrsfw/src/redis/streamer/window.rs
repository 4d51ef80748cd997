//! How many entries a channel's loop holds and reads at once: the free handler slots,
//! plus the fixed [`ChannelOptions::read_ahead`](super::ChannelOptions::read_ahead)
//! when one was set, or else an *adaptive* read-ahead that grows while a backlog exists.
//!
//! Why adaptive: with one slot and nothing read ahead, every entry costs one
//! `XREADGROUP` and one `XACK`, which caps a default consumer near 10 000 entries/s and
//! lets a backlog grow without end above that. Reading a batch when the last read came
//! back full (the stream had more) removes that cap, while handlers still run one at a
//! time and in order at parallelism 1. Entries read ahead are pending in Redis under this
//! instance's name like running ones (claims renewed, reclaimed after a crash).
//!
//! The window stays small when handlers are slow: it never holds more queued work than
//! the slots finish in [`QUEUE_BUDGET`] (from a running average of handler time; nothing
//! before the first handler finished), so idle instances of the same service still get
//! the entries of a slow stream. With fast handlers it never shrinks below what one slot
//! finishes in [`ONE_TRIP`], so a burst is read at once rather than over several doublings.
//!
//! Two measures of the same handler times, for two jobs. The budget reads the *mean*: an
//! occasional slow entry is real work that another instance could have taken, and must
//! count. The one-trip floor reads the *median* of the last few: it is about the typical
//! entry, and one handler preempted by the host's scheduler for a few milliseconds would
//! otherwise lift the mean of fast handlers past a round trip and split the next burst
//! into several reads (seen on a busy 2-core CI host: 3 reads for a burst of 16).

use std::time::Duration;

/// The most entries read ahead adaptively.
pub(crate) const MAX_ADAPTIVE: usize = 64;

/// The most handler time queued ahead adaptively, per slot.
pub(crate) const QUEUE_BUDGET: Duration = Duration::from_millis(5);

/// Handler time always read ahead, once the pace is known: about one round trip to
/// Redis. Entries that the slot finishes within one read's time cost another instance
/// nothing to hold here, and reading them in one go drains the burst that follows a
/// stall of the stream in one read instead of several.
pub(crate) const ONE_TRIP: Duration = Duration::from_micros(200);

/// How many of the latest handler times the median is taken over.
const RECENT: usize = 8;

/// The read window of one run of a channel's loop.
#[derive(Debug, Clone)]
pub(crate) struct ReadWindow {
    parallelism: usize,
    /// The read-ahead the user set; `None`: adaptive.
    fixed: Option<usize>,
    /// The adaptive read-ahead now.
    burst: usize,
    /// Running average of one entry's handler time, in nanoseconds (0: none measured).
    handler_ns: u64,
    /// The latest handler times, in nanoseconds, as a ring (`recorded` counts the writes).
    recent_ns: [u64; RECENT],
    recorded: usize,
}

impl ReadWindow {
    pub(crate) fn new(parallelism: usize, fixed: Option<usize>) -> Self {
        ReadWindow {
            parallelism: parallelism.max(1),
            fixed,
            burst: 0,
            handler_ns: 0,
            recent_ns: [0; RECENT],
            recorded: 0,
        }
    }

    /// Entries read ahead of the free slots now.
    pub(crate) fn ahead(&self) -> usize {
        self.fixed.unwrap_or(self.burst)
    }

    /// Entries held at most: running plus read ahead.
    pub(crate) fn capacity(&self) -> usize {
        self.parallelism + self.ahead()
    }

    /// Read again once this many entries can be taken: with read-ahead, refill in large
    /// batches (half the window) rather than one entry per finished one.
    pub(crate) fn refill_at(&self) -> usize {
        (self.capacity() / 2).min(self.ahead()).max(1)
    }

    /// One entry's handler time, on average over the last few; `None` before the first.
    pub(crate) fn pace(&self) -> Option<Duration> {
        (self.handler_ns > 0).then(|| Duration::from_nanos(self.handler_ns))
    }

    /// The median of the latest handler times (the lower one of an even count); `None`
    /// before the first.
    fn typical_pace(&self) -> Option<Duration> {
        let n = self.recorded.min(RECENT);
        let mut recent = self.recent_ns;
        let recent = &mut recent[..n];
        recent.sort_unstable();
        recent.get(n.saturating_sub(1) / 2).map(|&ns| Duration::from_nanos(ns))
    }

    /// Records one entry's handler time.
    pub(crate) fn handled(&mut self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.recent_ns[self.recorded % RECENT] = ns;
        self.recorded = self.recorded.wrapping_add(1);
        self.handler_ns = if self.handler_ns == 0 {
            ns
        } else {
            // An average over about the last 8 entries: follows a change of pace fast.
            self.handler_ns - self.handler_ns / 8 + ns / 8
        };
    }

    /// Adapts to what a read returned: `got` entries of the `asked`. A full read means the
    /// stream has more (a backlog): read twice as many next time, up to the limits; a
    /// short one means the loop caught up: halve, but never below what fast handlers
    /// finish in [`ONE_TRIP`].
    pub(crate) fn after_read(&mut self, asked: usize, got: usize) {
        if self.fixed.is_some() {
            return;
        }
        let grown = if asked > 0 && got >= asked {
            (self.burst * 2).max(1)
        } else {
            self.burst / 2
        };
        self.burst = grown.max(self.floor()).min(self.limit());
    }

    /// The adaptive read-ahead allowed by the handlers' pace.
    fn limit(&self) -> usize {
        // No handler finished yet: its pace is unknown (a slow one must not gather
        // entries other instances could take).
        self.pace().map_or(0, |pace| {
            let budget = QUEUE_BUDGET.saturating_mul(u32::try_from(self.parallelism).unwrap_or(u32::MAX));
            entries_in(budget, pace).min(MAX_ADAPTIVE)
        })
    }

    /// The adaptive read-ahead kept even when the loop has caught up: what one slot
    /// finishes in [`ONE_TRIP`] at the typical entry's pace (none before it is known).
    fn floor(&self) -> usize {
        self.typical_pace().map_or(0, |pace| entries_in(ONE_TRIP, pace))
    }
}

/// How many entries handlers at `pace` finish one after the other in `time`.
pub(crate) fn entries_in(time: Duration, pace: Duration) -> usize {
    usize::try_from(time.as_nanos() / pace.as_nanos().max(1)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_read_ahead_never_changes() {
        let mut w = ReadWindow::new(1, Some(0));
        for _ in 0..10 {
            w.after_read(1, 1);
        }
        assert_eq!((w.capacity(), w.refill_at()), (1, 1));
        let mut w = ReadWindow::new(4, Some(8));
        w.after_read(12, 0);
        assert_eq!((w.capacity(), w.refill_at()), (12, 6));
    }

    #[test]
    fn adaptive_grows_on_full_reads_and_shrinks_when_caught_up() {
        let mut w = ReadWindow::new(1, None);
        w.after_read(1, 1);
        assert_eq!(w.capacity(), 1, "nothing read ahead before a handler's pace is known");
        // 20 µs per entry: 10 finish in one trip (200 µs), the floor.
        w.handled(Duration::from_micros(20));
        w.after_read(1, 1);
        let mut sizes = vec![w.capacity()];
        for _ in 0..6 {
            let asked = w.capacity();
            w.after_read(asked, asked);
            sizes.push(w.capacity());
        }
        assert_eq!(
            sizes,
            [11, 21, 41, 65, 65, 65, 65],
            "doubling from the floor, capped at 64"
        );
        assert_eq!(w.refill_at(), 32);
        w.after_read(65, 3);
        assert_eq!(w.capacity(), 33);
        for _ in 0..8 {
            w.after_read(w.capacity(), 0);
        }
        assert_eq!(w.capacity(), 11, "caught up: back to the floor, not below");
    }

    #[test]
    fn the_floor_is_one_trip_of_handler_time_and_the_budget_caps_it() {
        let floor_after = |pace: Duration| {
            let mut w = ReadWindow::new(1, None);
            w.handled(pace);
            w.after_read(1, 0);
            w.ahead()
        };
        assert_eq!(floor_after(Duration::from_micros(2)), MAX_ADAPTIVE, "capped at 64");
        assert_eq!(floor_after(Duration::from_micros(50)), 4);
        assert_eq!(floor_after(Duration::from_micros(300)), 0, "slower than a trip: none");
    }

    #[test]
    fn one_preempted_handler_keeps_the_floor_but_counts_against_the_budget() {
        let mut w = ReadWindow::new(1, None);
        for _ in 0..7 {
            w.handled(Duration::from_micros(5));
        }
        // One entry held off its CPU for 2 ms: the mean of fast handlers is now ~255 µs.
        w.handled(Duration::from_millis(2));
        assert_eq!(w.floor(), 40, "the floor follows the typical 5 µs");
        assert_eq!(w.limit(), 19, "the budget follows the mean");
        w.after_read(1, 0);
        assert_eq!(w.ahead(), 19, "a burst of 16 is still read at once");
        // Slow entries become the typical case: the floor goes.
        for _ in 0..4 {
            w.handled(Duration::from_millis(1));
        }
        assert_eq!(w.floor(), 0, "a typical entry slower than a trip: no floor");
    }

    #[test]
    fn slow_handlers_keep_the_window_small() {
        let mut w = ReadWindow::new(1, None);
        w.handled(Duration::from_millis(2));
        for _ in 0..10 {
            w.after_read(w.capacity(), w.capacity());
        }
        // 5 ms of queued work at 2 ms per entry: 2 entries ahead.
        assert_eq!(w.ahead(), 2);
        w.handled(Duration::from_secs(1));
        w.after_read(w.capacity(), w.capacity());
        assert_eq!(w.ahead(), 0, "a slow handler: nothing read ahead");
        let mut w = ReadWindow::new(4, None);
        w.handled(Duration::from_millis(1));
        for _ in 0..10 {
            w.after_read(w.capacity(), w.capacity());
        }
        assert_eq!(w.ahead(), 20, "the budget is per slot");
    }
}
