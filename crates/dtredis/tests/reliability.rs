//! Reliability with real processes: consumer processes killed with `kill -9` while they
//! hold entries. The figures each scenario measures are printed (`--nocapture`); the
//! guarantees are asserted, never the speed. See `RELIABILITY.md` at the repository root.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dtrsfw::redis::{Message, RedisConfig, RedisInstance, Sender};
use dtrsfw_test_support::Server;

/// `dtredis consume <channel> --service <service> --json`: prints every entry as a JSON
/// line `{"id", "name", "body"}`, flushed before it acknowledges, and exits 0 on SIGTERM.
/// Entries pending 1 s are taken over by the other instances; eight handled at a time.
fn consumer_process(url: &str, channel: &str, service: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dtredis"))
        .args([
            "--url",
            url,
            "consume",
            channel,
            "--service",
            service,
            "--json",
            "--from-start",
        ])
        .args(["--reclaim-idle", "1", "--parallel", "8"])
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the consumer process")
}

/// A running consumer process and the entry IDs it printed so far.
struct Tail {
    child: Child,
    ids: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Tail {
    fn start(mut child: Child) -> Tail {
        let ids = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let (ids2, stderr2) = (ids.clone(), stderr.clone());
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    // A line cut by the kill is not JSON: it was never acknowledged either.
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && let Some(id) = v["id"].as_str()
                    {
                        ids2.lock().unwrap().push(id.to_owned());
                    }
                }
            }),
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let mut s = stderr2.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            }),
        ];
        Tail {
            child,
            ids,
            stderr,
            readers,
        }
    }

    fn printed(&self) -> usize {
        self.ids.lock().unwrap().len()
    }

    /// Waits for the process to end and for its output to be read; returns the IDs.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        let status = self.child.wait().expect("wait for the consumer");
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        let ids = std::mem::take(&mut *self.ids.lock().unwrap());
        let stderr = std::mem::take(&mut *self.stderr.lock().unwrap());
        (status, ids, stderr)
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        // A failing test must not leave consumer processes behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pending entries per consumer name in `group` (`XPENDING` summary form).
fn pending_by_consumer(conn: &mut redis::Connection, channel: &str, group: &str) -> HashMap<String, u64> {
    let v: redis::Value = redis::cmd("XPENDING").arg(channel).arg(group).query(conn).unwrap();
    let mut out = HashMap::new();
    if let redis::Value::Array(items) = v
        && let Some(redis::Value::Array(consumers)) = items.get(3)
    {
        for c in consumers {
            if let redis::Value::Array(pair) = c
                && let [name, count] = pair.as_slice()
            {
                let name: String = redis::from_redis_value(name.clone()).unwrap();
                let count: String = redis::from_redis_value(count.clone()).unwrap();
                out.insert(name, count.parse().unwrap());
            }
        }
    }
    out
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

#[test]
fn kill_9_of_one_of_three_consumer_processes_loses_nothing() {
    const TOTAL: usize = 20_000;
    let (channel, service) = ("orders", "s");
    let server = Server::start();
    let url = server.url();
    let redis = RedisInstance::new(RedisConfig::new().set_redis_url(&url)).unwrap();
    let sender = Sender::new(&redis);
    sender.register_channel(channel).unwrap();
    let messages: Vec<Message> = (0..TOTAL)
        .map(|i| Message::new("order.created", &serde_json::json!({ "i": i })).unwrap())
        .collect();
    let sent: HashSet<String> = sender
        .send_messages_blocking(channel, &messages)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(sent.len(), TOTAL);

    let mut tails: Vec<Tail> = (0..3)
        .map(|_| Tail::start(consumer_process(&url, channel, service)))
        .collect();
    // Kill the first one mid-stream, once it has printed (and so holds) a good share.
    let start = Instant::now();
    while tails[0].printed() < 1000 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the consumer printed nothing: {}",
            tails[0].stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Freeze it until it is caught holding entries (read, not acknowledged), then kill
    // it: a frozen process cannot acknowledge, so what it holds is what the kill leaves.
    let group = format!("{channel}:{service}:cg");
    let mut conn = server.connection();
    let victim_pid = tails[0].child.id();
    let held_by_victim = |conn: &mut redis::Connection| -> u64 {
        pending_by_consumer(conn, channel, &group)
            .into_iter()
            .filter(|(name, _)| name.rsplit('.').nth(1) == Some(victim_pid.to_string().as_str()))
            .map(|(_, n)| n)
            .sum()
    };
    loop {
        signal(victim_pid, "STOP");
        // Let a command already on the wire reach the server.
        std::thread::sleep(Duration::from_millis(20));
        if held_by_victim(&mut conn) > 0 {
            break;
        }
        signal(victim_pid, "CONT");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the victim never held entries"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut victim = tails.remove(0);
    victim.child.kill().unwrap(); // SIGKILL
    let killed_at = Instant::now();
    let (_, victim_ids, _) = victim.finish();
    // Nobody can reclaim them before the reclaim idle time (1 s).
    let in_flight = held_by_victim(&mut conn);

    let covered = |tails: &[Tail]| {
        let mut seen: HashSet<String> = victim_ids.iter().cloned().collect();
        for t in tails {
            seen.extend(t.ids.lock().unwrap().iter().cloned());
        }
        sent.is_subset(&seen)
    };
    // Done when every entry was printed and none is pending: what the victim held (printed
    // or not) was reclaimed by a survivor, handled again and acknowledged.
    while !covered(&tails) || pending_by_consumer(&mut conn, channel, &group).values().sum::<u64>() > 0 {
        assert!(
            killed_at.elapsed() < Duration::from_secs(40),
            "not every entry was processed and acknowledged after the kill"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let recovered_in = killed_at.elapsed();
    for t in &tails {
        signal(t.child.id(), "TERM");
    }
    let mut printed: Vec<String> = victim_ids.clone();
    for t in tails {
        let (status, ids, stderr) = t.finish();
        assert!(status.success(), "a survivor did not stop cleanly: {status} {stderr}");
        printed.extend(ids);
    }
    let unique: HashSet<&String> = printed.iter().collect();
    let duplicates = printed.len() - unique.len();
    eprintln!(
        "crash: sent {TOTAL}, printed {} (victim {} before kill -9), unique {}, duplicates {duplicates}, \
         in flight at the kill {in_flight}, all processed {recovered_in:?} after the kill",
        printed.len(),
        victim_ids.len(),
        unique.len()
    );
    assert!(sent.iter().all(|id| unique.contains(id)), "an entry was lost");
    assert_eq!(unique.len(), TOTAL, "only sent entries were printed");
    assert!(
        duplicates as u64 <= in_flight,
        "{duplicates} duplicates, but only {in_flight} entries were in flight at the kill"
    );
    assert_eq!(
        pending_by_consumer(&mut conn, channel, &group).values().sum::<u64>(),
        0,
        "nothing pending after the survivors stopped"
    );
}
