//! The one retry decision of every client (pooled guard, sync handle, async client):
//! which commands may be sent a second time after a failure that may mean no answer came.
//!
//! Kept apart from the clients so that the list of safe commands and the test on the
//! error exist once; each client only asks [`may_retry`] and [`is_retryable_failure`].

use redis::Cmd;

use crate::redis::error::Error;

/// Commands that may be sent again after a timeout or a lost connection without changing
/// the outcome: reads, and writes whose repetition leaves the same state. Anything not
/// listed (`XADD`, `INCR`, `XREADGROUP`, `EVAL`, ...) is never retried automatically.
const SAFE_TO_RETRY: &[&str] = &[
    "PING",
    "GET",
    "MGET",
    "EXISTS",
    "TTL",
    "PTTL",
    "TYPE",
    "STRLEN",
    "HGET",
    "HGETALL",
    "HMGET",
    "SCAN",
    "INFO",
    "XLEN",
    "XRANGE",
    "XREVRANGE",
    "XINFO",
    "XPENDING",
    "SET",
    "SETEX",
    "PSETEX",
    "DEL",
    "UNLINK",
    "EXPIRE",
    "PEXPIRE",
    "XACK",
    "XTRIM",
    "XDEL",
    "CLIENT",
    "TIME",
    "DBSIZE",
    "MEMORY",
];

fn is_safe_to_retry(name: &[u8]) -> bool {
    SAFE_TO_RETRY
        .iter()
        .any(|safe| safe.as_bytes().eq_ignore_ascii_case(name))
}

/// The first word of a RESP-packed command (`*N\r\n$len\r\nNAME\r\n...`).
pub(super) fn packed_command_name(packed: &[u8]) -> Option<&[u8]> {
    let mut lines = packed.split(|&b| b == b'\n');
    lines.next()?; // *N
    lines.next()?; // $len
    lines.next().map(|name| name.strip_suffix(b"\r").unwrap_or(name))
}

/// The first word of a command (its name), if it is a plain argument.
pub(super) fn command_name(cmd: &Cmd) -> Option<&[u8]> {
    match cmd.args_iter().next()? {
        redis::Arg::Simple(name) => Some(name),
        _ => None,
    }
}

/// Whether the command named `name` is sent a second time after a retryable failure:
/// the one retry decision of every client (pooled guard, sync handle, async client).
pub(super) fn may_retry(retry_on_timeout: bool, name: Option<&[u8]>) -> bool {
    retry_on_timeout && name.is_some_and(is_safe_to_retry)
}

/// Whether an error means "the request may never have been answered": the case that
/// `retry_on_timeout` covers.
pub(super) fn is_retryable_failure(err: &redis::RedisError) -> bool {
    err.is_timeout() || err.is_connection_dropped() || err.is_io_error()
}

/// Our pool errors travel through redis-rs's `ConnectionLike` as I/O errors, keeping
/// their message (and, for a timeout, their kind: the retry decision reads it).
pub(super) fn to_redis_error(err: &Error) -> redis::RedisError {
    let kind = if err.is_timeout() {
        std::io::ErrorKind::TimedOut
    } else {
        std::io::ErrorKind::Other
    };
    std::io::Error::new(kind, err.to_string()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_name_is_read_from_packed_bytes() {
        let packed = redis::cmd("get").arg("k").get_packed_command();
        assert_eq!(packed_command_name(&packed), Some(&b"get"[..]));
        assert!(is_safe_to_retry(b"get"));
        assert!(!is_safe_to_retry(b"XADD"));
    }
}
