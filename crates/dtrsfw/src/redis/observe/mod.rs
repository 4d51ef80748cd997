//! Observability: metrics (feature `metrics`) and trace context carried through the
//! streams (feature `opentelemetry`). Both are off by default; off, nothing of this
//! module is compiled in but empty, zero-sized hooks (no metric call, no span field, no
//! extra entry field, no `XINFO`).
//!
//! ```toml
//! dtrsfw = { version = "0.1", features = ["metrics", "opentelemetry"] }
//! ```
//!
//! # Metrics
//!
//! The library emits through the [`metrics`](https://docs.rs/metrics) facade: the
//! application installs the recorder it wants (the library runs no HTTP server of its
//! own). Names follow the OpenTelemetry messaging semantic conventions where one exists
//! (`messaging.client.sent.messages` → `messaging_client_sent_messages_total`, ...),
//! the others are prefixed `dtrsfw_`; durations are in seconds. Labels are bounded:
//! `channel` (the stream), `service` (the consumer's service), `outcome`, `namespace`
//! (a cached function's namespace, fixed in code), `server` (a cache server's URL, shown
//! with its credentials masked) and `kind`; never an entry ID, a body or an argument.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `messaging_client_sent_messages_total` | counter | channel, outcome (`ok`, `error`) | messages written by a [`Sender`](crate::redis::Sender) (a failed batch counts all its messages) |
//! | `messaging_client_operation_duration_seconds` | histogram | channel, outcome | one send or one batch, retries included |
//! | `dtrsfw_send_retries_total` | counter | channel | attempts retried after a transient failure |
//! | `messaging_client_consumed_messages_total` | counter | channel, service | entries a [`Consumer`](crate::redis::Consumer) received (read, or taken over from a pending list) |
//! | `messaging_process_duration_seconds` | histogram | channel, service, outcome (`ok`, `error`) | running every handler of one entry |
//! | `dtrsfw_consumer_messages_total` | counter | channel, service, outcome (`processed`, `failed`, `retried`, `dead_lettered`, `reclaimed`, `deleted_pending`) | what happened to entries; the same counts as [`ChannelStats`](crate::redis::ChannelStats) |
//! | `dtrsfw_consumer_in_flight_messages` | gauge | channel, service | entries the loop holds (queued or running) |
//! | `dtrsfw_consumer_lag_messages` | gauge | channel, service | entries not yet delivered to the group (`XINFO GROUPS` lag) |
//! | `dtrsfw_consumer_pending_messages` | gauge | channel, service | entries delivered to the group and not acknowledged |
//! | `dtrsfw_cache_requests_total` | counter | namespace, outcome (`hit`, `local_hit` (the opt-in local tier), `miss`, `error`, `joined`, `short_circuited`, `bypassed`) | cached calls by result; the same counts as [`CacheStats`](crate::redis::CacheStats) |
//! | `dtrsfw_cache_lookup_duration_seconds` | histogram | namespace | one cache read (`GET`) |
//! | `dtrsfw_cache_compute_duration_seconds` | histogram | namespace | computing a value on a miss |
//! | `dtrsfw_cache_circuit_open` | gauge | server | 1 while the cache's circuit to that server is open, 0 once closed again |
//! | `dtrsfw_connection_connects_total` | counter | kind (`sync`, `shared`, `dedicated`), outcome | connections opened; after the first, each is a reconnect (the shared client's own reconnects inside redis-rs are not seen) |
//! | `dtrsfw_connection_pool_connections` | gauge | — | connections of the sync pools, idle or lent |
//! | `dtrsfw_connection_pool_in_use` | gauge | — | connections of the sync pools lent out |
//! | `dtrsfw_connection_pool_waits_total` | counter | — | borrows that found a pool at its size and waited |
//!
//! The gauges of a consumer are refreshed by its loop at most once a second, with one
//! `XINFO GROUPS` per channel: never a Redis round trip per message. A counter or
//! histogram is looked up in the recorder once per label value (a consumer's channel, a
//! sent channel, a cache namespace) and kept, so a message or a cached call costs atomic
//! adds, not label strings and a registry search. Install the recorder before the first
//! message: metrics recorded before it are lost, as with any `metrics` facade, and the
//! handles resolved then stay without it.
//!
//! ## Exposing them to Prometheus
//!
//! With `metrics-exporter-prometheus` (its HTTP listener serves `/metrics`; histograms
//! are rendered as summaries unless buckets are configured):
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! metrics_exporter_prometheus::PrometheusBuilder::new()
//!     .with_http_listener(([0, 0, 0, 0], 9000))
//!     .install()?;
//! dtrsfw::redis::observe::describe(); // `# HELP` lines and units
//! // ... build the RedisInstance, Sender, Consumer as usual.
//! # Ok(()) }
//! ```
//!
//! `tests/metrics_prometheus.rs` scrapes such an endpoint and checks the text with
//! `promtool check metrics`.
//!
//! # Traces
//!
//! With feature `opentelemetry`, the sender and the consumer open `tracing` spans with
//! the messaging attributes (`messaging.system = "redis"`, `messaging.destination.name`,
//! `messaging.operation.type` = `send` or `process`, `messaging.message.id`,
//! `messaging.batch.message_count`, `messaging.consumer.group.name`), at level `INFO`,
//! named `send <channel>` and `process <channel>` through `otel.name`. Install
//! `tracing-opentelemetry`'s layer in the application's subscriber; without it (or with
//! `INFO` filtered out) no context exists and nothing is written.
//!
//! The `send` span (a child of the application's current span) is injected into every
//! entry as W3C trace context by OpenTelemetry's own `TraceContextPropagator`: an extra
//! field `traceparent`, and `tracestate` when it is not empty. The consumer extracts it
//! and runs the entry's handlers in a `process` span that is a **child** of the `send`
//! span: one trace from the request that sent the message to every handler of every
//! service that consumed it. (A child rather than a link: one entry is processed per
//! span, so there is one parent to name; a retried entry gets one more `process` child
//! of the same `send`.)
//!
//! ```text
//!  service A                         stream entry                      service B
//!  span "request" ─┐                                                   (any instance)
//!                  └ span "send orders" ──► XADD orders * name  order.created
//!                       trace 4bf9…, span 00f0…          body  {"id":7}
//!                                                        traceparent 00-4bf9…-00f0…-01
//!                                                        tracestate  (if any)
//!                                      XREADGROUP ──► span "process orders"
//!                                                     parent 00f0…, trace 4bf9…
//!                                                        └ the handlers' own spans
//! ```
//!
//! Entries without the fields (written by `dtpyfw`, or by a sender without the feature)
//! are processed as before, in a `process` span that starts a trace of its own. The
//! extra fields do not disturb the Python package: it reads `name` and `body` only
//! (tested with the real `dtpyfw` 0.6.51 in `tests/opentelemetry.rs`). Dead letters keep
//! `name` and `body` only.
//!
//! ## Sampling
//!
//! Spans that continue a trace follow its decision: a send inside a sampled span, and an
//! entry whose `traceparent` flags say sampled, get their span; inside an unsampled span
//! the send writes the unsampled context (flags `00`) and creates no span, and such an
//! entry is handled without one. *Root* spans (a send outside any traced span, an entry
//! without trace context) are sampled by the library itself, before the span exists,
//! at `set_root_span_ratio` (feature `opentelemetry`; by default every one) and **at most
//! 100 a second** per process (`set_root_span_limit`; `None` lifts the cap), as
//! Datadog's tracers (100 traces a second) and AWS X-Ray (one a second, then 5 %) cap
//! theirs: a quiet service traces every message, a busy one does not spend its CPU on
//! traces (see Cost). Spans that continue a trace are never capped. Sampling before the
//! span exists matters: `tracing-opentelemetry` builds every span it sees before the
//! SDK's sampler drops it, so a `ParentBased(TraceIdRatioBased(0.01))` sampler alone
//! still pays for 100 % of the spans. To sample by ratio, set both to the same one:
//!
//! ```
//! # #[cfg(feature = "opentelemetry")]
//! dtrsfw::redis::observe::set_root_span_ratio(0.01);
//! // SdkTracerProvider::builder()
//! //     .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.01))))
//! ```
//!
//! # Cost
//!
//! Off (the default), nothing is compiled in. On, measured with `dtredis bench` (each row
//! ours beside a bare redis-rs loop in the same run; ratio ours/bare) from one release
//! build with `--features observe`: without `--observe` (features compiled in, nothing
//! installed), then `--observe` with a Prometheus recorder alone (its upkeep every 5 s),
//! with the recorder and a `tracing-opentelemetry` layer at `INFO` over the SDK's batch
//! span processor sampling 1 % (`set_root_span_ratio(0.01)` and a
//! `ParentBased(TraceIdRatioBased(0.01))` sampler), and with every span. Four variants
//! in rotation, three rounds each, `--only publish,consume`, on the 2-core machine with
//! nothing else running (Redis 7.0.15, release build of c9cc464, 2026-12-02); medians
//! of the three runs' ratios:
//!
//! | row | without | metrics only | both, 1 % sampled | both, every span |
//! |---|---|---|---|---|
//! | `publish_single` | 0.96 | 1.01 | 0.87 | 0.79 |
//! | `publish_batch` | 1.04 | 0.93 | 1.03 | 0.98 |
//! | `publish_concurrent` | 0.98 | 0.96 | 0.90 | 0.43 |
//! | `publish_blocking` | 0.93 | 0.95 | 0.94 | 0.81 |
//! | `publish_single_wait1` | 0.93 | 0.93 | 0.94 | 1.03 |
//! | `publish_batch_wait1` | 0.97 | 1.06 | 1.06 | 0.89 |
//! | `consume_noop` | 0.90 | 0.88 | 0.90 | 0.71 |
//!
//! (`DTREDIS_BENCH_OBSERVE=metrics` installs the recorder alone;
//! `DTREDIS_BENCH_OBSERVE_SAMPLE=0.01` samples; one run's ratio moves by up to ±0.1 on
//! this machine, the spread of the three runs of one variant was 0.03–0.17.)
//!
//! **Metrics cost little**: every row with the recorder alone is within 0.05 of the
//! build without it but `publish_batch` (0.93 against 1.04, while our own rate was
//! *higher*, 233 000/s against 223 000/s: the bare side moved). A handle is resolved
//! once per label value and kept (a read lock, a hash of the channel and atomic adds per
//! message).
//!
//! **Traces at 1 %** cost `publish_concurrent` about a tenth of its ratio: 0.90 in all
//! three runs against 0.98, and in a second set of three alternated pairs (`--only
//! publish`) 0.84–0.97 against 0.89–1.05, our own rate 5 % lower (medians 202 000 and
//! 213 000/s). `publish_single` was 0.87 against 0.96 in the first set and 0.99 against
//! 0.91 in the second: noise. The other rows are within the noise. The library creates
//! no span for the 99 % it does not sample (see Sampling), and the 1 % it does accounts
//! for well under 1 % by the every-span figure below; where the rest goes has not been
//! found (the `tracing`, OpenTelemetry and `metrics` frames together hold about 1 % of a
//! profile's samples at 1 %).
//!
//! **A span per message costs up to half the throughput** where a row is bound by the
//! client's CPU (`publish_concurrent`: 0.43). Each `send` and `process` span is built,
//! entered on every poll, closed and handed to the batch processor by
//! `tracing-opentelemetry` and the SDK: about 7 µs a message on this machine. Part of it
//! is the allocator: the spans are allocated on the runtime's workers and freed on the
//! SDK's export thread, which glibc's `malloc` serializes; with jemalloc
//! (`LD_PRELOAD=libjemalloc.so.2`) the same run gave 0.55 (118 000/s against 80 000/s).
//! OpenTelemetry SDKs in other languages show the same order of cost per span. Where
//! one process sends or consumes tens of thousands of messages a second, sample (both
//! ratios, as above), or filter `dtrsfw`'s spans out of the OpenTelemetry layer; its
//! metrics can stay. Reproduce: `cargo build --release -p dtredis --features observe`,
//! then `dtredis bench --only publish,consume` with and without `--observe`.
//!
//! # Layering
//!
//! A leaf beside `error`. It knows no feature module; the sender, the consumer, the cache
//! and the connections call its hooks (one line each) and pass plain values.
//! `metrics.rs`/`metrics_off.rs` and `trace.rs`/`trace_off.rs` are the on and off forms of
//! the same hooks, so call sites carry no `cfg`.

use std::future::Future;

#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
mod handles;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(not(feature = "metrics"))]
mod metrics_off;
#[cfg(feature = "opentelemetry")]
mod trace;
#[cfg(not(feature = "opentelemetry"))]
mod trace_off;

#[cfg(feature = "metrics")]
pub use self::metrics::describe;
#[cfg(feature = "metrics")]
pub(crate) use self::metrics::*;
#[cfg(not(feature = "metrics"))]
pub(crate) use self::metrics_off::*;
#[cfg(feature = "opentelemetry")]
pub use self::trace::{FIELD_TRACEPARENT, FIELD_TRACESTATE, set_root_span_limit, set_root_span_ratio};
#[cfg(feature = "opentelemetry")]
pub(crate) use self::trace::{TraceFields, process_span, record_message_id, send_span};
#[cfg(not(feature = "opentelemetry"))]
pub(crate) use self::trace_off::{TraceFields, process_span};
#[cfg(all(not(feature = "opentelemetry"), feature = "metrics"))]
pub(crate) use self::trace_off::{record_message_id, send_span};

/// Runs one send (`count` messages to `channel`) in its `send` span, counted and timed.
#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
pub(crate) async fn sending<T, E, F>(channel: &str, count: usize, send: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    T: MaybeSingle,
{
    let span = send_span(channel, count);
    let timer = Timer::start();
    let result = tracing::Instrument::instrument(send, span.clone()).await;
    sent(channel, count, timer, result.is_ok());
    if let Some(id) = result.as_ref().ok().and_then(MaybeSingle::single) {
        record_message_id(&span, id);
    }
    result
}

/// Both features off: the send itself, nothing around it.
#[cfg(not(any(feature = "metrics", feature = "opentelemetry")))]
#[inline(always)]
pub(crate) async fn sending<T, E, F>(_: &str, _: usize, send: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    send.await
}

/// The entry ID of a send of one message; a batch has none.
#[cfg_attr(not(any(feature = "metrics", feature = "opentelemetry")), allow(dead_code))]
pub(crate) trait MaybeSingle {
    fn single(&self) -> Option<&dyn std::fmt::Display>;
}

impl MaybeSingle for crate::redis::EntryId {
    fn single(&self) -> Option<&dyn std::fmt::Display> {
        Some(self)
    }
}

impl<T> MaybeSingle for Vec<T> {
    fn single(&self) -> Option<&dyn std::fmt::Display> {
        None
    }
}
