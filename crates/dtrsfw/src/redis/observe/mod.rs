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
//! ours beside a bare redis-rs loop in the same run; ratio ours/bare), from one release
//! build with `--features observe`, run without `--observe` (the features compiled in,
//! nothing installed) and with it: a Prometheus recorder (its upkeep every 5 s) and a
//! `tracing-opentelemetry` layer at `INFO` over the SDK's batch span processor and its
//! default sampler, the library's own defaults (every root span, at most 100 a second).
//! Alternated pairs on the 2-core machine with nothing else running (Redis 7.0.15,
//! 2026-12-03): `--only publish,consume`, three pairs, and `--only publish`, five more
//! (`publish_*` rows over eight pairs); `--only cache,cache_local`, two pairs. Medians:
//!
//! | row | ratio without | ratio with | ours without | ours with |
//! |---|---|---|---|---|
//! | `publish_single` | 0.99 | 0.99 | 11 903/s | 12 460/s |
//! | `publish_batch` | 1.04 | 1.05 | 501 473/s | 504 750/s |
//! | `publish_concurrent` | 0.90 | 0.85 | 376 431/s | 353 981/s |
//! | `publish_blocking` | 0.99 | 0.97 | 14 033/s | 13 824/s |
//! | `publish_single_wait1` | 0.99 | 0.99 | 8 781/s | 8 758/s |
//! | `publish_batch_wait1` | 1.01 | 1.00 | 268 237/s | 259 802/s |
//! | `consume_noop` | 0.99 | 1.00 | 309 533/s | 283 491/s |
//! | `cache_hit_sync` | 0.99 | 1.00 | 12 206/s | 12 272/s |
//! | `cache_hit_async` | 0.96 | 0.965 | 10 862/s | 9 671/s |
//! | `cache_hit_local` (local tier) | 178 | 177 | 2 525 979/s | 2 454 577/s |
//! | `cache_hit_local_async` | 232 | 209 | 2 537 335/s | 2 474 829/s |
//!
//! Every row but `publish_concurrent` keeps its ratio within 0.02 (the local-tier rows
//! excepted: their ratio compares a local hit with a Redis `GET`, whose rate sets it; their
//! own rates are 2–3 % lower). `publish_concurrent` (64 tasks sending on one shared
//! connection, bound by the client's CPU) is 0.05 lower at the median (5.6 %), our own
//! rate 6 % lower; its ratio ranged 0.78–1.13 across the sixteen runs, so the difference is
//! within what one run moves on this machine, and at the 5 % bar. What a send pays with
//! both features on and no span to create: a metric handle lookup (a read lock and a hash
//! of the channel), a counter add and a histogram sample, two clock reads, the root-span
//! draw and the cap's two reads.
//!
//! **What the cap saves.** With every root span traced (`set_root_span_limit(None)`,
//! `DTREDIS_BENCH_OBSERVE_ROOT_LIMIT=none`), `publish_concurrent` ran at 0.38 and 0.42
//! (about 128 000/s against 330 000/s), and, in an earlier build, `consume_noop` at 0.71.
//! Each `send` and `process` span is built, entered on every poll, closed and handed to
//! the batch processor by `tracing-opentelemetry` and the SDK: about 7 µs a message on
//! this machine, more than the send itself. The layer's lean settings (no busy/idle
//! timings, no context activation, no thread, location or target attributes:
//! `DTREDIS_BENCH_OBSERVE_LEAN=1`) gave 0.40 and 0.48: the cost is the span, not its
//! extras. jemalloc (`LD_PRELOAD=libjemalloc.so.2`) gave 0.55 in an earlier run (the spans
//! are allocated on the runtime's workers and freed on the SDK's export thread). So a
//! process that sends or consumes tens of thousands of messages a second can trace a
//! hundred of them a second, or a ratio of them (next paragraph), not all of them.
//!
//! **Sampling by ratio** (`set_root_span_ratio(0.01)` with the same SDK sampler, no cap,
//! `DTREDIS_BENCH_OBSERVE_SAMPLE=0.01 DTREDIS_BENCH_OBSERVE_ROOT_LIMIT=none`): six
//! alternated pairs of `--only publish` gave our `publish_concurrent` rate medians of
//! 328 612/s without and 330 354/s with: no cost. Its ratio still fell from 0.96 to
//! 0.83, because the bare loop of the same runs went from 339 374 to 389 917/s: that loop
//! calls no code of the library, and its rate ranges from 290 000 to 480 000/s between
//! runs of one variant (64 tasks on one multiplexed connection, on two cores shared with
//! the server). The other `publish_*` rows were within 0.03.
//!
//! Reproduce: `cargo build --release -p dtredis --features observe`, then `dtredis bench
//! --only publish,consume` with and without `--observe`; `DTREDIS_BENCH_OBSERVE=metrics`
//! (or `traces`) installs one of the two alone.
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
