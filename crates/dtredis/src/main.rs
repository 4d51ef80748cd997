//! `dtredis`: the command-line tool of dtrsfw.

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
}

/// The URL a command uses when neither `--url` nor `REDIS_URL` is set.
const DEFAULT_URL: &str = "redis://127.0.0.1:6379/0";

fn instance(url: &str) -> anyhow::Result<RedisInstance> {
    Ok(RedisInstance::new(RedisConfig::new().set_redis_url(url))?)
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
        Command::Demo => {
            // With no URL, a private server on a free port, stopped when `_server` drops.
            let (_server, url) = match cli.url {
                Some(url) => (None, url),
                None => {
                    let server = Server::builder().try_start().map_err(anyhow::Error::msg)?;
                    let url = server.url();
                    println!("started a private server at {url}");
                    (Some(server), url)
                }
            };
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
        }
    }
    Ok(())
}
