//! The demo's terminal: lines that stay, and a status line that redraws itself in place.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// Standard output shared by alerts, lineage events and the status line.
///
/// On a terminal the status line is redrawn in place and other lines are printed above it;
/// elsewhere (a pipe, a file) every line is a plain line.
pub struct Console {
    terminal: bool,
    status_shown: Mutex<bool>,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            terminal: std::io::stdout().is_terminal(),
            status_shown: Mutex::new(false),
        }
    }
}

impl Console {
    /// True when standard output is a terminal.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Prints a line that stays.
    pub fn line(&self, text: &str) {
        let mut shown = self
            .status_shown
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = std::io::stdout().lock();
        if *shown {
            // Clear the status line; the next status redraws it.
            let _ = write!(out, "\r\x1b[K");
            *shown = false;
        }
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// Shows the status: redrawn in place on a terminal, a plain line elsewhere.
    pub fn status(&self, text: &str) {
        if !self.terminal {
            self.line(text);
            return;
        }
        let mut shown = self
            .status_shown
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[K{text}");
        let _ = out.flush();
        *shown = true;
    }
}
