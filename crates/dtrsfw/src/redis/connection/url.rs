//! URLs: composing the connection URL from a validated configuration, splitting a
//! cluster URL into its seeds, and wording redis-rs's parse errors without quoting
//! credentials.
//!
//! What a valid field is belongs to the configuration ([`RedisConfig::validate`]); this
//! file only turns valid parts into a URL and reads URLs redis-rs is to connect to.

use redis::IntoConnectionInfo;

use crate::redis::config::{CLUSTER_TLS_SCHEME, Endpoint, Parts, RedisConfig, redact_url};
use crate::redis::error::{Error, Result};

/// Builds the URL the way the Python package does (`redis[s]://[user[:pass]@]host:port/db`,
/// credentials percent-encoded), after validating every field. A URL given whole is
/// returned as it is.
pub(super) fn build_url(config: &RedisConfig) -> Result<String> {
    Ok(match config.validate()? {
        Endpoint::Url(url) => url.to_owned(),
        Endpoint::Parts(parts) => compose(&parts),
    })
}

fn compose(parts: &Parts<'_>) -> String {
    let user = parts.username.map(percent_encode);
    let pass = parts.password.map(percent_encode);
    let auth = match (user, pass) {
        (Some(u), Some(p)) => format!("{u}:{p}@"),
        (None, Some(p)) => format!(":{p}@"),
        (Some(u), None) => format!("{u}@"),
        (None, None) => String::new(),
    };
    let scheme = if parts.tls { "rediss" } else { "redis" };
    let host = if parts.host.contains(':') && !parts.host.starts_with('[') {
        format!("[{}]", parts.host) // IPv6 literal
    } else {
        parts.host.to_owned()
    };
    format!("{scheme}://{auth}{host}:{}/{}", parts.port, parts.db)
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

/// The seed nodes of a cluster URL, each as a one-node URL (`redis[s]://[auth@]host:port`)
/// carrying the shared credentials. A cluster has only database 0, so any other is an
/// error rather than silently ignored.
///
/// The credentials end at the last `@`, as in [`redact_url`] (an unencoded `/`, `#` or
/// `?` in them was refused by the configuration's validation already).
pub(super) fn cluster_seed_urls(url: &str) -> Result<Vec<String>> {
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
    check_cluster_db(path)?;
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

/// A cluster URL's path (`/db?...`) names database 0 or none.
fn check_cluster_db(path: &str) -> Result<()> {
    let db = path
        .strip_prefix('/')
        .unwrap_or("")
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    if db.is_empty() || db == "0" {
        return Ok(());
    }
    // Only a number is quoted: anything else may be a piece of a mistyped password.
    let not = match db.parse::<u64>() {
        Ok(n) => format!("not {n}"),
        Err(_) => "and the URL's path is not a database number".to_owned(),
    };
    Err(Error::config(
        "redis_url",
        format!("a cluster has only database 0, {not}"),
    ))
}

/// The error for a URL redis-rs refused. It carries redis-rs's description ("Redis URL
/// did not parse", "Invalid database number", ...) but not its detail, which can quote the
/// input (an unknown `protocol=` value) and so a piece of a mistyped password.
pub(super) fn unparsable_url(what: &str, err: &redis::RedisError) -> Error {
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
pub(super) fn redis_description(err: &redis::RedisError) -> String {
    let text = err.to_string();
    let description = text.split(" - ").next().unwrap_or_default();
    match err.detail() {
        Some(detail) if description.contains(detail) => format!("{:?}", err.kind()),
        _ => description.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::config::is_cluster_url;

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

    #[test]
    fn percent_encoding_matches_python_quote_with_no_safe_chars() {
        assert_eq!(percent_encode("a@b:c/d#e%f+g h~"), "a%40b%3Ac%2Fd%23e%25f%2Bg%20h~");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }
}
