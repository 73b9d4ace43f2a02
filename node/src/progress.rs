//! Progress of long commands (`sim`, `swarm`, `demo`): a bar with an ETA when stderr is a
//! terminal (`indicatif`), plain lines otherwise (logs, CI), so nothing depends on where the
//! output goes.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A command's progress towards `total` steps.
#[derive(Clone, Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// `unit` names a step ("seeds", "s").
    pub fn new(total: u64, unit: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let template = format!(
            "{{elapsed_precise}} [{{wide_bar}}] {{pos}}/{{len}} {unit} · ETA {{eta}}\n{{msg}}"
        );
        let style = ProgressStyle::with_template(&template)
            .expect("a valid template")
            .progress_chars("=> ");
        Progress {
            bar: Some(ProgressBar::new(total).with_style(style)),
        }
    }

    /// Moves to step `position` with a status `message`: the bar's message on a terminal,
    /// a line on stderr otherwise (call it about once a second).
    pub fn update(&self, position: u64, message: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(position);
                bar.set_message(message.to_owned());
            }
            None => eprintln!("{message}"),
        }
    }

    /// A line that stays (a failure, a status line): above the bar, or on stderr.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar (the summary follows).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
