//! How a channel's stream is kept bounded, and the trim options it puts on an `XADD`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::redis::connection::ServerCapabilities;
use crate::redis::error::Result;

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
    /// [`MaxLen`](Self::MaxLen), acknowledged-only (`MAXLEN n ACKED`, exact): the trim
    /// removes only entries that every consumer group of the stream has read and
    /// acknowledged, so the stream may grow past `n` while a group lags (and, with no
    /// group at all, everything past the bound goes, as with `MaxLen`). Redis 8.2 or
    /// later; refused at registration on other servers (see the
    /// [module docs](super#retention)).
    MaxLenAcked(u64),
    /// [`MinAge`](Self::MinAge), acknowledged-only (`MINID <now - age> ACKED`, exact):
    /// only entries older than `age` that every group has acknowledged are trimmed. Redis
    /// 8.2 or later.
    MinAgeAcked(Duration),
}

impl Retention {
    /// Appends the trim options to an `XADD`, at `now`: `MAXLEN ~ n` or `MINID ~ <ms>`;
    /// the acknowledged-only forms trim exactly and end with `ACKED`, because an
    /// approximate `~ ... ACKED` trim removes nothing on Redis 8.2.2 to 8.4 (checked on
    /// 8.2.3; redis/redis#14656, fixed by #14623).
    pub(super) fn write_xadd_trim(self, xadd: &mut redis::Cmd, now: SystemTime) {
        match self {
            Retention::MaxLen(n) => xadd.arg("MAXLEN").arg("~").arg(n),
            Retention::MinAge(age) => xadd.arg("MINID").arg("~").arg(min_id_ms(now, age)),
            Retention::MaxLenAcked(n) => xadd.arg("MAXLEN").arg(n).arg("ACKED"),
            Retention::MinAgeAcked(age) => xadd.arg("MINID").arg(min_id_ms(now, age)).arg("ACKED"),
        };
    }

    /// Whether this is an acknowledged-only form (needs Redis 8.2).
    #[must_use]
    pub fn acked_only(self) -> bool {
        matches!(self, Retention::MaxLenAcked(_) | Retention::MinAgeAcked(_))
    }

    /// Whether `server` can apply this retention; an acknowledged-only form on a server
    /// without the `ACKED` option is refused with an error naming the server's version,
    /// never downgraded to a trim that could drop unconsumed entries.
    pub(super) fn check_supported(self, server: &ServerCapabilities) -> Result<()> {
        if self.acked_only() && !server.ack_aware_streams() {
            return Err(server.missing(&format!("retention {self:?}")));
        }
        Ok(())
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

    #[test]
    fn acked_forms_trim_exactly_and_end_with_acked() {
        let now = UNIX_EPOCH + Duration::from_millis(10_000);
        let args = |r: Retention| {
            let mut cmd = redis::cmd("XADD");
            r.write_xadd_trim(&mut cmd, now);
            cmd.args_iter()
                .map(|a| match a {
                    redis::Arg::Simple(b) => String::from_utf8(b.to_vec()).unwrap(),
                    _ => String::new(),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(args(Retention::MaxLenAcked(5)), ["XADD", "MAXLEN", "5", "ACKED"]);
        assert_eq!(
            args(Retention::MinAgeAcked(Duration::from_secs(4))),
            ["XADD", "MINID", "6000", "ACKED"]
        );
        assert_eq!(args(Retention::MaxLen(5)), ["XADD", "MAXLEN", "~", "5"]);
        assert!(!Retention::MinAge(Duration::ZERO).acked_only());
    }
}
