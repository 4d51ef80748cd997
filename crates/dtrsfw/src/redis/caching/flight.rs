//! Single-flight: concurrent calls of one key in one process share one lookup and one
//! computation. The first caller leads; the others wait for its outcome, and take over
//! when it fails or is cancelled. Errors are never shared.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

use super::lock::lock;

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
    pub(crate) fn wait_sync(&self) -> Outcome {
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

/// The calls in flight on one server, by key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    by_key: Mutex<HashMap<String, Arc<Flight>>>,
}

/// Either this caller computes, or it waits for the caller that does.
#[derive(Debug)]
pub(crate) enum Role<'a> {
    Leader(FlightGuard<'a>),
    Waiter(Arc<Flight>),
}

impl Flights {
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        let mut by_key = lock(&self.by_key);
        if let Some(flight) = by_key.get(key) {
            return Role::Waiter(flight.clone());
        }
        let flight = Arc::new(Flight {
            outcome: Mutex::new(Outcome::Pending),
            cond: Condvar::new(),
            notify: tokio::sync::Notify::new(),
        });
        by_key.insert(key.to_owned(), flight.clone());
        Role::Leader(FlightGuard {
            flights: self,
            key: key.to_owned(),
            flight,
            done: false,
        })
    }
}

/// The leader's duty: finish the flight. Dropped without [`complete`](Self::complete)
/// (error result, panic, cancelled future) it marks the flight abandoned so a waiter
/// takes over.
#[derive(Debug)]
pub(crate) struct FlightGuard<'a> {
    flights: &'a Flights,
    key: String,
    flight: Arc<Flight>,
    done: bool,
}

impl FlightGuard<'_> {
    pub(crate) fn complete(mut self, json: Arc<[u8]>) {
        self.finish(Outcome::Done(json));
    }

    fn finish(&mut self, outcome: Outcome) {
        self.done = true;
        {
            let mut by_key = lock(&self.flights.by_key);
            if by_key.get(&self.key).is_some_and(|f| Arc::ptr_eq(f, &self.flight)) {
                by_key.remove(&self.key);
            }
        }
        *lock(&self.flight.outcome) = outcome;
        self.flight.cond.notify_all();
        self.flight.notify.notify_waiters();
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Outcome::Abandoned);
        }
    }
}
