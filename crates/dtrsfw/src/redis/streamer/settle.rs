//! What happens to one entry: admitted as a delivery (or dead-lettered as malformed),
//! and after its handlers ran, acknowledged, left pending for a retry, or dead-lettered.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::warn;

use super::channel::{Channel, Shared};
use super::dead_letter::{self, Letter, Original, REASON_MALFORMED, REASON_MAX_DELIVERIES};
use super::handler::Delivery;
use super::reply::RawEntry;
use super::stats::Counters;
use crate::redis::entry_id::EntryId;
use crate::redis::error::Result;
use crate::redis::message::Message;
use crate::redis::observe::TraceFields;

/// Turns an entry just read or claimed into a delivery, or dead-letters it (and queues
/// the acknowledgement): as malformed, or without running it when it was delivered more
/// than the maximum already (a reclaimed entry that kept crashing its instances; an entry
/// read the first time never is, the maximum being at least 1). Returns `None` when the
/// entry was dead-lettered.
pub(crate) async fn admit(
    shared: &Shared,
    ch: &Arc<Channel>,
    entry: RawEntry,
    deliveries: u64,
    acks: &mut Vec<EntryId>,
) -> Result<Option<Delivery>> {
    Counters::add(&ch.counters.consumed, 1);
    let (reason, error) = if exhausted_before_running(deliveries, ch.opts.max_deliveries) {
        let max = ch.opts.max_deliveries;
        let error = format!("delivered {deliveries} times without success (max {max})");
        (REASON_MAX_DELIVERIES, error)
    } else {
        let fields = entry.fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice()));
        // One JSON parse per entry: the check, and the payload when a handler takes it.
        let decoded = if ch.wants_payload.load(Ordering::Relaxed) {
            Message::from_fields_decoded(fields).map(|(m, v)| (m, Some(v)))
        } else {
            Message::from_fields(fields).map(|m| (m, None))
        };
        match decoded {
            Ok((message, payload)) => {
                let trace = TraceFields::from_entry(&entry.fields);
                return Ok(Some(Delivery::new(
                    ch.name.clone(),
                    entry.id,
                    message,
                    deliveries,
                    payload,
                    trace,
                )));
            }
            Err(why) => (REASON_MALFORMED, why.to_string()),
        }
    };
    give_up(shared, ch, acks, Letter::of(&entry, reason, &error, deliveries)).await?;
    Ok(None)
}

/// Acts on one entry's outcome: acknowledge, leave pending for a retry, or dead-letter.
pub(crate) async fn settle(
    shared: &Shared,
    ch: &Arc<Channel>,
    acks: &mut Vec<EntryId>,
    delivery: &Delivery,
    outcome: Result<(), String>,
) -> Result<()> {
    let error = match outcome {
        Ok(()) => {
            Counters::add(&ch.counters.processed, 1);
            acks.push(delivery.id());
            return Ok(());
        }
        Err(error) => error,
    };
    Counters::add(&ch.counters.failed, 1);
    if !exhausted_after_failure(delivery.deliveries(), ch.opts.max_deliveries) {
        warn!(channel = %ch.name, id = %delivery.id(), deliveries = delivery.deliveries(), %error,
            "handler failed; the entry stays pending and will be retried");
        return Ok(());
    }
    let letter = Letter {
        id: delivery.id(),
        original: Original::Message(delivery.message()),
        reason: REASON_MAX_DELIVERIES,
        error: &error,
        deliveries: delivery.deliveries(),
    };
    give_up(shared, ch, acks, letter).await
}

/// Writes the letter to the dead-letter stream, then (only then) queues the entry's
/// acknowledgement.
async fn give_up(shared: &Shared, ch: &Channel, acks: &mut Vec<EntryId>, letter: Letter<'_>) -> Result<()> {
    let id = letter.id;
    dead_letter::write(shared, ch, letter).await?;
    acks.push(id);
    Ok(())
}

/// A failed delivery is the last one when it reached the maximum: dead-letter it now
/// rather than wait for the idle time only to give up.
pub(crate) fn exhausted_after_failure(deliveries: u64, max_deliveries: u64) -> bool {
    deliveries >= max_deliveries
}

/// A reclaimed entry already delivered more than the maximum (its instances kept dying
/// on it, so no failure was ever recorded) is dead-lettered without running again.
pub(crate) fn exhausted_before_running(deliveries: u64, max_deliveries: u64) -> bool {
    deliveries > max_deliveries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_decisions_give_exactly_max_deliveries_runs() {
        // With max 3: runs on deliveries 1, 2, 3; the third failure dead-letters.
        let max = 3;
        assert!(!exhausted_after_failure(1, max));
        assert!(!exhausted_after_failure(2, max));
        assert!(exhausted_after_failure(3, max));
        // A reclaimed entry on its 3rd delivery still runs; on its 4th it does not.
        assert!(!exhausted_before_running(3, max));
        assert!(exhausted_before_running(4, max));
    }
}
