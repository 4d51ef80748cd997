//! `dtredis bench`'s allocation counts (`*_allocs_per_msg`, with feature `alloc-count`:
//! `cargo test -p dtredis --features alloc-count --test bench_memory`) and memory rows
//! (`consumer_rss_2m`, `cache_rss_1m`), on a private server, in `--quick` form.

use std::process::Command;

use dtrsfw_test_support::Server;

/// The `ops` of `dtredis bench --quick --json --only <areas>` against `server`.
fn bench(server: &Server, areas: &str) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_dtredis"))
        .arg("--url")
        .arg(server.url())
        .args(["bench", "--quick", "--json", "--only", areas])
        .env_remove("REDIS_URL")
        .output()
        .expect("run dtredis");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    report["ops"].as_array().expect("ops").clone()
}

fn row<'a>(ops: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    ops.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {ops:?}"))
}

#[cfg(feature = "alloc-count")]
#[test]
fn publish_and_consume_rows_count_allocations_per_message_on_both_sides() {
    let server = Server::start();
    let ops = bench(&server, "publish,consume");
    for name in ["publish_single", "publish_batch", "publish_concurrent", "consume_noop"] {
        let r = row(&ops, name);
        for side in ["ours_allocs_per_msg", "bare_allocs_per_msg"] {
            // Every message costs at least its reply's allocation on either side; and a
            // count far above what one message could need means the count is wrong
            // (counting the whole process instead of the round, say).
            let v = r[side].as_f64().unwrap_or_else(|| panic!("{side} in {r}"));
            assert!(v > 0.0 && v < 1_000.0, "{side} = {v} in {r}");
        }
    }
    // Rows that do not count allocations carry no such field.
    let blocking = row(&ops, "publish_blocking");
    assert!(blocking.get("ours_allocs_per_msg").is_none(), "{blocking}");
}

#[test]
fn memory_rows_report_resident_memory_at_start_and_end() {
    let server = Server::start();
    let ops = bench(&server, "memory");
    for name in ["consumer_rss_2m", "cache_rss_1m"] {
        let r = row(&ops, name);
        let figure = |field: &str| r[field].as_f64().unwrap_or_else(|| panic!("{field} in {r}"));
        let (start, end, growth) = (figure("start_mb"), figure("end_mb"), figure("growth_mb"));
        assert!(start > 1.0 && end > 1.0, "{r}");
        assert!((end - start - growth).abs() < 1e-6, "{r}");
        // The documented bound (README Performance: growth <= 16 MB over the full run);
        // at --quick's tenth of the work, anything kept per message or key above ~80
        // bytes still crosses it.
        assert!(growth <= 16.0, "{name} grew by {growth} MB: {r}");
    }
}
