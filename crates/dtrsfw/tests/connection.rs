//! Configuration, URL building, pools, reconnects, stalls, TLS, ACL and secrecy, against
//! real servers started by the test harness.

use std::time::{Duration, Instant};

use dtrsfw::redis::{ConfigValue, ErrorKind, RedisConfig, RedisInstance, is_redis_connected, is_redis_connected_async};
use dtrsfw_test_support::{Server, generate_unrelated_ca};
use redis::{AsyncCommands, Commands};

fn instance_for(server: &Server) -> RedisInstance {
    RedisInstance::new(RedisConfig::new().set_redis_url(server.url())).expect("valid config")
}

/// An instance whose commands wait at most `socket_timeout` for a reply and are never
/// retried: what a stalled wait gives, unmasked.
fn no_retry_instance(server: &Server, socket_timeout: Duration) -> RedisInstance {
    RedisInstance::new(
        RedisConfig::new()
            .set_redis_url(server.url())
            .set_redis_socket_timeout(socket_timeout)
            .set_redis_retry_on_timeout(false),
    )
    .expect("valid config")
}

fn url_of(config: RedisConfig) -> String {
    RedisInstance::new(config).expect("valid config").redis_url().to_owned()
}

#[test]
fn url_is_composed_like_the_python_package_with_encoded_credentials() {
    let base = || RedisConfig::new().set_redis_host("cache.internal").set_redis_port(6380);
    assert_eq!(url_of(base()), "redis://cache.internal:6380/0");
    assert_eq!(url_of(base().set_redis_db("3")), "redis://cache.internal:6380/3");
    assert_eq!(
        url_of(base().set_redis_username("us@r:x").set_redis_password("p@ss:w/o#r%d+")),
        "redis://us%40r%3Ax:p%40ss%3Aw%2Fo%23r%25d%2B@cache.internal:6380/0"
    );
    assert_eq!(
        url_of(base().set_redis_username("app")),
        "redis://app@cache.internal:6380/0"
    );
    assert_eq!(
        url_of(base().set_redis_password("pw")),
        "redis://:pw@cache.internal:6380/0"
    );
    assert_eq!(url_of(base().set_redis_ssl(true)), "rediss://cache.internal:6380/0");
    assert_eq!(
        url_of(base().set_redis_url("redis://elsewhere:1/2")),
        "redis://elsewhere:1/2",
        "a URL overrides the parts"
    );
    assert_eq!(url_of(RedisConfig::new().set_redis_host("::1")), "redis://[::1]:6379/0");
}

#[test]
fn encoded_credentials_reach_the_server_intact() {
    let password = "p@ss:w/o#r%d+é";
    let server = Server::builder().acl_user("us@r:x", password, "~* &* +@all").start();
    let redis = RedisInstance::new(
        RedisConfig::new()
            .set_redis_host("127.0.0.1")
            .set_redis_port(server.port().into())
            .set_redis_username("us@r:x")
            .set_redis_password(password),
    )
    .unwrap();
    let who: String = redis::cmd("ACL")
        .arg("WHOAMI")
        .query(&mut redis.get_redis().unwrap())
        .unwrap();
    assert_eq!(who, "us@r:x");
}

#[test]
fn every_invalid_field_is_rejected_by_name() {
    let cases: Vec<(RedisConfig, &str)> = vec![
        (RedisConfig::new(), "redis_host"),
        (RedisConfig::new().set_redis_host("  "), "redis_host"),
        (RedisConfig::new().set_redis_host("h").set_redis_port(0), "redis_port"),
        (
            RedisConfig::new().set_redis_host("h").set_redis_port(65536),
            "redis_port",
        ),
        (RedisConfig::new().set_redis_host("h").set_redis_db("zero"), "redis_db"),
        (RedisConfig::new().set_redis_host("h").set_redis_db("-1"), "redis_db"),
        (RedisConfig::new().set_redis_url("http://h:1/0"), "redis_url"),
        (RedisConfig::new().set_redis_url("redis://h:notaport/0"), "redis_url"),
        (
            RedisConfig::new().set_redis_url("redis://h:1/0").set_redis_ssl(true),
            "redis_ssl",
        ),
        (
            RedisConfig::new()
                .set_redis_host("h")
                .set_redis_ssl_ca_certs("/nonexistent/ca.pem")
                .set_redis_ssl(true),
            "redis_ssl_ca_certs",
        ),
    ];
    for (config, field) in cases {
        let shown = format!("{config:?}");
        let err = RedisInstance::new(config).expect_err(&shown);
        assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
        assert!(err.is_configuration());
        assert!(
            err.to_string().contains(field),
            "error for {shown} should name {field}: {err}"
        );
    }
}

#[test]
fn from_env_reads_url_first_then_parts() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    };
    let config = RedisConfig::from_lookup(env(&[("REDIS_URL", "redis://u:1/2"), ("REDIS_HOST", "ignored")])).unwrap();
    assert_eq!(config.redis_url(), Some("redis://u:1/2"));
    assert_eq!(config.redis_host(), None);

    let config = RedisConfig::from_lookup(env(&[
        ("REDIS_HOST", "h"),
        ("REDIS_PORT", "7000"),
        ("REDIS_DB", "4"),
        ("REDIS_USERNAME", "u"),
        ("REDIS_PASSWORD", "p"),
        ("REDIS_SSL", "true"),
    ]))
    .unwrap();
    assert_eq!(url_of(config.clone()), "rediss://u:p@h:7000/4");
    assert_eq!(config.get("redis_port"), Some(ConfigValue::Integer(7000)));
    assert_eq!(config.get("redis_ssl"), Some(ConfigValue::Bool(true)));
    assert_eq!(config.get("no_such_key"), None);

    let err = RedisConfig::from_lookup(env(&[("REDIS_PORT", "seventy")])).unwrap_err();
    assert!(
        err.is_configuration() && err.to_string().contains("REDIS_PORT"),
        "{err}"
    );
    let err = RedisConfig::from_lookup(env(&[("REDIS_SSL", "maybe")])).unwrap_err();
    assert!(err.to_string().contains("REDIS_SSL"), "{err}");
}

#[test]
fn setters_are_readable_through_typed_getters_and_get() {
    let config = RedisConfig::new()
        .set_redis_max_connections(3)
        .set_redis_socket_timeout(Duration::from_millis(700))
        .set_redis_socket_connect_timeout(Duration::from_millis(800))
        .set_redis_socket_keepalive(false)
        .set_redis_health_check_interval(Duration::from_secs(1))
        .set_redis_retry_on_timeout(false);
    assert_eq!(config.redis_max_connections(), 3);
    assert_eq!(config.redis_socket_timeout(), Duration::from_millis(700));
    assert_eq!(config.redis_socket_connect_timeout(), Duration::from_millis(800));
    assert!(!config.redis_socket_keepalive());
    assert_eq!(config.redis_health_check_interval(), Duration::from_secs(1));
    assert!(!config.redis_retry_on_timeout());
    assert_eq!(config.get("redis_max_connections"), Some(ConfigValue::Integer(3)));
    assert_eq!(
        config.get("redis_socket_timeout"),
        Some(ConfigValue::Duration(Duration::from_millis(700)))
    );
    let defaults = RedisConfig::new();
    assert_eq!(defaults.redis_max_connections(), 10);
    assert_eq!(defaults.redis_socket_timeout(), Duration::from_secs(5));
    assert!(defaults.redis_socket_keepalive() && defaults.redis_retry_on_timeout());
}

#[test]
fn sync_pool_of_two_serves_200_borrows_and_bounds_exhaustion() {
    let server = Server::start();
    let redis = RedisInstance::new(
        RedisConfig::new()
            .set_redis_url(server.url())
            .set_redis_max_connections(2)
            .set_redis_socket_connect_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    for i in 0..200 {
        let mut conn = redis.get_redis().unwrap();
        let _: () = conn.set("k", i).unwrap();
    }
    let clients: usize = {
        let mut c = server.connection();
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
        list.lines().count() - 1 // minus the checking connection
    };
    assert!(clients <= 2, "pool of 2 opened {clients} connections");

    let _a = redis.get_redis().unwrap();
    let _b = redis.get_redis().unwrap();
    let start = Instant::now();
    let err = redis.get_redis().unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.to_string().contains("pool exhausted"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    drop(_a);
    redis.get_redis().expect("a returned connection is reusable");
}

#[test]
fn a_borrower_waiting_on_a_full_pool_gets_the_connection_returned() {
    let server = Server::start();
    // A wait of 5 s: a borrower that was never woken would sleep through all of it.
    let redis = RedisInstance::new(
        RedisConfig::new()
            .set_redis_url(server.url())
            .set_redis_max_connections(1)
            .set_redis_socket_connect_timeout(Duration::from_secs(5)),
    )
    .unwrap();
    let held = redis.get_redis().unwrap();
    let waiter = {
        let redis = redis.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut conn = redis.get_redis().map_err(|e| e.to_string())?;
            let _: () = conn.set("k", 1).map_err(|e| e.to_string())?;
            Ok::<_, String>(start.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    drop(held);
    let waited = waiter
        .join()
        .unwrap()
        .expect("the waiting borrower got the returned connection");
    assert!(
        waited < Duration::from_secs(4),
        "woken by the return, not by its own deadline: waited {waited:?}"
    );
}

#[test]
fn sync_client_handle_runs_commands_over_the_pool() {
    let server = Server::start();
    let redis = instance_for(&server);
    let mut client = redis.get_redis_client();
    let _: () = client.set("greeting", "hello").unwrap();
    let got: String = client.get("greeting").unwrap();
    assert_eq!(got, "hello");
    redis.reset_sync_pool();
    let got: String = client.get("greeting").unwrap();
    assert_eq!(got, "hello", "works again after reset_sync_pool");
}

#[tokio::test]
async fn async_client_shares_one_connection() {
    let server = Server::start();
    let redis = instance_for(&server);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let redis = redis.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = redis.get_async_redis_client().await.unwrap();
            let _: () = client.set(format!("k{i}"), i).await.unwrap();
            let v: i32 = client.get(format!("k{i}")).await.unwrap();
            assert_eq!(v, i);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut c = server.connection();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
    assert_eq!(list.lines().count(), 2, "one multiplexed connection plus ours:\n{list}");
    redis.reset_async_pool().await;
    let mut client = redis.get_async_redis().await.unwrap();
    let v: i32 = client.get("k3").await.unwrap();
    assert_eq!(v, 3);
}

#[tokio::test]
async fn async_client_recovers_after_server_restart_without_user_code() {
    let mut server = Server::start();
    let redis = instance_for(&server);
    let mut client = redis.get_async_redis_client().await.unwrap();
    let _: () = client.set("before", 1).await.unwrap();
    server.restart();
    let back = Instant::now();
    let mut last_err = None;
    while back.elapsed() < Duration::from_secs(2) {
        match client.ping::<String>().await {
            Ok(_) => break,
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pong: String = client
        .ping()
        .await
        .unwrap_or_else(|e| panic!("not recovered in 2s: {e} / {last_err:?}"));
    assert_eq!(pong, "PONG");
    assert!(back.elapsed() < Duration::from_secs(2));
}

#[test]
fn sync_pool_recovers_after_server_restart() {
    let mut server = Server::start();
    let redis = instance_for(&server);
    let mut client = redis.get_redis_client();
    let _: () = client.set("k", 1).unwrap();
    server.restart();
    // The pooled connection is dead; GET is safe to retry, so the handle reconnects.
    let start = Instant::now();
    let v: Option<i32> = client.get("k").unwrap();
    assert_eq!(v, None, "no persistence: the value is gone, but the call succeeds");
    assert!(start.elapsed() < Duration::from_secs(2));
}

/// A fresh instance per client, each holding one open connection (so the restart breaks
/// it and the first command after it meets a dead socket).
fn warmed_instance(server: &Server, retry_on_timeout: bool) -> RedisInstance {
    let redis = RedisInstance::new(
        RedisConfig::new()
            .set_redis_url(server.url())
            .set_redis_retry_on_timeout(retry_on_timeout),
    )
    .unwrap();
    let _: () = redis.get_redis().unwrap().set("k", "v").unwrap();
    redis
}

#[tokio::test]
async fn every_client_retries_a_safe_command_once_on_a_fresh_connection_after_a_restart() {
    let mut server = Server::start();
    let pooled = warmed_instance(&server, true);
    let handle = warmed_instance(&server, true);
    let shared = warmed_instance(&server, true);
    let mut async_client = shared.get_async_redis_client().await.unwrap();
    let _: Option<String> = async_client.get("k").await.unwrap();
    let not_safe = warmed_instance(&server, true);
    let no_retry = warmed_instance(&server, false);
    server.restart();

    // The guard from get_redis(), used directly as the README shows.
    let v: Option<String> = pooled
        .get_redis()
        .unwrap()
        .get("k")
        .unwrap_or_else(|e| panic!("get_redis(): GET after a restart: {e}"));
    assert_eq!(v, None, "no persistence: the value is gone, but the call succeeds");
    let v: Option<String> = handle
        .get_redis_client()
        .get("k")
        .unwrap_or_else(|e| panic!("get_redis_client(): GET after a restart: {e}"));
    assert_eq!(v, None);
    let v: Option<String> = async_client
        .get("k")
        .await
        .unwrap_or_else(|e| panic!("get_async_redis_client(): GET after a restart: {e}"));
    assert_eq!(v, None);

    // Not safe to repeat: the error comes back, and the guard's next command works on a
    // fresh connection (the broken one is not returned to the pool).
    let err = not_safe.get_redis().unwrap().incr::<_, _, i64>("n", 1).unwrap_err();
    assert!(err.is_io_error() || err.is_connection_dropped(), "{err}");
    let n: i64 = not_safe.get_redis().unwrap().incr("n", 1).unwrap();
    assert_eq!(n, 1, "the failed INCR was not sent again");
    // retry_on_timeout off: no retry, even for GET.
    assert!(no_retry.get_redis().unwrap().get::<_, Option<String>>("k").is_err());
}

#[tokio::test]
async fn a_paused_server_gives_timeouts_not_hangs() {
    let server = Server::start();
    let timeout = Duration::from_millis(500);
    let redis = no_retry_instance(&server, timeout);
    let mut client = redis.get_async_redis_client().await.unwrap();
    let mut pooled = redis.get_redis().unwrap();
    server.pause();
    let start = Instant::now();
    let err = client.get::<_, Option<String>>("k").await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(
        start.elapsed() < timeout + Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );

    let start = Instant::now();
    let err = pooled.get::<_, Option<String>>("k").unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(
        start.elapsed() < timeout + Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );

    let start = Instant::now();
    let (ok, err) = is_redis_connected_async(&redis).await;
    assert!(!ok && err.is_some());
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    server.resume();
}

/// A signal handled during a sync wait (or a stop and continue of the client's process:
/// Ctrl-Z, `docker pause`, a cgroup freeze) cuts the socket's read short with EINTR, as
/// Linux never restarts a read that has a timeout. That reads as a timeout, like the wait
/// it ended, not as an unclassified I/O error; and the connection stays usable.
#[tokio::test]
async fn a_sync_wait_cut_short_by_a_signal_reads_as_a_timeout() {
    // A handler for SIGUSR1 (tokio's; the default action would end the process). The
    // signal is sent to this thread alone, so the other tests' reads are not disturbed.
    let _handled = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).unwrap();
    let this_thread = std::fs::read_link("/proc/thread-self").unwrap(); // "<pid>/task/<tid>"
    let tid = this_thread.file_name().unwrap().to_str().unwrap().to_owned();

    let server = Server::start();
    let redis = no_retry_instance(&server, Duration::from_secs(2));
    let mut pooled = redis.get_redis().unwrap();
    server.pause();
    let mut signaller = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("sleep 0.3; kill -USR1 {tid}"))
        .spawn()
        .unwrap();
    let start = Instant::now();
    let err = pooled.get::<_, Option<String>>("k").unwrap_err();
    let waited = start.elapsed();
    signaller.wait().unwrap();
    server.resume();
    assert!(err.is_timeout(), "{err}");
    assert!(
        waited < Duration::from_millis(1900),
        "the signal did not cut the wait short ({waited:?}): nothing tested"
    );
    // The late reply of the cut wait is skipped, not taken for the next command's.
    let _: () = pooled.set("k", "v").unwrap();
    assert_eq!(pooled.get::<_, Option<String>>("k").unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn health_check_is_true_on_a_live_server_and_false_fast_on_a_dead_port() {
    let server = Server::start();
    let redis = instance_for(&server);
    assert!(matches!(is_redis_connected(&redis), (true, None)));
    assert!(matches!(is_redis_connected_async(&redis).await, (true, None)));

    let dead_port = dtrsfw_test_support::free_port();
    let dead = RedisInstance::new(
        RedisConfig::new()
            .set_redis_host("127.0.0.1")
            .set_redis_port(dead_port.into()),
    )
    .unwrap();
    let start = Instant::now();
    let (ok, err) = is_redis_connected(&dead);
    assert!(!ok);
    assert!(err.expect("an error").is_connection());
    let (ok, err) = is_redis_connected_async(&dead).await;
    assert!(!ok && err.is_some());
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
}

#[tokio::test]
async fn tls_with_the_generated_ca_works_and_a_wrong_ca_is_rejected() {
    let server = Server::builder().tls().start();
    let good = RedisInstance::new(
        RedisConfig::new()
            .set_redis_host("127.0.0.1")
            .set_redis_port(server.port().into())
            .set_redis_ssl(true)
            .set_redis_ssl_ca_certs(server.ca_cert()),
    )
    .unwrap();
    assert!(good.redis_url().starts_with("rediss://"));
    assert!(matches!(is_redis_connected(&good), (true, None)));
    let mut client = good.get_async_redis_client().await.unwrap();
    let _: () = client.set("tls", "yes").await.unwrap();
    let v: String = good.get_redis_client().get("tls").unwrap();
    assert_eq!(v, "yes");

    let wrong_ca = generate_unrelated_ca(server.dir());
    let bad = RedisInstance::new(
        RedisConfig::new()
            .set_redis_url(server.url())
            .set_redis_ssl_ca_certs(wrong_ca)
            .set_redis_socket_connect_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    let (ok, err) = is_redis_connected(&bad);
    assert!(!ok, "a certificate signed by another CA must be refused");
    assert!(err.is_some());
    assert!(bad.get_async_redis_client().await.is_err());
}

#[test]
fn acl_user_with_right_and_wrong_password() {
    let server = Server::builder().acl_user("app", "right-pw", "~orders* +@all").start();
    let with = |pw: &str| {
        RedisInstance::new(
            RedisConfig::new()
                .set_redis_host("127.0.0.1")
                .set_redis_port(server.port().into())
                .set_redis_username("app")
                .set_redis_password(pw),
        )
        .unwrap()
    };
    let good = with("right-pw");
    let _: () = good.get_redis_client().set("orders:1", "x").unwrap();

    // Pooled connections are plain redis-rs connections: their errors are redis-rs's.
    let err = good.get_redis().unwrap().set::<_, _, ()>("elsewhere", "x").unwrap_err();
    assert_eq!(err.code(), Some("NOPERM"), "{err}");

    let bad = with("wrong-pw");
    let err = bad.get_redis().unwrap_err();
    assert!(err.is_authentication(), "{err}");
    assert!(!format!("{err} {err:?}").contains("wrong-pw"));
}

#[test]
fn secrets_never_appear_in_debug_display_or_errors() {
    const SECRET: &str = "Zq9-very-secret-Xk2";
    const USER: &str = "svc-user-Yy7";
    let config = RedisConfig::new()
        .set_redis_host("127.0.0.1")
        .set_redis_port(dtrsfw_test_support::free_port().into())
        .set_redis_username(USER)
        .set_redis_password(SECRET)
        .set_redis_socket_connect_timeout(Duration::from_millis(300));
    let redis = RedisInstance::new(config.clone()).unwrap();
    let url_config = RedisConfig::new().set_redis_url(redis.redis_url());
    let url_redis = RedisInstance::new(url_config.clone()).unwrap();
    let (_, health_err) = is_redis_connected(&url_redis);
    let pool_err = redis.get_redis().unwrap_err();
    let bad_config = RedisInstance::new(config.clone().set_redis_db("x")).unwrap_err();
    let texts = [
        format!("{config:?}"),
        format!("{url_config:?}"),
        format!("{redis:?}"),
        format!("{redis}"),
        format!("{url_redis:?} {url_redis}"),
        format!("{health_err:?} {}", health_err.as_ref().unwrap()),
        format!("{pool_err:?} {pool_err}"),
        format!("{bad_config:?} {bad_config}"),
    ];
    for text in texts {
        assert!(!text.contains(SECRET) && !text.contains(USER), "leaked: {text}");
    }
    assert!(
        redis.redis_url().contains(SECRET),
        "the URL itself carries the credentials"
    );
}

#[test]
fn secrets_never_appear_in_logs_at_any_level() {
    const SECRET: &str = "Lg7-log-secret-Qp3";
    const USER: &str = "log-user-Mm4";
    let server = Server::builder().acl_user(USER, SECRET, "~* &* +@all").start();
    let text = dtrsfw_test_support::capture_logs(|| {
        let config = |pw: &str| {
            RedisConfig::new()
                .set_redis_host("127.0.0.1")
                .set_redis_port(server.port().into())
                .set_redis_username(USER)
                .set_redis_password(pw)
                .set_redis_socket_timeout(Duration::from_millis(300))
        };
        let good = RedisInstance::new(config(SECRET)).unwrap();
        let bad = RedisInstance::new(config("wrong-Lg7-Qp3")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut client = good.get_async_redis_client().await.unwrap();
            let _: () = client.set("k", "v").await.unwrap();
            assert!(bad.get_async_redis_client().await.is_err());
            // A timeout on a safe command logs a retry warning.
            server.pause();
            let _ = client.get::<_, Option<String>>("k").await;
            server.resume();
        });
        let _: Option<String> = good.get_redis_client().get("k").unwrap();
        assert!(bad.get_redis().is_err());
        let _ = is_redis_connected(&bad);
    });
    assert!(
        text.contains("retrying a command"),
        "the scenario should have logged something:\n{text}"
    );
    assert!(
        !text.contains(SECRET) && !text.contains(USER) && !text.contains("wrong-Lg7-Qp3"),
        "leaked:\n{text}"
    );
}

#[test]
fn every_client_reports_the_configured_database() {
    let server = Server::start();
    for (config, db) in [
        (RedisConfig::new().set_redis_url(server.url()), 0),
        (
            RedisConfig::new()
                .set_redis_host("127.0.0.1")
                .set_redis_port(server.port().into())
                .set_redis_db("3"),
            3,
        ),
        (
            RedisConfig::new().set_redis_url(format!("redis://127.0.0.1:{}/5", server.port())),
            5,
        ),
    ] {
        let redis = RedisInstance::new(config).unwrap();
        let mut client = redis.get_redis_client();
        assert_eq!(redis::ConnectionLike::get_db(&client), db);
        assert_eq!(redis::ConnectionLike::get_db(&*redis.get_redis().unwrap()), db);
        // And the commands do go to that database.
        let _: () = client.set("which-db", db).unwrap();
        let mut conn = server.connection();
        redis::cmd("SELECT").arg(db).exec(&mut conn).unwrap();
        assert_eq!(conn.get::<_, i64>("which-db").unwrap(), db);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let async_db = rt.block_on(async {
            redis
                .get_async_redis_client()
                .await
                .map(|c| redis::aio::ConnectionLike::get_db(&c))
        });
        assert_eq!(async_db.unwrap(), db);
    }
}

#[test]
fn socket_timeouts_are_set_through_the_one_error_type() -> dtrsfw::redis::Result<()> {
    let server = Server::start();
    let redis = instance_for(&server);
    let conn = redis.get_redis()?;
    // `?` in a function returning `dtrsfw::redis::Result`: no redis-rs error type leaks.
    conn.set_read_timeout(Some(Duration::from_millis(250)))?;
    conn.set_write_timeout(Some(Duration::from_millis(250)))?;
    Ok(())
}

#[test]
fn the_url_scheme_decides_tls_and_ssl_never_silently_downgrades_it() {
    // The URL wins over `set_redis_ssl(false)`: `rediss://` means TLS.
    let redis = RedisInstance::new(RedisConfig::new().set_redis_url("rediss://h:1/0").set_redis_ssl(false)).unwrap();
    assert!(redis.redis_url().starts_with("rediss://"));
    // But TLS asked for and a plain URL is a contradiction, rejected rather than dropped.
    for url in ["redis://h:1/0", "redis+cluster://h:1", "unix:///tmp/r.sock"] {
        let err = RedisInstance::new(RedisConfig::new().set_redis_url(url).set_redis_ssl(true)).unwrap_err();
        assert!(
            err.is_configuration() && err.to_string().contains("redis_ssl"),
            "{url}: {err}"
        );
    }
}
