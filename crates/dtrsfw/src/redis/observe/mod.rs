//! Observability: metrics (feature `metrics`) and trace context carried through the
//! streams (feature `opentelemetry`). Both are off by default; off, nothing of this
//! module is compiled in but empty, zero-sized hooks.
//!
//! GUIDE
//!
//! Layering: a leaf beside `error`. It knows no feature module; the sender, the consumer,
//! the cache and the connections call its hooks (one line each) and pass plain values.
//! `metrics.rs`/`metrics_off.rs` and `trace.rs`/`trace_off.rs` are the on and off forms
//! of the same hooks, so call sites carry no `cfg`.

use std::future::Future;

use tracing::Instrument;

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
pub use self::trace::{FIELD_TRACEPARENT, FIELD_TRACESTATE};
#[cfg(feature = "opentelemetry")]
pub(crate) use self::trace::{TraceFields, process_span, record_message_id, send_span};
#[cfg(not(feature = "opentelemetry"))]
pub(crate) use self::trace_off::{TraceFields, process_span, record_message_id, send_span};

/// Runs one send (`count` messages to `channel`) in its `send` span, counted and timed.
pub(crate) async fn sending<T, E, F>(channel: &str, count: usize, send: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    T: MaybeSingle,
{
    let span = send_span(channel, count);
    let timer = Timer::start();
    let result = send.instrument(span.clone()).await;
    sent(channel, count, timer, result.is_ok());
    if let Some(id) = result.as_ref().ok().and_then(MaybeSingle::single) {
        record_message_id(&span, id);
    }
    result
}

/// The entry ID of a send of one message; a batch has none.
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
