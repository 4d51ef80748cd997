//! Epochs: whether a value read from Redis by a fill may still be inserted or served,
//! given the invalidations and flushes seen since the fill took its ticket. No I/O; see
//! the module docs for why the order of operations makes a racing fill harmless.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Number of per-key-hash slots. A collision only makes a fill skip its insert.
const SLOTS: usize = 16_384;

/// A fill's ticket: the epoch before its `GET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

/// The epochs of one server.
#[derive(Debug)]
pub(crate) struct Epochs {
    /// Bumped by every invalidation and flush.
    counter: AtomicU64,
    /// The epoch of the last flush (or loss of tracking).
    flushed: AtomicU64,
    /// Per key hash: the epoch of the last invalidation of a key with that hash.
    slots: Box<[AtomicU64]>,
    /// Whether tracking is on (the invalidation connection is subscribed).
    up: AtomicBool,
    /// foldhash, as the stores: a hit hashes its key here too, and keys are SHA-256
    /// digests under a namespace, which no caller can choose to collide.
    hasher: foldhash::fast::RandomState,
}

impl Default for Epochs {
    fn default() -> Self {
        Epochs {
            counter: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            up: AtomicBool::new(false),
            hasher: Default::default(),
        }
    }
}

impl Epochs {
    fn slot(&self, key: &str) -> &AtomicU64 {
        let hash = self.hasher.hash_one(key);
        // The modulo keeps the value below SLOTS, so the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        &self.slots[(hash % SLOTS as u64) as usize]
    }

    /// Whether tracking is on: hits may be served, fills may take tickets.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// A ticket for a fill about to read `GET`, or `None` while tracking is down.
    pub(crate) fn ticket(&self) -> Option<Ticket> {
        // Counter first, then `up`: a loss of tracking after this read bumps the flush
        // mark past the ticket.
        let epoch = self.counter.load(Ordering::SeqCst);
        self.is_up().then_some(Ticket(epoch))
    }

    /// Whether a fill holding `ticket` may (still) keep a value of `key`.
    pub(crate) fn admits(&self, ticket: Ticket, key: &str) -> bool {
        self.is_up()
            && self.flushed.load(Ordering::SeqCst) <= ticket.0
            && self.slot(key).load(Ordering::SeqCst) <= ticket.0
    }

    /// Records the invalidation of `key`; call *before* removing it from the stores.
    pub(crate) fn invalidated(&self, key: &str) {
        let epoch = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        self.slot(key).fetch_max(epoch, Ordering::SeqCst);
    }

    /// Records a flush (every key invalid); call *before* emptying the stores. `up`
    /// tells whether tracking stays on (a namespace invalidated here) or is lost.
    pub(crate) fn flushed(&self, up: bool) {
        if !up {
            self.up.store(false, Ordering::SeqCst);
        }
        let epoch = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        self.flushed.fetch_max(epoch, Ordering::SeqCst);
    }

    /// Tracking is on again (after a flush: nothing from before is kept).
    pub(crate) fn set_up(&self) {
        self.flushed(false);
        self.up.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_ticket_while_down_and_a_ticket_once_up() {
        let epochs = Epochs::default();
        assert_eq!(epochs.ticket(), None);
        epochs.set_up();
        assert!(epochs.ticket().is_some());
    }

    #[test]
    fn an_invalidation_after_the_ticket_refuses_that_key_only() {
        let epochs = Epochs::default();
        epochs.set_up();
        let ticket = epochs.ticket().expect("up");
        epochs.invalidated("ns:a");
        assert!(!epochs.admits(ticket, "ns:a"));
        // Another key is admitted unless its slot collides (16 384 slots, random hasher).
        let others = (0..100)
            .filter(|i| epochs.admits(ticket, &format!("ns:other{i}")))
            .count();
        assert!(others >= 95, "only {others} of 100 other keys admitted");
        // A ticket taken after the invalidation admits the key.
        assert!(epochs.admits(epochs.ticket().expect("up"), "ns:a"));
    }

    #[test]
    fn a_flush_or_a_loss_of_tracking_refuses_every_earlier_ticket() {
        let epochs = Epochs::default();
        epochs.set_up();
        let ticket = epochs.ticket().expect("up");
        epochs.flushed(true);
        assert!(!epochs.admits(ticket, "k"));
        let ticket = epochs.ticket().expect("still up");
        epochs.flushed(false);
        assert!(!epochs.admits(ticket, "k"));
        assert_eq!(epochs.ticket(), None);
        epochs.set_up();
        assert!(
            !epochs.admits(ticket, "k"),
            "a ticket from before the loss stays refused"
        );
    }
}
