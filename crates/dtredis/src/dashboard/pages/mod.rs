//! Server-rendered pages (maud). Maud escapes every interpolated value by default, so
//! names, bodies and errors read from Redis always render as text; the only raw HTML is
//! the page skeleton written here.

pub(crate) mod caches;
pub(crate) mod confirm;
pub(crate) mod dlq;
pub(crate) mod overview;
pub(crate) mod stream;

use axum::response::Html;
use maud::{DOCTYPE, Markup, html};

use super::csrf;
use super::state::AppState;

/// The page skeleton: navigation, styles and the script, all served from the binary.
pub(crate) fn layout(state: &AppState, title: &str, body: &Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · dtredis dashboard" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/app.js" defer {}
            }
            body {
                header {
                    nav {
                        strong { "dtredis" }
                        a href="/" { "Streams" }
                        a href="/caches" { "Caches" }
                        a href="/metrics" { "Metrics" }
                        @if state.read_only { span.badge { "read-only" } }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string())
}

/// The hidden CSRF field of an action form.
pub(crate) fn csrf_input(state: &AppState) -> Markup {
    html! { input type="hidden" name=(csrf::FIELD) value=(state.csrf); }
}

/// Percent-encodes a query value (everything but the unreserved characters).
pub(crate) fn enc(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A duration in milliseconds, short (`850ms`, `12.3s`, `4m 05s`, `2h 07m`).
pub(crate) fn duration(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS` UTC.
pub(crate) fn timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let t = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// A body pretty-printed when it is JSON, else as it is.
pub(crate) fn pretty(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_owned())
}

/// The points of a sparkline polyline, 120 × 24, scaled to `max`.
pub(crate) fn points(values: &[f64], max: f64) -> String {
    let n = values.len().max(2) - 1;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * 120.0 / n as f64, 24.0 - v / max * 22.0))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A small chart of the in (blue) and out (green) rates of the last minutes.
pub(crate) fn sparkline(stream: &str, ins: &[f64], outs: &[f64]) -> Markup {
    let max = ins.iter().chain(outs).copied().fold(1.0, f64::max);
    html! {
        svg.spark width="120" height="24" viewBox="0 0 120 24" data-spark=(stream) {
            polyline.in points=(points(ins, max)) {}
            polyline.out points=(points(outs, max)) {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{duration, enc, timestamp};

    #[test]
    fn formats() {
        assert_eq!(enc("a b&c:/é"), "a%20b%26c%3A%2F%C3%A9");
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(125_000), "2m 05s");
        assert_eq!(timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(timestamp(1_700_000_000_000), "2023-11-14 22:13:20");
    }
}
