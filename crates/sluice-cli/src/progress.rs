//! What a long run shows on a terminal: one line per step, and a byte counter while pg_dump
//! writes. Quiet when stderr is not a terminal (only the step lines).

use indicatif::{ProgressBar, ProgressStyle};
use owo_colors::{OwoColorize, Stream};
use sluice::gate::Step;
use sluice::pipeline::record::{Status, StepRecord};
use sluice::pipeline::Observer;
use std::cell::RefCell;
use std::io::IsTerminal;

pub struct Terminal {
    bar: RefCell<Option<ProgressBar>>,
    interactive: bool,
}

impl Terminal {
    pub fn new() -> Self {
        Terminal {
            bar: RefCell::new(None),
            interactive: std::io::stderr().is_terminal(),
        }
    }
}

fn paint(text: &str, status: Status) -> String {
    text.if_supports_color(Stream::Stderr, |t| match status {
        Status::Passed => t.green().to_string(),
        Status::Failed => t.red().bold().to_string(),
        Status::Skipped => t.dimmed().to_string(),
        Status::Running => t.to_string(),
    })
    .to_string()
}

impl Observer for Terminal {
    fn phase(&self, name: &str) {
        eprintln!(
            "{}",
            format!("{name}:").if_supports_color(Stream::Stderr, |t| t.bold().to_string())
        );
    }

    fn step_started(&self, step: &Step) {
        if self.interactive {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("  {spinner} [{prefix}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(format!("{:>2}", step.number));
            bar.set_message(step.gate.unwrap_or(step.name).to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            *self.bar.borrow_mut() = Some(bar);
        }
    }

    fn step_finished(&self, record: &StepRecord) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
        let word = match record.status {
            Status::Passed => "passed",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
            Status::Running => "running",
        };
        let name = record.gate.as_deref().unwrap_or(&record.name);
        eprintln!(
            "  [{:>2}] {:<18} {} ({} ms) {}",
            record.number,
            name,
            paint(word, record.status),
            record.duration_ms,
            record.detail
        );
    }

    fn attempt(&self, attempt: &sluice::migration::Attempt) {
        if attempt.outcome == sluice::migration::AttemptOutcome::Committed && attempt.number == 1 {
            return; // the step's own line says it
        }
        if let Some(bar) = self.bar.borrow().as_ref() {
            bar.suspend(|| print_attempt(attempt));
        } else {
            print_attempt(attempt);
        }
    }

    fn progress(&self, label: &str, bytes: u64, database_bytes: Option<u64>) {
        if let Some(bar) = self.bar.borrow().as_ref() {
            let secs = bar.elapsed().as_secs_f64().max(0.001);
            let rate = indicatif::HumanBytes((bytes as f64 / secs) as u64);
            let of = database_bytes
                .map(|d| format!(" (database {}, pg_database_size)", indicatif::HumanBytes(d)))
                .unwrap_or_default();
            bar.set_message(format!(
                "{label}: {} written, {rate}/s{of}",
                indicatif::HumanBytes(bytes)
            ));
        }
    }
}

fn print_attempt(attempt: &sluice::migration::Attempt) {
    eprintln!(
        "       attempt {}: {} after {} ms — {}{}",
        attempt.number,
        attempt.outcome,
        attempt.duration_ms,
        attempt.detail,
        attempt
            .retry_in_ms
            .map(|ms| format!("; retrying in {ms} ms"))
            .unwrap_or_default()
    );
}
