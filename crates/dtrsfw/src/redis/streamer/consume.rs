//! The consuming methods of [`Consumer`]: one batch or a loop, of one channel or all.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::channel::Channel;
use super::channel_loop::{self, RunMode};
use super::consumer::Consumer;
use crate::redis::error::{Error, Result};

impl Consumer {
    fn check_group(&self, ch: &Channel, group: &str) -> Result<()> {
        if group == ch.group || group == self.inner.shared.service {
            Ok(())
        } else {
            Err(Error::invalid_input(format!(
                "group {group:?} is not this consumer's group on {:?} (expected {:?} or the service name)",
                ch.name, ch.group
            )))
        }
    }

    /// Processes one batch of `channel`: reclaims stalled entries if due, reads new ones
    /// (waiting up to `block_time` in Redis `BLOCK` when there are none), runs the
    /// handlers, acknowledges, and returns how many entries were processed successfully.
    /// `group` is this consumer's group on the channel, or its service name.
    ///
    /// Fails before reading anything when `channel` has no handler (its entries would be
    /// acknowledged unhandled), as do the other `consume_*` methods.
    ///
    /// Bounded: before it reads, a batch sends at most one command on the shared
    /// connection (the reclaim), then reads on a connection of its own, opened on the first
    /// read. Against a server that does not answer, the first batch after
    /// [`register_channel`](Self::register_channel) (which opened the shared connection)
    /// fails within `socket timeout + connect timeout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when `channel` is
    /// not registered, `group` is not this consumer's, or the channel has no handler; the
    /// Redis error when the reclaim or the read fails.
    pub async fn consume_messages(&self, channel: &str, group: &str, block_time: Duration) -> Result<u64> {
        let ch = self.channel(channel)?;
        self.check_group(&ch, group)?;
        let mode = RunMode {
            once: true,
            block: block_time,
            rest: Duration::ZERO,
        };
        self.run_loops(vec![ch], mode).await
    }

    /// Consumes `channel` until shutdown ([`shutdown`](Self::shutdown) or a
    /// [`ShutdownHandle`](super::shutdown::ShutdownHandle)); then drains and returns. A
    /// busy loop reads the next batch at once; an idle one waits in Redis `BLOCK` up to
    /// `block_time`. `rest_time` is the first pause after a Redis failure (doubled per
    /// failure, up to [`ConsumerOptions::max_backoff`](super::ConsumerOptions::max_backoff));
    /// the loop never sleeps otherwise.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when `channel` is
    /// not registered, `group` is not this consumer's, or the channel has no handler. Redis
    /// failures are retried with backoff, not returned.
    pub async fn persist_consume_messages(
        &self,
        channel: &str,
        group: &str,
        rest_time: Duration,
        block_time: Duration,
    ) -> Result<()> {
        let ch = self.channel(channel)?;
        self.check_group(&ch, group)?;
        let mode = RunMode {
            once: false,
            block: block_time,
            rest: rest_time,
        };
        self.run_loops(vec![ch], mode).await.map(|_| ())
    }

    async fn run_all(&self, mode: RunMode) -> Result<u64> {
        let channels = self.reading_channels();
        // Every channel is checked before any is read: one without a handler stops them all.
        for ch in &channels {
            ch.handlers_to_run()?;
        }
        self.run_loops(channels, mode).await
    }

    /// Runs the loops of `channels` side by side, each a task of the runtime, and returns
    /// the entries they processed, or the first error.
    ///
    /// A task, even for one channel: the caller's future may be polled off the runtime's
    /// workers (`block_on` in `main`, the blocking consumer), where every handler slot the
    /// loop spawned and every outcome it was sent would cross threads, a wake-up each. On
    /// a worker, they stay on its local queue. Dropping the returned future aborts the
    /// loops, as dropping a loop run inline would stop it.
    async fn run_loops(&self, channels: Vec<Arc<Channel>>, mode: RunMode) -> Result<u64> {
        let mut set = tokio::task::JoinSet::new();
        for ch in channels {
            let this = self.clone();
            let stop = self.inner.stop.subscribe();
            set.spawn(async move { channel_loop::run(&this.inner.shared, &ch, mode, stop).await });
        }
        let mut total = 0;
        let mut first_error = None;
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Ok(n)) => total += n,
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        first_error.map_or(Ok(total), Err)
    }

    /// One batch of every reading channel, side by side (each on its own connection, so
    /// idle channels block together, not one after the other). Returns the number of
    /// entries processed successfully. Fails before reading any channel when one of the
    /// reading channels has no handler.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when a reading
    /// channel has no handler; the first Redis error of a channel's batch.
    pub async fn consume_all_channels(&self, block_time: Duration) -> Result<u64> {
        self.run_all(RunMode {
            once: true,
            block: block_time,
            rest: Duration::ZERO,
        })
        .await
    }

    /// Consumes every reading channel until shutdown, then drains and returns. See
    /// [`persist_consume_messages`](Self::persist_consume_messages) for `rest_time` and
    /// `block_time`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when a reading
    /// channel has no handler. Redis failures are retried with backoff, not returned.
    pub async fn persist_consume_all_channels(&self, rest_time: Duration, block_time: Duration) -> Result<()> {
        self.run_all(RunMode {
            once: false,
            block: block_time,
            rest: rest_time,
        })
        .await
        .map(|_| ())
    }

    /// [`persist_consume_all_channels`](Self::persist_consume_all_channels) until
    /// `shutdown` resolves (e.g. `tokio::signal::ctrl_c()`), then a graceful stop.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when a reading
    /// channel has no handler. Redis failures are retried with backoff, not returned.
    pub async fn persist_consume_all_channels_until(
        &self,
        rest_time: Duration,
        block_time: Duration,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let run = self.persist_consume_all_channels(rest_time, block_time);
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => return result,
            () = shutdown => self.shutdown(),
        }
        run.await
    }
}
