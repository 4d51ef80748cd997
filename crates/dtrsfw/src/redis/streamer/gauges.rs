//! The consumer's gauges (in flight, lag, pending), refreshed by its loop at most once a
//! second: one `XINFO GROUPS` per channel per second, never a round trip per message.
//! Without feature `metrics` the refresh is never due and compiles away.

use std::time::Instant;

use super::channel::{Channel, Shared};
use super::stats::group_figures;
use crate::redis::observe::LoopGauges;

/// Refreshes `gauges` when due; `in_flight` is what the loop holds.
pub(crate) async fn refresh(
    gauges: &mut Option<LoopGauges>,
    now: Instant,
    shared: &Shared,
    ch: &Channel,
    in_flight: usize,
) {
    let gauges = gauges.get_or_insert_with(|| LoopGauges::new(&ch.counters.labels));
    if !gauges.due(now) {
        return;
    }
    let (lag, pending) = match shared.redis.get_async_redis_client().await {
        Ok(mut client) => group_figures(&mut client, &ch.name, &ch.group).await,
        Err(_) => (None, None),
    };
    gauges.set(in_flight, lag, pending);
}
