//! [`EntryId`]: the ID of a stream entry, used by the sender (what `XADD` returns) and
//! the consumer (what it reads, acknowledges, claims and dead-letters).

use std::fmt;
use std::str::FromStr;

use super::error::{Error, Result};

/// The ID of a stream entry, `<milliseconds>-<sequence>`, as `XADD` returns it. Ordered
/// as the stream orders entries.
///
/// ```
/// use dtrsfw::redis::sender::EntryId;
///
/// let id: EntryId = "1700000000000-3".parse()?;
/// assert_eq!((id.ms(), id.seq()), (1_700_000_000_000, 3));
/// assert_eq!(id.to_string(), "1700000000000-3");
/// assert!(id < EntryId::new(1_700_000_000_001, 0));
/// # Ok::<(), dtrsfw::redis::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    ms: u64,
    seq: u64,
}

impl EntryId {
    /// The ID `<ms>-<seq>`.
    #[must_use]
    pub const fn new(ms: u64, seq: u64) -> Self {
        EntryId { ms, seq }
    }

    /// The millisecond part: the server's clock when the entry was added.
    #[must_use]
    pub const fn ms(&self) -> u64 {
        self.ms
    }

    /// The sequence number among entries of the same millisecond.
    #[must_use]
    pub const fn seq(&self) -> u64 {
        self.seq
    }

    /// Strict parse of `<ms>-<seq>` (what users and `XADD` replies give).
    pub(crate) fn parse_bytes(text: &[u8]) -> Option<Self> {
        EntryId::parse(text, false)
    }

    /// An ID as a server reply spells it (`XREADGROUP`, `XPENDING`, `XINFO`, ...). The
    /// one lenient constructor: a bare `<ms>` means `<ms>-0`, as the server itself reads
    /// it, so a reply in that form is not mistaken for garbage.
    pub(crate) fn from_reply(text: &[u8]) -> Option<Self> {
        EntryId::parse(text, true)
    }

    /// `<ms>-<seq>`, or a bare `<ms>` (as `<ms>-0`) when `seq_optional`.
    fn parse(text: &[u8], seq_optional: bool) -> Option<Self> {
        let number = |digits: &[u8]| -> Option<u64> {
            if digits.is_empty() || digits.len() > 20 {
                return None;
            }
            digits.iter().try_fold(0u64, |n, &d| {
                d.is_ascii_digit()
                    .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
                    .flatten()
            })
        };
        let (ms, seq) = match text.iter().position(|&b| b == b'-') {
            Some(dash) => (&text[..dash], Some(&text[dash + 1..])),
            None if seq_optional => (text, None),
            None => return None,
        };
        Some(EntryId {
            ms: number(ms)?,
            seq: seq.map_or(Some(0), number)?,
        })
    }

    /// The smallest ID greater than this one.
    #[must_use]
    pub(crate) const fn successor(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => EntryId { ms: self.ms, seq },
            None => EntryId {
                ms: self.ms.saturating_add(1),
                seq: 0,
            },
        }
    }

    /// `0-0`, below every entry.
    pub(crate) const ZERO: EntryId = EntryId::new(0, 0);
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for EntryId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        EntryId::parse_bytes(s.as_bytes())
            .ok_or_else(|| Error::invalid_input(format!("{s:?} is not a stream entry ID (<ms>-<seq>)")))
    }
}

impl redis::ToRedisArgs for EntryId {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        out.write_arg_fmt(self);
    }
}

impl redis::ToSingleRedisArg for EntryId {}

impl Error {
    /// The entries a send wrote before it failed with
    /// [`ErrorKind::NotDurable`](super::ErrorKind::NotDurable), in the order of the
    /// messages: each of them IS in the stream, but its durability requirement was not
    /// confirmed in time. Empty for every other error.
    ///
    /// ```no_run
    /// # use dtrsfw::redis::sender::{Message, Sender};
    /// # async fn run(sender: Sender, message: Message) {
    /// match sender.send_message("orders", &message).await {
    ///     Ok(id) => println!("{id} is on a replica"),
    ///     Err(err) if err.is_not_durable() => println!("{:?} written, not confirmed", err.written_ids()),
    ///     Err(err) => println!("not written: {err}"),
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn written_ids(&self) -> Vec<EntryId> {
        // Written from `EntryId`'s own `Display`, so every one parses.
        self.written_id_text().iter().filter_map(|id| id.parse().ok()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_input_is_strict_replies_may_omit_the_sequence() {
        assert_eq!("0-1".parse::<EntryId>().unwrap(), EntryId::new(0, 1));
        for bad in ["", "1", "-1", "1-", "a-1", "1-2-3", "1 -2", "99999999999999999999999-0"] {
            assert!(bad.parse::<EntryId>().is_err(), "{bad:?}");
        }
        assert_eq!(EntryId::from_reply(b"7"), Some(EntryId::new(7, 0)));
        assert_eq!(EntryId::from_reply(b"5-3"), Some(EntryId::new(5, 3)));
        assert_eq!(EntryId::from_reply(b"x"), None);
    }

    #[test]
    fn order_and_successor() {
        let a: EntryId = "5-3".parse().unwrap();
        assert_eq!(a.successor().to_string(), "5-4");
        assert!(EntryId::new(5, 10) > EntryId::new(5, 9));
        assert_eq!(EntryId::new(1, u64::MAX).successor(), EntryId::new(2, 0));
    }
}
