//! `RedisInstance`: validated configuration, the sync pool and the async multiplexed
//! client.
//!
//! One `RedisInstance` is meant to live for the whole process and be cloned freely (it
//! is an `Arc`). Nothing connects until first use. The sync side is a bounded pool of
//! blocking connections; the async side is one multiplexed connection shared by every
//! task, which redis-rs's `ConnectionManager` re-establishes after the server restarts.
//!
//! # Connections
//!
//! - Every operation is bounded: connect timeout and response timeout from the config
//!   (defaults 5 s). A blocking read uses its own connection
//!   ([`get_blocking_connection`](RedisInstance::get_blocking_connection),
//!   [`get_async_blocking_connection`](RedisInstance::get_async_blocking_connection))
//!   whose timeout adds the block time. The bounds hold from a cold start too: opening
//!   the shared async connection takes at most the connect timeout, and tasks that need
//!   it while it is being opened share that one connect (none waits out another's
//!   failure); a failed connect is not remembered, the next call tries again.
//! - The async client is one multiplexed connection (redis-rs `ConnectionManager`) that
//!   reconnects by itself after a server restart. The sync pool drops a connection that
//!   broke and opens a new one; a connection idle longer than the health-check interval
//!   is PINGed before reuse.
//! - `retry_on_timeout` (default on) retries once, on a fresh connection, only commands
//!   that are safe to repeat, on every client: the [`get_redis`](RedisInstance::get_redis)
//!   guard, the [`get_redis_client`](RedisInstance::get_redis_client) handle and the async
//!   client (the guard's `connection_mut()` lends the bare connection, without retry).
//!   The commands: reads (`GET`, `MGET`, `EXISTS`, `TTL`, `SCAN`, `XRANGE`,
//!   `XINFO`, `XPENDING`, `XLEN`, …) and idempotent writes (`SET`, `SETEX`, `DEL`,
//!   `UNLINK`, `EXPIRE`, `XACK`, `XTRIM`, `XDEL`). Never `XADD`, `INCR`, `XREADGROUP`,
//!   scripts or pipelines.
//! - TCP keepalive is on by default (first probe after 15 s idle, as the Python package).
//! - URLs: [`get_redis_url`](RedisInstance::get_redis_url) percent-encodes credentials
//!   (as the Python package does; we also encode `/`, and a password-only URL is
//!   `redis://:pw@host`, where the Python package writes `redis://pw@host`, which
//!   redis-py reads as a user name). `Display` and `Debug` mask them.
//!
//! # Redis Cluster
//!
//! A cluster (Redis Cluster or a Valkey cluster) is configured by URL alone; nothing else
//! in the code changes:
//!
//! ```no_run
//! use dtrsfw::redis::{RedisConfig, RedisInstance};
//!
//! // Seed nodes, comma-separated; one live seed is enough (the rest are discovered).
//! // `rediss+cluster://` for TLS; credentials as usual (`redis+cluster://user:pass@h1:7000,h2:7001`).
//! let redis = RedisInstance::new(
//!     RedisConfig::new().set_redis_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002"),
//! )?;
//! assert!(redis.is_cluster());
//! # Ok::<(), dtrsfw::redis::Error>(())
//! ```
//!
//! [`RedisConfig::from_env()`](RedisConfig::from_env) takes it from `REDIS_URL`, and
//! `dtredis --url` accepts it too. A database other than 0 is rejected (a cluster has
//! only db 0).
//!
//! - **Connections.** Built on redis-rs's cluster support (features `cluster` and
//!   `cluster-async`); we do no routing of our own. The same handles are backed by
//!   redis-rs's cluster clients: `get_async_redis_client()` by one
//!   `redis::cluster_async::ClusterConnection` (multiplexed per node), `get_redis()` /
//!   `get_redis_client()` by a pool of `redis::cluster::ClusterConnection`s, and
//!   `get_async_blocking_connection()` gives a cluster connection of its own. redis-rs
//!   sends each command to the primary owning its key's slot, follows `MOVED`/`ASK`
//!   redirections and refreshes its slot map after a failover. `get_redis()`
//!   dereferences to [`SyncConnection`] (one server or a cluster, implementing
//!   `redis::ConnectionLike`), and `get_blocking_connection()` /
//!   `get_async_blocking_connection()` return [`SyncConnection`] /
//!   [`AsyncBlockingConnection`]: code that uses them through `redis::Commands` or
//!   `cmd(..).query(..)` is unchanged.
//! - **Health.** [`is_redis_connected`](crate::redis::is_redis_connected) PINGs every
//!   primary and requires `CLUSTER INFO` to say `cluster_state:ok`.
//! - **Caching, sender, consumer.** See the "On a Redis Cluster" sections of
//!   [`caching`](crate::redis::caching), [`sender`](crate::redis::sender) and
//!   [`streamer`](crate::redis::streamer).
//! - **Tests** (`crates/dtrsfw/tests/cluster.rs`) run on a private 3 primaries +
//!   3 replicas cluster per test (on Redis 7.0 and Valkey 8.1): cache, sender and
//!   consumer with channels on three different primaries, and a failover: the primary
//!   owning a busy channel is killed with `SIGKILL` while two producers and a consumer
//!   run; a replica takes over, consumption resumes within the failover time plus 2 s,
//!   and every send that returned an ID is processed.
//! - **Benchmark.** `dtredis bench --url redis+cluster://h1:p1,h2:p2,...` runs every
//!   benchmark on the cluster (figures: `docs/performance.md` in the repository).
//! - Redis replicates asynchronously: a write the old primary acknowledged in the last
//!   instant before dying can in principle be missing on the replica that takes over.
//!   Our tests see no loss on a local cluster, but a service that needs a stronger
//!   guarantee should add `WAIT` (not done by the sender).

mod extensions;
mod pool;
mod shared_slot;

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::io::tcp::TcpSettings;
use redis::{Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, Value};

use self::pool::SyncPool;
use self::shared_slot::SharedSlot;
use super::config::{RedisConfig, redact_url};
use super::error::{Error, Result};

/// Commands that may be sent again after a timeout or a lost connection without changing
/// the outcome: reads, and writes whose repetition leaves the same state. Anything not
/// listed (`XADD`, `INCR`, `XREADGROUP`, `EVAL`, ...) is never retried automatically.
const SAFE_TO_RETRY: &[&str] = &[
    "PING",
    "GET",
    "MGET",
    "EXISTS",
    "TTL",
    "PTTL",
    "TYPE",
    "STRLEN",
    "HGET",
    "HGETALL",
    "HMGET",
    "SCAN",
    "INFO",
    "XLEN",
    "XRANGE",
    "XREVRANGE",
    "XINFO",
    "XPENDING",
    "SET",
    "SETEX",
    "PSETEX",
    "DEL",
    "UNLINK",
    "EXPIRE",
    "PEXPIRE",
    "XACK",
    "XTRIM",
    "XDEL",
    "CLIENT",
    "TIME",
    "DBSIZE",
    "MEMORY",
];

fn is_safe_to_retry(name: &[u8]) -> bool {
    SAFE_TO_RETRY
        .iter()
        .any(|safe| safe.as_bytes().eq_ignore_ascii_case(name))
}

/// The first word of a RESP-packed command (`*N\r\n$len\r\nNAME\r\n...`).
fn packed_command_name(packed: &[u8]) -> Option<&[u8]> {
    let mut lines = packed.split(|&b| b == b'\n');
    lines.next()?; // *N
    lines.next()?; // $len
    lines.next().map(|name| name.strip_suffix(b"\r").unwrap_or(name))
}

/// The first word of a command (its name), if it is a plain argument.
fn command_name(cmd: &Cmd) -> Option<&[u8]> {
    match cmd.args_iter().next()? {
        redis::Arg::Simple(name) => Some(name),
        _ => None,
    }
}

/// Whether the command named `name` is sent a second time after a retryable failure:
/// the one retry decision of every client (pooled guard, sync handle, async client).
fn may_retry(retry_on_timeout: bool, name: Option<&[u8]>) -> bool {
    retry_on_timeout && name.is_some_and(is_safe_to_retry)
}

/// Whether an error means "the request may never have been answered": the case that
/// `retry_on_timeout` covers.
fn is_retryable_failure(err: &redis::RedisError) -> bool {
    err.is_timeout() || err.is_connection_dropped() || err.is_io_error()
}

/// The URL schemes of a cluster (a seed list), plain and TLS.
const CLUSTER_SCHEME: &str = "redis+cluster";
const CLUSTER_TLS_SCHEME: &str = "rediss+cluster";

/// How many times redis-rs's cluster client retries a request after a redirection or a
/// lost node, and how long it waits between tries. Short waits matter during a failover:
/// redis-rs's default (1.28 s minimum) would idle past the moment a replica takes over.
/// The configured response timeout still bounds the whole request.
const CLUSTER_RETRIES: u32 = 8;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 50;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 500;

/// Whether `url` names a cluster (`redis+cluster://` or `rediss+cluster://`).
fn is_cluster_url(url: &str) -> bool {
    matches!(url.split("://").next(), Some(CLUSTER_SCHEME | CLUSTER_TLS_SCHEME)) && url.contains("://")
}

/// The seed nodes of a cluster URL, each as a one-node URL (`redis[s]://[auth@]host:port`)
/// carrying the shared credentials. A cluster has only database 0, so any other is an
/// error rather than silently ignored.
///
/// The credentials end at the last `@`, as in [`redact_url`]: where they hold an
/// unencoded `/`, `#` or `?`, the seed then fails to parse (masked) instead of the rest of
/// the password being taken for a host or a database.
fn cluster_seed_urls(url: &str) -> Result<Vec<String>> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let node_scheme = if scheme == CLUSTER_TLS_SCHEME {
        "rediss"
    } else {
        "redis"
    };
    let (auth, after_auth) = match rest.rfind('@') {
        Some(at) => rest.split_at(at + 1),
        None => ("", rest),
    };
    let (hosts, path) = after_auth.split_at(after_auth.find(['/', '?', '#']).unwrap_or(after_auth.len()));
    let db = path
        .strip_prefix('/')
        .unwrap_or("")
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    if !db.is_empty() && db != "0" {
        // Only a number is quoted: anything else may be a piece of a mistyped password.
        let not = match db.parse::<u64>() {
            Ok(n) => format!("not {n}"),
            Err(_) => "and the URL's path is not a database number".to_owned(),
        };
        return Err(Error::config(
            "redis_url",
            format!("a cluster has only database 0, {not}"),
        ));
    }
    let seeds: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| format!("{node_scheme}://{auth}{h}"))
        .collect();
    if seeds.is_empty() {
        return Err(Error::config(
            "redis_url",
            format!(
                "{:?} lists no seed node (redis+cluster://host:port,host:port)",
                redact_url(url)
            ),
        ));
    }
    for seed in &seeds {
        seed.as_str()
            .into_connection_info()
            .map_err(|e| unparsable_url(&format!("seed {:?}", redact_url(seed)), &e))?;
    }
    Ok(seeds)
}

/// The error for a URL redis-rs refused. It carries redis-rs's description ("Redis URL
/// did not parse", "Invalid database number", ...) but not its detail, which can quote the
/// input (an unknown `protocol=` value) and so a piece of a mistyped password.
fn unparsable_url(what: &str, err: &redis::RedisError) -> Error {
    let hint = if what.contains('@') {
        "; in credentials, characters such as @ : / # ? % must be percent-encoded"
    } else {
        ""
    };
    Error::config(
        "redis_url",
        format!("{what} cannot be parsed ({}){hint}", redis_description(err)),
    )
}

/// redis-rs's fixed description of a client-side error, without its detail (see
/// [`unparsable_url`]). Its `Display` is `description - Kind[: detail]`.
fn redis_description(err: &redis::RedisError) -> String {
    let text = err.to_string();
    let description = text.split(" - ").next().unwrap_or_default();
    match err.detail() {
        Some(detail) if description.contains(detail) => format!("{:?}", err.kind()),
        _ => description.to_owned(),
    }
}

/// Builds the URL the way the Python package does (`redis[s]://[user[:pass]@]host:port/db`,
/// credentials percent-encoded), after validating every field.
fn build_url(config: &RedisConfig) -> Result<String> {
    if let Some(url) = config.redis_url() {
        let scheme = url.split("://").next().unwrap_or_default();
        if !url.contains("://")
            || !matches!(
                scheme,
                "redis" | "rediss" | "unix" | "redis+unix" | CLUSTER_SCHEME | CLUSTER_TLS_SCHEME
            )
        {
            return Err(Error::config(
                "redis_url",
                format!(
                    "unsupported URL {:?}: expected redis://, rediss://, unix:// or redis+cluster://",
                    redact_url(url)
                ),
            ));
        }
        if config.redis_ssl() && !matches!(scheme, "rediss" | CLUSTER_TLS_SCHEME) {
            return Err(Error::config(
                "redis_ssl",
                "TLS requested but redis_url is not rediss:// (use rediss://, or drop set_redis_ssl)",
            ));
        }
        if is_cluster_url(url) {
            cluster_seed_urls(url)?;
            return Ok(url.to_owned());
        }
        url.into_connection_info()
            .map_err(|e| unparsable_url(&format!("{:?}", redact_url(url)), &e))?;
        return Ok(url.to_owned());
    }
    let host = config.redis_host().filter(|h| !h.trim().is_empty()).ok_or_else(|| {
        Error::config(
            "redis_host",
            "no host and no URL configured (set_redis_host or set_redis_url)",
        )
    })?;
    if host.contains(['/', '@', '?', '#', ' ']) {
        return Err(Error::config("redis_host", format!("{host:?} is not a host name")));
    }
    let port = config.redis_port().unwrap_or(6379);
    if port == 0 || port > 65535 {
        return Err(Error::config("redis_port", format!("{port} is out of range 1..=65535")));
    }
    let db = config.redis_db().unwrap_or("0").trim();
    if db.parse::<u32>().is_err() {
        return Err(Error::config(
            "redis_db",
            format!("{db:?} is not a non-negative database index"),
        ));
    }
    let user = config.redis_username().filter(|u| !u.is_empty()).map(percent_encode);
    let pass = config.redis_password().filter(|p| !p.is_empty()).map(percent_encode);
    let auth = match (user, pass) {
        (Some(u), Some(p)) => format!("{u}:{p}@"),
        (None, Some(p)) => format!(":{p}@"),
        (Some(u), None) => format!("{u}@"),
        (None, None) => String::new(),
    };
    let scheme = if config.redis_ssl() { "rediss" } else { "redis" };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]") // IPv6 literal
    } else {
        host.to_owned()
    };
    Ok(format!("{scheme}://{auth}{host}:{port}/{db}"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (as Python's
/// `urllib.parse.quote(s, safe="")`), so `@ : / # % +` in credentials survive.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What the connections go to: one server, or a cluster reached through its seeds.
#[derive(Clone)]
// One per `RedisInstance` (and its rare clones): the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Target {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// Everything needed to open a connection; shared by the pool and the async side.
#[derive(Clone)]
struct Connector {
    target: Target,
    connect_timeout: Duration,
    response_timeout: Duration,
    retry_on_timeout: bool,
    /// The database the connections select (always 0 on a cluster).
    db: i64,
}

fn tcp_settings(config: &RedisConfig) -> Option<TcpSettings> {
    config.redis_socket_keepalive().then(|| {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(15))
            .with_interval(Duration::from_secs(5))
            .with_retries(3);
        TcpSettings::default().set_keepalive(keepalive)
    })
}

fn read_root_cert(config: &RedisConfig) -> Result<Option<Vec<u8>>> {
    config
        .redis_ssl_ca_certs()
        .map(|path| {
            std::fs::read(path)
                .map_err(|e| Error::config("redis_ssl_ca_certs", format!("cannot read {}: {e}", path.display())))
        })
        .transpose()
}

impl Connector {
    fn new(config: &RedisConfig, url: &str) -> Result<Self> {
        let target = if is_cluster_url(url) {
            Target::Cluster(Self::cluster_client(config, url)?)
        } else {
            Target::Single(Self::single_client(config, url)?)
        };
        let db = match &target {
            Target::Single(client) => client.get_connection_info().redis_settings().db(),
            Target::Cluster(_) => 0,
        };
        Ok(Connector {
            target,
            db,
            connect_timeout: config.redis_socket_connect_timeout(),
            response_timeout: config.redis_socket_timeout(),
            retry_on_timeout: config.redis_retry_on_timeout(),
        })
    }

    fn cluster_client(config: &RedisConfig, url: &str) -> Result<ClusterClient> {
        let seeds = cluster_seed_urls(url)?;
        let mut builder = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
            .connection_timeout(config.redis_socket_connect_timeout())
            .response_timeout(config.redis_socket_timeout())
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
            .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS);
        if let Some(tcp) = tcp_settings(config) {
            builder = builder.tcp_settings(tcp);
        }
        if url.starts_with(CLUSTER_TLS_SCHEME) {
            install_tls_provider();
        }
        if let Some(root_cert) = read_root_cert(config)? {
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            });
        }
        builder
            .build()
            .map_err(|e| Error::config("redis_url", redis_description(&e)))
    }

    fn single_client(config: &RedisConfig, url: &str) -> Result<redis::Client> {
        let mut info: ConnectionInfo = url
            .into_connection_info()
            .map_err(|e| unparsable_url(&format!("{:?}", redact_url(url)), &e))?;
        if let Some(tcp) = tcp_settings(config) {
            info = info.set_tcp_settings(tcp);
        }
        let client = match read_root_cert(config)? {
            Some(root_cert) => {
                install_tls_provider();
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                )
            }
            None => {
                if url.starts_with("rediss") {
                    install_tls_provider();
                }
                redis::Client::open(info)
            }
        }
        .map_err(|e| Error::config("redis_url", redis_description(&e)))?;
        Ok(client)
    }

    fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    fn cluster_config(&self, response_timeout: Duration) -> ClusterConfig {
        ClusterConfig::new()
            .set_connection_timeout(self.connect_timeout)
            .set_response_timeout(response_timeout)
    }

    fn connect_sync(&self) -> Result<SyncConnection> {
        self.connect_sync_with_response_timeout(self.response_timeout)
    }

    fn connect_sync_with_response_timeout(&self, response_timeout: Duration) -> Result<SyncConnection> {
        self.connect_sync_with_timeouts(self.connect_timeout, response_timeout)
    }

    fn connect_sync_with_timeouts(
        &self,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<SyncConnection> {
        let conn = match &self.target {
            Target::Single(client) => {
                let conn = client
                    .get_connection_with_timeout(connect_timeout)
                    .map_err(|e| Error::redis("connecting to redis", e))
                    .inspect_err(|e| tracing::debug!(error = %e, "sync connection failed"))?;
                tracing::debug!(addr = %client.get_connection_info().addr(), "opened a sync connection");
                SyncInner::Single(conn)
            }
            Target::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(connect_timeout)
                    .set_response_timeout(response_timeout);
                let conn = client
                    .get_connection_with_config(config)
                    .map_err(|e| Error::redis("connecting to the redis cluster", e))
                    .inspect_err(|e| tracing::debug!(error = %e, "sync cluster connection failed"))?;
                tracing::debug!("opened a sync cluster connection");
                SyncInner::Cluster(Box::new(conn))
            }
        };
        let conn = SyncConnection { inner: conn };
        conn.set_read_timeout(Some(response_timeout))?;
        conn.set_write_timeout(Some(response_timeout))?;
        Ok(conn)
    }

    fn async_config(&self, response_timeout: Duration) -> redis::AsyncConnectionConfig {
        redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(response_timeout))
    }

    /// The shared async connection: a `ConnectionManager` for one server, a cluster
    /// connection (itself multiplexed per node, and self-healing) for a cluster.
    async fn connect_shared(&self) -> Result<AsyncInner> {
        match &self.target {
            Target::Single(client) => Ok(AsyncInner::Single(self.connect_manager(client).await?)),
            Target::Cluster(client) => {
                let conn = client
                    .get_async_connection_with_config(self.cluster_config(self.response_timeout))
                    .await
                    .map_err(|e| Error::redis("connecting to the redis cluster", e))?;
                tracing::debug!("opened the shared async cluster connection");
                Ok(AsyncInner::Cluster(conn))
            }
        }
    }

    /// Opens the manager, in at most the connect timeout. The manager's retries (below)
    /// are for reconnecting a connection that existed; they also apply to its first
    /// connect, where three tries against a server that does not answer took three
    /// connect timeouts plus backoffs. So the first connect as a whole gets one connect
    /// timeout: a server that refuses at once still gets the quick retries within it.
    async fn connect_manager(&self, client: &redis::Client) -> Result<redis::aio::ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            // Reconnection is retried by the next command anyway; few retries here keep a
            // dead server's error prompt instead of hidden behind a long backoff.
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let manager = with_deadline(self.connect_timeout, "connecting to redis", async {
            client
                .get_connection_manager_with_config(config)
                .await
                .map_err(|e| Error::redis("connecting to redis", e))
        })
        .await?;
        tracing::debug!(addr = %client.get_connection_info().addr(), "opened the shared async connection");
        Ok(manager)
    }
}

/// rustls needs a process-wide crypto provider; we bring `ring`. Installing twice is a
/// no-op error we ignore (the application may have installed its own).
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

struct Inner {
    config: RedisConfig,
    url: String,
    connector: Connector,
    sync_pool: RwLock<Option<Arc<SyncPool>>>,
    /// The shared async client, or the one connect opening it.
    shared: Arc<SharedSlot>,
    /// Per-instance state of higher layers (the cache's view of this server), type-erased
    /// so that this module does not depend on them.
    extensions: self::extensions::Extensions,
}

/// A validated Redis configuration with its lazily created connections. Cheap to
/// clone; clones share the pools.
///
/// ```no_run
/// use dtrsfw::redis::{RedisConfig, RedisInstance};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisInstance::new(RedisConfig::new().set_redis_host("localhost"))?;
/// let mut conn = redis.get_redis()?; // back to the pool when `conn` drops
/// redis::cmd("SET").arg("key").arg("value").exec(&mut conn)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisInstance {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisInstance")
            .field("url", &redact_url(&self.inner.url))
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Shows the URL with credentials masked.
impl fmt::Display for RedisInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.inner.url))
    }
}

impl RedisInstance {
    /// Validates `config` and prepares (without connecting) the connections.
    ///
    /// Fails with an error naming the field when there is no host and no URL, the port
    /// is 0 or above 65535, the db is not a non-negative number, the URL cannot be
    /// parsed, or TLS is requested with a `redis://` URL.
    ///
    /// ```
    /// use dtrsfw::redis::{RedisConfig, RedisInstance};
    ///
    /// let redis = RedisInstance::new(
    ///     RedisConfig::new().set_redis_host("cache").set_redis_username("app").set_redis_password("p@ss"),
    /// )?;
    /// assert_eq!(redis.redis_url(), "redis://app:p%40ss@cache:6379/0");
    /// assert_eq!(redis.to_string(), "redis://***@cache:6379/0");
    /// # Ok::<(), dtrsfw::redis::Error>(())
    /// ```
    pub fn new(config: RedisConfig) -> Result<Self> {
        let url = build_url(&config)?;
        let connector = Connector::new(&config, &url)?;
        Ok(RedisInstance {
            inner: Arc::new(Inner {
                config,
                url,
                connector,
                sync_pool: RwLock::new(None),
                shared: Arc::default(),
                extensions: Default::default(),
            }),
        })
    }

    /// This instance's state of type `T` kept by a higher layer, created by `init` on
    /// first use (see `connection/extensions.rs`).
    pub(crate) fn extension<T: std::any::Any + Send + Sync>(&self, init: impl FnOnce() -> Arc<T>) -> Arc<T> {
        self.inner.extensions.get_or_insert_with(init)
    }

    /// The connection URL, credentials included (percent-encoded). Treat it as a secret;
    /// `Display` of the instance masks them.
    pub fn redis_url(&self) -> &str {
        &self.inner.url
    }

    /// The connection URL (the Python name of [`redis_url`](Self::redis_url)).
    pub fn get_redis_url(&self) -> &str {
        self.redis_url()
    }

    /// The configuration this instance was built from.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    fn sync_pool(&self) -> Arc<SyncPool> {
        if let Some(pool) = self.inner.sync_pool.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return pool.clone();
        }
        let mut slot = self.inner.sync_pool.write().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| {
            let config = &self.inner.config;
            Arc::new(SyncPool::new(
                self.inner.connector.clone(),
                config.redis_max_connections(),
                config.redis_socket_connect_timeout(),
                config.redis_health_check_interval(),
            ))
        })
        .clone()
    }

    /// Borrows a connection from the sync pool; it goes back when the guard drops. Waits
    /// at most the connect timeout when every connection is lent out. Commands run on the
    /// guard itself ([`PooledConnection`] implements [`redis::ConnectionLike`]) retry a
    /// command that is safe to repeat once, on a fresh connection, after a timeout or a lost
    /// connection, as the other clients do. The guard dereferences to a [`SyncConnection`]:
    /// a one-server connection, or on a cluster a redis-rs cluster connection that routes
    /// each command by its key.
    ///
    /// ```no_run
    /// # let redis = dtrsfw::redis::RedisInstance::new(dtrsfw::redis::RedisConfig::new().set_redis_host("localhost"))?;
    /// use redis::Commands;
    /// let mut conn = redis.get_redis()?;
    /// let _: () = conn.set("key", "value")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_redis(&self) -> Result<PooledConnection> {
        let pool = self.sync_pool();
        let conn = pool.take()?;
        Ok(PooledConnection { conn: Some(conn), pool })
    }

    /// A sync client handle that borrows a pooled connection for each command (like a
    /// `redis.Redis` over a pool). Implements [`redis::ConnectionLike`], so every
    /// `redis::Commands` method works on it.
    ///
    /// ```no_run
    /// # let redis = dtrsfw::redis::RedisInstance::new(dtrsfw::redis::RedisConfig::new().set_redis_host("localhost"))?;
    /// use redis::Commands;
    /// let mut client = redis.get_redis_client();
    /// let value: Option<String> = client.get("key")?;
    /// println!("{value:?}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_redis_client(&self) -> RedisClient {
        RedisClient {
            instance: self.clone(),
            db: self.inner.connector.db,
        }
    }

    /// Drops the sync pool: idle connections close now, lent ones when returned. The next
    /// borrow creates a fresh pool.
    pub fn reset_sync_pool(&self) {
        if let Some(pool) = self.inner.sync_pool.write().unwrap_or_else(|e| e.into_inner()).take() {
            pool.clear();
        }
    }

    /// The shared async client, connecting on first use. It multiplexes every task's
    /// commands over one connection and reconnects by itself after a server restart.
    ///
    /// Opening it takes at most the connect timeout
    /// ([`RedisConfig::set_redis_socket_connect_timeout`]); tasks that ask while it is
    /// being opened wait for that same connect and get its result (none waits out
    /// another's failure). A failed connect is not remembered: the next call tries again.
    ///
    /// ```no_run
    /// # async fn f(redis: dtrsfw::redis::RedisInstance) -> Result<(), Box<dyn std::error::Error>> {
    /// use redis::AsyncCommands;
    /// let mut client = redis.get_async_redis_client().await?;
    /// let _: () = client.set("key", "value").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_async_redis_client(&self) -> Result<AsyncRedisClient> {
        self.inner
            .shared
            .get_or_connect(|| {
                // Cloned only when a connect starts, not on every call.
                let connector = self.inner.connector.clone();
                async move {
                    let inner = connector.connect_shared().await?;
                    Ok(AsyncRedisClient {
                        inner,
                        retry_on_timeout: connector.retry_on_timeout,
                    })
                }
            })
            .await
    }

    /// The async twin of [`get_redis`](Self::get_redis): a handle on the shared
    /// multiplexed connection. Dropping it is all the cleanup there is.
    pub async fn get_async_redis(&self) -> Result<AsyncRedisClient> {
        self.get_async_redis_client().await
    }

    /// Forgets the shared async connection; it closes once no handle uses it, and the next
    /// call connects anew (a connect under way is forgotten too).
    pub async fn reset_async_pool(&self) {
        self.inner.shared.reset();
    }

    /// Whether this instance talks to a Redis Cluster (a `redis+cluster://` URL).
    pub fn is_cluster(&self) -> bool {
        self.inner.connector.is_cluster()
    }

    /// A dedicated async connection for commands that block on the server
    /// (`XREADGROUP ... BLOCK`, `BLPOP`): its response timeout is the socket timeout plus
    /// `block`, so a long block neither times out early nor holds up the shared
    /// connection's other users. On a cluster it is a cluster connection of its own,
    /// which sends each command to the node owning its key (a single-key blocking read
    /// therefore blocks on that node only).
    pub async fn get_async_blocking_connection(&self, block: Duration) -> Result<AsyncBlockingConnection> {
        let connector = &self.inner.connector;
        let response_timeout = connector.response_timeout + block;
        let inner = match &connector.target {
            Target::Single(client) => AsyncBlockingInner::Single(
                client
                    .get_multiplexed_async_connection_with_config(&connector.async_config(response_timeout))
                    .await
                    .map_err(|e| Error::redis("connecting to redis", e))?,
            ),
            Target::Cluster(client) => AsyncBlockingInner::Cluster(
                client
                    .get_async_connection_with_config(connector.cluster_config(response_timeout))
                    .await
                    .map_err(|e| Error::redis("connecting to the redis cluster", e))?,
            ),
        };
        Ok(AsyncBlockingConnection { inner })
    }

    /// A connection outside the pool whose connect (handshake included) and response
    /// timeouts are both `timeout`: the cache's short-timeout connections.
    pub(crate) fn get_connection_with_timeout(&self, timeout: Duration) -> Result<SyncConnection> {
        self.inner.connector.connect_sync_with_timeouts(timeout, timeout)
    }

    /// The sync twin of [`get_async_blocking_connection`](Self::get_async_blocking_connection):
    /// a connection outside the pool whose read timeout is the socket timeout plus `block`.
    pub fn get_blocking_connection(&self, block: Duration) -> Result<SyncConnection> {
        let connector = &self.inner.connector;
        connector.connect_sync_with_response_timeout(connector.response_timeout + block)
    }
}

/// A sync connection: to one server (a [`redis::Connection`]) or to a cluster (a
/// [`redis::cluster::ClusterConnection`], which routes each command by its key).
/// Implements [`redis::ConnectionLike`], so every `redis::Commands` method and
/// `redis::cmd(..).query(&mut conn)` work on it alike.
pub struct SyncConnection {
    inner: SyncInner,
}

enum SyncInner {
    Single(redis::Connection),
    // Boxed: a cluster connection (a connection per node plus the slot map) is much
    // larger than a one-server connection.
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl fmt::Debug for SyncConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncConnection")
            .field("cluster", &self.is_cluster())
            .finish_non_exhaustive()
    }
}

impl SyncConnection {
    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner, SyncInner::Cluster(_))
    }

    /// The one-server connection, or `None` on a cluster: for the rare API that needs a
    /// [`redis::Connection`] itself.
    pub fn as_single_mut(&mut self) -> Option<&mut redis::Connection> {
        match &mut self.inner {
            SyncInner::Single(conn) => Some(conn),
            SyncInner::Cluster(_) => None,
        }
    }

    /// Sets the read timeout (of every node's socket, on a cluster); `None` waits forever.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        match &self.inner {
            SyncInner::Single(conn) => conn.set_read_timeout(timeout),
            SyncInner::Cluster(conn) => conn.set_read_timeout(timeout),
        }
        .map_err(|e| Error::redis("setting the read timeout", e))
    }

    /// Sets the write timeout (of every node's socket, on a cluster); `None` waits forever.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        match &self.inner {
            SyncInner::Single(conn) => conn.set_write_timeout(timeout),
            SyncInner::Cluster(conn) => conn.set_write_timeout(timeout),
        }
        .map_err(|e| Error::redis("setting the write timeout", e))
    }
}

impl redis::ConnectionLike for SyncConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<Value> {
        match &mut self.inner {
            SyncInner::Single(conn) => conn.req_packed_command(cmd),
            SyncInner::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> redis::RedisResult<Vec<Value>> {
        match &mut self.inner {
            SyncInner::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            SyncInner::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        match &mut self.inner {
            SyncInner::Single(conn) => conn.req_command(cmd),
            // The cluster connection routes a `Cmd` by its key (and fans out keyless
            // commands such as PING to every primary); keep that path.
            SyncInner::Cluster(conn) => conn.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            SyncInner::Single(conn) => conn.get_db(),
            SyncInner::Cluster(conn) => conn.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match &mut self.inner {
            SyncInner::Single(conn) => conn.check_connection(),
            SyncInner::Cluster(conn) => redis::ConnectionLike::check_connection(conn),
        }
    }

    fn is_open(&self) -> bool {
        match &self.inner {
            SyncInner::Single(conn) => conn.is_open(),
            SyncInner::Cluster(conn) => conn.is_open(),
        }
    }
}

/// A connection borrowed from the sync pool; returned to it on `Drop` (discarded
/// instead if it broke). Implements [`redis::ConnectionLike`], so `redis::Commands`
/// methods and `cmd.query(&mut conn)` work on it directly; then, like every client of
/// the instance, a command that is safe to repeat is retried once, on a fresh connection,
/// after a timeout or a lost connection (see [`RedisConfig::set_redis_retry_on_timeout`]).
///
/// It also dereferences to the [`SyncConnection`] (one server or a cluster) for its
/// `&self` methods; [`connection_mut`](Self::connection_mut) lends it by `&mut`, without
/// that retry. (It implements `Deref` but not `DerefMut`: redis-rs would otherwise see
/// the connection, not the guard, and bypass the retry.)
pub struct PooledConnection {
    conn: Option<SyncConnection>,
    pool: Arc<SyncPool>,
}

impl fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection").field("pool", &self.pool).finish()
    }
}

impl std::ops::Deref for PooledConnection {
    type Target = SyncConnection;
    fn deref(&self) -> &SyncConnection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl PooledConnection {
    /// The connection itself, for what needs a [`SyncConnection`] by `&mut` (such as
    /// [`SyncConnection::as_single_mut`]). Commands sent through it are not retried.
    pub fn connection_mut(&mut self) -> &mut SyncConnection {
        self.conn.as_mut().expect("connection present until drop")
    }

    /// Runs `f`; when it fails in a way that may mean no answer came and `retry` holds,
    /// replaces the connection with a fresh one and runs `f` once more. The failed
    /// connection is closed, never reused: after a timeout its late reply could still
    /// arrive and be taken for the next command's.
    fn run<T>(
        &mut self,
        retry: bool,
        mut f: impl FnMut(&mut SyncConnection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        match f(self.connection_mut()) {
            Err(e) if retry && is_retryable_failure(&e) => {
                tracing::warn!(error = %e, "retrying a command that is safe to repeat, on a fresh connection");
                let fresh = self.pool.connect_replacement().map_err(|e| to_redis_error(&e))?;
                // The old one is dropped here: its place in the pool's count is the fresh one's.
                self.conn = Some(fresh);
                f(self.connection_mut())
            }
            other => other,
        }
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }
}

impl redis::ConnectionLike for PooledConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<Value> {
        let retry = may_retry(self.pool.retry_on_timeout(), packed_command_name(cmd));
        self.run(retry, |conn| conn.req_packed_command(cmd))
    }

    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> redis::RedisResult<Vec<Value>> {
        // A pipeline mixes commands; it is not retried as a whole.
        self.run(false, |conn| conn.req_packed_commands(cmd, offset, count))
    }

    fn req_command(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        // Through the `Cmd` (not its packed bytes) so that a cluster connection can route
        // it; a one-server connection packs it as before.
        let retry = may_retry(self.pool.retry_on_timeout(), command_name(cmd));
        self.run(retry, |conn| conn.req_command(cmd))
    }

    fn get_db(&self) -> i64 {
        (**self).get_db()
    }

    fn check_connection(&mut self) -> bool {
        self.connection_mut().check_connection()
    }

    fn is_open(&self) -> bool {
        (**self).is_open()
    }
}

/// The sync client handle: each command borrows a pooled connection. See
/// [`RedisInstance::get_redis_client`].
#[derive(Clone)]
pub struct RedisClient {
    instance: RedisInstance,
    db: i64,
}

impl fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClient").field("instance", &self.instance).finish()
    }
}

impl RedisClient {
    fn borrow(&self) -> redis::RedisResult<PooledConnection> {
        self.instance.get_redis().map_err(|e| to_redis_error(&e))
    }
}

/// Our pool errors travel through redis-rs's `ConnectionLike` as I/O errors, keeping
/// their message.
fn to_redis_error(err: &Error) -> redis::RedisError {
    let kind = if err.is_timeout() {
        std::io::ErrorKind::TimedOut
    } else {
        std::io::ErrorKind::Other
    };
    std::io::Error::new(kind, err.to_string()).into()
}

/// Each command borrows a pooled connection, whose retry of safe commands it shares.
impl redis::ConnectionLike for RedisClient {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<Value> {
        self.borrow()?.req_packed_command(cmd)
    }

    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> redis::RedisResult<Vec<Value>> {
        self.borrow()?.req_packed_commands(cmd, offset, count)
    }

    fn req_command(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        self.borrow()?.req_command(cmd)
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        self.borrow().is_ok_and(|mut conn| conn.check_connection())
    }

    fn is_open(&self) -> bool {
        true
    }
}

/// The async client: a handle on the instance's shared multiplexed connection. Cheap to
/// clone; implements [`redis::aio::ConnectionLike`], so `redis::AsyncCommands` work on it.
/// Safe commands are retried once after a timeout or a lost connection when
/// `retry_on_timeout` is on (see [`RedisConfig::set_redis_retry_on_timeout`]).
///
/// On a cluster it wraps redis-rs's async cluster connection: commands go to the node
/// owning their key, redirections and failovers are followed by redis-rs.
#[derive(Clone)]
pub struct AsyncRedisClient {
    inner: AsyncInner,
    retry_on_timeout: bool,
}

#[derive(Clone)]
enum AsyncInner {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl AsyncInner {
    fn as_dyn(&mut self) -> &mut (dyn redis::aio::ConnectionLike + Send) {
        match self {
            AsyncInner::Single(conn) => conn,
            AsyncInner::Cluster(conn) => conn,
        }
    }
}

impl fmt::Debug for AsyncRedisClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRedisClient")
            .field("cluster", &self.is_cluster())
            .field("retry_on_timeout", &self.retry_on_timeout)
            .finish_non_exhaustive()
    }
}

impl AsyncRedisClient {
    /// Whether this client talks to a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner, AsyncInner::Cluster(_))
    }
}

impl redis::aio::ConnectionLike for AsyncRedisClient {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match self.inner.as_dyn().req_packed_command(cmd).await {
                Err(e) if is_retryable_failure(&e) && may_retry(self.retry_on_timeout, command_name(cmd)) => {
                    tracing::warn!(error = %e, "retrying a command that is safe to repeat");
                    self.inner.as_dyn().req_packed_command(cmd).await
                }
                other => other,
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.inner.as_dyn().req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            AsyncInner::Single(conn) => conn.get_db(),
            AsyncInner::Cluster(conn) => conn.get_db(),
        }
    }
}

/// A dedicated async connection for blocking reads, from
/// [`RedisInstance::get_async_blocking_connection`]: a multiplexed connection to one
/// server, or a cluster connection of its own. Implements
/// [`redis::aio::ConnectionLike`]; cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct AsyncBlockingConnection {
    inner: AsyncBlockingInner,
}

#[derive(Clone)]
enum AsyncBlockingInner {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl fmt::Debug for AsyncBlockingConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncBlockingConnection")
            .field("cluster", &matches!(self.inner, AsyncBlockingInner::Cluster(_)))
            .finish_non_exhaustive()
    }
}

impl AsyncBlockingConnection {
    fn as_dyn(&mut self) -> &mut (dyn redis::aio::ConnectionLike + Send) {
        match &mut self.inner {
            AsyncBlockingInner::Single(conn) => conn,
            AsyncBlockingInner::Cluster(conn) => conn,
        }
    }
}

impl redis::aio::ConnectionLike for AsyncBlockingConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.as_dyn().req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.as_dyn().req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            AsyncBlockingInner::Single(conn) => conn.get_db(),
            AsyncBlockingInner::Cluster(conn) => conn.get_db(),
        }
    }
}

/// One node of a cluster, by address: for the few commands that must run on every
/// primary (a `SCAN` cursor belongs to one node). redis-rs sends the command there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NodeAddr {
    host: String,
    port: u16,
}

impl NodeAddr {
    fn routing(&self) -> RoutingInfo {
        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: self.host.clone(),
            port: self.port,
        })
    }
}

/// The primaries in a `CLUSTER SLOTS` reply (`[[start, end, [host, port, id], replicas...], ...]`),
/// each once.
fn primaries_from_slots(reply: &Value) -> Vec<NodeAddr> {
    let Value::Array(ranges) = reply else {
        return Vec::new();
    };
    let mut nodes: Vec<NodeAddr> = ranges
        .iter()
        .filter_map(|range| {
            let Value::Array(range) = range else { return None };
            let Some(Value::Array(primary)) = range.get(2) else {
                return None;
            };
            let host = match primary.first()? {
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                Value::SimpleString(s) => s.clone(),
                _ => return None,
            };
            let port = match primary.get(1)? {
                Value::Int(p) => u16::try_from(*p).ok()?,
                _ => return None,
            };
            Some(NodeAddr { host, port })
        })
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

const NOT_A_CLUSTER: &str = "a node address given for a one-server connection";

impl AsyncRedisClient {
    /// Where to run a per-node command such as `SCAN`: `[None]` (the server) for one
    /// server, every primary for a cluster.
    pub(crate) async fn scan_targets(&mut self) -> redis::RedisResult<Vec<Option<NodeAddr>>> {
        match &mut self.inner {
            AsyncInner::Single(_) => Ok(vec![None]),
            AsyncInner::Cluster(conn) => {
                let reply: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
                Ok(primaries_from_slots(&reply).into_iter().map(Some).collect())
            }
        }
    }

    /// Runs `cmd` on `node` (a primary from [`scan_targets`](Self::scan_targets)).
    pub(crate) async fn query_on<T: redis::FromRedisValue>(
        &mut self,
        node: Option<&NodeAddr>,
        cmd: &Cmd,
    ) -> redis::RedisResult<T> {
        match (&mut self.inner, node) {
            (AsyncInner::Cluster(conn), Some(node)) => {
                let value = conn.route_command(cmd.clone(), node.routing()).await?;
                Ok(redis::from_redis_value(value)?)
            }
            (AsyncInner::Single(_), Some(_)) => Err((redis::ErrorKind::InvalidClientConfig, NOT_A_CLUSTER).into()),
            (_, None) => cmd.query_async(self).await,
        }
    }
}

impl SyncConnection {
    /// The sync twin of [`AsyncRedisClient::scan_targets`].
    pub(crate) fn scan_targets(&mut self) -> redis::RedisResult<Vec<Option<NodeAddr>>> {
        match &mut self.inner {
            SyncInner::Single(_) => Ok(vec![None]),
            SyncInner::Cluster(conn) => {
                let reply: Value = redis::cmd("CLUSTER").arg("SLOTS").query(conn)?;
                Ok(primaries_from_slots(&reply).into_iter().map(Some).collect())
            }
        }
    }

    /// The sync twin of [`AsyncRedisClient::query_on`].
    pub(crate) fn query_on<T: redis::FromRedisValue>(
        &mut self,
        node: Option<&NodeAddr>,
        cmd: &Cmd,
    ) -> redis::RedisResult<T> {
        match (&mut self.inner, node) {
            (SyncInner::Cluster(conn), Some(node)) => {
                let value = conn.route_command(cmd, node.routing())?;
                Ok(redis::from_redis_value(value)?)
            }
            (SyncInner::Single(_), Some(_)) => Err((redis::ErrorKind::InvalidClientConfig, NOT_A_CLUSTER).into()),
            (_, None) => cmd.query(self),
        }
    }
}

/// Runs `f` and maps "took longer than `limit`" to a timeout error naming `what`.
pub(crate) async fn with_deadline<T>(limit: Duration, what: &str, f: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(result) => result,
        Err(_) => Err(Error::timeout(format!("{what} took longer than {limit:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_name_is_read_from_packed_bytes() {
        let packed = redis::cmd("get").arg("k").get_packed_command();
        assert_eq!(packed_command_name(&packed), Some(&b"get"[..]));
        assert!(is_safe_to_retry(b"get"));
        assert!(!is_safe_to_retry(b"XADD"));
    }

    #[test]
    fn cluster_primaries_are_read_from_cluster_slots_once_each() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let range = |start: i64, end: i64, primary: Value, replica: Value| {
            Value::Array(vec![Value::Int(start), Value::Int(end), primary, replica])
        };
        let reply = Value::Array(vec![
            range(0, 100, node("10.0.0.1", 7000), node("10.0.0.4", 7003)),
            range(101, 200, node("10.0.0.2", 7001), node("10.0.0.5", 7004)),
            range(201, 300, node("10.0.0.1", 7000), node("10.0.0.4", 7003)),
        ]);
        let ports: Vec<u16> = primaries_from_slots(&reply).iter().map(|n| n.port).collect();
        assert_eq!(ports, [7000, 7001]);
        assert!(primaries_from_slots(&Value::Nil).is_empty());
    }

    #[test]
    fn cluster_urls_give_one_seed_url_per_node_with_shared_credentials() {
        assert!(is_cluster_url("redis+cluster://a:1"));
        assert!(is_cluster_url("rediss+cluster://a:1"));
        assert!(!is_cluster_url("redis://a:1"));
        assert_eq!(
            cluster_seed_urls("redis+cluster://u:p%40@a:7000, b:7001,").unwrap(),
            ["redis://u:p%40@a:7000", "redis://u:p%40@b:7001"]
        );
        assert_eq!(
            cluster_seed_urls("rediss+cluster://a:7000/0").unwrap(),
            ["rediss://a:7000"]
        );
        let err = cluster_seed_urls("redis+cluster://a:7000/2").unwrap_err();
        assert!(
            err.is_configuration() && err.to_string().contains("database 0"),
            "{err}"
        );
        let err = cluster_seed_urls("redis+cluster://u:secret@").unwrap_err();
        assert!(err.to_string().contains("no seed"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    /// Every configuration error of `url`, as shown (Display and Debug).
    fn config_error_text(url: &str) -> String {
        let err = RedisInstance::new(RedisConfig::new().set_redis_url(url)).expect_err(url);
        assert!(err.is_configuration(), "{err}");
        format!("{err} {err:?}")
    }

    #[test]
    fn malformed_urls_are_rejected_without_quoting_their_credentials() {
        let cases = [
            ("redis://admin:hun#ter2@127.0.0.1:6399/0", ["admin", "hun#ter2"]),
            ("redis+cluster://user:p#ss@h1:1,h2:2", ["user", "p#ss"]),
            ("redis+cluster://user:pa/ssw0rd@h1:1,h2:2/0", ["user", "ssw0rd"]),
            ("rediss://u:p/ss@host:1/0", ["u:p", "p/ss"]),
            ("rediss+cluster://usr:pw/s3cr3t@h1:1", ["usr", "s3cr3t"]),
            // redis-rs quotes an unknown protocol value in its error detail.
            ("redis://h:1/0?protocol=secr3t-pw", ["secr3t-pw", "secr3t-pw"]),
        ];
        for (url, secrets) in cases {
            let text = config_error_text(url);
            for secret in secrets {
                assert!(!text.contains(secret), "{url}: {secret:?} leaked in {text}");
            }
            assert!(text.contains("redis_url"), "{text}");
        }
    }

    #[test]
    fn a_cluster_database_other_than_0_is_named_without_quoting_the_path() {
        let text = config_error_text("redis+cluster://h1:1,h2:2/3");
        assert!(text.contains("only database 0, not 3"), "{text}");
        let text = config_error_text("redis+cluster://h1:1/not-a-db-pw");
        assert!(
            text.contains("only database 0") && !text.contains("not-a-db-pw"),
            "{text}"
        );
    }

    #[test]
    fn percent_encoding_matches_python_quote_with_no_safe_chars() {
        assert_eq!(percent_encode("a@b:c/d#e%f+g h~"), "a%40b%3Ac%2Fd%23e%25f%2Bg%20h~");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }
}
