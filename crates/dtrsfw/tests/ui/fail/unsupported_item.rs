use dtrsfw::cache_wrapper;

#[cache_wrapper(redis = REDIS, namespace = "ns")]
struct NotAFunction;

trait Lookup {
    #[cache_wrapper(redis = REDIS, namespace = "ns")]
    fn no_body(&self, x: i64) -> i64;
}

fn main() {}
