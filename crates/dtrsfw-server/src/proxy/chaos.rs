//! The fault scheduler: every `T`, one random fault from a seeded RNG.
//!
//! Timed faults (latency, black hole, fragments, bandwidth) last a random 10–150 ms and
//! are lifted by the scheduler when they expire; resets happen at once (all connections)
//! or are armed for a random 1–4096 bytes in a random direction. The same seed and
//! period give the same sequence of faults (the traffic they hit depends on timing).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::{Direction, Faults};
use crate::Rng;

/// The kinds of fault the scheduler injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fixed 1–50 ms plus up to 20 ms of jitter.
    Latency,
    /// Hold new connections and stop forwarding established ones.
    BlackHole,
    /// Reset every connection now.
    ResetNow,
    /// Reset the connection carrying the next 1–4096 bytes of one direction.
    ResetAfterBytes,
    /// 1-byte writes.
    Fragment,
    /// 20 KB/s to 1 MB/s.
    Bandwidth,
}

impl Fault {
    /// Every kind, in the order of [`FaultCounts::by_kind`].
    pub const ALL: [Fault; 6] = [
        Fault::Latency,
        Fault::BlackHole,
        Fault::ResetNow,
        Fault::ResetAfterBytes,
        Fault::Fragment,
        Fault::Bandwidth,
    ];

    /// Relative frequencies: faults that break connections (resets, black holes) are
    /// one in ten, so work still progresses between them at a fault every few ms.
    const WEIGHTS: [u64; 6] = [30, 2, 3, 5, 30, 30];

    fn pick(rng: &mut Rng) -> Fault {
        let mut roll = rng.below(Self::WEIGHTS.iter().sum());
        for (fault, weight) in Self::ALL.into_iter().zip(Self::WEIGHTS) {
            if roll < weight {
                return fault;
            }
            roll -= weight;
        }
        unreachable!("the roll is below the sum of the weights")
    }
}

/// How many faults of each kind were injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Counts in the order of [`Fault::ALL`].
    pub by_kind: [u64; 6],
}

impl FaultCounts {
    /// All faults.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.by_kind.iter().sum()
    }

    /// Faults of `kind`.
    #[must_use]
    pub fn of(&self, kind: Fault) -> u64 {
        self.by_kind[kind as usize]
    }
}

impl std::fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} faults (", self.total())?;
        for (i, kind) in Fault::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{kind:?} {}", self.of(*kind))?;
        }
        write!(f, ")")
    }
}

/// The seed to use: `$DTRSFW_FAULT_SEED` when set (to replay a printed seed), else
/// `default`.
#[must_use]
pub fn seed_from_env(default: u64) -> u64 {
    std::env::var("DTRSFW_FAULT_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// A running scheduler; stopped by [`Chaos::stop`] or with the proxy's runtime.
#[derive(Debug)]
pub(super) struct Chaos {
    counts: Arc<[AtomicU64; 6]>,
    task: tokio::task::JoinHandle<()>,
    faults: Arc<Faults>,
}

impl Chaos {
    pub(super) fn start(runtime: &tokio::runtime::Runtime, faults: Arc<Faults>, seed: u64, every: Duration) -> Chaos {
        let counts: Arc<[AtomicU64; 6]> = Arc::default();
        let task = runtime.spawn(run(faults.clone(), counts.clone(), Rng::new(seed), every));
        Chaos { counts, task, faults }
    }

    pub(super) fn counts(&self) -> FaultCounts {
        FaultCounts {
            by_kind: std::array::from_fn(|i| self.counts[i].load(Ordering::SeqCst)),
        }
    }

    pub(super) fn stop(self) -> FaultCounts {
        self.task.abort();
        self.faults.clear();
        self.counts()
    }
}

/// When each timed fault expires, by [`Fault::ALL`] index.
type Expiry = [Option<Instant>; 6];

async fn run(faults: Arc<Faults>, counts: Arc<[AtomicU64; 6]>, mut rng: Rng, every: Duration) {
    let mut expiry = Expiry::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        lift_expired(&faults, &mut expiry);
        let fault = Fault::pick(&mut rng);
        let lasts = Duration::from_millis(10 + rng.below(141));
        match fault {
            Fault::Latency => faults.set_latency(
                Duration::from_millis(1 + rng.below(50)),
                Duration::from_millis(rng.below(21)),
            ),
            Fault::BlackHole => faults.set_black_hole(true),
            Fault::ResetNow => faults.reset_all(),
            Fault::ResetAfterBytes => {
                let direction = if rng.below(2) == 0 {
                    Direction::Upstream
                } else {
                    Direction::Downstream
                };
                faults.reset_after(direction, 1 + rng.below(4096));
            }
            Fault::Fragment => faults.set_fragmented(true),
            Fault::Bandwidth => faults.set_bandwidth(Some(20_000 + rng.below(980_001))),
        }
        if !matches!(fault, Fault::ResetNow | Fault::ResetAfterBytes) {
            expiry[fault as usize] = Some(Instant::now() + lasts);
        }
        counts[fault as usize].fetch_add(1, Ordering::SeqCst);
    }
}

fn lift_expired(faults: &Faults, expiry: &mut Expiry) {
    let now = Instant::now();
    for fault in Fault::ALL {
        let slot = &mut expiry[fault as usize];
        if slot.is_some_and(|at| at <= now) {
            *slot = None;
            match fault {
                Fault::Latency => faults.set_latency(Duration::ZERO, Duration::ZERO),
                Fault::BlackHole => faults.set_black_hole(false),
                Fault::Fragment => faults.set_fragmented(false),
                Fault::Bandwidth => faults.set_bandwidth(None),
                Fault::ResetNow | Fault::ResetAfterBytes => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_picks_the_same_faults_and_every_kind_comes_up() {
        let picks = |seed| {
            let mut rng = Rng::new(seed);
            (0..1000).map(|_| Fault::pick(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(picks(7), picks(7));
        assert_ne!(picks(7), picks(8));
        for kind in Fault::ALL {
            assert!(picks(7).contains(&kind), "{kind:?} is drawn");
        }
    }
}
