//! Housekeeping of a channel's group: removing the consumers that dead instances left.

use redis::Value;

use super::channel::{Channel, Shared};
use super::reply;
use crate::redis::error::{Error, Result};

/// `XGROUP DELCONSUMER` for the consumers of one channel's group idle longer than
/// [`ConsumerOptions::idle_consumer_timeout`](super::ConsumerOptions::idle_consumer_timeout)
/// with nothing pending (never this instance). Returns how many were removed.
pub(crate) async fn remove_idle_consumers_of(shared: &Shared, ch: &Channel) -> Result<u64> {
    let mut client = shared.redis.get_async_redis_client().await?;
    let info: Value = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&*ch.name)
        .arg(&ch.group)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("listing the consumers of {}", ch.group), e))?;
    let limit = shared.options.idle_consumer_timeout.as_millis() as u64;
    let mut removed = 0;
    for consumer in reply::xinfo_consumers(&info) {
        let (name, Some(pending), Some(idle)) = (consumer.name, consumer.pending, consumer.idle) else {
            continue;
        };
        if name == shared.consumer_name || pending > 0 || idle <= limit {
            continue;
        }
        let _: Value = redis::cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg(&*ch.name)
            .arg(&ch.group)
            .arg(&name)
            .query_async(&mut client)
            .await
            .map_err(|e| Error::redis(format!("removing consumer {name} from {}", ch.group), e))?;
        tracing::debug!(channel = %ch.name, consumer = %name, idle_ms = idle, "removed idle consumer");
        removed += 1;
    }
    Ok(removed)
}
