//! `dtredis` as a user runs it: the real binary against private servers.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use dtrsfw_test_support::{Server, free_port};

fn dtredis(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dtredis"))
        .arg("--url")
        .arg(url)
        .args(args)
        .env_remove("REDIS_URL")
        .output()
        .expect("run dtredis")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An error is one line on stderr, and the exit code is non-zero.
fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(!out.status.success(), "expected failure, got {:?}", out.status);
    let err = stderr(out);
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err:?}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
}

#[test]
fn health_prints_ok_or_fails_fast_on_an_unreachable_server() {
    let server = Server::start();
    let out = dtredis(&server.url(), &["health"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok\n");

    let dead = format!("redis://127.0.0.1:{}/0", free_port());
    let start = Instant::now();
    let out = dtredis(&dead, &["health"]);
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_error(&out, "onnect");
    assert!(start.elapsed() < Duration::from_secs(6), "{:?}", start.elapsed());
}

#[test]
fn info_reports_groups_lag_and_dead_letters_and_names_an_unknown_channel() {
    let server = Server::start();
    let mut conn = server.connection();
    redis::cmd("XGROUP")
        .arg(&["CREATE", "orders", "orders:billing:cg", "0", "MKSTREAM"])
        .exec(&mut conn)
        .unwrap();
    for i in 0..3 {
        redis::cmd("XADD")
            .arg(&["orders", "*", "name", "order.created", "body"])
            .arg(format!("{{\"id\":{i}}}"))
            .exec(&mut conn)
            .unwrap();
    }
    redis::cmd("XADD")
        .arg(&["orders:dlq", "*", "name", "x", "body", "{}"])
        .exec(&mut conn)
        .unwrap();
    let out = dtredis(&server.url(), &["info", "orders", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(info["length"], 3);
    assert_eq!(info["dlq_length"], 1);
    assert_eq!(info["groups"][0]["name"], "orders:billing:cg");
    assert_eq!(info["groups"][0]["lag"], 3);
    assert_eq!(info["groups"][0]["pending"], 0);
    // The detected server: its version as INFO says, and whether it has XACKDEL.
    let server_info: String = redis::cmd("INFO").arg("server").query(&mut conn).unwrap();
    let version = info["server"]["version"].as_str().unwrap();
    assert!(server_info.contains(&format!("_version:{version}\r")), "{info}");
    let has_xackdel = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("XACKDEL")
        .query::<Vec<redis::Value>>(&mut conn)
        .unwrap()[0]
        != redis::Value::Nil;
    assert_eq!(info["server"]["ack_aware_streams"], has_xackdel);

    let text = stdout(&dtredis(&server.url(), &["info", "orders"]));
    assert!(text.contains("3 entries") && text.contains("lag 3"), "{text}");
    assert!(
        text.contains(&format!(
            "server {} {version}",
            info["server"]["product"].as_str().unwrap()
        )),
        "{text}"
    );

    let out = dtredis(&server.url(), &["info", "nope"]);
    assert_one_line_error(&out, "unknown channel \"nope\"");
}

#[test]
fn unknown_subcommand_is_an_error() {
    let out = dtredis("redis://127.0.0.1:1/0", &["frobnicate"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("frobnicate"));
}

#[test]
fn credentials_never_reach_stderr_whatever_the_url_looks_like() {
    let server = Server::start();
    let port = server.port();
    // Each URL with the two secrets it carries. The first is the issue's report: `#` in
    // the password ended redaction early. The last two parse, and fail at AUTH.
    let cases = [
        (
            format!("redis://admin:hun#ter2@127.0.0.1:{port}/0"),
            ["admin", "hun#ter2"],
        ),
        (
            format!("redis+cluster://clusteradm:p#ss-wd@127.0.0.1:{port},127.0.0.1:1"),
            ["clusteradm", "ss-wd"],
        ),
        (
            format!("redis+cluster://clusteradm:pa/ssw0rd@127.0.0.1:{port}/0"),
            ["clusteradm", "ssw0rd"],
        ),
        (
            format!("rediss://tlsuser:tls/secret@127.0.0.1:{port}/0"),
            ["tlsuser", "tls/secret"],
        ),
        (
            format!("rediss+cluster://tlsuser:tls?secret@127.0.0.1:{port}"),
            ["tlsuser", "tls?secret"],
        ),
        (
            format!("redis://127.0.0.1:{port}/0?protocol=pr0t0-secret"),
            ["pr0t0-secret", "pr0t0-secret"],
        ),
        (
            format!("admin:no-scheme-pw@127.0.0.1:{port}"),
            ["admin", "no-scheme-pw"],
        ),
        (
            format!("redis://admin:wrong-pw-Kx@127.0.0.1:{port}/0"),
            ["admin", "wrong-pw-Kx"],
        ),
        (
            format!("redis://admin:wr%23ng-pw-Kx@127.0.0.1:{port}/0"),
            ["admin", "wr%23ng-pw-Kx"],
        ),
    ];
    let commands: [&[&str]; 4] = [
        &["health"],
        &["info", "orders"],
        &["send", "orders", "--name", "n", "--body", "{}"],
        &["bench", "--quick", "--only", "publish"],
    ];
    for (url, secrets) in &cases {
        for args in commands {
            let out = Command::new(env!("CARGO_BIN_EXE_dtredis"))
                .arg("--url")
                .arg(url)
                .args(args)
                .env_remove("REDIS_URL")
                .env("RUST_LOG", "trace")
                .output()
                .expect("run dtredis");
            let err = stderr(&out);
            assert!(!out.status.success(), "{url} {args:?} should fail: {err}");
            for secret in secrets {
                assert!(!err.contains(secret), "{url} {args:?}: {secret:?} on stderr:\n{err}");
                assert!(!stdout(&out).contains(secret), "{url} {args:?}: {secret:?} on stdout");
            }
        }
    }
}

fn dtredis_stdin(url: &str, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dtredis"))
        .arg("--url")
        .arg(url)
        .args(args)
        .env_remove("REDIS_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run dtredis");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn xrange(server: &Server, key: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut conn = server.connection();
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    reply
        .ids
        .into_iter()
        .map(|e| {
            let mut fields: Vec<(String, String)> = e
                .map
                .iter()
                .map(|(k, v)| (k.clone(), redis::from_redis_value_ref::<String>(v).unwrap()))
                .collect();
            fields.sort();
            (e.id, fields)
        })
        .collect()
}

#[test]
fn send_prints_the_entry_id_and_writes_the_python_fields() {
    let server = Server::start();
    let out = dtredis(
        &server.url(),
        &[
            "send",
            "orders",
            "--name",
            "order.created",
            "--body",
            r#"{"id": 1, "city": "Zürich"}"#,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let entries = xrange(&server, "orders");
    assert_eq!(entries.len(), 1);
    assert_eq!(stdout(&out).trim(), entries[0].0, "prints the entry ID");
    assert_eq!(
        entries[0].1,
        vec![
            ("body".to_owned(), r#"{"id": 1, "city": "Zürich"}"#.to_owned()),
            ("name".to_owned(), "order.created".to_owned())
        ]
    );
}

#[test]
fn send_count_and_stdin_send_pipelined_batches_and_print_the_number() {
    let server = Server::start();
    let out = dtredis(
        &server.url(),
        &["send", "orders", "--name", "n", "--body", "{}", "--count", "2500"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "2500\n");
    assert!(
        stderr(&out).is_empty(),
        "no progress bar when output is piped: {:?}",
        stderr(&out)
    );

    let lines: String = (0..1500)
        .map(|i| format!("{{\"name\": \"line\", \"body\": {{\"i\": {i}}}}}\n"))
        .collect();
    let out = dtredis_stdin(&server.url(), &["send", "events", "--stdin"], &lines);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1500\n");
    let entries = xrange(&server, "events");
    assert_eq!(entries.len(), 1500);
    assert!(
        entries[1499]
            .1
            .contains(&("body".to_owned(), r#"{"i":1499}"#.to_owned()))
    );
}

#[test]
fn send_errors_name_the_problem() {
    let server = Server::start();
    let out = dtredis(&server.url(), &["send", "orders", "--name", "n", "--body", "{not json"]);
    assert_one_line_error(&out, "--body is not valid JSON");
    let out = dtredis(&server.url(), &["send", "", "--name", "n", "--body", "{}"]);
    assert_one_line_error(&out, "channel");
    let out = dtredis(&server.url(), &["send", "orders", "--name", "", "--body", "{}"]);
    assert_one_line_error(&out, "name");
    let out = dtredis_stdin(
        &server.url(),
        &["send", "orders", "--stdin"],
        "{\"name\": \"a\", \"body\": 1}\nnope\n",
    );
    assert_one_line_error(&out, "line 2");
    let dead = format!("redis://127.0.0.1:{}/0", free_port());
    let out = dtredis(&dead, &["send", "orders", "--name", "n", "--body", "{}"]);
    assert_one_line_error(&out, "onnect");
}

fn xadd(conn: &mut redis::Connection, key: &str, fields: &[(&str, &[u8])]) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg("*");
    for (k, v) in fields {
        cmd.arg(*k).arg(*v);
    }
    cmd.query(conn).unwrap()
}

fn pending(conn: &mut redis::Connection, key: &str, group: &str) -> u64 {
    let groups: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO").arg("GROUPS").arg(key).query(conn).unwrap();
    groups
        .groups
        .iter()
        .find(|g| g.name == group)
        .map(|g| g.pending as u64)
        .unwrap()
}

#[test]
fn consume_json_count_prints_each_message_once_then_exits_with_nothing_pending() {
    let server = Server::start();
    let mut conn = server.connection();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(xadd(
            &mut conn,
            "orders",
            &[
                ("name", b"order.created"),
                ("body", format!("{{\"id\": {i}, \"s\": \"é\"}}").as_bytes()),
            ],
        ));
    }
    let out = dtredis(
        &server.url(),
        &[
            "consume",
            "orders",
            "--service",
            "billing",
            "--from-start",
            "--count",
            "20",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 20);
    for (i, (line, id)) in lines.iter().zip(&ids).enumerate() {
        assert_eq!(line["id"], id.as_str());
        assert_eq!(line["name"], "order.created");
        assert_eq!(line["body"], serde_json::json!({"id": i, "s": "é"}));
    }
    assert_eq!(
        pending(&mut conn, "orders", "orders:billing:cg"),
        0,
        "everything printed was acknowledged"
    );
}

#[cfg(unix)]
#[test]
fn consume_exits_0_on_sigterm_with_every_printed_entry_acknowledged() {
    use std::io::BufRead;
    let server = Server::start();
    let mut conn = server.connection();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dtredis"))
        .args([
            "--url",
            &server.url(),
            "consume",
            "orders",
            "--service",
            "audit",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The group is created at the end of the stream: wait for it, then publish.
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis::cmd("XINFO")
        .arg("GROUPS")
        .arg("orders")
        .query::<redis::Value>(&mut conn)
        .is_err()
    {
        assert!(Instant::now() < deadline, "consumer never created its group");
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 0..50 {
        xadd(
            &mut conn,
            "orders",
            &[("name", b"n"), ("body", format!("{i}").as_bytes())],
        );
    }
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut printed = Vec::new();
    for _ in 0..10 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        printed.push(line);
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    let total = printed.len() + rest.lines().count();
    assert!(total >= 10);
    // Whatever was printed is acknowledged; what remains unacknowledged was never printed.
    let acked_or_undelivered = 50 - pending(&mut conn, "orders", "orders:audit:cg");
    assert!(
        acked_or_undelivered as usize >= total,
        "printed {total}, but only {acked_or_undelivered} acknowledged/undelivered"
    );
}

#[test]
fn cleanup_deletes_what_every_listed_service_acknowledged() {
    let server = Server::start();
    let mut conn = server.connection();
    for group in ["orders:billing:cg", "orders:audit:cg"] {
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg("orders")
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .exec(&mut conn)
            .unwrap();
    }
    for i in 0..10 {
        xadd(
            &mut conn,
            "orders",
            &[("name", b"n"), ("body", format!("{i}").as_bytes())],
        );
    }
    // billing read and acknowledged everything; audit read 4 and acknowledged 4.
    let out = dtredis(
        &server.url(),
        &["consume", "orders", "--service", "billing", "--count", "10"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = dtredis(
        &server.url(),
        &["consume", "orders", "--service", "audit", "--count", "4"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = dtredis(&server.url(), &["cleanup", "orders", "--consumers", "billing,audit"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let deleted: u64 = stdout(&out).trim().parse().unwrap();
    let len: u64 = redis::cmd("XLEN").arg("orders").query(&mut conn).unwrap();
    assert_eq!(deleted, 10 - len);
    assert!(len >= 6, "entries audit has not acknowledged are kept (len {len})");
    assert!(deleted >= 3, "acknowledged by both: deleted {deleted}");

    let out = dtredis(&server.url(), &["cleanup", "orders", "--consumers", "billing,nobody"]);
    assert_eq!(stdout(&out).trim(), "0", "a service without a group blocks deletion");
}

#[test]
fn dlq_list_replay_purge() {
    let server = Server::start();
    let mut conn = server.connection();
    let good = xadd(
        &mut conn,
        "orders:dlq",
        &[
            ("name", b"order.created"),
            ("body", b"{\"id\": 7}"),
            ("id", b"1-1"),
            ("reason", b"max_deliveries"),
            ("error", b"boom"),
            ("service", b"billing"),
            ("deliveries", b"5"),
            ("time", b"1700000000000"),
        ],
    );
    xadd(
        &mut conn,
        "orders:dlq",
        &[
            ("body", b"{}"),
            ("id", b"1-2"),
            ("reason", b"malformed"),
            ("error", b"entry has no `name` field"),
            ("service", b"billing"),
            ("deliveries", b"1"),
            ("time", b"1700000000001"),
        ],
    );

    let out = dtredis(&server.url(), &["dlq", "orders", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let letters: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["dlq_id"], good.as_str());
    assert_eq!(letters[0]["reason"], "max_deliveries");
    assert_eq!(letters[0]["deliveries"], 5);
    assert_eq!(letters[1]["name"], serde_json::Value::Null);

    let out = dtredis(&server.url(), &["dlq", "orders", "replay", "--id", "no-such"]);
    assert_one_line_error(&out, "no-such");

    let out = dtredis(&server.url(), &["dlq", "orders", "replay"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "replayed 1, kept 1 malformed (not replayable)");
    let entries = xrange(&server, "orders");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].1,
        vec![
            ("body".to_owned(), "{\"id\": 7}".to_owned()),
            ("name".to_owned(), "order.created".to_owned())
        ]
    );

    let out = dtredis(&server.url(), &["dlq", "orders", "purge"]);
    assert_eq!(stdout(&out).trim(), "1");
    let len: u64 = redis::cmd("XLEN").arg("orders:dlq").query(&mut conn).unwrap();
    assert_eq!(len, 0);
}

#[test]
fn cache_get_and_invalidate_use_the_python_keys() {
    let server = Server::start();
    let mut conn = server.connection();
    // The key dtpyfw derives for f(x=1, state="used") in namespace "ns", and a value in
    // its format (zlib-compressed JSON) written by hand.
    let key = "ns:35518bae13e75c666fc5e4837d43620966266d4e7cc3844b4e5f485d5da5fc5a";
    let value = {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(br#"{"price": 10, "tags": ["a"]}"#).unwrap();
        z.finish().unwrap()
    };
    redis::cmd("SET").arg(key).arg(value).exec(&mut conn).unwrap();
    redis::cmd("SET").arg("ns:other").arg("x").exec(&mut conn).unwrap();
    redis::cmd("SET").arg("nsx:kept").arg("x").exec(&mut conn).unwrap();

    let out = dtredis(
        &server.url(),
        &["cache", "get", "ns", "--args", r#"{"x": 1, "state": "used"}"#],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{\"price\":10,\"tags\":[\"a\"]}\n");
    let out = dtredis(
        &server.url(),
        &["cache", "get", "ns", "--args", r#"{"state": "used", "x": 1}"#],
    );
    assert_eq!(
        stdout(&out),
        "miss\n",
        "argument order is part of the key, as in Python"
    );
    let out = dtredis(&server.url(), &["cache", "get", "ns", "--args", "[1]"]);
    assert_one_line_error(&out, "--args is not a JSON object");

    let out = dtredis(
        &server.url(),
        &["cache", "invalidate", "ns", "--args", r#"{"x": 1, "state": "used"}"#],
    );
    assert_eq!(stdout(&out), "1\n", "{}", stderr(&out));
    let out = dtredis(&server.url(), &["cache", "invalidate", "ns"]);
    assert_eq!(stdout(&out), "1\n", "the rest of the namespace: ns:other");
    let kept: bool = redis::cmd("EXISTS").arg("nsx:kept").query(&mut conn).unwrap();
    assert!(kept, "another namespace with the same prefix is untouched");
}

#[test]
fn demo_starts_its_own_server_and_shows_every_part_of_the_job() {
    let out = Command::new(env!("CARGO_BIN_EXE_dtredis"))
        .arg("demo")
        .env_remove("REDIS_URL")
        .output()
        .expect("run dtredis demo");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    for part in [
        "published 3000 order events",
        "billing, 2 instances:",
        // At-least-once: under load a slow instance's entry may be handled twice, so the
        // exact counts are not asserted; the dead letter and the cleanup are exact.
        "1 dead-lettered",
        "audit, 1 instance:",
        "dead letter",
        "max_deliveries after 3 deliveries to billing",
        "cleanup: deleted 3000 entries",
        "hits 1, misses 1",
    ] {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
    let port = stderr(&out)
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse::<u16>().ok())
        .expect("the demo says which private server it started");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the private server is stopped at the end"
    );
}

#[test]
fn bench_runs_against_a_cluster_given_as_a_seed_list_url() {
    let cluster = dtrsfw_test_support::Cluster::start();
    let seeds: Vec<String> = cluster
        .urls()
        .iter()
        .map(|u| u.trim_start_matches("redis://").to_owned())
        .collect();
    let url = format!("redis+cluster://{}", seeds.join(","));
    let out = dtredis(&url, &["health"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The areas whose rows are checked below (the acked area's own test is tests/ack_aware.rs).
    let out = dtredis(&url, &["bench", "--quick", "--json", "--only", "publish,consume,cache"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON report");
    let ops = report["ops"].as_array().expect("ops");
    for name in ["publish_single", "publish_batch", "consume_noop", "cache_hit_async"] {
        let row = ops
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {ops:?}"));
        assert!(row["ours_per_s"].as_f64().is_some_and(|v| v > 0.0), "{row}");
    }
}

/// Runs dtredis, killing it if it has not exited within `limit` (a command that should
/// fail at once must not hang the suite when it does not).
fn dtredis_within(url: &str, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dtredis"))
        .arg("--url")
        .arg(url)
        .args(args)
        .env_remove("REDIS_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run dtredis");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Pending entries of every group of `key` (0 when it has none).
fn pending_in_all_groups(conn: &mut redis::Connection, key: &str) -> u64 {
    let groups: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO").arg("GROUPS").arg(key).query(conn).unwrap();
    groups.groups.iter().map(|g| g.pending as u64).sum()
}

#[test]
fn consume_count_0_is_refused_before_anything_is_read() {
    let server = Server::start();
    let mut conn = server.connection();
    for i in 0..5 {
        xadd(
            &mut conn,
            "orders",
            &[("name", b"n"), ("body", i.to_string().as_bytes())],
        );
    }
    let out = dtredis_within(
        &server.url(),
        &["consume", "orders", "--service", "s", "--from-start", "--count", "0"],
        Duration::from_secs(10),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "refused, not left running: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("invalid value '0' for '--count <COUNT>': must be at least 1"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    assert_eq!(pending_in_all_groups(&mut conn, "orders"), 0, "nothing became pending");
}

#[test]
fn server_errors_name_each_cause_once() {
    let server = Server::start();
    let mut conn = server.connection();
    redis::cmd("SET").arg("notastream").arg("x").exec(&mut conn).unwrap();
    let wrongtype = "\"WRONGTYPE\": Operation against a key holding the wrong kind of value";
    let cases: [(&[&str], String); 4] = [
        (
            &["consume", "notastream", "--service", "s"],
            format!("server error: creating group notastream:s:cg on notastream: {wrongtype}"),
        ),
        (
            &["send", "notastream", "--name", "n", "--body", "{}"],
            format!("server error: sending a message to channel \"notastream\" (attempt 1 of 4): {wrongtype}"),
        ),
        (
            &["send", "notastream", "--name", "n", "--body", "{}", "--count", "3"],
            format!(
                "server error: sending messages 0..3 of a batch of 3 (0 written before) to channel \"notastream\" \
                 (attempt 1 of 4): message 0 of the chunk was refused, 0 of the chunk written: {wrongtype}"
            ),
        ),
        (
            &["cleanup", "notastream", "--consumers", "a,b"],
            format!("server error: reading the groups of notastream: {wrongtype}"),
        ),
    ];
    for (args, expected) in cases {
        let out = dtredis(&server.url(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(stderr(&out), format!("dtredis: {expected}\n"), "{args:?}");
    }
    // A library error wrapped in the binary's own context.
    let out = dtredis(&server.url(), &["send", "orders", "--name", "n", "--body", "{not json"]);
    assert_eq!(
        stderr(&out),
        "dtredis: --body is not valid JSON: serialization error: body of message \"n\" is not JSON: \
         key must be a string at line 1 column 2\n"
    );
    // An error of the connection, whose text the operating system gives.
    let dead = format!("redis://127.0.0.1:{}/0", free_port());
    let out = dtredis(&dead, &["send", "orders", "--name", "n", "--body", "{}"]);
    assert_one_line_error(&out, "Connection refused");
    assert_eq!(
        stderr(&out).matches("Connection refused").count(),
        1,
        "{}",
        stderr(&out)
    );
}

#[test]
fn cache_args_that_are_not_json_or_not_an_object_say_which() {
    let server = Server::start();
    let cases = [
        (
            "[1,2",
            "--args is not valid JSON: EOF while parsing a list at line 1 column 4",
        ),
        (
            r#"{"a": 1,}"#,
            "--args is not valid JSON: trailing comma at line 1 column 9",
        ),
        ("[1,2]", "--args is not a JSON object (it is an array)"),
        ("\"x\"", "--args is not a JSON object (it is a string)"),
        ("7", "--args is not a JSON object (it is a number)"),
    ];
    for (args, expected) in cases {
        for action in ["get", "invalidate"] {
            let out = dtredis(&server.url(), &["cache", action, "ns", "--args", args]);
            assert_eq!(out.status.code(), Some(2), "{action} {args}");
            assert_eq!(stderr(&out), format!("dtredis: {expected}\n"), "{action} {args}");
        }
    }
}

#[test]
fn send_help_says_what_count_prints() {
    let out = Command::new(env!("CARGO_BIN_EXE_dtredis"))
        .args(["send", "--help"])
        .output()
        .expect("run dtredis");
    let help = stdout(&out);
    let about = help.lines().next().unwrap_or_default();
    assert!(
        about.contains("prints its entry ID") && about.contains("--count") && about.contains("prints the number sent"),
        "{help}"
    );
    let count_line = help.lines().find(|l| l.contains("--count <COUNT>")).unwrap_or_default();
    assert!(count_line.contains("prints the number sent"), "{count_line}");
    assert!(!count_line.contains("entry ID"), "{count_line}");
    // And it does: 2 copies print 2 (send_count_and_stdin_... covers larger counts).
    let server = Server::start();
    let out = dtredis(
        &server.url(),
        &["send", "orders", "--name", "n", "--body", "{}", "--count", "2"],
    );
    assert_eq!(stdout(&out), "2\n", "{}", stderr(&out));
    let out = dtredis(
        &server.url(),
        &["send", "orders", "--name", "n", "--body", "{}", "--count", "0"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("must be at least 1"), "{}", stderr(&out));
}
