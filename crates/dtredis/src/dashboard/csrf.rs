//! Cross-site request forgery protection of the action routes (POST only).
//!
//! Three layers, each enough on its own in current browsers: the auth cookie is
//! `SameSite=Strict` (a cross-site POST arrives without it and gets 401); an `Origin`
//! header, when the browser sends one, must be this server's own; and every action form
//! carries a per-process random token in a hidden field, checked in constant time.
//! Requests authenticated with a Bearer header skip the last two: a browser never adds
//! that header by itself, so such a request cannot be forged by another page.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::{AuthBy, same_secret};
use super::form::Fields;
use super::state::AppState;

/// The hidden form field that carries the token.
pub(crate) const FIELD: &str = "csrf";

/// The 403 answer of a refused action.
pub(crate) fn forbidden(why: &str) -> Response {
    (StatusCode::FORBIDDEN, format!("403 forbidden: {why}\n")).into_response()
}

/// Whether `Origin` (when present) names the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let origin = origin.to_str().unwrap_or("");
    origin == format!("http://{host}")
}

/// Lets an action through, or says why it is refused (read-only mode first, then
/// CSRF); the caller answers 403 with [`forbidden`].
pub(crate) fn check(state: &AppState, by: AuthBy, headers: &HeaderMap, fields: &Fields) -> Result<(), &'static str> {
    if state.read_only {
        return Err("the dashboard runs with --read-only");
    }
    if by == AuthBy::Bearer {
        return Ok(());
    }
    if !same_origin(headers) {
        return Err("cross-origin request");
    }
    match fields.get(FIELD) {
        Some(token) if same_secret(token, &state.csrf) => Ok(()),
        _ => Err("missing or wrong CSRF token; reload the page and try again"),
    }
}
