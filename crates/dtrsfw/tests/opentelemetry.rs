//! Feature `opentelemetry`: the W3C trace context travels in stream entries from the
//! sender's span to the consumer's `process` span (an in-memory span exporter sees one
//! trace per send), entries without it work as before, and the real Python package
//! (`dtpyfw` 0.6.51) both reads entries that carry it and sends entries Rust consumes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dtrsfw::redis::{ChannelOptions, Consumer, Delivery, Message, RedisConfig, RedisInstance, Sender, StartFrom};
use dtrsfw_test_support::{Server, python_peer};
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId, TracerProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// The exporter behind the process-wide subscriber (tokio's workers need a global one).
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("dtrsfw-tests"));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("the only subscriber of this test binary");
        exporter
    })
}

fn instance(server: &Server) -> RedisInstance {
    RedisInstance::new(RedisConfig::new().set_redis_url(server.url())).unwrap()
}

fn current_trace_id() -> TraceId {
    tracing::Span::current().context().span().span_context().trace_id()
}

fn spans_named(name: &str) -> Vec<SpanData> {
    exporter()
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.name == name)
        .collect()
}

/// A consumer of service `svc` on `channel` whose handler records (body "i", trace id).
async fn tracing_consumer(redis: &RedisInstance, channel: &str, seen: &Arc<Mutex<Vec<(u64, TraceId)>>>) -> Consumer {
    let consumer = Consumer::new(redis, "svc").unwrap();
    let options = ChannelOptions::new().start_from(StartFrom::Beginning);
    consumer.register_channel(channel, options).await.unwrap();
    let seen = seen.clone();
    consumer
        .register_async_handler(channel, move |d: Delivery| {
            let seen = seen.clone();
            async move {
                let i = d.payload()["i"].as_u64().unwrap();
                seen.lock().unwrap().push((i, current_trace_id()));
                Ok::<(), String>(())
            }
        })
        .unwrap();
    consumer
}

async fn run_until(consumers: &[&Consumer], done: impl Fn() -> bool) {
    let tasks: Vec<_> = consumers
        .iter()
        .map(|c| {
            let c = (*c).clone();
            tokio::spawn(async move {
                c.persist_consume_all_channels(Duration::from_millis(20), Duration::from_millis(100))
                    .await
            })
        })
        .collect();
    let start = Instant::now();
    while !done() && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for c in consumers {
        c.shutdown();
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

fn message(i: u64) -> Message {
    Message::new("traced", &serde_json::json!({ "i": i })).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_sent_in_a_span_is_handled_in_a_process_span_of_the_same_trace() {
    exporter();
    let server = Server::start();
    let redis = instance(&server);
    let sender = Sender::new(&redis);
    sender.register_channel("otel-orders").unwrap();
    let (seen_a, seen_b) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
    let a = tracing_consumer(&redis, "otel-orders", &seen_a).await;
    let b = tracing_consumer(&redis, "otel-orders", &seen_b).await;

    // 600 single sends and 4 batches of 100, each in a span of its own trace, sent while
    // both instances consume.
    let producer = async {
        let mut expected = HashMap::new();
        for i in 0..600u64 {
            let span = tracing::info_span!("request", i);
            let trace = span.in_scope(current_trace_id);
            sender
                .send_message("otel-orders", &message(i))
                .instrument(span)
                .await
                .unwrap();
            expected.insert(i, trace);
        }
        for batch in 0..4u64 {
            let span = tracing::info_span!("batch request", batch);
            let trace = span.in_scope(current_trace_id);
            let messages: Vec<Message> = (0..100).map(|k| message(600 + batch * 100 + k)).collect();
            sender
                .send_messages("otel-orders", &messages)
                .instrument(span)
                .await
                .unwrap();
            expected.extend((0..100).map(|k| (600 + batch * 100 + k, trace)));
        }
        expected
    };
    let handled = || seen_a.lock().unwrap().len() + seen_b.lock().unwrap().len();
    let both = [&a, &b];
    let consumed = run_until(&both, || handled() >= 1000);
    let (expected, ()) = tokio::join!(producer, consumed);

    let (seen_a, seen_b) = (seen_a.lock().unwrap().clone(), seen_b.lock().unwrap().clone());
    eprintln!("instance a handled {}, instance b {}", seen_a.len(), seen_b.len());
    assert!(!seen_a.is_empty() && !seen_b.is_empty(), "both instances took part");
    let seen = [seen_a, seen_b].concat();
    assert_eq!(seen.len(), 1000, "every message handled once");
    assert_eq!(seen.iter().map(|(i, _)| *i).collect::<HashSet<_>>().len(), 1000);
    assert_eq!(
        expected.values().collect::<HashSet<_>>().len(),
        604,
        "one trace per send"
    );
    for (i, trace) in &seen {
        assert_ne!(*trace, TraceId::INVALID, "message {i} handled outside a trace");
        assert_eq!(
            trace, &expected[i],
            "message {i} handled in another trace than it was sent in"
        );
    }
    // The exported spans: each `process` span is the child of the `send` span that wrote
    // its entry, with the messaging attributes.
    let sends: HashMap<SpanId, SpanData> = spans_named("send otel-orders")
        .into_iter()
        .map(|s| (s.span_context.span_id(), s))
        .collect();
    let processes = spans_named("process otel-orders");
    assert_eq!(sends.len(), 604);
    assert_eq!(processes.len(), 1000);
    let groups: HashSet<String> = processes
        .iter()
        .map(|p| attribute(p, "messaging.consumer.group.name"))
        .collect();
    assert_eq!(groups, HashSet::from(["otel-orders:svc:cg".to_owned()]));
    for p in &processes {
        let send = &sends[&p.parent_span_id];
        assert_eq!(send.span_context.trace_id(), p.span_context.trace_id());
        assert_eq!(attribute(p, "messaging.system"), "redis");
        assert_eq!(attribute(p, "messaging.operation.type"), "process");
        assert_eq!(attribute(send, "messaging.operation.type"), "send");
        assert_eq!(attribute(send, "messaging.destination.name"), "otel-orders");
    }
}

fn attribute(span: &SpanData, key: &str) -> String {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
        .unwrap_or_else(|| panic!("span {} has no attribute {key}: {:?}", span.name, span.attributes))
}

/// Every entry of `stream`: its fields by name.
fn entries(server: &Server, stream: &str) -> Vec<HashMap<String, String>> {
    let raw: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(&mut server.connection())
        .unwrap();
    raw.into_iter()
        .map(|(_, fields)| fields.into_iter().collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_carry_the_send_spans_traceparent_and_entries_without_it_still_run() {
    exporter();
    let server = Server::start();
    let redis = instance(&server);
    let sender = Sender::new(&redis);
    sender.register_channel("otel-plain").unwrap();
    // Outside a span of the application the `send` span starts a trace of its own.
    sender.send_message("otel-plain", &message(0)).await.unwrap();
    let span = tracing::info_span!("request");
    let trace = span.in_scope(current_trace_id);
    sender
        .send_message("otel-plain", &message(1))
        .instrument(span)
        .await
        .unwrap();
    // As the Python package (or a sender without the feature) writes it: no trace field.
    redis::cmd("XADD")
        .arg("otel-plain")
        .arg("*")
        .arg("name")
        .arg("traced")
        .arg("body")
        .arg(r#"{"i": 2}"#)
        .exec(&mut server.connection())
        .unwrap();

    let fields = entries(&server, "otel-plain");
    let traceparent = &fields[1]["traceparent"];
    assert_eq!(traceparent.len(), 55, "{traceparent}");
    assert!(traceparent.starts_with(&format!("00-{trace}-")), "{traceparent}");
    assert!(
        !fields[1].contains_key("tracestate"),
        "an empty tracestate is not written"
    );
    assert!(!fields[0]["traceparent"].contains(&trace.to_string()));
    assert!(!fields[2].contains_key("traceparent"));

    let seen = Arc::new(Mutex::new(Vec::new()));
    let consumer = tracing_consumer(&redis, "otel-plain", &seen).await;
    run_until(&[&consumer], || seen.lock().unwrap().len() >= 3).await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|(i, _)| *i);
    assert_eq!(seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(seen[1].1, trace);
    let others = [seen[0].1, seen[2].1];
    assert!(
        others.iter().all(|t| *t != TraceId::INVALID && *t != trace),
        "traces of their own"
    );
    assert_ne!(others[0], others[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_package_reads_traced_entries_and_rust_reads_python_entries() {
    exporter();
    let server = Server::start();
    let redis = instance(&server);
    let sender = Sender::new(&redis);
    sender.register_channel("otel-py").unwrap();
    let span = tracing::info_span!("request");
    sender
        .send_message("otel-py", &message(1))
        .instrument(span.clone())
        .await
        .unwrap();
    sender
        .send_messages("otel-py", &[message(2), message(3)])
        .instrument(span)
        .await
        .unwrap();
    assert!(
        entries(&server, "otel-py")
            .iter()
            .all(|f| f.contains_key("traceparent"))
    );

    let url = server.url();
    let got =
        tokio::task::spawn_blocking(move || python_peer(&url, &["consume", "otel-py", "python-service", "3", "10"]))
            .await
            .unwrap();
    let expected: Vec<_> = (1..=3)
        .map(|i| serde_json::json!({"name": "traced", "body": {"i": i}}))
        .collect();
    assert_eq!(got, expected, "dtpyfw ignores the extra field");

    // Python's entries have no trace field: Rust handles them in traces of their own.
    let file = server.dir().join("to-send.jsonl");
    let lines: String = (10..13)
        .map(|i| serde_json::json!({"name": "from-python", "body": {"i": i}}).to_string() + "\n")
        .collect();
    std::fs::write(&file, lines).unwrap();
    let url = server.url();
    tokio::task::spawn_blocking(move || python_peer(&url, &["send", "otel-from-py", file.to_str().unwrap()]))
        .await
        .unwrap();
    assert!(
        entries(&server, "otel-from-py")
            .iter()
            .all(|f| !f.contains_key("traceparent"))
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let consumer = tracing_consumer(&redis, "otel-from-py", &seen).await;
    run_until(&[&consumer], || seen.lock().unwrap().len() >= 3).await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|(i, _)| *i);
    assert_eq!(seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [10, 11, 12]);
    assert!(seen.iter().all(|(_, t)| *t != TraceId::INVALID));
}
