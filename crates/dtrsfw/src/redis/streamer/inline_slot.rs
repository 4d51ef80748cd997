//! The handler slot a channel's loop polls itself, instead of spawning a task for it
//! (async handlers only; `dispatch.rs` says when and why).
//!
//! Its outcomes go through a channel of their own that is only ever drained with
//! `try_recv`, never awaited. Awaited, the channel would hold the waker of the loop, and
//! every outcome sent would wake the very task that is polling the slot. Tokio reschedules
//! a task woken while it runs as if it had yielded, and a yield wakes another worker: a
//! futex call and a thread hop per entry (a third of the futex calls in a profile of the
//! latency rows, before this).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::Poll;

use tokio::sync::mpsc;
use tokio::task::Id;

/// A slot the loop polls: at most one chunk at a time, and the chunk's outcomes (`T`).
pub(crate) struct InlineSlot<T> {
    chunk: Option<Chunk>,
    tx: mpsc::UnboundedSender<T>,
    rx: mpsc::UnboundedReceiver<T>,
}

/// The chunk running in the slot.
struct Chunk {
    /// The loop's task ID: what a spawned slot's ID is to its outcomes and its end.
    loop_task: Id,
    /// In a `Mutex` only to be `Sync` (the loop's future holds `&Work` across awaits): it
    /// is reached through `&mut` alone, by `get_mut`, which never locks.
    future: Mutex<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// What polling the slot gave.
pub(crate) enum SlotEvent<T> {
    /// An outcome the chunk sent.
    Outcome(T),
    /// The chunk ended; the loop task's ID. Outcomes it sent may still wait in
    /// [`InlineSlot::try_outcome`], as a spawned slot's wait in its channel when it ends.
    Finished(Id),
}

impl<T> InlineSlot<T> {
    pub(crate) fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        InlineSlot { chunk: None, tx, rx }
    }

    /// Whether a chunk is running.
    pub(crate) fn is_busy(&self) -> bool {
        self.chunk.is_some()
    }

    /// Where the chunk sends its outcomes.
    pub(crate) fn sender(&self) -> mpsc::UnboundedSender<T> {
        self.tx.clone()
    }

    /// Starts `future`, the chunk, on the loop `loop_task`; the slot must be idle.
    pub(crate) fn start(&mut self, loop_task: Id, future: impl Future<Output = ()> + Send + 'static) {
        debug_assert!(self.chunk.is_none(), "one chunk at a time");
        self.chunk = Some(Chunk {
            loop_task,
            future: Mutex::new(Box::pin(future)),
        });
    }

    /// Drops the chunk, and the handler it was running.
    pub(crate) fn abort(&mut self) {
        self.chunk = None;
    }

    /// An outcome already sent, without polling the chunk.
    pub(crate) fn try_outcome(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Polls the chunk until it sent an outcome or ended. Never resolves while idle.
    pub(crate) async fn next(&mut self) -> SlotEvent<T> {
        std::future::poll_fn(|cx| {
            let Some(chunk) = self.chunk.as_mut() else {
                return Poll::Pending;
            };
            let future = chunk
                .future
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if future.as_mut().poll(cx).is_ready() {
                let loop_task = chunk.loop_task;
                self.chunk = None;
                return Poll::Ready(SlotEvent::Finished(loop_task));
            }
            match self.rx.try_recv() {
                Ok(outcome) => Poll::Ready(SlotEvent::Outcome(outcome)),
                Err(_) => Poll::Pending,
            }
        })
        .await
    }
}
