//! Decoding of the stream replies we use (`XREADGROUP`, `XAUTOCLAIM`, `XPENDING`,
//! `XINFO`), from raw [`redis::Value`]s so entry fields stay bytes (a non-UTF-8 body must
//! reach the dead-letter stream verbatim, not fail the whole batch). Both RESP2 arrays and
//! RESP3 maps are accepted.

use redis::Value;

use crate::redis::entry_id::EntryId;

/// One stream entry as read: its ID and its raw fields.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    pub(crate) id: EntryId,
    pub(crate) fields: Vec<(Vec<u8>, Vec<u8>)>,
}

pub(crate) fn as_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

pub(crate) fn as_string(v: &Value) -> Option<String> {
    as_bytes(v).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// An entry ID in a reply; `None` for anything else (the server sends no other).
pub(crate) fn as_entry_id(v: &Value) -> Option<EntryId> {
    as_bytes(v).and_then(EntryId::from_reply)
}

pub(crate) fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => as_bytes(v).and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()),
    }
}

/// The items of an array-like value (arrays, sets, and maps flattened to k, v, k, v).
fn items(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a.iter().collect(),
        Value::Map(m) => m.iter().flat_map(|(k, v)| [k, v]).collect(),
        Value::Attribute { data, .. } => items(data),
        _ => Vec::new(),
    }
}

/// An owned string value's bytes, moved out rather than copied.
fn into_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.into_bytes()),
        _ => None,
    }
}

/// [`items`] of an owned value: the entry replies are decoded by value, so each field's
/// bytes move into the [`RawEntry`] instead of being copied (they are read per entry).
fn into_items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        Value::Attribute { data, .. } => into_items(*data),
        _ => Vec::new(),
    }
}

/// `[id, [field, value, ...]]` → entry; a nil field list (entry deleted, Redis < 7
/// XAUTOCLAIM) gives an entry with no fields.
fn entry(v: Value) -> Option<RawEntry> {
    let mut parts = into_items(v).into_iter();
    let id = as_entry_id(&parts.next()?)?;
    let mut flat = parts.next().map(into_items).unwrap_or_default().into_iter();
    let mut fields = Vec::with_capacity(flat.len() / 2);
    while let (Some(key), Some(value)) = (flat.next(), flat.next()) {
        if let (Some(key), Some(value)) = (into_bytes(key), into_bytes(value)) {
            fields.push((key, value));
        }
    }
    Some(RawEntry { id, fields })
}

fn entries(v: Value) -> Vec<RawEntry> {
    into_items(v).into_iter().filter_map(entry).collect()
}

/// `XCLAIM` (without `JUSTID`): the claimed entries; deleted ones are left out.
pub(crate) fn xclaim(v: Value) -> Vec<RawEntry> {
    entries(v)
}

/// `XREADGROUP` over one stream: nil (timeout) or `[[key, [entries]]]` (RESP3: a map
/// key → entries).
pub(crate) fn xreadgroup(v: Value) -> Vec<RawEntry> {
    match v {
        Value::Map(m) => m.into_iter().flat_map(|(_, e)| entries(e)).collect(),
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|s| into_items(s).into_iter().nth(1).map(entries).unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    }
}

/// `XAUTOCLAIM`: `[next_cursor, [entries], [deleted ids]]` (the third part since Redis 7).
pub(crate) fn xautoclaim(v: Value) -> (EntryId, Vec<RawEntry>, Vec<EntryId>) {
    let mut parts = into_items(v).into_iter();
    let cursor = parts.next().and_then(|c| as_entry_id(&c)).unwrap_or(EntryId::ZERO);
    let claimed = parts.next().map(entries).unwrap_or_default();
    let deleted = parts
        .next()
        .map(|d| items(&d).into_iter().filter_map(as_entry_id).collect())
        .unwrap_or_default();
    (cursor, claimed, deleted)
}

/// One row of the extended `XPENDING`: ID, consumer, idle ms, deliveries.
#[derive(Debug, Clone)]
pub(crate) struct PendingRow {
    pub(crate) id: EntryId,
    pub(crate) deliveries: u64,
}

pub(crate) fn xpending_rows(v: &Value) -> Vec<PendingRow> {
    items(v)
        .into_iter()
        .filter_map(|row| {
            let r = items(row);
            Some(PendingRow {
                id: as_entry_id(r.first()?)?,
                deliveries: as_u64(r.get(3)?)?,
            })
        })
        .collect()
}

/// The summary `XPENDING`: the smallest pending ID, if any.
pub(crate) fn xpending_smallest(v: &Value) -> Option<EntryId> {
    let parts = items(v);
    if as_u64(parts.first()?)? == 0 {
        return None;
    }
    as_entry_id(parts.get(1)?)
}

/// A flat `key, value, ...` record (`XINFO GROUPS`/`CONSUMERS` rows) as lookups.
struct Record(Vec<(String, Value)>);

impl Record {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    fn string(&self, key: &str) -> Option<String> {
        self.get(key).and_then(as_string)
    }
    fn entry_id(&self, key: &str) -> Option<EntryId> {
        self.get(key).and_then(as_entry_id)
    }
    fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(as_u64)
    }
}

fn records(v: &Value) -> impl Iterator<Item = Record> + '_ {
    items(v).into_iter().map(|row| {
        let flat = items(row);
        Record(
            flat.chunks_exact(2)
                .filter_map(|kv| Some((as_string(kv[0])?, kv[1].clone())))
                .collect(),
        )
    })
}

/// One row of `XINFO GROUPS`. A figure is `None` when the server does not report it
/// (`entries-read` and `lag` before Redis 7, `lag` when Redis cannot tell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupInfo {
    pub(crate) name: String,
    pub(crate) consumers: Option<u64>,
    pub(crate) pending: Option<u64>,
    pub(crate) last_delivered: Option<EntryId>,
    pub(crate) entries_read: Option<u64>,
    pub(crate) lag: Option<u64>,
}

/// `XINFO GROUPS`: the groups of a stream (rows without a name are left out). The one
/// decoding of this reply, for the consumer's stats and cleanup and for
/// [`inspect`](crate::redis::inspect).
pub(crate) fn xinfo_groups(v: &Value) -> Vec<GroupInfo> {
    records(v)
        .filter_map(|r| {
            Some(GroupInfo {
                name: r.string("name")?,
                consumers: r.u64("consumers"),
                pending: r.u64("pending"),
                last_delivered: r.entry_id("last-delivered-id"),
                entries_read: r.u64("entries-read"),
                lag: r.u64("lag"),
            })
        })
        .collect()
}

/// One row of `XINFO CONSUMERS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsumerInfo {
    pub(crate) name: String,
    pub(crate) pending: Option<u64>,
    /// Milliseconds since its last attempted interaction.
    pub(crate) idle: Option<u64>,
}

/// `XINFO CONSUMERS`: the consumers of a group (rows without a name are left out). The
/// one decoding of this reply, for the consumer's housekeeping and for
/// [`inspect`](crate::redis::inspect).
pub(crate) fn xinfo_consumers(v: &Value) -> Vec<ConsumerInfo> {
    records(v)
        .filter_map(|r| {
            Some(ConsumerInfo {
                name: r.string("name")?,
                pending: r.u64("pending"),
                idle: r.u64("idle"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn xreadgroup_resp2_and_resp3() {
        let e = Value::Array(vec![
            b("1-0"),
            Value::Array(vec![b("name"), b("n"), b("body"), b("{}")]),
        ]);
        let resp2 = Value::Array(vec![Value::Array(vec![b("s"), Value::Array(vec![e.clone()])])]);
        let resp3 = Value::Map(vec![(b("s"), Value::Array(vec![e]))]);
        for v in [resp2, resp3] {
            let got = xreadgroup(v);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].id, EntryId::new(1, 0));
            assert_eq!(got[0].fields[1], (b"body".to_vec(), b"{}".to_vec()));
        }
        assert!(xreadgroup(Value::Nil).is_empty());
    }

    #[test]
    fn xinfo_groups_resp2_and_resp3_missing_figures_are_none() {
        let row = [
            ("name", b("g")),
            ("pending", Value::Int(2)),
            ("last-delivered-id", b("7-1")),
        ];
        let resp2 = Value::Array(vec![Value::Array(
            row.iter().flat_map(|(k, v)| [b(k), v.clone()]).collect(),
        )]);
        let resp3 = Value::Array(vec![Value::Map(row.iter().map(|(k, v)| (b(k), v.clone())).collect())]);
        for v in [resp2, resp3] {
            let groups = xinfo_groups(&v);
            assert_eq!(groups.len(), 1);
            let g = &groups[0];
            assert_eq!(
                (g.name.as_str(), g.pending, g.last_delivered),
                ("g", Some(2), Some(EntryId::new(7, 1)))
            );
            assert_eq!((g.consumers, g.entries_read, g.lag), (None, None, None));
        }
    }
}
