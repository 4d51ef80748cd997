//! `RedisConfig`: the connection settings, as a chainable builder, and their defaults.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::redact::redact_url;

/// Default pool size (`redis_max_connections`), as in the Python package.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10;
/// Default response timeout (`redis_socket_timeout`).
pub const DEFAULT_SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
/// Default connect timeout (`redis_socket_connect_timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default idle time after which a pooled connection is PINGed before reuse.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(15);

/// Connection settings for a [`RedisInstance`](crate::redis::RedisInstance).
///
/// ```
/// use dtrsfw::redis::RedisConfig;
///
/// let config = RedisConfig::new()
///     .set_redis_host("localhost")
///     .set_redis_port(6379)
///     .set_redis_db("0")
///     .set_redis_password("secret")
///     .set_redis_ssl(false);
/// assert_eq!(config.redis_port(), Some(6379));
/// // Secrets never show in Debug output.
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RedisConfig {
    url: Option<String>,
    host: Option<String>,
    port: Option<u32>,
    db: Option<String>,
    username: Option<String>,
    password: Option<String>,
    ssl: bool,
    ssl_ca_certs: Option<PathBuf>,
    max_connections: Option<usize>,
    socket_timeout: Option<Duration>,
    socket_connect_timeout: Option<Duration>,
    socket_keepalive: Option<bool>,
    health_check_interval: Option<Duration>,
    retry_on_timeout: Option<bool>,
}

/// A configuration value returned by [`RedisConfig::get`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigValue {
    /// A text value (URL, host, db, username, password).
    Text(String),
    /// A whole number (port, pool size).
    Integer(u64),
    /// A flag.
    Bool(bool),
    /// A duration, in the config as seconds in the Python package.
    Duration(Duration),
}

impl RedisConfig {
    /// An empty configuration: every option at its default.
    #[must_use]
    pub fn new() -> Self {
        RedisConfig::default()
    }

    /// Full Redis URL (`redis://`, `rediss://`, `unix://`); when set it overrides host,
    /// port, db, username and password. Its scheme decides TLS: `rediss://` connects with
    /// TLS whatever [`set_redis_ssl`](Self::set_redis_ssl) says, and `set_redis_ssl(true)`
    /// with a plain URL is rejected by `RedisInstance::new` (never a silent downgrade).
    ///
    /// Credentials in the URL must be percent-encoded, as in any URL (`p%40ss` for `p@ss`;
    /// a `unix://` socket takes them as `?user=..&pass=..`). Valid URL or not, they are
    /// masked wherever the URL is shown (errors, `Debug`, `Display`, logs): everything
    /// between `scheme://` and the last `@`, and any query, becomes `***`.
    ///
    /// A Redis Cluster (or Valkey cluster) is a URL with the scheme `redis+cluster://`
    /// (`rediss+cluster://` for TLS) and a comma-separated list of seed nodes:
    /// `redis+cluster://[user:password@]host1:port1,host2:port2`. The seeds only bootstrap:
    /// the client discovers every node from them, so one live seed is enough. Being a URL,
    /// it also comes from `REDIS_URL` in [`from_env`](Self::from_env). By default, none.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_redis_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Server host name or address. By default, none (a host or a URL is required).
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_redis_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Server port, 1 to 65535 (wider type so a bad value is reported, not truncated).
    /// By default, 6379.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_redis_port(mut self, port: u32) -> Self {
        self.port = Some(port);
        self
    }

    /// Database index, as text like the Python package (`"0"`). By default, `"0"`.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_redis_db(mut self, db: impl Into<String>) -> Self {
        self.db = Some(db.into());
        self
    }

    /// ACL user name. By default, none.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_redis_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Password (`AUTH`). Never printed. By default, none.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_redis_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Use TLS (`rediss://`). With [`set_redis_url`](Self::set_redis_url) the URL's scheme
    /// decides, and `true` with a plain `redis://` URL is an error. By default, `false`.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_redis_ssl(mut self, ssl: bool) -> Self {
        self.ssl = ssl;
        self
    }

    /// PEM file of the certificate authority that signed the server's certificate, for
    /// servers not trusted by the system store. By default, the system's trust store.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_redis_ssl_ca_certs(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssl_ca_certs = Some(path.into());
        self
    }

    /// Most connections the sync pool holds at once; a borrower waits at most the
    /// connect timeout for one to come back. By default, 10.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_redis_max_connections(mut self, max_connections: usize) -> Self {
        self.max_connections = Some(max_connections);
        self
    }

    /// Longest wait for a reply to a command. By default, 5 seconds.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_redis_socket_timeout(mut self, timeout: Duration) -> Self {
        self.socket_timeout = Some(timeout);
        self
    }

    /// Longest wait to establish a connection. By default, 5 seconds.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_redis_socket_connect_timeout(mut self, timeout: Duration) -> Self {
        self.socket_connect_timeout = Some(timeout);
        self
    }

    /// TCP keepalive (first probe after 15 s idle, then every 5 s, 3 probes — as the
    /// Python package, so proxies that drop idle connections are noticed). By default,
    /// `true`.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_redis_socket_keepalive(mut self, keepalive: bool) -> Self {
        self.socket_keepalive = Some(keepalive);
        self
    }

    /// A pooled sync connection idle for longer than this is PINGed before it is handed
    /// out, and replaced if the PING fails. By default, 15 seconds.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_redis_health_check_interval(mut self, interval: Duration) -> Self {
        self.health_check_interval = Some(interval);
        self
    }

    /// Retry once, on a fresh connection, a command that timed out or lost its connection
    /// — only for commands that are safe to repeat (reads such as `GET`, `PING`,
    /// `XRANGE`, `XINFO`, `XPENDING`, `SCAN`, and idempotent writes such as `SET`,
    /// `DEL`, `XACK`; never `XADD`, `INCR` or `XREADGROUP`). By default, `true`.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_redis_retry_on_timeout(mut self, retry: bool) -> Self {
        self.retry_on_timeout = Some(retry);
        self
    }

    /// The URL, if one was set.
    #[must_use]
    pub fn redis_url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The host, if one was set.
    #[must_use]
    pub fn redis_host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The port, if one was set.
    #[must_use]
    pub fn redis_port(&self) -> Option<u32> {
        self.port
    }

    /// The database, if one was set.
    #[must_use]
    pub fn redis_db(&self) -> Option<&str> {
        self.db.as_deref()
    }

    /// The user name, if one was set.
    #[must_use]
    pub fn redis_username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password, if one was set.
    #[must_use]
    pub fn redis_password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Whether TLS was requested.
    #[must_use]
    pub fn redis_ssl(&self) -> bool {
        self.ssl
    }

    /// The CA file, if one was set.
    #[must_use]
    pub fn redis_ssl_ca_certs(&self) -> Option<&std::path::Path> {
        self.ssl_ca_certs.as_deref()
    }

    /// Pool size, default applied.
    #[must_use]
    pub fn redis_max_connections(&self) -> usize {
        self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS)
    }

    /// Response timeout, default applied.
    #[must_use]
    pub fn redis_socket_timeout(&self) -> Duration {
        self.socket_timeout.unwrap_or(DEFAULT_SOCKET_TIMEOUT)
    }

    /// Connect timeout, default applied.
    #[must_use]
    pub fn redis_socket_connect_timeout(&self) -> Duration {
        self.socket_connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    /// TCP keepalive, default applied.
    #[must_use]
    pub fn redis_socket_keepalive(&self) -> bool {
        self.socket_keepalive.unwrap_or(true)
    }

    /// Health-check interval, default applied.
    #[must_use]
    pub fn redis_health_check_interval(&self) -> Duration {
        self.health_check_interval.unwrap_or(DEFAULT_HEALTH_CHECK_INTERVAL)
    }

    /// Retry-on-timeout, default applied.
    #[must_use]
    pub fn redis_retry_on_timeout(&self) -> bool {
        self.retry_on_timeout.unwrap_or(true)
    }

    /// A value by its Python key name (`"redis_host"`, `"redis_port"`, ...), `None` when
    /// the key is unknown or the option was not set (as Python's `get(key, default)`
    /// returns the default). Settings with defaults are reported only when set.
    ///
    /// ```
    /// use dtrsfw::redis::{ConfigValue, RedisConfig};
    ///
    /// let config = RedisConfig::new().set_redis_host("localhost");
    /// assert_eq!(config.get("redis_host"), Some(ConfigValue::Text("localhost".into())));
    /// assert_eq!(config.get("redis_timeout"), None);
    /// ```
    pub fn get(&self, key: &str) -> Option<ConfigValue> {
        let text = |v: &Option<String>| v.clone().map(ConfigValue::Text);
        match key {
            "redis_url" => text(&self.url),
            "redis_host" => text(&self.host),
            "redis_port" => self.port.map(|p| ConfigValue::Integer(p.into())),
            "redis_db" => text(&self.db),
            "redis_username" => text(&self.username),
            "redis_password" => text(&self.password),
            "redis_ssl" => Some(ConfigValue::Bool(self.ssl)),
            "redis_ssl_ca_certs" => self
                .ssl_ca_certs
                .as_ref()
                .map(|p| ConfigValue::Text(p.display().to_string())),
            "redis_max_connections" => self.max_connections.map(|n| ConfigValue::Integer(n as u64)),
            "redis_socket_timeout" => self.socket_timeout.map(ConfigValue::Duration),
            "redis_socket_connect_timeout" => self.socket_connect_timeout.map(ConfigValue::Duration),
            "redis_socket_keepalive" => self.socket_keepalive.map(ConfigValue::Bool),
            "redis_health_check_interval" => self.health_check_interval.map(ConfigValue::Duration),
            "redis_retry_on_timeout" => self.retry_on_timeout.map(ConfigValue::Bool),
            _ => None,
        }
    }
}

/// Credentials are shown as `***`; a URL is shown with its password masked.
impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("RedisConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &masked(&self.username))
            .field("password", &masked(&self.password))
            .field("ssl", &self.ssl)
            .field("ssl_ca_certs", &self.ssl_ca_certs)
            .field("max_connections", &self.max_connections)
            .field("socket_timeout", &self.socket_timeout)
            .field("socket_connect_timeout", &self.socket_connect_timeout)
            .field("socket_keepalive", &self.socket_keepalive)
            .field("health_check_interval", &self.health_check_interval)
            .field("retry_on_timeout", &self.retry_on_timeout)
            .finish()
    }
}
