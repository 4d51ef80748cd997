//! Feature `metrics` on: every metric of the library, emitted through the `metrics`
//! facade. Names and labels are listed once, here (the table in the module docs mirrors
//! them and `tests/metrics.rs` checks both).
//!
//! Handles are looked up lazily, on first use, and kept (per consumer channel, per sent
//! channel and per cache namespace, see `handles.rs`): so a recorder installed after a
//! consumer or sender was built is still seen, and a message costs atomic adds, not a
//! registry lookup.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Label, Unit, counter, describe_counter, describe_gauge, describe_histogram};

use super::handles::ByLabel;

pub(crate) const SENT: &str = "messaging_client_sent_messages_total";
pub(crate) const SEND_DURATION: &str = "messaging_client_operation_duration_seconds";
pub(crate) const SEND_RETRIES: &str = "dtrsfw_send_retries_total";
pub(crate) const CONSUMED: &str = "messaging_client_consumed_messages_total";
pub(crate) const PROCESS_DURATION: &str = "messaging_process_duration_seconds";
pub(crate) const SETTLED: &str = "dtrsfw_consumer_messages_total";
pub(crate) const IN_FLIGHT: &str = "dtrsfw_consumer_in_flight_messages";
pub(crate) const LAG: &str = "dtrsfw_consumer_lag_messages";
pub(crate) const PENDING: &str = "dtrsfw_consumer_pending_messages";
pub(crate) const CACHE_REQUESTS: &str = "dtrsfw_cache_requests_total";
pub(crate) const CACHE_LOOKUP: &str = "dtrsfw_cache_lookup_duration_seconds";
pub(crate) const CACHE_COMPUTE: &str = "dtrsfw_cache_compute_duration_seconds";
pub(crate) const CIRCUIT_OPEN: &str = "dtrsfw_cache_circuit_open";
pub(crate) const CONNECTS: &str = "dtrsfw_connection_connects_total";
pub(crate) const POOL_OPEN: &str = "dtrsfw_connection_pool_connections";
pub(crate) const POOL_IN_USE: &str = "dtrsfw_connection_pool_in_use";
pub(crate) const POOL_WAITS: &str = "dtrsfw_connection_pool_waits_total";

/// Describes every metric of the library (help text and unit) to the installed
/// recorder: call it once, after installing the recorder. Prometheus shows the help text
/// as `# HELP`. Only with feature `metrics`.
///
/// ```no_run
/// metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
/// dtrsfw::redis::observe::describe();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn describe() {
    let d = Unit::Seconds;
    describe_counter!(SENT, Unit::Count, "Messages written to a stream (outcome ok or error).");
    describe_histogram!(SEND_DURATION, d, "Duration of one send or one batch, retries included.");
    describe_counter!(
        SEND_RETRIES,
        Unit::Count,
        "Send attempts retried after a transient failure."
    );
    describe_counter!(
        CONSUMED,
        Unit::Count,
        "Entries received by a consumer (read or reclaimed)."
    );
    describe_histogram!(PROCESS_DURATION, d, "Duration of running the handlers of one entry.");
    describe_counter!(SETTLED, Unit::Count, "What happened to entries, by outcome.");
    describe_gauge!(
        IN_FLIGHT,
        Unit::Count,
        "Entries held by the consumer loop (queued or running)."
    );
    describe_gauge!(
        LAG,
        Unit::Count,
        "Entries in the stream not yet delivered to the group."
    );
    describe_gauge!(
        PENDING,
        Unit::Count,
        "Entries delivered to the group and not acknowledged."
    );
    describe_counter!(CACHE_REQUESTS, Unit::Count, "Cached calls, by result.");
    describe_histogram!(CACHE_LOOKUP, d, "Duration of one cache read (GET).");
    describe_histogram!(CACHE_COMPUTE, d, "Duration of computing a value on a cache miss.");
    describe_gauge!(
        CIRCUIT_OPEN,
        Unit::Count,
        "1 while the cache's circuit to a server is open."
    );
    describe_counter!(
        CONNECTS,
        Unit::Count,
        "Connections opened (first connects and reconnects)."
    );
    describe_gauge!(POOL_OPEN, Unit::Count, "Connections of the sync pools, idle or lent.");
    describe_gauge!(POOL_IN_USE, Unit::Count, "Connections of the sync pools lent out.");
    describe_counter!(
        POOL_WAITS,
        Unit::Count,
        "Borrows that waited for a connection to come back."
    );
}

fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// The start of something timed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timer(Instant);

impl Timer {
    pub(crate) fn start() -> Self {
        Timer(Instant::now())
    }

    fn elapsed(self) -> Duration {
        self.0.elapsed()
    }
}

// ---- publishing -------------------------------------------------------------------

/// The send metrics of one channel, each registered on first use (an outcome never seen
/// never shows as a zero series).
#[derive(Default)]
struct SendHandles {
    /// Messages sent and send durations, `[ok, error]`.
    outcomes: [OnceLock<(Counter, Histogram)>; 2],
    retries: OnceLock<Counter>,
}

static SEND: ByLabel<SendHandles> = ByLabel::new();

/// One send (of one message or a batch) finished.
pub(crate) fn sent(channel: &str, messages: usize, timer: Timer, ok: bool) {
    let handles = SEND.get(channel, SendHandles::default);
    let (count, duration) = handles.outcomes[usize::from(!ok)].get_or_init(|| {
        let labels = [("channel", channel.to_owned()), ("outcome", outcome(ok).to_owned())];
        (counter!(SENT, &labels), metrics::histogram!(SEND_DURATION, &labels))
    });
    count.increment(messages as u64);
    duration.record(timer.elapsed());
}

pub(crate) fn send_retried(channel: &str) {
    SEND.get(channel, SendHandles::default)
        .retries
        .get_or_init(|| counter!(SEND_RETRIES, "channel" => channel.to_owned()))
        .increment(1);
}

// ---- consuming --------------------------------------------------------------------

/// The labels of one channel of one service.
#[derive(Debug)]
pub(crate) struct ChannelLabels {
    channel: String,
    service: String,
}

impl ChannelLabels {
    pub(crate) fn new(channel: &str, service: &str) -> Arc<Self> {
        Arc::new(ChannelLabels {
            channel: channel.to_owned(),
            service: service.to_owned(),
        })
    }

    fn with(&self, extra: Option<(&'static str, &'static str)>) -> Vec<Label> {
        let mut labels = vec![
            Label::new("channel", self.channel.clone()),
            Label::new("service", self.service.clone()),
        ];
        labels.extend(extra.map(|(k, v)| Label::new(k, v)));
        labels
    }
}

/// A consumer counter: the atomic `get_stats` reports, and its metric, resolved on first
/// use.
#[derive(Debug)]
pub(crate) struct Tally {
    value: AtomicU64,
    labels: Arc<ChannelLabels>,
    name: &'static str,
    outcome: Option<&'static str>,
    metric: OnceLock<Counter>,
}

impl Tally {
    /// `outcome` `None`: `messaging_client_consumed_messages_total`; else an outcome of
    /// `dtrsfw_consumer_messages_total`.
    pub(crate) fn new(labels: &Arc<ChannelLabels>, outcome: Option<&'static str>) -> Self {
        Tally {
            value: AtomicU64::new(0),
            labels: labels.clone(),
            name: if outcome.is_some() { SETTLED } else { CONSUMED },
            outcome,
            metric: OnceLock::new(),
        }
    }

    pub(crate) fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
        let extra = self.outcome.map(|o| ("outcome", o));
        self.metric
            .get_or_init(|| metrics::counter!(self.name, self.labels.with(extra)))
            .increment(n);
    }
}

impl std::ops::Deref for Tally {
    type Target = AtomicU64;

    fn deref(&self) -> &AtomicU64 {
        &self.value
    }
}

/// The handler-duration histograms of one channel (ok, error), shared with its slots.
#[derive(Debug, Clone)]
pub(crate) struct ProcessMetrics(Arc<(Arc<ChannelLabels>, OnceLock<[Histogram; 2]>)>);

impl ProcessMetrics {
    pub(crate) fn new(labels: &Arc<ChannelLabels>) -> Self {
        ProcessMetrics(Arc::new((labels.clone(), OnceLock::new())))
    }

    pub(crate) fn processed(&self, timer: Timer, ok: bool) {
        let (labels, histograms) = &*self.0;
        let [ok_h, err_h] = histograms.get_or_init(|| {
            [true, false].map(|ok| metrics::histogram!(PROCESS_DURATION, labels.with(Some(("outcome", outcome(ok))))))
        });
        if ok { ok_h } else { err_h }.record(timer.elapsed());
    }
}

/// The gauges a channel loop refreshes, at most once a second.
#[derive(Debug)]
pub(crate) struct LoopGauges {
    next: Instant,
    gauges: [Gauge; 3],
}

impl LoopGauges {
    pub(crate) fn new(labels: &ChannelLabels) -> Self {
        LoopGauges {
            next: Instant::now(),
            gauges: [IN_FLIGHT, LAG, PENDING].map(|name| metrics::gauge!(name, labels.with(None))),
        }
    }

    /// Whether a refresh is due (then the next one is a second later).
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + Duration::from_secs(1);
        true
    }

    /// Sets the figures; lag and pending are left as they were when Redis did not tell.
    pub(crate) fn set(&self, in_flight: usize, lag: Option<u64>, pending: Option<u64>) {
        let [g_in_flight, g_lag, g_pending] = &self.gauges;
        g_in_flight.set(in_flight as f64);
        if let Some(lag) = lag {
            g_lag.set(lag as f64);
        }
        if let Some(pending) = pending {
            g_pending.set(pending as f64);
        }
    }
}

// ---- caching ----------------------------------------------------------------------

/// The outcomes of the cache-requests metric, in the order of `CacheHandles::requests`.
const CACHE_OUTCOMES: [&str; 7] = [
    "hit",
    "local_hit",
    "miss",
    "error",
    "joined",
    "short_circuited",
    "bypassed",
];

/// The cache metrics of one namespace, each registered on first use.
#[derive(Default)]
struct CacheHandles {
    requests: [OnceLock<Counter>; CACHE_OUTCOMES.len()],
    lookup: OnceLock<Histogram>,
    compute: OnceLock<Histogram>,
}

static CACHE: ByLabel<CacheHandles> = ByLabel::new();

/// One cached call's result: one of `CACHE_OUTCOMES`.
pub(crate) fn cache_request(namespace: &str, result: &'static str) {
    let request = || counter!(CACHE_REQUESTS, "namespace" => namespace.to_owned(), "outcome" => result);
    match CACHE_OUTCOMES.iter().position(|known| *known == result) {
        Some(index) => CACHE.get(namespace, CacheHandles::default).requests[index]
            .get_or_init(request)
            .increment(1),
        // Not a documented outcome (a new one missing from the list): still counted.
        None => request().increment(1),
    }
}

pub(crate) fn cache_lookup(namespace: &str, timer: Timer) {
    CACHE
        .get(namespace, CacheHandles::default)
        .lookup
        .get_or_init(|| metrics::histogram!(CACHE_LOOKUP, "namespace" => namespace.to_owned()))
        .record(timer.elapsed());
}

pub(crate) fn cache_compute(namespace: &str, timer: Timer) {
    CACHE
        .get(namespace, CacheHandles::default)
        .compute
        .get_or_init(|| metrics::histogram!(CACHE_COMPUTE, "namespace" => namespace.to_owned()))
        .record(timer.elapsed());
}

/// The circuit of `server` (a redacted URL) opened or closed.
pub(crate) fn circuit(server: &str, open: bool) {
    metrics::gauge!(CIRCUIT_OPEN, "server" => server.to_owned()).set(if open { 1.0 } else { 0.0 });
}

// ---- connections ------------------------------------------------------------------

/// A connection attempt finished (`kind`: `pool`, `shared`, `dedicated`).
pub(crate) fn connected(kind: &'static str, ok: bool) {
    counter!(CONNECTS, "kind" => kind, "outcome" => outcome(ok)).increment(1);
}

/// Connections of the sync pools opened (`n > 0`) or closed (`n < 0`).
pub(crate) fn pool_open(n: i64) {
    static OPEN: OnceLock<Gauge> = OnceLock::new();
    OPEN.get_or_init(|| metrics::gauge!(POOL_OPEN)).increment(n as f64);
}

/// Connections lent out (`+1`) or given back (`-1`): twice per blocking call, so the handle
/// is kept.
pub(crate) fn pool_in_use(n: i64) {
    static IN_USE: OnceLock<Gauge> = OnceLock::new();
    IN_USE.get_or_init(|| metrics::gauge!(POOL_IN_USE)).increment(n as f64);
}

pub(crate) fn pool_waited() {
    counter!(POOL_WAITS).increment(1);
}
