//! Names the consumer gives to things in Redis, sanitized as `dtpyfw` does: the consumer
//! group of a service on a channel, the dead-letter stream, and this instance's unique
//! consumer name.

/// Replaces every run of characters outside `[A-Za-z0-9._:-]` with `-` and truncates, as
/// `dtpyfw` does for its names.
pub(crate) fn sanitize(s: &str, max_len: usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_run = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    out.chars().take(max_len).collect()
}

/// The consumer group of `service` on `channel`: `<channel>:<service>:cg`.
#[must_use]
pub fn group_name(channel: &str, service: &str) -> String {
    format!("{channel}:{}:cg", sanitize(service, 128))
}

/// The dead-letter stream of `channel`: `<channel>:dlq`.
///
/// ```
/// assert_eq!(dtrsfw::redis::streamer::dead_letter_stream("orders"), "orders:dlq");
/// ```
#[must_use]
pub fn dead_letter_stream(channel: &str) -> String {
    format!("{channel}:dlq")
}

/// This instance's consumer name inside the groups of `service` (already sanitized):
/// `<service>.<host>.<pid>.<random8>`.
pub(crate) fn instance_name(service: &str) -> String {
    let instance = format!(
        "{service}.{}.{}.{}",
        sanitize(&host_name(), 64),
        std::process::id(),
        random8()
    );
    sanitize(&instance, 200)
}

fn host_name() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .or_else(|_| std::fs::read_to_string("/etc/hostname"))
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Eight hex characters that differ between instances (std's per-process random hash
/// keys, mixed with the time and a counter; no cryptographic strength needed).
fn random8() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    format!("{:08x}", h.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized_like_dtpyfw() {
        assert_eq!(sanitize("my service/ä!x", 128), "my-service-x");
        assert_eq!(group_name("orders", "billing"), "orders:billing:cg");
        assert_eq!(sanitize("abcdef", 3), "abc");
        assert_eq!(random8().len(), 8);
    }
}
