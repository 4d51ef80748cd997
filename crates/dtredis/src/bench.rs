//! `dtredis bench`: each operation of ours beside the same Redis work done by a bare
//! redis-rs loop, in the same run, alternating rounds so both see the same machine noise.
//! Medians are reported, with the ratio ours/bare.

mod acked;
mod allocs;
mod cache;
mod cache_local;
mod consume;
mod latency;
mod memory;
mod publish;
mod publish_wait;
mod soak;

use std::future::Future;
use std::time::{Duration, Instant};

use dtrsfw::redis::{RedisConfig, RedisInstance};
use serde::Serialize;

/// What `dtredis bench` was asked for.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Fewer operations and rounds (a smoke run).
    #[arg(long)]
    quick: bool,
    /// Only these areas (`publish`, `consume`, `acked`, `cache`, `cache_local`, `latency`, `memory`), comma-separated; or `soak`
    /// alone: producers, consumers and cached calls through a fault-injecting proxy.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// How long the soak runs, in seconds. By default, 600.
    #[arg(long, default_value_t = 600)]
    duration: u64,
    /// Entries published by the `retention_acked_1m` row (area `acked`), for machines
    /// where a million takes too long; `--quick` divides it by 100 (one round). By
    /// default, 1000000.
    #[arg(long, default_value_t = 1_000_000)]
    retention_entries: usize,
    /// Run with the library's metrics going to a Prometheus recorder and its spans to an
    /// OpenTelemetry pipeline (needs dtredis built with `--features observe`), to measure
    /// what observability costs. By default, off.
    #[arg(long)]
    pub(crate) observe: bool,
}

/// `dtredis bench`: against `url`, or a private server started for the run when there is
/// none.
#[allow(clippy::print_stdout)] // a CLI's output is stdout
pub(crate) async fn command(url: Option<String>, args: BenchArgs) -> anyhow::Result<()> {
    let (_server, url) = crate::private_server_unless(url)?;
    // The library validates the URL first: redis-rs's own parse errors (met by the bare
    // baseline) can quote a piece of it, credentials included.
    crate::instance(&url)?;
    if args.only == ["soak"] {
        return soak::run(&url, Duration::from_secs(args.duration)).await;
    }
    let ctx = BenchContext {
        url: url.clone(),
        quick: args.quick,
        retention_entries: args.retention_entries,
    };
    let server_version = server_version(&url).await?;
    let rows = run_all(&ctx, &args.only, &|area| eprintln!("bench: {area} ...")).await?;
    if args.json {
        println!("{}", render_json(&server_version, &rows));
    } else {
        print!("{}", render_table(&server_version, &rows));
    }
    Ok(())
}

/// `redis_version` (or `valkey_version`) from INFO, e.g. `redis 7.0.15`.
async fn server_version(url: &str) -> anyhow::Result<String> {
    // One node's INFO: on a cluster every node runs the same server.
    let mut conn = redis::Client::open(one_node_url(url))?
        .get_multiplexed_async_connection()
        .await?;
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    Ok(match field("valkey_version:") {
        Some(v) => format!("valkey {v}"),
        None => format!("redis {}", field("redis_version:").unwrap_or_default()),
    })
}

/// What every benchmark area gets. No `Debug`: the URL carries the credentials.
#[derive(Clone)]
pub(crate) struct BenchContext {
    /// Server URL (a private server unless `--url` was given).
    pub(crate) url: String,
    /// Shorter runs (for tests and smoke checks).
    pub(crate) quick: bool,
    /// Entries of `retention_acked_1m` before `--quick` scaling.
    pub(crate) retention_entries: usize,
}

impl BenchContext {
    /// Rounds per operation (alternating ours and bare).
    pub(crate) fn rounds(&self) -> usize {
        if self.quick { 3 } else { 7 }
    }

    /// Scales an operation count down for `--quick`.
    pub(crate) fn n(&self, full: usize) -> usize {
        if self.quick { (full / 10).max(1) } else { full }
    }

    /// A fresh `RedisInstance` on the bench server.
    pub(crate) fn instance(&self) -> anyhow::Result<RedisInstance> {
        Ok(RedisInstance::new(RedisConfig::new().set_redis_url(&self.url))?)
    }

    /// A bare redis-rs async connection on the bench server: multiplexed for one server,
    /// redis-rs's own cluster connection for a `redis+cluster://` URL (so that the
    /// baseline is what a hand-written redis-rs service would use there too).
    pub(crate) async fn bare_async(&self) -> anyhow::Result<BareAsync> {
        Ok(match cluster_seeds(&self.url) {
            Some(seeds) => BareAsync::Cluster(
                redis::cluster::ClusterClient::new(seeds)?
                    .get_async_connection()
                    .await?,
            ),
            // redis-rs's default 500 ms response timeout fails a 10 000-entry fill
            // pipeline on a loaded machine; the time limit is no part of what is measured.
            None => BareAsync::Single(
                redis::Client::open(self.url.as_str())?
                    .get_multiplexed_async_connection_with_config(
                        &redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30))),
                    )
                    .await?,
            ),
        })
    }

    /// A bare redis-rs sync connection on the bench server (cluster-aware likewise).
    pub(crate) fn bare_sync(&self) -> anyhow::Result<Box<dyn redis::ConnectionLike + Send>> {
        Ok(match cluster_seeds(&self.url) {
            Some(seeds) => Box::new(redis::cluster::ClusterClient::new(seeds)?.get_connection()?),
            None => Box::new(redis::Client::open(self.url.as_str())?.get_connection()?),
        })
    }
}

/// The seeds of a cluster URL (`redis+cluster://[auth@]host:port,host:port`) as one-node
/// URLs; `None` for a one-server URL. The library validates the URL; this only splits it
/// for the bare baseline.
fn cluster_seeds(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = url.split_once("://")?;
    let node_scheme = match scheme {
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (auth, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    Some(
        hosts
            .split(',')
            .filter(|h| !h.trim().is_empty())
            .map(|h| format!("{node_scheme}://{auth}{}", h.trim()))
            .collect(),
    )
}

/// A URL of one node: the first seed of a cluster URL, or `url` itself.
pub(crate) fn one_node_url(url: &str) -> String {
    cluster_seeds(url)
        .and_then(|seeds| seeds.into_iter().next())
        .unwrap_or_else(|| url.to_owned())
}

/// The bare baseline's async connection: one server or a cluster.
#[derive(Clone)]
pub(crate) enum BareAsync {
    /// A multiplexed connection to one server.
    Single(redis::aio::MultiplexedConnection),
    /// redis-rs's async cluster connection.
    Cluster(redis::cluster_async::ClusterConnection),
}

impl BareAsync {
    fn as_dyn(&mut self) -> &mut (dyn redis::aio::ConnectionLike + Send) {
        match self {
            BareAsync::Single(c) => c,
            BareAsync::Cluster(c) => c,
        }
    }
}

impl redis::aio::ConnectionLike for BareAsync {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        self.as_dyn().req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        self.as_dyn().req_packed_commands(cmd, offset, count)
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BenchRow {
    /// Exact operation name (the `--json` contract).
    pub(crate) name: &'static str,
    /// What was measured, in the row's own unit (its fields are the row's JSON fields).
    #[serde(flatten)]
    pub(crate) figures: Figures,
    /// Heap allocations per message, ours beside bare, for the rows that count them.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(crate) allocs: Option<allocs::AllocsPerMsg>,
    /// What the row measures, and its target.
    #[serde(skip)]
    pub(crate) note: String,
}

/// The figures of a row: one kind per row, each with the fields of its JSON object.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum Figures {
    /// Median throughputs per second, ours beside the bare redis-rs loop.
    Compared {
        ours_per_s: f64,
        bare_per_s: f64,
        /// ours / bare.
        ratio: f64,
    },
    /// Our median throughput per second alone.
    Throughput { ours_per_s: f64 },
    /// Median seconds (lower is better).
    Seconds { ours_s: f64 },
    /// A latency distribution of ours: median and 99th percentile, in milliseconds.
    Latency { p50_ms: f64, p99_ms: f64 },
    /// End-to-end latency, ours beside bare (`latency.rs`).
    EndToEnd(latency::E2eFigures),
    /// Resident memory at the start and end (`memory.rs`).
    Memory(memory::RssFigures),
    /// Not measured on this server (the note says why).
    Skipped {},
}

impl BenchRow {
    /// A row of `figures`.
    fn new(name: &'static str, figures: Figures, note: impl Into<String>) -> Self {
        BenchRow {
            name,
            figures,
            allocs: None,
            note: note.into(),
        }
    }

    /// A row comparing ours with bare, from per-round throughputs.
    pub(crate) fn compared(name: &'static str, ours: &[f64], bare: &[f64], note: impl Into<String>) -> Self {
        let (ours_per_s, bare_per_s) = (median(ours), median(bare));
        let ratio = ours_per_s / bare_per_s;
        Self::new(
            name,
            Figures::Compared {
                ours_per_s,
                bare_per_s,
                ratio,
            },
            note,
        )
    }

    /// A row with our throughput only.
    pub(crate) fn throughput(name: &'static str, ours: &[f64], note: impl Into<String>) -> Self {
        Self::new(
            name,
            Figures::Throughput {
                ours_per_s: median(ours),
            },
            note,
        )
    }

    /// A row that could not be measured on this server, saying why.
    pub(crate) fn skipped(name: &'static str, why: impl Into<String>) -> Self {
        Self::new(name, Figures::Skipped {}, format!("skipped: {}", why.into()))
    }

    /// A row measured in seconds.
    pub(crate) fn seconds(name: &'static str, ours: &[f64], note: impl Into<String>) -> Self {
        Self::new(name, Figures::Seconds { ours_s: median(ours) }, note)
    }

    /// A row of latencies: their median and 99th percentile, in milliseconds.
    pub(crate) fn latency(name: &'static str, samples_ms: &[f64], note: impl Into<String>) -> Self {
        let mut sorted = samples_ms.to_vec();
        sorted.sort_by(f64::total_cmp);
        let p99_ms = sorted
            .get((sorted.len() * 99).div_ceil(100).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN);
        let p50_ms = median_of_sorted(&sorted);
        Self::new(name, Figures::Latency { p50_ms, p99_ms }, note)
    }
}

/// The median of a non-empty sample.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    median_of_sorted(&v)
}

/// The median of a sample already sorted.
fn median_of_sorted(v: &[f64]) -> f64 {
    let mid = v.len() / 2;
    if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Operations per second of `ops` operations done in `elapsed`.
pub(crate) fn per_second(ops: usize, elapsed: Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64()
}

/// What a hand-written redis-rs consumer reads with: `XREADGROUP GROUP <group> bare COUNT
/// <count> [BLOCK <ms>] STREAMS <key> >`.
pub(crate) fn bare_read_cmd(key: &str, group: &str, count: usize, block_ms: Option<u64>) -> redis::Cmd {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP").arg(group).arg("bare").arg("COUNT").arg(count);
    if let Some(ms) = block_ms {
        cmd.arg("BLOCK").arg(ms);
    }
    cmd.arg("STREAMS").arg(key).arg(">");
    cmd
}

/// What a hand-written redis-rs consumer acknowledges a read with: one `XACK` of its IDs.
pub(crate) fn bare_ack_cmd<I: redis::ToRedisArgs>(key: &str, group: &str, ids: &[I]) -> redis::Cmd {
    let mut cmd = redis::cmd("XACK");
    cmd.arg(key).arg(group).arg(ids);
    cmd
}

/// Times one round of `ops` operations.
pub(crate) async fn timed<F: Future<Output = anyhow::Result<()>>>(ops: usize, round: F) -> anyhow::Result<f64> {
    let start = Instant::now();
    round.await?;
    Ok(per_second(ops, start.elapsed()))
}

/// Runs one round of each side, ours first on even rounds and bare first on odd ones, so
/// neither side always runs on a warmer (or more fragmented) server.
pub(crate) async fn alternate(
    round: usize,
    ours_round: impl Future<Output = anyhow::Result<f64>>,
    bare_round: impl Future<Output = anyhow::Result<f64>>,
    ours: &mut Vec<f64>,
    bare: &mut Vec<f64>,
) -> anyhow::Result<()> {
    if round.is_multiple_of(2) {
        ours.push(ours_round.await?);
        bare.push(bare_round.await?);
    } else {
        bare.push(bare_round.await?);
        ours.push(ours_round.await?);
    }
    Ok(())
}

/// The areas, in table order.
pub(crate) const AREAS: [&str; 7] = [
    "publish",
    "consume",
    "acked",
    "cache",
    "cache_local",
    "latency",
    "memory",
];

/// Runs every area (or those in `only`) and returns the rows in table order.
pub(crate) async fn run_all(
    ctx: &BenchContext,
    only: &[String],
    progress: &dyn Fn(&str),
) -> anyhow::Result<Vec<BenchRow>> {
    if let Some(unknown) = only.iter().find(|a| !AREAS.contains(&a.as_str())) {
        anyhow::bail!("unknown bench area {unknown:?} (areas: {})", AREAS.join(", "));
    }
    let mut rows = Vec::new();
    for area in AREAS {
        if !only.is_empty() && !only.iter().any(|a| a == area) {
            continue;
        }
        progress(area);
        rows.extend(match area {
            "publish" => {
                let mut rows = publish::run(ctx).await?;
                rows.extend(publish_wait::run(ctx).await?);
                rows
            }
            "consume" => consume::run(ctx).await?,
            "acked" => acked::run(ctx).await?,
            "cache" => cache::run(ctx).await?,
            "latency" => latency::run(ctx).await?,
            "memory" => memory::run(ctx).await?,
            _ => cache_local::run(ctx).await?,
        });
    }
    Ok(rows)
}

/// The table, for people.
pub(crate) fn render_table(server: &str, rows: &[BenchRow]) -> String {
    let mut out = format!("server: {server}\n");
    out.push_str(&format!(
        "{:<26} {:>14} {:>14} {:>8}  {}\n",
        "operation", "ours", "bare redis-rs", "ratio", "notes"
    ));
    for row in rows {
        let (ours, bare, ratio) = cells(row);
        let ratio = ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into());
        let allocs = row
            .allocs
            .map(|a| {
                format!(
                    " [allocs/msg {:.1} vs {:.1}]",
                    a.ours_allocs_per_msg, a.bare_allocs_per_msg
                )
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<26} {:>14} {:>14} {:>8}  {}{allocs}\n",
            row.name, ours, bare, ratio, row.note
        ));
    }
    out
}

/// A row's table cells: ours, bare and the ratio, each in the row's own unit.
fn cells(row: &BenchRow) -> (String, String, Option<f64>) {
    let none = || "-".to_owned();
    let rate = |per_s: &f64| format!("{per_s:.0}/s");
    match &row.figures {
        Figures::Compared {
            ours_per_s,
            bare_per_s,
            ratio,
        } => (rate(ours_per_s), rate(bare_per_s), Some(*ratio)),
        Figures::Throughput { ours_per_s } => (rate(ours_per_s), none(), None),
        Figures::Seconds { ours_s } => (format!("{ours_s:.3} s"), none(), None),
        Figures::Latency { p50_ms, p99_ms } => (format!("{p50_ms:.2}/{p99_ms:.2} ms"), none(), None),
        Figures::EndToEnd(e2e) => {
            let (ours, bare, ratio) = e2e.cells();
            (ours, bare, Some(ratio))
        }
        Figures::Memory(m) => (format!("{:.0}->{:.0} MB", m.start_mb, m.end_mb), none(), None),
        Figures::Skipped {} => (none(), none(), None),
    }
}

/// The `--json` object: `{"server": ..., "ops": [...]}`.
pub(crate) fn render_json(server: &str, rows: &[BenchRow]) -> String {
    serde_json::json!({ "server": server, "ops": rows }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row's JSON object, its keys sorted.
    pub(super) fn json_keys(row: &BenchRow) -> Vec<String> {
        let value = serde_json::to_value(row).expect("a row serializes");
        let mut keys: Vec<String> = value.as_object().expect("an object").keys().cloned().collect();
        keys.sort();
        keys
    }

    #[test]
    fn each_kind_of_row_has_exactly_its_own_json_fields() {
        let compared = BenchRow::compared("a", &[2.0, 4.0, 6.0], &[2.0], "");
        assert_eq!(json_keys(&compared), ["bare_per_s", "name", "ours_per_s", "ratio"]);
        assert_eq!(serde_json::to_value(&compared).unwrap()["ratio"], 2.0);
        let counted = compared.with_allocs(&[3.0], &[4.0]);
        assert_eq!(
            json_keys(&counted),
            [
                "bare_allocs_per_msg",
                "bare_per_s",
                "name",
                "ours_allocs_per_msg",
                "ours_per_s",
                "ratio"
            ]
        );
        assert_eq!(
            json_keys(&BenchRow::throughput("a", &[1.0], "")),
            ["name", "ours_per_s"]
        );
        assert_eq!(json_keys(&BenchRow::seconds("a", &[1.0], "")), ["name", "ours_s"]);
        assert_eq!(
            json_keys(&BenchRow::latency("a", &[1.0, 2.0], "")),
            ["name", "p50_ms", "p99_ms"]
        );
        assert_eq!(json_keys(&BenchRow::skipped("a", "no WAIT here")), ["name"]);
    }
}
