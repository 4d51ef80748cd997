//! The circuit breaker: after repeated connection failures or timeouts, calls skip Redis
//! until a periodic probe finds it reachable again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::lock::lock;

/// Circuit-breaker settings (from the cache handle; the state is per server).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CircuitSettings {
    pub(crate) failure_threshold: u32,
    pub(crate) cool_down: Duration,
}

#[derive(Debug, Default)]
struct CircuitState {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probe_started: Option<Instant>,
}

/// Closed → (threshold consecutive transient failures) → open for `cool_down` → one probe
/// call goes through (half-open) → success closes, failure re-opens.
#[derive(Debug, Default)]
pub(crate) struct Circuit {
    state: Mutex<CircuitState>,
}

impl Circuit {
    /// Whether this call may use Redis.
    pub(crate) fn allow(&self, settings: CircuitSettings) -> bool {
        let mut s = lock(&self.state);
        let Some(open_until) = s.open_until else {
            return true;
        };
        let now = Instant::now();
        if now < open_until {
            return false;
        }
        // Half-open: one probe at a time; a probe whose caller vanished (cancelled) does
        // not block the circuit for longer than one more cool-down.
        match s.probe_started {
            Some(started) if now.duration_since(started) < settings.cool_down => false,
            _ => {
                s.probe_started = Some(now);
                true
            }
        }
    }

    /// Closes the circuit; returns whether it was open.
    pub(crate) fn success(&self) -> bool {
        let mut s = lock(&self.state);
        let was_open = s.open_until.is_some();
        if was_open {
            tracing::info!("redis cache: server reachable again, circuit closed");
        }
        *s = CircuitState::default();
        was_open
    }

    /// Counts a failure; returns whether it opened (or re-opened) the circuit.
    pub(crate) fn failure(&self, settings: CircuitSettings) -> bool {
        let mut s = lock(&self.state);
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        let mut opened = false;
        if s.consecutive_failures >= settings.failure_threshold {
            if s.open_until.is_none() || s.probe_started.is_some() {
                opened = true;
                tracing::warn!(
                    failures = s.consecutive_failures,
                    cool_down = ?settings.cool_down,
                    "redis cache: circuit open, calls skip the cache until a probe succeeds"
                );
            }
            s.open_until = Some(Instant::now() + settings.cool_down);
            s.probe_started = None;
        }
        opened
    }
}
