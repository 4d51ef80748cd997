use dtrsfw::cache_wrapper;
use dtrsfw::redis::RedisInstance;

#[cache_wrapper(redis = redis, namespace = "ns", cache_only_for = [state in ["used"]], skip_cache_keys = [redis, request_id])]
fn f(redis: &RedisInstance, x: i64) -> i64 {
    x
}

fn main() {}
