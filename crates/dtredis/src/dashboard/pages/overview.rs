//! `/`: the server and every stream, live-updated from `/events`.

use axum::extract::{Query, State};
use axum::response::Html;
use maud::{Markup, html};

use super::{enc, layout, sparkline};
use crate::dashboard::data::{self, Overview};
use crate::dashboard::form::Fields;
use crate::dashboard::history::StreamRow;
use crate::dashboard::state::{AppResult, Shared};

/// A cell that `/events` keeps current (`app.js` matches on the data attributes).
fn live(stream: &str, field: &str, value: impl std::fmt::Display) -> Markup {
    html! { td.num data-stream=(stream) data-field=(field) { (value) } }
}

fn stream_row(row: &StreamRow) -> Markup {
    let name = &row.name;
    html! {
        tr {
            td { a href={ "/stream?name=" (enc(name)) } { (name) } }
            (live(name, "length", row.length))
            (live(name, "groups", row.groups))
            (live(name, "lag", row.lag))
            (live(name, "pending", row.pending))
            td.num data-stream=(name) data-field="dead_letters" {
                a href={ "/dlq?stream=" (enc(name)) } { (row.dead_letters) }
            }
            (live(name, "in_rate", format!("{:.1}", row.in_rate)))
            (live(name, "out_rate", format!("{:.1}", row.out_rate)))
            td { (sparkline(name, &row.in_history, &row.out_history)) }
        }
    }
}

fn render(view: &Overview) -> Markup {
    let s = &view.server;
    html! {
        p.server {
            (s.server) " " (s.version) " · memory " span data-server="used_memory_human" { (s.used_memory_human) }
            " · clients " span data-server="connected_clients" { (s.connected_clients) }
            " · up " (super::duration(s.uptime_seconds * 1000))
        }
        p.muted {
            (view.total_streams) " streams"
            @if !view.complete { " (key scan stopped by its budget: the list may be incomplete)" }
            " · rates per second, chart: last 2 minutes (in " span.in-key { "blue" } ", out " span.out-key { "green" } ")"
            " · " span id="live" { "live" }
        }
        table id="streams" {
            thead { tr {
                th { "Stream" } th { "Length" } th { "Groups" } th { "Lag" } th { "Pending" }
                th { "Dead letters" } th { "In/s" } th { "Out/s" } th { "Chart" }
            } }
            tbody {
                @for row in &view.streams { (stream_row(row)) }
                @if view.streams.is_empty() { tr { td colspan="9" { "no streams" } } }
            }
        }
        @if view.pages > 1 {
            p.pager {
                @if view.page > 1 { a href={ "/?page=" (view.page - 1) } { "← previous" } " " }
                "page " (view.page) " of " (view.pages)
                @if view.page < view.pages { " " a href={ "/?page=" (view.page + 1) } { "next →" } }
            }
        }
    }
}

/// `GET /?page=N`.
pub(crate) async fn page(State(state): State<Shared>, Query(q): Query<Fields>) -> AppResult<Html<String>> {
    let page = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let view = data::overview(&state, page).await?;
    Ok(layout(&state, "Streams", &render(&view)))
}
