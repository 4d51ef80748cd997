use dtrsfw::cache_wrapper;
use dtrsfw::redis::RedisInstance;

#[cache_wrapper(redis = redis, namespace = "ns", skip_cache_keys = [redis])]
fn f(redis: &RedisInstance, (a, b): (i64, i64)) -> i64 {
    a + b
}

fn main() {}
