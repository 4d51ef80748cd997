//! A `dtredis dashboard` process for tests: started on a free port against a private
//! server, its printed URL parsed, killed on drop; and a small HTTP client.

#![allow(dead_code, unreachable_pub)] // each test file uses a part of it

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running dashboard.
pub struct Dashboard {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub token: String,
    /// The first stdout line, as printed.
    pub first_line: String,
}

impl Dashboard {
    pub fn start(url: &str, extra: &[&str]) -> Dashboard {
        Self::start_with_env(url, extra, &[])
    }

    pub fn start_with_env(url: &str, extra: &[&str], env: &[(&str, &str)]) -> Dashboard {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dtredis"));
        cmd.args(["--url", url, "dashboard", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("REDIS_URL")
            .env_remove("DTREDIS_DASHBOARD_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start dtredis dashboard");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("dashboard printed no line within 20 s");
            }
        };
        let first_line = line.trim_end_matches('\n').to_owned();
        let rest = first_line
            .strip_prefix("dashboard: http://")
            .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"));
        let (host, token) = rest.split_once("/?token=").expect("URL with ?token=");
        Dashboard {
            child,
            base: format!("http://{host}"),
            token: token.to_owned(),
            first_line,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits for the exit status (at most `limit`).
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reply: status, headers we look at, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn reply(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = response.expect("HTTP request");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (location, set_cookie, content_type) = (header("location"), header("set-cookie"), header("content-type"));
    Reply {
        status: response.status().as_u16(),
        location,
        set_cookie,
        content_type: content_type.unwrap_or_default(),
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// GET with the given headers.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    reply(req.call())
}

/// POST a form with the given headers.
pub fn post(url: &str, headers: &[(&str, &str)], form: &[(&str, &str)]) -> Reply {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    reply(req.send_form(form.iter().copied()))
}

/// `Authorization: Bearer TOKEN`.
pub fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// The value of `name="csrf"` in a page.
pub fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field in the page");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// A stream `orders` of 3 `order.created` entries with a group `orders:billing:cg` whose
/// consumer `billing-1` has read (and holds pending) the first `delivered`.
pub fn seed_orders(conn: &mut redis::Connection, delivered: usize) {
    redis::cmd("XGROUP")
        .arg(&["CREATE", "orders", "orders:billing:cg", "0", "MKSTREAM"])
        .exec(conn)
        .unwrap();
    for i in 0..3 {
        redis::cmd("XADD")
            .arg(&["orders", "*", "name", "order.created", "body"])
            .arg(format!("{{\"order\":{i}}}"))
            .exec(conn)
            .unwrap();
    }
    redis::cmd("XREADGROUP")
        .arg(&["GROUP", "orders:billing:cg", "billing-1", "COUNT"])
        .arg(delivered)
        .arg(&["STREAMS", "orders", ">"])
        .exec(conn)
        .unwrap();
}

/// Adds a dead letter for `channel` as the consumer writes it.
pub fn add_dead_letter(
    conn: &mut redis::Connection,
    channel: &str,
    name: &str,
    body: &str,
    reason: &str,
    service: &str,
) -> String {
    redis::cmd("XADD")
        .arg(format!("{channel}:dlq"))
        .arg("*")
        .arg(&[
            ("name", name),
            ("body", body),
            ("id", "1-0"),
            ("reason", reason),
            ("error", "handler failed: boom"),
            ("service", service),
            ("deliveries", "5"),
            ("time", "1700000000000"),
        ])
        .query(conn)
        .unwrap()
}
