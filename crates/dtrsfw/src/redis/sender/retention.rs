//! How a channel's stream is kept bounded, and the trim options it puts on an `XADD`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a channel's stream is kept bounded; applied by every `XADD` to it (see the
/// [module docs](super#retention)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retention {
    /// Keep about the newest `n` entries (`MAXLEN ~ n`).
    MaxLen(u64),
    /// Drop entries older than this (`MINID ~ <now - age>`). The age is measured against
    /// this process's clock, the IDs carry the server's: keep the clocks in sync (NTP) or
    /// leave a margin. Needs Redis 6.2 or later.
    MinAge(Duration),
}

impl Retention {
    /// Appends the trim options (`MAXLEN ~ n` or `MINID ~ <ms>`) to an `XADD`, at `now`.
    pub(super) fn write_xadd_trim(self, xadd: &mut redis::Cmd, now: SystemTime) {
        match self {
            Retention::MaxLen(n) => xadd.arg("MAXLEN").arg("~").arg(n),
            Retention::MinAge(age) => xadd.arg("MINID").arg("~").arg(min_id_ms(now, age)),
        };
    }
}

/// The oldest millisecond a `MinAge(age)` stream keeps, at `now`.
fn min_id_ms(now: SystemTime, age: Duration) -> u64 {
    let now_ms = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    u64::try_from(now_ms.saturating_sub(age.as_millis())).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_age_counts_back_from_now_and_stops_at_zero() {
        let now = UNIX_EPOCH + Duration::from_millis(10_000);
        assert_eq!(min_id_ms(now, Duration::from_secs(4)), 6000);
        assert_eq!(min_id_ms(now, Duration::from_secs(40)), 0);
    }
}
