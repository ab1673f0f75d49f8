//! Progress on stderr while a run waits: a spinner with the current step, shown only on a
//! terminal and never when quiet or logging verbosely.
//!
//! Nothing is drawn until [`Progress::start`], which the run calls once it is connected: an
//! exec credential plugin runs while the client is built and may prompt on the terminal
//! (a password, a device code), and a spinner redrawing its line would garble that prompt.
//! When the credentials come from such a plugin it may run again mid-run to refresh them,
//! so then the steps are printed as plain lines instead of a spinner.

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::printer;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Steps only in the log (`-v`).
    Log,
    /// A spinner redrawn in place.
    Spinner,
    /// One line per step, never redrawn: safe beside a credential prompt.
    Lines,
}

/// The display for a run: nothing on the terminal unless `enabled` (not quiet, not tracing)
/// and stderr is a terminal; no spinner when a credential plugin may prompt.
pub fn display_for(enabled: bool, terminal: bool, credentials_may_prompt: bool) -> Display {
    match (enabled && terminal, credentials_may_prompt) {
        (false, _) => Display::Log,
        (true, false) => Display::Spinner,
        (true, true) => Display::Lines,
    }
}

enum Shown {
    Log,
    Spinner(ProgressBar),
    Lines,
}

pub struct Progress {
    enabled: bool,
    shown: OnceLock<Shown>,
    /// The step announced before `start`, shown once it starts.
    pending: Mutex<Option<String>>,
}

impl Progress {
    /// Progress for a run; `enabled` when neither quiet nor tracing. Draws nothing yet.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            shown: OnceLock::new(),
            pending: Mutex::new(None),
        }
    }

    /// Start showing progress, once no credential prompt can be drawn over any more (or,
    /// with `credentials_may_prompt`, as lines that never redraw).
    pub fn start(&self, credentials_may_prompt: bool) {
        let display = display_for(
            self.enabled,
            std::io::stderr().is_terminal(),
            credentials_may_prompt,
        );
        let shown = match display {
            Display::Log => Shown::Log,
            Display::Lines => Shown::Lines,
            Display::Spinner => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                Shown::Spinner(bar)
            }
        };
        if self.shown.set(shown).is_ok() {
            let pending = self.pending.lock().map(|mut p| p.take()).unwrap_or(None);
            if let Some(step) = pending {
                self.step(&step);
            }
        }
    }

    /// Show the step now running.
    pub fn step(&self, message: &str) {
        match self.shown.get() {
            Some(Shown::Spinner(bar)) => bar.set_message(message.to_string()),
            Some(Shown::Lines) => printer::write_stderr(&format!("... {message}\n")),
            Some(Shown::Log) => tracing::info!(step = message),
            None => {
                tracing::info!(step = message);
                if let Ok(mut p) = self.pending.lock() {
                    *p = Some(message.to_string());
                }
            }
        }
    }

    /// A line for the user on stderr, printed above the spinner rather than through it.
    pub fn note(&self, line: &str) {
        match self.shown.get() {
            Some(Shown::Spinner(bar)) => bar.suspend(|| printer::write_stderr(line)),
            _ => printer::write_stderr(line),
        }
    }

    /// Remove the spinner before the report is printed.
    pub fn finish(&self) {
        if let Some(Shown::Spinner(bar)) = self.shown.get() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_spinner_while_a_credential_plugin_may_prompt() {
        assert_eq!(display_for(true, true, false), Display::Spinner);
        assert_eq!(display_for(true, true, true), Display::Lines);
        assert_eq!(display_for(true, false, true), Display::Log);
        assert_eq!(display_for(false, true, false), Display::Log);
    }

    #[test]
    fn nothing_is_drawn_before_start() {
        let p = Progress::new(true);
        p.step("connecting to the cluster");
        assert!(p.shown.get().is_none());
        assert_eq!(
            p.pending.lock().unwrap().as_deref(),
            Some("connecting to the cluster")
        );
    }
}
