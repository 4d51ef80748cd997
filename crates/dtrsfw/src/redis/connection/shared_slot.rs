//! Where an instance keeps its shared async client, and how it is opened: once, by one
//! connect that every concurrent first caller waits for.
//!
//! Callers of a cold instance must not queue behind each other's failed connects (each
//! would wait out the ones before it: 4 callers, 4 connect timeouts for the last), so
//! the first caller starts a connect and every caller that arrives meanwhile awaits that
//! same attempt (a shared future) and gets its result. A failure is handed to those
//! waiters and then forgotten: the next call starts a new attempt. The attempt is driven
//! by a task of its own so that a caller giving up early (a cache call under its short
//! deadline, a cancelled request) neither stalls nor abandons it; a connection it opens
//! after every waiter left is kept for the next caller.
//!
//! (`tokio::sync::OnceCell` would not do: its waiters run their own connect, one after
//! another, once the one before failed.)

use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use futures_util::future::{BoxFuture, FutureExt, Shared};

use super::aio::AsyncRedisClient;
use crate::redis::error::Result;

/// One connect, awaited by every caller that arrived while it ran; once ended, its
/// outcome (the client, or the error) is what it yields to anyone.
type Attempt = Shared<BoxFuture<'static, Result<AsyncRedisClient>>>;

/// The shared async client of one instance: the last attempt to open it (under way,
/// succeeded, or failed and due to be replaced), or none yet.
#[derive(Default)]
pub(super) struct SharedSlot {
    attempt: Mutex<Option<Attempt>>,
}

impl SharedSlot {
    fn lock(&self) -> MutexGuard<'_, Option<Attempt>> {
        // Every critical section is an assignment or a clone: poison cannot leave the
        // state half-changed, so it is ignored.
        self.attempt.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client, opening it with `connect` if there is none. Joins the attempt under
    /// way if there is one; otherwise (none yet, or the last one failed) starts one.
    pub(super) async fn get_or_connect<F>(&self, connect: impl FnOnce() -> F) -> Result<AsyncRedisClient>
    where
        F: Future<Output = Result<AsyncRedisClient>> + Send + 'static,
    {
        let attempt = {
            let mut slot = self.lock();
            match slot.as_ref().map(|attempt| (attempt, attempt.peek())) {
                Some((_, Some(Ok(client)))) => return Ok(client.clone()),
                Some((attempt, None)) => attempt.clone(),
                _ => slot.insert(start(connect())).clone(),
            }
        };
        attempt.await
    }

    /// Forgets the client and any attempt under way; the next call connects anew.
    pub(super) fn reset(&self) {
        *self.lock() = None;
    }
}

/// A new attempt, driven to its end by a task of its own whether or not anyone awaits it.
fn start<F>(connect: F) -> Attempt
where
    F: Future<Output = Result<AsyncRedisClient>> + Send + 'static,
{
    let attempt = connect.boxed().shared();
    tokio::spawn(attempt.clone());
    attempt
}
