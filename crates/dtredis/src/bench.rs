//! `dtredis bench`: each operation of ours beside the same Redis work done by a bare
//! redis-rs loop, in the same run, alternating rounds so both see the same machine noise.
//! Medians are reported, with the ratio ours/bare.

mod cache;
mod consume;
mod publish;

use std::future::Future;
use std::time::{Duration, Instant};

use dtrsfw::redis::{RedisConfig, RedisInstance};
use serde::Serialize;

/// What every benchmark area gets.
#[derive(Debug, Clone)]
pub(crate) struct BenchContext {
    /// Server URL (a private server unless `--url` was given).
    pub(crate) url: String,
    /// Shorter runs (for tests and smoke checks).
    pub(crate) quick: bool,
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

    /// A bare redis-rs client on the bench server.
    pub(crate) fn bare_client(&self) -> anyhow::Result<redis::Client> {
        Ok(redis::Client::open(self.url.as_str())?)
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BenchRow {
    /// Exact operation name (the `--json` contract).
    pub(crate) name: &'static str,
    /// Median throughput of ours, per second (absent for time-only rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ours_per_s: Option<f64>,
    /// Median throughput of the bare redis-rs loop, per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) bare_per_s: Option<f64>,
    /// ours / bare.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ratio: Option<f64>,
    /// Median seconds, for rows measured in time (lower is better).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ours_s: Option<f64>,
    /// What the row measures, and its target.
    #[serde(skip)]
    pub(crate) note: &'static str,
}

impl BenchRow {
    /// A row comparing ours with bare, from per-round throughputs.
    pub(crate) fn compared(name: &'static str, ours: &[f64], bare: &[f64], note: &'static str) -> Self {
        let (o, b) = (median(ours), median(bare));
        BenchRow {
            name,
            ours_per_s: Some(o),
            bare_per_s: Some(b),
            ratio: Some(o / b),
            ours_s: None,
            note,
        }
    }

    /// A row with our throughput only.
    pub(crate) fn throughput(name: &'static str, ours: &[f64], note: &'static str) -> Self {
        BenchRow {
            name,
            ours_per_s: Some(median(ours)),
            bare_per_s: None,
            ratio: None,
            ours_s: None,
            note,
        }
    }

    /// A row measured in seconds.
    pub(crate) fn seconds(name: &'static str, ours: &[f64], note: &'static str) -> Self {
        BenchRow {
            name,
            ours_per_s: None,
            bare_per_s: None,
            ratio: None,
            ours_s: Some(median(ours)),
            note,
        }
    }
}

/// The median of a non-empty sample.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
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

/// Times one round of `ops` operations.
pub(crate) async fn timed<F: Future<Output = anyhow::Result<()>>>(ops: usize, round: F) -> anyhow::Result<f64> {
    let start = Instant::now();
    round.await?;
    Ok(per_second(ops, start.elapsed()))
}

/// The areas, in table order.
pub(crate) const AREAS: [&str; 3] = ["publish", "consume", "cache"];

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
            "publish" => publish::run(ctx).await?,
            "consume" => consume::run(ctx).await?,
            _ => cache::run(ctx).await?,
        });
    }
    Ok(rows)
}

/// The table, for people.
pub(crate) fn render_table(server: &str, rows: &[BenchRow]) -> String {
    let mut out = format!("server: {server}\n");
    out.push_str(&format!(
        "{:<22} {:>14} {:>14} {:>8}  {}\n",
        "operation", "ours", "bare redis-rs", "ratio", "notes"
    ));
    for row in rows {
        let fmt_rate = |v: Option<f64>| v.map(|v| format!("{v:.0}/s")).unwrap_or_else(|| "-".into());
        let ours = match row.ours_s {
            Some(s) => format!("{s:.3} s"),
            None => fmt_rate(row.ours_per_s),
        };
        let ratio = row.ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<22} {:>14} {:>14} {:>8}  {}\n",
            row.name,
            ours,
            fmt_rate(row.bare_per_s),
            ratio,
            row.note
        ));
    }
    out
}

/// The `--json` object: `{"server": ..., "ops": [...]}`.
pub(crate) fn render_json(server: &str, rows: &[BenchRow]) -> String {
    serde_json::json!({ "server": server, "ops": rows }).to_string()
}
