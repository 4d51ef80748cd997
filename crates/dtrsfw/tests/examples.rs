//! Every program in `examples/` runs against a private server, ends by itself, and does
//! what it prints.
//!
//! The example binaries are the ones `cargo test` builds beside this test
//! (`target/<profile>/examples/`); running `cargo run --example` from a test would be slow
//! and contend for cargo's build lock. A run limited to this test (`--test examples`)
//! does not build examples: build them first with `cargo build -p dtrsfw --examples`.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dtrsfw_test_support::{Server, free_port, pending_count};

/// Every example ends within about 10 s (their own time limit); this is the test's.
const EXAMPLE_LIMIT: Duration = Duration::from_secs(30);

/// The compiled example `name`, checked to be newer than its source.
fn example_binary(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/examples-<hash> -> target/<profile>/examples/<name>
    let profile_dir = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.rs"));
    let modified = |path: &PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let hint = "`cargo test -p dtrsfw` builds the examples; with `--test examples` alone, \
                run `cargo build -p dtrsfw --examples` first";
    let built = modified(&binary).unwrap_or_else(|| panic!("no {}: {hint}", binary.display()));
    let written = modified(&source).unwrap_or_else(|| panic!("no source {}", source.display()));
    assert!(
        built >= written,
        "{} is older than its source: {hint}",
        binary.display()
    );
    binary
}

/// A running example, killed if the test ends (or panics) before it exits.
struct Running {
    child: Child,
    name: String,
}

impl Running {
    fn start(name: &str, url: &str, args: &[&str]) -> Running {
        let child = Command::new(example_binary(name))
            .args(args)
            .env("REDIS_URL", url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        Running {
            child,
            name: name.to_owned(),
        }
    }

    fn stdout(&mut self) -> BufReader<ChildStdout> {
        BufReader::new(self.child.stdout.take().expect("stdout not taken yet"))
    }

    /// Waits for the exit (at most [`EXAMPLE_LIMIT`]): the status, and what was left
    /// on stdout and stderr.
    fn finish(mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + EXAMPLE_LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the example") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "example {} still running after {EXAMPLE_LIMIT:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            stdout.read_to_string(&mut out).expect("read stdout");
        }
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr.read_to_string(&mut err).expect("read stderr");
        }
        (status, out, err)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `name` to its end and returns its stdout; fails unless it exits 0.
fn run_ok(name: &str, server: &Server, args: &[&str]) -> String {
    let (status, out, err) = Running::start(name, &server.url(), args).finish();
    assert!(
        status.success(),
        "example {name}: {status}\nstdout:\n{out}\nstderr:\n{err}"
    );
    out
}

#[test]
fn config_health_reports_a_healthy_server_and_round_trips_a_key() {
    let server = Server::start();
    let out = run_ok("config_health", &server, &[]);
    assert!(out.contains("healthy: true (async check: true)"), "{out}");
    assert!(out.contains("wrote and read back: hello"), "{out}");
    assert!(
        out.contains(&format!("server: redis://127.0.0.1:{}/0", server.port())),
        "{out}"
    );
}

#[test]
fn config_health_exits_1_when_nothing_listens() {
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let (status, out, err) = Running::start("config_health", &url, &[]).finish();
    assert_eq!(status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("unhealthy: "), "{out}");
}

#[test]
fn cache_wrapper_runs_the_function_once_for_two_equal_calls_and_always_outside_the_condition() {
    let server = Server::start();
    // Twice: the example starts from an empty namespace, so a second run behaves the same.
    for _ in 0..2 {
        let out = run_ok("cache_wrapper", &server, &[]);
        assert!(out.contains("the function ran 3 times for 4 calls"), "{out}");
    }
}

#[test]
fn cache_function_misses_once_then_hits_sync_and_async() {
    let server = Server::start();
    let out = run_ok("cache_function", &server, &[]);
    assert!(out.contains("hits: 2, misses: 1"), "{out}");
    assert!(out.contains("invalidated: true"), "{out}");
    assert!(out.contains("key: examples:cars:"), "{out}");
}

#[test]
fn sender_writes_eleven_entries_with_the_python_fields() {
    let server = Server::start();
    let out = run_ok("sender", &server, &[]);
    assert!(out.contains("sent 11 messages to examples:orders"), "{out}");
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("examples:orders")
        .arg("-")
        .arg("+")
        .query(&mut server.connection())
        .expect("XRANGE");
    assert_eq!(entries.len(), 11);
    let fields: Vec<&str> = entries[0].1.iter().map(|(field, _)| field.as_str()).collect();
    assert_eq!(fields, ["name", "body"]);
}

#[test]
fn consumer_stops_after_the_messages_asked_for_with_nothing_pending() {
    let server = Server::start();
    let out = run_ok("consumer", &server, &[]);
    assert_eq!(out.matches("handled order.created").count(), 3, "{out}");
    assert!(
        out.contains("stopped after the messages asked for: handled 3 messages"),
        "{out}"
    );
    assert_eq!(
        pending_count(
            &mut server.connection(),
            "examples:consumer",
            "examples:consumer:billing:cg"
        ),
        0
    );
}

#[cfg(unix)]
#[test]
fn consumer_stops_gracefully_on_ctrl_c() {
    let server = Server::start();
    // Asked for more messages than it sends, it would wait for its time limit.
    let mut running = Running::start("consumer", &server.url(), &["1000"]);
    let mut stdout = running.stdout();
    let mut handled = 0;
    while handled < 3 {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).expect("read a line") > 0,
            "stdout ended early"
        );
        handled += usize::from(line.starts_with("handled "));
    }
    let pid = running.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read stdout");
    let (status, _, err) = running.finish();
    assert!(status.success(), "{status}\nstderr:\n{err}");
    assert!(rest.contains("stopped on Ctrl-C: handled 3 messages"), "{rest}");
    assert_eq!(
        pending_count(
            &mut server.connection(),
            "examples:consumer",
            "examples:consumer:billing:cg"
        ),
        0
    );
}

#[test]
fn blocking_consumer_audits_every_order_then_stops() {
    let server = Server::start();
    let out = run_ok("blocking_consumer", &server, &[]);
    for id in 1..=3 {
        assert!(out.contains(&format!("audited order.created for order {id}")), "{out}");
    }
    assert!(out.contains("stopped: audited 3 orders"), "{out}");
    assert_eq!(
        pending_count(
            &mut server.connection(),
            "examples:blocking",
            "examples:blocking:audit:cg"
        ),
        0
    );
}
