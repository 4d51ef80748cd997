//! Benchmarks of the publish area (filled in by its issue).

use super::{BenchContext, BenchRow};

/// The publish rows of the table.
pub(super) async fn run(_ctx: &BenchContext) -> anyhow::Result<Vec<BenchRow>> {
    Ok(Vec::new())
}
