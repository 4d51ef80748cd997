//! Redis Sentinel: reading a `redis+sentinel://` URL, asking the Sentinels for the current
//! primary (redis-rs's `sentinel` support: `SENTINEL get-master-addr-by-name`, then `ROLE`
//! on the answer, no protocol of our own), and the shared async connection that follows
//! the primary through a failover.
//!
//! Every connection of the instance is opened on the primary the Sentinels name *at that
//! moment*: a pooled or dedicated connection that breaks is replaced by one to the new
//! primary. The shared async connection is [`SentinelShared`]: it forgets its connection
//! on a broken link, a timeout or `READONLY` (a demoted primary), so the next command asks
//! the Sentinels again. (redis-rs's `ConnectionManager`, used for one server, reconnects
//! to the same address: the old primary.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::io::tcp::TcpSettings;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value,
};

use super::sentinel_auth::SentinelAuth;
use super::url::{redis_description, unparsable_url};
use crate::redis::config::{SENTINEL_TLS_SCHEME, redact_url};
use crate::redis::error::{Error, Result};

/// The port of a Sentinel given without one.
const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// A `redis+sentinel://[user:pass@]host1:26379,host2:26379/<service>[/db]
/// [?sentinel_username=u&sentinel_password=p]` URL, read.
#[derive(Debug)]
struct SentinelUrl {
    sentinels: Vec<(String, u16)>,
    service: String,
    /// The data nodes' settings (credentials, database), parsed by redis-rs.
    node: redis::RedisConnectionInfo,
    /// The Sentinels' own credentials (`requirepass` / ACL of `sentinel.conf`).
    sentinel_auth: SentinelAuth,
    tls: bool,
}

/// Reads `url` (its scheme already checked by the configuration). Errors name `redis_url`
/// and quote no credential.
fn parse(url: &str) -> Result<SentinelUrl> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let tls = scheme == SENTINEL_TLS_SCHEME;
    let (auth, after_auth) = match rest.rfind('@') {
        Some(at) => rest.split_at(at + 1),
        None => ("", rest),
    };
    let bad = |problem: &str| Error::config("redis_url", format!("{:?}: {problem}", redact_url(url)));
    let (after_auth, query) = after_auth.split_once('?').unwrap_or((after_auth, ""));
    if after_auth.contains('#') || query.contains('#') {
        return Err(bad("a redis+sentinel URL takes no fragment"));
    }
    let sentinel_auth = SentinelAuth::from_query(query).map_err(|problem| bad(&problem))?;
    let (hosts, path) = after_auth.split_once('/').unwrap_or((after_auth, ""));
    let sentinels = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| sentinel_addr(h).ok_or_else(|| bad(&format!("sentinel {h:?} is not host[:port]"))))
        .collect::<Result<Vec<_>>>()?;
    if sentinels.is_empty() {
        return Err(bad(
            "lists no sentinel (redis+sentinel://host:26379,host:26379/<service>)",
        ));
    }
    let mut parts = path.split('/');
    let service = parts.next().unwrap_or_default();
    if service.is_empty() {
        return Err(bad("names no service (redis+sentinel://host:26379/<service>[/db])"));
    }
    let db = parts.next().filter(|d| !d.is_empty()).unwrap_or("0");
    if db.parse::<u32>().is_err() || parts.next().is_some() {
        return Err(bad("the path after the service must be a database number"));
    }
    // The data nodes' credentials and database, decoded by redis-rs's own URL reader.
    let node_url = format!("redis://{auth}{}:{}/{db}", sentinels[0].0, sentinels[0].1);
    let node = node_url
        .as_str()
        .into_connection_info()
        .map_err(|e| unparsable_url(&format!("{:?}", redact_url(url)), &e))?
        .redis_settings()
        .clone();
    Ok(SentinelUrl {
        sentinels,
        service: service.to_owned(),
        node,
        sentinel_auth,
        tls,
    })
}

fn sentinel_addr(host: &str) -> Option<(String, u16)> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') || name.starts_with('[') => (name, port.parse().ok()?),
        _ => (host, DEFAULT_SENTINEL_PORT),
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    (!name.is_empty() && !name.contains(['@', ' '])).then(|| (name.to_owned(), port))
}

/// The Sentinels of an instance and how to reach the primary they name. Cheap to clone.
#[derive(Clone)]
pub(super) struct SentinelTarget {
    /// redis-rs's client is `&mut` to ask: one per side, each behind its own lock.
    sync: Arc<Mutex<SentinelClient>>,
    aio: Arc<tokio::sync::Mutex<SentinelClient>>,
    db: i64,
    /// The service (master) name, and a plain client per Sentinel, in URL order, for the
    /// questions redis-rs does not ask for us (health: `sentinel_health.rs`).
    pub(super) service: Arc<str>,
    pub(super) sentinels: Arc<[redis::Client]>,
}

impl SentinelTarget {
    /// Reads `url` and builds the clients (no I/O).
    pub(super) fn new(url: &str, tcp: Option<&TcpSettings>, root_cert: Option<&[u8]>) -> Result<Self> {
        let parsed = parse(url)?;
        let db = parsed.node.db();
        let addrs = || {
            parsed.sentinels.iter().map(|(host, port)| match parsed.tls {
                true => ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure: false,
                    tls_params: None,
                },
                false => ConnectionAddr::Tcp(host.clone(), *port),
            })
        };
        let sentinel_client = |addr: ConnectionAddr| {
            let info = parsed.sentinel_auth.connection_info(addr)?;
            match root_cert {
                Some(root) => redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root.to_vec()),
                    },
                ),
                None => redis::Client::open(info),
            }
        };
        let build = || -> RedisResult<SentinelClient> {
            let mut builder = SentinelClientBuilder::new(addrs(), &parsed.service, SentinelServerType::Master)?
                .set_client_to_redis_db(db);
            if let Some(user) = parsed.node.username() {
                builder = builder.set_client_to_redis_username(user);
            }
            if let Some(password) = parsed.node.password() {
                builder = builder.set_client_to_redis_password(password);
            }
            if let Some(user) = &parsed.sentinel_auth.username {
                builder = builder.set_client_to_sentinel_username(user);
            }
            if let Some(password) = &parsed.sentinel_auth.password {
                builder = builder.set_client_to_sentinel_password(password);
            }
            if parsed.tls {
                builder = builder
                    .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                    .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
            }
            if let Some(tcp) = tcp {
                builder = builder
                    .set_client_to_redis_tcp_settings(tcp.clone())
                    .set_client_to_sentinel_tcp_settings(tcp.clone());
            }
            if let Some(root) = root_cert {
                let certs = || redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root.to_vec()),
                };
                builder = builder
                    .set_client_to_redis_certificates(certs())
                    .set_client_to_sentinel_certificates(certs());
            }
            builder.build()
        };
        let client = || build().map_err(|e| Error::config("redis_url", redis_description(&e)));
        let sentinels = addrs()
            .map(sentinel_client)
            .collect::<RedisResult<Arc<[redis::Client]>>>()
            .map_err(|e| Error::config("redis_url", redis_description(&e)))?;
        Ok(SentinelTarget {
            sync: Arc::new(Mutex::new(client()?)),
            aio: Arc::new(tokio::sync::Mutex::new(client()?)),
            db,
            service: parsed.service.as_str().into(),
            sentinels,
        })
    }

    /// The database the connections select.
    pub(super) fn db(&self) -> i64 {
        self.db
    }

    /// A client for the primary the Sentinels name now (sync side).
    pub(super) fn primary(&self) -> Result<redis::Client> {
        let mut client = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        client
            .get_client()
            .map_err(|e| Error::redis("asking the sentinels for the primary", e))
    }

    /// A client for the primary the Sentinels name now (async side), in at most `limit`.
    pub(super) async fn primary_async(&self, limit: Duration) -> Result<redis::Client> {
        // Boxed: redis-rs's sentinel future is deep, and callers nest it in theirs (a
        // consumer's read), past the compiler's layout depth limit.
        let ask = Box::pin(async {
            let mut client = self.aio.lock().await;
            client
                .async_get_client()
                .await
                .map_err(|e| Error::redis("asking the sentinels for the primary", e))
        });
        super::deadline::with_deadline(limit, "asking the sentinels for the primary", ask).await
    }
}

/// The shared async connection under Sentinel: a multiplexed connection to the current
/// primary, dropped on a broken link, a timeout or `READONLY`, and opened again on the
/// primary the Sentinels name then. Cheap to clone (clones share it).
#[derive(Clone)]
pub(super) struct SentinelShared {
    target: SentinelTarget,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    /// The connection and the address of the primary it reaches.
    conn: Arc<tokio::sync::Mutex<Option<(MultiplexedConnection, ConnectionAddr)>>>,
}

impl SentinelShared {
    pub(super) fn new(target: SentinelTarget, connect_timeout: Duration, response_timeout: Duration) -> Self {
        SentinelShared {
            target,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(Some(response_timeout)),
            connect_timeout,
            conn: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// The connection, opened on the current primary if there is none.
    pub(super) async fn connection(&self) -> Result<MultiplexedConnection> {
        Ok(self.connection_and_addr().await?.0)
    }

    /// The connection and the address it reaches (health asks a Sentinel about it).
    pub(super) async fn connection_and_addr(&self) -> Result<(MultiplexedConnection, ConnectionAddr)> {
        let mut slot = self.conn.lock().await;
        if let Some(open) = slot.as_ref() {
            return Ok(open.clone());
        }
        let client = self.target.primary_async(self.connect_timeout).await?;
        let conn = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| Error::redis("connecting to the primary named by the sentinels", e))?;
        let addr = client.get_connection_info().addr().clone();
        tracing::debug!(%addr, "opened the shared connection to the sentinel primary");
        *slot = Some((conn.clone(), addr.clone()));
        Ok((conn, addr))
    }

    /// Forgets the connection if it still reaches `addr` (a node that is no longer the
    /// primary): the next command asks the Sentinels again.
    pub(super) async fn forget(&self, addr: &ConnectionAddr) {
        let mut slot = self.conn.lock().await;
        if slot.as_ref().is_some_and(|(_, open)| open == addr) {
            *slot = None;
        }
    }

    /// Forgets the connection after `err` if it says the primary is gone or demoted.
    async fn after<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(err) = &result
            && (err.is_io_error()
                || err.is_connection_dropped()
                || err.is_connection_refusal()
                || err.is_timeout()
                || err.code() == Some("READONLY"))
        {
            tracing::debug!(error = %err, "dropping the shared connection: the primary may have changed");
            *self.conn.lock().await = None;
        }
        result
    }
}

impl ConnectionLike for SentinelShared {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut conn = self.connection().await.map_err(|e| to_redis(&e))?;
            let result = conn.req_packed_command(cmd).await;
            self.after(result).await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut conn = self.connection().await.map_err(|e| to_redis(&e))?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            self.after(result).await
        })
    }

    fn get_db(&self) -> i64 {
        self.target.db
    }
}

/// Our connect error as the redis-rs error `ConnectionLike` returns: an I/O error (so it
/// classifies as a connection failure, transient) with our message.
fn to_redis(err: &Error) -> redis::RedisError {
    std::io::Error::new(std::io::ErrorKind::NotConnected, err.to_string()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_url_gives_sentinels_service_db_and_node_credentials() {
        let url = parse("redis+sentinel://app:p%40ss@s1:26380,s2,[::1]:26381/orders/3").unwrap();
        assert_eq!(
            url.sentinels,
            [("s1".into(), 26380), ("s2".into(), 26379), ("::1".into(), 26381)]
        );
        assert_eq!(url.service, "orders");
        assert_eq!(url.node.db(), 3);
        assert_eq!((url.node.username(), url.node.password()), (Some("app"), Some("p@ss")));
        assert!(!url.tls);
        assert_eq!(url.sentinel_auth, SentinelAuth::default());
        assert!(parse("rediss+sentinel://s1/m").unwrap().tls);
        let url = parse("redis+sentinel://app:node@s1/m/2?sentinel_password=sent%40pw").unwrap();
        assert_eq!(url.sentinel_auth.password.as_deref(), Some("sent@pw"));
        assert_eq!((url.node.password(), url.node.db()), (Some("node"), 2));
    }

    #[test]
    fn a_bad_sentinel_url_names_redis_url_and_no_credential() {
        for (url, problem) in [
            ("redis+sentinel://u:secret@s1:1/", "names no service"),
            ("redis+sentinel://u:secret@/m", "lists no sentinel"),
            ("redis+sentinel://u:secret@s1:x/m", "is not host[:port]"),
            ("redis+sentinel://u:secret@s1/m/two", "database number"),
            ("redis+sentinel://u:secret@s1/m/1/2", "database number"),
            ("redis+sentinel://u:secret@s1/m?x=1", "unknown query parameter \"x\""),
            ("redis+sentinel://u:secret@s1/m#f", "no fragment"),
        ] {
            let err = parse(url).unwrap_err();
            let text = err.to_string();
            assert!(err.is_configuration() && text.contains("redis_url"), "{text}");
            assert!(text.contains(problem), "{url}: {text}");
            assert!(!text.contains("secret"), "{text}");
        }
    }
}
