//! The commands a send is made of (`XADD`, a pipeline of them) and the reading of their
//! replies. Pure: no I/O, so both edges send exactly these.

use std::fmt;
use std::time::SystemTime;

use redis::{Cmd, Pipeline, Value};

use super::{EntryId, Message, Retention};
use crate::redis::error::{Error, ErrorKind, Result};
use crate::redis::observe::TraceFields;

/// `XADD <channel> [MAXLEN|MINID ~ bound] * name <name> body <body> [traceparent <tp>
/// [tracestate <ts>]]` (the trace fields with feature `opentelemetry`, inside a traced span).
pub(super) fn xadd(channel: &str, retention: Option<Retention>, message: &Message, now: SystemTime) -> Cmd {
    xadd_traced(channel, retention, message, now, &TraceFields::current())
}

/// [`xadd`] with the trace context to carry (taken once per pipeline, not per entry).
fn xadd_traced(
    channel: &str,
    retention: Option<Retention>,
    message: &Message,
    now: SystemTime,
    trace: &TraceFields,
) -> Cmd {
    // Sized once for the command (a trim included; trace fields may grow it once): built
    // up from empty, its buffers would be reallocated several times per send.
    let [(name_field, name), (body_field, body)] = message.get_json_encoded();
    let data = channel.len() + name_field.len() + name.len() + body_field.len() + body.len() + 64;
    let mut cmd = Cmd::with_capacity(15, data);
    cmd.arg("XADD").arg(channel);
    if let Some(retention) = retention {
        retention.write_xadd_trim(&mut cmd, now);
    }
    cmd.arg("*");
    message.write_xadd_fields(&mut cmd);
    trace.write_xadd(&mut cmd);
    cmd
}

/// One pipeline of `XADD`s for a chunk of a batch.
pub(super) fn xadd_pipeline(
    channel: &str,
    retention: Option<Retention>,
    messages: &[Message],
    now: SystemTime,
) -> Pipeline {
    let mut pipe = redis::Pipeline::with_capacity(messages.len());
    // Per-command replies, so a refused XADD keeps its server code (see `parse_ids`).
    pipe.ignore_errors();
    let trace = TraceFields::current();
    for message in messages {
        pipe.add_command(xadd_traced(channel, retention, message, now, &trace));
    }
    pipe
}

/// The entry ID in an `XADD` reply.
pub(super) fn parse_id(reply: &Value) -> Result<EntryId> {
    let parsed = match reply {
        Value::BulkString(bytes) => EntryId::parse_bytes(bytes),
        Value::SimpleString(text) => EntryId::parse_bytes(text.as_bytes()),
        _ => None,
    };
    parsed.ok_or_else(|| {
        Error::new(
            ErrorKind::Response,
            format!("XADD answered {reply:?} instead of an entry ID"),
        )
    })
}

/// The entry IDs in the replies of a pipeline of `expected` `XADD`s, appended to `ids`. A
/// refused `XADD` becomes the error, with its server code (so `LOADING` is still seen as
/// transient), in the words of `context` plus which message was refused and how many of
/// the chunk were written.
pub(super) fn parse_ids(
    replies: &[Value],
    expected: usize,
    ids: &mut Vec<EntryId>,
    context: &dyn Fn() -> String,
) -> Result<()> {
    if replies.len() != expected {
        return Err(Error::new(
            ErrorKind::Response,
            format!("{}: {} replies to {expected} XADD", context(), replies.len()),
        ));
    }
    let refused = replies.iter().enumerate().find_map(|(index, reply)| match reply {
        Value::ServerError(err) => Some((index, err)),
        _ => None,
    });
    if let Some((refused, err)) = refused {
        let written = replies.iter().filter(|r| !matches!(r, Value::ServerError(_))).count();
        return Err(Error::redis(
            format!(
                "{}: message {refused} of the chunk was refused, {written} of the chunk written",
                context()
            ),
            err.clone().into(),
        ));
    }
    for reply in replies {
        ids.push(parse_id(reply)?);
    }
    Ok(())
}

/// What a chunk of a batch is, for error messages: which messages, and how many were
/// written before.
pub(super) struct ChunkLabel {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) total: usize,
}

impl fmt::Display for ChunkLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.total == 1 {
            // A single message sent as a pipeline (with its durability waits).
            return f.write_str("sending a message");
        }
        write!(
            f,
            "sending messages {}..{} of a batch of {} ({} written before)",
            self.start, self.end, self.total, self.start
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn xadd_carries_retention_then_the_python_fields() {
        let message = Message::from_json("n", r#"{"a":1}"#).unwrap();
        let now = UNIX_EPOCH + Duration::from_millis(10_000);
        let args = |cmd: &Cmd| -> Vec<String> {
            cmd.args_iter()
                .map(|a| match a {
                    redis::Arg::Simple(b) => String::from_utf8(b.to_vec()).unwrap(),
                    _ => "<cursor>".into(),
                })
                .collect()
        };
        assert_eq!(
            args(&xadd("s", None, &message, now)),
            ["XADD", "s", "*", "name", "n", "body", r#"{"a":1}"#]
        );
        assert_eq!(
            args(&xadd("s", Some(Retention::MaxLen(5)), &message, now))[..6],
            ["XADD", "s", "MAXLEN", "~", "5", "*"]
        );
        assert_eq!(
            args(&xadd(
                "s",
                Some(Retention::MinAge(Duration::from_secs(4))),
                &message,
                now
            ))[..6],
            ["XADD", "s", "MINID", "~", "6000", "*"]
        );
    }

    #[test]
    fn a_reply_that_is_not_an_entry_id_is_a_response_error() {
        // The strict parse itself is tested in entry_id.rs.
        assert!(parse_id(&Value::Nil).unwrap_err().is_response());
    }
}
