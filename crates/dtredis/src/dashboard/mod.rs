//! `dtredis dashboard`: a web page for streams, consumer groups, dead letters and
//! caches, with a Prometheus endpoint, served from this binary.
//!
//! **Stack, and why.** [axum](https://docs.rs/axum) on the tokio runtime the CLI already
//! runs (hyper underneath; routing, extractors and middleware without a framework of
//! its own); [maud](https://docs.rs/maud) for HTML: templates are Rust code checked at
//! compile time and every interpolated value is escaped unless marked otherwise, which
//! is what a page made of names and bodies read from Redis needs. No JavaScript build
//! step: one small hand-written script (live updates over server-sent events, with
//! `EventSource`) and one stylesheet, both compiled into the binary with
//! `include_str!`, so the page works offline and the binary is the whole deployment.
//!
//! **Layout.** [`auth`] (token, cookie, constant-time compare), [`csrf`] (action
//! protection), [`data`] (what each page shows, through `dtrsfw::redis::inspect` and the
//! dead-letter and cache functions of the library), [`pages`] (HTML), [`api`] (the same
//! data as JSON), [`actions`] (POST routes), [`metrics`] (Prometheus text), [`sse`] and
//! [`history`] (the once-a-second sampler behind live updates and rates).
//!
//! **Bounded work per request.** Stream discovery is a `SCAN ... TYPE stream` of
//! `COUNT 1000` per step stopped after 100 ms or 10 000 keys (the page then says the
//! list may be incomplete); the overview summarises 100 streams per page in pipelined
//! batches; entries are read `XREVRANGE ... COUNT 21` at a time; a dead-letter search
//! reads at most 5 000 letters per page; cache namespaces come from a `SCAN ... TYPE
//! string` under the same budget.

pub(crate) mod actions;
pub(crate) mod api;
pub(crate) mod auth;
pub(crate) mod csrf;
pub(crate) mod data;
pub(crate) mod form;
pub(crate) mod history;
pub(crate) mod metrics;
pub(crate) mod pages;
pub(crate) mod sse;
pub(crate) mod state;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dtrsfw::redis::RedisInstance;
use tokio::sync::watch;

use state::{AppState, Shared};

/// What `dtredis dashboard` was asked for.
#[derive(Debug, clap::Args)]
pub(crate) struct DashboardArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:7380")]
    pub(crate) listen: String,
    /// The access token. By default, `$DTREDIS_DASHBOARD_TOKEN`, else a random one.
    #[arg(long, env = "DTREDIS_DASHBOARD_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Show no action and refuse every action route with 403.
    #[arg(long)]
    pub(crate) read_only: bool,
}

/// A token must survive a URL and a cookie as it is.
fn check_token(token: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
        "the dashboard token must be non-empty and use only letters, digits and - . _ ~"
    );
    Ok(())
}

async fn read_only_guard(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if state.read_only {
        return (
            StatusCode::FORBIDDEN,
            "403 forbidden: the dashboard runs with --read-only\n",
        )
            .into_response();
    }
    next.run(request).await
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse + Clone {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

fn router(state: Shared) -> Router {
    let actions = Router::new()
        .route("/actions/dlq/replay", post(actions::dlq_replay))
        .route("/actions/dlq/replay-matching", post(actions::dlq_replay_matching))
        .route("/actions/dlq/delete", post(actions::dlq_delete))
        .route("/actions/dlq/purge", post(actions::dlq_purge))
        .route("/actions/cache/invalidate", post(actions::cache_invalidate))
        .route_layer(middleware::from_fn_with_state(state.clone(), read_only_guard));
    Router::new()
        .route("/", get(pages::overview::page))
        .route("/stream", get(pages::stream::page))
        .route("/dlq", get(pages::dlq::page))
        .route("/dlq/letter", get(pages::dlq::letter))
        .route("/caches", get(pages::caches::page))
        .route("/caches/lookup", get(pages::caches::lookup))
        .route("/api/overview", get(api::overview))
        .route("/api/stream", get(api::stream))
        .route("/api/dlq", get(api::dlq))
        .route("/api/caches", get(api::caches))
        .route("/api/caches/lookup", get(api::lookup))
        .route("/metrics", get(metrics::metrics))
        .route("/events", get(sse::events))
        .route(
            "/assets/app.js",
            get(asset("text/javascript; charset=utf-8", include_str!("assets/app.js"))),
        )
        .route(
            "/assets/style.css",
            get(asset("text/css; charset=utf-8", include_str!("assets/style.css"))),
        )
        .merge(actions)
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_token))
        .with_state(state)
}

/// Serves until SIGTERM/Ctrl-C. The first stdout line is the URL with the token.
#[allow(clippy::print_stdout)] // the URL line is the command's output
pub(crate) async fn run(redis: RedisInstance, args: DashboardArgs) -> anyhow::Result<()> {
    let token = match args.token {
        Some(token) => token,
        None => state::random_token()?,
    };
    check_token(&token)?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = Arc::new(AppState {
        redis: redis.clone(),
        token,
        csrf: state::random_token()?,
        read_only: args.read_only,
        snapshot: snapshot_rx,
        stopping: stop_rx.clone(),
    });
    let sampler = tokio::spawn(history::run_sampler(redis, snapshot_tx, stop_rx));
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "dashboard: http://{addr}/?token={}", state.token)?;
        out.flush()?;
    }
    let shutdown = async move {
        crate::terminal::shutdown_signal().await;
        let _ = stop_tx.send(true);
    };
    let serve = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown);
    // In-flight requests get a moment to finish; a stuck one does not hold the exit.
    let mut serve = std::pin::pin!(serve.into_future());
    tokio::select! {
        result = &mut serve => result?,
        () = async { crate::terminal::shutdown_signal().await; tokio::time::sleep(Duration::from_secs(5)).await } => {}
    }
    sampler.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_token;

    #[test]
    fn tokens_must_be_url_safe() {
        assert!(check_token("abc-DEF_1.2~").is_ok());
        assert!(check_token("").is_err());
        assert!(check_token("a&b").is_err());
        assert!(check_token("a b").is_err());
    }
}
