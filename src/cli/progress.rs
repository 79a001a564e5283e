//! Progress for commands that take steps against clusters: a spinner when stderr is a terminal,
//! one plain line per step otherwise (logs and CI output stay readable and greppable).

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    spinner: Option<ProgressBar>,
}

impl Progress {
    pub fn new() -> Self {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Progress { spinner }
    }

    /// A step that is starting (replaces the spinner's message, or prints a line).
    pub fn step(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match &self.spinner {
            Some(bar) => bar.set_message(msg),
            None => eprintln!("{msg}"),
        }
    }

    /// A result worth keeping on screen: printed above the spinner, or as a line.
    pub fn done(&self, msg: impl AsRef<str>) {
        match &self.spinner {
            Some(bar) => bar.println(format!("✓ {}", msg.as_ref())),
            None => eprintln!("✓ {}", msg.as_ref()),
        }
    }

    /// Text kept on screen as it is (several lines allowed), above the spinner.
    pub fn text(&self, msg: impl AsRef<str>) {
        match &self.spinner {
            Some(bar) => bar.println(msg.as_ref().trim_end()),
            None => eprintln!("{}", msg.as_ref().trim_end()),
        }
    }

    /// A problem worth keeping on screen, that does not stop the command.
    pub fn warn(&self, msg: impl AsRef<str>) {
        match &self.spinner {
            Some(bar) => bar.println(format!("! {}", msg.as_ref())),
            None => eprintln!("! {}", msg.as_ref()),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}
