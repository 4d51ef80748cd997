//! `/metrics`: the server's state in the Prometheus text exposition format (0.0.4), read
//! from Redis at each scrape, as asynq's exporter does. Written by hand: it is a few
//! lines of text, and a client library would add a registry for gauges that are
//! rebuilt on every scrape anyway.
//!
//! | metric | labels | value |
//! |---|---|---|
//! | `dtrsfw_stream_length` | `stream` | entries in the stream (`XLEN`) |
//! | `dtrsfw_group_lag` | `stream`, `group` | entries not yet delivered to the group (absent when Redis cannot tell) |
//! | `dtrsfw_group_pending` | `stream`, `group` | entries delivered and not acknowledged |
//! | `dtrsfw_group_oldest_pending_age_seconds` | `stream`, `group` | age of the oldest pending entry (server time minus its ID's time), 0 when none |
//! | `dtrsfw_group_consumers` | `stream`, `group` | consumers in the group |
//! | `dtrsfw_dead_letters` | `stream` | length of `<stream>:dlq` |
//! | `dtrsfw_cache_keys` | `namespace` | keys of the namespace, estimated from a bounded `SCAN` sample (exact when the scan completed) |
//! | `dtrsfw_scan_complete` | `scan` (`streams`, `caches`) | 1 when the key scan saw the whole keyspace, 0 when its budget stopped it |

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use dtrsfw::redis::inspect::{ScanBudget, StreamSummary, list_streams, sample_cache_namespaces, stream_summaries};

use super::history::shown_streams;
use super::state::{AppResult, Shared};

/// A label value escaped as the format requires (backslash, quote, newline).
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// A family with one sample per stream.
fn per_stream(out: &mut String, name: &str, help: &str, summaries: &[StreamSummary], value: fn(&StreamSummary) -> u64) {
    family(out, name, help);
    for s in summaries {
        let _ = writeln!(out, "{name}{{stream=\"{}\"}} {}", label(&s.name), value(s));
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<Shared>) -> AppResult<impl IntoResponse> {
    let redis = &state.redis;
    let listed = list_streams(redis, ScanBudget::new()).await?;
    let names = shown_streams(&listed.names);
    let summaries = stream_summaries(redis, &names).await?;
    let caches = sample_cache_namespaces(redis, ScanBudget::new()).await?;
    let mut out = String::with_capacity(256 + summaries.len() * 400);
    per_stream(
        &mut out,
        "dtrsfw_stream_length",
        "Entries in the stream (XLEN).",
        &summaries,
        |s| s.length,
    );
    type Pick = fn(&dtrsfw::redis::inspect::GroupSummary) -> Option<String>;
    let groups: [(&str, &str, Pick); 4] = [
        ("dtrsfw_group_lag", "Entries not yet delivered to the group.", |g| {
            g.lag.map(|v| v.to_string())
        }),
        (
            "dtrsfw_group_pending",
            "Entries delivered to the group and not acknowledged.",
            |g| Some(g.pending.to_string()),
        ),
        (
            "dtrsfw_group_oldest_pending_age_seconds",
            "Age of the group's oldest pending entry (0 when none).",
            |g| Some(format!("{:.3}", g.oldest_pending_age_ms.unwrap_or(0) as f64 / 1000.0)),
        ),
        ("dtrsfw_group_consumers", "Consumers in the group.", |g| {
            Some(g.consumers.to_string())
        }),
    ];
    for (name, help, pick) in groups {
        family(&mut out, name, help);
        for s in &summaries {
            for g in &s.groups {
                if let Some(v) = pick(g) {
                    let _ = writeln!(
                        out,
                        "{name}{{stream=\"{}\",group=\"{}\"}} {v}",
                        label(&s.name),
                        label(&g.name)
                    );
                }
            }
        }
    }
    per_stream(
        &mut out,
        "dtrsfw_dead_letters",
        "Entries in the stream's dead-letter stream <stream>:dlq.",
        &summaries,
        |s| s.dead_letters,
    );
    family(
        &mut out,
        "dtrsfw_cache_keys",
        "Keys of the cache namespace, estimated from a bounded SCAN sample.",
    );
    for ns in &caches.namespaces {
        let _ = writeln!(
            out,
            "dtrsfw_cache_keys{{namespace=\"{}\"}} {}",
            label(&ns.namespace),
            ns.approx_keys
        );
    }
    family(
        &mut out,
        "dtrsfw_scan_complete",
        "1 when the key scan saw the whole keyspace, 0 when its budget stopped it.",
    );
    let _ = writeln!(
        out,
        "dtrsfw_scan_complete{{scan=\"streams\"}} {}",
        u8::from(listed.complete)
    );
    let _ = writeln!(
        out,
        "dtrsfw_scan_complete{{scan=\"caches\"}} {}",
        u8::from(caches.complete)
    );
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    ))
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
