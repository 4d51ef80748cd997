//! Feature `opentelemetry`: the library samples its root spans itself
//! (`observe::set_root_span_ratio`) and caps them (`observe::set_root_span_limit`),
//! before creating them, and spans that continue a trace follow its sampling decision,
//! uncapped. Its own test binary: the ratio and the cap are process-wide, and the tests
//! of `tests/opentelemetry.rs` expect the defaults.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dtrsfw::redis::observe::{set_root_span_limit, set_root_span_ratio};
use dtrsfw::redis::{ChannelOptions, Consumer, Message, RedisConfig, RedisInstance, Sender, StartFrom};
use dtrsfw_test_support::Server;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState, TracerProvider};
use opentelemetry::{Context, SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

mod common;

/// Counts the `tracing` spans created, by name: what the library skipped must not even
/// exist (the SDK's sampler would hide a span created and then dropped).
#[derive(Default)]
struct Created(Mutex<HashMap<&'static str, usize>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for &'static Created {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        *self.0.lock().unwrap().entry(attrs.metadata().name()).or_default() += 1;
    }
}

fn created() -> &'static Created {
    static CREATED: OnceLock<Created> = OnceLock::new();
    CREATED.get_or_init(Created::default)
}

/// The `send` and `process` spans created so far.
fn created_spans() -> (usize, usize) {
    let counts = created().0.lock().unwrap();
    let count = |name| counts.get(name).copied().unwrap_or(0);
    (count("send"), count("process"))
}

fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("dtrsfw-tests"));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer).with(created()))
            .expect("the only subscriber of this test binary");
        exporter
    })
}

fn finished(name: &str) -> usize {
    let spans = exporter().get_finished_spans().unwrap();
    spans.iter().filter(|s| s.name == name).count()
}

/// The `traceparent` of every entry of `stream`, in order (`None`: no field).
fn traceparents(server: &Server, stream: &str) -> Vec<Option<String>> {
    let raw: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(&mut server.connection())
        .unwrap();
    raw.into_iter()
        .map(|(_, mut fields)| fields.remove("traceparent"))
        .collect()
}

fn message(i: u64) -> Message {
    Message::new("sampled", &serde_json::json!({ "i": i })).unwrap()
}

/// Sends messages `range` to `channel`, each inside a (sampled) request span of its own.
async fn send_in_request_spans(sender: &Sender, channel: &str, range: std::ops::Range<u64>) {
    for i in range {
        let span = tracing::info_span!("request");
        sender
            .send_message(channel, &message(i))
            .instrument(span)
            .await
            .unwrap();
    }
}

/// A span of the application whose (remote) parent was not sampled: the SDK's default
/// `ParentBased` sampler keeps it unsampled, as it would a request that came in with
/// `-00` flags.
fn unsampled_request_span() -> tracing::Span {
    let span = tracing::info_span!("unsampled request");
    let remote = SpanContext::new(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId::from(0x00f0_67aa_0ba9_02b7),
        TraceFlags::default(),
        true,
        TraceState::default(),
    );
    span.set_parent(Context::new().with_remote_span_context(remote))
        .unwrap();
    span
}

/// Consumes `channel` until `count` entries were handled.
async fn consume(redis: &RedisInstance, channel: &str, count: usize) {
    let consumer = Consumer::new(redis, "svc").unwrap();
    let options = ChannelOptions::new().start_from(StartFrom::Beginning);
    consumer.register_channel(channel, options).await.unwrap();
    let handled = Arc::new(Mutex::new(0usize));
    let seen = handled.clone();
    consumer
        .register_handler(channel, move |_, _| {
            *seen.lock().unwrap() += 1;
            Ok::<(), String>(())
        })
        .unwrap();
    let task = common::spawn_loop(&consumer, Duration::from_millis(20), Duration::from_millis(100));
    let start = Instant::now();
    while *handled.lock().unwrap() < count && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consumer.shutdown();
    task.await.unwrap().unwrap();
    assert_eq!(
        *handled.lock().unwrap(),
        count,
        "every entry is handled, sampled or not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_spans_follow_the_library_ratio_and_continued_traces_their_parent() {
    exporter();
    let server = Server::start();
    let redis = RedisInstance::new(RedisConfig::new().set_redis_url(server.url())).unwrap();
    let sender = Sender::new(&redis);

    // Ratio 0: no root span, but a sampled parent is still continued and an unsampled
    // one is carried (flags 00) without a span. Uncapped, so that the ratio alone decides.
    set_root_span_limit(None);
    set_root_span_ratio(0.0);
    let channel = "sampling-zero";
    sender.register_channel(channel).unwrap();
    for i in 0..20 {
        sender.send_message(channel, &message(i)).await.unwrap();
    }
    send_in_request_spans(&sender, channel, 20..40).await;
    for i in 40..60 {
        let span = unsampled_request_span();
        sender
            .send_message(channel, &message(i))
            .instrument(span)
            .await
            .unwrap();
    }
    let send_name = format!("send {channel}");
    assert_eq!(
        finished(&send_name),
        20,
        "only the sends inside sampled spans have a span"
    );
    assert_eq!(created_spans().0, 20, "no span is created for the other sends");
    let fields = traceparents(&server, channel);
    assert!(fields[..20].iter().all(Option::is_none), "{:?}", &fields[..20]);
    assert!(
        fields[20..40]
            .iter()
            .all(|t| t.as_deref().is_some_and(|t| t.ends_with("-01"))),
        "{:?}",
        &fields[20..40]
    );
    assert!(
        fields[40..60].iter().all(|t| t
            .as_deref()
            .is_some_and(|t| t.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && t.ends_with("-00"))),
        "the unsampled parent is carried as it is: {:?}",
        &fields[40..60]
    );
    consume(&redis, channel, 60).await;
    assert_eq!(
        finished(&format!("process {channel}")),
        20,
        "a process span only for the entries of sampled traces"
    );
    assert_eq!(created_spans(), (20, 20), "no span is created for the other entries");

    // Ratio 0.5: about half of 1 000 root sends start a trace, and their entries (only
    // theirs) carry it; the consumer's root spans follow the same ratio.
    set_root_span_ratio(0.5);
    let channel = "sampling-half";
    sender.register_channel(channel).unwrap();
    for i in 0..1_000 {
        sender.send_message(channel, &message(i)).await.unwrap();
    }
    let spans = finished(&format!("send {channel}"));
    assert!(
        (400..=600).contains(&spans),
        "{spans} of 1000 root sends sampled at 0.5"
    );
    let carried = traceparents(&server, channel).iter().filter(|t| t.is_some()).count();
    assert_eq!(carried, spans, "exactly the sampled sends write a traceparent");
    assert_eq!(created_spans().0, 20 + spans);
    consume(&redis, channel, 1_000).await;
    let processed = finished(&format!("process {channel}"));
    // The sampled entries continue their trace; of the others, about half are sampled.
    let roots = processed - spans;
    assert!(
        (1_000 - spans) * 3 / 10 <= roots && roots <= (1_000 - spans) * 7 / 10,
        "{roots} of {} root entries sampled at 0.5",
        1_000 - spans
    );
    assert_eq!(created_spans().1, 20 + processed);

    // The cap: 300 root sends, at most 50 root spans a second; 100 sends inside sampled
    // spans right after, all traced (a continued trace is never capped).
    set_root_span_ratio(1.0);
    set_root_span_limit(Some(50));
    let channel = "sampling-capped";
    sender.register_channel(channel).unwrap();
    let (sends_before, processes_before) = created_spans();
    let start = Instant::now();
    for i in 0..300 {
        sender.send_message(channel, &message(i)).await.unwrap();
    }
    // One-second windows, the first opened by the first capped span: the sends touched
    // at most this many.
    let windows = start.elapsed().as_secs() + 2;
    let roots = created_spans().0 - sends_before;
    assert!(
        (50..=50 * windows as usize).contains(&roots),
        "{roots} root send spans of 300, capped at 50 a second over at most {windows} windows"
    );
    send_in_request_spans(&sender, channel, 300..400).await;
    assert_eq!(
        created_spans().0 - sends_before,
        roots + 100,
        "continued traces are not capped"
    );
    let carried = traceparents(&server, channel).iter().filter(|t| t.is_some()).count();
    assert_eq!(carried, roots + 100, "exactly the traced sends write a traceparent");
    // The cap is process-wide, and the sends used up this second's room: consume in a
    // later window.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let start = Instant::now();
    consume(&redis, channel, 400).await;
    let windows = start.elapsed().as_secs() + 2;
    // The entries of traced sends continue their trace; the others are roots, capped.
    let processes = created_spans().1 - processes_before;
    let capped = processes.checked_sub(roots + 100).unwrap_or_else(|| {
        panic!(
            "{processes} process spans, fewer than the {} continued traces",
            roots + 100
        )
    });
    assert!(
        (capped > 0 || roots == 300) && capped <= 50 * windows as usize,
        "{capped} root process spans of {} root entries, capped at 50 a second over at most {windows} windows",
        300 - roots
    );
    set_root_span_limit(Some(100));
}
