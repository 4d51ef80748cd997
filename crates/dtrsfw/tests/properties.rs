//! Properties over arbitrary inputs: decoding never panics, credentials survive the URL.

use dtrsfw::redis::message::Message;
use dtrsfw::redis::{RedisConfig, RedisInstance};
use proptest::prelude::*;
use redis::IntoConnectionInfo;

/// Field names drawn mostly from the ones that matter, so the interesting paths are hit.
fn field_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"name".to_vec()),
        Just(b"body".to_vec()),
        Just(b"id".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ]
}

/// Field values: arbitrary bytes, or text that is sometimes JSON.
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        "\\PC{0,32}".prop_map(String::into_bytes),
        Just(b"{\"id\": 1}".to_vec()),
        Just(b"[1, 2".to_vec()),
        Just(vec![0xff, 0xfe]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoding_any_field_map_never_panics_and_accepts_only_valid_entries(
        fields in proptest::collection::vec((field_name(), field_value()), 0..6)
    ) {
        let decoded = Message::from_fields(fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
        if let Ok(message) = decoded {
            // The last `name`/`body` wins, as for a map; whatever is accepted is valid.
            let last = |key: &[u8]| fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone());
            prop_assert_eq!(Some(message.name().as_bytes().to_vec()), last(b"name"));
            prop_assert_eq!(Some(message.body_json().as_bytes().to_vec()), last(b"body"));
            prop_assert!(!message.name().is_empty());
            prop_assert!(serde_json::from_str::<serde_json::Value>(message.body_json()).is_ok());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_credentials_round_trip_through_the_url(
        username in "\\PC{1,24}",
        password in "\\PC{1,24}",
        db in 0u32..16,
    ) {
        let redis = RedisInstance::new(
            RedisConfig::new()
                .set_redis_host("cache.internal")
                .set_redis_port(6390)
                .set_redis_db(db.to_string())
                .set_redis_username(&username)
                .set_redis_password(&password),
        ).unwrap();
        let info = redis.redis_url().into_connection_info().unwrap();
        prop_assert_eq!(info.redis_settings().username(), Some(username.as_str()));
        prop_assert_eq!(info.redis_settings().password(), Some(password.as_str()));
        prop_assert_eq!(info.redis_settings().db(), i64::from(db));
        prop_assert_eq!(info.addr().to_string(), "cache.internal:6390");
        // And nothing of them shows when the instance is printed.
        prop_assert_eq!(redis.to_string(), format!("redis://***@cache.internal:6390/{db}"));
    }
}
