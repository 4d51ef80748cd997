//! The local tier's coherence across real OS processes (no test harness: `main` below).
//!
//! Two writer processes update versioned values under one key set (16 keys) with
//! random pauses; one reader process runs 4 tasks calling a local-tier cached function
//! (`try_call_cloned_async`) on random keys. Afterwards: each reader task's versions of
//! a key never go backwards, and every read that started 50 ms or more after a write
//! of its key completed returned that version or a newer one. Three runs: quiet, with
//! the tracking connection killed (`CLIENT KILL`) every 150 ms, and with the server
//! restarted twice. The processes are this test binary again, with a role in
//! `DTRSFW_COHERENCE_ROLE`; the parent kills them when it ends, panicking or not.
//!
//! Updates in all (both writers): `DTRSFW_COHERENCE_UPDATES`, by default 2 000 (a few
//! seconds per run); the figure is 10 000. The server: `DTRSFW_TEST_SERVER`.

mod coherence_support;

use coherence_support::{Disturbance, ROLE, reader, run_check, writer};

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("writer") => writer(),
        Ok("reader") => reader(),
        Ok(other) => panic!("unknown {ROLE}: {other}"),
        Err(_) => {
            let updates = std::env::var("DTRSFW_COHERENCE_UPDATES")
                .ok()
                .map_or(2_000, |n| n.parse().expect("DTRSFW_COHERENCE_UPDATES is a number"));
            for disturbance in [Disturbance::None, Disturbance::KillTracking, Disturbance::Restart] {
                run_check(disturbance, updates);
            }
            eprintln!("cache_coherence: 3 runs passed");
        }
    }
}
