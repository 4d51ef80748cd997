//! Feature `opentelemetry` off: no trace fields are written or read, and the spans are
//! the plain debug spans the library always had.

use redis::Cmd;
use tracing::{Span, debug_span};

/// Nothing: entries carry no trace context without the feature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TraceFields;

impl TraceFields {
    #[inline(always)]
    pub(crate) fn current() -> Self {
        TraceFields
    }

    #[inline(always)]
    pub(crate) fn write_xadd(&self, _: &mut Cmd) {}

    #[inline(always)]
    pub(crate) fn from_entry(_: &[(Vec<u8>, Vec<u8>)]) -> Self {
        TraceFields
    }
}

#[cfg_attr(not(feature = "metrics"), allow(dead_code))] // used by `sending` only
#[inline(always)]
pub(crate) fn send_span(_: &str, _: usize) -> Span {
    Span::none()
}

#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
#[inline(always)]
pub(crate) fn record_message_id(_: &Span, _: &dyn std::fmt::Display) {}

/// The debug span `handler` (as before the feature existed).
pub(crate) fn process_span(
    channel: &str,
    _: &str,
    id: &dyn std::fmt::Display,
    name: &str,
    deliveries: u64,
    _: &TraceFields,
) -> Span {
    // A root, as in `trace.rs`.
    debug_span!(parent: None, "handler", channel = %channel, id = %id, name = %name, deliveries = deliveries)
}
