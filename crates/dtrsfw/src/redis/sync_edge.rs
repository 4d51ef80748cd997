//! Driving a flow written once as `async` code from the sync API.
//!
//! The caching and sender flows are each one `async fn`, generic over a small I/O trait
//! with a sync and an async impl. The sync impls do their (blocking) work when first
//! polled and are then ready, so [`run_sync`] completes the whole flow in a single poll,
//! on the calling thread, without any runtime. Decisions therefore exist once; only the
//! impls know which connections are used and how a wait is spent.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Runs a flow built on sync I/O impls to completion on the calling thread.
pub(crate) fn run_sync<F: Future>(flow: F) -> F::Output {
    match pin!(flow).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        // Only reachable if an async impl (or a user future) were driven here: every
        // sync impl is ready when first polled.
        Poll::Pending => unreachable!("a sync flow suspended"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_of_ready_futures_completes_in_one_poll() {
        let flow = async {
            let a = async { 1 }.await;
            a + std::future::ready(2).await
        };
        assert_eq!(run_sync(flow), 3);
    }
}
