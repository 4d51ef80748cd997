//! `/stream?name=`: groups, consumers, oldest pending entries, and the entries newest
//! first, a page at a time.

use axum::extract::{Query, State};
use axum::response::Html;
use maud::{Markup, html};

use super::{duration, enc, layout, pretty, timestamp};
use crate::dashboard::data::{self, GroupDetail, StreamView};
use crate::dashboard::form::Fields;
use crate::dashboard::state::{AppResult, Shared};

fn group(detail: &GroupDetail) -> Markup {
    let g = &detail.group;
    html! {
        section.group {
            h3 { "Group " code { (g.name) } }
            p {
                "lag " strong { (g.lag.map_or("?".to_owned(), |l| l.to_string())) }
                " · pending " strong { (g.pending) }
                " · last delivered " code { (g.last_delivered_id) }
                @if let Some(age) = g.oldest_pending_age_ms { " · oldest pending " (duration(age)) " old" }
            }
            table {
                thead { tr { th { "Consumer" } th { "Pending" } th { "Idle" } } }
                tbody {
                    @for c in &detail.consumers {
                        tr { td { (c.name) } td.num { (c.pending) } td.num { (duration(c.idle_ms)) } }
                    }
                    @if detail.consumers.is_empty() { tr { td colspan="3" { "no consumers" } } }
                }
            }
            @if !detail.oldest_pending.is_empty() {
                h4 { "Oldest pending" }
                table {
                    thead { tr { th { "Entry" } th { "Consumer" } th { "Idle" } th { "Deliveries" } } }
                    tbody {
                        @for p in &detail.oldest_pending {
                            tr { td { code { (p.id) } } td { (p.consumer) } td.num { (duration(p.idle_ms)) } td.num { (p.deliveries) } }
                        }
                    }
                }
            }
        }
    }
}

fn render(view: &StreamView) -> Markup {
    let s = &view.summary;
    html! {
        p {
            (s.length) " entries"
            @if let Some(first) = &s.first_id { " · first " code { (first) } }
            @if let Some(last) = &s.last_id { " · last " code { (last) } }
            " · " a href={ "/dlq?stream=" (enc(&s.name)) } { (s.dead_letters) " dead letters" }
        }
        h2 { "Consumer groups" }
        @for g in &view.groups { (group(g)) }
        @if view.groups.is_empty() { p.muted { "no consumer groups" } }
        h2 { "Entries, newest first" }
        table.entries {
            thead { tr { th { "ID" } th { "Time" } th { "Name" } th { "Body / fields" } } }
            tbody {
                @for e in &view.entries.entries {
                    tr {
                        td { code { (e.id) } }
                        td { (e.id.split('-').next().and_then(|ms| ms.parse().ok()).map(timestamp).unwrap_or_default()) }
                        td { (e.field("name").unwrap_or("")) }
                        td { pre { @match e.field("body") {
                            Some(body) => (pretty(body)),
                            None => @for (k, v) in &e.fields { (k) " = " (v) "\n" },
                        } } }
                    }
                }
            }
        }
        @if let Some(next) = &view.entries.next_before {
            p.pager { a href={ "/stream?name=" (enc(&s.name)) "&before=" (enc(next)) } { "older →" } }
        }
    }
}

/// `GET /stream?name=NAME[&before=ID]`.
pub(crate) async fn page(State(state): State<Shared>, Query(q): Query<Fields>) -> AppResult<Html<String>> {
    let name = data::required(&q, "name")?;
    let view = data::stream(&state, name, q.non_empty("before")).await?;
    Ok(layout(&state, &format!("Stream {name}"), &render(&view)))
}
