//! Acknowledgements: gathered while entries finish, sent in one `XACK`.

use redis::Value;

use super::channel::{Channel, Shared};
use crate::redis::entry_id::EntryId;
use crate::redis::error::{Error, Result};

/// Acknowledges the IDs in `acks`, in one command; on failure they stay for the next try.
pub(crate) async fn flush_acks(shared: &Shared, ch: &Channel, acks: &mut Vec<EntryId>) -> Result<()> {
    if acks.is_empty() {
        return Ok(());
    }
    let mut client = shared.redis.get_async_redis_client().await?;
    let _: Value = redis::cmd("XACK")
        .arg(&*ch.name)
        .arg(&ch.group)
        .arg(&*acks)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("acknowledging on {}", ch.name), e))?;
    acks.clear();
    Ok(())
}
