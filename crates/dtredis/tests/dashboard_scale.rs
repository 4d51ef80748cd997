//! `dtredis dashboard` at scale: 1 000 streams, a 200 000-entry stream with 10 000
//! pending entries and 50 000 dead letters. In a release build every page must answer
//! within 300 ms (the bound; work per request is bounded by SCAN budgets and
//! pagination). A debug build is many times slower, so there the bound is 10 s: still
//! far below what reading the big stream or the whole dead-letter stream would take,
//! so unbounded work is caught in every build. The figures are printed
//! (`--nocapture`).

mod dashboard_support;

use std::time::{Duration, Instant};

use dashboard_support::{Dashboard, bearer, get};
use dtrsfw_test_support::Server;

const BOUND: Duration = if cfg!(debug_assertions) {
    Duration::from_secs(10)
} else {
    Duration::from_millis(300)
};

fn seed(conn: &mut redis::Connection) {
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        let s = format!("svc:{i:04}");
        pipe.cmd("XADD")
            .arg(&s)
            .arg("*")
            .arg(&["name", "n", "body", "{}"])
            .ignore();
        pipe.cmd("XGROUP")
            .arg(&["CREATE", &s, &format!("{s}:worker:cg"), "0"])
            .ignore();
    }
    pipe.exec(conn).unwrap();
    for batch in 0..20 {
        let mut pipe = redis::pipe();
        for i in 0..10_000 {
            pipe.cmd("XADD")
                .arg("big")
                .arg("*")
                .arg("name")
                .arg("order.created")
                .arg("body")
                .arg(format!("{{\"order\":{},\"dealer\":\"dt-0042\"}}", batch * 10_000 + i))
                .ignore();
        }
        pipe.exec(conn).unwrap();
    }
    redis::cmd("XGROUP")
        .arg(&["CREATE", "big", "big:billing:cg", "0"])
        .exec(conn)
        .unwrap();
    redis::cmd("XREADGROUP")
        .arg(&[
            "GROUP",
            "big:billing:cg",
            "b-1",
            "COUNT",
            "10000",
            "STREAMS",
            "big",
            ">",
        ])
        .exec(conn)
        .unwrap();
    for batch in 0..5 {
        let mut pipe = redis::pipe();
        for i in 0..10_000 {
            pipe.cmd("XADD")
                .arg("big:dlq")
                .arg("*")
                .arg(&[
                    ("name", "order.created"),
                    ("reason", "max_deliveries"),
                    ("service", "billing"),
                    ("error", "boom"),
                    ("id", "1-0"),
                    ("deliveries", "5"),
                    ("time", "1700000000000"),
                ])
                .arg("body")
                .arg(format!("{{\"order\":{}}}", batch * 10_000 + i))
                .ignore();
        }
        pipe.exec(conn).unwrap();
    }
}

#[test]
fn every_page_answers_within_300_ms_with_a_large_server() {
    let server = Server::start();
    let mut conn = server.connection();
    seed(&mut conn);
    let d = Dashboard::start(&server.url(), &[]);
    let auth = bearer(&d.token);
    let headers = [(auth.0, auth.1.as_str())];
    let letters = get(&d.url("/api/dlq?stream=big"), &headers).json();
    let letter = letters["letters"][0]["dlq_id"].as_str().unwrap().to_owned();
    let mid = get(&d.url("/api/stream?name=big"), &headers).json()["entries"]["next_before"]
        .as_str()
        .unwrap()
        .to_owned();
    let routes = [
        "/".to_owned(),
        "/?page=10".to_owned(),
        "/stream?name=big".to_owned(),
        format!("/stream?name=big&before={mid}"),
        "/dlq?stream=big".to_owned(),
        "/dlq?stream=big&q=no-such-text".to_owned(),
        format!("/dlq/letter?stream=big&id={letter}"),
        "/caches".to_owned(),
        "/metrics".to_owned(),
        "/api/overview".to_owned(),
        "/api/dlq?stream=big&service=billing".to_owned(),
    ];
    let mut slow = Vec::new();
    for route in &routes {
        let mut times: Vec<Duration> = (0..3)
            .map(|_| {
                let start = Instant::now();
                let r = get(&d.url(route), &headers);
                assert_eq!(r.status, 200, "{route}: {}", r.body);
                start.elapsed()
            })
            .collect();
        times.sort();
        let median = times[1];
        eprintln!("{route:<50} median {:>6.1} ms", median.as_secs_f64() * 1000.0);
        if median > BOUND {
            slow.push(format!("{route}: {median:?}"));
        }
    }
    assert!(slow.is_empty(), "pages slower than {BOUND:?}: {slow:?}");
}
