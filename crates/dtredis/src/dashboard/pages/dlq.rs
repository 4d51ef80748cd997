//! `/dlq?stream=`: search the dead letters of a stream, and act on them;
//! `/dlq/letter?stream=&id=`: one letter in full.

use axum::extract::{Query, State};
use axum::response::Html;
use dtrsfw::redis::inspect::get_dead_letter;
use dtrsfw::redis::streamer::DeadLetter;
use maud::{Markup, html};

use super::{csrf_input, enc, layout, pretty, timestamp};
use crate::dashboard::data::{self, DlqView};
use crate::dashboard::form::Fields;
use crate::dashboard::state::{AppError, AppResult, AppState, Shared};

/// The filter fields, carried by the search form, the pager and the action forms.
const FILTERS: [(&str, &str); 4] = [
    ("reason", "reason"),
    ("name", "message name"),
    ("service", "service"),
    ("q", "text in body or error"),
];

fn filter_form(stream: &str, q: &Fields) -> Markup {
    html! {
        form.filters method="get" action="/dlq" {
            input type="hidden" name="stream" value=(stream);
            @for (field, label) in FILTERS {
                label { (label) " " input type="search" name=(field) value=(q.get(field).unwrap_or("")); }
            }
            button type="submit" id="search" { "Search" }
        }
    }
}

fn letter_row(state: &AppState, stream: &str, l: &DeadLetter) -> Markup {
    let body = l.body.as_deref().unwrap_or("");
    let short: String = body.chars().take(120).collect();
    html! {
        tr.letter data-id=(l.dlq_id) {
            @if !state.read_only { td { input type="checkbox" name="id" value=(l.dlq_id); } }
            td { a href={ "/dlq/letter?stream=" (enc(stream)) "&id=" (enc(&l.dlq_id)) } { code { (l.dlq_id) } } }
            td { (l.name.as_deref().unwrap_or("")) }
            td { (l.reason) }
            td { (l.service) }
            td.num { (l.deliveries) }
            td { (timestamp(l.time)) }
            td { (l.error) }
            td { code { (short) } }
            @if !state.read_only {
                td { button.replay-one type="submit" name="one" value=(l.dlq_id) formaction="/actions/dlq/replay" { "Replay" } }
            }
        }
    }
}

fn hidden_filters(stream: &str, q: &Fields) -> Markup {
    html! {
        input type="hidden" name="stream" value=(stream);
        @for (field, _) in FILTERS { input type="hidden" name=(field) value=(q.get(field).unwrap_or("")); }
    }
}

fn render(state: &AppState, view: &DlqView, q: &Fields) -> Markup {
    let stream = &view.stream;
    let more = view.page.next_before.as_ref().map(|next| {
        let mut href = format!("/dlq?stream={}&before={}", enc(stream), enc(next));
        for (field, _) in FILTERS {
            href.push_str(&format!("&{field}={}", enc(q.get(field).unwrap_or(""))));
        }
        href
    });
    html! {
        p { (view.total) " dead letters in " code { (stream) ":dlq" } " · " a href={ "/stream?name=" (enc(stream)) } { "the stream" } }
        (filter_form(stream, q))
        p.muted { (view.page.letters.len()) " matching shown, " (view.page.scanned) " read" }
        form id="letters" method="post" action=[(!state.read_only).then_some("/actions/dlq/replay")] {
            @if !state.read_only { (csrf_input(state)) (hidden_filters(stream, q)) }
            table {
                thead { tr {
                    @if !state.read_only { th {} }
                    th { "Dead-letter ID" } th { "Name" } th { "Reason" } th { "Service" } th { "Deliveries" }
                    th { "Dead-lettered" } th { "Error" } th { "Body" }
                    @if !state.read_only { th {} }
                } }
                tbody {
                    @for l in &view.page.letters { (letter_row(state, stream, l)) }
                    @if view.page.letters.is_empty() { tr { td colspan="10" { "no matching dead letters" } } }
                }
            }
            @if !state.read_only {
                p.actions {
                    button type="submit" formaction="/actions/dlq/replay" { "Replay selected" }
                    button type="submit" formaction="/actions/dlq/delete" { "Delete selected" }
                    button type="submit" formaction="/actions/dlq/replay-matching" { "Replay all matching" }
                    button.danger type="submit" formaction="/actions/dlq/purge" { "Purge all" }
                }
            }
        }
        @if let Some(href) = more { p.pager { a href=(href) { "older →" } } }
    }
}

/// `GET /dlq?stream=S[&reason=&name=&service=&q=&before=]`.
pub(crate) async fn page(State(state): State<Shared>, Query(q): Query<Fields>) -> AppResult<Html<String>> {
    let stream = data::required(&q, "stream")?;
    let view = data::dlq(&state, stream, &q).await?;
    Ok(layout(
        &state,
        &format!("Dead letters of {stream}"),
        &render(&state, &view, &q),
    ))
}

fn detail(state: &AppState, stream: &str, l: &DeadLetter) -> Markup {
    let fields: [(&str, String); 8] = [
        ("dead-letter ID", l.dlq_id.clone()),
        ("original ID", l.id.clone()),
        ("name", l.name.clone().unwrap_or_default()),
        ("reason", l.reason.clone()),
        ("service", l.service.clone()),
        ("deliveries", l.deliveries.to_string()),
        ("dead-lettered", timestamp(l.time)),
        ("error", l.error.clone()),
    ];
    html! {
        table.detail { @for (k, v) in &fields { tr { th { (k) } td { (v) } } } }
        h2 { "Body" }
        pre { (pretty(l.body.as_deref().unwrap_or(""))) }
        @if !state.read_only {
            form method="post" action="/actions/dlq/replay" {
                (csrf_input(state))
                input type="hidden" name="stream" value=(stream);
                @if l.is_replayable() { button type="submit" name="one" value=(l.dlq_id) { "Replay" } }
                button type="submit" name="id" value=(l.dlq_id) formaction="/actions/dlq/delete" { "Delete" }
            }
        }
        p { a href={ "/dlq?stream=" (enc(stream)) } { "← all dead letters" } }
    }
}

/// `GET /dlq/letter?stream=S&id=ID`.
pub(crate) async fn letter(State(state): State<Shared>, Query(q): Query<Fields>) -> AppResult<Html<String>> {
    let stream = data::required(&q, "stream")?;
    let id = data::required(&q, "id")?;
    let letter = get_dead_letter(&state.redis, stream, id)
        .await?
        .ok_or_else(|| AppError::not_found(anyhow::anyhow!("no dead letter {id:?} in {stream}:dlq")))?;
    Ok(layout(
        &state,
        &format!("Dead letter {id}"),
        &detail(&state, stream, &letter),
    ))
}
