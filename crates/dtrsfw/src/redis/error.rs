//! The library's one error type.
//!
//! Like redis-rs, the error is opaque: callers branch on [`Error::kind`] or on a
//! classifier such as [`Error::is_timeout`], never on message text. Messages name the
//! problem (the field, the channel, the command) but never carry a credential: errors are
//! built from our own words plus the redis-rs error, a URL is shown masked, and for a URL
//! redis-rs refuses only its fixed description is kept (its detail can quote the input).
//!
//! One error type for the whole library, opaque, with [`Error::kind`] and classifiers:
//! [`Error::is_connection`], [`Error::is_timeout`], [`Error::is_authentication`],
//! [`Error::is_permission`], [`Error::is_configuration`], [`Error::is_response`],
//! [`Error::is_serialization`], [`Error::is_not_durable`] (with [`Error::written_ids`]), [`Error::is_transient`], and [`Error::server_code`]
//! (`NOGROUP`, `BUSYGROUP`, …). No message, `Debug` or `Display` output ever contains a
//! user name or password.

use std::fmt;

/// What went wrong, broadly. Returned by [`Error::kind`].
///
/// ```
/// use dtrsfw::redis::{ErrorKind, RedisConfig, RedisInstance};
///
/// let err = RedisInstance::new(RedisConfig::new().set_redis_port(0)).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Configuration);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is invalid; the message names the field.
    Configuration,
    /// The server could not be reached, or the connection broke.
    Connection,
    /// The server did not answer within the configured time (or a pool had no free
    /// connection in time).
    Timeout,
    /// The server refused the credentials.
    Authentication,
    /// The server refused the command for this user (ACL `NOPERM`).
    Permission,
    /// The server answered with an error, or with a reply of an unexpected shape.
    Response,
    /// A value could not be serialized or deserialized.
    Serialization,
    /// The caller used the API in a way it does not allow (unregistered channel, empty
    /// name, ...); the message names the problem.
    InvalidInput,
    /// A send WAS written but its durability requirement (`WAIT`, `WAITAOF`, see
    /// [`SenderOptions::set_wait_for_replicas`](crate::redis::sender::SenderOptions::set_wait_for_replicas))
    /// was not confirmed in time; [`Error::written_ids`] lists the entries written. Not
    /// transient: sending again would write the entries a second time.
    NotDurable,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Configuration => "invalid configuration",
            ErrorKind::Connection => "connection error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Authentication => "authentication failed",
            ErrorKind::Permission => "permission denied",
            ErrorKind::Response => "server error",
            ErrorKind::Serialization => "serialization error",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::NotDurable => "written but not confirmed durable",
        })
    }
}

/// The error of every fallible operation in `dtrsfw`.
///
/// ```
/// use dtrsfw::redis::{RedisConfig, RedisInstance};
///
/// let err = RedisInstance::new(RedisConfig::new().set_redis_host("h").set_redis_db("two")).unwrap_err();
/// assert!(err.is_configuration());
/// assert!(err.to_string().contains("redis_db"));
/// ```
///
/// The message already ends with the text of the underlying error (redis-rs, JSON), so
/// [`source`](std::error::Error::source) returns `None`: a printer of the whole chain
/// (anyhow's `{:#}`, an error reporter) shows each cause once, not once per layer.
///
/// It is `Clone`, so one outcome can be handed to several callers (one connect awaited by
/// many tasks).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// The redis-rs error, kept to classify this one ([`Error::server_code`],
    /// [`Error::is_transient`]); not exposed as the source: its text is in `message`
    /// already. (Other causes, such as a JSON error, are only text: nothing reads them.)
    cause: Option<redis::RedisError>,
    /// The IDs (`<ms>-<seq>`) of the entries a [`ErrorKind::NotDurable`] send wrote; read
    /// typed by [`Error::written_ids`] (in `entry_id.rs`: this layer knows no entry ID).
    written: Option<std::sync::Arc<[String]>>,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message that names the problem.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            cause: None,
            written: None,
        }
    }

    /// Entries were written (`ids`, as text) but not confirmed durable: `message` says
    /// which requirement was not met.
    pub(crate) fn not_durable(message: impl Into<String>, ids: Vec<String>) -> Self {
        Error {
            written: Some(ids.into()),
            ..Error::new(ErrorKind::NotDurable, message)
        }
    }

    /// The IDs of [`Error::written_ids`] as text.
    pub(crate) fn written_id_text(&self) -> &[String] {
        self.written.as_deref().unwrap_or_default()
    }

    /// An error in the configuration field `field`.
    pub(crate) fn config(field: &str, problem: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Configuration, format!("{field}: {problem}"))
    }

    /// An API misuse, such as an empty channel name.
    pub(crate) fn invalid_input(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    /// Wraps a redis-rs error, saying what we were doing (`context`).
    pub(crate) fn redis(context: impl fmt::Display, err: redis::RedisError) -> Self {
        let kind = classify(&err);
        Error {
            kind,
            message: format!("{context}: {err}"),
            cause: Some(err),
            written: None,
        }
    }

    /// Wraps a JSON error, saying what we were doing.
    pub(crate) fn serialization(context: impl fmt::Display, err: &serde_json::Error) -> Self {
        Error::new(ErrorKind::Serialization, format!("{context}: {err}"))
    }

    /// A timeout while doing `context`.
    pub(crate) fn timeout(context: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Timeout, context.to_string())
    }

    /// What kind of error this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The server could not be reached or the connection broke.
    #[must_use]
    pub fn is_connection(&self) -> bool {
        self.kind == ErrorKind::Connection
    }

    /// The operation ran out of time.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// Credentials were refused.
    #[must_use]
    pub fn is_authentication(&self) -> bool {
        self.kind == ErrorKind::Authentication
    }

    /// An ACL refused the command.
    #[must_use]
    pub fn is_permission(&self) -> bool {
        self.kind == ErrorKind::Permission
    }

    /// The configuration is invalid.
    #[must_use]
    pub fn is_configuration(&self) -> bool {
        self.kind == ErrorKind::Configuration
    }

    /// The server answered with an error or an unexpected reply.
    #[must_use]
    pub fn is_response(&self) -> bool {
        self.kind == ErrorKind::Response
    }

    /// The entries were written but their durability requirement was not confirmed in
    /// time ([`ErrorKind::NotDurable`]); see [`Error::written_ids`].
    #[must_use]
    pub fn is_not_durable(&self) -> bool {
        self.kind == ErrorKind::NotDurable
    }

    /// A value could not be (de)serialized.
    #[must_use]
    pub fn is_serialization(&self) -> bool {
        self.kind == ErrorKind::Serialization
    }

    /// The error is worth retrying: the connection broke or the server did not answer
    /// in time, or the server is loading or failing over. On a cluster this includes a
    /// `MOVED`/`ASK` redirection that redis-rs could not follow in time (the slot's owner
    /// was being replaced): the command did not run, so sending it again is safe.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Connection | ErrorKind::Timeout)
            || self.redis_error().is_some_and(|e| {
                matches!(
                    e.code(),
                    Some("LOADING" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN" | "READONLY" | "MOVED" | "ASK")
                )
            })
    }

    /// The server's error code (`NOGROUP`, `BUSYGROUP`, `WRONGTYPE`, ...), if the server
    /// answered with an error.
    #[must_use]
    pub fn server_code(&self) -> Option<&str> {
        self.redis_error().and_then(|e| e.code())
    }

    fn redis_error(&self) -> Option<&redis::RedisError> {
        self.cause.as_ref()
    }
}

/// Maps a redis-rs error onto our kinds.
pub(crate) fn classify(err: &redis::RedisError) -> ErrorKind {
    use redis::{ErrorKind as K, ServerErrorKind as S};
    if err.is_timeout() {
        return ErrorKind::Timeout;
    }
    if err.is_connection_refusal() || err.is_connection_dropped() || err.is_io_error() {
        return ErrorKind::Connection;
    }
    match err.kind() {
        K::AuthenticationFailed => ErrorKind::Authentication,
        K::Server(S::NoPerm) => ErrorKind::Permission,
        K::InvalidClientConfig => ErrorKind::Configuration,
        // No primary named by the Sentinels (yet): a failover under way, so transient.
        K::Io | K::ClusterConnectionNotFound | K::MasterNameNotFoundBySentinel | K::NoValidReplicasFoundBySentinel => {
            ErrorKind::Connection
        }
        _ => match err.code() {
            Some("WRONGPASS" | "NOAUTH") => ErrorKind::Authentication,
            Some("NOPERM") => ErrorKind::Permission,
            _ => ErrorKind::Response,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cause once: the text of the redis-rs error is in the message, so it is not
    /// also the source (a chain printer would repeat it).
    #[test]
    fn the_wrapped_error_is_in_the_message_and_not_repeated_by_the_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let err = Error::redis("reading orders", redis::RedisError::from(io));
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(std::error::Error::source(&err).is_none());
        assert_eq!(err.to_string().matches("reset by peer").count(), 1, "{err}");
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        let err = Error::serialization("decoding", &json);
        assert!(std::error::Error::source(&err).is_none());
        assert_eq!(
            err.to_string(),
            "serialization error: decoding: expected value at line 1 column 1"
        );
    }
}
