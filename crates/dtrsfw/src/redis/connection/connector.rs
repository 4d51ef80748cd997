//! How connections are opened: the redis-rs client (one server or a cluster) built from
//! the configuration, with its TLS and TCP settings and its timeouts. The pool, the
//! shared async slot and the dedicated connections for blocking reads all open theirs
//! here.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::io::tcp::TcpSettings;
use redis::{ConnectionInfo, IntoConnectionInfo};

use super::aio::AsyncConn;
use super::cluster::NodeAddr;
use super::deadline::with_deadline;
use super::sentinel::{SentinelShared, SentinelTarget};
use super::sync::{SyncConnection, SyncInner};
use super::url::{cluster_seed_urls, redis_description, unparsable_url};
use crate::redis::config::{CLUSTER_TLS_SCHEME, RedisConfig, is_cluster_url, is_sentinel_url, redact_url};
use crate::redis::error::{Error, Result};
use crate::redis::observe;

/// How many times redis-rs's cluster client retries a request after a redirection or a
/// lost node, and how long it waits between tries. Short waits matter during a failover:
/// redis-rs's default (1.28 s minimum) would idle past the moment a replica takes over.
/// The configured response timeout still bounds the whole request.
const CLUSTER_RETRIES: u32 = 8;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 50;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 500;

/// What the connections go to: one server, a cluster reached through its seeds, or the
/// primary that Sentinels name.
#[derive(Clone)]
// One per `RedisInstance` (and its rare clones): the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Target {
    Single(redis::Client),
    Cluster {
        client: ClusterClient,
        /// A client for the first seed (credentials, TLS): the template of a connection
        /// to one node (see `push_template`).
        node_template: redis::Client,
    },
    Sentinel(SentinelTarget),
}

/// Everything needed to open a connection; shared by the pool and the async side.
#[derive(Clone)]
pub(super) struct Connector {
    target: Target,
    connect_timeout: Duration,
    /// The response timeout of every connection but the dedicated ones, which add their
    /// block time to it.
    response_timeout: Duration,
    /// Whether commands safe to repeat are retried once (`retry_on_timeout`).
    pub(super) retry_on_timeout: bool,
    /// The database the connections select (always 0 on a cluster).
    pub(super) db: i64,
}

impl Connector {
    /// Builds the client for `url` (already validated) with the configuration's settings.
    pub(super) fn new(config: &RedisConfig, url: &str) -> Result<Self> {
        let target = if is_cluster_url(url) {
            Target::Cluster {
                client: cluster_client(config, url)?,
                node_template: single_client(config, &cluster_seed_urls(url)?[0])?,
            }
        } else if is_sentinel_url(url) {
            if url.starts_with("rediss") {
                install_tls_provider();
            }
            Target::Sentinel(SentinelTarget::new(
                url,
                tcp_settings(config).as_ref(),
                read_root_cert(config)?.as_deref(),
            )?)
        } else {
            Target::Single(single_client(config, url)?)
        };
        let db = match &target {
            Target::Single(client) => client.get_connection_info().redis_settings().db(),
            Target::Cluster { .. } => 0,
            Target::Sentinel(target) => target.db(),
        };
        Ok(Connector {
            target,
            db,
            connect_timeout: config.redis_socket_connect_timeout(),
            response_timeout: config.redis_socket_timeout(),
            retry_on_timeout: config.redis_retry_on_timeout(),
        })
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster { .. })
    }

    /// The Sentinels, when the target is the primary they name.
    pub(super) fn sentinel(&self) -> Option<&SentinelTarget> {
        match &self.target {
            Target::Sentinel(target) => Some(target),
            _ => None,
        }
    }

    /// A sync connection with the configured timeouts (the pool's).
    pub(super) fn connect_sync(&self) -> Result<SyncConnection> {
        self.connect_sync_with_timeouts(self.connect_timeout, self.response_timeout)
    }

    /// A dedicated sync connection for blocking reads: its response timeout adds `block`.
    pub(super) fn connect_dedicated_sync(&self, block: Duration) -> Result<SyncConnection> {
        self.connect_sync_with_timeouts(self.connect_timeout, self.response_timeout + block)
    }

    /// A sync connection with the given timeouts (the handshake is bounded by the connect
    /// timeout, every command after it by the response timeout).
    pub(super) fn connect_sync_with_timeouts(
        &self,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<SyncConnection> {
        let conn = self.open_sync(connect_timeout, response_timeout);
        observe::connected("sync", conn.is_ok());
        conn
    }

    fn open_sync(&self, connect_timeout: Duration, response_timeout: Duration) -> Result<SyncConnection> {
        let inner = match &self.target {
            Target::Single(client) => SyncInner::Single(open_sync(client, connect_timeout)?),
            Target::Sentinel(target) => SyncInner::Single(open_sync(&target.primary()?, connect_timeout)?),
            Target::Cluster { client, .. } => {
                let conn = client
                    .get_connection_with_config(cluster_config(connect_timeout, response_timeout))
                    .map_err(|e| Error::redis("connecting to the redis cluster", e))
                    .inspect_err(|e| tracing::debug!(error = %e, "sync cluster connection failed"))?;
                tracing::debug!("opened a sync cluster connection");
                SyncInner::Cluster(Box::new(conn))
            }
        };
        let conn = SyncConnection { inner };
        conn.set_read_timeout(Some(response_timeout))?;
        conn.set_write_timeout(Some(response_timeout))?;
        Ok(conn)
    }

    /// The shared async connection: a `ConnectionManager` for one server, a cluster
    /// connection (itself multiplexed per node, and self-healing) for a cluster.
    pub(super) async fn connect_shared(&self) -> Result<AsyncConn<ConnectionManager>> {
        let conn = self.open_shared().await;
        observe::connected("shared", conn.is_ok());
        conn
    }

    async fn open_shared(&self) -> Result<AsyncConn<ConnectionManager>> {
        match &self.target {
            Target::Single(client) => Ok(AsyncConn::Single(self.connect_manager(client).await?)),
            Target::Sentinel(target) => {
                let shared = SentinelShared::new(target.clone(), self.connect_timeout, self.response_timeout);
                // Open it now, as the other targets do: a connect error surfaces here.
                shared.connection().await?;
                Ok(AsyncConn::Sentinel(shared))
            }
            Target::Cluster { client, .. } => {
                let conn = self.connect_async_cluster(client, self.response_timeout).await?;
                tracing::debug!("opened the shared async cluster connection");
                Ok(conn)
            }
        }
    }

    /// A dedicated async connection for blocking reads: its response timeout adds
    /// `block`, so a long block neither times out early nor holds up the shared
    /// connection.
    pub(super) async fn connect_dedicated_async(&self, block: Duration) -> Result<AsyncConn<MultiplexedConnection>> {
        let conn = self.open_dedicated_async(block).await;
        observe::connected("dedicated", conn.is_ok());
        conn
    }

    async fn open_dedicated_async(&self, block: Duration) -> Result<AsyncConn<MultiplexedConnection>> {
        let response_timeout = self.response_timeout + block;
        let client = match &self.target {
            Target::Single(client) => client.clone(),
            Target::Sentinel(target) => target.primary_async(self.connect_timeout).await?,
            Target::Cluster { client, .. } => return self.connect_async_cluster(client, response_timeout).await,
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(response_timeout));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| Error::redis("connecting to redis", e))?;
        Ok(AsyncConn::Single(conn))
    }

    /// The client whose address, credentials and TLS settings a push connection
    /// (`push.rs`) takes: the server's for `None` on one server; for a node of a cluster,
    /// the first seed's, whose address is then replaced by the node's. `None` for the
    /// other combinations (and under Sentinel).
    pub(super) fn push_template(&self, node: Option<&NodeAddr>) -> Option<&redis::Client> {
        match (&self.target, node) {
            (Target::Single(client), None) => Some(client),
            (Target::Cluster { node_template, .. }, Some(_)) => Some(node_template),
            _ => None,
        }
    }

    /// `(connect timeout, response timeout)` of the connections opened here.
    pub(super) fn timeouts(&self) -> (Duration, Duration) {
        (self.connect_timeout, self.response_timeout)
    }

    async fn connect_async_cluster<S>(
        &self,
        client: &ClusterClient,
        response_timeout: Duration,
    ) -> Result<AsyncConn<S>> {
        let conn = client
            .get_async_connection_with_config(cluster_config(self.connect_timeout, response_timeout))
            .await
            .map_err(|e| Error::redis("connecting to the redis cluster", e))?;
        Ok(AsyncConn::Cluster(conn))
    }

    /// Opens the manager, in at most the connect timeout. The manager's retries (below)
    /// are for reconnecting a connection that existed; they also apply to its first
    /// connect, where three tries against a server that does not answer took three
    /// connect timeouts plus backoffs. So the first connect as a whole gets one connect
    /// timeout: a server that refuses at once still gets the quick retries within it.
    async fn connect_manager(&self, client: &redis::Client) -> Result<ConnectionManager> {
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

/// A sync connection to the one server of `client`.
fn open_sync(client: &redis::Client, connect_timeout: Duration) -> Result<redis::Connection> {
    let conn = client
        .get_connection_with_timeout(connect_timeout)
        .map_err(|e| Error::redis("connecting to redis", e))
        .inspect_err(|e| tracing::debug!(error = %e, "sync connection failed"))?;
    tracing::debug!(addr = %client.get_connection_info().addr(), "opened a sync connection");
    Ok(conn)
}

fn cluster_config(connect_timeout: Duration, response_timeout: Duration) -> ClusterConfig {
    ClusterConfig::new()
        .set_connection_timeout(connect_timeout)
        .set_response_timeout(response_timeout)
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

/// TCP keepalive as the Python package: first probe after 15 s idle, then every 5 s,
/// 3 probes.
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

/// rustls needs a process-wide crypto provider; we bring `ring`. Installing twice is a
/// no-op error we ignore (the application may have installed its own).
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
