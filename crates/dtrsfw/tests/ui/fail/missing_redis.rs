use dtrsfw::cache_wrapper;

#[cache_wrapper(namespace = "ns")]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
