//! The parent of the coherence checker: a private server, the writer and reader
//! processes (killed on drop, also when a check panics), a disturbance, and the checks
//! of what the reader saw against what the writers completed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use dtrsfw_test_support::Server;

use super::{KEYS, ROLE, write_version};

/// What happens to the server while the processes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disturbance {
    None,
    /// `CLIENT KILL` of every tracking connection every 150 ms.
    KillTracking,
    /// The server restarted (stop, start on the same port) twice.
    Restart,
}

/// A read must see a write that completed this long before it started.
const VISIBLE_AFTER_US: u64 = 50_000;

/// Child processes, killed and reaped on drop.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(role: &str, url: &str, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(ROLE, role)
        .env("DTRSFW_COHERENCE_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.spawn().unwrap()
}

/// All of a child's stdout, on a thread (so a full pipe never blocks it).
fn collect(stdout: ChildStdout) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        BufReader::new(stdout).read_to_string(&mut text).unwrap();
        text
    })
}

/// One run: `updates` in all by 2 writers, the reader's 4 tasks, `disturbance`; panics
/// with the first violations found.
pub(crate) fn run_check(disturbance: Disturbance, updates: u64) {
    let started = Instant::now();
    let mut server = Server::start();
    let url = server.url();
    let mut conn = None;
    for k in 0..KEYS {
        write_version(&url, &mut conn, k, 1);
    }
    let mut children = Children(vec![spawn("reader", &url, &[])]);
    let mut reader_out = BufReader::new(children.0[0].stdout.take().unwrap());
    let mut ready = String::new();
    reader_out.read_line(&mut ready).unwrap();
    assert_eq!(ready.trim(), "ready", "the reader did not warm up");
    let reader_out = collect(reader_out.into_inner());
    let each = (updates / 2).max(1);
    let mut writer_outs = Vec::new();
    for id in 0..2 {
        let env = [
            ("DTRSFW_COHERENCE_WRITER", id.to_string()),
            ("DTRSFW_COHERENCE_UPDATES_EACH", each.to_string()),
        ];
        let mut child = spawn("writer", &url, &env);
        writer_outs.push(collect(child.stdout.take().unwrap()));
        children.0.push(child);
    }
    let disturbed = disturb(&mut server, &mut children.0[1..], disturbance);
    std::thread::sleep(Duration::from_millis(200));
    // Closing its stdin stops the reader.
    drop(children.0[0].stdin.take());
    assert!(children.0[0].wait().unwrap().success(), "the reader failed");
    let writes: String = writer_outs.into_iter().map(|h| h.join().unwrap()).collect();
    let reads = reader_out.join().unwrap();
    let report = analyse(&writes, &reads);
    eprintln!(
        "cache_coherence {disturbance:?}: {} writes, {} reads ({} without a version), reader stats \
         (local_hits, flushes, invalidations) {:?}, {disturbed} disturbances, {:.1} s",
        report.writes,
        report.reads,
        report.unavailable,
        report.stats,
        started.elapsed().as_secs_f64()
    );
    assert!(
        report.violations.is_empty(),
        "{disturbance:?}: {} violations, first: {:#?}",
        report.violations.len(),
        &report.violations[..report.violations.len().min(10)]
    );
    assert_eq!(report.writes, each * 2, "every update completed");
    assert!(report.stats.0 > 0, "the local tier served hits: {:?}", report.stats);
    if disturbance != Disturbance::None {
        assert!(
            disturbed > 0 && report.stats.1 > 1,
            "disturbed and flushed: {:?}",
            report.stats
        );
    }
}

/// Applies `disturbance` until the writers exit; how many times it struck.
fn disturb(server: &mut Server, writers: &mut [Child], disturbance: Disturbance) -> u32 {
    let start = Instant::now();
    let mut struck = 0;
    let mut next = Duration::from_millis(150);
    while writers.iter_mut().any(|w| w.try_wait().unwrap().is_none()) {
        std::thread::sleep(Duration::from_millis(10));
        if start.elapsed() < next {
            continue;
        }
        match disturbance {
            Disturbance::None => {}
            Disturbance::KillTracking => struck += kill_tracking(server),
            Disturbance::Restart if struck < 2 => {
                server.restart();
                struck += 1;
                next += Duration::from_millis(500);
            }
            Disturbance::Restart => {}
        }
        next += Duration::from_millis(150);
    }
    for writer in writers {
        assert!(writer.wait().unwrap().success(), "a writer failed");
    }
    struck
}

/// `CLIENT KILL` of every connection with tracking on; how many.
fn kill_tracking(server: &Server) -> u32 {
    let mut conn = server.connection();
    let ids = dtrsfw_test_support::tracking_client_ids(&mut conn);
    for id in &ids {
        // Gone already (it reconnects meanwhile) is fine.
        let _: redis::RedisResult<i64> = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query(&mut conn);
    }
    u32::try_from(ids.len()).unwrap()
}

/// What the reader saw, checked.
struct Report {
    writes: u64,
    reads: u64,
    unavailable: u64,
    /// The reader's `(local_hits, flushes, invalidations)`.
    stats: (u64, u64, u64),
    violations: Vec<String>,
}

fn fields(line: &str) -> Vec<u64> {
    line.split(' ').skip(1).map(|f| f.parse().unwrap()).collect()
}

/// Checks every read: per task and key, versions never go backwards; a read started
/// [`VISIBLE_AFTER_US`] after a write of its key completed has that version or newer.
fn analyse(writes: &str, reads: &str) -> Report {
    // Per key: (completed_us, version) sorted by time, with the running maximum version.
    let mut by_key: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
    let mut report = Report {
        writes: 0,
        reads: 0,
        unavailable: 0,
        stats: (0, 0, 0),
        violations: Vec::new(),
    };
    for line in writes.lines() {
        let f = fields(line);
        by_key.entry(f[0]).or_default().push((f[2], f[1]));
        report.writes += 1;
    }
    for list in by_key.values_mut() {
        list.sort_unstable();
        for i in 1..list.len() {
            list[i].1 = list[i].1.max(list[i - 1].1);
        }
    }
    let mut last: HashMap<(u64, u64), u64> = HashMap::new();
    for line in reads.lines() {
        let f = fields(line);
        if line.starts_with('S') {
            report.stats = (f[0], f[1], f[2]);
            continue;
        }
        let (task, k, started, version) = (f[0], f[1], f[2], f[3]);
        report.reads += 1;
        if version == 0 {
            report.unavailable += 1;
            continue;
        }
        let previous = last.insert((task, k), version).unwrap_or(0);
        if version < previous {
            report
                .violations
                .push(format!("task {task} key {k}: {version} after {previous}"));
        }
        let list = by_key.get(&k).map_or(&[][..], Vec::as_slice);
        let seen_by = list.partition_point(|(done, _)| done + VISIBLE_AFTER_US <= started);
        if let Some(&(done, want)) = seen_by.checked_sub(1).map(|i| &list[i])
            && version < want
        {
            let late = started - done;
            report.violations.push(format!(
                "task {task} key {k}: {version} < {want}, {late} us after a write completed"
            ));
        }
    }
    report
}
