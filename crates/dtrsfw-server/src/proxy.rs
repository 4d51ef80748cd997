//! A fault-injecting TCP proxy, placed between the library and a real server.
//!
//! No maintained Rust crate does this in-process (Toxiproxy is a Go server; its Rust
//! crates are HTTP clients of it), so this is a small one on its own tokio runtime: it
//! works from sync and async tests alike, and dropping the [`Proxy`] shuts the runtime
//! down, which aborts every task and closes every socket it holds.
//!
//! Faults, all switchable while traffic flows:
//! - [`Proxy::set_latency`]: each chunk is delivered `fixed + rand(0..=jitter)` after it
//!   was read (a delay, not a throughput cap: chunks stay in flight together, in order);
//! - [`Proxy::set_black_hole`]: new connections are accepted and held, established ones
//!   stop forwarding (bytes are held, as a partitioned link's retransmissions would be,
//!   and delivered when the hole closes);
//! - [`Proxy::reset_all`]: every connection is reset now (`SO_LINGER 0`, so an RST);
//! - [`Proxy::reset_after`]: the connection that carries the next `n` bytes in one
//!   direction forwards exactly those, then is reset (mid-reply, mid-pipeline);
//! - [`Proxy::set_fragmented`]: writes go out one byte at a time (`TCP_NODELAY`);
//! - [`Proxy::set_bandwidth`]: at most that many bytes a second, per connection and
//!   direction;
//! - [`Proxy::start_chaos`]: a random fault every `T` from a seeded RNG (see [`chaos`]).
//!
//! ```no_run
//! let server = dtrsfw_server::Server::start();
//! let proxy = dtrsfw_server::proxy::Proxy::start(server.port());
//! let url = proxy.url(); // give this to the client under test
//! proxy.set_latency(std::time::Duration::from_millis(50), std::time::Duration::ZERO);
//! ```

pub mod chaos;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::Rng;
pub use chaos::{Fault, FaultCounts};

/// A direction of traffic through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the server (requests, pipelines).
    Upstream,
    /// From the server to the client (replies).
    Downstream,
}

/// The fault settings every connection reads, shared with the [`Proxy`] handle.
#[derive(Debug)]
struct Faults {
    upstream: SocketAddr,
    latency: Mutex<(Duration, Duration)>,
    jitter_rng: Mutex<Rng>,
    black_hole: watch::Sender<bool>,
    /// Bumped by [`Proxy::reset_all`]; every connection watches it.
    resets: watch::Sender<u64>,
    /// Bytes left before the reset armed by [`Proxy::reset_after`], per direction.
    reset_budget: Mutex<[Option<u64>; 2]>,
    fragmented: AtomicBool,
    /// Bytes a second; 0 means unlimited.
    bandwidth: AtomicU64,
    connections: AtomicU64,
    connections_reset: AtomicU64,
    /// Writes done, either direction (each fragment counts).
    writes: AtomicU64,
}

impl Faults {
    fn set_latency(&self, fixed: Duration, jitter: Duration) {
        *self.latency.lock().unwrap_or_else(|e| e.into_inner()) = (fixed, jitter);
    }

    fn set_black_hole(&self, on: bool) {
        self.black_hole.send_replace(on);
    }

    fn reset_all(&self) {
        self.resets.send_modify(|n| *n += 1);
    }

    fn reset_after(&self, direction: Direction, bytes: u64) {
        self.reset_budget.lock().unwrap_or_else(|e| e.into_inner())[direction as usize] = Some(bytes);
    }

    fn set_fragmented(&self, on: bool) {
        self.fragmented.store(on, Ordering::SeqCst);
    }

    fn set_bandwidth(&self, bytes_per_second: Option<u64>) {
        self.bandwidth.store(bytes_per_second.unwrap_or(0), Ordering::SeqCst);
    }

    fn clear(&self) {
        self.set_latency(Duration::ZERO, Duration::ZERO);
        self.set_black_hole(false);
        *self.reset_budget.lock().unwrap_or_else(|e| e.into_inner()) = [None, None];
        self.set_fragmented(false);
        self.set_bandwidth(None);
    }

    fn delay(&self) -> Duration {
        let (fixed, jitter) = *self.latency.lock().unwrap_or_else(|e| e.into_inner());
        if jitter.is_zero() {
            return fixed;
        }
        let extra = self
            .jitter_rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .below(jitter.as_micros() as u64 + 1);
        fixed + Duration::from_micros(extra)
    }

    async fn wait_open(&self) {
        let mut hole = self.black_hole.subscribe();
        let _ = hole.wait_for(|closed| !*closed).await;
    }

    /// How many of `len` bytes may go before the armed reset fires in `direction`, and
    /// whether it fires after them (the budget is then disarmed: one reset per arming).
    fn take_budget(&self, direction: Direction, len: usize) -> (usize, bool) {
        let mut budget = self.reset_budget.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut budget[direction as usize];
        match *slot {
            Some(left) if left <= len as u64 => {
                *slot = None;
                (left as usize, true)
            }
            Some(left) => {
                *slot = Some(left - len as u64);
                (len, false)
            }
            None => (len, false),
        }
    }
}

/// A running proxy to `127.0.0.1:<upstream port>`; faults are set through its methods.
/// Dropping it aborts every task and closes every connection.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    faults: Arc<Faults>,
    chaos: Mutex<Option<chaos::Chaos>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Starts a proxy on a free port of 127.0.0.1 to the server on `upstream_port`.
    #[must_use]
    pub fn start(upstream_port: u16) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .expect("a runtime for the proxy");
        // Bound here (not with `block_on`, which panics inside a caller's runtime) and
        // handed to the proxy's runtime.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy on 127.0.0.1");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let port = listener.local_addr().expect("the proxy's address").port();
        let faults = Arc::new(Faults {
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            latency: Mutex::new((Duration::ZERO, Duration::ZERO)),
            jitter_rng: Mutex::new(Rng::new(u64::from(port))),
            black_hole: watch::Sender::new(false),
            resets: watch::Sender::new(0),
            reset_budget: Mutex::new([None, None]),
            fragmented: AtomicBool::new(false),
            bandwidth: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            connections_reset: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        });
        runtime.spawn(accept_loop(listener, faults.clone()));
        Proxy {
            port,
            faults,
            chaos: Mutex::new(None),
            runtime: Some(runtime),
        }
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<proxy port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Delays every chunk by `fixed` plus a uniform `0..=jitter`. Zero both to stop.
    pub fn set_latency(&self, fixed: Duration, jitter: Duration) {
        self.faults.set_latency(fixed, jitter);
    }

    /// Opens (`true`) or closes the black hole.
    pub fn set_black_hole(&self, on: bool) {
        self.faults.set_black_hole(on);
    }

    /// Resets every open connection now, with an RST.
    pub fn reset_all(&self) {
        self.faults.reset_all();
    }

    /// The connection that carries the next `bytes` bytes in `direction` forwards
    /// exactly those, then is reset. One reset per call; a later call re-arms.
    pub fn reset_after(&self, direction: Direction, bytes: u64) {
        self.faults.reset_after(direction, bytes);
    }

    /// Slices every write into 1-byte writes (`true`) or not.
    pub fn set_fragmented(&self, on: bool) {
        self.faults.set_fragmented(on);
    }

    /// Caps each connection and direction at `bytes_per_second`; `None` lifts the cap.
    pub fn set_bandwidth(&self, bytes_per_second: Option<u64>) {
        self.faults.set_bandwidth(bytes_per_second);
    }

    /// Lifts every fault (latency, black hole, armed resets, fragments, bandwidth).
    pub fn clear(&self) {
        self.faults.clear();
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.faults.connections.load(Ordering::SeqCst)
    }

    /// Connections the proxy reset so far (by [`reset_all`](Self::reset_all) or
    /// [`reset_after`](Self::reset_after)).
    pub fn connections_reset(&self) -> u64 {
        self.faults.connections_reset.load(Ordering::SeqCst)
    }

    /// Writes the proxy made so far, both directions (with fragments on, one per byte).
    pub fn writes(&self) -> u64 {
        self.faults.writes.load(Ordering::SeqCst)
    }

    /// Starts injecting a random fault every `every`, drawn from `seed` (printed on
    /// stderr so a failure can be replayed; see [`chaos::seed_from_env`]). A running
    /// scheduler is stopped first.
    pub fn start_chaos(&self, seed: u64, every: Duration) {
        self.stop_chaos();
        eprintln!(
            "fault proxy :{}: chaos seed {seed} (replay with DTRSFW_FAULT_SEED={seed})",
            self.port
        );
        let chaos = chaos::Chaos::start(self.runtime(), self.faults.clone(), seed, every);
        *self.chaos.lock().unwrap_or_else(|e| e.into_inner()) = Some(chaos);
    }

    /// Stops the scheduler, lifts every fault, and returns what was injected.
    pub fn stop_chaos(&self) -> FaultCounts {
        let counts = match self.chaos.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(chaos) => chaos.stop(),
            None => FaultCounts::default(),
        };
        self.clear();
        counts
    }

    /// What the running scheduler injected so far (zeros when none runs).
    pub fn faults_injected(&self) -> FaultCounts {
        self.chaos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(chaos::Chaos::counts)
            .unwrap_or_default()
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives as long as the proxy")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Aborts every task (accept loop, connections, scheduler); usable from inside
            // another runtime, unlike a plain drop.
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(listener: std::net::TcpListener, faults: Arc<Faults>) {
    let listener = TcpListener::from_std(listener).expect("register the listener with the runtime");
    while let Ok((client, _)) = listener.accept().await {
        faults.connections.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(serve(client, faults.clone()));
    }
}

/// How a direction of a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Closed,
    Reset,
}

async fn serve(mut client: TcpStream, faults: Arc<Faults>) {
    let mut resets = faults.resets.subscribe();
    resets.mark_unchanged();
    // Accept and hold while the hole is open: the client sees a connection that never
    // answers, as behind a partition.
    tokio::select! {
        () = faults.wait_open() => {}
        _ = resets.changed() => return rst(&client, None, &faults),
    }
    let Ok(mut server) = TcpStream::connect(faults.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let end = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(client_read, server_write, Direction::Upstream, &faults);
        let down = pump(server_read, client_write, Direction::Downstream, &faults);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                end = &mut up, if !up_done => if end == End::Reset { break End::Reset } else { up_done = true },
                end = &mut down, if !down_done => if end == End::Reset { break End::Reset } else { down_done = true },
                _ = resets.changed() => break End::Reset,
            }
            if up_done && down_done {
                break End::Closed;
            }
        }
    };
    if end == End::Reset {
        rst(&client, Some(&server), &faults);
    }
}

/// Drops the connection with an RST on both sides (`SO_LINGER 0`).
fn rst(client: &TcpStream, server: Option<&TcpStream>, faults: &Faults) {
    faults.connections_reset.fetch_add(1, Ordering::SeqCst);
    let _ = client.set_zero_linger();
    if let Some(server) = server {
        let _ = server.set_zero_linger();
    }
}

/// Forwards one direction: a reader stamps each chunk with its delivery time, a writer
/// delivers it then, applying the black hole, fragments, bandwidth and armed reset.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    direction: Direction,
    faults: &Faults,
) -> End {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send((Instant::now() + faults.delay(), buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            faults.wait_open().await;
            let (len, reset) = faults.take_budget(direction, bytes.len());
            if write(&mut to, &bytes[..len], faults).await.is_err() {
                return End::Closed;
            }
            if reset {
                return End::Reset;
            }
        }
        let _ = to.shutdown().await;
        End::Closed
    };
    tokio::pin!(reader, writer);
    // A reset ends the direction at once; an end of input lets the writer drain first.
    tokio::select! {
        end = &mut writer => end,
        () = &mut reader => writer.await,
    }
}

/// Writes `bytes` whole, in 1-byte writes when fragmented, paced when capped.
async fn write(to: &mut (impl AsyncWrite + Unpin), bytes: &[u8], faults: &Faults) -> std::io::Result<()> {
    let piece = if faults.fragmented.load(Ordering::SeqCst) {
        1
    } else {
        match faults.bandwidth.load(Ordering::SeqCst) {
            0 => bytes.len().max(1),
            // Ten slices a second keep the pace smooth without a sleep per byte.
            rate => (rate as usize / 10).max(1),
        }
    };
    let (start, mut sent) = (Instant::now(), 0usize);
    for slice in bytes.chunks(piece) {
        // Paced by the bytes sent so far (not a sleep per slice, which would cost at
        // least a timer tick per byte when fragmented): the last byte leaves no sooner
        // than `len / rate` after the first.
        let rate = faults.bandwidth.load(Ordering::SeqCst);
        sent += slice.len();
        if rate > 0 {
            let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
            if due > Instant::now() + Duration::from_millis(1) {
                tokio::time::sleep_until(due).await;
            }
        }
        to.write_all(slice).await?;
        to.flush().await?;
        faults.writes.fetch_add(1, Ordering::SeqCst);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
