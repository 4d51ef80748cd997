//! `/events?page=N`: server-sent events with the sampler's figures for the streams of
//! that overview page, once a second (each new snapshot). The stream ends when the
//! server stops, so a graceful shutdown is not held open by a browser tab.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde_json::json;

use super::data::STREAMS_PER_PAGE;
use super::form::Fields;
use super::history::Snapshot;
use super::state::Shared;

fn event(snapshot: &Snapshot, page: usize) -> Event {
    let start = (page.max(1) - 1) * STREAMS_PER_PAGE;
    let rows = snapshot
        .streams
        .iter()
        .skip(start)
        .take(STREAMS_PER_PAGE)
        .collect::<Vec<_>>();
    let data = json!({
        "server": snapshot.server,
        "streams": rows,
        "complete": snapshot.complete,
        "error": snapshot.error,
    });
    Event::default().event("overview").data(data.to_string())
}

/// `GET /events`.
pub(crate) async fn events(
    State(state): State<Shared>,
    Query(q): Query<Fields>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let page = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let snapshots = state.snapshot.clone();
    let stopping = state.stopping.clone();
    let updates = stream::unfold(
        (snapshots, stopping, true),
        move |(mut snaps, mut stop, first)| async move {
            if !first {
                tokio::select! {
                    changed = snaps.changed() => changed.ok()?,
                    _ = stop.wait_for(|s| *s) => return None,
                }
            }
            if *stop.borrow() {
                return None;
            }
            let snapshot: Arc<Snapshot> = snaps.borrow_and_update().clone();
            Some((Ok(event(&snapshot, page)), (snaps, stop, false)))
        },
    );
    Sse::new(updates).keep_alive(KeepAlive::default())
}
