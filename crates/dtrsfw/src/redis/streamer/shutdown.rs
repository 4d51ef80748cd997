//! Shutdown: the handle that requests it and the wait the loops select on.

use std::sync::Arc;

use tokio::sync::watch;

/// Stops the `persist_*` loops of a [`Consumer`](super::Consumer): they stop reading, let
/// in-flight handlers finish (within
/// [`ConsumerOptions::shutdown_timeout`](super::ConsumerOptions::shutdown_timeout)), flush
/// acknowledgements and return. Cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl ShutdownHandle {
    pub(crate) fn new(tx: Arc<watch::Sender<bool>>) -> Self {
        ShutdownHandle { tx }
    }

    /// Requests shutdown. Idempotent; a consumer that was shut down stays shut down (see
    /// [`Consumer::shutdown`](super::Consumer::shutdown)).
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }

    /// Whether shutdown was requested.
    #[must_use]
    pub fn is_shutdown(&self) -> bool {
        *self.tx.borrow()
    }
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
