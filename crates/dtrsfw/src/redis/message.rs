//! `Message`: the stream entry format shared with the Python package.
//!
//! An entry has the field `name` (text) and the field `body` (JSON text), exactly what
//! `dtpyfw`'s `Message.get_json_encoded()` writes. Readers ignore other fields, so
//! later features may add some. Encoding and decoding live here once, for the sender,
//! the consumer and the command-line tool.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{Error, Result};

/// The stream field holding the message name.
pub const FIELD_NAME: &str = "name";
/// The stream field holding the JSON body.
pub const FIELD_BODY: &str = "body";

/// A named event with a JSON body, as published to and read from a stream.
///
/// The body is serialized once, when the message is built, so a message sent many times
/// (or to many channels) is encoded once.
///
/// ```
/// use dtrsfw::redis::Message;
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Order { id: u64 }
///
/// let msg = Message::new("order.created", &Order { id: 1 })?;
/// assert_eq!(msg.name(), "order.created");
/// assert_eq!(msg.body_json(), r#"{"id":1}"#);
/// assert_eq!(msg.body_as::<Order>()?, Order { id: 1 });
/// # Ok::<(), dtrsfw::redis::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    name: String,
    body: String,
}

impl fmt::Debug for Message {
    // The body may hold personal data: Debug shows its size, not its content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("name", &self.name)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl Message {
    /// A message named `name` whose body is `body` serialized as JSON.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](super::ErrorKind::InvalidInput) when the name is empty;
    /// [`ErrorKind::Serialization`](super::ErrorKind::Serialization) when the body cannot be
    /// serialized.
    pub fn new(name: impl Into<String>, body: &impl Serialize) -> Result<Self> {
        let name = name.into();
        if name.is_empty() {
            return Err(Error::invalid_input("message name is empty"));
        }
        let body = serde_json::to_string(body)
            .map_err(|e| Error::serialization(format!("serializing the body of message {name:?}"), &e))?;
        Ok(Message { name, body })
    }

    /// A message from a body that is already JSON text; the text is checked.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](super::ErrorKind::InvalidInput) when the name is empty;
    /// [`ErrorKind::Serialization`](super::ErrorKind::Serialization) when the body is not
    /// JSON.
    pub fn from_json(name: impl Into<String>, body_json: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let body = body_json.into();
        if name.is_empty() {
            return Err(Error::invalid_input("message name is empty"));
        }
        serde_json::from_str::<serde::de::IgnoredAny>(&body)
            .map_err(|e| Error::serialization(format!("body of message {name:?} is not JSON"), &e))?;
        Ok(Message { name, body })
    }

    /// The message name (the event type handlers route on).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The body as JSON text, as stored in the `body` field.
    #[must_use]
    pub fn body_json(&self) -> &str {
        &self.body
    }

    /// The body decoded as `T`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Serialization`](super::ErrorKind::Serialization) when the body does not
    /// decode as `T`, naming the message.
    pub fn body_as<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.body)
            .map_err(|e| Error::serialization(format!("decoding the body of message {:?}", self.name), &e))
    }

    /// The body as a generic JSON value.
    #[must_use]
    pub fn body(&self) -> serde_json::Value {
        // The body was checked to be JSON when the message was built or decoded.
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The stream fields, as `dtpyfw`'s `get_json_encoded()`: `name` and `body`.
    #[must_use]
    pub fn get_json_encoded(&self) -> [(&'static str, &str); 2] {
        [(FIELD_NAME, &self.name), (FIELD_BODY, &self.body)]
    }

    /// Appends this message's entry fields (`name <name> body <body>`) to an `XADD` whose
    /// key, options and ID are already written: the one place an entry is encoded, for
    /// the sender, the dead-letter writer and the dead-letter replay.
    pub(crate) fn write_xadd_fields(&self, xadd: &mut redis::Cmd) {
        for (field, value) in self.get_json_encoded() {
            xadd.arg(field).arg(value);
        }
    }

    /// Decodes a stream entry's fields. Unknown fields are ignored. The error says why
    /// the entry is malformed; such entries belong in the dead-letter stream.
    ///
    /// ```
    /// use dtrsfw::redis::message::{Malformed, Message};
    ///
    /// let ok = Message::from_fields([(&b"name"[..], &b"a"[..]), (b"body", b"{}"), (b"extra", b"x")]);
    /// assert_eq!(ok.unwrap().name(), "a");
    /// let bad = Message::from_fields([(&b"name"[..], &b"a"[..])]);
    /// assert_eq!(bad.unwrap_err(), Malformed::MissingBody);
    /// ```
    ///
    /// # Errors
    ///
    /// A [`Malformed`] saying what is wrong: a missing, empty or non-UTF-8 `name`, a
    /// missing or non-UTF-8 `body`, a `body` that is not JSON.
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Result<Self, Malformed> {
        let (name, body) = Self::text_fields(fields)?;
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(body) {
            return Err(Malformed::BodyNotJson(e.to_string()));
        }
        Ok(Message {
            name: name.to_owned(),
            body: body.to_owned(),
        })
    }

    /// [`from_fields`](Self::from_fields), also giving the body decoded as a JSON value:
    /// for a consumer whose handlers take the payload, one parse both checks the body and
    /// decodes it (instead of a check at the read and a decode in the handler).
    pub(crate) fn from_fields_decoded<'a>(
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<(Self, serde_json::Value), Malformed> {
        let (name, body) = Self::text_fields(fields)?;
        let value = serde_json::from_str(body).map_err(|e| Malformed::BodyNotJson(e.to_string()))?;
        let message = Message {
            name: name.to_owned(),
            body: body.to_owned(),
        };
        Ok((message, value))
    }

    /// The `name` and `body` fields as text, checked but for the body's JSON.
    fn text_fields<'a>(
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<(&'a str, &'a str), Malformed> {
        let (mut name, mut body) = (None, None);
        for (key, value) in fields {
            match key {
                b"name" => name = Some(value),
                b"body" => body = Some(value),
                _ => {}
            }
        }
        let name = std::str::from_utf8(name.ok_or(Malformed::MissingName)?).map_err(|_| Malformed::NameNotUtf8)?;
        let body = std::str::from_utf8(body.ok_or(Malformed::MissingBody)?).map_err(|_| Malformed::BodyNotUtf8)?;
        if name.is_empty() {
            return Err(Malformed::EmptyName);
        }
        Ok((name, body))
    }
}

/// Appends the message fields (`name`, `body`) of a raw stream entry to an `XADD`, bytes
/// as read and in their order, dropping every other field. For the dead-letter writer,
/// which must keep a malformed entry as it was (so it cannot go through [`Message`]).
pub(crate) fn write_xadd_entry_fields(xadd: &mut redis::Cmd, fields: &[(Vec<u8>, Vec<u8>)]) {
    for (key, value) in fields {
        if key.as_slice() == FIELD_NAME.as_bytes() || key.as_slice() == FIELD_BODY.as_bytes() {
            xadd.arg(key).arg(value);
        }
    }
}

/// Why a stream entry could not be decoded into a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// No `name` field.
    #[error("entry has no `name` field")]
    MissingName,
    /// No `body` field.
    #[error("entry has no `body` field")]
    MissingBody,
    /// `name` is empty.
    #[error("entry has an empty `name`")]
    EmptyName,
    /// `name` is not UTF-8.
    #[error("entry `name` is not UTF-8")]
    NameNotUtf8,
    /// `body` is not UTF-8.
    #[error("entry `body` is not UTF-8")]
    BodyNotUtf8,
    /// `body` is not JSON.
    #[error("entry `body` is not JSON: {0}")]
    BodyNotJson(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cmd: &redis::Cmd) -> Vec<Vec<u8>> {
        cmd.args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                _ => b"<cursor>".to_vec(),
            })
            .collect()
    }

    #[test]
    fn xadd_fields_are_the_python_fields() {
        let mut xadd = redis::cmd("XADD");
        Message::from_json("n", r#"{"a":1}"#)
            .unwrap()
            .write_xadd_fields(&mut xadd);
        assert_eq!(args(&xadd), [&b"XADD"[..], b"name", b"n", b"body", br#"{"a":1}"#]);
    }

    #[test]
    fn raw_entry_fields_keep_name_and_body_bytes_only() {
        let fields = [
            (b"x".to_vec(), b"1".to_vec()),
            (b"body".to_vec(), vec![0xff]),
            (b"name".to_vec(), b"".to_vec()),
        ];
        let mut xadd = redis::cmd("XADD");
        write_xadd_entry_fields(&mut xadd, &fields);
        assert_eq!(args(&xadd), [&b"XADD"[..], b"body", &[0xff], b"name", b""]);
    }
}
