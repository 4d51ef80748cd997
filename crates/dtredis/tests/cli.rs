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
