//! Handlers and what they receive.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;

use crate::redis::entry_id::EntryId;
use crate::redis::error::Result;
use crate::redis::message::Message;
use crate::redis::observe::TraceFields;

/// One delivery of a stream entry to the handlers of a channel.
///
/// Cheap to clone (the entry is shared). `Debug` shows the name and size, never the body.
#[derive(Clone)]
pub struct Delivery {
    inner: Arc<DeliveryInner>,
}

struct DeliveryInner {
    channel: Arc<str>,
    id: EntryId,
    message: Message,
    deliveries: u64,
    payload: OnceLock<serde_json::Value>,
    /// The producer's trace context (feature `opentelemetry`; zero-sized without).
    trace: TraceFields,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("channel", &self.inner.channel)
            .field("id", &self.inner.id)
            .field("message", &self.inner.message)
            .field("deliveries", &self.inner.deliveries)
            .finish()
    }
}

impl Delivery {
    /// A delivery; `payload` is the body already decoded, when it was (see `admit`).
    pub(crate) fn new(
        channel: Arc<str>,
        id: EntryId,
        message: Message,
        deliveries: u64,
        payload: Option<serde_json::Value>,
        trace: TraceFields,
    ) -> Self {
        Delivery {
            inner: Arc::new(DeliveryInner {
                channel,
                id,
                message,
                deliveries,
                payload: payload.map_or_else(OnceLock::new, OnceLock::from),
                trace,
            }),
        }
    }

    /// The channel (stream key) the entry was read from.
    #[must_use]
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// The entry ID.
    #[must_use]
    pub fn id(&self) -> EntryId {
        self.inner.id
    }

    /// The decoded message.
    #[must_use]
    pub fn message(&self) -> &Message {
        &self.inner.message
    }

    /// The message name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.inner.message.name()
    }

    /// How many times the entry has been delivered to this service, this delivery
    /// included (1 on the first delivery; more after failures or a dead instance).
    #[must_use]
    pub fn deliveries(&self) -> u64 {
        self.inner.deliveries
    }

    pub(crate) fn trace(&self) -> &TraceFields {
        &self.inner.trace
    }

    /// The body as a JSON value, decoded once per entry however many handlers ask.
    #[must_use]
    pub fn payload(&self) -> &serde_json::Value {
        self.inner.payload.get_or_init(|| self.inner.message.body())
    }

    /// The body decoded as `T`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Serialization`](crate::redis::ErrorKind::Serialization) when the body
    /// does not decode as `T`.
    pub fn body_as<T: DeserializeOwned>(&self) -> Result<T> {
        self.inner.message.body_as()
    }
}

pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
pub(crate) type SyncFn = dyn Fn(&Delivery) -> Result<(), String> + Send + Sync;
pub(crate) type AsyncFn = dyn Fn(Delivery) -> HandlerFuture + Send + Sync;

/// A registered handler. Errors are kept as text: that is all the dead-letter stream and
/// the logs need, and it lets handlers return any `Display` error.
#[derive(Clone)]
pub(crate) enum Handler {
    Sync(Arc<SyncFn>),
    Async(Arc<AsyncFn>),
}

/// Runs every handler of the channel on one delivery, in registration order, stopping at
/// the first failure. A sync handler runs inline when the channel handles one entry at a
/// time (no thread hop, order kept); with parallelism it runs on tokio's blocking pool so
/// that several blocking handlers really run at once without starving the runtime.
/// A panic inline is caught by the caller's `catch_unwind` wrapper, one on the blocking
/// pool by its `JoinError`; both become a failure of this entry only.
pub(crate) async fn run_handlers(handlers: &[Handler], delivery: &Delivery, blocking_pool: bool) -> Result<(), String> {
    for handler in handlers {
        match handler {
            Handler::Sync(f) if blocking_pool => {
                let (f, d) = (f.clone(), delivery.clone());
                match tokio::task::spawn_blocking(move || f(&d)).await {
                    Ok(result) => result?,
                    Err(e) => return Err(join_error_text(e)),
                }
            }
            Handler::Sync(f) => f(delivery)?,
            Handler::Async(f) => f(delivery.clone()).await?,
        }
    }
    Ok(())
}

/// The text of a task failure: the panic message when there is one.
pub(crate) fn join_error_text(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        panic_text(e.into_panic().as_ref())
    } else {
        "handler task was cancelled".to_owned()
    }
}

/// The error text of a caught panic.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".to_owned());
    format!("handler panicked: {text}")
}
