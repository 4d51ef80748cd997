//! Bounded key discovery: `SCAN ... TYPE ... COUNT` in steps, stopped by a budget.

use std::time::{Duration, Instant};

use crate::redis::connection::RedisInstance;
use crate::redis::error::{Error, Result};

/// How much work one key discovery may do. A scan stops at whichever limit comes first
/// and then reports itself incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct ScanBudget {
    count: usize,
    time: Duration,
    max_keys: usize,
}

impl Default for ScanBudget {
    fn default() -> Self {
        ScanBudget {
            count: 1000,
            time: Duration::from_millis(100),
            max_keys: 10_000,
        }
    }
}

impl ScanBudget {
    /// The default budget: `COUNT 1000` per step, 100 ms, 10 000 keys found.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `COUNT` hint of each `SCAN` step (keys the server examines per step). By
    /// default, 1000.
    pub fn count(mut self, count: usize) -> Self {
        self.count = count.max(1);
        self
    }

    /// Wall time after which no further step starts. By default, 100 ms.
    pub fn time(mut self, time: Duration) -> Self {
        self.time = time;
        self
    }

    /// The `COUNT` hint of each step.
    pub(crate) fn count_hint(&self) -> usize {
        self.count
    }

    /// Keys found after which no further step starts. By default, 10 000.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }
}

/// What a bounded scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ScanResult {
    /// The keys found (a key may appear twice when the keyspace is rehashed; callers
    /// dedupe).
    pub keys: Vec<String>,
    /// `SCAN` steps run (so about `steps × count` keys were examined).
    pub steps: u64,
    /// Whether every cursor reached 0: everything was seen.
    pub complete: bool,
}

/// Scans keys of `key_type` (e.g. `stream`, `string`) within `budget`; on a cluster
/// every primary is scanned in turn, sharing the budget.
pub(crate) async fn scan_keys(redis: &RedisInstance, key_type: &str, budget: ScanBudget) -> Result<ScanResult> {
    let started = Instant::now();
    let mut client = redis.get_async_redis_client().await?;
    let targets = client
        .scan_targets()
        .await
        .map_err(|e| Error::redis("CLUSTER SLOTS", e))?;
    let mut result = ScanResult {
        complete: true,
        ..ScanResult::default()
    };
    'nodes: for node in &targets {
        let mut cursor: u64 = 0;
        loop {
            if started.elapsed() >= budget.time || result.keys.len() >= budget.max_keys {
                result.complete = false;
                break 'nodes;
            }
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor).arg("COUNT").arg(budget.count).arg("TYPE").arg(key_type);
            let (next, keys): (u64, Vec<String>) = client
                .query_on(node.as_ref(), &cmd)
                .await
                .map_err(|e| Error::redis("SCAN", e))?;
            result.steps += 1;
            result.keys.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(result)
}

/// The streams found by [`list_streams`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StreamList {
    /// Stream names, sorted, deduplicated (dead-letter streams `<name>:dlq` included).
    pub names: Vec<String>,
    /// Whether the scan saw the whole keyspace (else the budget stopped it).
    pub complete: bool,
}

/// Every stream key (`SCAN ... TYPE stream`) within `budget`, sorted.
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)), from any SCAN step.
///
/// ```no_run
/// # async fn f(redis: dtrsfw::redis::RedisInstance) -> dtrsfw::redis::Result<()> {
/// use dtrsfw::redis::inspect::{list_streams, ScanBudget};
/// let found = list_streams(&redis, ScanBudget::new()).await?;
/// println!("{} streams (complete: {})", found.names.len(), found.complete);
/// # Ok(()) }
/// ```
pub async fn list_streams(redis: &RedisInstance, budget: ScanBudget) -> Result<StreamList> {
    let mut scan = scan_keys(redis, "stream", budget).await?;
    scan.keys.sort_unstable();
    scan.keys.dedup();
    Ok(StreamList {
        names: scan.keys,
        complete: scan.complete,
    })
}
