//! Reading a [`RedisConfig`] from the process environment (`REDIS_*`), as the Python
//! package does.

use super::RedisConfig;
use crate::redis::error::{Error, Result};

impl RedisConfig {
    /// Reads `REDIS_URL`; where it is unset or empty, `REDIS_HOST`, `REDIS_PORT`,
    /// `REDIS_DB`, `REDIS_USERNAME`, `REDIS_PASSWORD` and `REDIS_SSL` (`true`/`1`/`yes`).
    ///
    /// # Errors
    ///
    /// A configuration error naming the variable when `REDIS_PORT` is not a number or
    /// `REDIS_SSL` is not a boolean.
    ///
    /// ```
    /// # use dtrsfw::redis::RedisConfig;
    /// // With nothing set, the result is an empty configuration.
    /// let config = RedisConfig::from_env()?;
    /// println!("{config:?}"); // credentials masked
    /// # Ok::<(), dtrsfw::redis::Error>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`from_env`](Self::from_env) over any variable lookup (used by tests, which must
    /// not mutate the process environment while other tests run).
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut config = RedisConfig::new();
        if let Some(url) = lookup("REDIS_URL") {
            return Ok(config.set_redis_url(url));
        }
        if let Some(host) = lookup("REDIS_HOST") {
            config = config.set_redis_host(host);
        }
        if let Some(port) = lookup("REDIS_PORT") {
            let port = port
                .trim()
                .parse::<u32>()
                .map_err(|_| Error::config("REDIS_PORT", format!("{port:?} is not a port number")))?;
            config = config.set_redis_port(port);
        }
        if let Some(db) = lookup("REDIS_DB") {
            config = config.set_redis_db(db);
        }
        if let Some(username) = lookup("REDIS_USERNAME") {
            config = config.set_redis_username(username);
        }
        if let Some(password) = lookup("REDIS_PASSWORD") {
            config = config.set_redis_password(password);
        }
        if let Some(ssl) = lookup("REDIS_SSL") {
            let ssl = match ssl.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err(Error::config("REDIS_SSL", format!("{ssl:?} is not a boolean"))),
            };
            config = config.set_redis_ssl(ssl);
        }
        Ok(config)
    }
}
