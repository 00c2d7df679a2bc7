//! A language-model run's metrics: its `metrics.csv`, the figures drawn
//! from it, and the rows the live page receives.
//!
//! # `metrics.csv`
//!
//! | column | step rows | eval rows |
//! | --- | --- | --- |
//! | `kind` | `step` | `eval` |
//! | `step` | the step (1-based) | steps done |
//! | `loss` | mean training loss of the steps since the previous step row | empty |
//! | `lr` | the learning rate | empty |
//! | `grad_norm` | the gradients' global norm before clipping | empty |
//! | `train_loss`, `val_loss` | empty | the estimates over `eval_iters` random batches of each split |
//! | `L{block}.grad_norm` | each named block's gradient norm ([`crate::inspect::blocks`]) | empty |
//!
//! Step rows come at step 1 and every `every` steps. Losses are in nats
//! per character.

use super::{LmEval, LmObserver, LmStep};
use crate::inspect::blocks::Blocks;
use crate::nn::Module;
use crate::train::metrics::opt;
use std::fmt::Write;

/// What a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LmRowKind {
    /// A sampled training step.
    Step,
    /// An estimate of both splits' loss.
    Eval,
}

/// One row of a language-model run's `metrics.csv`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmRow {
    /// A step row or an estimate.
    pub kind: LmRowKind,
    /// The step (1-based), or steps done at the estimate.
    pub step: usize,
    /// Mean training loss since the previous step row.
    pub loss: Option<f64>,
    /// The learning rate.
    pub lr: Option<f32>,
    /// The global gradient norm before clipping.
    pub grad_norm: Option<f64>,
    /// The training split's estimated loss.
    pub train_loss: Option<f64>,
    /// The validation split's estimated loss.
    pub val_loss: Option<f64>,
    /// Each block's gradient norm, aligned with [`LmRecorder::blocks`].
    pub blocks: Vec<Option<f64>>,
}

/// Collects a language-model run's rows (see the [module docs](self)). It
/// serializes with everything it holds, so that a resumed run's recorder
/// continues where the saved one stopped.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LmRecorder {
    /// Step rows at step 1 and every `every` steps.
    pub every: usize,
    /// The model's named blocks, one `L{block}.grad_norm` column each.
    pub blocks: Vec<String>,
    /// The rows so far, in order.
    pub rows: Vec<LmRow>,
    /// (loss sum, steps) since the previous step row.
    mark: (f64, usize),
}

impl LmRecorder {
    /// A recorder for `model` with step rows every `every` steps.
    pub fn new(model: &dyn Module, every: usize) -> LmRecorder {
        LmRecorder {
            every: every.max(1),
            blocks: Blocks::of(model).names,
            rows: Vec::new(),
            mark: (0.0, 0),
        }
    }

    /// The first line of `metrics.csv` (no newline).
    pub fn csv_header(&self) -> String {
        let mut h = String::from("kind,step,loss,lr,grad_norm,train_loss,val_loss");
        for b in &self.blocks {
            let _ = write!(h, ",L{b}.grad_norm");
        }
        h
    }

    /// The lines of rows `from..`, each ending in a newline.
    pub fn csv_rows(&self, from: usize) -> String {
        let mut s = String::new();
        for r in self.rows.iter().skip(from) {
            let kind = match r.kind {
                LmRowKind::Step => "step",
                LmRowKind::Eval => "eval",
            };
            let _ = write!(
                s,
                "{kind},{},{},{},{},{},{}",
                r.step,
                opt(r.loss),
                opt(r.lr.map(f64::from)),
                opt(r.grad_norm),
                opt(r.train_loss),
                opt(r.val_loss)
            );
            for v in &r.blocks {
                s.push(',');
                s.push_str(&opt(*v));
            }
            s.push('\n');
        }
        s
    }

    /// `metrics.csv` as text.
    pub fn to_csv(&self) -> String {
        format!("{}\n{}", self.csv_header(), self.csv_rows(0))
    }

    /// The rows of one kind.
    pub fn rows_of(&self, kind: LmRowKind) -> impl Iterator<Item = &LmRow> {
        self.rows.iter().filter(move |r| r.kind == kind)
    }
}

impl LmObserver for LmRecorder {
    fn step(&mut self, s: &LmStep) {
        self.mark.0 += s.loss as f64;
        self.mark.1 += 1;
        if s.step != 1 && !s.step.is_multiple_of(self.every) {
            return;
        }
        let blocks = match &s.block_grad_norms {
            Some(n) if n.len() == self.blocks.len() => n.iter().map(|&v| Some(v)).collect(),
            _ => vec![None; self.blocks.len()],
        };
        self.rows.push(LmRow {
            kind: LmRowKind::Step,
            step: s.step,
            loss: Some(self.mark.0 / self.mark.1 as f64),
            lr: Some(s.lr),
            grad_norm: Some(s.grad_norm as f64),
            train_loss: None,
            val_loss: None,
            blocks,
        });
        self.mark = (0.0, 0);
    }

    fn eval(&mut self, e: &LmEval) {
        self.rows.push(LmRow {
            kind: LmRowKind::Eval,
            step: e.step,
            loss: None,
            lr: None,
            grad_norm: None,
            train_loss: Some(e.train_loss),
            val_loss: Some(e.val_loss),
            blocks: vec![None; self.blocks.len()],
        });
    }
}

/// Write `{prefix}metrics.csv` and, with `plots` (and the feature), the
/// figures `{prefix}loss.png`/`.svg` (training loss, both estimates, the
/// learning rate) and `{prefix}grads.png`/`.svg` (each block's gradient
/// norm); returns the files written.
pub fn write_lm_files(
    rec: &LmRecorder,
    model: &str,
    prefix: &std::path::Path,
    plots: bool,
) -> crate::Result<Vec<std::path::PathBuf>> {
    let csv = std::path::PathBuf::from(format!("{}metrics.csv", prefix.display()));
    crate::io::write_atomic(&csv, rec.to_csv().as_bytes())?;
    #[cfg(feature = "plots")]
    let out = {
        use crate::train::plots::with_suffix;
        let mut out = vec![csv];
        if plots {
            out.extend(figures::loss(rec, model).write(&with_suffix(prefix, "loss"))?);
            out.extend(figures::grads(rec, model).write(&with_suffix(prefix, "grads"))?);
        }
        out
    };
    #[cfg(not(feature = "plots"))]
    let out = {
        let _ = (model, plots);
        vec![csv]
    };
    Ok(out)
}

#[cfg(feature = "plots")]
mod figures {
    use super::{LmRecorder, LmRowKind};
    use crate::train::metrics::num;
    use crate::train::plots::{ordered_color, short, Figure, Panel, Series, Style, TEST, TRAIN};

    fn points(
        rec: &LmRecorder,
        kind: LmRowKind,
        f: impl Fn(&super::LmRow) -> Option<f64>,
    ) -> Vec<(f64, f64)> {
        rec.rows_of(kind)
            .filter_map(|r| Some((r.step as f64, f(r)?)))
            .collect()
    }

    /// The training loss, the two estimates, and the learning rate.
    pub fn loss(rec: &LmRecorder, model: &str) -> Figure {
        let mut loss = Panel {
            title: "loss (nats per character)".into(),
            y_label: "loss".into(),
            ..Default::default()
        };
        loss.series.push(Series {
            label: format!("train (mean over {} steps)", rec.every),
            color: TRAIN,
            points: points(rec, LmRowKind::Step, |r| r.loss),
            style: Style::Line,
        });
        loss.series.push(Series {
            label: "train (estimate)".into(),
            color: ordered_color(1, 3),
            points: points(rec, LmRowKind::Eval, |r| r.train_loss),
            style: Style::Markers,
        });
        loss.series.push(Series {
            label: "validation (estimate)".into(),
            color: TEST,
            points: points(rec, LmRowKind::Eval, |r| r.val_loss),
            style: Style::Markers,
        });
        let lr = Panel {
            title: "learning rate".into(),
            y_label: "lr".into(),
            series: vec![Series {
                label: "lr".into(),
                color: TRAIN,
                points: points(rec, LmRowKind::Step, |r| r.lr.map(f64::from)),
                style: Style::Line,
            }],
            ..Default::default()
        };
        let last = rec.rows_of(LmRowKind::Eval).last().and_then(|r| r.val_loss);
        Figure {
            title: match last {
                Some(v) => format!("{} (val loss {})", short(model), num(v)),
                None => short(model),
            },
            x_label: "step".into(),
            panels: vec![loss, lr],
            cols: 2,
            size: (1300, 520),
            side_legend: false,
        }
    }

    /// Each named block's gradient norm (log scale), ordered by depth.
    pub fn grads(rec: &LmRecorder, model: &str) -> Figure {
        let n = rec.blocks.len();
        let mut panel = Panel {
            title: "‖∂C/∂θ‖ per block, before clipping".into(),
            y_label: "gradient norm (log scale)".into(),
            log_y: true,
            empty_note: "not measured in this run".into(),
            ..Default::default()
        };
        for (i, b) in rec.blocks.iter().enumerate() {
            panel.series.push(Series {
                label: b.clone(),
                color: ordered_color(i, n),
                points: points(rec, LmRowKind::Step, |r| r.blocks[i]),
                style: Style::Line,
            });
        }
        panel.series.push(Series {
            label: "all (global norm)".into(),
            color: plotters::style::RGBColor(120, 120, 120),
            points: points(rec, LmRowKind::Step, |r| r.grad_norm),
            style: Style::Dashed,
        });
        Figure {
            title: format!("gradient flow of {}", short(model)),
            x_label: "step".into(),
            panels: vec![panel],
            cols: 1,
            size: (1100, 560),
            side_legend: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_rows_hold_the_mean_loss_since_the_last_and_estimates_their_own_rows() {
        let gpt = crate::nn::GptConfig {
            n_layer: 2,
            n_head: 1,
            n_embd: 8,
            ..crate::nn::GptConfig::baby(5, 4)
        }
        .init(&mut crate::rand::seeded(0))
        .unwrap();
        let mut r = LmRecorder::new(&gpt, 2);
        for step in 1..=4 {
            r.step(&LmStep {
                step,
                loss: step as f32,
                lr: 0.1,
                grad_norm: 1.0,
                block_grad_norms: (step % 2 == 0).then(|| vec![0.5; 5]),
            });
        }
        r.eval(&LmEval {
            step: 4,
            train_loss: 1.5,
            val_loss: 1.75,
        });
        let csv = r.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "kind,step,loss,lr,grad_norm,train_loss,val_loss,Ltransformer.wte.grad_norm,\
             Ltransformer.wpe.grad_norm,Ltransformer.h.0.grad_norm,Ltransformer.h.1.grad_norm,\
             Ltransformer.ln_f.grad_norm"
        );
        assert_eq!(lines[1], "step,1,1,0.1,1,,,,,,,");
        assert_eq!(lines[2], "step,2,2,0.1,1,,,0.5,0.5,0.5,0.5,0.5");
        assert_eq!(lines[3], "step,4,3.5,0.1,1,,,0.5,0.5,0.5,0.5,0.5");
        assert_eq!(lines[4], "eval,4,,,,1.5,1.75,,,,,");
        assert_eq!(lines.len(), 5);
    }
}
