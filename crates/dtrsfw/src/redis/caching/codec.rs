//! The stored form of a value: zlib-compressed JSON, as the Python package writes it.

use std::io::{Read, Write};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::pyjson;
use crate::redis::error::{Error, ErrorKind, Result};

/// The stored form of a value: zlib-compressed JSON in Python formatting. Also returns
/// the JSON, which single-flight waiters decode.
pub(super) fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<(Arc<[u8]>, Vec<u8>)> {
    let json = pyjson::to_python_json(value).map_err(|e| Error::serialization("encoding the cached value", &e))?;
    let mut encoder =
        flate2::write::ZlibEncoder::new(Vec::with_capacity(json.len() / 2 + 16), flate2::Compression::default());
    encoder
        .write_all(json.as_bytes())
        .and_then(|()| encoder.finish())
        .map(|compressed| (Arc::from(json.into_bytes()), compressed))
        .map_err(|e| Error::new(ErrorKind::Serialization, format!("compressing the cached value: {e}")))
}

/// The value stored in `raw` (zlib-compressed JSON, any formatting), with its JSON.
pub(super) fn decode_value<T: DeserializeOwned>(raw: &[u8]) -> Result<(T, Arc<[u8]>)> {
    let mut json = Vec::with_capacity(raw.len() * 4);
    flate2::read::ZlibDecoder::new(raw)
        .read_to_end(&mut json)
        .map_err(|e| Error::new(ErrorKind::Serialization, format!("cached value is not zlib data: {e}")))?;
    let value = serde_json::from_slice(&json).map_err(|e| Error::serialization("decoding the cached value", &e))?;
    Ok((value, Arc::from(json)))
}
