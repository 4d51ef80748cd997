//! The arguments of one call, and the key they give.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::pyjson;

/// The arguments of one call: names and values, in order. Values are serialized as soon
/// as they are added (to Python-formatted JSON), so `CacheArgs` borrows nothing.
///
/// A value that cannot be serialized (a map with non-string keys, a failing `Serialize`)
/// does not fail anything: the call then runs without the cache, with a warning.
///
/// ```
/// use dtrsfw::redis::caching::CacheArgs;
///
/// let args = CacheArgs::new().arg("x", &1).arg("state", "used");
/// assert_eq!(args.to_json(), r#"{"x": 1, "state": "used"}"#);
/// ```
#[derive(Clone, Default)]
pub struct CacheArgs {
    pub(super) entries: Vec<(Cow<'static, str>, String)>,
    pub(super) error: Option<String>,
}

impl fmt::Debug for CacheArgs {
    // Argument values may be personal data: Debug shows the names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheArgs")
            .field("names", &self.entries.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl CacheArgs {
    /// No arguments.
    #[must_use]
    pub fn new() -> Self {
        CacheArgs::default()
    }

    /// Adds the argument `name` with `value`.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn arg<T: Serialize + ?Sized>(mut self, name: impl Into<Cow<'static, str>>, value: &T) -> Self {
        self.push(name, value);
        self
    }

    /// Adds the argument `name` with `value`, in place.
    pub fn push<T: Serialize + ?Sized>(&mut self, name: impl Into<Cow<'static, str>>, value: &T) {
        let name = name.into();
        match pyjson::to_python_json(value) {
            Ok(json) => self.entries.push((name, json)),
            Err(e) => {
                self.error
                    .get_or_insert_with(|| format!("argument {name:?} cannot be serialized: {e}"));
            }
        }
    }

    /// The arguments as the JSON object that is hashed into the key (Python formatting).
    #[must_use]
    pub fn to_json(&self) -> String {
        pyjson::json_object(self.entries.iter().map(|(n, v)| (n.as_ref(), v.as_str())))
    }

    /// The value of `name` as JSON (`null` if absent, as Python's `kwargs.get`).
    pub(super) fn value(&self, name: &str) -> Value {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, json)| serde_json::from_str(json).ok())
            .unwrap_or(Value::Null)
    }

    /// The key of these arguments in `namespace`, leaving out those `skipped` says.
    pub(super) fn key_without(&self, namespace: &str, skipped: impl Fn(&str) -> bool) -> String {
        pyjson::cache_key(
            namespace,
            self.entries
                .iter()
                .filter(|(n, _)| !skipped(n))
                .map(|(n, v)| (n.as_ref(), v.as_str())),
        )
    }
}

/// The cache key of a call with `args` in `namespace` (no argument skipped), as the
/// Python package computes it for keyword arguments.
///
/// ```
/// use dtrsfw::redis::caching::{cache_key, CacheArgs};
///
/// assert_eq!(cache_key("ns", &CacheArgs::new()), "ns");
/// let key = cache_key("ns", &CacheArgs::new().arg("x", &1).arg("state", "used"));
/// // python3 -c 'import json,hashlib; print(hashlib.sha256(json.dumps({"x": 1, "state": "used"}).encode()).hexdigest())'
/// assert_eq!(key, "ns:35518bae13e75c666fc5e4837d43620966266d4e7cc3844b4e5f485d5da5fc5a");
/// ```
#[must_use]
pub fn cache_key(namespace: &str, args: &CacheArgs) -> String {
    args.key_without(namespace, |_| false)
}
