//! What a model is trained to do, told by its targets and its loss, and the
//! figures each task is judged by.
//!
//! | task | targets | losses | figures |
//! | --- | --- | --- | --- |
//! | classification | a class per sample | cross-entropy (mse, bce, bce-logits against one-hot rows) | accuracy, top-5 accuracy, per-class accuracy, confusion matrix |
//! | regression | `[N, K]` values | mse, l1, huber | MAE, RMSE, R² |
//! | multi-label | `[N, K]` of 0 and 1 | bce-logits, bce | precision, recall, F1 (micro, at probability 0.5), exact-match accuracy |
//!
//! The figures are sums over batches ([`Tally`]), so they can be added
//! over processes and read once at the end.

use super::LossKind;
use crate::data::Targets;
pub use crate::data::Task;
use crate::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a task is told and trained (the type is the data's: [`Task`]).
impl Task {
    /// The task `targets` and `loss` describe: class targets are
    /// classification, value targets with a binary cross-entropy are
    /// multi-label, other value targets are regression.
    pub fn of(targets: &Targets, loss: LossKind) -> Task {
        match (targets, loss) {
            (Targets::Classes(_), _) => Task::Classification,
            (Targets::Values(_), LossKind::Bce | LossKind::BceLogits) => Task::MultiLabel,
            (Targets::Values(_), _) => Task::Regression,
        }
    }

    /// The names of [`Tally::metrics`] for outputs of `width`, in order.
    pub fn metric_names(self, width: usize) -> &'static [&'static str] {
        match self {
            Task::Classification if width > 5 => &["top5_accuracy"],
            Task::Classification => &[],
            Task::Regression => &["mae", "rmse", "r2"],
            Task::MultiLabel => &["precision", "recall", "f1"],
        }
    }

    /// The loss a task trains with unless told otherwise.
    pub fn default_loss(self) -> LossKind {
        match self {
            Task::Classification => LossKind::CrossEntropy,
            Task::Regression => LossKind::Mse,
            Task::MultiLabel => LossKind::BceLogits,
        }
    }
}

/// Record `loss` of `out: [N, C]` against `y` on `g`: class labels or
/// `[N, C]` values ([`LossKind::apply`], [`LossKind::apply_values`]).
pub fn apply_loss(
    loss: LossKind,
    g: &mut crate::Graph,
    out: crate::Var,
    y: &Targets,
) -> crate::Var {
    match y {
        Targets::Classes(labels) => loss.apply(g, out, labels),
        Targets::Values(t) => loss.apply_values(g, out, t.clone()),
    }
}

/// Named figures of an evaluation (`mae`, `rmse`, `r2`; `top5_accuracy`;
/// `precision`, `recall`, `f1`).
pub type Metrics = BTreeMap<String, f64>;

/// The yes/no decision of a binary output: logits above 0, probabilities
/// above 0.5.
fn says_yes(v: f32, loss: LossKind) -> bool {
    if loss == LossKind::BceLogits {
        v > 0.0
    } else {
        v > 0.5
    }
}

/// The class each row of `out: [N, C]` predicts: the arg-max (the first on
/// ties), or for one output, 1 above the threshold.
fn predictions(out: &Tensor, loss: LossKind) -> Vec<usize> {
    if out.shape()[1] == 1 {
        return out
            .data()
            .iter()
            .map(|&v| says_yes(v, loss) as usize)
            .collect();
    }
    out.argmax_rows()
}

/// Correct predictions in a batch: the arg-max class (one output: above
/// the threshold means class 1); for multi-label, samples whose every
/// label is decided right; 0 for regression.
pub fn correct(out: &Tensor, y: &Targets, loss: LossKind) -> usize {
    match y {
        Targets::Classes(labels) => predictions(out, loss)
            .iter()
            .zip(labels)
            .filter(|(p, y)| p == y)
            .count(),
        Targets::Values(t) if Task::of(y, loss) == Task::MultiLabel => {
            let k = t.shape()[1].max(1);
            out.data()
                .chunks(k)
                .zip(t.data().chunks(k))
                .filter(|(o, t)| {
                    o.iter()
                        .zip(t.iter())
                        .all(|(&o, &t)| says_yes(o, loss) == (t > 0.5))
                })
                .count()
        }
        Targets::Values(_) => 0,
    }
}

/// Sums over the batches of an evaluation, from which every figure of the
/// task is read. All fields are sums, so tallies of parts add up
/// ([`Tally::flat`] / [`Tally::set_flat`] for an all-reduce).
#[derive(Clone, Debug, PartialEq)]
pub struct Tally {
    /// The task.
    pub task: Task,
    /// Outputs per sample (classes, values or labels).
    pub width: usize,
    /// Samples seen.
    pub samples: f64,
    /// Σ batch loss × batch size.
    pub loss: f64,
    /// Correct predictions ([`correct`]).
    pub right: f64,
    /// Classification: samples whose class is among the 5 highest scores.
    pub top5: f64,
    /// Classification: `confusion[true * C + predicted]`.
    pub confusion: Vec<f64>,
    /// Regression: per output, Σ|e|, Σe², Σy, Σy² (4 per output).
    pub columns: Vec<f64>,
    /// Multi-label: true positives, false positives, false negatives.
    pub tp_fp_fn: [f64; 3],
}

impl Tally {
    /// An empty tally of `width` outputs per sample.
    pub fn new(task: Task, width: usize) -> Tally {
        Tally {
            task,
            width,
            samples: 0.0,
            loss: 0.0,
            right: 0.0,
            top5: 0.0,
            confusion: match task {
                Task::Classification => vec![0.0; width.max(2) * width.max(2)],
                _ => Vec::new(),
            },
            columns: match task {
                Task::Regression => vec![0.0; 4 * width],
                _ => Vec::new(),
            },
            tp_fp_fn: [0.0; 3],
        }
    }

    /// Add one batch: the model's outputs `[n, width]`, its targets and its
    /// mean loss.
    pub fn add(&mut self, out: &Tensor, y: &Targets, loss_kind: LossKind, loss: f64) {
        let n = y.len();
        self.samples += n as f64;
        self.loss += loss * n as f64;
        let w = self.width.max(1);
        match y {
            Targets::Classes(labels) => {
                // One prediction per row, for the accuracy and the confusion matrix.
                let c = self.width.max(2);
                let preds = predictions(out, loss_kind);
                for ((row, &t), &pred) in out.data().chunks(w).zip(labels).zip(&preds) {
                    self.right += (pred == t) as u8 as f64;
                    if t < c && pred < c {
                        self.confusion[t * c + pred] += 1.0;
                    }
                    if w > 5 && t < w && row.iter().filter(|&&v| v > row[t]).count() < 5 {
                        self.top5 += 1.0;
                    }
                }
            }
            Targets::Values(t) => {
                self.right += correct(out, y, loss_kind) as f64;
                for (o, t) in out.data().chunks(w).zip(t.data().chunks(w)) {
                    for (j, (&o, &t)) in o.iter().zip(t).enumerate() {
                        match self.task {
                            Task::Regression => {
                                let e = (o - t) as f64;
                                let c = &mut self.columns[4 * j..4 * j + 4];
                                c[0] += e.abs();
                                c[1] += e * e;
                                c[2] += t as f64;
                                c[3] += (t as f64) * (t as f64);
                            }
                            _ => {
                                let (p, truth) = (says_yes(o, loss_kind), t > 0.5);
                                let slot = match (p, truth) {
                                    (true, true) => 0,
                                    (true, false) => 1,
                                    (false, true) => 2,
                                    (false, false) => continue,
                                };
                                self.tp_fp_fn[slot] += 1.0;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Every sum in one vector (to add over processes).
    pub fn flat(&self) -> Vec<f64> {
        let mut v = vec![self.samples, self.loss, self.right, self.top5];
        v.extend_from_slice(&self.confusion);
        v.extend_from_slice(&self.columns);
        v.extend_from_slice(&self.tp_fp_fn);
        v
    }

    /// Take the sums back from [`Tally::flat`]'s layout.
    pub fn set_flat(&mut self, v: &[f64]) {
        assert_eq!(v.len(), self.flat().len(), "Tally::set_flat: length");
        [self.samples, self.loss, self.right, self.top5] = [v[0], v[1], v[2], v[3]];
        let (c, r) = (self.confusion.len(), self.columns.len());
        self.confusion.copy_from_slice(&v[4..4 + c]);
        self.columns.copy_from_slice(&v[4 + c..4 + c + r]);
        self.tp_fp_fn.copy_from_slice(&v[4 + c + r..]);
    }

    /// The mean loss.
    pub fn mean_loss(&self) -> f64 {
        self.loss / self.samples.max(1.0)
    }

    /// The fraction of samples predicted right (0 for regression).
    pub fn accuracy(&self) -> f64 {
        self.right / self.samples.max(1.0)
    }

    /// The task's figures (see the [module docs](self)).
    pub fn metrics(&self) -> Metrics {
        let n = self.samples.max(1.0);
        let mut m = Metrics::new();
        match self.task {
            Task::Classification => {
                if self.width > 5 {
                    m.insert("top5_accuracy".into(), self.top5 / n);
                }
            }
            Task::Regression => {
                let w = self.width.max(1) as f64;
                let col = |i: usize| self.columns.iter().skip(i).step_by(4).sum::<f64>();
                m.insert("mae".into(), col(0) / (n * w));
                m.insert("rmse".into(), (col(1) / (n * w)).sqrt());
                // scikit-learn's r2_score: each output's R², averaged.
                let r2: f64 = self
                    .columns
                    .chunks(4)
                    .map(|c| {
                        let ss_tot = c[3] - c[2] * c[2] / n;
                        if ss_tot > 0.0 {
                            1.0 - c[1] / ss_tot
                        } else {
                            0.0
                        }
                    })
                    .sum::<f64>()
                    / w;
                m.insert("r2".into(), r2);
            }
            Task::MultiLabel => {
                let [tp, fp, fna] = self.tp_fp_fn;
                let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
                let (p, r) = (ratio(tp, tp + fp), ratio(tp, tp + fna));
                m.insert("precision".into(), p);
                m.insert("recall".into(), r);
                m.insert("f1".into(), ratio(2.0 * p * r, p + r));
            }
        }
        m
    }

    /// Classification: the confusion matrix as counts, `[true][predicted]`.
    pub fn confusion_matrix(&self) -> Option<Vec<Vec<usize>>> {
        if self.task != Task::Classification {
            return None;
        }
        let c = self.width.max(2);
        Some(
            self.confusion
                .chunks(c)
                .map(|r| r.iter().map(|&v| v as usize).collect())
                .collect(),
        )
    }

    /// Classification: each class's accuracy (recall), `None` for a class
    /// with no samples.
    pub fn per_class_accuracy(&self) -> Option<Vec<Option<f64>>> {
        self.confusion_matrix().map(|m| {
            m.iter()
                .enumerate()
                .map(|(i, row)| {
                    let all: usize = row.iter().sum();
                    (all > 0).then(|| row[i] as f64 / all as f64)
                })
                .collect()
        })
    }
}

/// The figures of a finished evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The mean loss.
    pub loss: f64,
    /// The fraction of samples predicted right (0 for regression).
    pub accuracy: f64,
    /// The task's other figures.
    pub metrics: Metrics,
    /// Classification: counts `[true][predicted]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Vec<Vec<usize>>>,
}

impl From<&Tally> for Evaluation {
    fn from(t: &Tally) -> Evaluation {
        Evaluation {
            loss: t.mean_loss(),
            accuracy: t.accuracy(),
            metrics: t.metrics(),
            confusion: t.confusion_matrix(),
        }
    }
}

/// `mae 3.21, rmse 4.5, r2 0.61`: a task's figures on one line (accuracy
/// figures as percentages).
pub fn metrics_line(m: &Metrics) -> String {
    m.iter()
        .map(|(k, v)| {
            if k.ends_with("accuracy") {
                format!("{k} {:.2}%", v * 100.0)
            } else {
                format!("{k} {v:.4}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A confusion matrix as aligned text: one row per true class, one column
/// per predicted class, headed by the class names.
pub fn confusion_text(m: &[Vec<usize>], names: &dyn Fn(usize) -> String) -> String {
    let c = m.len();
    let labels: Vec<String> = (0..c).map(names).collect();
    let width = m
        .iter()
        .flatten()
        .map(|v| v.to_string().len())
        .chain(labels.iter().map(|l| l.chars().count()))
        .max()
        .unwrap_or(1);
    let lw = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1);
    let mut s = format!("{:>lw$}  (rows: true class, columns: predicted)\n", "");
    s.push_str(&format!("{:>lw$}", ""));
    for l in &labels {
        s.push_str(&format!(" {l:>width$}"));
    }
    for (i, row) in m.iter().enumerate() {
        s.push_str(&format!("\n{:>lw$}", labels[i]));
        for v in row {
            s.push_str(&format!(" {v:>width$}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_tally_counts_confusion_and_top5() {
        // 7 classes, 3 samples: right, wrong (true 2 ranked 2nd), wrong (true 6 last)
        let mut out = vec![0f32; 21];
        out[0] = 5.0; // sample 0 → 0 (true 0)
        out[7 + 1] = 5.0;
        out[7 + 2] = 4.0; // sample 1 → 1 (true 2)
        out[14 + 3] = 5.0;
        out[14 + 6] = -1.0; // sample 2 → 3 (true 6)
        let out = Tensor::from_vec(vec![3, 7], out);
        let y = Targets::Classes(vec![0, 2, 6]);
        let mut t = Tally::new(Task::Classification, 7);
        t.add(&out, &y, LossKind::CrossEntropy, 0.5);
        assert_eq!(t.accuracy(), 1.0 / 3.0);
        assert_eq!(t.metrics()["top5_accuracy"], 2.0 / 3.0);
        let m = t.confusion_matrix().unwrap();
        assert_eq!((m[0][0], m[2][1], m[6][3]), (1, 1, 1));
        let per = t.per_class_accuracy().unwrap();
        assert_eq!((per[0], per[2], per[4]), (Some(1.0), Some(0.0), None));
        assert_eq!(t.mean_loss(), 0.5);
        let text = confusion_text(&m, &|c| format!("c{c}"));
        assert!(text.lines().count() == 9 && text.contains("c6"), "{text}");
    }

    #[test]
    fn regression_figures_match_their_definitions() {
        // two outputs; column 0 perfect, column 1 off by 1 and 3
        let out = Tensor::from_vec(vec![2, 2], vec![1., 3., 2., 7.]);
        let y = Targets::Values(Tensor::from_vec(vec![2, 2], vec![1., 2., 2., 4.]));
        let mut t = Tally::new(Task::Regression, 2);
        t.add(&out, &y, LossKind::Mse, 0.0);
        let m = t.metrics();
        assert!((m["mae"] - 1.0).abs() < 1e-12); // (0+1+0+3)/4
        assert!((m["rmse"] - (10.0f64 / 4.0).sqrt()).abs() < 1e-12);
        // column 0: R² 1; column 1: ss_res 10, ss_tot 2 → −4; mean −1.5
        assert!((m["r2"] + 1.5).abs() < 1e-12, "{m:?}");
        // two halves add up to the whole, through flat/set_flat
        let mut a = Tally::new(Task::Regression, 2);
        a.add(&out.rows(0, 1), &y.range(0, 1), LossKind::Mse, 0.0);
        let mut b = Tally::new(Task::Regression, 2);
        b.add(&out.rows(1, 2), &y.range(1, 2), LossKind::Mse, 0.0);
        let sum: Vec<f64> = a.flat().iter().zip(b.flat()).map(|(x, y)| x + y).collect();
        a.set_flat(&sum);
        assert_eq!(a.metrics(), m);
    }

    #[test]
    fn multi_label_scores_at_the_threshold() {
        // logits: sample 0 says {0, 2}, true {0, 1}; sample 1 says {1}, true {1}
        let out = Tensor::from_vec(vec![2, 3], vec![2., -1., 0.5, -3., 1., -0.1]);
        let y = Targets::Values(Tensor::from_vec(vec![2, 3], vec![1., 1., 0., 0., 1., 0.]));
        let mut t = Tally::new(Task::MultiLabel, 3);
        t.add(&out, &y, LossKind::BceLogits, 0.0);
        assert_eq!(t.tp_fp_fn, [2.0, 1.0, 1.0]);
        let m = t.metrics();
        assert!((m["precision"] - 2.0 / 3.0).abs() < 1e-12);
        assert!((m["recall"] - 2.0 / 3.0).abs() < 1e-12);
        assert!((m["f1"] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(t.accuracy(), 0.5);
        assert_eq!(Task::of(&y, LossKind::BceLogits), Task::MultiLabel);
        assert_eq!(Task::of(&y, LossKind::L1), Task::Regression);
        assert_eq!(
            metrics_line(&m),
            "f1 0.6667, precision 0.6667, recall 0.6667"
        );
        // every figure has its name in metric_names, whatever the task
        for (task, w) in [
            (Task::MultiLabel, 3),
            (Task::Regression, 2),
            (Task::Classification, 7),
        ] {
            let mut names: Vec<&str> = task.metric_names(w).to_vec();
            names.sort_unstable();
            let mut t = Tally::new(task, w);
            t.samples = 1.0;
            let got: Vec<String> = t.metrics().into_keys().collect();
            assert_eq!(got, names, "{task:?}");
        }
    }
}
