// Every operator spelling compiles (the macro cuts it out, dtrsfw's list accepts it),
// also written without spaces where the value starts with a sign.
use dtrsfw::cache_wrapper;
use dtrsfw::redis::RedisInstance;

#[cache_wrapper(redis = redis, namespace = "ns", skip_cache_keys = [redis], cache_only_for = [
    s in ["a"], s not in ["b"], s not_in ["c"], x == 1, x != 2, x < 3, x <= 4, x > 5, x >= 6,
    x<-1, x==-1, x>=-2,
])]
fn f(redis: &RedisInstance, s: &str, x: i64) -> i64 {
    let _ = s;
    x
}

fn main() {
    let _ = f;
}
