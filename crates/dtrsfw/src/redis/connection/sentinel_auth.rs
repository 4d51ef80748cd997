//! The Sentinels' own credentials in a `redis+sentinel://` URL: the query parameters
//! `sentinel_username` and `sentinel_password` (percent-encoded). The URL's user-info
//! (`user:pass@`) is for the data nodes; a Sentinel with `requirepass` (or ACL users) in
//! its `sentinel.conf` needs its own, often different, password.

use std::fmt;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisResult};

/// What to authenticate to the Sentinels with; `Debug` shows no password.
#[derive(Clone, Default, PartialEq)]
pub(super) struct SentinelAuth {
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
}

impl fmt::Debug for SentinelAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl SentinelAuth {
    /// Reads the URL's query (without the `?`). The problem, if any, quotes no value.
    pub(super) fn from_query(query: &str) -> Result<Self, String> {
        let mut auth = SentinelAuth::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "sentinel_username" => &mut auth.username,
                "sentinel_password" => &mut auth.password,
                _ => return Err(unknown_parameter(key)),
            };
            let value = percent_decode(value).ok_or_else(|| format!("{key} is not valid percent-encoded UTF-8"))?;
            *slot = Some(value).filter(|v| !v.is_empty());
        }
        Ok(auth)
    }

    /// How to reach the Sentinel at `addr` with these credentials.
    pub(super) fn connection_info(&self, addr: ConnectionAddr) -> RedisResult<ConnectionInfo> {
        let mut settings = redis::RedisConnectionInfo::default();
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        Ok(addr.into_connection_info()?.set_redis_settings(settings))
    }
}

/// An unknown parameter, named only when it looks like a name (a malformed query could
/// put a secret where the name is).
fn unknown_parameter(key: &str) -> String {
    let expected = "expected sentinel_username, sentinel_password";
    if !key.is_empty() && key.len() <= 40 && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        format!("unknown query parameter {key:?} ({expected})")
    } else {
        format!("an unknown query parameter ({expected})")
    }
}

/// `%XX` escapes decoded (`+` stays `+`, as Python's `quote(safe="")` writes a space as
/// `%20`); `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_credentials_come_from_the_query_percent_decoded() {
        let auth = SentinelAuth::from_query("sentinel_username=ops&sentinel_password=p%40ss%26w%2Bd+x").unwrap();
        assert_eq!(auth.username.as_deref(), Some("ops"));
        assert_eq!(auth.password.as_deref(), Some("p@ss&w+d+x"));
        assert_eq!(SentinelAuth::from_query("").unwrap(), SentinelAuth::default());
        assert!(!format!("{auth:?}").contains("p@ss"));
        let info = auth.connection_info(ConnectionAddr::Tcp("s1".into(), 26379)).unwrap();
        assert_eq!(info.redis_settings().password(), Some("p@ss&w+d+x"));
    }

    #[test]
    fn a_bad_query_is_named_without_its_values() {
        let unknown = SentinelAuth::from_query("sentinel_pasword=hunter2").unwrap_err();
        assert!(
            unknown.contains("\"sentinel_pasword\"") && !unknown.contains("hunter2"),
            "{unknown}"
        );
        let odd = SentinelAuth::from_query("hunter2!").unwrap_err();
        assert!(
            odd.contains("an unknown query parameter") && !odd.contains("hunter2"),
            "{odd}"
        );
        let escape = SentinelAuth::from_query("sentinel_password=hun%zzter2").unwrap_err();
        assert!(
            escape.contains("sentinel_password is not valid") && !escape.contains("hun"),
            "{escape}"
        );
        assert!(SentinelAuth::from_query("sentinel_password=%ff").is_err());
        assert!(SentinelAuth::from_query("sentinel_password=%4").is_err());
    }
}
