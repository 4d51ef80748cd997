//! Acknowledgements: gathered while entries finish, sent in one `XACK` (or one
//! `XACKDEL ... ACKED` on a `delete_when_acked_by_all` channel, see `delete_on_ack`):
//! in the pipeline of the next read when one comes first ([`take_for_read`]), on their
//! own otherwise.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::{Cmd, Value};

use super::channel::{Channel, Shared};
use crate::redis::entry_id::EntryId;
use crate::redis::error::{Error, Result};

/// How long gathered acknowledgements may wait for the next read: while handlers are
/// busy (`ChannelLoop::wait_busy`) and while a read blocks (`ChannelRun::wait_for`), they
/// are sent after this at the latest. So an entry is acknowledged within about this long
/// of its handlers finishing, and fast handlers still share one `XACK` per batch.
pub(crate) const ACK_DELAY: Duration = Duration::from_millis(10);

/// Acknowledges the IDs in `acks`, in one command; on failure they stay for the next try.
pub(crate) async fn flush_acks(shared: &Shared, ch: &Channel, acks: &mut Vec<EntryId>) -> Result<()> {
    if acks.is_empty() {
        return Ok(());
    }
    let mut client = shared.redis.get_async_redis_client().await?;
    if ch.ack_deletes.load(Ordering::Relaxed) {
        let mut cmd = redis::cmd("XACKDEL");
        cmd.arg(&*ch.name)
            .arg(&ch.group)
            .arg("ACKED")
            .arg("IDS")
            .arg(acks.len())
            .arg(&*acks);
        match cmd.query_async::<Value>(&mut client).await {
            Ok(_) => {
                acks.clear();
                return Ok(());
            }
            // Refused (the server changed under us: a failover to an older version): plain
            // XACK until the next pass decides again; the pass deletes what is left.
            Err(e) if e.code() == Some("ERR") => {
                tracing::warn!(channel = %ch.name, error = %e, "XACKDEL refused; acknowledging with XACK");
                ch.ack_deletes.store(false, Ordering::Relaxed);
            }
            Err(e) => return Err(Error::redis(format!("acknowledging on {}", ch.name), e)),
        }
    }
    let _: Value = xack(ch, acks)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("acknowledging on {}", ch.name), e))?;
    acks.clear();
    Ok(())
}

/// `XACK <channel> <group> <ids>`.
pub(crate) fn xack(ch: &Channel, ids: &[EntryId]) -> Cmd {
    let mut cmd = redis::cmd("XACK");
    cmd.arg(&*ch.name).arg(&ch.group).arg(ids);
    cmd
}

/// The acknowledgements for the next read to carry (an `XACK` in its pipeline), taken
/// from `acks`. On a channel that deletes on acknowledgement they are sent now instead
/// (`XACKDEL`, with its fallback, goes on its own) and none are returned. Either way Redis
/// has them before the read, so it never holds more entries for this instance than its
/// window, finished ones included.
pub(crate) async fn take_for_read(shared: &Shared, ch: &Channel, acks: &mut Vec<EntryId>) -> Vec<EntryId> {
    if !ch.ack_deletes.load(Ordering::Relaxed) {
        return std::mem::take(acks);
    }
    flush_or_keep(shared, ch, acks).await;
    Vec::new()
}

/// [`flush_acks`], a failure logged: the IDs stay in `acks` for the next try.
pub(crate) async fn flush_or_keep(shared: &Shared, ch: &Channel, acks: &mut Vec<EntryId>) {
    if let Err(e) = flush_acks(shared, ch, acks).await {
        tracing::warn!(channel = %ch.name, error = %e, "acknowledgement failed; will retry");
    }
}
