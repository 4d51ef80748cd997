//! Support for the code `#[cache_wrapper]` generates; not a public API.

pub use super::operator::{ConstText, unknown_operator};
use super::{CachedFunction, CachedFunctionBuilder};

/// Builds the settings of a wrapped function. The macro has validated everything
/// it can see at compile time; what remains (a condition value failing to
/// serialize) makes the function run uncached rather than panic.
pub fn build(builder: CachedFunctionBuilder) -> Option<CachedFunction> {
    match builder.build() {
        Ok(cached) => Some(cached),
        Err(e) => {
            tracing::warn!(error = %e, "redis cache: cache_wrapper options invalid, function runs uncached");
            None
        }
    }
}

/// Coerces the `redis = ...` expression (a `RedisInstance`, a reference, a lazily
/// initialised static) to a reference.
#[must_use]
pub fn instance(redis: &crate::redis::RedisInstance) -> &crate::redis::RedisInstance {
    redis
}
