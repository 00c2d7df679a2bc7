//! A run's metrics as rows: what `metrics.csv` holds and the plots draw.
//!
//! [`Recorder`] is an [`Observer`]: give it to [`train`](super::train) (or
//! forward your observer's calls to it) and it keeps one row per sampled step
//! and one per epoch.
//!
//! # `metrics.csv`
//!
//! | column | step rows | epoch rows |
//! | --- | --- | --- |
//! | `kind` | `step` | `epoch` |
//! | `step` | the step (1-based over the run) | steps taken when the epoch ended |
//! | `epoch` | the epoch (1-based) | the epoch |
//! | `loss`, `accuracy` | mean batch loss and accuracy over the steps since the previous step row of the epoch | the epoch's training loss and accuracy |
//! | `lr` | the learning rate | the learning rate |
//! | `test_loss`, `test_accuracy` | empty | on the test set, if there is one |
//! | `test_mae`, `test_rmse`, `test_r2` (regression), `test_top5_accuracy` (more than 5 classes), `test_precision`, `test_recall`, `test_f1` (multi-label) | empty | the task's figures on the test set ([`Task::metric_names`](super::Task::metric_names)) |
//! | `L{i}.{statistic}` | the per-layer statistics of [`diagnostics`](crate::inspect::diagnostics) for layer *i* of the model line | empty |
//!
//! Step rows come at step 1 and every `every` steps (the diagnostics'
//! cadence); the `L…` columns are there only when the statistics were
//! measured (`--diagnostics-every` > 0). For the `mlp` preset they are
//! `L1.grad_norm, L1.delta_norm, L1.weight_norm, L1.update_ratio, L2.dead_frac,
//! L3.grad_norm, L3.delta_norm, L3.weight_norm, L3.update_ratio`. Numbers are
//! written with 6 significant digits; an empty field means "not measured".
//! The task's columns (`test_top5_accuracy` for MNIST's 10 classes) come
//! after `test_accuracy`, before the per-layer ones.

use super::{EpochRecord, Observer, StepInfo};
use crate::inspect::diagnostics::{is_sampled, Sample, Stat};
use std::fmt::Write;

/// What a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RowKind {
    /// A sampled step (`kind` = `step`).
    Step,
    /// The end of an epoch (`kind` = `epoch`).
    Epoch,
}

/// One row of `metrics.csv`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// A step row or an epoch row.
    pub kind: RowKind,
    /// The step (1-based over the run); for an epoch row, steps taken when the epoch ended.
    pub step: usize,
    /// The epoch (1-based).
    pub epoch: usize,
    /// Mean batch loss since the previous step row of the epoch; for an epoch
    /// row, the epoch's training loss.
    pub loss: f64,
    /// Accuracy since the previous step row of the epoch; for an epoch row,
    /// the epoch's training accuracy.
    pub accuracy: f64,
    /// The learning rate.
    pub lr: f32,
    /// Loss on the test set (epoch rows with a test set only).
    pub test_loss: Option<f64>,
    /// Accuracy on the test set (epoch rows with a test set only).
    pub test_accuracy: Option<f64>,
    /// Per-layer statistics, aligned with [`Recorder::columns`].
    pub stats: Vec<Option<f64>>,
    /// The task's figures on the test set, aligned with
    /// [`Recorder::task_columns`] (epoch rows only).
    #[serde(default)]
    pub task: Vec<Option<f64>>,
}

/// Collects a run's rows (see the [module docs](self) for the columns).
/// It serializes with everything it holds, so that a resumed run's
/// recorder continues where the saved one stopped.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Recorder {
    /// Step rows at step 1 and every `every` steps.
    pub every: usize,
    /// `(layer, statistic)` of each per-layer column, set by the first
    /// sample of the diagnostics; empty without them.
    pub stats: Vec<(String, Stat)>,
    /// `(layer, description)` of each measured layer, e.g. `("1", "linear(784,128)")`.
    pub layer_names: Vec<(String, String)>,
    /// The task's figures recorded on epoch rows (`mae`, `top5_accuracy`,
    /// …), as `test_{name}` columns; set before the first row.
    #[serde(default)]
    pub task_columns: Vec<String>,
    diagnostics: bool,
    /// The rows recorded so far, in order.
    pub rows: Vec<Row>,
    pending: Option<Sample>,
    /// (loss sum, correct, samples) of the epoch at the previous step row.
    mark: (f64, f64, usize),
    steps: usize,
    epoch: usize,
}

impl Recorder {
    /// A recorder with step rows every `every` steps; `diagnostics` says
    /// whether the per-layer statistics are measured (their columns come
    /// from the first sample).
    pub fn new(every: usize, diagnostics: bool) -> Recorder {
        Recorder {
            every: every.max(1),
            stats: Vec::new(),
            layer_names: Vec::new(),
            task_columns: Vec::new(),
            diagnostics,
            rows: Vec::new(),
            pending: None,
            mark: (0.0, 0.0, 0),
            steps: 0,
            epoch: 1,
        }
    }

    /// The per-layer column names, `L{layer}.{statistic}`.
    pub fn columns(&self) -> Vec<String> {
        self.stats
            .iter()
            .map(|(l, s)| format!("L{l}.{}", s.name()))
            .collect()
    }

    /// Every column of `metrics.csv`, in order.
    pub fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = [
            "kind",
            "step",
            "epoch",
            "loss",
            "accuracy",
            "lr",
            "test_loss",
            "test_accuracy",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        h.extend(self.task_columns.iter().map(|c| format!("test_{c}")));
        h.extend(self.columns());
        h
    }

    /// Record the task's figures `names` on every epoch row (a new
    /// recorder's; one that has rows keeps its columns).
    pub fn set_task_columns(&mut self, names: &[&str]) {
        if self.rows.is_empty() {
            self.task_columns = names.iter().map(|n| n.to_string()).collect();
        }
    }

    /// The rows of one kind.
    pub fn rows_of(&self, kind: RowKind) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(move |r| r.kind == kind)
    }

    /// `metrics.csv` as text.
    pub fn to_csv(&self) -> String {
        let mut s = self.csv_header();
        s.push('\n');
        s.push_str(&self.csv_rows(0));
        s
    }

    /// The first line of `metrics.csv` (no newline).
    pub fn csv_header(&self) -> String {
        self.header().join(",")
    }

    /// The lines of `metrics.csv` for rows `from..` (each ending in a
    /// newline), for a reader that has the earlier ones.
    pub fn csv_rows(&self, from: usize) -> String {
        let mut s = String::new();
        for r in self.rows.iter().skip(from) {
            let kind = match r.kind {
                RowKind::Step => "step",
                RowKind::Epoch => "epoch",
            };
            let _ = write!(
                s,
                "{kind},{},{},{},{},{},{},{}",
                r.step,
                r.epoch,
                num(r.loss),
                num(r.accuracy),
                num(r.lr as f64),
                opt(r.test_loss),
                opt(r.test_accuracy)
            );
            for i in 0..self.task_columns.len() {
                s.push(',');
                s.push_str(&opt(r.task.get(i).copied().flatten()));
            }
            for v in &r.stats {
                s.push(',');
                s.push_str(&opt(*v));
            }
            s.push('\n');
        }
        s
    }
}

impl Observer for Recorder {
    fn epoch_start(&mut self, epoch: usize, _batches: usize) {
        self.mark = (0.0, 0.0, 0);
        self.epoch = epoch;
    }

    fn diagnostics(&mut self, sample: &Sample) {
        if self.diagnostics && self.stats.is_empty() && self.rows.is_empty() {
            for l in &sample.layers {
                self.layer_names.push((l.layer.clone(), l.name.clone()));
                self.stats
                    .extend(l.stats().into_iter().map(|s| (l.layer.clone(), s)));
            }
        }
        self.pending = Some(sample.clone());
    }

    fn step(&mut self, info: &StepInfo) {
        self.steps = info.step;
        if !is_sampled(info.step, self.every) {
            return;
        }
        let n = info.samples as f64;
        let (l, c) = (info.running_loss * n, info.running_accuracy * n);
        let dn = (info.samples - self.mark.2).max(1) as f64;
        let (loss, accuracy) = ((l - self.mark.0) / dn, (c - self.mark.1) / dn);
        self.mark = (l, c, info.samples);
        let sample = self.pending.take().filter(|s| s.step == info.step);
        let stats = self
            .stats
            .iter()
            .map(|(layer, st)| {
                sample
                    .as_ref()
                    .and_then(|s| s.layers.iter().find(|x| x.layer == *layer))
                    .and_then(|x| x.get(*st))
            })
            .collect();
        self.rows.push(Row {
            kind: RowKind::Step,
            step: info.step,
            epoch: self.epoch,
            loss,
            accuracy,
            lr: info.lr,
            test_loss: None,
            test_accuracy: None,
            stats,
            task: Vec::new(),
        });
    }

    fn epoch_end(&mut self, r: &EpochRecord) {
        self.rows.push(Row {
            kind: RowKind::Epoch,
            step: self.steps,
            epoch: r.epoch,
            loss: r.train_loss,
            accuracy: r.train_accuracy,
            lr: r.lr,
            test_loss: r.test_loss,
            test_accuracy: r.test_accuracy,
            stats: vec![None; self.stats.len()],
            task: self
                .task_columns
                .iter()
                .map(|c| r.test_metrics.as_ref().and_then(|m| m.get(c).copied()))
                .collect(),
        });
    }
}

/// A number with 6 significant digits, as short as that allows.
///
/// ```
/// use backprop::train::metrics::num;
/// assert_eq!(num(0.5), "0.5");
/// assert_eq!(num(2.0 / 3.0), "0.666667");
/// assert_eq!(num(1.5e-7), "1.5e-7");
/// assert_eq!(num(123456789.0), "1.23457e8");
/// assert_eq!(num(0.0), "0");
/// ```
pub fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if (1e-4..1e6).contains(&a) {
        let digits = (5 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let s = format!("{v:.5e}");
        let (m, e) = s.split_once('e').unwrap();
        let m = m.trim_end_matches('0').trim_end_matches('.');
        format!("{m}e{e}")
    }
}

pub(crate) fn opt(v: Option<f64>) -> String {
    v.map(num).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::diagnostics::LayerStats;

    #[test]
    fn rows_and_csv() {
        let mut r = Recorder::new(2, true);
        r.epoch_start(1, 3);
        let info = |step: usize, loss: f64, samples: usize| StepInfo {
            step,
            loss: 0.0,
            running_loss: loss,
            running_accuracy: 0.5,
            samples,
            lr: 0.1,
        };
        let layers = vec![
            LayerStats {
                layer: "1".into(),
                name: "linear(4,3)".into(),
                grad_norm: Some(0.25),
                delta_norm: Some(0.5),
                weight_norm: Some(1.0),
                update_ratio: Some(1e-3),
                ..Default::default()
            },
            LayerStats {
                layer: "2".into(),
                name: "relu".into(),
                dead_frac: Some(1.0 / 3.0),
                ..Default::default()
            },
            LayerStats {
                layer: "3".into(),
                name: "linear(3,2)".into(),
                grad_norm: Some(0.5),
                delta_norm: Some(0.25),
                weight_norm: Some(2.0),
                update_ratio: Some(2e-3),
                ..Default::default()
            },
        ];
        r.diagnostics(&Sample {
            step: 1,
            epoch: 1,
            lr: 0.1,
            layers,
        });
        r.step(&info(1, 2.0, 4));
        r.step(&info(2, 1.5, 8)); // window: (1.5·8 − 2·4) / 4 = 1
        r.step(&info(3, 1.0, 10));
        r.epoch_end(&EpochRecord {
            epoch: 1,
            steps: 3,
            lr: 0.1,
            train_loss: 1.0,
            train_accuracy: 0.5,
            train_seconds: 1.0,
            samples_per_second: 10.0,
            test_loss: Some(0.9),
            test_accuracy: Some(0.75),
            test_metrics: None,
            task: crate::train::Task::Classification,
            data_wait_seconds: 0.0,
        });
        let csv = r.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "kind,step,epoch,loss,accuracy,lr,test_loss,test_accuracy,L1.grad_norm,L1.delta_norm,\
             L1.weight_norm,L1.update_ratio,L1.w_q0,L1.w_q16,L1.w_q50,L1.w_q84,L1.w_q100,\
             L1.g_q0,L1.g_q16,L1.g_q50,L1.g_q84,L1.g_q100,L2.dead_frac,\
             L3.grad_norm,L3.delta_norm,L3.weight_norm,L3.update_ratio,\
             L3.w_q0,L3.w_q16,L3.w_q50,L3.w_q84,L3.w_q100,L3.g_q0,L3.g_q16,L3.g_q50,L3.g_q84,L3.g_q100"
        );
        // These samples have no quantiles: their ten cells per layer are empty.
        let q = ",".repeat(10);
        assert_eq!(
            lines[1],
            format!("step,1,1,2,0.5,0.1,,,0.25,0.5,1,0.001{q},0.333333,0.5,0.25,2,0.002{q}")
        );
        assert_eq!(lines[2], format!("step,2,1,1,0.5,0.1{}", ",".repeat(31)));
        assert_eq!(
            lines[3],
            format!("epoch,3,1,1,0.5,0.1,0.9,0.75{}", ",".repeat(29))
        );
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn a_saved_recorder_comes_back_to_the_last_bit() {
        // Values serde_json's fast float parser reads one unit off in the
        // last place (it needs its `float_roundtrip` feature to be exact).
        let awkward = [
            1.0341174163541055e-7,
            9.87085292951342e-11,
            9.672678405938437e-9,
        ];
        let mut r = Recorder::new(1, false);
        r.epoch_start(1, 3);
        for (i, &v) in awkward.iter().enumerate() {
            r.step(&StepInfo {
                step: i + 1,
                loss: 0.0,
                running_loss: v,
                running_accuracy: v,
                samples: i + 1,
                lr: 0.1,
            });
        }
        let back: Recorder = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        let bits = |r: &Recorder| -> Vec<(u64, u64)> {
            r.rows
                .iter()
                .map(|w| (w.loss.to_bits(), w.accuracy.to_bits()))
                .collect()
        };
        assert_eq!(bits(&back), bits(&r));
        assert_eq!(back.to_csv(), r.to_csv());
    }
}
