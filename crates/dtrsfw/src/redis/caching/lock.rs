//! Locking that ignores poisoning, for the cache's small shared structures.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`. A panic while holding one of the cache's locks leaves consistent data
/// (plain fields), so poisoning is ignored rather than spreading the panic to every later
/// call.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
