//! Process-wide cache state per Redis server: the circuit breaker, the in-flight calls
//! (single-flight), the counters and the cache's own short-timeout sync connections.
//!
//! The state is kept in a registry keyed by the server URL rather than in each cache
//! handle: health is a property of the server, so once one cached function finds the
//! server gone, every other function using it skips Redis too instead of each paying its
//! own timeouts; and the macro's per-function handles, the function API and `cache_data`
//! all see one picture. Clones of a `RedisInstance` (and separate instances with the same
//! URL) share it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::redis::connection::{RedisInstance, SyncConnection};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (plain fields), so
    // poisoning is ignored rather than spreading the panic to every later call.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counters of cache activity. Read with [`CachedFunction::stats`](super::CachedFunction::stats)
/// (one function) or [`cache_stats`](super::cache_stats) (everything on one server).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls answered from Redis.
    pub hits: u64,
    /// Calls that ran the function (nothing cached, or an unreadable value).
    pub misses: u64,
    /// Cache reads or writes that failed (server down, timeout, corrupt or foreign value)
    /// and were ignored; the function ran instead.
    pub errors: u64,
    /// Calls that waited for a concurrent identical call in this process and took its
    /// result instead of running the function (single-flight).
    pub joins: u64,
    /// Calls that did not touch Redis because the circuit was open.
    pub short_circuited: u64,
    /// Calls not cached because no `cache_only_for` condition held.
    pub bypassed: u64,
}

/// Atomic twin of [`CacheStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    joins: AtomicU64,
    short_circuited: AtomicU64,
    bypassed: AtomicU64,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Hit,
    Miss,
    Error,
    Join,
    ShortCircuit,
    Bypass,
}

impl Counters {
    pub(crate) fn record(&self, event: Event) {
        let counter = match event {
            Event::Hit => &self.hits,
            Event::Miss => &self.misses,
            Event::Error => &self.errors,
            Event::Join => &self.joins,
            Event::ShortCircuit => &self.short_circuited,
            Event::Bypass => &self.bypassed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            joins: self.joins.load(Ordering::Relaxed),
            short_circuited: self.short_circuited.load(Ordering::Relaxed),
            bypassed: self.bypassed.load(Ordering::Relaxed),
        }
    }
}

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

    pub(crate) fn success(&self) {
        let mut s = lock(&self.state);
        if s.open_until.is_some() {
            tracing::info!("redis cache: server reachable again, circuit closed");
        }
        *s = CircuitState::default();
    }

    pub(crate) fn failure(&self, settings: CircuitSettings) {
        let mut s = lock(&self.state);
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        if s.consecutive_failures >= settings.failure_threshold {
            if s.open_until.is_none() || s.probe_started.is_some() {
                tracing::warn!(
                    failures = s.consecutive_failures,
                    cool_down = ?settings.cool_down,
                    "redis cache: circuit open, calls skip the cache until a probe succeeds"
                );
            }
            s.open_until = Some(Instant::now() + settings.cool_down);
            s.probe_started = None;
        }
    }
}

/// How an in-flight computation ended, as seen by the callers waiting for it.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Pending,
    /// The value, as JSON bytes.
    Done(Arc<[u8]>),
    /// The leader returned an error or was cancelled: a waiter must take over.
    Abandoned,
}

/// One in-flight computation of one key; sync waiters use the condvar, async waiters
/// the notify.
#[derive(Debug)]
pub(crate) struct Flight {
    outcome: Mutex<Outcome>,
    cond: Condvar,
    notify: tokio::sync::Notify,
}

impl Flight {
    pub(crate) fn wait_blocking(&self) -> Outcome {
        let mut outcome = lock(&self.outcome);
        while matches!(*outcome, Outcome::Pending) {
            outcome = self.cond.wait(outcome).unwrap_or_else(|e| e.into_inner());
        }
        outcome.clone()
    }

    pub(crate) async fn wait(&self) -> Outcome {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a completion between check and await is
            // not missed.
            notified.as_mut().enable();
            let outcome = lock(&self.outcome).clone();
            if !matches!(outcome, Outcome::Pending) {
                return outcome;
            }
            notified.await;
        }
    }
}

/// The leader's duty: finish the flight. Dropped without [`complete`](Self::complete)
/// (error result, panic, cancelled future) it marks the flight abandoned so a waiter
/// takes over.
#[derive(Debug)]
pub(crate) struct FlightGuard {
    server: Arc<ServerState>,
    key: String,
    flight: Arc<Flight>,
    done: bool,
}

impl FlightGuard {
    pub(crate) fn complete(mut self, json: Arc<[u8]>) {
        self.finish(Outcome::Done(json));
    }

    fn finish(&mut self, outcome: Outcome) {
        self.done = true;
        {
            let mut flights = lock(&self.server.flights);
            if flights.get(&self.key).is_some_and(|f| Arc::ptr_eq(f, &self.flight)) {
                flights.remove(&self.key);
            }
        }
        *lock(&self.flight.outcome) = outcome;
        self.flight.cond.notify_all();
        self.flight.notify.notify_waiters();
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Outcome::Abandoned);
        }
    }
}

/// Either this caller computes, or it waits for the caller that does.
#[derive(Debug)]
pub(crate) enum Role {
    Leader(FlightGuard),
    Waiter(Arc<Flight>),
}

/// Everything the cache keeps for one server.
#[derive(Default)]
pub(crate) struct ServerState {
    pub(crate) circuit: Circuit,
    pub(crate) counters: Counters,
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    /// Idle sync connections with the cache's short timeouts, with the timeout they carry.
    idle: Mutex<Vec<(SyncConnection, Duration)>>,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("circuit", &self.circuit)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// How many idle sync connections the cache keeps per server.
const MAX_IDLE: usize = 16;

impl ServerState {
    /// The state of `redis`'s server, created on first use.
    pub(crate) fn of(redis: &RedisInstance) -> Arc<ServerState> {
        // Instances of one URL share one state (through the registry); each instance
        // remembers its entry, so only its first cached call takes the registry lock.
        static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<ServerState>>>> = OnceLock::new();
        redis
            .cache_state(|| {
                let registry = REGISTRY.get_or_init(Default::default);
                lock(registry).entry(redis.redis_url().to_owned()).or_default().clone()
            })
            .clone()
    }

    pub(crate) fn join(self: &Arc<Self>, key: &str) -> Role {
        let mut flights = lock(&self.flights);
        if let Some(flight) = flights.get(key) {
            return Role::Waiter(flight.clone());
        }
        let flight = Arc::new(Flight {
            outcome: Mutex::new(Outcome::Pending),
            cond: Condvar::new(),
            notify: tokio::sync::Notify::new(),
        });
        flights.insert(key.to_owned(), flight.clone());
        Role::Leader(FlightGuard {
            server: self.clone(),
            key: key.to_owned(),
            flight,
            done: false,
        })
    }

    /// Runs `f` on an idle short-timeout sync connection (a new one if none), keeping the
    /// connection only when `f` succeeded: after an error its reply stream may be out of
    /// step.
    pub(crate) fn with_sync_connection<T>(
        &self,
        redis: &RedisInstance,
        timeout: Duration,
        f: impl FnOnce(&mut SyncConnection) -> redis::RedisResult<T>,
    ) -> crate::redis::Result<T> {
        use crate::redis::error::Error;
        let idle = lock(&self.idle).pop();
        let mut conn = match idle {
            Some((conn, t)) if t == timeout => conn,
            Some((conn, _)) => set_timeouts(conn, timeout)?,
            // Connecting (handshake included) is bounded by the cache timeout too, so a
            // server that accepts but never answers costs no more than one that is gone.
            None => redis.get_connection_with_timeout(timeout)?,
        };
        let result = f(&mut conn).map_err(|e| Error::redis("redis cache", e))?;
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push((conn, timeout));
        }
        Ok(result)
    }
}

fn set_timeouts(conn: SyncConnection, timeout: Duration) -> crate::redis::Result<SyncConnection> {
    conn.set_read_timeout(Some(timeout))
        .and_then(|()| conn.set_write_timeout(Some(timeout)))
        .map_err(|e| crate::redis::error::Error::redis("setting cache timeouts", e))?;
    Ok(conn)
}
