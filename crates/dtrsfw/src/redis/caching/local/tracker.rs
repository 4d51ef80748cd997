//! The tracker: one thread per server with a current-thread tokio runtime, running
//! sessions one after the other. A session opens the invalidation connections (`links`:
//! the server, or every node of a cluster that serves slots), applies their pushes and
//! checks them every [`PING_EVERY`]. Any failure flushes the tier and marks it down until
//! a new session is subscribed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::links::{Health, Links, PING_EVERY};
use super::server::Tracking;
use crate::redis::connection::RedisInstance;
use crate::redis::error::{Error, Result};

/// First wait before reconnecting; doubled up to [`MAX_BACKOFF`] while sessions keep
/// failing, back to this once a session lasted [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Starts the tracker thread of `tracking` (it runs as long as the process).
pub(super) fn spawn(tracking: Arc<Tracking>, redis: RedisInstance) {
    let started = std::thread::Builder::new()
        .name("dtrsfw-cache-tracking".into())
        .spawn(
            move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(run(&tracking, &redis)),
                Err(e) => tracing::warn!(error = %e, "redis cache: local tier off, no runtime for tracking"),
            },
        );
    if let Err(e) = started {
        tracing::warn!(error = %e, "redis cache: local tier off, no tracking thread");
    }
}

/// Subscribes, applies pushes until something fails, flushes, waits, again.
async fn run(tracking: &Tracking, redis: &RedisInstance) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let started = Instant::now();
        match session(tracking, redis).await {
            // The prefixes changed: subscribe again at once.
            Ok(()) => backoff = MIN_BACKOFF,
            Err(e) => {
                tracing::warn!(error = %e, "redis cache: invalidation connection lost, local tier flushed and bypassed");
                tracking.flush(false);
                // The doubling is for a server that keeps refusing us, not for a blip
                // after hours of service: that one gets the first wait again.
                if started.elapsed() >= MAX_BACKOFF {
                    backoff = MIN_BACKOFF;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One session's life: `Ok` when it ends because the prefixes or the cluster's nodes
/// changed (subscribe again at once), `Err` when a connection failed.
async fn session(tracking: &Tracking, redis: &RedisInstance) -> Result<()> {
    let (push, mut pushes) = unbounded_channel::<PushInfo>();
    let (generation, prefixes) = {
        let subscription = crate::redis::caching::lock::lock(&tracking.subscription);
        (subscription.generation, subscription.prefixes())
    };
    let Some(mut links) = Links::open(redis, &push, &prefixes).await? else {
        // No push connection for this target (Sentinel): the tier stays down, calls go
        // to Redis. Said once, then parked rather than spinning.
        tracing::warn!(
            "redis cache: no local tier under Sentinel (no invalidation connection to follow failovers); cached calls go to Redis"
        );
        std::future::pending::<()>().await;
        return Ok(());
    };
    {
        // Up only if no namespace was added meanwhile (it would not be subscribed).
        let subscription = crate::redis::caching::lock::lock(&tracking.subscription);
        if subscription.generation != generation {
            return Ok(());
        }
        tracking.epochs.set_up();
    }
    tracing::debug!(prefixes = ?prefixes, nodes = links.len(), "redis cache: tracking on, local tier up");
    apply_pushes(tracking, &mut links, &mut pushes).await
}

/// Applies invalidations until a connection fails (`Err`), or the prefixes or the
/// cluster's nodes change (`Ok`, after a flush: fills are refused until the next
/// session is subscribed).
async fn apply_pushes(tracking: &Tracking, links: &mut Links, pushes: &mut UnboundedReceiver<PushInfo>) -> Result<()> {
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            push = pushes.recv() => match push {
                Some(PushInfo { kind: PushKind::Invalidate, data }) => apply(tracking, &data),
                Some(PushInfo { kind: PushKind::Disconnection, .. }) | None => {
                    return Err(Error::new(crate::redis::ErrorKind::Connection, "the server closed an invalidation connection"));
                }
                Some(_) => {}
            },
            _ = ping.tick() => {
                if let Health::NewNodes(nodes) = links.check().await? {
                    let nodes: Vec<String> = nodes.iter().map(ToString::to_string).collect();
                    tracing::info!(?nodes, "redis cache: cluster nodes changed, local tier flushed until they are subscribed");
                    tracking.flush(false);
                    return Ok(());
                }
            }
            () = tracking.changed.notified() => return Ok(()),
        }
    }
}

/// One `invalidate` push: an array of keys, or nil when the server flushed everything.
fn apply(tracking: &Tracking, data: &[Value]) {
    match data.first() {
        Some(Value::Array(keys)) => {
            for key in keys {
                if let Value::BulkString(key) = key {
                    tracking.invalidate(&String::from_utf8_lossy(key));
                }
            }
        }
        _ => tracking.flush(true),
    }
}
