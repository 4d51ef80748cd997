//! The bounded pool behind the sync API.
//!
//! Small on purpose: a mutex-protected stack of idle connections plus a count of
//! connections lent out, and a condvar so a borrower waits (bounded) for a return when
//! the pool is at its size. A connection that broke while lent out (redis-rs marks it not
//! open after an I/O error) is dropped on return instead of being reused, which is how
//! the sync side heals after a server restart.

use std::sync::{Condvar, Mutex, MutexGuard};

use redis::ConnectionLike;
use std::time::{Duration, Instant};

use super::connector::Connector;
use super::sync::SyncConnection;
use crate::redis::error::{Error, ErrorKind, Result};
use crate::redis::observe;

struct Idle {
    conn: SyncConnection,
    since: Instant,
}

struct State {
    idle: Vec<Idle>,
    /// Connections that exist: idle plus lent out.
    open: usize,
    /// Borrowers waiting for a return.
    waiting: usize,
}

pub(super) struct SyncPool {
    connector: Connector,
    state: Mutex<State>,
    returned: Condvar,
    max: usize,
    wait: Duration,
    health_check_interval: Duration,
}

impl std::fmt::Debug for SyncPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("SyncPool")
            .field("max", &self.max)
            .field("open", &state.open)
            .field("idle", &state.idle.len())
            .finish()
    }
}

impl SyncPool {
    pub(super) fn new(connector: Connector, max: usize, wait: Duration, health_check_interval: Duration) -> Self {
        SyncPool {
            connector,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                waiting: 0,
            }),
            returned: Condvar::new(),
            max: max.max(1),
            wait,
            health_check_interval,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent (every
        // critical section is a push, a pop or a counter change), so poison is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes an idle connection, or opens one if below the size, or waits for a return.
    pub(super) fn take(&self) -> Result<SyncConnection> {
        let deadline = Instant::now() + self.wait;
        let mut waited = false;
        let mut state = self.lock();
        loop {
            if let Some(idle) = state.idle.pop() {
                drop(state);
                match self.revalidate(idle) {
                    Some(conn) => {
                        observe::pool_in_use(1);
                        return Ok(conn);
                    }
                    None => {
                        observe::pool_open(-1);
                        state = self.lock();
                        state.open -= 1;
                        continue;
                    }
                }
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                let conn = self.connector.connect_sync().inspect_err(|_| {
                    let mut state = self.lock();
                    state.open -= 1;
                    self.release_and_wake(state);
                })?;
                observe::pool_open(1);
                observe::pool_in_use(1);
                return Ok(conn);
            }
            let now = Instant::now();
            if !waited {
                // Counted once per borrow that finds the pool at its size.
                waited = true;
                observe::pool_waited();
            }
            if now >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "connection pool exhausted: all {} connections in use for {:?} \
                         (raise redis_max_connections, or return connections sooner)",
                        self.max, self.wait
                    ),
                ));
            }
            state.waiting += 1;
            state = self
                .returned
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            state.waiting -= 1;
        }
    }

    /// Releases `state` and wakes one borrower waiting for a return, if there is one. Not
    /// on every return: a condvar's wake is a system call even when nobody waits (one per
    /// sync command, seen in a profile of the blocking sender).
    fn release_and_wake(&self, state: MutexGuard<'_, State>) {
        let waiting = state.waiting > 0;
        drop(state);
        if waiting {
            self.returned.notify_one();
        }
    }

    /// A connection idle past the health-check interval is PINGed first, as redis-py does.
    fn revalidate(&self, idle: Idle) -> Option<SyncConnection> {
        let mut conn = idle.conn;
        if !conn.is_open() {
            return None;
        }
        if idle.since.elapsed() >= self.health_check_interval && redis::cmd("PING").exec(&mut conn).is_err() {
            return None;
        }
        Some(conn)
    }

    /// Whether commands safe to repeat are retried once (`retry_on_timeout`).
    pub(super) fn retry_on_timeout(&self) -> bool {
        self.connector.retry_on_timeout
    }

    /// A new connection to replace a lent one that failed: it takes that one's place in
    /// the count, so the count does not change (the failed one is dropped, not returned).
    pub(super) fn connect_replacement(&self) -> Result<SyncConnection> {
        self.connector.connect_sync()
    }

    /// Hands a connection back; a broken one is dropped and its slot freed.
    pub(super) fn give_back(&self, conn: SyncConnection) {
        observe::pool_in_use(-1);
        if !conn.is_open() {
            observe::pool_open(-1);
        }
        let mut state = self.lock();
        if conn.is_open() {
            state.idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        } else {
            state.open -= 1;
        }
        self.release_and_wake(state);
    }

    /// Closes every idle connection; lent ones close when they come back.
    pub(super) fn clear(&self) {
        let mut state = self.lock();
        let closed = state.idle.len();
        observe::pool_open(-(closed as i64));
        state.idle.clear();
        state.open -= closed;
    }
}
