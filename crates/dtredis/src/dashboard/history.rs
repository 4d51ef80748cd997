//! The sampler: once a second it lists the streams and their figures, derives in/out
//! rates from the growth of `entries-added` and of the groups' `entries-read`, and keeps
//! the last two minutes of rates per stream for the charts. Its snapshot feeds
//! `/events` (live updates) and the rates shown on the overview.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtrsfw::redis::RedisInstance;
use dtrsfw::redis::inspect::{ScanBudget, ServerInfo, StreamSummary, list_streams, server_info, stream_summaries};
use tokio::sync::watch;

/// Samples kept per stream: two minutes at one a second.
pub(crate) const POINTS: usize = 120;
/// Time between samples.
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);

/// One stream as the overview shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct StreamRow {
    pub(crate) name: String,
    pub(crate) length: u64,
    pub(crate) groups: usize,
    pub(crate) lag: u64,
    pub(crate) pending: u64,
    pub(crate) dead_letters: u64,
    /// Entries added per second over the last sample.
    pub(crate) in_rate: f64,
    /// Entries read per second (all groups) over the last sample.
    pub(crate) out_rate: f64,
    /// The last [`POINTS`] in-rates, oldest first.
    pub(crate) in_history: Vec<f64>,
    /// The last [`POINTS`] out-rates, oldest first.
    pub(crate) out_history: Vec<f64>,
}

/// What the sampler saw last.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Snapshot {
    pub(crate) server: Option<ServerInfo>,
    pub(crate) streams: Vec<StreamRow>,
    /// Whether the stream scan saw the whole keyspace.
    pub(crate) complete: bool,
    pub(crate) error: Option<String>,
}

impl Snapshot {
    pub(crate) fn row(&self, name: &str) -> Option<&StreamRow> {
        self.streams
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.streams[i])
    }
}

#[derive(Debug, Default)]
struct Track {
    added: u64,
    read: u64,
    at: Option<Instant>,
    ins: VecDeque<f64>,
    outs: VecDeque<f64>,
}

/// Streams to show: every stream except the dead-letter streams of listed parents
/// (those appear as their parent's dead-letter count).
pub(crate) fn shown_streams(names: &[String]) -> Vec<String> {
    let set: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    names
        .iter()
        .filter(|n| !n.strip_suffix(":dlq").is_some_and(|parent| set.contains(parent)))
        .cloned()
        .collect()
}

/// A row from a summary, with the rates of `track` when there is one.
pub(crate) fn row(summary: &StreamSummary, track: Option<&StreamRow>) -> StreamRow {
    let mut row = StreamRow {
        name: summary.name.clone(),
        length: summary.length,
        groups: summary.groups.len(),
        lag: summary.total_lag(),
        pending: summary.total_pending(),
        dead_letters: summary.dead_letters,
        ..StreamRow::default()
    };
    if let Some(t) = track {
        row.in_rate = t.in_rate;
        row.out_rate = t.out_rate;
        row.in_history = t.in_history.clone();
        row.out_history = t.out_history.clone();
    }
    row
}

fn push(points: &mut VecDeque<f64>, value: f64) {
    if points.len() == POINTS {
        points.pop_front();
    }
    points.push_back(value);
}

async fn sample(redis: &RedisInstance, tracks: &mut HashMap<String, Track>) -> dtrsfw::redis::Result<Snapshot> {
    let listed = list_streams(redis, ScanBudget::new().max_keys(5000)).await?;
    let names = shown_streams(&listed.names);
    let summaries = stream_summaries(redis, &names).await?;
    let now = Instant::now();
    tracks.retain(|name, _| names.binary_search(name).is_ok());
    let streams = summaries
        .iter()
        .map(|s| {
            let added = s.entries_added.unwrap_or(s.length);
            let read = s.total_read();
            let t = tracks.entry(s.name.clone()).or_default();
            if let Some(at) = t.at {
                let secs = now.duration_since(at).as_secs_f64().max(1e-3);
                push(&mut t.ins, added.saturating_sub(t.added) as f64 / secs);
                push(&mut t.outs, read.saturating_sub(t.read) as f64 / secs);
            }
            (t.added, t.read, t.at) = (added, read, Some(now));
            let mut r = row(s, None);
            r.in_rate = t.ins.back().copied().unwrap_or(0.0);
            r.out_rate = t.outs.back().copied().unwrap_or(0.0);
            r.in_history = t.ins.iter().copied().collect();
            r.out_history = t.outs.iter().copied().collect();
            r
        })
        .collect();
    Ok(Snapshot {
        server: server_info(redis).await.ok(),
        streams,
        complete: listed.complete,
        error: None,
    })
}

/// Samples until `stopping` turns true, publishing each snapshot.
pub(crate) async fn run_sampler(
    redis: RedisInstance,
    out: watch::Sender<Arc<Snapshot>>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut tracks = HashMap::new();
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        let snapshot = match sample(&redis, &mut tracks).await {
            Ok(s) => s,
            Err(e) => Snapshot {
                error: Some(e.to_string()),
                ..(**out.borrow()).clone()
            },
        };
        out.send_replace(Arc::new(snapshot));
    }
}
