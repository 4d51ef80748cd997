#![doc = include_str!("../README.md")]

mod bench;
mod commands;
mod dashboard;
mod observe;
mod terminal;

use std::time::Duration;

use clap::{Parser, Subcommand};
use dtrsfw::redis::{RedisConfig, RedisInstance, is_redis_connected_async};
use dtrsfw_server::Server;

/// Redis streams and caching for DealerTower services.
#[derive(Debug, Parser)]
#[command(name = "dtredis", version, about)]
struct Cli {
    /// Server URL. By default, `$REDIS_URL`, else redis://127.0.0.1:6379/0 (for `demo`:
    /// a private server started for the run). A Redis Cluster is a seed list:
    /// `redis+cluster://host1:port1,host2:port2`.
    #[arg(long, global = true, env = "REDIS_URL")]
    url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job in one command, against a private server unless --url is given.
    Demo,
    /// Checks the server answers PING: prints `ok`, or the error and exits 1.
    Health,
    /// Publishes a message and prints its entry ID; with `--count N` (N > 1) sends it N
    /// times and prints the number sent; with `--stdin` sends JSON lines
    /// `{"name": ..., "body": ...}` and prints the number sent.
    Send {
        /// The stream.
        channel: String,
        /// Message name.
        #[arg(long, required_unless_present = "stdin", conflicts_with = "stdin")]
        name: Option<String>,
        /// Message body, JSON.
        #[arg(long, required_unless_present = "stdin", conflicts_with = "stdin")]
        body: Option<String>,
        /// Send the message this many times, pipelined; above 1, prints the number sent.
        #[arg(long, default_value_t = 1, value_parser = at_least_one)]
        count: u64,
        /// Read JSON lines from standard input instead.
        #[arg(long)]
        stdin: bool,
    },
    /// Runs a consumer of `channel` for a service: one line per message on stdout
    /// (flushed before the entry is acknowledged). Stops after `--count` messages, or
    /// gracefully on SIGTERM/Ctrl-C.
    Consume {
        /// The stream.
        channel: String,
        /// The service (consumer group `<channel>:<service>:cg`).
        #[arg(long)]
        service: String,
        /// Create the group at the start of the stream instead of at its end (only when
        /// the group does not exist yet).
        #[arg(long)]
        from_start: bool,
        /// Exit 0 after this many messages (at least 1).
        #[arg(long, value_parser = at_least_one)]
        count: Option<u64>,
        /// Handlers in flight at once.
        #[arg(long, default_value_t = 1)]
        parallel: usize,
        /// `{"id":..,"name":..,"body":..}` per line.
        #[arg(long)]
        json: bool,
        /// Seconds an entry stays pending before this service retries it (or takes it
        /// over from a dead instance).
        #[arg(long, default_value_t = 60.0)]
        reclaim_idle: f64,
        /// Deliveries before an entry goes to the dead-letter stream.
        #[arg(long, default_value_t = 5)]
        max_deliveries: u64,
    },
    /// Deletes the entries every listed service has received and acknowledged; prints
    /// the number deleted.
    Cleanup {
        /// The stream.
        channel: String,
        /// Services whose acknowledgement is needed, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        consumers: Vec<String>,
    },
    /// The dead-letter stream `<channel>:dlq`.
    Dlq {
        /// The stream whose dead letters to handle.
        channel: String,
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Cached calls: read one, or invalidate one or a whole namespace.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Length, first/last ID, consumer groups (consumers, pending, last delivered, lag)
    /// and the dead-letter stream's length.
    Info {
        /// The stream.
        channel: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A web page for streams, groups, dead letters and caches, with `/metrics` and a JSON
    /// API. Prints `dashboard: http://HOST:PORT/?token=TOKEN` first; stops on
    /// SIGTERM/Ctrl-C.
    Dashboard(dashboard::DashboardArgs),
    /// Throughput of ours beside a bare redis-rs loop, same run, medians and ratios.
    Bench(bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
enum DlqAction {
    /// One line per dead letter.
    List {
        /// JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Re-publishes dead letters to the channel, then removes them from the dead-letter
    /// stream.
    Replay {
        /// Only this one (its dead-letter ID or its original ID).
        #[arg(long)]
        id: Option<String>,
    },
    /// Deletes the dead-letter stream; prints how many entries it held.
    Purge,
}

#[derive(Debug, Subcommand)]
enum CacheAction {
    /// Prints the cached value of a call (as JSON), or `miss`.
    Get {
        /// The cache namespace.
        namespace: String,
        /// The call's keyword arguments, a JSON object in declaration order.
        #[arg(long)]
        args: String,
    },
    /// Removes one call's entry (`--args`), or every key of the namespace; prints the
    /// number removed.
    Invalidate {
        /// The cache namespace.
        namespace: String,
        /// The call's keyword arguments; without it the whole namespace goes.
        #[arg(long)]
        args: Option<String>,
    },
}

/// A count of at least 1: `0` would ask a command to do nothing, yet start it (a
/// consumer with `--count 0` would read entries it can never print and keep them
/// pending), so it is refused before anything runs.
fn at_least_one(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number ({e})")),
    }
}

/// The URL a command uses when neither `--url` nor `REDIS_URL` is set.
const DEFAULT_URL: &str = "redis://127.0.0.1:6379/0";

pub(crate) fn instance(url: &str) -> anyhow::Result<RedisInstance> {
    Ok(RedisInstance::new(RedisConfig::new().set_redis_url(url))?)
}

/// Runs `job` until it ends or SIGTERM/Ctrl-C arrives; on a signal the job is dropped,
/// which stops any private server it started (its `Drop` kills the process).
async fn interruptible(job: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::select! {
        result = job => result,
        () = terminal::shutdown_signal() => anyhow::bail!("interrupted"),
    }
}

fn with_newline(mut text: String) -> String {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// With no URL, a private server on a free port, stopped when the returned `Server`
/// drops.
pub(crate) fn private_server_unless(url: Option<String>) -> anyhow::Result<(Option<Server>, String)> {
    Ok(match url {
        Some(url) => (None, url),
        None => {
            let server = Server::builder().try_start().map_err(anyhow::Error::msg)?;
            let url = server.url();
            eprintln!("started a private server at {url}");
            (Some(server), url)
        }
    })
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    // Library logs (retries, dead letters, circuit changes) go to stderr when asked for
    // with RUST_LOG (e.g. RUST_LOG=dtrsfw=debug); by default stderr carries only errors.
    let observe = matches!(&cli.command, Command::Bench(args) if args.observe);
    if let Err(err) = observe::init(observe) {
        eprintln!("dtredis: {}", one_line(&err));
        std::process::exit(2);
    }
    if let Err(err) = run(cli).await {
        eprintln!("dtredis: {}", one_line(&err));
        std::process::exit(2);
    }
}

/// The error and its causes on one line, each cause once. A cause whose text is already
/// part of the line is skipped: many errors (redis-rs's among them) repeat their
/// source's text in their own message and return it as the source too.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[allow(clippy::print_stdout)] // a CLI's output is stdout
async fn run(cli: Cli) -> anyhow::Result<()> {
    // Built per command, not up front: `demo` and `bench` start their own server when no
    // URL is given.
    let shared_url = cli.url.clone();
    let redis = || instance(shared_url.as_deref().unwrap_or(DEFAULT_URL));
    match cli.command {
        Command::Health => {
            let redis = redis()?;
            match is_redis_connected_async(&redis).await {
                (true, _) => println!("ok"),
                (false, err) => {
                    eprintln!("dtredis: {}", err.map(|e| e.to_string()).unwrap_or_default());
                    std::process::exit(1);
                }
            }
        }
        Command::Send {
            channel,
            name,
            body,
            count,
            stdin,
        } => {
            let redis = redis()?;
            let source = match (name, body) {
                (Some(name), Some(body)) if !stdin => commands::send::Source::One {
                    name,
                    body,
                    count: usize::try_from(count)?,
                },
                _ => commands::send::Source::Stdin,
            };
            println!("{}", commands::send::run(&redis, &channel, source).await?);
        }
        Command::Consume {
            channel,
            service,
            from_start,
            count,
            parallel,
            json,
            reclaim_idle,
            max_deliveries,
        } => {
            let redis = redis()?;
            let reclaim_idle = Duration::try_from_secs_f64(reclaim_idle)
                .map_err(|_| anyhow::anyhow!("--reclaim-idle must be a positive number of seconds"))?;
            let args = commands::consume::ConsumeArgs {
                channel,
                service,
                from_start,
                count,
                parallel,
                json,
                reclaim_idle,
                max_deliveries,
            };
            commands::consume::run(&redis, args).await?;
        }
        Command::Cleanup { channel, consumers } => {
            let redis = redis()?;
            println!("{}", commands::cleanup::run(&redis, &channel, &consumers).await?);
        }
        Command::Dlq { channel, action } => {
            let redis = redis()?;
            let out = match action {
                DlqAction::List { json } => commands::dlq::list(&redis, &channel, json).await?,
                DlqAction::Replay { id } => commands::dlq::replay(&redis, &channel, id.as_deref()).await?,
                DlqAction::Purge => commands::dlq::purge(&redis, &channel).await?,
            };
            print!("{}", with_newline(out));
        }
        Command::Cache { action } => {
            let redis = redis()?;
            let out = match action {
                CacheAction::Get { namespace, args } => commands::cache::get(&redis, &namespace, &args).await?,
                CacheAction::Invalidate { namespace, args } => {
                    commands::cache::invalidate(&redis, &namespace, args.as_deref()).await?
                }
            };
            println!("{out}");
        }
        Command::Info { channel, json } => {
            let redis = redis()?;
            print!("{}", with_newline(commands::info::run(&redis, &channel, json).await?));
        }
        Command::Dashboard(args) => dashboard::run(redis()?, args).await?,
        Command::Bench(args) => interruptible(bench::command(cli.url, args)).await?,
        Command::Demo => {
            interruptible(async {
                let (_server, url) = private_server_unless(cli.url)?;
                let redis = instance(&url)?;
                print!("{}", commands::demo::run(&redis).await?);
                Ok(())
            })
            .await?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::one_line;

    /// An error whose message already ends with its source's text.
    #[derive(Debug)]
    struct Repeats(std::io::Error);

    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "reading: {}", self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn one_line_names_each_cause_once() {
        let io = || std::io::Error::other("disk on fire");
        let err = anyhow::Error::new(Repeats(io())).context("saving");
        assert_eq!(one_line(&err), "saving: reading: disk on fire");
        let err = anyhow::Error::new(io()).context("saving");
        assert_eq!(one_line(&err), "saving: disk on fire", "distinct causes are all kept");
    }
}
