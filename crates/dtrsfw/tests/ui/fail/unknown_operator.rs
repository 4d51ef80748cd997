use dtrsfw::cache_wrapper;
use dtrsfw::redis::RedisInstance;

#[cache_wrapper(redis = redis, namespace = "ns", cache_only_for = [x =~ 1], skip_cache_keys = [redis])]
fn f(redis: &RedisInstance, x: i64) -> i64 {
    x
}

fn main() {}
