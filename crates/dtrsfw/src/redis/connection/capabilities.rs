//! What the server behind an instance can do, detected once per connection and cached.
//!
//! Redis 8.2 added stream commands that respect consumer-group references (`XACKDEL`,
//! `XDELEX`, and the `KEEPREF | DELREF | ACKED` options of `XADD` and `XTRIM`). Features
//! that use them ask [`RedisInstance::server_capabilities`]; the answer is detected by
//! capability, never by product name: `COMMAND INFO XACKDEL` says whether the command
//! exists (it came with the `ACKED` options, in one release), `INFO server` gives the
//! product and version for messages and `dtredis info`. Checked on real binaries:
//! Redis 8.2.3 has them; Redis 7.0.15, Valkey 8.1.8 and Valkey 9.1.2 do not.
//!
//! The answer is kept with the instance and detected again after the shared connection
//! was lost (a failover can land on another version) or reset: every lost-connection or
//! timeout error seen by the shared client, and every (re)connect of it, moves the
//! instance's connection epoch, and a cached answer from an older epoch is not used.
//!
//! On a cluster, `INFO server` is asked of every primary: when they all run the same
//! version, the node that answers `COMMAND INFO` speaks for all of them; primaries of
//! different versions (a rolling upgrade) count as lacking the 8.2 commands.
//!
//! [`RedisInstance::server_capabilities`]: super::RedisInstance::server_capabilities

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redis::Value;

use crate::redis::error::{Error, Result};

/// What the server can do, as detected by
/// [`RedisInstance::server_capabilities`](super::RedisInstance::server_capabilities).
///
/// ```no_run
/// # async fn f(redis: dtrsfw::redis::RedisInstance) -> dtrsfw::redis::Result<()> {
/// let caps = redis.server_capabilities().await?;
/// println!("{caps}"); // e.g. "redis 8.2.3 (acknowledged-aware stream commands)"
/// if caps.ack_aware_streams() {
///     // XACKDEL, and XADD/XTRIM ... ACKED, are available
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerCapabilities {
    product: String,
    version: String,
    ack_aware_streams: bool,
}

impl ServerCapabilities {
    /// `"redis"` or `"valkey"` (from `INFO server`: `server_name`, else `redis`).
    #[must_use]
    pub fn product(&self) -> &str {
        &self.product
    }

    /// The server's version (`valkey_version` on Valkey, `redis_version` otherwise).
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether the server has `XACKDEL` and the `ACKED` option of `XADD`/`XTRIM` (Redis
    /// 8.2 and later).
    #[must_use]
    pub fn ack_aware_streams(&self) -> bool {
        self.ack_aware_streams
    }

    /// From the replies of `INFO server` (one server's text, or on a cluster one text
    /// per primary) and `COMMAND INFO XACKDEL`. Primaries of different versions (a
    /// rolling upgrade) count as lacking the 8.2 commands, whatever the one node asked
    /// by `COMMAND INFO` has.
    pub(crate) fn from_replies(info: &[String], command_info: &Value) -> Self {
        let mut seen: Vec<(String, String)> = info.iter().map(|text| product_and_version(text)).collect();
        seen.sort();
        seen.dedup();
        // `COMMAND INFO <name>` answers one element per name: nil when unknown.
        let has_xackdel = match command_info {
            Value::Array(items) => items.first().is_some_and(|v| !matches!(v, Value::Nil)),
            _ => false,
        };
        match seen.as_slice() {
            [(product, version)] => ServerCapabilities {
                product: product.clone(),
                version: version.clone(),
                ack_aware_streams: has_xackdel,
            },
            _ => ServerCapabilities {
                product: seen.first().map_or_else(|| "redis".to_owned(), |(p, _)| p.clone()),
                version: format!(
                    "mixed ({})",
                    seen.iter()
                        .map(|(p, v)| format!("{p} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                ack_aware_streams: false,
            },
        }
    }

    /// The refusal of a feature this server lacks, naming the server and its version.
    pub(crate) fn missing(&self, feature: &str) -> Error {
        Error::invalid_input(format!(
            "{feature} needs Redis 8.2 or later (XACKDEL and the ACKED option); the server is {} {}",
            self.product, self.version
        ))
    }
}

/// `redis 8.2.3 (acknowledged-aware stream commands)` or `valkey 9.1.2`.
impl fmt::Display for ServerCapabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.product, self.version)?;
        if self.ack_aware_streams {
            f.write_str(" (acknowledged-aware stream commands)")?;
        }
        Ok(())
    }
}

/// The commands of a detection: `INFO server`, then `COMMAND INFO XACKDEL`.
pub(super) fn detection_commands() -> (redis::Cmd, redis::Cmd) {
    let mut info = redis::cmd("INFO");
    info.arg("server");
    let mut command = redis::cmd("COMMAND");
    command.arg("INFO").arg("XACKDEL");
    (info, command)
}

/// `product` and `version` in one server's `INFO server` text.
fn product_and_version(info: &str) -> (String, String) {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    };
    let product = field("server_name").unwrap_or_else(|| "redis".to_owned());
    let version = field("valkey_version")
        .or_else(|| field("redis_version"))
        .unwrap_or_else(|| "unknown".to_owned());
    (product, version)
}

/// The `INFO` texts in a reply: one server's, or one per node on a cluster (a map of
/// node to text).
fn info_texts(reply: &Value) -> Vec<String> {
    let text = |v: &Value| redis::from_redis_value_ref::<String>(v).ok();
    match reply {
        Value::Map(nodes) => nodes.iter().filter_map(|(_, v)| text(v)).collect(),
        other => text(other).into_iter().collect(),
    }
}

/// Reads a detection's replies; an error names what could not be read.
pub(super) fn interpret(
    info: redis::RedisResult<Value>,
    command: redis::RedisResult<Value>,
) -> Result<ServerCapabilities> {
    let info = info.map_err(|e| Error::redis("detecting the server's capabilities (INFO server)", e))?;
    let command = command.map_err(|e| Error::redis("detecting the server's capabilities (COMMAND INFO)", e))?;
    let texts = info_texts(&info);
    if texts.is_empty() {
        return Err(Error::new(
            crate::redis::error::ErrorKind::Response,
            format!("INFO server answered {info:?}, not the server's description"),
        ));
    }
    Ok(ServerCapabilities::from_replies(&texts, &command))
}

/// Moves whenever the shared connection may now reach another server (lost, reset,
/// opened anew). Shared by the instance and every handle of its shared client.
#[derive(Debug, Clone, Default)]
pub(super) struct ConnectionEpoch(Arc<AtomicU64>);

impl ConnectionEpoch {
    pub(super) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn current(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The last detection and the epoch it was made in.
#[derive(Debug, Default)]
pub(super) struct CapabilityCache {
    detected: Mutex<Option<(u64, ServerCapabilities)>>,
}

impl CapabilityCache {
    /// The cached answer if it was detected in `epoch`.
    pub(super) fn get(&self, epoch: u64) -> Option<ServerCapabilities> {
        let detected = self.detected.lock().unwrap_or_else(|e| e.into_inner());
        detected
            .as_ref()
            .filter(|(e, _)| *e == epoch)
            .map(|(_, caps)| caps.clone())
    }

    pub(super) fn store(&self, epoch: u64, caps: &ServerCapabilities) {
        *self.detected.lock().unwrap_or_else(|e| e.into_inner()) = Some((epoch, caps.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_product_version_and_the_xackdel_command() {
        let redis82 = "# Server\r\nredis_version:8.2.3\r\nredis_mode:standalone\r\n";
        let valkey = "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:9.1.2\r\n";
        let known = Value::Array(vec![Value::Array(vec![Value::BulkString(b"xackdel".to_vec())])]);
        let unknown = Value::Array(vec![Value::Nil]);
        let caps = ServerCapabilities::from_replies(&[redis82.into()], &known);
        assert_eq!(
            (caps.product(), caps.version(), caps.ack_aware_streams()),
            ("redis", "8.2.3", true)
        );
        assert_eq!(caps.to_string(), "redis 8.2.3 (acknowledged-aware stream commands)");
        let caps = ServerCapabilities::from_replies(&[valkey.into()], &unknown);
        assert_eq!(
            (caps.product(), caps.version(), caps.ack_aware_streams()),
            ("valkey", "9.1.2", false)
        );
        assert!(caps.missing("X").to_string().contains("valkey 9.1.2"));
        // A cluster: the same version everywhere speaks for all; mixed versions never use
        // the 8.2 commands.
        let same = ServerCapabilities::from_replies(&[redis82.into(), redis82.into()], &known);
        assert!(same.ack_aware_streams());
        let mixed = ServerCapabilities::from_replies(&[redis82.into(), "redis_version:7.0.15".into()], &known);
        assert!(!mixed.ack_aware_streams());
        assert_eq!(mixed.version(), "mixed (redis 7.0.15, redis 8.2.3)");
        let map = Value::Map(vec![(
            Value::BulkString(b"n1".to_vec()),
            Value::BulkString(redis82.as_bytes().to_vec()),
        )]);
        assert_eq!(info_texts(&map), [redis82]);
    }

    #[test]
    fn a_cached_answer_is_only_used_in_its_epoch() {
        let cache = CapabilityCache::default();
        let caps = ServerCapabilities::from_replies(&["redis_version:7.0.15".into()], &Value::Array(vec![Value::Nil]));
        assert_eq!(cache.get(0), None);
        cache.store(3, &caps);
        assert_eq!(cache.get(3), Some(caps));
        assert_eq!(cache.get(4), None);
    }
}
