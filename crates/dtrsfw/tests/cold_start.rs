//! The documented time bounds hold from a cold start: a fresh `RedisInstance` whose first
//! call meets a server that accepts TCP and never answers (a [`SilentListener`]) or a
//! frozen server (SIGSTOP), with one caller and with several at once. Concurrent callers
//! of a cold instance share one bounded connect instead of queueing behind each other's.
//!
//! Every test prints what it measured (`-- --nocapture`).

use std::future::Future;
use std::time::{Duration, Instant};

use dtrsfw::redis::caching::{CacheArgs, CachedFunction};
use dtrsfw::redis::{
    ChannelOptions, Consumer, Message, RedisConfig, RedisInstance, Sender, SenderOptions, is_redis_connected_async,
};
use dtrsfw_test_support::{Server, SilentListener};
use tokio::task::JoinSet;

/// Connect timeout and socket timeout of every instance here: short, to keep tests fast,
/// long enough that twice one of them is well past a bound's [`limit`].
const CONNECT: Duration = Duration::from_secs(1);
const SOCKET: Duration = Duration::from_secs(1);
/// The cache timeout of the cached function (shorter than the connect timeout, so the
/// cache gives up before the connect does).
const CACHE: Duration = Duration::from_millis(500);
/// How many callers share a cold instance in the concurrent runs.
const CONCURRENT: usize = 4;

/// A server that does not answer.
enum Stalled {
    Silent(SilentListener),
    Paused(Server),
}

impl Stalled {
    fn both() -> [Stalled; 2] {
        let server = Server::start();
        server.pause();
        [Stalled::Silent(SilentListener::start()), Stalled::Paused(server)]
    }

    fn label(&self) -> &'static str {
        match self {
            Stalled::Silent(_) => "silent listener",
            Stalled::Paused(_) => "SIGSTOPped server",
        }
    }

    fn url(&self) -> String {
        match self {
            Stalled::Silent(listener) => listener.url(),
            Stalled::Paused(server) => server.url(),
        }
    }
}

/// A fresh instance: nothing connected yet.
fn cold(url: &str) -> RedisInstance {
    RedisInstance::new(
        RedisConfig::new()
            .set_redis_url(url)
            .set_redis_socket_connect_timeout(CONNECT)
            .set_redis_socket_timeout(SOCKET),
    )
    .expect("valid config")
}

/// Starts `callers` copies of `op` at once on `redis` and returns how long each took
/// (from the common start), sorted.
async fn timed<F, Fut>(redis: &RedisInstance, callers: usize, op: F) -> Vec<Duration>
where
    F: Fn(RedisInstance, usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..callers {
        let call = op(redis.clone(), i);
        set.spawn(async move {
            call.await;
            start.elapsed()
        });
    }
    let mut times = Vec::new();
    while let Some(joined) = set.join_next().await {
        times.push(joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())));
    }
    times.sort();
    times
}

/// The scheduling slack allowed over a bound: 10 %, but at least 250 ms, what a busy
/// 2-core host may hold a process off its CPU. What the bounds guard against is far
/// larger: callers serialised behind one connect (each one a whole timeout later) or a
/// retry that doubles the wait.
fn limit(bound: Duration) -> Duration {
    bound + (bound / 10).max(Duration::from_millis(250))
}

/// Prints the times and returns a complaint for each over [`limit`]`(bound)`.
fn over_bound(target: &Stalled, what: &str, times: &[Duration], bound: Duration) -> Vec<String> {
    let limit = limit(bound);
    eprintln!(
        "cold start, {}, {what}, {} caller(s): {times:?} (bound {bound:?}, limit {limit:?})",
        target.label(),
        times.len()
    );
    times
        .iter()
        .filter(|t| **t > limit)
        .map(|t| format!("{what} on a {}: {t:?} of {times:?}", target.label()))
        .collect()
}

/// Asserts no complaint, after every measurement was taken and printed.
fn assert_within(what: &str, bound: Duration, complaints: &[String]) {
    assert!(
        complaints.is_empty(),
        "over the bound {bound:?} (limit {:?}) for {what}:\n{}",
        limit(bound),
        complaints.join("\n")
    );
}

/// Runs `op` with one caller, then with [`CONCURRENT`] callers, each time on a fresh
/// instance, against both kinds of stalled server; every time must be within
/// [`limit`]`(bound)`.
async fn each_cold_run<F, Fut>(what: &str, bound: Duration, op: F)
where
    F: Fn(RedisInstance, usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut complaints = Vec::new();
    for target in Stalled::both() {
        for callers in [1, CONCURRENT] {
            let redis = cold(&target.url());
            let times = timed(&redis, callers, &op).await;
            complaints.extend(over_bound(&target, what, &times, bound));
        }
    }
    assert_within(what, bound, &complaints);
}

#[tokio::test]
async fn get_async_redis_client_fails_within_the_connect_timeout_from_a_cold_start() {
    each_cold_run("get_async_redis_client", CONNECT, |redis, _| async move {
        let err = redis.get_async_redis_client().await.expect_err("nothing answers");
        assert!(err.is_transient(), "{err}");
    })
    .await;
}

/// The documented first backoff of a send (`SenderOptions::set_initial_backoff`).
const BACKOFF: Duration = Duration::from_millis(50);

/// A send with `attempts` attempts on a cold instance: every attempt must open the
/// connection, so it fails within `attempts × connect timeout` plus the backoffs.
async fn cold_sends(attempts: u32, bound: Duration) {
    each_cold_run(
        &format!("send_message, {attempts} attempt(s)"),
        bound,
        |redis, _| async move {
            let sender = Sender::with_options(
                &redis,
                SenderOptions::new()
                    .set_max_attempts(attempts)
                    .set_initial_backoff(BACKOFF),
            );
            sender.register_channel("orders").unwrap();
            let message = Message::new("created", &serde_json::json!({"id": 1})).unwrap();
            let err = sender
                .send_message("orders", &message)
                .await
                .expect_err("nothing answers");
            assert!(err.is_transient(), "{err}");
        },
    )
    .await;
}

#[tokio::test]
async fn a_cold_send_with_one_attempt_fails_within_the_connect_timeout() {
    cold_sends(1, CONNECT).await;
}

#[tokio::test]
async fn a_cold_send_with_two_attempts_fails_within_two_connect_timeouts_plus_the_backoff() {
    cold_sends(2, CONNECT * 2 + BACKOFF).await;
}

#[tokio::test]
async fn a_cold_async_health_check_is_false_within_its_limit() {
    let bound = dtrsfw::redis::health::HEALTH_CHECK_TIMEOUT.min(CONNECT + SOCKET);
    each_cold_run("is_redis_connected_async", bound, |redis, _| async move {
        let (ok, err) = is_redis_connected_async(&redis).await;
        assert!(!ok && err.is_some());
    })
    .await;
}

#[tokio::test]
async fn a_cold_cached_call_returns_the_computed_value_within_the_cache_timeout() {
    let cached = CachedFunction::builder("cold", ["x"]).timeout(CACHE).build().unwrap();
    each_cold_run("CachedFunction::call_async", CACHE, |redis, i| {
        let cached = cached.clone();
        async move {
            let value = cached
                .call_async(&redis, &CacheArgs::new().arg("x", &i), async move { i * 10 })
                .await;
            assert_eq!(value, i * 10);
        }
    })
    .await;
}

#[tokio::test]
async fn a_cold_consumer_registration_fails_within_connect_plus_socket_timeout() {
    each_cold_run("Consumer::register_channel", CONNECT + SOCKET, |redis, i| async move {
        let consumer = Consumer::new(&redis, "billing").unwrap();
        let err = consumer
            .register_channel(&format!("orders{i}"), ChannelOptions::new())
            .await
            .expect_err("nothing answers");
        assert!(err.is_transient(), "{err}");
    })
    .await;
}

#[tokio::test]
async fn a_consumers_first_read_on_a_frozen_server_fails_within_its_bound() {
    // A consumer must register (which needs an answering server) before it reads; its
    // first read then opens its read connection cold.
    let server = Server::start();
    let target = Stalled::Paused(server);
    let Stalled::Paused(server) = &target else {
        unreachable!()
    };
    server.resume();
    let mut complaints = Vec::new();
    for callers in [1, CONCURRENT] {
        let redis = cold(&target.url());
        let consumer = Consumer::new(&redis, "billing").unwrap();
        for i in 0..callers {
            let channel = format!("orders{callers}-{i}");
            consumer
                .register_channel(&channel, ChannelOptions::new())
                .await
                .unwrap();
            consumer
                .register_handler(&channel, |_, _| Ok::<(), String>(()))
                .unwrap();
        }
        server.pause();
        let times = timed(&redis, callers, |_, i| {
            let consumer = consumer.clone();
            async move {
                let channel = format!("orders{callers}-{i}");
                let group = consumer.group_name(&channel);
                let err = consumer
                    .consume_messages(&channel, &group, Duration::from_millis(100))
                    .await
                    .expect_err("nothing answers");
                assert!(err.is_transient(), "{err}");
            }
        })
        .await;
        complaints.extend(over_bound(
            &target,
            "Consumer::consume_messages (first read)",
            &times,
            SOCKET + CONNECT,
        ));
        server.resume();
    }
    assert_within("the first read", SOCKET + CONNECT, &complaints);
}

#[tokio::test]
async fn a_failed_cold_connect_is_not_kept_and_the_next_call_connects() {
    let server = Server::start();
    let redis = cold(&server.url());
    server.pause();
    let start = Instant::now();
    assert!(redis.get_async_redis_client().await.is_err());
    let failed_after = start.elapsed();
    server.resume();
    let mut client = redis.get_async_redis_client().await.expect("the server answers again");
    let pong: String = redis::cmd("PING").query_async(&mut client).await.unwrap();
    assert_eq!(pong, "PONG");
    eprintln!("cold connect to a frozen server failed after {failed_after:?}; the next call connected");
}
