//! One bound for an async operation as a whole: the connect timeout around a first
//! connect, the cache's deadline around a command.

use std::time::Duration;

use crate::redis::error::{Error, Result};

/// Runs `f` and maps "took longer than `limit`" to a timeout error naming `what`.
pub(crate) async fn with_deadline<T>(limit: Duration, what: &str, f: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(result) => result,
        Err(_) => Err(Error::timeout(format!("{what} took longer than {limit:?}"))),
    }
}
