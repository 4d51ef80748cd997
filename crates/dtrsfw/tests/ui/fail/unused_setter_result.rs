// A by-value setter whose result is dropped changes nothing: each one is `#[must_use]`.
#![deny(unused_must_use)]

use std::time::Duration;

use dtrsfw::redis::{CacheArgs, ChannelOptions, ConsumerOptions, RedisConfig, SenderOptions};

fn main() {
    RedisConfig::new().set_redis_host("h");
    SenderOptions::new().set_max_attempts(2);
    ChannelOptions::new().parallelism(2);
    ConsumerOptions::new().max_backoff(Duration::from_secs(1));
    CacheArgs::new().arg("x", &1);
}
