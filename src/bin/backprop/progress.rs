//! What `backprop train` shows while it runs: a progress bar per epoch, a
//! line per finished epoch, the warnings, and (with `--serve`) the live
//! page's view of the run.

use backprop::inspect::diagnostics::WarningKind;
use backprop::nn::Module;
use backprop::train::{EpochRecord, Observer, StepInfo};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

/// The terminal's and the page's view of a run.
pub struct Progress {
    /// The page's view of this run (`--serve`).
    pub live: Option<backprop::serve::Live>,
    /// No bar and no epoch lines.
    quiet: bool,
    /// No warnings printed (the page still gets them).
    no_warnings: bool,
    /// Training samples per epoch.
    samples: usize,
    bar: Option<ProgressBar>,
    t0: Instant,
}

impl Progress {
    /// Progress for `samples` samples an epoch; `quiet`: nothing on the
    /// terminal but `warnings`.
    pub fn new(quiet: bool, warnings: bool, samples: usize) -> Progress {
        Progress {
            live: None,
            quiet,
            no_warnings: !warnings,
            samples,
            bar: None,
            t0: Instant::now(),
        }
    }

    /// The run ended: tell an open page, and give it a moment to receive
    /// the last rows before the process ends.
    pub fn finish(&self) {
        if let Some(l) = &self.live {
            l.finish();
            std::thread::sleep(std::time::Duration::from_millis(600));
        }
    }
}

impl Observer for Progress {
    fn model(&mut self, model: &dyn Module, steps: usize) {
        if let Some(l) = &mut self.live {
            l.model(model, steps);
        }
    }

    fn metrics(&mut self, header: &str, rows: &str) {
        if let Some(l) = &mut self.live {
            l.metrics(header, rows);
        }
    }

    fn epoch_resume(&mut self, epoch: usize, batches: usize, _done: usize, samples: usize) {
        self.epoch_start(epoch, batches);
        if let Some(b) = &self.bar {
            b.set_position(samples as u64);
        }
    }

    fn diagnostics(&mut self, sample: &backprop::inspect::diagnostics::Sample) {
        if let Some(l) = &mut self.live {
            l.diagnostics(sample);
        }
    }

    fn confusion(&mut self, matrix: &[Vec<usize>]) {
        if let Some(l) = &mut self.live {
            l.confusion(matrix);
        }
    }

    fn warning(&mut self, kind: WarningKind, message: &str) {
        if let Some(l) = &mut self.live {
            l.warning(kind, message);
        }
        if self.no_warnings {
            return;
        }
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
    }

    fn epoch_start(&mut self, epoch: usize, batches: usize) {
        self.t0 = Instant::now();
        if let Some(l) = &mut self.live {
            l.epoch_start(epoch, batches);
        }
        if self.quiet {
            return;
        }
        let b = ProgressBar::new(self.samples as u64);
        b.set_style(
            ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.set_prefix(epoch.to_string());
        self.bar = Some(b);
        self.t0 = Instant::now();
    }

    fn step(&mut self, s: &StepInfo) {
        if let Some(l) = &mut self.live {
            l.step(s);
        }
        if let Some(b) = &self.bar {
            b.set_position(s.samples as u64);
            if s.step.is_multiple_of(20) {
                let rate = s.samples as f64 / self.t0.elapsed().as_secs_f64().max(1e-9);
                b.set_message(format!(
                    "loss {:.4} acc {:.2}% {rate:.0} samples/s",
                    s.running_loss,
                    s.running_accuracy * 100.0
                ));
            }
        }
    }

    fn epoch_end(&mut self, r: &EpochRecord) {
        if let Some(l) = &mut self.live {
            l.epoch_end(r);
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if self.quiet {
            return;
        }
        eprintln!("{}", backprop::train::epoch_line(r));
    }
}
