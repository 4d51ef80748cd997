//! Feature `metrics` off: the same hooks as `metrics.rs`, empty and zero-sized, so the
//! call sites need no `cfg` and compile to nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Timer;

impl Timer {
    #[inline(always)]
    pub(crate) fn start() -> Self {
        Timer
    }
}

#[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))] // used by `sending` only
#[inline(always)]
pub(crate) fn sent(_: &str, _: usize, _: Timer, _: bool) {}

#[inline(always)]
pub(crate) fn send_retried(_: &str) {}

#[derive(Debug)]
pub(crate) struct ChannelLabels;

impl ChannelLabels {
    #[inline(always)]
    pub(crate) fn new(_: &str, _: &str) -> Arc<Self> {
        Arc::new(ChannelLabels)
    }
}

/// Without metrics a consumer counter is the bare atomic.
#[derive(Debug, Default)]
pub(crate) struct Tally(AtomicU64);

impl Tally {
    pub(crate) fn new(_: &Arc<ChannelLabels>, _: Option<&'static str>) -> Self {
        Tally::default()
    }

    #[inline(always)]
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

impl std::ops::Deref for Tally {
    type Target = AtomicU64;

    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ProcessMetrics;

impl ProcessMetrics {
    pub(crate) fn new(_: &Arc<ChannelLabels>) -> Self {
        ProcessMetrics
    }

    #[inline(always)]
    pub(crate) fn processed(&self, _: Timer, _: bool) {}
}

#[derive(Debug)]
pub(crate) struct LoopGauges;

impl LoopGauges {
    pub(crate) fn new(_: &ChannelLabels) -> Self {
        LoopGauges
    }

    /// Never due: the refresh (and its `XINFO`) compiles away.
    #[inline(always)]
    pub(crate) fn due(&mut self, _: Instant) -> bool {
        false
    }

    #[inline(always)]
    pub(crate) fn set(&self, _: usize, _: Option<u64>, _: Option<u64>) {}
}

#[inline(always)]
pub(crate) fn cache_request(_: &str, _: &'static str) {}

#[inline(always)]
pub(crate) fn cache_lookup(_: &str, _: Timer) {}

#[inline(always)]
pub(crate) fn cache_compute(_: &str, _: Timer) {}

#[inline(always)]
pub(crate) fn circuit(_: &str, _: bool) {}

#[inline(always)]
pub(crate) fn connected(_: &'static str, _: bool) {}

#[inline(always)]
pub(crate) fn pool_open(_: i64) {}

#[inline(always)]
pub(crate) fn pool_in_use(_: i64) {}

#[inline(always)]
pub(crate) fn pool_waited() {}
