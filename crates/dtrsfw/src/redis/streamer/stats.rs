//! Counters kept by the consumer and the figures `get_stats` reports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::Value;
use redis::aio::ConnectionLike;

use super::reply;
use crate::redis::observe::{ChannelLabels, ProcessMetrics, Tally};

/// Live counters of one channel; relaxed atomics, as they are only reported. Each is
/// also a metric with feature `metrics` (see `observe`).
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) processed: Tally,
    pub(crate) failed: Tally,
    pub(crate) retried: Tally,
    pub(crate) dead_lettered: Tally,
    pub(crate) reclaimed: Tally,
    pub(crate) deleted_pending: Tally,
    /// Entries received (read or claimed): a metric only.
    pub(crate) consumed: Tally,
    /// The handler-duration metric, shared with the slots.
    pub(crate) process: ProcessMetrics,
    pub(crate) labels: Arc<ChannelLabels>,
}

impl Counters {
    pub(crate) fn new(channel: &str, service: &str) -> Self {
        let labels = ChannelLabels::new(channel, service);
        let tally = |outcome| Tally::new(&labels, outcome);
        Counters {
            processed: tally(Some("processed")),
            failed: tally(Some("failed")),
            retried: tally(Some("retried")),
            dead_lettered: tally(Some("dead_lettered")),
            reclaimed: tally(Some("reclaimed")),
            deleted_pending: tally(Some("deleted_pending")),
            consumed: tally(None),
            process: ProcessMetrics::new(&labels),
            labels,
        }
    }

    pub(crate) fn add(counter: &Tally, n: u64) {
        counter.add(n);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self, group: String) -> ChannelStats {
        ChannelStats {
            group,
            processed: Self::get(&self.processed),
            failed: Self::get(&self.failed),
            retried: Self::get(&self.retried),
            dead_lettered: Self::get(&self.dead_lettered),
            reclaimed: Self::get(&self.reclaimed),
            deleted_pending: Self::get(&self.deleted_pending),
            lag: None,
            pending: None,
        }
    }
}

/// The group's lag and pending count on `stream` (`XINFO GROUPS`); `None` where Redis
/// could not be asked or does not tell.
pub(crate) async fn group_figures(
    client: &mut impl ConnectionLike,
    stream: &str,
    group: &str,
) -> (Option<u64>, Option<u64>) {
    let Ok(info) = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async::<Value>(client)
        .await
    else {
        return (None, None);
    };
    reply::xinfo_groups(&info)
        .into_iter()
        .find(|g| g.name == group)
        .map_or((None, None), |g| (g.lag, g.pending))
}

/// Figures of one channel: this instance's counters since it started, and the group's
/// lag and pending count as Redis reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelStats {
    /// The consumer group (`<channel>:<service>:cg`).
    pub group: String,
    /// Entries whose handlers all succeeded (acknowledged).
    pub processed: u64,
    /// Handler runs that failed or panicked (the entry stayed pending, or was
    /// dead-lettered).
    pub failed: u64,
    /// Deliveries beyond the first that reached the handlers.
    pub retried: u64,
    /// Entries written to the dead-letter stream.
    pub dead_lettered: u64,
    /// Entries taken over with `XAUTOCLAIM` (failed here, or left by a dead instance), or
    /// taken back from this instance's own pending list (delivered by a read whose reply
    /// was lost, or left by an earlier run of the loop).
    pub reclaimed: u64,
    /// Pending IDs whose entry had been deleted from the stream; acknowledged, not run.
    pub deleted_pending: u64,
    /// Entries in the stream not yet delivered to the group (`XINFO GROUPS` `lag`; `None`
    /// when Redis cannot tell, or could not be asked).
    pub lag: Option<u64>,
    /// Entries delivered to the group and not yet acknowledged (`None` when Redis could not
    /// be asked).
    pub pending: Option<u64>,
}

/// What [`Consumer::get_stats`](super::Consumer::get_stats) returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// Per channel name.
    pub channels: BTreeMap<String, ChannelStats>,
}
