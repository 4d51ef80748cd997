//! What every handler shares: the Redis instance, the secrets, the mode, the live
//! snapshot.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dtrsfw::redis::RedisInstance;
use tokio::sync::watch;

use super::history::Snapshot;

/// Shared by all handlers (behind an `Arc`).
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) redis: RedisInstance,
    /// The access token (Bearer, `?token=`, cookie).
    pub(crate) token: String,
    /// The per-process CSRF token put in every action form.
    pub(crate) csrf: String,
    /// `--read-only`: no action shown, every action route 403.
    pub(crate) read_only: bool,
    /// The latest sample of every stream (updated every second by the sampler).
    pub(crate) snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Becomes `true` on shutdown, so long-lived responses (`/events`) end.
    pub(crate) stopping: watch::Receiver<bool>,
}

/// The state as handlers receive it.
pub(crate) type Shared = Arc<AppState>;

/// A handler failure: a status (500 unless said otherwise) and the error as plain text.
#[derive(Debug)]
pub(crate) struct AppError {
    status: StatusCode,
    error: anyhow::Error,
}

impl AppError {
    /// 400: the request is wrong.
    pub(crate) fn bad_request(error: impl Into<anyhow::Error>) -> Self {
        AppError {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
        }
    }

    /// 404: no such thing.
    pub(crate) fn not_found(error: impl Into<anyhow::Error>) -> Self {
        AppError {
            status: StatusCode::NOT_FOUND,
            error: error.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for AppError {
    fn from(err: E) -> Self {
        AppError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: err.into(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        // Plain text: nothing in it is interpreted by the browser.
        (self.status, format!("error: {:#}\n", self.error)).into_response()
    }
}

/// What handlers return.
pub(crate) type AppResult<T> = Result<T, AppError>;

/// 32 random bytes as 64 hex characters (the OS generator).
pub(crate) fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
