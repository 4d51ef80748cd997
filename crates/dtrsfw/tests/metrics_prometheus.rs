//! Feature `metrics` with the documented exporter: `metrics-exporter-prometheus` serving
//! HTTP; the library's metrics are scraped from the endpoint and the text is checked by
//! `promtool check metrics` (Debian's `prometheus` package).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use dtrsfw::redis::caching::{CacheArgs, CachedFunction};
use dtrsfw::redis::{ChannelOptions, Consumer, Message, RedisConfig, RedisInstance, Sender, StartFrom};
use dtrsfw_test_support::Server;
use metrics_exporter_prometheus::PrometheusBuilder;

fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("the exporter listens");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.") && head.contains(" 200 "), "{head}");
    body.to_owned()
}

fn promtool_check(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`) must be installed for this test");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool rejected the exposition:\n{report}\n---\n{text}"
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prometheus_endpoint_serves_every_component_in_valid_text_format() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .expect("exporter installed");
    dtrsfw::redis::observe::describe();

    let server = Server::start();
    let redis = RedisInstance::new(RedisConfig::new().set_redis_url(server.url())).unwrap();
    let sender = Sender::new(&redis);
    sender.register_channel("p-orders").unwrap();
    let consumer = Consumer::new(&redis, "p-svc").unwrap();
    let options = ChannelOptions::new().start_from(StartFrom::Beginning);
    consumer.register_channel("p-orders", options).await.unwrap();
    consumer
        .register_handler("p-orders", |_, _| Ok::<(), String>(()))
        .unwrap();
    let message = Message::new("n", &serde_json::json!({})).unwrap();
    sender.send_messages("p-orders", &vec![message; 3]).await.unwrap();
    let group = consumer.group_name("p-orders");
    let mut processed = 0;
    for _ in 0..10 {
        processed += consumer
            .consume_messages("p-orders", &group, Duration::from_millis(100))
            .await
            .unwrap();
    }
    assert_eq!(processed, 3);
    let cached = CachedFunction::builder("p-ns", ["x"]).build().unwrap();
    cached.call(&redis, &CacheArgs::new().arg("x", &1), || 1);
    drop(redis.get_redis().unwrap());

    let text = tokio::task::spawn_blocking(move || scrape(addr)).await.unwrap();
    for line in [
        r#"messaging_client_sent_messages_total{channel="p-orders",outcome="ok"} 3"#,
        r#"messaging_client_consumed_messages_total{channel="p-orders",service="p-svc"} 3"#,
        r#"dtrsfw_consumer_messages_total{channel="p-orders",service="p-svc",outcome="processed"} 3"#,
        r#"dtrsfw_cache_requests_total{namespace="p-ns",outcome="miss"} 1"#,
        "# TYPE messaging_process_duration_seconds summary",
        "# HELP messaging_client_sent_messages_total Messages written to a stream (outcome ok or error).",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("messaging_client_operation_duration_seconds_count{channel=\"p-orders\",outcome=\"ok\"} 1"));
    let report = promtool_check(&text);
    eprintln!("promtool check metrics: ok {report}");
}
