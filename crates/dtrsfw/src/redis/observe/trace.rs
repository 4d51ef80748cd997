//! Feature `opentelemetry` on: spans with the messaging attributes, and the W3C trace
//! context carried in stream entries (`traceparent`, `tracestate`), written and read by
//! OpenTelemetry's own `TraceContextPropagator`: no hand-written format.

use std::cell::Cell;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use redis::Cmd;
use tracing::{Span, info_span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::handles::ByLabel;

/// The span names of one channel (`send <channel>`, `process <channel>`), formatted once:
/// a span name is not worth an allocation per message.
struct SpanNames {
    send: String,
    process: String,
}

static SPAN_NAMES: ByLabel<SpanNames> = ByLabel::new();

fn span_names(channel: &str) -> &'static SpanNames {
    SPAN_NAMES.get(channel, || SpanNames {
        send: format!("send {channel}"),
        process: format!("process {channel}"),
    })
}

/// The entry field of the W3C `traceparent` (`00-<trace id>-<span id>-<flags>`), written
/// by a send inside a traced span. Only with feature `opentelemetry`.
///
/// ```
/// use dtrsfw::redis::observe::FIELD_TRACEPARENT;
/// assert_eq!(FIELD_TRACEPARENT, "traceparent");
/// ```
pub const FIELD_TRACEPARENT: &str = "traceparent";
/// The entry field of the W3C `tracestate`, written only when not empty. Only with
/// feature `opentelemetry`.
///
/// ```
/// use dtrsfw::redis::observe::FIELD_TRACESTATE;
/// assert_eq!(FIELD_TRACESTATE, "tracestate");
/// ```
pub const FIELD_TRACESTATE: &str = "tracestate";

/// The trace-context fields of one entry: read from an entry, or taken from the current
/// span to be written into entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TraceFields {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Injector for TraceFields {
    fn set(&mut self, key: &str, value: String) {
        match key {
            FIELD_TRACEPARENT => self.traceparent = Some(value),
            FIELD_TRACESTATE if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

impl Extractor for TraceFields {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            FIELD_TRACEPARENT => self.traceparent.as_deref(),
            FIELD_TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![FIELD_TRACEPARENT, FIELD_TRACESTATE]
    }
}

impl TraceFields {
    /// The context of the current span (none when no OpenTelemetry layer records it).
    pub(crate) fn current() -> Self {
        let mut fields = TraceFields::default();
        TraceContextPropagator::new().inject_context(&Span::current().context(), &mut fields);
        fields
    }

    /// Appends the fields to an `XADD` (after `name` and `body`).
    pub(crate) fn write_xadd(&self, cmd: &mut Cmd) {
        if let Some(traceparent) = &self.traceparent {
            cmd.arg(FIELD_TRACEPARENT).arg(traceparent);
            if let Some(tracestate) = &self.tracestate {
                cmd.arg(FIELD_TRACESTATE).arg(tracestate);
            }
        }
    }

    /// The fields of an entry; an entry without them gives none (a root `process` span).
    pub(crate) fn from_entry(fields: &[(Vec<u8>, Vec<u8>)]) -> Self {
        let text = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name.as_bytes())
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        };
        TraceFields {
            traceparent: text(FIELD_TRACEPARENT),
            tracestate: text(FIELD_TRACESTATE),
        }
    }
}

/// The share of root spans (`f64` bits); see [`set_root_span_ratio`].
static ROOT_SPAN_RATIO: AtomicU64 = AtomicU64::new(0x3FF0_0000_0000_0000); // 1.0

/// Sets the share of the library's *root* spans that are created: `send` spans of sends
/// made outside any traced span, and `process` spans of entries that carry no trace
/// context. Clamped to `0.0..=1.0`; only with feature `opentelemetry`.
///
/// Spans that continue a trace follow its sampling decision instead, whatever the ratio:
/// a send inside a sampled span, or an entry whose `traceparent` says sampled, gets its
/// span; inside an unsampled span, or for an unsampled `traceparent`, no span is created
/// (the send still writes the unsampled context, so the services downstream skip it too).
/// A span that is not created costs nothing: `tracing-opentelemetry` builds every span it
/// sees before the SDK's sampler drops it, so sampling here, before the span exists, is
/// what keeps traces cheap at tens of thousands of messages a second (see Cost). Set it
/// to the ratio of the application's `ParentBased(TraceIdRatioBased(r))` sampler.
///
/// By default, `1.0`: every send and every entry without a parent starts a trace, up to
/// the cap of [`set_root_span_limit`] (100 a second).
///
/// ```
/// dtrsfw::redis::observe::set_root_span_ratio(0.01); // 1 % of root sends and entries
/// ```
pub fn set_root_span_ratio(ratio: f64) {
    let ratio = if ratio.is_nan() { 1.0 } else { ratio.clamp(0.0, 1.0) };
    ROOT_SPAN_RATIO.store(ratio.to_bits(), Ordering::Relaxed);
}

/// No cap on root spans (see [`set_root_span_limit`]).
const UNLIMITED: u64 = u64::MAX;

/// The most root spans per second; [`UNLIMITED`] for no cap.
static ROOT_SPAN_LIMIT: AtomicU64 = AtomicU64::new(100);

/// Caps the library's *root* spans (see [`set_root_span_ratio`]) at `per_second` each
/// second, process-wide; `None` lifts the cap. Only with feature `opentelemetry`.
///
/// A span per message costs several microseconds in `tracing-opentelemetry` and the SDK
/// (see Cost in the module docs), more than a send or a no-op handler itself: a service
/// moving tens of thousands of messages a second with every root traced spends most of
/// its CPU on traces. The cap bounds that cost whatever the rate, as the tracers of
/// Datadog (100 traces a second by default) and AWS X-Ray (a reservoir of one a second,
/// then 5 %) do, while a quiet service still traces every message. It applies after the
/// ratio; spans that continue a trace are never capped (their trace was sampled where it
/// began). Counted in windows of one second: at the turn of a window the count starts
/// again, so a burst across a turn may get up to twice the cap.
///
/// By default, `Some(100)`.
///
/// ```
/// dtrsfw::redis::observe::set_root_span_limit(Some(1_000)); // up to 1 000 root spans a second
/// dtrsfw::redis::observe::set_root_span_limit(None); // every root span (at the ratio)
/// ```
pub fn set_root_span_limit(per_second: Option<u32>) {
    ROOT_SPAN_LIMIT.store(per_second.map_or(UNLIMITED, u64::from), Ordering::Relaxed);
}

/// Whether the cap of [`set_root_span_limit`] leaves room for one more root span in this
/// second. Once the second's room is used up, a call only reads two shared words: no
/// cache line bounces between the cores sending.
fn root_span_within_limit() -> bool {
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    static WINDOW: AtomicU64 = AtomicU64::new(0);
    static TAKEN: AtomicU64 = AtomicU64::new(0);
    let limit = ROOT_SPAN_LIMIT.load(Ordering::Relaxed);
    if limit == UNLIMITED {
        return true;
    }
    let second = EPOCH.elapsed().as_secs();
    if WINDOW.load(Ordering::Relaxed) != second && WINDOW.swap(second, Ordering::Relaxed) != second {
        // The first to see a new second starts its count (a span counted meanwhile by
        // another thread is forgiven: the cap is a bound on cost, not an exact quota).
        TAKEN.store(0, Ordering::Relaxed);
    }
    TAKEN.load(Ordering::Relaxed) < limit && TAKEN.fetch_add(1, Ordering::Relaxed) < limit
}

/// Whether this root span is one of the share [`set_root_span_ratio`] asks for, within the
/// cap of [`set_root_span_limit`].
fn root_span_sampled() -> bool {
    root_span_drawn() && root_span_within_limit()
}

/// The draw of [`set_root_span_ratio`].
fn root_span_drawn() -> bool {
    let ratio = f64::from_bits(ROOT_SPAN_RATIO.load(Ordering::Relaxed));
    if ratio >= 1.0 {
        return true;
    }
    thread_local! {
        // A per-thread xorshift: no lock, no shared counter to bounce between cores.
        static STATE: Cell<u64> = Cell::new(0x9E37_79B9_7F4A_7C15 ^ std::process::id() as u64);
    }
    let draw = STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    });
    // The top 53 bits as a uniform number in [0, 1).
    ((draw >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < ratio
}

/// The `send` span of one send or batch (`messaging.operation.type = send`), or a
/// disabled span when this send is not sampled (see [`set_root_span_ratio`]).
pub(crate) fn send_span(channel: &str, count: usize) -> Span {
    let current = Span::current();
    let sampled = if current.is_none() {
        root_span_sampled()
    } else {
        let parent = current.context();
        let parent = parent.span();
        let parent = parent.span_context();
        if parent.is_valid() {
            parent.is_sampled()
        } else {
            root_span_sampled()
        }
    };
    if !sampled {
        return Span::none();
    }
    let span = info_span!(
        "send",
        otel.name = span_names(channel).send.as_str(),
        otel.kind = "producer",
        messaging.system = "redis",
        messaging.operation.type = "send",
        messaging.destination.name = channel,
        messaging.message.id = tracing::field::Empty,
        messaging.batch.message_count = tracing::field::Empty,
    );
    if count != 1 {
        span.record("messaging.batch.message_count", count);
    }
    span
}

/// Records the entry ID of a single-message send on its span.
pub(crate) fn record_message_id(span: &Span, id: &dyn std::fmt::Display) {
    span.record("messaging.message.id", tracing::field::display(id));
}

/// The `process` span of one entry's handlers: a child of the producer's span when the
/// entry carries its context (one trace from send to handler), else a root span; a
/// disabled span when not sampled (see [`set_root_span_ratio`]).
pub(crate) fn process_span(
    channel: &str,
    group: &str,
    id: &dyn std::fmt::Display,
    name: &str,
    deliveries: u64,
    trace: &TraceFields,
) -> Span {
    let parent = trace
        .traceparent
        .is_some()
        .then(|| TraceContextPropagator::new().extract(trace))
        .filter(|parent| parent.span().span_context().is_valid());
    let sampled = match &parent {
        Some(parent) => parent.span().span_context().is_sampled(),
        None => root_span_sampled(),
    };
    if !sampled {
        return Span::none();
    }
    // A root unless the entry carries a context: the loop polling the handler (one slot,
    // async handlers) must not become its parent.
    let span = info_span!(
        parent: None,
        "process",
        otel.name = span_names(channel).process.as_str(),
        otel.kind = "consumer",
        messaging.system = "redis",
        messaging.operation.type = "process",
        messaging.destination.name = channel,
        messaging.consumer.group.name = group,
        messaging.message.id = %id,
        messaging.message.delivery_count = deliveries,
        dtrsfw.message.name = name,
    );
    if let Some(parent) = parent {
        // Fails only without an OpenTelemetry layer, where there is nothing to link.
        let _ = span.set_parent(parent);
    }
    span
}
