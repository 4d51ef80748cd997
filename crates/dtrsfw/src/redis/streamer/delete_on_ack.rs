//! [`ChannelOptions::delete_when_acked_by_all`](super::ChannelOptions::delete_when_acked_by_all):
//! which groups must acknowledge an entry before it goes, and the periodic pass that
//! decides how acknowledgements are sent and deletes what they left behind.
//!
//! The rule: an entry may go once every group that must see it has received and
//! acknowledged it; those groups are **every consumer group of the stream** (Redis's
//! `ACKED`: groups of services not listed count too) **plus the group of every service
//! listed in `consumers`** (a listed service without a group yet blocks deletion, as in
//! `clean_up_consumed_messages`: Redis cannot know about a group that does not exist).
//!
//! The pass, run by the loop at once and then every [`PASS_EVERY`]:
//! - reads the stream's groups; while a listed service has no group, acknowledgements are
//!   plain `XACK` and nothing is deleted;
//! - on a server with the acknowledged-aware commands (Redis 8.2), acknowledgements are
//!   `XACKDEL ... ACKED` (the entry goes as soon as the last group acknowledges it), and
//!   the pass deletes, with `XTRIM MINID <t> ACKED`, the entries below the oldest one not
//!   yet delivered to some group that every group has acknowledged: those whose last
//!   acknowledgement was a plain `XACK` (another service, a Python one, or ours while a
//!   listed group was missing);
//! - on other servers, acknowledgements are plain `XACK` and the pass is the cleanup rule
//!   of `clean_up_consumed_messages` over the required groups: everything older than the
//!   oldest entry one of them still needs (so an acknowledged entry after one still
//!   pending waits until that one is settled).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::channel::{Channel, Shared};
use super::cleanup::{positions, read_groups, trim_below, trim_threshold};
use super::names::group_name;
use super::reply::GroupInfo;
use crate::redis::entry_id::EntryId;
use crate::redis::error::Result;

/// How often the loop of a `delete_when_acked_by_all` channel runs the pass (it also runs
/// when the loop starts). An idle loop's blocking read is cut short to keep this pace.
pub(crate) const PASS_EVERY: Duration = Duration::from_secs(5);

/// The groups that must acknowledge an entry: every group of the stream, and the groups
/// of the listed services. Sorted, without repeats.
pub(crate) fn required_groups(channel: &str, existing: &[GroupInfo], listed: &[String]) -> Vec<String> {
    let mut names: BTreeSet<String> = existing.iter().map(|g| g.name.clone()).collect();
    names.extend(listed.iter().map(|s| group_name(channel, s)));
    names.into_iter().collect()
}

/// The first entry not yet delivered to every group (`None` when there is no group, or a
/// group's position cannot be read): nothing at or above it is acknowledged by all.
fn first_undelivered(existing: &[GroupInfo]) -> Option<EntryId> {
    existing
        .iter()
        .map(|g| g.last_delivered.map(EntryId::successor))
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .min()
}

/// One pass: decides whether acknowledgements delete (`XACKDEL`) and deletes what every
/// required group acknowledged. Returns how many entries it deleted.
pub(crate) async fn pass(shared: &Shared, ch: &Channel) -> Result<u64> {
    let caps = shared.redis.server_capabilities().await?;
    let mut client = shared.redis.get_async_redis_client().await?;
    let Some(existing) = read_groups(&mut client, ch).await? else {
        ch.ack_deletes.store(false, Ordering::Relaxed);
        return Ok(0);
    };
    let required = required_groups(&ch.name, &existing, &ch.opts.consumers);
    let all_exist = required.iter().all(|name| existing.iter().any(|g| g.name == *name));
    ch.ack_deletes
        .store(all_exist && caps.ack_aware_streams(), Ordering::Relaxed);
    if !all_exist || required.is_empty() {
        tracing::debug!(channel = %ch.name, "delete on ack: a listed service has no group yet; nothing deleted");
        return Ok(0);
    }
    let threshold = if caps.ack_aware_streams() {
        first_undelivered(&existing)
    } else {
        trim_threshold(&positions(&mut client, ch, &existing, &required).await?)
    };
    match threshold {
        Some(threshold) => trim_below(&mut client, ch, threshold, caps.ack_aware_streams()).await,
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, last: Option<&str>) -> GroupInfo {
        GroupInfo {
            name: name.into(),
            consumers: None,
            pending: None,
            last_delivered: last.map(|l| l.parse().unwrap()),
            entries_read: None,
            lag: None,
        }
    }

    #[test]
    fn required_groups_are_the_stream_groups_and_the_listed_services() {
        let existing = [group("s:other:cg", Some("1-0")), group("s:a:cg", Some("2-0"))];
        assert_eq!(
            required_groups("s", &existing, &["a".into(), "b".into()]),
            ["s:a:cg", "s:b:cg", "s:other:cg"]
        );
        assert_eq!(required_groups("s", &[], &[]), Vec::<String>::new());
    }

    #[test]
    fn first_undelivered_is_after_the_slowest_group() {
        assert_eq!(
            first_undelivered(&[group("a", Some("5-0")), group("b", Some("3-2"))]),
            Some("3-3".parse().unwrap())
        );
        assert_eq!(first_undelivered(&[group("a", Some("5-0")), group("b", None)]), None);
        assert_eq!(first_undelivered(&[]), None);
    }
}
