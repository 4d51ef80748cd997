//! The retry bookkeeping of one send: which attempt this is, what an error of it says,
//! and whether a failure is retried (after which wait) or final.

use std::fmt;
use std::time::Duration;

use super::options::SenderOptions;
use crate::redis::error::{Error, Result};
use crate::redis::observe;

/// The attempts of one send (one message, or one chunk of a batch).
pub(super) struct Attempts<'a> {
    options: &'a SenderOptions,
    channel: &'a str,
    attempt: u32,
}

impl<'a> Attempts<'a> {
    pub(super) fn new(options: &'a SenderOptions, channel: &'a str) -> Self {
        Attempts {
            options,
            channel,
            attempt: 1,
        }
    }

    /// The context of an error of the current attempt.
    pub(super) fn context(&self, what: &dyn fmt::Display) -> String {
        format!(
            "{what} to channel {:?} (attempt {} of {})",
            self.channel, self.attempt, self.options.max_attempts
        )
    }

    /// Decides what follows a failure: `Ok(delay)` to sleep then try again, `Err` to give
    /// up with that error.
    pub(super) fn failed(&mut self, err: Error) -> Result<Duration> {
        match self.options.retry_delay(self.attempt, &err) {
            Some(delay) => {
                tracing::warn!(
                    channel = self.channel,
                    attempt = self.attempt,
                    max_attempts = self.options.max_attempts,
                    delay_ms = delay.as_millis() as u64,
                    error = %err,
                    "stream send failed, retrying"
                );
                self.attempt += 1;
                observe::send_retried(self.channel);
                Ok(delay)
            }
            None => {
                if err.is_transient() {
                    tracing::warn!(channel = self.channel, error = %err, "stream send failed, giving up");
                } else {
                    tracing::debug!(channel = self.channel, error = %err, "stream send failed");
                }
                Err(err)
            }
        }
    }
}
