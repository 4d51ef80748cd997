//! Access control on every route: `Authorization: Bearer TOKEN`, or the cookie set by a
//! first visit with `?token=TOKEN` (which then redirects to the same URL without the
//! token, so it leaves the address bar and the history). Anything else is 401.
//!
//! Tokens are compared with [`subtle::ConstantTimeEq`], so the time taken does not tell
//! how many leading bytes were right.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::state::Shared;

/// The cookie that carries the token after the first visit.
pub(crate) const COOKIE: &str = "dtredis_dashboard";

/// How the request proved itself; handlers of actions ask for CSRF proof only from
/// cookie-authenticated requests (a browser never adds a Bearer header on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthBy {
    Bearer,
    Cookie,
}

/// Constant-time equality of two secrets (lengths are not secret).
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// The query string without its `token` parameter, and that token if there was one.
fn split_token(query: &str) -> (String, Option<String>) {
    let mut token = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("token=") {
            Some(t) => {
                token = Some(t.to_owned());
                false
            }
            None => !pair.is_empty(),
        })
        .collect();
    (rest.join("&"), token)
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "401 unauthorized: open the URL dtredis printed at start, or send Authorization: Bearer TOKEN\n",
    )
        .into_response()
}

/// The middleware in front of every route.
pub(crate) async fn require_token(State(state): State<Shared>, mut request: Request, next: Next) -> Response {
    let (rest, query_token) = split_token(request.uri().query().unwrap_or(""));
    if let Some(given) = query_token {
        if !same_secret(&given, &state.token) {
            return unauthorized();
        }
        let path = request.uri().path();
        let location = if rest.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{rest}")
        };
        let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", state.token);
        let (Ok(location), Ok(cookie)) = (HeaderValue::from_str(&location), HeaderValue::from_str(&cookie)) else {
            return unauthorized();
        };
        return (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
        )
            .into_response();
    }
    let headers = request.headers();
    let by = if bearer(headers).is_some_and(|t| same_secret(t, &state.token)) {
        AuthBy::Bearer
    } else if cookie(headers).is_some_and(|t| same_secret(t, &state.token)) {
        AuthBy::Cookie
    } else {
        return unauthorized();
    };
    request.extensions_mut().insert(by);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::split_token;

    #[test]
    fn the_token_leaves_the_query_and_the_rest_stays_in_order() {
        assert_eq!(split_token("token=abc"), (String::new(), Some("abc".into())));
        assert_eq!(split_token("a=1&token=t&b=2"), ("a=1&b=2".into(), Some("t".into())));
        assert_eq!(split_token("a=1"), ("a=1".into(), None));
    }
}
