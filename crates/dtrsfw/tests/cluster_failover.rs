//! Durable sends through a Redis Cluster failover: two producers and a consumer run on a
//! channel while the primary that owns the channel's slot is killed (`kill -9`); a replica
//! takes over (`cluster-node-timeout` 1000 ms); consumption resumes. With
//! `wait_for_replicas(1)` every send that returned an ID must be processed, and every
//! `WAIT` whose reply counted must have run on the primary that owns the channel's slot.
//! Without the option, lost acknowledged sends are counted and printed, not asserted
//! (replication is asynchronous).
//!
//! The cluster has 3 primaries with 2 replicas each: after the failover the channel's new
//! primary still has a replica, so `WAIT 1` can be met again.
//!
//! Each test runs once here; `scripts/failover-soak.sh cluster [N]` runs each N times and
//! prints every run's `FAILOVER-STATS` line (acknowledged, lost, not confirmed, times).

mod failover_load;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dtrsfw::redis::{RedisConfig, RedisInstance};
use dtrsfw_test_support::{Cluster, Server, replication_info};
use failover_load::{CHANNEL, Load, Processed, pipeline, sender_options, spawn_consumer, unprocessed_after_drain};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_channels_primary_loses_no_send_acknowledged_with_wait_for_replicas() {
    let run = failover_run(true).await;
    eprintln!("FAILOVER-STATS cluster kill wait1=true {run:?}");
    assert!(run.lost.is_empty(), "{run:?}");
    assert!(
        run.resumed_after <= run.promoted_after + Duration::from_secs(2),
        "{run:?}"
    );
    let routing = run.wait_routing.as_ref().expect("routing checked");
    assert!(
        routing.on_owner > 0 && routing.xadds_on_owner > 0,
        "the channel's primary ran no WAIT: {run:?}"
    );
    assert_eq!(
        routing.xadds_on_other_primaries, 0,
        "an XADD ran on another primary: {run:?}"
    );
    assert!(routing.unpaired_elsewhere.is_empty(), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_channels_primary_without_the_option_resumes_and_counts_losses() {
    let run = failover_run(false).await;
    // Without WAIT an acknowledged send may be lost (asynchronous replication): counted,
    // not asserted. Consumption must resume in time either way.
    eprintln!("FAILOVER-STATS cluster kill wait1=false {run:?}");
    assert!(
        run.resumed_after <= run.promoted_after + Duration::from_secs(2),
        "{run:?}"
    );
}

/// What a failover run saw.
struct FailoverRun {
    acked: usize,
    lost: Vec<u64>,
    /// Sends that returned `NotDurable` (written, not confirmed by a replica in time).
    not_durable: u64,
    /// Sends that returned another error (retries exhausted during the switch).
    failed: u64,
    promoted_after: Duration,
    resumed_after: Duration,
    wait_routing: Option<WaitRouting>,
}

impl std::fmt::Debug for FailoverRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "acked={} lost={} {:?} not_durable={} failed={} promoted_after={:?} resumed_after={:?} wait_routing={:?}",
            self.acked,
            self.lost.len(),
            &self.lost[..self.lost.len().min(10)],
            self.not_durable,
            self.failed,
            self.promoted_after,
            self.resumed_after,
            self.wait_routing
        )
    }
}

/// Where the `WAIT`s ran, from every live node's `INFO commandstats` (reset before the
/// run; the killed primary's are gone with it).
#[derive(Debug)]
struct WaitRouting {
    /// `WAIT`s and `XADD`s run by the channel's primary after the failover (the promoted
    /// replica; it may have refused some while it still was a replica).
    on_owner: u64,
    xadds_on_owner: u64,
    /// `WAIT`s run on other live nodes, and the `XADD`s they rejected (`MOVED`).
    elsewhere: u64,
    rejected_xadds_elsewhere: u64,
    /// `XADD`s run by the other primaries (replicas run the replicated ones: not counted).
    xadds_on_other_primaries: u64,
    /// Nodes other than the channel's primary that ran a `WAIT` not paired with an `XADD`
    /// they rejected (`MOVED`): `(port, waits, rejected XADDs)`. Must be empty: redis-rs
    /// re-sends a redirected pipeline whole, so a `WAIT` beside a rejected `XADD` is
    /// discarded, but an unpaired one would be a confirmation from the wrong shard.
    unpaired_elsewhere: Vec<(u16, u64, u64)>,
}

/// Two producers and a consumer on [`CHANNEL`]; its primary is killed while they run;
/// then every acknowledged send is looked for among the processed ones.
async fn failover_run(wait1: bool) -> FailoverRun {
    let mut cluster = tokio::task::spawn_blocking(|| Cluster::start_with_replicas(2))
        .await
        .unwrap();
    let slot = cluster.slot_of(CHANNEL);
    let owner = cluster.primary_for_slot(slot);
    for node in cluster.nodes() {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut node.connection())
            .unwrap();
    }
    let redis = RedisInstance::new(RedisConfig::new().set_redis_url(cluster.seed_url())).unwrap();
    let processed: Processed = Arc::new(Mutex::default());
    let (sender, consumer) = pipeline(&redis, &processed, sender_options(wait1)).await;
    let consuming = spawn_consumer(&consumer);
    let load = Load::start(&sender);

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!processed.lock().unwrap().is_empty(), "consuming before the kill");
    let killed_at = Instant::now();
    cluster.node_mut(owner).kill();
    let new_owner = promoted(&cluster, slot, owner, killed_at).await;
    let promoted_after = killed_at.elapsed();
    let resumed_after = load.resumed_after(&processed, killed_at, promoted_after).await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = load.stop().await;
    let lost = unprocessed_after_drain(&sent.acked, &processed).await;
    consumer.shutdown();
    let _ = consuming.await;
    let wait_routing = wait1.then(|| tokio::task::block_in_place(|| wait_routing(&cluster, new_owner)));
    FailoverRun {
        acked: sent.acked.len(),
        lost,
        not_durable: sent.not_durable,
        failed: sent.failed,
        promoted_after,
        resumed_after,
        wait_routing,
    }
}

/// Waits (30 s at most) until a node other than `old` serves `slot`; returns it.
async fn promoted(cluster: &Cluster, slot: u16, old: usize, killed_at: Instant) -> usize {
    loop {
        let found = tokio::task::block_in_place(|| cluster.try_primary_for_slot(slot));
        if let Some(i) = found.filter(|i| *i != old) {
            return i;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "no replica promoted in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn wait_routing(cluster: &Cluster, owner: usize) -> WaitRouting {
    let mut routing = WaitRouting {
        on_owner: 0,
        xadds_on_owner: 0,
        elsewhere: 0,
        rejected_xadds_elsewhere: 0,
        xadds_on_other_primaries: 0,
        unpaired_elsewhere: Vec::new(),
    };
    for (i, node) in cluster.nodes().iter().enumerate() {
        if node.pid().is_none() {
            continue;
        }
        let stats = command_stats(node);
        let count = |command: &str, field: &str| stats.get(command).map_or(0, |s| s[field]);
        let (waits, xadds, rejected_xadds) = (
            count("wait", "calls"),
            count("xadd", "calls"),
            count("xadd", "rejected_calls"),
        );
        if i == owner {
            routing.on_owner = waits;
            routing.xadds_on_owner = xadds;
            continue;
        }
        routing.elsewhere += waits;
        routing.rejected_xadds_elsewhere += rejected_xadds;
        if replication_info(node).contains("role:master") {
            routing.xadds_on_other_primaries += xadds;
        }
        if waits > rejected_xadds {
            routing.unpaired_elsewhere.push((node.port(), waits, rejected_xadds));
        }
    }
    routing
}

/// `INFO commandstats` as `command -> {calls, rejected_calls, failed_calls}` (missing
/// counters read as 0: servers older than 6.2 have no rejected/failed counts).
fn command_stats(node: &Server) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut node.connection())
        .unwrap();
    info.lines()
        .filter_map(|line| line.trim().strip_prefix("cmdstat_"))
        .filter_map(|line| line.split_once(':'))
        .map(|(command, fields)| {
            let field = |name: &str| {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            let counts = ["calls", "rejected_calls", "failed_calls"]
                .into_iter()
                .map(|name| (name, field(name)))
                .collect();
            (command.to_owned(), counts)
        })
        .collect()
}
