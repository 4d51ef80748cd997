//! The Redis commands the cache sends.

/// Keys examined per SCAN step (and so at most unlinked per UNLINK).
const SCAN_COUNT: usize = 1000;

pub(super) fn get_cmd(key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("GET");
    cmd.arg(key);
    cmd
}

/// One atomic write: `SET key value [EX n]` (the Python package does DEL then SETEX).
pub(super) fn set_cmd(key: &str, value: &[u8], expire: Option<u64>) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if let Some(seconds) = expire.filter(|s| *s > 0) {
        cmd.arg("EX").arg(seconds);
    }
    cmd
}

pub(super) fn unlink_cmd<K: redis::ToRedisArgs>(keys: K) -> redis::Cmd {
    let mut cmd = redis::cmd("UNLINK");
    cmd.arg(keys);
    cmd
}

pub(super) fn scan_cmd(cursor: u64, pattern: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(SCAN_COUNT);
    cmd
}

/// `namespace:*` with glob characters of the namespace escaped.
pub(super) fn namespace_pattern(namespace: &str) -> String {
    let mut pattern = String::with_capacity(namespace.len() + 2);
    for c in namespace.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str(":*");
    pattern
}
