//! What a valid configuration is: the one place that says which values each field may
//! take. [`RedisInstance::new`](crate::redis::RedisInstance::new) asks it before anything
//! else and composes the connection URL from what it returns, so a configuration read
//! from the environment and one built in code fail the same way, naming the field.
//!
//! Whether a URL given whole *parses* is left to the connection layer, which parses it
//! anyway to connect (and words that error without quoting credentials).

use super::RedisConfig;
use super::redact::redact_url;
use crate::redis::error::{Error, Result};

/// The URL scheme of a cluster (a seed list), plain and TLS.
const CLUSTER_SCHEME: &str = "redis+cluster";
/// See [`CLUSTER_SCHEME`].
pub(crate) const CLUSTER_TLS_SCHEME: &str = "rediss+cluster";
const SENTINEL_SCHEME: &str = "redis+sentinel";
pub(crate) const SENTINEL_TLS_SCHEME: &str = "rediss+sentinel";

/// The port when none is set, as the Python package.
const DEFAULT_PORT: u32 = 6379;

/// Whether `url` names a cluster (`redis+cluster://` or `rediss+cluster://`).
pub(crate) fn is_cluster_url(url: &str) -> bool {
    matches!(url.split("://").next(), Some(CLUSTER_SCHEME | CLUSTER_TLS_SCHEME)) && url.contains("://")
}

/// Where a valid configuration says to connect.
/// Whether `url` reaches its primary through Sentinels (`redis+sentinel://`,
/// `rediss+sentinel://`).
pub(crate) fn is_sentinel_url(url: &str) -> bool {
    matches!(url.split("://").next(), Some(SENTINEL_SCHEME | SENTINEL_TLS_SCHEME)) && url.contains("://")
}

#[derive(Debug)]
pub(crate) enum Endpoint<'a> {
    /// A URL given whole, with a supported scheme that agrees with `redis_ssl`.
    Url(&'a str),
    /// The parts of a URL to compose, each checked, defaults applied.
    Parts(Parts<'a>),
}

/// The checked fields of a configuration without a URL.
#[derive(Debug)]
pub(crate) struct Parts<'a> {
    /// A host name or address (an IPv6 literal without brackets).
    pub(crate) host: &'a str,
    /// 1 to 65535.
    pub(crate) port: u32,
    /// A non-negative database index, trimmed.
    pub(crate) db: &'a str,
    /// The user name, if set and not empty (not yet encoded).
    pub(crate) username: Option<&'a str>,
    /// The password, if set and not empty (not yet encoded).
    pub(crate) password: Option<&'a str>,
    /// Whether TLS was requested.
    pub(crate) tls: bool,
}

impl RedisConfig {
    /// Checks every field; the error names the first one that is wrong.
    pub(crate) fn validate(&self) -> Result<Endpoint<'_>> {
        match self.redis_url() {
            Some(url) => validate_url(url, self.redis_ssl()).map(Endpoint::Url),
            None => self.validate_parts().map(Endpoint::Parts),
        }
    }

    fn validate_parts(&self) -> Result<Parts<'_>> {
        let host = self.redis_host().filter(|h| !h.trim().is_empty()).ok_or_else(|| {
            Error::config(
                "redis_host",
                "no host and no URL configured (set_redis_host or set_redis_url)",
            )
        })?;
        if host.contains(['/', '@', '?', '#', ' ']) {
            return Err(Error::config("redis_host", format!("{host:?} is not a host name")));
        }
        let port = self.redis_port().unwrap_or(DEFAULT_PORT);
        if port == 0 || port > 65535 {
            return Err(Error::config("redis_port", format!("{port} is out of range 1..=65535")));
        }
        let db = self.redis_db().unwrap_or("0").trim();
        if db.parse::<u32>().is_err() {
            return Err(Error::config(
                "redis_db",
                format!("{db:?} is not a non-negative database index"),
            ));
        }
        Ok(Parts {
            host,
            port,
            db,
            username: self.redis_username().filter(|u| !u.is_empty()),
            password: self.redis_password().filter(|p| !p.is_empty()),
            tls: self.redis_ssl(),
        })
    }
}

/// A URL's scheme must be one we connect to, and TLS must not be asked of a plain one
/// (never a silent downgrade).
fn validate_url(url: &str, ssl: bool) -> Result<&str> {
    let scheme = url.split("://").next().unwrap_or_default();
    if !url.contains("://")
        || !matches!(
            scheme,
            "redis"
                | "rediss"
                | "unix"
                | "redis+unix"
                | CLUSTER_SCHEME
                | CLUSTER_TLS_SCHEME
                | SENTINEL_SCHEME
                | SENTINEL_TLS_SCHEME
        )
    {
        return Err(Error::config(
            "redis_url",
            format!(
                "unsupported URL {:?}: expected redis://, rediss://, unix://, redis+cluster:// or redis+sentinel://",
                redact_url(url)
            ),
        ));
    }
    if ssl && !matches!(scheme, "rediss" | CLUSTER_TLS_SCHEME | SENTINEL_TLS_SCHEME) {
        return Err(Error::config(
            "redis_ssl",
            "TLS requested but redis_url is not rediss:// (use rediss://, or drop set_redis_ssl)",
        ));
    }
    // In a network URL, a raw `/`, `?` or `#` before the last `@` means credentials that
    // were not percent-encoded: a URL parser would end the authority there and take part
    // of the password for the host, which its errors then quote. Refuse such a URL, naming
    // the rule and nothing of the URL.
    let rest = &url[scheme.len() + 3..];
    if scheme != "unix"
        && scheme != "redis+unix"
        && let Some(at) = rest.rfind('@')
        && rest[..at].contains(['/', '?', '#'])
    {
        return Err(Error::config(
            "redis_url",
            "the credentials contain a raw '/', '?' or '#': percent-encode them (%2F, %3F, %23)",
        ));
    }
    Ok(url)
}
