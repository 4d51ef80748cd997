//! [`SenderOptions`]: retries, batching and durability, and the backoff they imply.

use std::time::Duration;

use super::durability::{AofRequirement, Durability};
use crate::redis::error::Error;

/// Options of a [`Sender`](super::Sender): retries, batching and durability.
///
/// ```
/// use std::time::Duration;
/// use dtrsfw::redis::sender::SenderOptions;
///
/// let options = SenderOptions::new()
///     .set_max_attempts(5)
///     .set_initial_backoff(Duration::from_millis(20))
///     .set_batch_size(200);
/// assert_ne!(options, SenderOptions::new());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SenderOptions {
    pub(super) max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    pub(super) batch_size: usize,
    pub(super) durability: Durability,
}

impl Default for SenderOptions {
    fn default() -> Self {
        SenderOptions {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            batch_size: 1000,
            durability: Durability::default(),
        }
    }
}

impl SenderOptions {
    /// The default options.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times in all a send is tried when it fails with a transient error; 1 means
    /// no retry (at-most-once, see the [module docs](super#retries-and-duplicates)). Values
    /// below 1 count as 1. Each attempt is bounded by the instance's socket timeout, plus
    /// its connect timeout when the attempt must first open the shared connection (from a
    /// cold start, or when the last connect failed). So a send against a server that does
    /// not answer fails after at most `attempts × socket timeout` plus the backoffs while
    /// the connection is open, `attempts × connect timeout` plus the backoffs from a cold
    /// start (no connection can be opened), and never more than
    /// `attempts × (connect + socket timeout)` plus the backoffs. By default, 4.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The wait before the first retry; each further retry waits twice as long, up to
    /// [`set_max_backoff`](Self::set_max_backoff). By default, 50 ms.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest wait between two attempts. By default, 1 s.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The most `XADD`s sent in one pipeline (one round trip) by
    /// [`Sender::send_messages`](super::Sender::send_messages); a larger batch goes in
    /// several. Bounds the memory of a request and the time the shared connection is held
    /// by one batch. Values below 1 count as 1. By default, 1000.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// Each send waits until `replicas` replicas have acknowledged its entries (`WAIT`,
    /// sent once after the send's pipeline, see the [module docs](super#durability)); 0
    /// means no wait. When fewer acknowledge within
    /// [`set_durability_timeout`](Self::set_durability_timeout), the send fails with
    /// [`ErrorKind::NotDurable`](crate::redis::ErrorKind::NotDurable): the entries ARE
    /// written, [`Error::written_ids`](crate::redis::Error::written_ids) lists them, and
    /// they are not sent again. By default, 0 (no wait: acknowledged by the primary only).
    ///
    /// ```
    /// use std::time::Duration;
    /// use dtrsfw::redis::sender::SenderOptions;
    ///
    /// let options = SenderOptions::new()
    ///     .set_wait_for_replicas(1)
    ///     .set_durability_timeout(Duration::from_millis(500));
    /// assert_eq!(options.wait_for_replicas(), 1);
    /// ```
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_wait_for_replicas(mut self, replicas: u32) -> Self {
        self.durability.replicas = replicas;
        self
    }

    /// Each send waits until its entries are fsynced to the append-only file of the
    /// primary (`local`) and of `replicas` replicas (`WAITAOF`, Redis >= 7.2 or Valkey >= 8.0,
    /// with `appendonly yes` where a fsync is required). Checked once per instance before
    /// the first write: an older server, or `local` without `appendonly`, refuses with an
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) error and
    /// nothing is written. Unmet in time: as
    /// [`set_wait_for_replicas`](Self::set_wait_for_replicas). `(false, 0)` removes the
    /// requirement. By default, none.
    ///
    /// ```
    /// use dtrsfw::redis::sender::SenderOptions;
    ///
    /// let options = SenderOptions::new().set_wait_for_aof(true, 1);
    /// assert_eq!(options.wait_for_aof(), Some((true, 1)));
    /// ```
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_wait_for_aof(mut self, local: bool, replicas: u32) -> Self {
        self.durability.aof = (local || replicas > 0).then_some(AofRequirement { local, replicas });
        self
    }

    /// How long each wait command (`WAIT`, `WAITAOF`) may wait. The waits of a send,
    /// together, must be shorter than the instance's `redis_socket_timeout` (their reply is
    /// read within it), else the send is refused as
    /// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput). Values below
    /// 1 ms count as 1 ms (0 would mean "forever" to Redis). By default, 1 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use dtrsfw::redis::sender::SenderOptions;
    ///
    /// let options = SenderOptions::new().set_durability_timeout(Duration::from_millis(200));
    /// assert_eq!(options.durability_timeout(), Duration::from_millis(200));
    /// ```
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn set_durability_timeout(mut self, timeout: Duration) -> Self {
        self.durability.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The replicas each send waits for (`WAIT`); 0 when none.
    #[must_use]
    pub fn wait_for_replicas(&self) -> u32 {
        self.durability.replicas
    }

    /// The `WAITAOF` requirement `(local, replicas)`, if any.
    #[must_use]
    pub fn wait_for_aof(&self) -> Option<(bool, u32)> {
        self.durability.aof.map(|a| (a.local, a.replicas))
    }

    /// How long each wait command may wait.
    #[must_use]
    pub fn durability_timeout(&self) -> Duration {
        self.durability.timeout
    }

    /// The wait before the next try after try number `attempt` (1-based) failed with
    /// `err`, or `None` when the error is final: not transient, or no attempt left.
    pub(super) fn retry_delay(&self, attempt: u32, err: &Error) -> Option<Duration> {
        if attempt >= self.max_attempts || !err.is_transient() {
            return None;
        }
        let doubled = self.initial_backoff.saturating_mul(1u32 << (attempt - 1).min(16));
        Some(doubled.min(self.max_backoff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient() -> Error {
        Error::redis(
            "test",
            redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset")),
        )
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stops_after_the_last_attempt() {
        let options = SenderOptions::new()
            .set_max_attempts(5)
            .set_initial_backoff(Duration::from_millis(100))
            .set_max_backoff(Duration::from_millis(300));
        let err = transient();
        assert!(err.is_transient());
        let delays: Vec<_> = (1..=5).map(|a| options.retry_delay(a, &err)).collect();
        assert_eq!(
            delays,
            [100, 200, 300, 300]
                .map(|ms| Some(Duration::from_millis(ms)))
                .into_iter()
                .chain([None])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn non_transient_errors_are_not_retried() {
        let options = SenderOptions::new();
        assert_eq!(options.retry_delay(1, &Error::invalid_input("x")), None);
        assert_eq!(
            SenderOptions::new().set_max_attempts(0).retry_delay(1, &transient()),
            None
        );
    }
}
