//! The confirmation step of every action, and the report of what it did. Server-side
//! (no `confirm()` dialog), so it works without JavaScript and says exactly what will
//! happen before it happens.

use maud::{Markup, html};

use super::csrf_input;
use crate::dashboard::form::Fields;
use crate::dashboard::state::AppState;

/// A page that re-posts `fields` to `action` with `confirm=yes`.
pub(crate) fn ask(state: &AppState, action: &str, what: &str, fields: &Fields, back: &str) -> Markup {
    html! {
        p.confirm { (what) }
        form method="post" action=(action) {
            (csrf_input(state))
            @for (k, v) in fields.0.iter().filter(|(k, _)| k != crate::dashboard::csrf::FIELD && k != "confirm") {
                input type="hidden" name=(k) value=(v);
            }
            input type="hidden" name="confirm" value="yes";
            button id="confirm" type="submit" { "Confirm" }
            " "
            a href=(back) { "Cancel" }
        }
    }
}

/// What an action did.
pub(crate) fn done(report: &str, back: &str) -> Markup {
    html! {
        p id="report" { (report) }
        p { a href=(back) { "← back" } }
    }
}
