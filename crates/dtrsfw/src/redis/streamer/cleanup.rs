//! `clean_up_consumed_messages`: the arithmetic, once, and the few commands it needs.
//!
//! An entry may go when every listed service has received it (ID ≤ its group's
//! last-delivered ID) and acknowledged it (not in its pending list). Per group, the
//! oldest entry still needed is the smaller of its smallest pending ID and the first ID
//! after its last-delivered one; everything below the smallest of those over the listed
//! groups is deletable, and nothing at or above it is. So the work is `XINFO GROUPS`, one
//! `XPENDING` summary per listed group with something pending, and one `XTRIM MINID`: a
//! number of commands that depends on the number of groups, never on the entries.

use redis::Value;

use super::channel::{Channel, Shared};
use super::names::group_name;
use super::reply::{self, GroupInfo};
use crate::redis::connection::AsyncRedisClient;
use crate::redis::entry_id::EntryId;
use crate::redis::error::{Error, Result};

/// Where one group stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupPosition {
    pub(crate) last_delivered: EntryId,
    pub(crate) smallest_pending: Option<EntryId>,
}

/// The `MINID` to trim to: entries with a smaller ID are consumed by every listed group.
/// `None` (delete nothing) when no service is listed or a listed group does not exist.
pub(crate) fn trim_threshold(groups: &[Option<GroupPosition>]) -> Option<EntryId> {
    if groups.is_empty() {
        return None;
    }
    groups
        .iter()
        .map(|g| {
            let g = (*g)?;
            let first_undelivered = g.last_delivered.successor();
            Some(
                g.smallest_pending
                    .map_or(first_undelivered, |p| p.min(first_undelivered)),
            )
        })
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .min()
}

/// Cleans one channel; returns the number of entries deleted.
pub(crate) async fn clean_channel(shared: &Shared, ch: &Channel) -> Result<u64> {
    let mut client = shared.redis.get_async_redis_client().await?;
    let Some(groups) = read_groups(&mut client, ch).await? else {
        return Ok(0);
    };
    let listed: Vec<String> = ch.opts.consumers.iter().map(|s| group_name(&ch.name, s)).collect();
    let positions = positions(&mut client, ch, &groups, &listed).await?;
    let Some(threshold) = trim_threshold(&positions) else {
        tracing::debug!(channel = %ch.name, "cleanup: a listed service has no group yet (or none listed); nothing deleted");
        return Ok(0);
    };
    trim_below(&mut client, ch, threshold, false).await
}

/// The groups of the channel's stream (`XINFO GROUPS`); `None` when there is no stream.
pub(crate) async fn read_groups(client: &mut AsyncRedisClient, ch: &Channel) -> Result<Option<Vec<GroupInfo>>> {
    match redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&*ch.name)
        .query_async::<Value>(client)
        .await
    {
        Ok(info) => Ok(Some(reply::xinfo_groups(&info))),
        // No stream: nothing to clean.
        Err(e) if e.code() == Some("ERR") || e.code() == Some("NOGROUP") => Ok(None),
        Err(e) => Err(Error::redis(format!("reading the groups of {}", ch.name), e)),
    }
}

/// Where each of the groups `names` stands (`None`: no such group), with one `XPENDING`
/// summary per group that has something pending.
pub(crate) async fn positions(
    client: &mut AsyncRedisClient,
    ch: &Channel,
    groups: &[GroupInfo],
    names: &[String],
) -> Result<Vec<Option<GroupPosition>>> {
    let mut positions = Vec::with_capacity(names.len());
    for group in names {
        let Some((info, last_delivered)) = groups
            .iter()
            .find(|g| g.name == *group)
            .and_then(|g| Some((g, g.last_delivered?)))
        else {
            positions.push(None);
            continue;
        };
        let smallest_pending = if info.pending.unwrap_or(1) > 0 {
            let summary: Value = redis::cmd("XPENDING")
                .arg(&*ch.name)
                .arg(group)
                .query_async(client)
                .await
                .map_err(|e| Error::redis(format!("reading the pending summary of {group}"), e))?;
            reply::xpending_smallest(&summary)
        } else {
            None
        };
        positions.push(Some(GroupPosition {
            last_delivered,
            smallest_pending,
        }));
    }
    Ok(positions)
}

/// `XTRIM <channel> MINID <threshold> [ACKED]`: deletes the entries below `threshold`
/// (with `acked`, only those every group has acknowledged; Redis 8.2). Returns how many.
pub(crate) async fn trim_below(
    client: &mut AsyncRedisClient,
    ch: &Channel,
    threshold: EntryId,
    acked: bool,
) -> Result<u64> {
    // Exact (not `~`) trimming: approximate trimming would leave consumed entries behind.
    let mut cmd = redis::cmd("XTRIM");
    cmd.arg(&*ch.name).arg("MINID").arg(threshold.to_string());
    if acked {
        cmd.arg("ACKED");
    }
    let deleted: u64 = cmd
        .query_async(client)
        .await
        .map_err(|e| Error::redis(format!("trimming {}", ch.name), e))?;
    tracing::debug!(channel = %ch.name, %threshold, acked, deleted, "cleanup");
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> EntryId {
        s.parse().unwrap()
    }

    #[test]
    fn threshold_is_the_oldest_entry_still_needed() {
        let g = |last: &str, pending: Option<&str>| {
            Some(GroupPosition {
                last_delivered: id(last),
                smallest_pending: pending.map(id),
            })
        };
        assert_eq!(trim_threshold(&[]), None);
        assert_eq!(trim_threshold(&[g("5-0", None), None]), None);
        assert_eq!(trim_threshold(&[g("5-0", None)]), Some(id("5-1")));
        assert_eq!(
            trim_threshold(&[g("5-0", Some("3-0")), g("9-0", None)]),
            Some(id("3-0"))
        );
        assert_eq!(
            trim_threshold(&[g("5-0", None), g("2-7", Some("1-0"))]),
            Some(id("1-0"))
        );
        assert_eq!(trim_threshold(&[g("0-0", None)]), Some(id("0-1")));
    }
}
