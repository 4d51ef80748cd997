//! Masking credentials wherever a URL is shown (errors, `Debug`, `Display`, logs).

/// The URL as it may be shown: everything between `scheme://` and the last `@` (from
/// the start when there is no scheme) becomes `***`, and so does everything after a
/// `?` (a query can carry credentials: `unix:///s.sock?user=u&pass=p`). When a `?` comes
/// before the last `@`, everything after the scheme is masked.
///
/// It never parses the URL: a password is exactly where `/`, `#`, `?` or `@` appear
/// unencoded, and a parser would end the user-info there and show the rest.
pub(crate) fn redact_url(url: &str) -> String {
    let start = url
        .find("://")
        .filter(|&end| is_scheme(&url[..end]))
        .map_or(0, |end| end + 3);
    let scheme = &url[..start];
    let query = url[start..].find('?').map(|q| start + q);
    match url[start..].rfind('@').map(|at| start + at) {
        // A `?` before the last `@`: either the password holds a `?` or the query an `@`;
        // what follows may be the rest of either, so nothing of it is shown.
        Some(at) if query.is_some_and(|q| q < at) => format!("{scheme}***"),
        Some(at) => mask_query(&format!("{scheme}***@{}", &url[at + 1..])),
        None => mask_query(url),
    }
}

/// `url` with everything after its first `?` replaced by `***`.
fn mask_query(url: &str) -> String {
    match url.find('?') {
        Some(q) => format!("{}?***", &url[..q]),
        None => url.to_owned(),
    }
}

/// Whether `s` is a URL scheme (RFC 3986: a letter, then letters, digits, `+ - .`), so
/// that `user:pa://ss@host` is not mistaken for one.
fn is_scheme(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redaction_masks_up_to_the_last_at_whatever_the_credentials_contain() {
        let cases = [
            // The examples: `#`, `/` and `@` unencoded in the password.
            (
                "redis://admin:hun#ter2@127.0.0.1:6399/0",
                "redis://***@127.0.0.1:6399/0",
            ),
            ("redis+cluster://user:p#ss@h1:1,h2:2", "redis+cluster://***@h1:1,h2:2"),
            ("rediss://u:p/ss@host:1/0", "rediss://***@host:1/0"),
            ("redis://u:p?ss@host:1/0", "redis://***"),
            ("redis://us@r:p@ss@host:1/0", "redis://***@host:1/0"),
            ("redis://u:p%40ss@host:1/0", "redis://***@host:1/0"),
            // No scheme (or something before `://` that is no scheme): up to the last `@`.
            ("admin:hunter2@host:6379", "***@host:6379"),
            ("u:pa://ss@host:1", "***@host:1"),
            // Nothing to mask.
            ("redis://host:6379/0", "redis://host:6379/0"),
            ("rediss://host:6379/0#insecure", "rediss://host:6379/0#insecure"),
            ("redis+cluster://h1:1,h2:2", "redis+cluster://h1:1,h2:2"),
            // A query can carry credentials (`unix://...?user=..&pass=..`): it is masked whole.
            (
                "unix:///tmp/r.sock?db=1&user=adm&pass=hun#ter2",
                "unix:///tmp/r.sock?***",
            ),
            ("redis://u:p@host:1/0?protocol=resp3", "redis://***@host:1/0?***"),
            ("unix:///tmp/r.sock?pass=a@b", "unix://***"),
            ("unix:///tmp/r.sock?user=@&pass= %::", "unix://***"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
