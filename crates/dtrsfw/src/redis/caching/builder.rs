//! The settings of a cached function, and their validation.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::circuit::CircuitSettings;
use super::condition::Condition;
use super::function::{CachedFunction, Spec};
use super::local::{LocalSlot, LocalTier};
use super::operator::Operator;
use super::stats::Counters;
use crate::redis::error::{Error, Result};

/// The default bound on one cache command.
pub const DEFAULT_CACHE_TIMEOUT: Duration = Duration::from_millis(250);
/// The default number of consecutive failures that opens the circuit.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// The default time the circuit stays open before a probe.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(1);

/// Builds a [`CachedFunction`]; [`build`](Self::build) validates everything.
#[derive(Debug)]
#[must_use]
pub struct CachedFunctionBuilder {
    namespace: String,
    arguments: Vec<String>,
    expire: Option<u64>,
    conditions: Vec<(String, String, std::result::Result<Value, String>)>,
    skip: Vec<String>,
    timeout: Duration,
    circuit: CircuitSettings,
    local: Option<LocalTier>,
}

impl CachedFunction {
    /// Starts the settings of a function cached under `namespace` whose arguments are
    /// named `arguments` (in declaration order; conditions and skips are checked against
    /// them).
    pub fn builder<I, S>(namespace: impl Into<String>, arguments: I) -> CachedFunctionBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        CachedFunctionBuilder {
            namespace: namespace.into(),
            arguments: arguments.into_iter().map(|s| s.as_ref().to_owned()).collect(),
            expire: None,
            conditions: Vec::new(),
            skip: Vec::new(),
            timeout: DEFAULT_CACHE_TIMEOUT,
            circuit: CircuitSettings {
                failure_threshold: DEFAULT_FAILURE_THRESHOLD,
                cool_down: DEFAULT_COOL_DOWN,
            },
            local: None,
        }
    }
}

impl CachedFunctionBuilder {
    /// Time to live of cached values, in seconds, set atomically with the value
    /// (`SET ... EX`). `0` means no expiry, as in the Python package.
    /// By default, values never expire.
    pub fn expire(mut self, seconds: u64) -> Self {
        self.expire = (seconds > 0).then_some(seconds);
        self
    }

    /// Adds a condition: the call is cached when `argument operator value` holds for
    /// this or any other condition. `operator` is one of [`OPERATORS`](super::OPERATORS)
    /// (see [`Operator`]). By default, every call is cached.
    pub fn cache_only_for<T: Serialize + ?Sized>(mut self, argument: &str, operator: &str, value: &T) -> Self {
        let value = serde_json::to_value(value).map_err(|e| e.to_string());
        self.conditions.push((argument.to_owned(), operator.to_owned(), value));
        self
    }

    /// Arguments left out of the key (request ids, connections, ...). By default, every
    /// argument is part of the key.
    pub fn skip_cache_keys<I, S>(mut self, arguments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.skip.extend(arguments.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// The longest one cache command (GET, SET) may take before the call gives up on the
    /// cache and runs the function. A call whose read timed out or could not connect
    /// does not try to write either, so an unreachable or stalled server costs a call at
    /// most this much. By default, [`DEFAULT_CACHE_TIMEOUT`] (250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Consecutive connection failures or timeouts (of any cached function on the same
    /// server) after which calls skip Redis. By default, [`DEFAULT_FAILURE_THRESHOLD`] (3).
    pub fn circuit_failure_threshold(mut self, failures: u32) -> Self {
        self.circuit.failure_threshold = failures.max(1);
        self
    }

    /// How long calls skip Redis once the circuit opened, before one call probes it
    /// again. By default, [`DEFAULT_COOL_DOWN`] (1 s).
    pub fn circuit_cool_down(mut self, cool_down: Duration) -> Self {
        self.circuit.cool_down = cool_down;
        self
    }

    /// Adds a local tier: an in-process cache in front of Redis, kept coherent by Redis
    /// client tracking (one extra connection per server, memory up to the tier's bounds;
    /// see [`LocalTier`] and the [module docs](super#the-local-tier)). Keys and values in
    /// Redis are unchanged. By default, no local tier: every call reads Redis.
    ///
    /// ```no_run
    /// use dtrsfw::redis::caching::{CachedFunction, LocalTier};
    /// # fn main() -> dtrsfw::redis::Result<()> {
    /// let cached = CachedFunction::builder("user", ["id"]).expire(60).local(LocalTier::new().max_entries(1_000)).build()?;
    /// # let _ = cached; Ok(()) }
    /// ```
    pub fn local(mut self, tier: LocalTier) -> Self {
        self.local = Some(tier);
        self
    }

    /// Validates the options: every operator known, every condition and skipped
    /// argument one of the declared arguments, every condition value serializable.
    ///
    /// # Errors
    ///
    /// An invalid-input error when a condition or skipped argument names something that is
    /// not one of the declared arguments, a condition's operator is unknown, or a condition
    /// value cannot be serialized.
    pub fn build(self) -> Result<CachedFunction> {
        let mut conditions = Vec::with_capacity(self.conditions.len());
        for (argument, operator, value) in &self.conditions {
            self.known(argument, "cache_only_for")?;
            let operator: Operator = operator.parse()?;
            let value = value.clone().map_err(|e| {
                Error::invalid_input(format!(
                    "cache_only_for value for {argument:?} cannot be serialized: {e}"
                ))
            })?;
            conditions.push(Condition {
                argument: argument.clone(),
                operator,
                value,
            });
        }
        for skipped in &self.skip {
            self.known(skipped, "skip_cache_keys")?;
        }
        Ok(CachedFunction {
            inner: Arc::new(Spec {
                namespace: self.namespace,
                arguments: self.arguments,
                expire: self.expire,
                conditions,
                skip: self.skip,
                timeout: self.timeout,
                circuit: self.circuit,
                counters: Counters::default(),
                local: self.local.map(LocalSlot::new),
            }),
        })
    }

    /// `Ok` when `name` is a declared argument; `what` names the option for the error.
    fn known(&self, name: &str, what: &str) -> Result<()> {
        if self.arguments.iter().any(|a| a == name) {
            Ok(())
        } else {
            Err(Error::invalid_input(format!(
                "{what} names {name:?}, which is not an argument; the arguments are: {}",
                self.arguments.join(", ")
            )))
        }
    }
}
