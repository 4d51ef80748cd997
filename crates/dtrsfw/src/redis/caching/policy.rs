//! The decisions of a cached call that do not depend on how it talks to Redis: whether
//! the call is cached and under which key, what the circuit allows, what a command's
//! outcome means, and the counters and warnings that go with each.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::args::CacheArgs;
use super::codec::{decode_value, encode_value};
use super::function::CachedFunction;
use super::server::ServerState;
use super::stats::Event;
use crate::redis::error::Result;
use crate::redis::observe;

/// What a leader's cache lookup found.
pub(super) enum Lookup<T> {
    Hit(T, Arc<[u8]>),
    Miss,
}

/// Whether a cache read failed because the server is unreachable or too slow (not
/// because of what it answered): the call then gives up on the cache for its write too,
/// so that one call costs at most one cache timeout, not one per command.
pub(super) fn gave_up<R>(read: &Result<R>) -> bool {
    matches!(read, Err(e) if e.is_transient())
}

impl CachedFunction {
    pub(super) fn record(&self, server: &ServerState, event: Event) {
        self.inner.counters.record(event);
        server.counters.record(event);
        observe::cache_request(&self.inner.namespace, event.label());
    }

    /// The key to use, or `None` when this call is not to be cached.
    pub(super) fn prepare(&self, server: &ServerState, args: &CacheArgs) -> Option<String> {
        let spec = &self.inner;
        if let Some(error) = &args.error {
            tracing::warn!(namespace = %spec.namespace, %error, "redis cache: call not cached");
            self.record(server, Event::Error);
            return None;
        }
        if let Some((name, _)) = args
            .entries
            .iter()
            .find(|(n, _)| !spec.arguments.iter().any(|a| a == n))
        {
            tracing::warn!(
                namespace = %spec.namespace, argument = %name,
                "redis cache: call not cached, argument not declared in the builder"
            );
            self.record(server, Event::Error);
            return None;
        }
        if !spec.conditions.is_empty() && !spec.conditions.iter().any(|c| c.holds(&args.value(&c.argument))) {
            self.record(server, Event::Bypass);
            return None;
        }
        Some(self.key(args))
    }

    /// Applies the circuit to one command's outcome: `Some` on success; on failure a
    /// warning, an error count, and (for connection trouble) a circuit failure.
    pub(super) fn settle<R>(&self, server: &ServerState, what: &str, result: Result<R>) -> Option<R> {
        match result {
            Ok(r) => {
                if server.circuit.success() {
                    observe::circuit(&server.shown_url, false);
                }
                Some(r)
            }
            Err(e) => {
                if e.is_transient() && server.circuit.failure(self.inner.circuit) {
                    observe::circuit(&server.shown_url, true);
                }
                tracing::warn!(namespace = %self.inner.namespace, error = %e, "redis cache: {what} failed, ignored");
                self.record(server, Event::Error);
                None
            }
        }
    }

    /// Whether the circuit lets this call use Redis (counted when it does not).
    pub(super) fn allowed(&self, server: &ServerState) -> bool {
        let allowed = server.circuit.allow(self.inner.circuit);
        if !allowed {
            self.record(server, Event::ShortCircuit);
        }
        allowed
    }

    /// Turns the stored bytes into a value, or a miss (with a warning when unreadable).
    pub(super) fn interpret<T: DeserializeOwned>(
        &self,
        server: &ServerState,
        key: &str,
        raw: Option<Vec<u8>>,
    ) -> Lookup<T> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            tracing::debug!(key, "redis cache: miss");
            return Lookup::Miss;
        };
        match decode_value::<T>(&raw) {
            Ok((value, json)) => {
                tracing::debug!(key, "redis cache: hit");
                self.record(server, Event::Hit);
                Lookup::Hit(value, json)
            }
            Err(e) => {
                tracing::warn!(
                    namespace = %self.inner.namespace, error = %e,
                    "redis cache: stored value unreadable, recomputing and overwriting"
                );
                self.record(server, Event::Error);
                Lookup::Miss
            }
        }
    }

    /// A waiter's view of the leader's value: `None` (counted, with a warning) when it
    /// does not fit this caller's type, which then computes independently.
    pub(super) fn take_shared<T: DeserializeOwned>(&self, server: &ServerState, json: &[u8]) -> Option<T> {
        match serde_json::from_slice(json) {
            Ok(value) => {
                self.record(server, Event::Join);
                Some(value)
            }
            Err(e) => {
                tracing::warn!(namespace = %self.inner.namespace, error = %e, "redis cache: shared value does not decode");
                self.record(server, Event::Error);
                None
            }
        }
    }

    /// The value's JSON and stored form, or `None` (counted, with a warning) when it
    /// cannot be stored.
    pub(super) fn encode<T: Serialize>(&self, server: &ServerState, value: &T) -> Option<(Arc<[u8]>, Vec<u8>)> {
        match encode_value(value) {
            Ok(pair) => Some(pair),
            Err(e) => {
                tracing::warn!(namespace = %self.inner.namespace, error = %e, "redis cache: result not cacheable");
                self.record(server, Event::Error);
                None
            }
        }
    }
}
