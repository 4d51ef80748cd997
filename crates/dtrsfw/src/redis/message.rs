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
    /// An invalid-input error when the name is empty, a serialization error when the
    /// body cannot be serialized.
    pub fn new(name: impl Into<String>, body: &impl Serialize) -> Result<Self> {
        let name = name.into();
        if name.is_empty() {
            return Err(Error::invalid_input("message name is empty"));
        }
        let body = serde_json::to_string(body)
            .map_err(|e| Error::serialization(format!("serializing the body of message {name:?}"), e))?;
        Ok(Message { name, body })
    }

    /// A message from a body that is already JSON text; the text is checked.
    ///
    /// # Errors
    ///
    /// An invalid-input error when the name is empty, a serialization error when the
    /// text is not JSON.
    pub fn from_json(name: impl Into<String>, body_json: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let body = body_json.into();
        if name.is_empty() {
            return Err(Error::invalid_input("message name is empty"));
        }
        serde_json::from_str::<serde::de::IgnoredAny>(&body)
            .map_err(|e| Error::serialization(format!("body of message {name:?} is not JSON"), e))?;
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
    /// A serialization error when the body does not decode as `T`.
    pub fn body_as<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.body)
            .map_err(|e| Error::serialization(format!("decoding the body of message {:?}", self.name), e))
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

    /// Decodes a stream entry's fields. Unknown fields are ignored.
    ///
    /// # Errors
    ///
    /// A [`Malformed`] saying why the entry is malformed (a field missing or not UTF-8,
    /// an empty name, a body that is not JSON); such entries belong in the dead-letter
    /// stream.
    ///
    /// ```
    /// use dtrsfw::redis::message::{Malformed, Message};
    ///
    /// let ok = Message::from_fields([(&b"name"[..], &b"a"[..]), (b"body", b"{}"), (b"extra", b"x")]);
    /// assert_eq!(ok.unwrap().name(), "a");
    /// let bad = Message::from_fields([(&b"name"[..], &b"a"[..])]);
    /// assert_eq!(bad.unwrap_err(), Malformed::MissingBody);
    /// ```
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Result<Self, Malformed> {
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
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(body) {
            return Err(Malformed::BodyNotJson(e.to_string()));
        }
        Ok(Message {
            name: name.to_owned(),
            body: body.to_owned(),
        })
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
