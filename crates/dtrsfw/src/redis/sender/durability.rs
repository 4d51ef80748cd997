//! The durability requirement of a send: `WAIT` and/or `WAITAOF` appended to the pipeline
//! that writes, and the reading of their replies. Pure but for the one-time `WAITAOF`
//! probe, which goes through the same I/O edge as the send.
//!
//! Why in the same pipeline: `WAIT`/`WAITAOF` confirm the writes made *on the connection
//! they run on*. Sent after the `XADD`s in one pipeline, they reach the same server on the
//! same connection, right after the writes (a cluster pipeline goes to the owner of its
//! first key's slot, the channel's primary; `WAIT` has no key and does not move it). A
//! separate command could run on a fresh connection after a reconnect and confirm nothing.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::{Cmd, Pipeline, Value};

use super::EntryId;
use super::edge::SendIo;
use crate::redis::connection::RedisInstance;
use crate::redis::error::{Error, Result};

/// What a send must have confirmed before it returns its IDs. Held by
/// [`SenderOptions`](super::SenderOptions); no requirement by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Durability {
    /// `WAIT <replicas> <timeout>`; 0 = no `WAIT`.
    pub(super) replicas: u32,
    /// `WAITAOF <local> <replicas> <timeout>`, if asked for.
    pub(super) aof: Option<AofRequirement>,
    /// The timeout of each wait command.
    pub(super) timeout: Duration,
}

/// The `WAITAOF` part of a [`Durability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AofRequirement {
    pub(super) local: bool,
    pub(super) replicas: u32,
}

impl Default for Durability {
    fn default() -> Self {
        Durability {
            replicas: 0,
            aof: None,
            timeout: Duration::from_secs(1),
        }
    }
}

/// Whether the server answered the `WAITAOF` probe (per instance, decided once).
#[derive(Default)]
struct AofProbe(OnceLock<()>);

impl Durability {
    /// Whether any wait is asked for.
    pub(super) fn is_required(&self) -> bool {
        self.replicas > 0 || self.aof.is_some()
    }

    fn timeout_ms(&self) -> u64 {
        // 0 would make WAIT block forever; the setter keeps it >= 1 ms, this keeps it so.
        (self.timeout.as_millis() as u64).max(1)
    }

    /// The wait commands, in the order their replies come back.
    fn commands(&self) -> Vec<Cmd> {
        let mut commands = Vec::with_capacity(2);
        if self.replicas > 0 {
            let mut cmd = redis::cmd("WAIT");
            cmd.arg(self.replicas).arg(self.timeout_ms());
            commands.push(cmd);
        }
        if let Some(aof) = self.aof {
            let mut cmd = redis::cmd("WAITAOF");
            cmd.arg(u8::from(aof.local)).arg(aof.replicas).arg(self.timeout_ms());
            commands.push(cmd);
        }
        commands
    }

    /// How many replies the wait commands add to a pipeline.
    pub(super) fn reply_count(&self) -> usize {
        usize::from(self.replicas > 0) + usize::from(self.aof.is_some())
    }

    /// Appends the wait commands to `pipe` (after its `XADD`s).
    pub(super) fn append_to(&self, pipe: &mut Pipeline) {
        for cmd in self.commands() {
            pipe.add_command(cmd);
        }
    }

    /// Refuses a requirement that cannot work on `redis`: the waits, all in one reply
    /// read, must fit in the socket timeout, or the reply would time out (and a retry
    /// write the entries again).
    pub(super) fn check_fits(&self, redis: &RedisInstance) -> Result<()> {
        let socket_timeout = redis.config().redis_socket_timeout();
        let total = self.timeout * self.reply_count() as u32;
        if total >= socket_timeout {
            return Err(Error::invalid_input(format!(
                "the durability timeout ({:?} per wait command, {:?} in all) must be shorter than \
                 redis_socket_timeout ({socket_timeout:?}): a wait longer than the socket timeout \
                 would time out and be sent again",
                self.timeout, total
            )));
        }
        Ok(())
    }

    /// Checks once per instance that the server has `WAITAOF` (Redis >= 7.2, Valkey >= 8.0)
    /// and, when a local fsync is required, that `appendonly` is on: a `WAITAOF` with
    /// nothing to wait for answers at once, or fails as the real one would. Done before
    /// the first write, so a server that cannot confirm refuses without writing.
    pub(super) async fn probe<Io: SendIo>(&self, redis: &RedisInstance, io: &mut Io) -> Result<()> {
        let Some(aof) = self.aof else { return Ok(()) };
        let probe = redis.extension(|| Arc::new(AofProbe::default()));
        if probe.0.get().is_some() {
            return Ok(());
        }
        let mut cmd = redis::cmd("WAITAOF");
        cmd.arg(u8::from(aof.local)).arg(0).arg(1);
        match io
            .query::<Value>(&cmd, &|| "checking that the server has WAITAOF".to_owned())
            .await
        {
            Ok(_) => {
                let _ = probe.0.set(());
                Ok(())
            }
            Err(err) if err.is_transient() => Err(err),
            Err(err) => Err(Error::invalid_input(format!(
                "wait_for_aof needs WAITAOF (Redis >= 7.2, Valkey >= 8.0) and, for a local fsync, \
                 appendonly yes; the server refused it, nothing was written: {err}"
            ))),
        }
    }

    /// Reads the replies of the wait commands. `ids` are every entry the send wrote so
    /// far (all of them go into the error); `what` names the send for the message.
    pub(super) fn check(&self, replies: &[Value], ids: &[EntryId], what: &dyn Fn() -> String) -> Result<()> {
        let unmet: Vec<String> = self
            .expectations()
            .zip(replies)
            .filter_map(|((command, wanted), reply)| unmet(command, wanted, reply))
            .collect();
        if unmet.is_empty() {
            return Ok(());
        }
        Err(Error::not_durable(
            format!(
                "{}: {} entries written but not confirmed durable within {:?}: {}",
                what(),
                ids.len(),
                self.timeout,
                unmet.join("; ")
            ),
            ids.iter().map(EntryId::to_string).collect(),
        ))
    }

    /// Per wait command: its name and the counts it must reach (local, replicas).
    fn expectations(&self) -> impl Iterator<Item = (&'static str, (u32, u32))> {
        let wait = (self.replicas > 0).then_some(("WAIT", (0, self.replicas)));
        let aof = self.aof.map(|a| ("WAITAOF", (u32::from(a.local), a.replicas)));
        wait.into_iter().chain(aof)
    }
}

/// What is missing in one wait reply, or `None` when it is met.
fn unmet(command: &str, (local, replicas): (u32, u32), reply: &Value) -> Option<String> {
    let count = |v: &Value| match v {
        Value::Int(n) => Some(*n),
        _ => None,
    };
    let got = match (command, reply) {
        ("WAIT", v) => count(v).map(|n| (0, n)),
        (_, Value::Array(pair)) if pair.len() == 2 => count(&pair[0]).zip(count(&pair[1])),
        _ => None,
    };
    match got {
        Some((got_local, got_replicas)) if got_local >= i64::from(local) && got_replicas >= i64::from(replicas) => None,
        Some((_, got_replicas)) if command == "WAIT" => {
            Some(format!("WAIT: {got_replicas} of {replicas} replicas acknowledged"))
        }
        Some((got_local, got_replicas)) => Some(format!(
            "WAITAOF: local fsync {}, {got_replicas} of {replicas} replicas fsynced",
            if local == 0 {
                "not required"
            } else if got_local >= 1 {
                "done"
            } else {
                "not done"
            }
        )),
        None => Some(format!("{command} answered {}", describe(reply))),
    }
}

/// A short description of an unexpected reply (a server error keeps its text).
fn describe(reply: &Value) -> String {
    match reply {
        Value::ServerError(err) => format!("an error: {}", redis::RedisError::from(err.clone())),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requirement(replicas: u32, aof: Option<(bool, u32)>) -> Durability {
        Durability {
            replicas,
            aof: aof.map(|(local, replicas)| AofRequirement { local, replicas }),
            timeout: Duration::from_millis(250),
        }
    }

    #[test]
    fn the_wait_commands_follow_the_requirement() {
        let args = |d: &Durability| -> Vec<Vec<String>> {
            d.commands()
                .iter()
                .map(|c| {
                    c.args_iter()
                        .map(|a| match a {
                            redis::Arg::Simple(b) => String::from_utf8(b.to_vec()).unwrap(),
                            _ => unreachable!(),
                        })
                        .collect()
                })
                .collect()
        };
        assert!(!Durability::default().is_required());
        assert_eq!(args(&requirement(2, None)), [["WAIT", "2", "250"]]);
        assert_eq!(
            args(&requirement(1, Some((true, 0)))),
            [vec!["WAIT", "1", "250"], vec!["WAITAOF", "1", "0", "250"]]
        );
        assert_eq!(requirement(0, Some((false, 1))).reply_count(), 1);
    }

    #[test]
    fn a_short_count_is_not_durable_and_carries_every_id() {
        let ids = [EntryId::new(5, 0), EntryId::new(5, 1)];
        let d = requirement(1, Some((true, 1)));
        let met = [Value::Int(1), Value::Array(vec![Value::Int(1), Value::Int(1)])];
        assert!(d.check(&met, &ids, &|| "x".into()).is_ok());
        let short = [Value::Int(0), Value::Array(vec![Value::Int(1), Value::Int(0)])];
        let err = d.check(&short, &ids, &|| "sending".into()).unwrap_err();
        assert!(err.is_not_durable() && !err.is_transient(), "{err}");
        assert_eq!(err.written_ids(), ids);
        assert!(err.to_string().contains("WAIT: 0 of 1 replicas"), "{err}");
        assert!(err.to_string().contains("WAITAOF: local fsync done, 0 of 1"), "{err}");
    }
}
