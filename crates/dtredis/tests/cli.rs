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

    let text = stdout(&dtredis(&server.url(), &["info", "orders"]));
    assert!(text.contains("3 entries") && text.contains("lag 3"), "{text}");

    let out = dtredis(&server.url(), &["info", "nope"]);
    assert_one_line_error(&out, "unknown channel \"nope\"");
}

#[test]
fn unknown_subcommand_is_an_error() {
    let out = dtredis("redis://127.0.0.1:1/0", &["frobnicate"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("frobnicate"));
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
