//! Cache namespaces seen in a bounded sample of the keyspace.
//!
//! A cached call's key is `<namespace>:<sha256 hex of its arguments>` (see
//! [`cache_key`](crate::redis::caching::cache_key)); a `SCAN ... TYPE string` within a
//! [`ScanBudget`] finds such keys and groups them by namespace. The no-argument key
//! (the bare namespace) cannot be told apart from any other string key and is not
//! counted.

use std::collections::BTreeMap;

use redis::RedisResult;

use super::scan::{ScanBudget, scan_keys};
use crate::redis::connection::RedisInstance;
use crate::redis::error::{Error, Result};

/// Keys per namespace whose TTL is read (pipelined `PTTL`).
const TTL_SAMPLE: usize = 20;

/// One namespace of the sample.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct NamespaceStats {
    /// The namespace.
    pub namespace: String,
    /// Keys of it found by the scan.
    pub sampled_keys: u64,
    /// Estimated keys in the server: exact when the scan was complete, else the sampled
    /// count scaled by the share of the keyspace the scan examined.
    pub approx_keys: u64,
    /// Shortest remaining TTL among up to 20 sampled keys, milliseconds.
    pub ttl_min_ms: Option<u64>,
    /// Longest remaining TTL among them, milliseconds.
    pub ttl_max_ms: Option<u64>,
    /// Of those keys, how many have no expiry.
    pub without_ttl: u64,
}

/// What [`sample_cache_namespaces`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct NamespaceSample {
    /// Namespaces, sorted by name.
    pub namespaces: Vec<NamespaceStats>,
    /// Whether the scan saw the whole keyspace.
    pub complete: bool,
    /// Keys in the database (`DBSIZE`; the first node's on a cluster).
    pub dbsize: u64,
}

/// The namespace of a cache key, if it looks like one (`<ns>:<64 lowercase hex>`).
fn namespace_of(key: &str) -> Option<&str> {
    let (namespace, hash) = key.rsplit_once(':')?;
    let is_hash = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (is_hash && !namespace.is_empty()).then_some(namespace)
}

/// The cache namespaces in a bounded sample of the keyspace, with approximate key
/// counts and the spread of their TTLs.
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)), from the scan, `DBSIZE` or reading the
/// TTLs.
pub async fn sample_cache_namespaces(redis: &RedisInstance, budget: ScanBudget) -> Result<NamespaceSample> {
    let scan = scan_keys(redis, "string", budget).await?;
    let mut client = redis.get_async_redis_client().await?;
    let dbsize: u64 = redis::cmd("DBSIZE")
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis("DBSIZE", e))?;
    let mut keys: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for key in scan.keys.iter().filter(|k| seen.insert(k.as_str())) {
        if let Some(ns) = namespace_of(key) {
            keys.entry(ns).or_default().push(key);
        }
    }
    let examined = scan.steps.saturating_mul(budget_count(budget)).max(1);
    let scale = if scan.complete {
        1.0
    } else {
        (dbsize as f64 / examined as f64).max(1.0)
    };
    let mut namespaces = Vec::with_capacity(keys.len());
    for (namespace, found) in keys {
        let mut stats = NamespaceStats {
            namespace: namespace.to_owned(),
            sampled_keys: found.len() as u64,
            approx_keys: (found.len() as f64 * scale).round() as u64,
            ..NamespaceStats::default()
        };
        add_ttls(&mut client, &found[..found.len().min(TTL_SAMPLE)], &mut stats).await?;
        namespaces.push(stats);
    }
    Ok(NamespaceSample {
        namespaces,
        complete: scan.complete,
        dbsize,
    })
}

fn budget_count(budget: ScanBudget) -> u64 {
    budget.count_hint() as u64
}

async fn add_ttls(
    client: &mut crate::redis::AsyncRedisClient,
    keys: &[&str],
    stats: &mut NamespaceStats,
) -> Result<()> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for key in keys {
        pipe.cmd("PTTL").arg(*key);
    }
    let ttls: Vec<RedisResult<i64>> = pipe.query_async(client).await.map_err(|e| Error::redis("PTTL", e))?;
    for ttl in ttls.into_iter().flatten() {
        match u64::try_from(ttl) {
            Ok(ms) => {
                stats.ttl_min_ms = Some(stats.ttl_min_ms.map_or(ms, |m| m.min(ms)));
                stats.ttl_max_ms = Some(stats.ttl_max_ms.map_or(ms, |m| m.max(ms)));
            }
            // -1: no expiry; -2: gone since the scan.
            Err(_) if ttl == -1 => stats.without_ttl += 1,
            Err(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::namespace_of;

    #[test]
    fn only_keys_ending_in_a_sha256_hex_are_cache_keys() {
        let hash = "35518bae13e75c666fc5e4837d43620966266d4e7cc3844b4e5f485d5da5fc5a";
        assert_eq!(namespace_of(&format!("ns:{hash}")), Some("ns"));
        assert_eq!(namespace_of(&format!("a:b:{hash}")), Some("a:b"));
        assert_eq!(namespace_of(&format!(":{hash}")), None);
        assert_eq!(namespace_of("ns:short"), None);
        assert_eq!(namespace_of(&format!("ns:{}", hash.to_uppercase())), None);
    }
}
