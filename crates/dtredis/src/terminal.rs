//! What a command-line tool owes its terminal: a progress line for long work (only when
//! a person is watching), and a shutdown future for SIGTERM and Ctrl-C.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A one-line progress display on stderr, drawn only when stdout is a terminal (so a
/// piped or redirected run stays clean), at most ten times a second.
#[derive(Debug)]
pub(crate) struct Progress {
    label: &'static str,
    total: usize,
    shown: bool,
    last_draw: Option<Instant>,
}

impl Progress {
    /// A progress display for `total` units of `label`.
    pub(crate) fn new(label: &'static str, total: usize) -> Self {
        Progress {
            label,
            total,
            shown: std::io::stdout().is_terminal() && std::io::stderr().is_terminal(),
            last_draw: None,
        }
    }

    /// Reports `done` units finished.
    pub(crate) fn update(&mut self, done: usize) {
        if !self.shown || self.last_draw.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return;
        }
        self.last_draw = Some(Instant::now());
        if self.total == 0 {
            let _ = write!(std::io::stderr().lock(), "\r{} {done}", self.label);
            return;
        }
        let width = 30;
        let filled = (done * width).checked_div(self.total).unwrap_or(width).min(width);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} [{}{}] {done}/{}",
            self.label,
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.total
        );
        let _ = err.flush();
    }

    /// Clears the line.
    pub(crate) fn finish(&mut self) {
        if self.shown && self.last_draw.is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
