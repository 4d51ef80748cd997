//! The POST action routes. Each is refused with 403 in read-only mode or without CSRF
//! proof (see [`super::csrf`]); without `confirm=yes` it answers a page that says
//! what it will do; with it, it does it through the library (the same functions as
//! `dtredis dlq` and `dtredis cache`) and reports what it did — as a page, or as JSON
//! when the request accepts `application/json`.

use axum::extract::{Extension, Form, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Json, Response};
use dtrsfw::redis::inspect::{delete_dead_letters, replay_matching_dead_letters, replay_selected_dead_letters};
use dtrsfw::redis::streamer::{ReplayReport, purge_dead_letters};
use serde_json::json;

use super::auth::AuthBy;
use super::csrf;
use super::data::{dlq_query, required};
use super::form::Fields;
use super::pages::{confirm, enc, layout};
use super::state::{AppError, AppResult, AppState, Shared};

/// One action, parsed from its form.
#[derive(Debug)]
enum Action {
    Replay { stream: String, ids: Vec<String> },
    ReplayMatching { stream: String },
    Delete { stream: String, ids: Vec<String> },
    Purge { stream: String },
    Invalidate { namespace: String, args: Option<String> },
}

/// The dead letters an action names: the one of a row's button, else the checked ones.
fn selected(fields: &Fields) -> AppResult<Vec<String>> {
    let ids = match fields.non_empty("one") {
        Some(one) => vec![one.to_owned()],
        None => fields.all("id").into_iter().filter(|i| !i.trim().is_empty()).collect(),
    };
    if ids.is_empty() {
        return Err(AppError::bad_request(anyhow::anyhow!("no dead letter selected")));
    }
    Ok(ids)
}

impl Action {
    fn parse(route: &str, f: &Fields) -> AppResult<Action> {
        let stream = || required(f, "stream").map(str::to_owned);
        Ok(match route {
            "replay" => Action::Replay {
                stream: stream()?,
                ids: selected(f)?,
            },
            "replay-matching" => Action::ReplayMatching { stream: stream()? },
            "delete" => Action::Delete {
                stream: stream()?,
                ids: selected(f)?,
            },
            "purge" => Action::Purge { stream: stream()? },
            _ => Action::Invalidate {
                namespace: required(f, "namespace")?.to_owned(),
                args: f.non_empty("args").map(str::to_owned),
            },
        })
    }

    fn describe(&self) -> String {
        match self {
            Action::Replay { stream, ids } => format!(
                "Replay {} dead letter(s) of {stream} ({}): re-publish each to {stream}, then remove it from {stream}:dlq?",
                ids.len(),
                ids.join(", ")
            ),
            Action::ReplayMatching { stream } => {
                format!("Replay every dead letter of {stream} that matches the current filter?")
            }
            Action::Delete { stream, ids } => {
                format!(
                    "Delete {} dead letter(s) from {stream}:dlq ({})? They are not replayed.",
                    ids.len(),
                    ids.join(", ")
                )
            }
            Action::Purge { stream } => format!("Delete the whole dead-letter stream {stream}:dlq?"),
            Action::Invalidate {
                namespace,
                args: Some(args),
            } => {
                format!("Invalidate the cached call {args} in namespace {namespace}?")
            }
            Action::Invalidate { namespace, args: None } => {
                format!("Invalidate every key of cache namespace {namespace}?")
            }
        }
    }

    fn back(&self, f: &Fields) -> String {
        match self {
            Action::Invalidate { .. } => "/caches".to_owned(),
            Action::Replay { stream, .. }
            | Action::ReplayMatching { stream }
            | Action::Delete { stream, .. }
            | Action::Purge { stream } => {
                let mut href = format!("/dlq?stream={}", enc(stream));
                for field in ["reason", "name", "service", "q"] {
                    if let Some(v) = f.non_empty(field) {
                        href.push_str(&format!("&{field}={}", enc(v)));
                    }
                }
                href
            }
        }
    }

    /// Does it; returns the report as text and as JSON.
    async fn perform(&self, state: &AppState, f: &Fields) -> anyhow::Result<(String, serde_json::Value)> {
        let redis = &state.redis;
        let replayed = |r: ReplayReport| {
            (
                format!(
                    "Replayed {}; kept {} malformed (not replayable).",
                    r.replayed, r.skipped
                ),
                json!({"replayed": r.replayed, "skipped": r.skipped}),
            )
        };
        Ok(match self {
            Action::Replay { stream, ids } => replayed(replay_selected_dead_letters(redis, stream, ids).await?),
            Action::ReplayMatching { stream } => {
                replayed(replay_matching_dead_letters(redis, stream, &dlq_query(f).before(None)).await?)
            }
            Action::Delete { stream, ids } => {
                let n = delete_dead_letters(redis, stream, ids).await?;
                (format!("Deleted {n} dead letter(s)."), json!({"deleted": n}))
            }
            Action::Purge { stream } => {
                let n = purge_dead_letters(redis, stream).await?;
                (
                    format!("Purged {stream}:dlq: {n} dead letter(s) deleted."),
                    json!({"purged": n}),
                )
            }
            Action::Invalidate { namespace, args } => {
                let n: u64 = crate::commands::cache::invalidate(redis, namespace, args.as_deref())
                    .await?
                    .parse()?;
                (format!("Invalidated {n} key(s)."), json!({"removed": n}))
            }
        })
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

async fn act(state: &AppState, by: AuthBy, headers: &HeaderMap, route: &str, f: &Fields) -> AppResult<Response> {
    if let Err(why) = csrf::check(state, by, headers, f) {
        return Ok(csrf::forbidden(why));
    }
    let action = Action::parse(route, f)?;
    let back = action.back(f);
    let path = format!(
        "/actions/{}",
        if route == "invalidate" {
            "cache/invalidate".to_owned()
        } else {
            format!("dlq/{route}")
        }
    );
    if f.get("confirm") != Some("yes") {
        let body = confirm::ask(state, &path, &action.describe(), f, &back);
        return Ok(layout(state, "Confirm", &body).into_response());
    }
    let (report, json) = action.perform(state, f).await?;
    Ok(if wants_json(headers) {
        Json(json).into_response()
    } else {
        layout(state, "Done", &confirm::done(&report, &back)).into_response()
    })
}

macro_rules! action_route {
    ($name:ident, $route:literal) => {
        #[doc = concat!("`POST /actions/.../", $route, "`.")]
        pub(crate) async fn $name(
            State(state): State<Shared>,
            Extension(by): Extension<AuthBy>,
            headers: HeaderMap,
            Form(fields): Form<Fields>,
        ) -> AppResult<Response> {
            act(&state, by, &headers, $route, &fields).await
        }
    };
}

action_route!(dlq_replay, "replay");
action_route!(dlq_replay_matching, "replay-matching");
action_route!(dlq_delete, "delete");
action_route!(dlq_purge, "purge");
action_route!(cache_invalidate, "invalidate");
