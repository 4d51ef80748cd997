//! `dtredis dashboard` over HTTP: the real binary against private servers.

mod dashboard_support;

use std::time::Duration;

use dashboard_support::{Dashboard, add_dead_letter, bearer, csrf_of, get, post, seed_orders};
use dtrsfw_test_support::Server;

const XSS_STREAM: &str = "<script>alert(1)</script>";
const XSS_ATTR: &str = "\"><img src=x onerror=alert(2)>";

/// A stream `orders` with group `orders:billing:cg` (one consumer holding 2 pending, 1
/// entry undelivered), 2 dead letters, and a cache key in namespace `prices`.
fn seed(server: &Server) -> redis::Connection {
    let mut conn = server.connection();
    let conn = &mut conn;
    seed_orders(conn, 2);
    add_dead_letter(
        conn,
        "orders",
        "order.created",
        "{\"order\":7}",
        "max_deliveries",
        "billing",
    );
    add_dead_letter(
        conn,
        "orders",
        "order.cancelled",
        "{\"order\":8,\"note\":\"needle\"}",
        "max_deliveries",
        "audit",
    );
    let key = dtrsfw::redis::caching::cache_key("prices", &dtrsfw::redis::CacheArgs::new().arg("sku", "A1"));
    let redis =
        dtrsfw::redis::RedisInstance::new(dtrsfw::redis::RedisConfig::new().set_redis_url(server.url())).unwrap();
    dtrsfw::redis::cache_data(&redis, serde_json::json!({"price": 12}), &key, Some(600));
    server.connection()
}

fn authed(d: &Dashboard) -> [(&'static str, String); 1] {
    [bearer(&d.token)]
}

fn h<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

const GET_ROUTES: [&str; 13] = [
    "/",
    "/stream?name=orders",
    "/dlq?stream=orders",
    "/dlq/letter?stream=orders&id=0-1",
    "/caches",
    "/caches/lookup?namespace=prices&args=%7B%7D",
    "/api/overview",
    "/api/stream?name=orders",
    "/api/dlq?stream=orders",
    "/api/caches",
    "/metrics",
    "/events",
    "/assets/app.js",
];

const POST_ROUTES: [&str; 5] = [
    "/actions/dlq/replay",
    "/actions/dlq/replay-matching",
    "/actions/dlq/delete",
    "/actions/dlq/purge",
    "/actions/cache/invalidate",
];

#[test]
fn first_line_is_the_url_with_the_token_and_every_route_needs_it() {
    let server = Server::start();
    let d = Dashboard::start(&server.url(), &[]);
    assert_eq!(d.first_line, format!("dashboard: {}/?token={}", d.base, d.token));
    assert_eq!(d.token.len(), 64, "a generated token is 32 random bytes in hex");
    for route in GET_ROUTES {
        let url = d.url(route);
        assert_eq!(get(&url, &[]).status, 401, "GET {route} without a token");
        assert_eq!(
            get(&url, &[("authorization", "Bearer wrong")]).status,
            401,
            "GET {route}, wrong token"
        );
        assert_eq!(
            get(&url, &[("cookie", "dtredis_dashboard=wrong")]).status,
            401,
            "GET {route}, wrong cookie"
        );
    }
    for route in POST_ROUTES {
        assert_eq!(
            post(&d.url(route), &[], &[("stream", "orders")]).status,
            401,
            "POST {route}"
        );
    }
    let wrong = get(&d.url("/?token=wrong"), &[]);
    assert_eq!(wrong.status, 401);
    assert!(wrong.set_cookie.is_none(), "a wrong token sets no cookie");
    assert_eq!(get(&d.url("/"), &h(&authed(&d))).status, 200);
}

#[test]
fn a_first_visit_with_the_token_sets_a_strict_http_only_cookie_and_drops_the_token_from_the_url() {
    let server = Server::start();
    let d = Dashboard::start(&server.url(), &["--token", "s3cret-token"]);
    assert!(d.first_line.ends_with("/?token=s3cret-token"), "{}", d.first_line);
    let first = get(&d.url("/stream?name=orders&token=s3cret-token"), &[]);
    assert_eq!(first.status, 303);
    assert_eq!(first.location.as_deref(), Some("/stream?name=orders"));
    let cookie = first.set_cookie.expect("a cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(get(&d.url("/"), &[("cookie", &pair)]).status, 200);
    assert_eq!(get(&d.url("/api/overview"), &[("cookie", &pair)]).status, 200);
    assert_eq!(
        get(&d.url("/"), &[("cookie", "dtredis_dashboard=s3cret-tokeN")]).status,
        401
    );
}

#[test]
fn the_token_can_come_from_the_environment_and_a_bad_token_is_refused_clearly() {
    let server = Server::start();
    let d = Dashboard::start_with_env(&server.url(), &[], &[("DTREDIS_DASHBOARD_TOKEN", "from-env")]);
    assert_eq!(d.token, "from-env");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dtredis"))
        .args([
            "--url",
            &server.url(),
            "dashboard",
            "--listen",
            "127.0.0.1:0",
            "--token",
            "a b",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token must"), "{out:?}");
}

#[test]
fn sigterm_stops_it_cleanly_even_with_a_live_event_stream_open() {
    let server = Server::start();
    let mut d = Dashboard::start(&server.url(), &[]);
    let url = d.url("/events");
    let token = d.token.clone();
    // An open /events response must not hold the shutdown.
    std::thread::spawn(move || {
        let _ = get(&url, &[("authorization", &format!("Bearer {token}"))]);
    });
    std::thread::sleep(Duration::from_millis(300));
    let status = d
        .terminate(Duration::from_secs(4))
        .expect("exits within 4 s of SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn every_page_renders_the_state_and_the_api_returns_it_as_json() {
    let server = Server::start();
    let _conn = seed(&server);
    let d = Dashboard::start(&server.url(), &[]);
    let auth = authed(&d);
    let auth = h(&auth);
    let page = |route: &str| {
        let r = get(&d.url(route), &auth);
        assert_eq!(r.status, 200, "GET {route}: {}", r.body);
        r
    };
    let overview = page("/");
    assert!(overview.content_type.starts_with("text/html"));
    assert!(overview.body.contains("href=\"/stream?name=orders\""));
    assert!(
        !overview.body.contains("name=orders%3Adlq"),
        "the DLQ is shown with its parent"
    );
    let stream = page("/stream?name=orders");
    for needle in [
        "orders:billing:cg",
        "billing-1",
        "order.created",
        "&quot;order&quot;: 2",
    ] {
        assert!(stream.body.contains(needle), "stream page lacks {needle}");
    }
    let dlq = page("/dlq?stream=orders&q=needle");
    assert!(
        dlq.body.contains("order.cancelled") && !dlq.body.contains(">order.created<"),
        "search by text"
    );
    let by_service = page("/dlq?stream=orders&service=billing");
    assert!(by_service.body.contains(">order.created<") && !by_service.body.contains("order.cancelled"));
    assert!(page("/caches").body.contains("<code>prices</code>"));
    assert!(
        page("/caches/lookup?namespace=prices&args=%7B%22sku%22%3A%22A1%22%7D")
            .body
            .contains("hit in")
    );
    assert!(page("/assets/style.css").content_type.starts_with("text/css"));

    let o = page("/api/overview").json();
    let row = &o["streams"][0];
    assert_eq!(o["total_streams"], 1);
    assert_eq!(
        (row["name"].as_str(), row["length"].as_u64()),
        (Some("orders"), Some(3))
    );
    assert_eq!(
        (
            row["lag"].as_u64(),
            row["pending"].as_u64(),
            row["dead_letters"].as_u64()
        ),
        (Some(1), Some(2), Some(2))
    );
    assert!(o["server"]["version"].is_string() && row["in_history"].is_array());
    let s = page("/api/stream?name=orders").json();
    assert_eq!(s["summary"]["groups"][0]["name"], "orders:billing:cg");
    assert_eq!(s["groups"][0]["consumers"][0]["name"], "billing-1");
    assert_eq!(s["groups"][0]["oldest_pending"].as_array().unwrap().len(), 2);
    assert_eq!(s["entries"]["entries"].as_array().unwrap().len(), 3);
    let l = page("/api/dlq?stream=orders&reason=max").json();
    assert_eq!(
        (l["total"].as_u64(), l["letters"].as_array().unwrap().len()),
        (Some(2), 2)
    );
    assert_eq!(l["letters"][0]["name"], "order.cancelled", "newest first");
    let c = page("/api/caches").json();
    assert_eq!(c["namespaces"][0]["namespace"], "prices");
    assert_eq!(c["namespaces"][0]["approx_keys"], 1);
    let hit = page("/api/caches/lookup?namespace=prices&args=%7B%22sku%22%3A%22A1%22%7D").json();
    assert_eq!(
        (&hit["hit"], &hit["value"]),
        (&serde_json::json!(true), &serde_json::json!({"price": 12}))
    );
    assert_eq!(get(&d.url("/stream?name=nope"), &auth).status, 404);
    assert_eq!(get(&d.url("/stream"), &auth).status, 400);
}

#[test]
fn the_stream_browser_pages_newest_first() {
    let server = Server::start();
    let mut conn = server.connection();
    for i in 0..45 {
        redis::cmd("XADD")
            .arg("s")
            .arg(format!("{}-0", i + 1))
            .arg(&["name", "n", "body"])
            .arg(i)
            .exec(&mut conn)
            .unwrap();
    }
    let d = Dashboard::start(&server.url(), &[]);
    let auth = authed(&d);
    let mut before = String::new();
    let mut seen = Vec::new();
    loop {
        let page = get(&d.url(&format!("/api/stream?name=s&before={before}")), &h(&auth)).json();
        seen.extend(
            page["entries"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        match page["entries"]["next_before"].as_str() {
            Some(next) => before = next.to_owned(),
            None => break,
        }
    }
    let expected: Vec<String> = (1..=45).rev().map(|i| format!("{i}-0")).collect();
    assert_eq!(seen, expected);
}

#[test]
fn values_from_redis_render_as_text_never_as_markup() {
    let server = Server::start();
    let mut conn = server.connection();
    for stream in [XSS_STREAM, XSS_ATTR] {
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(XSS_ATTR)
            .arg("0")
            .arg("MKSTREAM")
            .exec(&mut conn)
            .unwrap();
        redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("name")
            .arg(XSS_STREAM)
            .arg("body")
            .arg(format!("{{\"x\":\"{}\"}}", XSS_ATTR.replace('"', "\\\"")))
            .exec(&mut conn)
            .unwrap();
        add_dead_letter(&mut conn, stream, XSS_ATTR, XSS_STREAM, XSS_STREAM, XSS_ATTR);
    }
    let d = Dashboard::start(&server.url(), &[]);
    let auth = authed(&d);
    let enc = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let mut routes = vec!["/".to_owned()];
    for stream in [XSS_STREAM, XSS_ATTR] {
        routes.push(format!("/stream?name={}", enc(stream)));
        routes.push(format!("/dlq?stream={}", enc(stream)));
    }
    for route in &routes {
        let page = get(&d.url(route), &h(&auth));
        assert_eq!(page.status, 200, "{route}");
        assert!(!page.body.contains("<script>alert"), "{route} has a raw <script>");
        assert!(!page.body.contains("<img src=x"), "{route} has a raw <img>");
        assert!(
            page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") || page.body.contains("&lt;img src=x"),
            "{route} shows the payload as text"
        );
    }
}

#[test]
fn read_only_shows_no_action_and_refuses_every_action_route() {
    let server = Server::start();
    let mut conn = seed(&server);
    let d = Dashboard::start(&server.url(), &["--read-only"]);
    let auth = authed(&d);
    for route in [
        "/",
        "/stream?name=orders",
        "/dlq?stream=orders",
        "/caches",
        "/caches/lookup?namespace=prices&args=%7B%7D",
    ] {
        let page = get(&d.url(route), &h(&auth));
        assert_eq!(page.status, 200);
        assert!(!page.body.contains("/actions/"), "{route} shows an action");
        assert!(page.body.contains("read-only"));
    }
    for route in POST_ROUTES {
        let r = post(
            &d.url(route),
            &h(&auth),
            &[
                ("stream", "orders"),
                ("namespace", "prices"),
                ("confirm", "yes"),
                ("one", "0-1"),
            ],
        );
        assert_eq!(r.status, 403, "POST {route}");
    }
    let dlq_len: u64 = redis::cmd("XLEN").arg("orders:dlq").query(&mut conn).unwrap();
    assert_eq!(dlq_len, 2, "nothing was done");
}

#[test]
fn actions_need_the_csrf_token_and_a_same_origin_request() {
    let server = Server::start();
    let mut conn = seed(&server);
    let d = Dashboard::start(&server.url(), &[]);
    let cookie = format!("dtredis_dashboard={}", d.token);
    let page = get(&d.url("/dlq?stream=orders"), &[("cookie", &cookie)]);
    let csrf = csrf_of(&page.body);
    let url = d.url("/actions/dlq/purge");
    fn form(token: &str) -> Vec<(&str, &str)> {
        vec![("stream", "orders"), ("confirm", "yes"), ("csrf", token)]
    }
    assert_eq!(
        post(
            &url,
            &[("cookie", &cookie)],
            &[("stream", "orders"), ("confirm", "yes")]
        )
        .status,
        403
    );
    assert_eq!(post(&url, &[("cookie", &cookie)], &form("wrong")).status, 403);
    let evil = post(
        &url,
        &[("cookie", &cookie), ("origin", "http://evil.example")],
        &form(&csrf),
    );
    assert_eq!(evil.status, 403);
    let len: u64 = redis::cmd("XLEN").arg("orders:dlq").query(&mut conn).unwrap();
    assert_eq!(len, 2, "no refused request did anything");
    let origin = d.base.clone();
    let ok = post(&url, &[("cookie", &cookie), ("origin", &origin)], &form(&csrf));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("2 dead letter(s) deleted"), "{}", ok.body);
}

#[test]
fn dead_letter_actions_confirm_first_then_do_what_dtredis_dlq_does() {
    let server = Server::start();
    let mut conn = server.connection();
    let ids: Vec<String> = (0..4)
        .map(|i| {
            add_dead_letter(
                &mut conn,
                "jobs",
                &format!("job.{i}"),
                &format!("{{\"n\":{i}}}"),
                "max_deliveries",
                if i < 2 { "a" } else { "b" },
            )
        })
        .collect();
    redis::cmd("XADD")
        .arg("jobs:dlq")
        .arg("*")
        .arg(&["reason", "malformed", "service", "b", "error", "no body"])
        .exec(&mut conn)
        .unwrap();
    let d = Dashboard::start(&server.url(), &[]);
    let auth = authed(&d);
    let auth = h(&auth);
    let accept_json = [auth[0], ("accept", "application/json")];
    let ask = post(
        &d.url("/actions/dlq/replay"),
        &auth,
        &[("stream", "jobs"), ("one", &ids[0])],
    );
    assert_eq!(ask.status, 200);
    assert!(
        ask.body.contains("Replay 1 dead letter(s) of jobs") && ask.body.contains("name=\"confirm\" value=\"yes\"")
    );
    let xlen = |conn: &mut redis::Connection, k: &str| -> u64 { redis::cmd("XLEN").arg(k).query(conn).unwrap() };
    assert_eq!(xlen(&mut conn, "jobs"), 0, "asking does nothing");

    let one = post(
        &d.url("/actions/dlq/replay"),
        &accept_json,
        &[("stream", "jobs"), ("one", &ids[0]), ("confirm", "yes")],
    )
    .json();
    assert_eq!(one, serde_json::json!({"replayed": 1, "skipped": 0}));
    assert_eq!((xlen(&mut conn, "jobs"), xlen(&mut conn, "jobs:dlq")), (1, 4));
    let deleted = post(
        &d.url("/actions/dlq/delete"),
        &accept_json,
        &[("stream", "jobs"), ("id", &ids[1]), ("id", &ids[2]), ("confirm", "yes")],
    )
    .json();
    assert_eq!(deleted["deleted"], 2);
    assert_eq!((xlen(&mut conn, "jobs"), xlen(&mut conn, "jobs:dlq")), (1, 2));
    let matching = post(
        &d.url("/actions/dlq/replay-matching"),
        &accept_json,
        &[("stream", "jobs"), ("service", "b"), ("confirm", "yes")],
    )
    .json();
    assert_eq!(
        matching,
        serde_json::json!({"replayed": 1, "skipped": 1}),
        "the malformed letter stays"
    );
    let replayed: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("jobs")
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    let names: Vec<&str> = replayed
        .iter()
        .map(|(_, f)| f.iter().find(|(k, _)| k == "name").unwrap().1.as_str())
        .collect();
    assert_eq!(names, ["job.0", "job.3"]);
    let purged = post(
        &d.url("/actions/dlq/purge"),
        &accept_json,
        &[("stream", "jobs"), ("confirm", "yes")],
    )
    .json();
    assert_eq!(purged["purged"], 1);
    let none = post(
        &d.url("/actions/dlq/replay"),
        &auth,
        &[("stream", "jobs"), ("confirm", "yes")],
    );
    assert_eq!(none.status, 400, "no selection is a clear error");
}

#[test]
fn cache_actions_invalidate_one_call_or_a_namespace() {
    let server = Server::start();
    let redis =
        dtrsfw::redis::RedisInstance::new(dtrsfw::redis::RedisConfig::new().set_redis_url(server.url())).unwrap();
    let args = |sku: &str| dtrsfw::redis::CacheArgs::new().arg("sku", sku);
    for sku in ["A1", "B2", "C3"] {
        let key = dtrsfw::redis::caching::cache_key("prices", &args(sku));
        dtrsfw::redis::cache_data(&redis, serde_json::json!({"sku": sku, "price": 10}), &key, Some(600));
    }
    let d = Dashboard::start(&server.url(), &[]);
    let auth = authed(&d);
    let auth = h(&auth);
    let hit = get(
        &d.url("/api/caches/lookup?namespace=prices&args=%7B%22sku%22%3A%22A1%22%7D"),
        &auth,
    )
    .json();
    assert_eq!(hit["value"], serde_json::json!({"sku": "A1", "price": 10}));
    let ns = get(&d.url("/api/caches"), &auth).json();
    assert_eq!(ns["namespaces"][0]["approx_keys"], 3);
    assert!(ns["namespaces"][0]["ttl_max_ms"].as_u64().unwrap() <= 600_000);
    let accept_json = [auth[0], ("accept", "application/json")];
    let one = post(
        &d.url("/actions/cache/invalidate"),
        &accept_json,
        &[
            ("namespace", "prices"),
            ("args", "{\"sku\":\"A1\"}"),
            ("confirm", "yes"),
        ],
    )
    .json();
    assert_eq!(one["removed"], 1);
    let miss = get(
        &d.url("/api/caches/lookup?namespace=prices&args=%7B%22sku%22%3A%22A1%22%7D"),
        &auth,
    )
    .json();
    assert_eq!(miss["hit"], false);
    let all = post(
        &d.url("/actions/cache/invalidate"),
        &accept_json,
        &[("namespace", "prices"), ("confirm", "yes")],
    )
    .json();
    assert_eq!(all["removed"], 2);
    assert_eq!(
        get(&d.url("/caches/lookup?namespace=prices&args=nope"), &auth).status,
        400
    );
}

fn metric_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn metrics_report_the_known_state_and_pass_promtool() {
    let server = Server::start();
    let mut conn = seed(&server);
    redis::cmd("XADD")
        .arg("q\"x")
        .arg("*")
        .arg(&["name", "n", "body", "{}"])
        .exec(&mut conn)
        .unwrap();
    let d = Dashboard::start(&server.url(), &[]);
    let r = get(&d.url("/metrics"), &h(&authed(&d)));
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        r.content_type
    );
    let lines = metric_lines(&r.body);
    for expected in [
        "dtrsfw_stream_length{stream=\"orders\"} 3",
        "dtrsfw_stream_length{stream=\"q\\\"x\"} 1",
        "dtrsfw_group_lag{stream=\"orders\",group=\"orders:billing:cg\"} 1",
        "dtrsfw_group_pending{stream=\"orders\",group=\"orders:billing:cg\"} 2",
        "dtrsfw_group_consumers{stream=\"orders\",group=\"orders:billing:cg\"} 1",
        "dtrsfw_dead_letters{stream=\"orders\"} 2",
        "dtrsfw_dead_letters{stream=\"q\\\"x\"} 0",
        "dtrsfw_cache_keys{namespace=\"prices\"} 1",
        "dtrsfw_scan_complete{scan=\"streams\"} 1",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{}", r.body);
    }
    assert!(
        !r.body.contains("stream=\"orders:dlq\""),
        "the DLQ counts as its parent's dead letters"
    );
    let age = lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("dtrsfw_group_oldest_pending_age_seconds{stream=\"orders\",group=\"orders:billing:cg\"} ")
        })
        .expect("an oldest pending age");
    let age: f64 = age.parse().unwrap();
    assert!((0.0..60.0).contains(&age), "{age}");

    let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let promtool =
        promtool.expect("promtool is missing: install Debian's `prometheus` package (scripts/ensure-servers.sh does)");
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), r.body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
