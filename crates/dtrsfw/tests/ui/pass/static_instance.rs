// `redis` may be a lazily initialised static; generic functions, `mut` bindings, no
// arguments at all, and unit results work.
use std::sync::LazyLock;

use dtrsfw::cache_wrapper;
use dtrsfw::redis::{RedisConfig, RedisInstance};

static REDIS: LazyLock<RedisInstance> =
    LazyLock::new(|| RedisInstance::new(RedisConfig::new().set_redis_host("localhost")).unwrap());

#[cache_wrapper(redis = REDIS, namespace = "static", expire = 3600)]
fn no_arguments() -> u32 {
    1
}

#[cache_wrapper(redis = *REDIS, namespace = "generic", cache_only_for = [x not in [1, 2], x != 3, x < 10, x <= 10, x > 0, x == 5, label not_in ["a"]])]
fn generic<T: Into<u64>>(mut x: u64, label: String, _unused: std::marker::PhantomData<T>) {
    x += 1;
    let _ = (x, label);
}

#[cache_wrapper(redis = RedisInstance::new(RedisConfig::new().set_redis_host("h")).unwrap(), namespace = "temp")]
async fn owned_temporary(r#type: &str) -> Option<String> {
    Some(r#type.to_owned())
}

fn main() {
    let _ = no_arguments;
    let _ = generic::<u8>;
    let _ = owned_temporary;
}
