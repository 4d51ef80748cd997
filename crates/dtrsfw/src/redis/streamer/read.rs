//! Reading new entries: one `XREADGROUP ... >` on the channel's dedicated connection,
//! pipelined behind the gathered acknowledgements, while finishing handlers are absorbed,
//! acknowledgements flushed and shutdown watched.

use std::time::Duration;

use redis::Value;
use tracing::{debug, warn};

use super::acks::{ACK_DELAY, flush_acks, take_for_read, xack};
use super::channel::create_group;
use super::dispatch::ChannelRun;
use super::reply::{self, RawEntry};
use super::shutdown::wait_stop;
use crate::redis::connection::AsyncBlockingConnection;
use crate::redis::entry_id::EntryId;
use crate::redis::error::{Error, Result};

/// What a read produced.
pub(crate) enum ReadOutcome {
    Entries(Vec<RawEntry>),
    Stopped,
}

/// The `BLOCK` argument for a wait of `block`; none (return at once) below a millisecond.
fn block_ms(block: Duration) -> Option<u64> {
    let ms = block.as_millis() as u64;
    (ms > 0).then_some(ms)
}

impl ChannelRun<'_> {
    /// One `XREADGROUP ... >` for up to `count` new entries on the dedicated connection,
    /// behind the gathered acknowledgements (see [`take_for_read`]): one round trip for
    /// both. Recovers a deleted group (`NOGROUP`) by recreating it.
    pub(crate) async fn read_new(&mut self, count: usize, block: Duration) -> Result<ReadOutcome> {
        let (mut conn, sized) = self.take_connection(block).await?;
        let acks = take_for_read(self.shared, self.ch, &mut self.state.acks).await;
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        if !acks.is_empty() {
            pipe.add_command(xack(self.ch, &acks));
        }
        let read = pipe
            .cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.ch.group)
            .arg(&self.shared.consumer_name)
            .arg("COUNT")
            .arg(count);
        if let Some(ms) = block_ms(block) {
            read.arg("BLOCK").arg(ms);
        }
        read.arg("STREAMS").arg(&*self.ch.name).arg(">");
        let replies = self.wait_for(pipe.query_async::<Vec<Value>>(&mut conn)).await;
        // Kept after an abandoned read too: anything Redis delivered to it stays pending
        // under our name and is taken back when a loop runs again.
        self.state.conn = Some((conn, sized));
        let reply = match replies {
            Some(Ok(mut replies)) if replies.len() == 1 + usize::from(!acks.is_empty()) => {
                let read = replies.pop().map(Value::extract_error);
                if let Some(Err(e)) = replies.pop().map(Value::extract_error) {
                    debug!(channel = %self.ch.name, error = %e, "acknowledgement failed; kept for the next flush");
                    self.state.acks.extend(acks);
                }
                read
            }
            // Stopped, or no reply: whether the `XACK` ran is unknown; it is idempotent.
            other => {
                self.state.acks.extend(acks);
                other.map(|r| r.and_then(|_| Err(unexpected_reply())))
            }
        };
        match reply {
            None => Ok(ReadOutcome::Stopped),
            Some(Ok(value)) => Ok(ReadOutcome::Entries(reply::xreadgroup(value))),
            Some(Err(e)) => {
                self.read_failed(Error::redis(
                    format!("reading {} as {}", self.ch.name, self.ch.group),
                    e,
                ))
                .await
            }
        }
    }

    /// The dedicated connection, opened (or reopened larger) for a block of `block`.
    async fn take_connection(&mut self, block: Duration) -> Result<(AsyncBlockingConnection, Duration)> {
        match self.state.conn.take() {
            Some((conn, sized)) if sized >= block => Ok((conn, sized)),
            _ => {
                let sized = block.max(Duration::from_secs(1));
                Ok((self.shared.redis.get_async_blocking_connection(sized).await?, sized))
            }
        }
    }

    /// Waits for `read` while absorbing finished handlers; `None` on shutdown.
    ///
    /// Entries that finish while the read waits are acknowledged once it has waited
    /// `ACK_DELAY` (an idle `BLOCK`), on the shared connection; a busy stream answers
    /// sooner and keeps its acknowledgements batched for the next turn. Otherwise an entry
    /// handled during a long `BLOCK` would stay unacknowledged for up to the block time,
    /// and be redone after a crash.
    async fn wait_for<T>(&mut self, read: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::pin!(read);
        let flush = tokio::time::sleep(ACK_DELAY);
        tokio::pin!(flush);
        loop {
            tokio::select! {
                biased;
                value = &mut read => return Some(value),
                // Shutdown interrupts the block.
                () = wait_stop(&mut self.stop) => return None,
                // Before outcomes: a stream of them must not hold acknowledgements back.
                () = &mut flush, if !self.state.acks.is_empty() => {
                    if let Err(e) = flush_acks(self.shared, self.ch, &mut self.state.acks).await {
                        debug!(channel = %self.ch.name, error = %e, "acknowledgement failed; kept for the next flush");
                    }
                    flush.as_mut().reset(tokio::time::Instant::now() + ACK_DELAY);
                }
                event = self.work.next_event() => self.absorb(event).await,
            }
        }
    }

    async fn read_failed(&mut self, err: Error) -> Result<ReadOutcome> {
        if err.server_code() == Some("NOGROUP") {
            // The stream or the group was deleted: recreate from the start of what the
            // stream holds (at-least-once prefers a repeat to a loss).
            warn!(channel = %self.ch.name, group = %self.ch.group, "group missing; recreating it");
            create_group(self.shared, &self.ch.name, &self.ch.group, "0").await?;
            self.state.reclaim_cursor = None;
            return Ok(ReadOutcome::Entries(Vec::new()));
        }
        if !err.is_response() {
            // The connection may be broken: open a fresh one next time. The server may
            // have delivered entries whose reply is lost: look for them.
            self.state.conn = None;
            self.state.own_pending_from.get_or_insert(EntryId::ZERO);
        }
        Err(err)
    }
}

/// A pipeline reply of the wrong length: the connection is out of step.
fn unexpected_reply() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "pipeline reply of the wrong length",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_zero_means_no_block_argument() {
        assert_eq!(block_ms(Duration::ZERO), None);
        assert_eq!(block_ms(Duration::from_micros(500)), None);
        assert_eq!(block_ms(Duration::from_millis(1500)), Some(1500));
    }
}
