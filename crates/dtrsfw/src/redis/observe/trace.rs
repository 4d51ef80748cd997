//! Feature `opentelemetry` on: spans with the messaging attributes, and the W3C trace
//! context carried in stream entries (`traceparent`, `tracestate`), written and read by
//! OpenTelemetry's own `TraceContextPropagator`: no hand-written format.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
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

/// The `send` span of one send or batch (`messaging.operation.type = send`).
pub(crate) fn send_span(channel: &str, count: usize) -> Span {
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
/// entry carries its context (one trace from send to handler), else a root span.
pub(crate) fn process_span(
    channel: &str,
    group: &str,
    id: &dyn std::fmt::Display,
    name: &str,
    deliveries: u64,
    trace: &TraceFields,
) -> Span {
    let span = info_span!(
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
    if trace.traceparent.is_some() {
        let parent = TraceContextPropagator::new().extract(trace);
        // Fails only without an OpenTelemetry layer, where there is nothing to link.
        let _ = span.set_parent(parent);
    }
    span
}
