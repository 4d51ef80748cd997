//! `/caches`: cache namespaces from a bounded key scan; look up and invalidate calls.

use axum::extract::{Query, State};
use axum::response::Html;
use dtrsfw::redis::inspect::NamespaceSample;
use maud::{Markup, html};

use super::{csrf_input, duration, layout};
use crate::dashboard::data::{self, Lookup};
use crate::dashboard::form::Fields;
use crate::dashboard::state::{AppResult, AppState, Shared};

fn ttl(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_owned(), duration)
}

fn invalidate_form(state: &AppState, namespace: &str, args: Option<&str>, label: &str) -> Markup {
    html! {
        @if !state.read_only {
            form.inline method="post" action="/actions/cache/invalidate" {
                (csrf_input(state))
                input type="hidden" name="namespace" value=(namespace);
                @if let Some(args) = args { input type="hidden" name="args" value=(args); }
                button type="submit" { (label) }
            }
        }
    }
}

fn lookup_form(q: &Fields) -> Markup {
    html! {
        form.filters method="get" action="/caches/lookup" {
            label { "namespace " input type="text" name="namespace" value=(q.get("namespace").unwrap_or("")); }
            label { "arguments (JSON object, in declaration order) "
                input type="text" name="args" size="40" value=(q.get("args").unwrap_or("{}")); }
            button type="submit" { "Look up" }
        }
    }
}

fn render(state: &AppState, sample: &NamespaceSample, q: &Fields) -> Markup {
    html! {
        p.muted {
            (sample.dbsize) " keys in the database; namespaces from "
            @if sample.complete { "a full scan" } @else { "a bounded scan (counts estimated)" }
            "; TTLs from up to 20 keys per namespace"
        }
        table {
            thead { tr {
                th { "Namespace" } th { "Keys (approx.)" } th { "Sampled" } th { "TTL min" } th { "TTL max" }
                th { "Without TTL" } @if !state.read_only { th {} }
            } }
            tbody {
                @for ns in &sample.namespaces {
                    tr {
                        td { code { (ns.namespace) } }
                        td.num { (ns.approx_keys) } td.num { (ns.sampled_keys) }
                        td.num { (ttl(ns.ttl_min_ms)) } td.num { (ttl(ns.ttl_max_ms)) } td.num { (ns.without_ttl) }
                        @if !state.read_only { td { (invalidate_form(state, &ns.namespace, None, "Invalidate namespace")) } }
                    }
                }
                @if sample.namespaces.is_empty() { tr { td colspan="7" { "no cache keys found" } } }
            }
        }
        h2 { "Look up one call" }
        (lookup_form(q))
    }
}

/// `GET /caches`.
pub(crate) async fn page(State(state): State<Shared>, Query(q): Query<Fields>) -> AppResult<Html<String>> {
    let sample = data::caches(&state).await?;
    Ok(layout(&state, "Caches", &render(&state, &sample, &q)))
}

fn render_lookup(state: &AppState, found: &Lookup, q: &Fields) -> Markup {
    html! {
        (lookup_form(q))
        @match &found.value {
            Some(value) => {
                p { "hit in " code { (found.namespace) } " for " code { (found.args) } }
                pre { (serde_json::to_string_pretty(value).unwrap_or_default()) }
                (invalidate_form(state, &found.namespace, Some(&found.args), "Invalidate this call"))
            }
            None => p { "miss: nothing cached in " code { (found.namespace) } " for " code { (found.args) } },
        }
    }
}

/// `GET /caches/lookup?namespace=NS&args=JSON`.
pub(crate) async fn lookup(State(state): State<Shared>, Query(q): Query<Fields>) -> AppResult<Html<String>> {
    let namespace = data::required(&q, "namespace")?;
    let found = data::lookup(&state, namespace, q.get("args").unwrap_or("{}")).await?;
    Ok(layout(&state, "Cache lookup", &render_lookup(&state, &found, &q)))
}
