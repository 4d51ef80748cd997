//! Heap allocations counted for the bench rows' `*_allocs_per_msg`, with feature
//! `alloc-count`: the binary's global allocator is then the system one behind
//! `stats_alloc`'s counters (a wrapper made for this; the workspace forbids `unsafe`, so
//! the allocator is not written here).
//!
//! Off by default: every allocation and free then updates counters shared by all
//! threads, which the 64 publishing tasks and the connection's driver contend on; the
//! README's Performance section gives what it costs the rows' throughput.
//!
//! The counts are process-wide: a round's figure includes the runtime's and the
//! connection driver's allocations, on both sides alike, which is what a service pays.

use std::future::Future;
use std::time::Instant;

use serde::Serialize;

use super::{BenchRow, median, per_second};

#[cfg(feature = "alloc-count")]
#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Allocations (`alloc` and `realloc` calls) made so far by the whole process; `None`
/// without feature `alloc-count`.
pub(crate) fn allocations() -> Option<u64> {
    #[cfg(feature = "alloc-count")]
    {
        let stats = GLOBAL.stats();
        Some((stats.allocations + stats.reallocations) as u64)
    }
    #[cfg(not(feature = "alloc-count"))]
    None
}

/// Times one round of `ops` operations, as [`super::timed`], and pushes the allocations
/// it made per operation onto `allocs_per_op` (when they are counted).
pub(crate) async fn timed_counted<F: Future<Output = anyhow::Result<()>>>(
    ops: usize,
    allocs_per_op: &mut Vec<f64>,
    round: F,
) -> anyhow::Result<f64> {
    let before = allocations();
    let start = Instant::now();
    round.await?;
    let elapsed = start.elapsed();
    if let (Some(before), Some(after)) = (before, allocations()) {
        allocs_per_op.push((after - before) as f64 / ops as f64);
    }
    Ok(per_second(ops, elapsed))
}

/// The allocation figures of a row: medians over its rounds, per message.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct AllocsPerMsg {
    /// Allocations per message of ours.
    pub(crate) ours_allocs_per_msg: f64,
    /// Allocations per message of the bare redis-rs loop.
    pub(crate) bare_allocs_per_msg: f64,
}

impl BenchRow {
    /// This row with the allocations per message its rounds counted (one figure per
    /// round and side, as [`timed_counted`] pushes them); unchanged when none were.
    pub(crate) fn with_allocs(self, ours: &[f64], bare: &[f64]) -> Self {
        if ours.is_empty() || bare.is_empty() {
            return self;
        }
        BenchRow {
            allocs: Some(AllocsPerMsg {
                ours_allocs_per_msg: median(ours),
                bare_allocs_per_msg: median(bare),
            }),
            ..self
        }
    }
}

#[cfg(all(test, feature = "alloc-count"))]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_is_counted() {
        let before = allocations().unwrap();
        let boxed = std::hint::black_box(Box::new([0u8; 64]));
        assert!(allocations().unwrap() > before, "a Box allocated without being counted");
        drop(boxed);
    }
}
