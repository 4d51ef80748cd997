//! `dtredis cache get|invalidate <namespace>`: look at and drop cached calls, with the
//! keys the library (and the Python package) derive from keyword arguments.

use std::fmt;

use anyhow::Context;
use dtrsfw::redis::RedisInstance;
use dtrsfw::redis::caching::{CacheArgs, cache_key, get_cached_async, invalidate_async, invalidate_namespace_async};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// A JSON object's entries in the order written: the order of the function's arguments,
/// which the key depends on (a map type would sort them).
struct OrderedArgs(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for OrderedArgs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = OrderedArgs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of argument name to value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedArgs, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(OrderedArgs(entries))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// What a JSON value is, for an error message.
fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// `--args`, checked in two steps so the error says which problem it is: text that is not
/// JSON at all (and where it breaks), or JSON that is not an object (and what it is).
fn parse_args(json: &str) -> anyhow::Result<CacheArgs> {
    let value: serde_json::Value = serde_json::from_str(json).context("--args is not valid JSON")?;
    anyhow::ensure!(
        value.is_object(),
        "--args is not a JSON object (it is {})",
        kind_of(&value)
    );
    // Parsed again for the entries in the order written (`Value`'s map sorts them).
    let OrderedArgs(entries) = serde_json::from_str(json).context("--args is not a JSON object")?;
    Ok(entries
        .into_iter()
        .fold(CacheArgs::new(), |args, (name, value)| args.arg(name, &value)))
}

/// `get`: the decoded value as JSON, or `miss`.
pub(crate) async fn get(redis: &RedisInstance, namespace: &str, args: &str) -> anyhow::Result<String> {
    let key = cache_key(namespace, &parse_args(args)?);
    Ok(match get_cached_async::<serde_json::Value>(redis, &key).await? {
        Some(value) => value.to_string(),
        None => "miss".to_owned(),
    })
}

/// `invalidate`: one call's entry with `--args`, else the whole namespace; the number
/// removed.
pub(crate) async fn invalidate(redis: &RedisInstance, namespace: &str, args: Option<&str>) -> anyhow::Result<String> {
    let removed = match args {
        Some(args) => u64::from(invalidate_async(redis, namespace, &parse_args(args)?).await?),
        None => invalidate_namespace_async(redis, namespace).await?,
    };
    Ok(removed.to_string())
}
