//! `redis+sentinel://` with credentials on both sides: data nodes that require one
//! password (the URL's `:pass@`) and Sentinels that require another (the query's
//! `sentinel_password`). Each goes where it belongs, neither is ever shown.

use std::time::Duration;

use dtrsfw::redis::sender::{Message, Sender};
use dtrsfw::redis::{RedisConfig, RedisInstance, is_redis_connected, is_redis_connected_async};
use dtrsfw_test_support::SentinelSet;
use redis::Commands;

const NODE_PASSWORD: &str = "node-pw-7f3a";
const SENTINEL_PASSWORD: &str = "sentinel-pw-91c2";

fn instance(url: &str) -> RedisInstance {
    RedisInstance::new(
        RedisConfig::new()
            .set_redis_url(url)
            .set_redis_socket_timeout(Duration::from_secs(2))
            .set_redis_socket_connect_timeout(Duration::from_secs(1)),
    )
    .expect("valid sentinel config")
}

fn assert_no_secret(text: &str) {
    assert!(
        !text.contains(NODE_PASSWORD) && !text.contains(SENTINEL_PASSWORD),
        "a password is shown: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_and_data_node_passwords_each_go_to_their_side() {
    let set = tokio::task::spawn_blocking(|| SentinelSet::start_with_passwords(NODE_PASSWORD, SENTINEL_PASSWORD))
        .await
        .unwrap();
    let url = set.url();
    assert!(
        url.contains(&format!(":{NODE_PASSWORD}@")) && url.contains(&format!("?sentinel_password={SENTINEL_PASSWORD}"))
    );
    let redis = instance(&url);
    assert_no_secret(&redis.to_string());
    assert_no_secret(&format!("{redis:?}"));

    // Both passwords given: health (which asks a Sentinel itself), the pool, the async
    // client and a send all work.
    let (ok, err) = tokio::task::block_in_place(|| is_redis_connected(&redis));
    assert!(ok, "{err:?}");
    let (ok, err) = is_redis_connected_async(&redis).await;
    assert!(ok, "{err:?}");
    tokio::task::block_in_place(|| {
        let _: () = redis.get_redis().unwrap().set("k", 1).unwrap();
    });
    let mut client = redis.get_async_redis_client().await.unwrap();
    let v: u32 = redis::AsyncCommands::get(&mut client, "k").await.unwrap();
    assert_eq!(v, 1);
    let sender = Sender::new(&redis);
    sender.register_channel("orders").unwrap();
    let message = Message::new("evt", &serde_json::json!({ "i": 1 })).unwrap();
    sender.send_message("orders", &message).await.unwrap();

    // Without the Sentinels' password they refuse to answer; without the data nodes'
    // password the primary refuses. Either way an error that quotes no password.
    let no_sentinel_password = url.split('?').next().unwrap().to_owned();
    let no_node_password = url.replace(&format!(":{NODE_PASSWORD}@"), "");
    for (case, url) in [("sentinel", no_sentinel_password), ("node", no_node_password)] {
        let redis = instance(&url);
        let (ok, err) = tokio::task::block_in_place(|| is_redis_connected(&redis));
        let err = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(!ok, "{case}: healthy without its password");
        assert!(err.to_lowercase().contains("auth"), "{case}: {err}");
        assert_no_secret(&err);
        let (ok, err) = is_redis_connected_async(&redis).await;
        assert!(!ok, "{case}: healthy (async) without its password");
        assert_no_secret(&err.map(|e| e.to_string()).unwrap_or_default());
    }
}
