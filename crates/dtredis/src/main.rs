//! `dtredis`: the command-line tool of dtrsfw.

#[expect(
    dead_code,
    reason = "the area benchmarks (publish, consume, cache) are filled in by their issues"
)]
mod bench;
mod commands;
mod terminal;

use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dtrsfw::redis::{RedisConfig, RedisInstance, is_redis_connected_async};
use dtrsfw_test_support::Server;

/// Redis streams and caching for DealerTower services.
#[derive(Debug, Parser)]
#[command(name = "dtredis", version, about)]
struct Cli {
    /// Server URL. By default, `$REDIS_URL`, else redis://127.0.0.1:6379/0 (for `demo`:
    /// a private server started for the run).
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
    /// Length, first/last ID, consumer groups (consumers, pending, last delivered, lag)
    /// and the dead-letter stream's length.
    Info {
        /// The stream.
        channel: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Throughput of ours beside a bare redis-rs loop, same run, medians and ratios.
    Bench {
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Fewer operations and rounds (a smoke run).
        #[arg(long)]
        quick: bool,
    },
}

/// The URL a command uses when neither `--url` nor `REDIS_URL` is set.
const DEFAULT_URL: &str = "redis://127.0.0.1:6379/0";

fn instance(url: &str) -> anyhow::Result<RedisInstance> {
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
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// With no URL, a private server on a free port, stopped when the returned `Server`
/// drops.
fn private_server_unless(url: Option<String>) -> anyhow::Result<(Option<Server>, String)> {
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

/// `redis_version` (or `valkey_version`) from INFO, e.g. `redis 7.0.15`.
async fn server_version(url: &str) -> anyhow::Result<String> {
    let mut conn = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    Ok(match field("valkey_version:") {
        Some(v) => format!("valkey {v}"),
        None => format!("redis {}", field("redis_version:").unwrap_or_default()),
    })
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(err) = run(cli).await {
        eprintln!("dtredis: {err:#}");
        std::process::exit(2);
    }
}

#[allow(clippy::print_stdout)] // a CLI's output is stdout
async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Health => {
            let redis = instance(cli.url.as_deref().unwrap_or(DEFAULT_URL))?;
            match is_redis_connected_async(&redis).await {
                (true, _) => println!("ok"),
                (false, err) => {
                    eprintln!("dtredis: {}", err.map(|e| e.to_string()).unwrap_or_default());
                    std::process::exit(1);
                }
            }
        }
        Command::Info { channel, json } => {
            let redis = instance(cli.url.as_deref().unwrap_or(DEFAULT_URL))?;
            print!("{}", with_newline(commands::info::run(&redis, &channel, json).await?));
        }
        Command::Bench { json, quick } => {
            let (_server, url) = private_server_unless(cli.url)?;
            let ctx = bench::BenchContext {
                url: url.clone(),
                quick,
            };
            let server_version = server_version(&url).await?;
            let rows = bench::run_all(&ctx, &|area| eprintln!("bench: {area} ...")).await?;
            if json {
                println!("{}", bench::render_json(&server_version, &rows));
            } else {
                print!("{}", bench::render_table(&server_version, &rows));
            }
        }
        Command::Demo => {
            interruptible(async {
                let (_server, url) = private_server_unless(cli.url)?;
                let redis = instance(&url)?;
                let (ok, err) = is_redis_connected_async(&redis).await;
                anyhow::ensure!(ok, "server at {redis} is not reachable: {err:?}");
                println!("health: ok ({redis})");
                let mut client = redis.get_async_redis_client().await?;
                let start = Instant::now();
                redis::cmd("SET")
                    .arg("dtredis:demo")
                    .arg("hello")
                    .exec_async(&mut client)
                    .await
                    .context("SET")?;
                let value: String = redis::cmd("GET")
                    .arg("dtredis:demo")
                    .query_async(&mut client)
                    .await
                    .context("GET")?;
                println!("SET/GET round trip: {value:?} in {:?}", start.elapsed());
                Ok(())
            })
            .await?
        }
    }
    Ok(())
}
