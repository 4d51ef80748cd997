//! [`SenderOptions`]: retries and batching, and the backoff they imply.

use std::time::Duration;

use crate::redis::error::Error;

/// Options of a [`Sender`](super::Sender): retries and batching.
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
}

impl Default for SenderOptions {
    fn default() -> Self {
        SenderOptions {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            batch_size: 1000,
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
