//! `dtredis info <channel>`: what an operator asks first about a stream.

use dtrsfw::redis::RedisInstance;
use redis::streams::{StreamInfoGroupsReply, StreamInfoStreamReply};
use serde::Serialize;

/// One consumer group of the stream.
#[derive(Debug, Serialize)]
struct GroupInfo {
    name: String,
    consumers: usize,
    pending: usize,
    last_delivered_id: String,
    /// Entries not yet delivered to the group (Redis ≥ 7 reports it; null when unknown).
    lag: Option<usize>,
}

/// What the library detected about the server (`RedisInstance::server_capabilities`).
#[derive(Debug, Serialize)]
struct ServerInfo {
    product: String,
    version: String,
    /// `XACKDEL` and the `ACKED` trim option (Redis 8.2+): whether acknowledged-only
    /// retention and `delete_when_acked_by_all`'s fast path are available.
    ack_aware_streams: bool,
}

/// The whole report.
#[derive(Debug, Serialize)]
struct ChannelInfo {
    server: ServerInfo,
    channel: String,
    length: usize,
    first_id: Option<String>,
    last_id: Option<String>,
    groups: Vec<GroupInfo>,
    dlq_length: usize,
}

pub(crate) async fn run(redis: &RedisInstance, channel: &str, json: bool) -> anyhow::Result<String> {
    let mut client = redis.get_async_redis_client().await?;
    let exists: bool = redis::cmd("EXISTS").arg(channel).query_async(&mut client).await?;
    anyhow::ensure!(exists, "unknown channel {channel:?}: no such stream");
    let stream: StreamInfoStreamReply = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(channel)
        .query_async(&mut client)
        .await?;
    let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(channel)
        .query_async(&mut client)
        .await?;
    let dlq_length: usize = redis::cmd("XLEN")
        .arg(format!("{channel}:dlq"))
        .query_async(&mut client)
        .await?;
    let caps = redis.server_capabilities().await?;
    let non_empty = |id: &str| (!id.is_empty()).then(|| id.to_owned());
    let info = ChannelInfo {
        server: ServerInfo {
            product: caps.product().to_owned(),
            version: caps.version().to_owned(),
            ack_aware_streams: caps.ack_aware_streams(),
        },
        channel: channel.to_owned(),
        length: stream.length,
        first_id: non_empty(&stream.first_entry.id),
        last_id: non_empty(&stream.last_entry.id),
        groups: groups
            .groups
            .into_iter()
            .map(|g| GroupInfo {
                name: g.name,
                consumers: g.consumers,
                pending: g.pending,
                last_delivered_id: g.last_delivered_id,
                lag: g.lag,
            })
            .collect(),
        dlq_length,
    };
    Ok(if json {
        serde_json::to_string(&info)?
    } else {
        render(&info)
    })
}

fn render(info: &ChannelInfo) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let server = &info.server;
    let mut out = format!(
        "server {} {}: acknowledged-aware stream commands (XACKDEL, ACKED trims) {}\n",
        server.product,
        server.version,
        if server.ack_aware_streams {
            "available"
        } else {
            "not available (Redis 8.2+)"
        }
    );
    out += &format!(
        "channel {}: {} entries (first {}, last {}), dead-letter stream {} entries\n",
        info.channel,
        info.length,
        dash(&info.first_id),
        dash(&info.last_id),
        info.dlq_length
    );
    if info.groups.is_empty() {
        out.push_str("no consumer groups\n");
    }
    for g in &info.groups {
        let lag = g.lag.map(|l| l.to_string()).unwrap_or_else(|| "?".into());
        out.push_str(&format!(
            "group {}: {} consumers, {} pending, last delivered {}, lag {}\n",
            g.name, g.consumers, g.pending, g.last_delivered_id, lag
        ));
    }
    out
}
