//! Private Redis-compatible servers for dtrsfw's CLI (`dtredis demo`, `dtredis bench`),
//! benchmarks and tests, and a fault-injecting TCP proxy to put in front of them.
//!
//! A [`Server`] runs on a free port of 127.0.0.1, in a temp dir that holds its log, with
//! persistence off unless asked for (`--save "" --appendonly no`). It is killed when it
//! drops, also while the caller panics, and its log is printed with the panic so a
//! failure explains itself. The binary is `$DTRSFW_TEST_SERVER` when set (a path to
//! `redis-server` or `valkey-server`), else `redis-server` (or `valkey-server`) from
//! `PATH`; see [`server_binary`].
//!
//! ```no_run
//! let server = dtrsfw_server::Server::start();
//! let url = server.url(); // redis://127.0.0.1:<free port>/0
//! ```
//!
//! The test harness (`dtrsfw-test-support`, not published) builds clusters, Python peers
//! and log capture on top of this crate.

mod binary;
pub mod proxy;
mod replication;
mod rng;
mod sentinel;
mod server;
mod tls;

pub use binary::{cli_binary, free_port, server_binary, tls_server_binary};
pub use replication::{ReplicaSet, replication_info};
pub use rng::Rng;
pub use sentinel::{DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS, SENTINEL_SERVICE, Sentinel, SentinelSet};
pub use server::{AclUser, Server, ServerBuilder};
pub use tls::generate_unrelated_ca;
