//! Properties over arbitrary inputs: decoding never panics, credentials survive the URL,
//! cache keys equal the Python package's for random JSON-like arguments.

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

/// JSON-like values as a Python caller passes them: null, booleans, integers (beyond
/// 32 bits), finite floats, text with any Unicode, lists and string-keyed dicts, nested.
fn json_like() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1_000_000i64..1_000_000).prop_map(|n| Value::from(n as f64 / 1000.0)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("\\PC{0,8}", inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// One `python3` for every case: it reads a JSON line `[[name, value], ...]` and answers
/// with the key the Python package derives for those keyword arguments.
struct PythonKeys {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl PythonKeys {
    fn start() -> PythonKeys {
        let script = r#"
import hashlib, json, sys
while True:
    line = sys.stdin.buffer.readline()
    if not line:
        break
    kwargs = dict(json.loads(line.decode("utf-8")))
    # dtpyfw's _cache_key_generator for namespace "r" and these keyword arguments.
    key = "r:"
    if kwargs:
        key += hashlib.sha256(json.dumps(kwargs, default=str).encode("utf-8")).hexdigest() + ":"
    sys.stdout.write(key.rstrip(":") + "\n")
    sys.stdout.flush()
"#;
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 on PATH (scripts/ensure-servers.sh installs it)");
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        PythonKeys { child, out }
    }

    fn key(&mut self, pairs: &serde_json::Value) -> String {
        use std::io::{BufRead, Write};
        let stdin = self.child.stdin.as_mut().unwrap();
        // serde_json escapes control characters, so one value is one line.
        writeln!(stdin, "{pairs}").and_then(|()| stdin.flush()).unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }
}

impl Drop for PythonKeys {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn cache_keys_equal_python_ones_for_random_json_like_arguments() {
    use dtrsfw::redis::caching::{CacheArgs, cache_key};
    use proptest::test_runner::{Config, TestRunner};
    let python = std::cell::RefCell::new(PythonKeys::start());
    let mut runner = TestRunner::new(Config::with_cases(300));
    let arguments = proptest::collection::vec(("[a-z_]{1,8}", json_like()), 0..4);
    runner
        .run(&arguments, |args| {
            // Python kwargs have unique names; the first occurrence keeps its place.
            let mut seen = std::collections::HashSet::new();
            let args: Vec<_> = args.into_iter().filter(|(n, _)| seen.insert(n.clone())).collect();
            let mut cache_args = CacheArgs::new();
            for (name, value) in &args {
                cache_args.push(name.clone(), value);
            }
            let pairs = serde_json::Value::Array(args.iter().map(|(n, v)| serde_json::json!([n, v])).collect());
            let ours = cache_key("r", &cache_args);
            let expected = python.borrow_mut().key(&pairs);
            prop_assert_eq!(ours, expected, "arguments {}", pairs);
            Ok(())
        })
        .unwrap();
}

/// A user name or password as a careless (or unlucky) user writes it: pieces of
/// characters that break URLs (`@ : / # ? % space \ , & =`, a stray `%XX`), any
/// printable Unicode character, and plain alphanumerics, in any order.
fn credential() -> impl Strategy<Value = String> {
    const BREAKING: &[&str] = &["@", ":", "/", "#", "?", "%", " ", "\\", ",", "&", "=", "+", "%40", "%2"];
    let piece = prop_oneof![
        3 => proptest::sample::select(BREAKING).prop_map(String::from),
        3 => "\\PC",
        2 => "[a-zA-Z0-9]{1,4}",
    ];
    proptest::collection::vec(piece, 1..10).prop_map(|pieces| pieces.concat())
}

/// Every byte but RFC 3986 unreserved characters as `%XX`: how a careful user embeds
/// credentials in a URL.
fn percent_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// URLs of every supported scheme carrying `user` and `password` (already encoded or
/// not) where that scheme takes credentials; `port` is a live server's.
fn urls_with_credentials(user: &str, password: &str, port: u16) -> Vec<String> {
    let other = port.wrapping_add(1);
    vec![
        format!("redis://{user}:{password}@127.0.0.1:{port}/0"),
        format!("redis://:{password}@127.0.0.1:{port}"),
        format!("rediss://{user}:{password}@127.0.0.1:{port}/0"),
        format!("redis+cluster://{user}:{password}@127.0.0.1:{port},127.0.0.1:{other}"),
        format!("rediss+cluster://{user}:{password}@127.0.0.1:{port}/0"),
        // redis-rs reads a socket's credentials from the query; the user-info form too
        // must be masked, whatever redis-rs makes of it.
        format!("unix:///tmp/dtrsfw-no-such.sock?db=0&user={user}&pass={password}"),
        format!("redis+unix://{user}:{password}@localhost/tmp/dtrsfw-no-such.sock"),
    ]
}

/// Everything a user can see of `url`: the configuration's `Debug`, the instance's
/// `Debug` and `Display` (or the error's `Display` and `Debug`), and with `connect` the
/// errors of a sync and an async connect attempt and of both health checks; plus every log
/// event emitted meanwhile (at TRACE).
fn everything_shown_for(url: &str, connect: bool) -> String {
    let mut shown = String::new();
    let logs = dtrsfw_test_support::capture_logs(|| {
        let config = RedisConfig::new()
            .set_redis_url(url)
            .set_redis_socket_connect_timeout(std::time::Duration::from_millis(100))
            .set_redis_socket_timeout(std::time::Duration::from_millis(100));
        shown += &format!("{config:?}\n");
        match RedisInstance::new(config) {
            Err(e) => shown += &format!("{e}\n{e:?}\n"),
            Ok(redis) => {
                shown += &format!("{redis}\n{redis:?}\n");
                if connect {
                    shown += &connect_errors(&redis);
                }
            }
        }
    });
    shown + &logs
}

/// The errors, shown, of connecting `redis` every way there is.
fn connect_errors(redis: &RedisInstance) -> String {
    let mut shown = String::new();
    if let Err(e) = redis.get_redis() {
        shown += &format!("{e}\n{e:?}\n");
    }
    let (_, err) = dtrsfw::redis::is_redis_connected(redis);
    shown += &format!("{err:?}\n");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if let Err(e) = redis.get_async_redis_client().await {
            shown += &format!("{e}\n{e:?}\n");
        }
        let (_, err) = dtrsfw::redis::is_redis_connected_async(redis).await;
        shown += &format!("{err:?}\n");
    });
    shown
}

/// Forms in which a leaked `secret` could show: as given, as `Debug` escapes it, and
/// percent-encoded. A form is checked only when it cannot appear by accident: at least 4
/// characters, and not found in `fixed` (what the same URLs show with placeholder
/// credentials: schemes, host, port, our messages, redis-rs's and the server's). Shorter
/// or common values (`"redi"`, `"1:63"`, `"://"`) would make the property flaky without
/// testing anything more.
fn leak_forms(secret: &str, fixed: &str) -> Vec<String> {
    let mut forms = vec![
        secret.to_owned(),
        secret.escape_debug().to_string(),
        percent_encoded(secret),
    ];
    forms.retain(|form| form.chars().count() >= 4 && !fixed.contains(form.as_str()));
    forms.dedup();
    forms
}

/// What the URLs of `port` show with placeholder credentials, harmless and URL-breaking,
/// raw and percent-encoded: the fixed text a secret must not be part of to be checked.
fn fixed_text(port: u16, connect: bool) -> String {
    [("PHuser", "PHpass"), ("PH/u#s", "PH p@ss?/")]
        .iter()
        .flat_map(|(u, p)| {
            let mut urls = urls_with_credentials(u, p, port);
            urls.extend(urls_with_credentials(&percent_encoded(u), &percent_encoded(p), port));
            urls
        })
        .map(|url| everything_shown_for(&url, connect))
        .collect()
}

/// The property, over `cases` random credential pairs, each embedded raw or
/// percent-encoded in every URL form of [`urls_with_credentials`].
fn assert_credentials_never_shown(cases: u32, connect: bool) {
    use proptest::test_runner::{Config, TestRunner};
    let server = dtrsfw_test_support::Server::start();
    let port = server.port();
    let fixed = fixed_text(port, connect);
    let mut runner = TestRunner::new(Config::with_cases(cases));
    runner
        .run(
            &(credential(), credential(), any::<bool>()),
            |(user, password, encode)| {
                let (u, p) = if encode {
                    (percent_encoded(&user), percent_encoded(&password))
                } else {
                    (user.clone(), password.clone())
                };
                let forms: Vec<String> = [&user, &password]
                    .iter()
                    .flat_map(|secret| leak_forms(secret, &fixed))
                    .collect();
                for url in urls_with_credentials(&u, &p, port) {
                    let shown = everything_shown_for(&url, connect);
                    for form in &forms {
                        prop_assert!(!shown.contains(form.as_str()), "{form:?} shown for {url:?}:\n{shown}");
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}

/// Valid URL or not: configuration and instance `Debug`/`Display`, validation errors
/// and logs. Cheap, so many cases.
#[test]
fn credentials_never_show_in_errors_debug_display_or_logs_for_any_url() {
    assert_credentials_never_shown(500, false);
}

/// The same, connecting too (sync and async, health checks) to a live server that
/// refuses the credentials, or failing to: fewer cases, as each connects up to 28 times (7 URLs, 4 ways).
#[test]
fn credentials_never_show_when_connecting_with_any_url() {
    assert_credentials_never_shown(8, true);
}
