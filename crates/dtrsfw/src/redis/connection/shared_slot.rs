//! Where an instance keeps its shared async client, and how it is opened: once, by one
//! connect that every concurrent first caller waits for.
//!
//! Callers of a cold instance must not queue behind each other's failed connects (each
//! would wait out the ones before it: 4 callers, 4 connect timeouts for the last), so
//! the first caller starts a connect on its own task and every caller that arrives
//! meanwhile waits for that same attempt and gets its result. A failure is handed to
//! those waiters and then forgotten: the next call starts a new attempt. The attempt runs
//! on its own task so that a caller giving up early (a cache call under its short
//! deadline, a cancelled request) neither stalls nor abandons it; a connection it opens
//! after every waiter left is kept for the next caller.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::watch;

use super::aio::AsyncRedisClient;
use crate::redis::error::{Error, ErrorKind, Result};

/// The outcome of one connect, as its waiters see it (`None` until it is known).
type Outcome = Option<std::result::Result<AsyncRedisClient, Arc<Error>>>;

#[derive(Default)]
struct State {
    client: Option<AsyncRedisClient>,
    /// The attempt under way, by number, and where its outcome will appear.
    connecting: Option<(u64, watch::Receiver<Outcome>)>,
    attempts: u64,
}

/// The shared async client of one instance, or the attempt to open it.
#[derive(Default)]
pub(super) struct SharedSlot {
    state: Mutex<State>,
}

impl SharedSlot {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is an assignment or a clone: poison cannot leave the
        // state half-changed, so it is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client, opening it with `connect` if there is none. Joins the attempt under
    /// way if there is one; otherwise starts one (on its own task).
    pub(super) async fn get_or_connect<F>(self: &Arc<Self>, connect: impl FnOnce() -> F) -> Result<AsyncRedisClient>
    where
        F: Future<Output = Result<AsyncRedisClient>> + Send + 'static,
    {
        let mut outcome = {
            let mut state = self.lock();
            if let Some(client) = &state.client {
                return Ok(client.clone());
            }
            match &state.connecting {
                Some((_, outcome)) => outcome.clone(),
                None => self.start(&mut state, connect()),
            }
        };
        let result = match outcome.wait_for(Option::is_some).await {
            Ok(ready) => ready.clone().expect("waited until set"),
            // The task ended without an outcome: its runtime is shutting down.
            Err(_) => Err(Arc::new(Error::new(
                ErrorKind::Connection,
                "connecting to redis: the connecting task was stopped (runtime shutting down)",
            ))),
        };
        result.map_err(|e| Error::clone(&e))
    }

    fn start<F>(self: &Arc<Self>, state: &mut State, connect: F) -> watch::Receiver<Outcome>
    where
        F: Future<Output = Result<AsyncRedisClient>> + Send + 'static,
    {
        state.attempts += 1;
        let attempt = state.attempts;
        let (tx, rx) = watch::channel(None);
        state.connecting = Some((attempt, rx.clone()));
        let slot: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let result = connect.await.map_err(Arc::new);
            // Settle the slot before waking the waiters, so that they (and anyone after
            // them) find the client stored.
            if let Some(slot) = slot.upgrade() {
                slot.settle(attempt, &result);
            }
            let _ = tx.send(Some(result));
        });
        rx
    }

    /// Ends attempt `attempt`: keeps the client it opened, forgets a failure. Does
    /// nothing if the slot was reset meanwhile (the attempt is no longer the current one).
    fn settle(&self, attempt: u64, result: &std::result::Result<AsyncRedisClient, Arc<Error>>) {
        let mut state = self.lock();
        if state
            .connecting
            .as_ref()
            .is_some_and(|(current, _)| *current == attempt)
        {
            state.connecting = None;
            if let Ok(client) = result {
                state.client = Some(client.clone());
            }
        }
    }

    /// Forgets the client and any attempt under way; the next call connects anew.
    pub(super) fn reset(&self) {
        let mut state = self.lock();
        state.client = None;
        state.connecting = None;
    }
}
