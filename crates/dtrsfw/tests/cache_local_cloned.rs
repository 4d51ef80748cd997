//! The local tier keeping decoded values (`call_cloned*`, what `#[cache_wrapper(local)]`
//! calls) against real servers: a hit is a clone with no Redis command, sync and async;
//! writes by another client are seen; a function called both ways (`call` and
//! `call_cloned`) returns the right values, the other form's entry going to Redis.

mod local_tier;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dtrsfw::redis::caching::cache_data;
use dtrsfw_test_support::{Server, command_calls};
use local_tier::{id, instance, local_fn, until_local_hit};
use serde::{Deserialize, Serialize};

/// `GET` commands the server has run (`INFO commandstats`).
fn gets(server: &Server) -> u64 {
    command_calls(&mut server.connection(), "get")
}

/// A value that is not a plain scalar: the clone must carry every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Car {
    make: String,
    year: u16,
    tags: Vec<String>,
}

fn car(year: u16) -> Car {
    Car {
        make: "BMW".into(),
        year,
        tags: vec!["used".into(), "certified".into()],
    }
}

#[test]
fn a_cloned_hit_sends_no_command_and_returns_the_whole_value() {
    let server = Server::start();
    let redis = instance(&server.url());
    let cached = local_fn("lcloned");
    let runs = AtomicUsize::new(0);
    let call = || {
        cached.call_cloned(&redis, &id(1), || {
            runs.fetch_add(1, Ordering::SeqCst);
            car(2020)
        })
    };
    until_local_hit(|| cached.stats(), call);
    let (before, hits) = (gets(&server), cached.stats().local_hits);
    for _ in 0..100 {
        assert_eq!(call(), car(2020));
    }
    assert_eq!(gets(&server), before, "a local hit must not send GET");
    assert_eq!(cached.stats().local_hits, hits + 100);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "computed once");
    let stats = cached.stats();
    assert_eq!((stats.local_entries, stats.errors), (1, 0), "{stats:?}");
    assert!(stats.local_bytes > 0, "weighed by the value's JSON: {stats:?}");
}

#[tokio::test]
async fn a_cloned_async_hit_sends_no_command() {
    let server = Server::start();
    let redis = instance(&server.url());
    let cached = local_fn("lcloned_async");
    let deadline = Instant::now() + Duration::from_secs(5);
    while cached.stats().local_hits == 0 {
        let got: Car = cached.call_cloned_async(&redis, &id(2), async { car(2021) }).await;
        assert_eq!(got, car(2021));
        assert!(Instant::now() < deadline, "no local hit: {:?}", cached.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = gets(&server);
    for _ in 0..100 {
        let got: Result<Car, String> = cached
            .try_call_cloned_async(&redis, &id(2), async { Err("not a hit".to_owned()) })
            .await;
        assert_eq!(got, Ok(car(2021)));
    }
    assert_eq!(gets(&server), before, "a local hit must not send GET");
}

#[test]
fn a_write_by_another_client_replaces_the_kept_value() {
    let server = Server::start();
    let redis = instance(&server.url());
    // Another URL for the same server: no in-process state shared, only Redis's push.
    let other = instance(&server.url().replace("/0", ""));
    let cached = local_fn("lcloned_write");
    let key = cached.key(&id(3));
    cache_data(&other, car(2000), &key, None);
    let held = until_local_hit(|| cached.stats(), || cached.call_cloned(&redis, &id(3), || car(0)));
    assert_eq!(held, car(2000));
    for year in 2001..2021 {
        cache_data(&other, car(year), &key, None);
        let deadline = Instant::now() + Duration::from_secs(2);
        while cached.call_cloned(&redis, &id(3), || car(0)) != car(year) {
            assert!(Instant::now() < deadline, "{year} not seen within 2 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(cached.stats().invalidations >= 20, "{:?}", cached.stats());
}

#[test]
fn one_function_called_both_ways_returns_the_right_values() {
    let server = Server::start();
    let redis = instance(&server.url());
    let cached = local_fn("lcloned_mixed");
    // `call` keeps JSON; `call_cloned` finds another form and reads Redis (then keeps
    // its own form, which `call` in turn leaves to Redis).
    until_local_hit(|| cached.stats(), || cached.call(&redis, &id(4), || car(1999)));
    let before = gets(&server);
    assert_eq!(cached.call_cloned(&redis, &id(4), || car(0)), car(1999));
    assert_eq!(gets(&server), before + 1, "the JSON form is not served as a clone");
    let held = until_local_hit(|| cached.stats(), || cached.call_cloned(&redis, &id(4), || car(0)));
    assert_eq!(held, car(1999));
    assert_eq!(cached.call(&redis, &id(4), || car(0)), car(1999));
    assert_eq!(cached.stats().errors, 0, "{:?}", cached.stats());
}
