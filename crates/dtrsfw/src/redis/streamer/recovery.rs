//! Taking over pending entries: stalled ones (`XAUTOCLAIM` after the reclaim idle time),
//! this instance's own that it lost track of (`XPENDING` + `XCLAIM`), and renewing the
//! claim on those it holds. Both take-overs learn delivery counts from one `XPENDING`
//! helper and queue what they took through one path.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use redis::Value;
use redis::aio::ConnectionLike;
use tracing::debug;

use super::dispatch::ChannelRun;
use super::reply::{self, PendingRow, RawEntry};
use super::settle::admit;
use super::stats::Counters;
use crate::redis::entry_id::EntryId;
use crate::redis::error::{Error, Result};

impl ChannelRun<'_> {
    /// Takes over entries pending longer than the reclaim idle time (failed here, or held
    /// by a dead instance) and queues them; deleted ones are acknowledged and counted, and
    /// those past the maximum deliveries are dead-lettered. Returns whether there may be
    /// more.
    pub(crate) async fn reclaim(&mut self, count: usize) -> Result<bool> {
        let (ch, shared) = (self.ch, self.shared);
        let cursor = self.state.reclaim_cursor.unwrap_or(EntryId::ZERO);
        let mut client = shared.redis.get_async_redis_client().await?;
        let value: Value = redis::cmd("XAUTOCLAIM")
            .arg(&*ch.name)
            .arg(&ch.group)
            .arg(&shared.consumer_name)
            .arg(ch.opts.reclaim_idle.as_millis() as u64)
            .arg(cursor)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut client)
            .await
            .map_err(|e| Error::redis(format!("reclaiming pending entries of {}", ch.name), e))?;
        let (next, claimed, deleted) = reply::xautoclaim(value);
        let more = next != EntryId::ZERO;
        self.state.reclaim_cursor = more.then_some(next);
        self.forget_deleted(deleted);
        // Redis before 7.0 returns deleted entries with nil fields instead of a list.
        let (claimed, gone): (Vec<_>, Vec<_>) = claimed
            .into_iter()
            .filter(|e| !self.work.holds(e.id))
            .partition(|e| !e.fields.is_empty());
        self.forget_deleted(gone.into_iter().map(|e| e.id));
        let (Some(first), Some(last)) = (claimed.first(), claimed.last()) else {
            return Ok(more);
        };
        // XAUTOCLAIM does not say how often each entry was delivered; XPENDING over the
        // claimed range does (one command per reclaim batch).
        let rows = self
            .own_pending(&mut client, first.id, &last.id.to_string(), claimed.len() + 1)
            .await?;
        let counts = rows.into_iter().map(|r| (r.id, r.deliveries)).collect();
        self.queue_taken_over(claimed, &counts, "reclaimed pending entries")
            .await?;
        Ok(more)
    }

    /// Takes again the entries pending under this instance's own name that it does not
    /// hold: entries Redis delivered to a read (or a reclaim) whose reply was lost with
    /// the connection, or to an earlier run of the loop. Without this they would wait for
    /// the reclaim idle time (a minute by default) although nothing is wrong with them.
    /// Called when a loop starts and after a connection failure; one page of up to
    /// `count` per call, until the pending list is exhausted.
    pub(crate) async fn recover_own(&mut self, count: usize) -> Result<()> {
        let Some(from) = self.state.own_pending_from else {
            return Ok(());
        };
        let (ch, shared) = (self.ch, self.shared);
        let mut client = shared.redis.get_async_redis_client().await?;
        let rows = self.own_pending(&mut client, from, "+", count.max(1)).await?;
        self.state.own_pending_from = rows.last().map(|r| r.id.successor());
        // Not the ones held here, nor those done whose acknowledgement waits to be sent.
        let acked: HashSet<EntryId> = self.state.acks.iter().copied().collect();
        let lost: Vec<PendingRow> = rows
            .into_iter()
            .filter(|r| !self.work.holds(r.id) && !acked.contains(&r.id))
            .collect();
        if lost.is_empty() {
            return Ok(());
        }
        // XCLAIM to ourselves: the entries' fields, the idle time reset (so no other
        // instance takes them meanwhile) and the delivery count raised, as for any
        // redelivery.
        let value: Value = redis::cmd("XCLAIM")
            .arg(&*ch.name)
            .arg(&ch.group)
            .arg(&shared.consumer_name)
            .arg(0)
            .arg(lost.iter().map(|r| r.id).collect::<Vec<_>>())
            .query_async(&mut client)
            .await
            .map_err(|e| Error::redis(format!("taking own pending entries of {}", ch.name), e))?;
        let claimed: Vec<RawEntry> = reply::xclaim(value)
            .into_iter()
            .filter(|e| !e.fields.is_empty())
            .collect();
        // Deleted from the stream: nothing to run, acknowledge (idempotent).
        self.forget_deleted(
            lost.iter()
                .map(|r| r.id)
                .filter(|id| !claimed.iter().any(|e| e.id == *id)),
        );
        let counts = lost.into_iter().map(|r| (r.id, r.deliveries + 1)).collect();
        self.queue_taken_over(claimed, &counts, "took back own pending entries")
            .await
    }

    /// This instance's pending entries from `from` to `to` (`XPENDING`, extended form),
    /// up to `count` beyond those it holds.
    async fn own_pending(
        &self,
        client: &mut impl ConnectionLike,
        from: EntryId,
        to: &str,
        count: usize,
    ) -> Result<Vec<PendingRow>> {
        let rows: Value = redis::cmd("XPENDING")
            .arg(&*self.ch.name)
            .arg(&self.ch.group)
            .arg(from)
            .arg(to)
            .arg(count + self.work.held())
            .arg(&self.shared.consumer_name)
            .query_async(client)
            .await
            .map_err(|e| Error::redis(format!("listing pending entries of {}", self.ch.name), e))?;
        Ok(reply::xpending_rows(&rows))
    }

    /// Pending IDs whose entry was deleted: acknowledged and counted, never run.
    fn forget_deleted(&mut self, ids: impl IntoIterator<Item = EntryId>) {
        for id in ids {
            Counters::add(&self.ch.counters.deleted_pending, 1);
            self.state.acks.push(id);
        }
    }

    /// Queues entries just claimed by this instance, with their delivery counts; those
    /// delivered more than the maximum are dead-lettered, malformed ones too.
    async fn queue_taken_over(
        &mut self,
        claimed: Vec<RawEntry>,
        counts: &HashMap<EntryId, u64>,
        what: &str,
    ) -> Result<()> {
        Counters::add(&self.ch.counters.reclaimed, claimed.len() as u64);
        debug!(channel = %self.ch.name, count = claimed.len(), "{what}");
        for entry in claimed {
            let deliveries = counts.get(&entry.id).copied().unwrap_or(2);
            if let Some(d) = admit(self.shared, self.ch, entry, deliveries, &mut self.state.acks).await? {
                self.work.queue.push_back(d);
            }
        }
        Ok(())
    }

    /// Renews our claim on held entries (`XCLAIM ... JUSTID`, idle reset, delivery count
    /// unchanged) so that no other instance reclaims an entry whose handler still runs.
    pub(crate) async fn renew(&self) -> Result<()> {
        self.claim_again(&self.work.held_ids(), Duration::ZERO, "renewing claims on")
            .await
    }

    /// Releases entries this instance will not finish (it is stopping): their idle time is
    /// set to the reclaim time, so they stay pending under our name, delivery count
    /// unchanged, but the next reclaim pass of any instance of the service takes them at
    /// once instead of a reclaim idle time later (as a stopping Sidekiq puts unstarted
    /// jobs back). Entries already acknowledged are not pending and are left alone by the
    /// server.
    pub(crate) async fn release(&self, ids: &[EntryId]) -> Result<()> {
        self.claim_again(ids, self.ch.opts.reclaim_idle, "releasing unfinished entries of")
            .await
    }

    /// `XCLAIM <ids> IDLE <idle> JUSTID` to ourselves: sets the entries' idle time
    /// without counting a delivery (`JUSTID`).
    async fn claim_again(&self, ids: &[EntryId], idle: Duration, doing: &str) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut client = self.shared.redis.get_async_redis_client().await?;
        let _: Value = redis::cmd("XCLAIM")
            .arg(&*self.ch.name)
            .arg(&self.ch.group)
            .arg(&self.shared.consumer_name)
            .arg(0)
            .arg(ids)
            .arg("IDLE")
            .arg(idle.as_millis() as u64)
            .arg("JUSTID")
            .query_async(&mut client)
            .await
            .map_err(|e| Error::redis(format!("{doing} {}", self.ch.name), e))?;
        Ok(())
    }
}
