use dtrsfw::cache_wrapper;
use dtrsfw::redis::RedisInstance;

#[cache_wrapper(redis = redis, namespace = "ns", expires = 60)]
fn f(redis: &RedisInstance, x: i64) -> i64 {
    x
}

fn main() {}
