//! The training loop behind `backprop train`, and evaluation.
//!
//! One step: gather a batch, run the model through a fresh
//! [`Graph`](crate::Graph), take
//! the loss, backpropagate, optionally clip, and let the optimizer update
//! every parameter in place. The graph is dropped before the update, so the
//! parameters the graph shared are updated without a copy.
//!
//! Every few steps ([`TrainConfig::diagnostics_every`]) the step is also
//! measured ([`crate::inspect::diagnostics`]): per-layer gradient norms,
//! update ratios, dead and saturated units, with warnings when gradients
//! vanish or explode. [`metrics`] records a run as `metrics.csv`, `plots`
//! (feature `plots`) draws it. The loop's pieces are in `trainer.rs`; a
//! saved run (settings, resume, files) is [`crate::run`]'s.

pub mod lm;
pub mod metrics;
pub mod playground;
#[cfg(feature = "plots")]
pub mod plots;
pub mod task;
mod trainer;

use crate::autograd::ParamGrads;
use crate::data::{Augment, Dataset, Targets};
use crate::dist::{shard, Collective};
use crate::inspect::diagnostics::{chance_level, LayerStats, Probe, Sample, WarningKind};
use crate::nn::{Module, ModuleExt, OutputKind, Pass};
use crate::optim::{Optimizer, OptimizerConfig, Schedule};
use crate::{Error, Result, Setting, Tensor};
use serde::{Deserialize, Serialize};
use std::rc::Rc;
use std::time::Instant;

pub use crate::ops::loss::{float_targets, LossKind};
pub use task::{apply_loss, correct, Evaluation, Metrics, Tally, Task};

/// Everything that shapes a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per training batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// The optimizer's hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// How the learning rate changes from epoch to epoch.
    pub schedule: Schedule,
    /// The training loss.
    pub loss: LossKind,
    /// Seeds the batch shuffling and each step's dropout ([`step_seed`]).
    pub seed: u64,
    /// Shuffle the training samples anew each epoch.
    pub shuffle: bool,
    /// Stop after this many optimizer steps.
    pub max_steps: Option<usize>,
    /// Scale the gradients so their global L2 norm is at most this
    /// ([`clip_grad_norm`](crate::optim::clip_grad_norm)).
    pub clip_grad_norm: Option<f32>,
    /// Clamp every gradient element to `[-v, v]`
    /// ([`clip_grad_value`](crate::optim::clip_grad_value)).
    pub clip_grad_value: Option<f32>,
    /// Batch size for evaluation (no graph is recorded, so it can be large).
    pub eval_batch_size: usize,
    /// Leave out each epoch's last batch when it is smaller than the others.
    #[serde(default)]
    pub drop_last: bool,
    /// Random changes of each training image, in order ([`Augment`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub augment: Vec<Augment>,
    /// Measure the per-layer statistics of [`crate::inspect::diagnostics`] at step 1 and
    /// every this many steps (0: never).
    pub diagnostics_every: usize,
}

impl TrainConfig {
    /// A run of `optimizer` with these defaults (set the fields to change
    /// them): 1 epoch (the command line's default is 10), batches of 64
    /// (the last partial batch kept), a constant rate, cross-entropy, seed
    /// 0, shuffled each epoch, no step limit, no clipping, evaluation in
    /// batches of 1000, diagnostics at step 1 and every 50 steps.
    ///
    /// ```
    /// use backprop::prelude::*;
    /// let mut cfg = TrainConfig::new(OptimizerConfig::adam(1e-3));
    /// assert_eq!((cfg.epochs, cfg.batch_size, cfg.diagnostics_every), (1, 64, 50));
    /// cfg.epochs = 10;
    /// ```
    pub fn new(optimizer: OptimizerConfig) -> TrainConfig {
        TrainConfig {
            epochs: 1,
            batch_size: 64,
            optimizer,
            schedule: Schedule::Constant,
            loss: LossKind::CrossEntropy,
            seed: 0,
            shuffle: true,
            max_steps: None,
            clip_grad_norm: None,
            clip_grad_value: None,
            eval_batch_size: 1000,
            drop_last: false,
            augment: Vec::new(),
            diagnostics_every: 50,
        }
    }

    /// Reject impossible settings, naming the setting.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::invalid(
                Setting::BatchSize,
                0,
                "the batch size must be at least 1",
            ));
        }
        if self.epochs == 0 {
            return Err(Error::invalid(
                Setting::Epochs,
                0,
                "train for at least 1 epoch",
            ));
        }
        if self.max_steps == Some(0) {
            return Err(Error::invalid(Setting::MaxSteps, 0, "take at least 1 step"));
        }
        for (setting, c) in [
            (Setting::ClipGradNorm, self.clip_grad_norm),
            (Setting::ClipGradValue, self.clip_grad_value),
        ] {
            if let Some(c) = c.filter(|c| !(*c > 0.0 && c.is_finite())) {
                return Err(Error::invalid(setting, c, "must be a number > 0"));
            }
        }
        if let Schedule::OneCycle {
            total_steps,
            pct_start,
            div_factor,
            final_div_factor,
        } = self.schedule
        {
            let positive = |v: f32| v > 0.0 && v.is_finite();
            let why = if total_steps == 0 {
                Some("a one-cycle schedule needs its total steps (epochs × batches per epoch)")
            } else if !(pct_start > 0.0 && pct_start < 1.0) || pct_start * total_steps as f32 <= 1.0
            {
                Some("pct_start must be in (0, 1) and leave the warm-up more than one step")
            } else if !positive(div_factor) || !positive(final_div_factor) {
                Some("div_factor and final_div_factor must be numbers > 0")
            } else {
                None
            };
            if let Some(msg) = why {
                return Err(Error::invalid(Setting::Schedule, "one-cycle", msg));
            }
        }
        self.optimizer.validate()
    }
}

/// Figures for one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch (1-based).
    pub epoch: usize,
    /// Optimizer steps taken in this epoch.
    pub steps: usize,
    /// The learning rate used throughout the epoch.
    pub lr: f32,
    /// Mean training loss per sample over the epoch (training mode, before each update).
    pub train_loss: f64,
    /// Fraction of training samples predicted correctly over the epoch, in [0, 1].
    pub train_accuracy: f64,
    /// The training loop of this epoch alone (no evaluation).
    pub train_seconds: f64,
    /// Training samples processed per second of `train_seconds`.
    pub samples_per_second: f64,
    /// Mean loss on the test set after the epoch (`None` without a test set).
    pub test_loss: Option<f64>,
    /// Accuracy on the test set after the epoch, in [0, 1] (`None` without a test set;
    /// 0 for regression).
    pub test_accuracy: Option<f64>,
    /// The task's other figures on the test set ([`Tally::metrics`]: MAE,
    /// RMSE and R² for regression, …); `None` without a test set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_metrics: Option<Metrics>,
    /// What the model is trained to do (accuracy means nothing for regression).
    #[serde(default)]
    pub task: Task,
    /// Seconds the training loop waited for its batches (reading,
    /// decoding, augmenting: what the background loader did not hide).
    #[serde(default)]
    pub data_wait_seconds: f64,
}

/// What a run reports at the end (`--json` prints it).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The model as [`Module::describe`] names it.
    pub model: String,
    /// Number of scalar parameters of the model.
    pub parameters: usize,
    /// One record per epoch run.
    pub epochs: Vec<EpochRecord>,
    /// Optimizer steps taken in the whole run.
    pub steps: usize,
    /// The last epoch's mean training loss.
    pub train_loss: f64,
    /// The last epoch's training accuracy, in [0, 1].
    pub train_accuracy: f64,
    /// The last epoch's test loss (`None` without a test set).
    pub test_loss: Option<f64>,
    /// The last epoch's test accuracy, in [0, 1] (`None` without a test set).
    pub test_accuracy: Option<f64>,
    /// What the model was trained to do.
    pub task: Task,
    /// The last epoch's other figures on the test set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_metrics: Option<Metrics>,
    /// Classification with a test set: the last evaluation's confusion
    /// matrix, counts `[true class][predicted class]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Vec<Vec<usize>>>,
    /// The warnings the diagnostics raised (also given to [`Observer::warning`]).
    pub warnings: Vec<String>,
}

/// One optimizer step, as reported to an [`Observer`].
#[derive(Clone, Debug)]
pub struct StepInfo {
    /// Steps taken so far in the run (1-based).
    pub step: usize,
    /// This step's batch loss (before the update).
    pub loss: f32,
    /// Mean loss of the epoch so far.
    pub running_loss: f64,
    /// Accuracy of the epoch so far.
    pub running_accuracy: f64,
    /// Samples seen in the epoch so far.
    pub samples: usize,
    /// The learning rate used.
    pub lr: f32,
}

/// What the loop tells its caller as it goes (progress bars, logs).
pub trait Observer {
    /// Before epoch `epoch` (1-based), which will take `batches` batches.
    fn epoch_start(&mut self, _epoch: usize, _batches: usize) {}
    /// After each optimizer step.
    fn step(&mut self, _info: &StepInfo) {}
    /// After an epoch's training and evaluation.
    fn epoch_end(&mut self, _record: &EpochRecord) {}
    /// After a sampled step's optimizer update (before [`Observer::step`] of that step).
    fn diagnostics(&mut self, _sample: &Sample) {}
    /// A plain warning about the run (vanishing or exploding gradients, dead units).
    fn warning(&mut self, _kind: WarningKind, _message: &str) {}
    /// After an epoch's evaluation of a classifier: its confusion matrix,
    /// counts `[true class][predicted class]`.
    fn confusion(&mut self, _matrix: &[Vec<usize>]) {}
    /// The model as it is after step `steps` (after [`Observer::step`], and
    /// again after each epoch's evaluation), for an observer that keeps a
    /// copy now and then (the live page's drawing pad). Called on every
    /// step: keep it cheap.
    fn model(&mut self, _model: &dyn Module, _steps: usize) {}
    /// The observer's own state, saved with the run at each checkpoint (a
    /// progress record, the metrics so far), for its caller to restore when
    /// the run resumes.
    fn save_state(&self) -> Option<serde_json::Value> {
        None
    }
    /// New rows of the run's metrics (`metrics.csv` lines, each ending in
    /// a newline) under their `header`, as a [`Run`](crate::run::Run)
    /// records them.
    fn metrics(&mut self, _header: &str, _rows: &str) {}
    /// Instead of [`Observer::epoch_start`] when a resumed run continues
    /// epoch `epoch` (1-based) of `batches` batches after `done` of them
    /// (`samples` samples).
    fn epoch_resume(&mut self, epoch: usize, batches: usize, _done: usize, _samples: usize) {
        self.epoch_start(epoch, batches);
    }
}

/// An observer that does nothing.
pub struct Silent;
impl Observer for Silent {}

/// An epoch's line, as `backprop train` prints it: `epoch 3: train loss
/// 0.1234 acc 96.10%, test loss 0.1111 acc 96.70% (1.20s, 50000 samples/s)`.
pub fn epoch_line(r: &EpochRecord) -> String {
    let regression = r.task == Task::Regression;
    let test = match (r.test_loss, r.test_accuracy, &r.test_metrics) {
        (Some(l), _, Some(m)) if regression => {
            format!(", test loss {l:.4} {}", task::metrics_line(m))
        }
        (Some(l), Some(a), _) => format!(", test loss {l:.4} acc {:.2}%", a * 100.0),
        _ => String::new(),
    };
    let acc = match regression {
        true => String::new(),
        false => format!(" acc {:.2}%", r.train_accuracy * 100.0),
    };
    format!(
        "epoch {}: train loss {:.4}{acc}{test} ({:.2}s, {:.0} samples/s)",
        r.epoch, r.train_loss, r.train_seconds, r.samples_per_second
    )
}

/// An observer that prints a run as it goes, to standard error: a line per
/// epoch (as `backprop train` prints them), every warning, and, if asked,
/// the loss every few steps. For programs that train with the library.
#[derive(Clone, Debug, Default)]
pub struct Printer {
    every: usize,
}

impl Printer {
    /// Epoch lines and warnings.
    pub fn new() -> Printer {
        Printer::default()
    }

    /// Also the step's loss and the epoch's running accuracy every `n` steps.
    pub fn steps(mut self, n: usize) -> Printer {
        self.every = n;
        self
    }
}

impl Observer for Printer {
    fn step(&mut self, s: &StepInfo) {
        if self.every > 0 && s.step.is_multiple_of(self.every) {
            eprintln!(
                "step {}: loss {:.4} (epoch so far: {:.4}, acc {:.2}%), lr {}",
                s.step,
                s.loss,
                s.running_loss,
                s.running_accuracy * 100.0,
                s.lr
            );
        }
    }

    fn epoch_end(&mut self, r: &EpochRecord) {
        eprintln!("{}", epoch_line(r));
    }

    fn warning(&mut self, _kind: WarningKind, message: &str) {
        eprintln!("warning: {message}");
    }
}

/// Check a model, a data set and a loss against each other before training:
/// the model accepts the samples, its output is `[N, C]`, every label fits
/// (or the value targets are `[N, C]`). Returns C.
pub fn check_compatible(model: &dyn Module, data: &dyn Dataset, loss: LossKind) -> Result<usize> {
    let out = model.output_shape(data.sample_shape())?;
    if out.len() != 1 {
        return Err(Error::Spec(format!(
            "the model's output per sample has shape {out:?}; it must be a vector of class scores or values: end it with `flatten` and a `linear` layer"
        )));
    }
    let c = out[0];
    if loss == LossKind::Bce && model.output_kind() != OutputKind::Probabilities {
        return Err(Error::invalid(
            Setting::Loss,
            loss.name(),
            "bce needs probabilities: end the model with `sigmoid`, or use bce-logits",
        ));
    }
    check_vocab(model, data)?;
    match data.targets() {
        Targets::Classes(labels) => check_labels(labels, c, loss, data.source())?,
        Targets::Values(t) => check_values(t, c, loss, data.source())?,
    }
    Ok(c)
}

/// An embedding's inputs are whole numbers below its table's size.
fn check_vocab(model: &dyn Module, data: &dyn Dataset) -> Result<()> {
    let Some(v) = model.input_vocab() else {
        return Ok(());
    };
    let per = data.sample_shape().iter().product::<usize>().max(1);
    // A chunk of samples at a time: no copy of the whole data set.
    let n = data.len();
    for first in (0..n).step_by(4096) {
        let x = data.features(&(first..(first + 4096).min(n)).collect::<Vec<_>>())?;
        let bad = x
            .data()
            .iter()
            .position(|&x| !(x >= 0.0 && x.fract() == 0.0 && (x as usize) < v));
        if let Some(at) = bad {
            return Err(Error::data(
                data.source(),
                format!(
                    "sample {} holds {} at position {}, but the model's first layer is an embedding \
                     of {v} ids: its inputs must be whole numbers in 0..{v}; fix the data or the table's size",
                    first + at / per,
                    x.data()[at],
                    at % per
                ),
            ));
        }
    }
    Ok(())
}

/// Class labels fit a model of `c` outputs and its loss.
fn check_labels(
    labels: &[usize],
    c: usize,
    loss: LossKind,
    source: &std::path::Path,
) -> Result<()> {
    if c == 1 && loss == LossKind::CrossEntropy {
        return Err(Error::invalid(
            Setting::Loss,
            loss.name(),
            "the cross-entropy loss needs at least 2 outputs, the model has 1: use bce-logits \
             (or end the model with linear(…,2))",
        ));
    }
    let limit = if c == 1 { 2 } else { c };
    if let Some((i, &y)) = labels.iter().enumerate().find(|(_, &y)| y >= limit) {
        let what = if c == 1 {
            "a model with one output takes labels 0 and 1".to_string()
        } else {
            format!("the model has {c} outputs (classes 0..{})", c - 1)
        };
        return Err(Error::data(
            source,
            format!("label {y} of sample {i} is out of range: {what}; fix the labels or the last layer's size"),
        ));
    }
    Ok(())
}

/// Value targets `[N, K]` fit a model of `c` outputs and its loss.
fn check_values(t: &Tensor, c: usize, loss: LossKind, source: &std::path::Path) -> Result<()> {
    let k = t.shape()[1];
    if loss == LossKind::CrossEntropy {
        return Err(Error::invalid(
            Setting::Loss,
            loss.name(),
            "the data's targets are values, not classes: use mse, l1 or huber for regression, \
             bce-logits for multi-label targets",
        ));
    }
    if k != c {
        return Err(Error::data(
            source,
            format!(
                "holds {k} target value(s) per sample but the model has {c} output(s); \
                 end the model with linear(…,{k})"
            ),
        ));
    }
    if let Some(at) = t.data().iter().position(|v| !v.is_finite()) {
        return Err(Error::data(
            source,
            format!(
                "target {} of sample {} is {}; fix or drop that row",
                at % k,
                at / k,
                t.data()[at]
            ),
        ));
    }
    if matches!(loss, LossKind::Bce | LossKind::BceLogits) {
        if let Some(at) = t.data().iter().position(|&v| !(0.0..=1.0).contains(&v)) {
            return Err(Error::data(
                source,
                format!(
                    "target {} of sample {} is {}, but multi-label targets ({}) are 0 or 1 \
                     (probabilities in [0, 1]); use mse, l1 or huber for a regression",
                    at % k,
                    at / k,
                    t.data()[at],
                    loss.name()
                ),
            ));
        }
    }
    Ok(())
}

/// One training-mode forward and backward pass.
pub struct StepResult {
    /// The gradients (and buffer updates) for [`Optimizer::step`]; `grads.loss` is the batch loss.
    pub grads: ParamGrads,
    /// Correct predictions in the batch.
    pub correct: usize,
}

/// One forward/backward pass of `model` on a batch in training mode (`seed`
/// drives dropout), as [`train`] takes it.
pub fn compute_gradients(
    model: &dyn Module,
    x: Tensor,
    labels: &Targets,
    loss: LossKind,
    seed: u64,
) -> StepResult {
    compute_gradients_probed(model, x, labels, loss, seed, None).0
}

/// [`compute_gradients`], also measuring the statistics of `probe` (before
/// clipping; weight norms and update ratios are filled in after the step by
/// [`Probe::after_step`]). A probe not yet made is made from this pass.
pub fn compute_gradients_probed(
    model: &dyn Module,
    x: Tensor,
    labels: &Targets,
    loss: LossKind,
    seed: u64,
    probe: Option<&mut Option<Probe>>,
) -> (StepResult, Option<Vec<LayerStats>>) {
    shard_gradients(model, x, labels, loss, seed, probe, None)
}

/// One shard of a data-parallel step: where the shard starts in the global
/// batch, the global batch's size, and the processes.
struct ShardOf {
    first: usize,
    global: usize,
    comm: Rc<dyn Collective>,
}

/// [`compute_gradients_probed`] on a shard: the loss is `Σ ℓᵢ / B` over the
/// shard's samples (B: the global batch), so the shards' gradients add up
/// to the global batch's.
fn shard_gradients(
    model: &dyn Module,
    x: Tensor,
    labels: &Targets,
    loss: LossKind,
    seed: u64,
    probe: Option<&mut Option<Probe>>,
    shard: Option<&ShardOf>,
) -> (StepResult, Option<Vec<LayerStats>>) {
    let mut p = Pass::train(model, seed);
    if let Some(s) = shard {
        p.set_shard(s.first, s.comm.clone());
    }
    let xv = p.input(x);
    let out = model.forward(&mut p, xv);
    let mut l = apply_loss(loss, &mut p, out, labels);
    if let Some(s) = shard {
        let k = p.input(Tensor::scalar(
            (labels.len() as f64 / s.global as f64) as f32,
        ));
        l = p.mul(l, k);
    }
    let right = correct(p.value(out), labels, loss);
    let probe = probe.map(|slot| &*slot.get_or_insert_with(|| Probe::new(model, &p)));
    if let Some(pr) = probe {
        pr.retain(&mut p);
    }
    let (grads, stats) = p.backward_inspect(l, |g, table, outputs, grads| {
        probe.map(|pr| pr.measure(g, table, outputs, grads))
    });
    (
        StepResult {
            grads,
            correct: right,
        },
        stats,
    )
}

/// Mean loss and accuracy of `model` on `data`, recording no graph (for
/// regression the accuracy is 0: see [`evaluate_full`]).
pub fn evaluate(
    model: &dyn Module,
    data: &dyn Dataset,
    loss: LossKind,
    batch_size: usize,
) -> Result<(f64, f64)> {
    let t = tally(model, data, loss, batch_size)?;
    Ok((t.mean_loss(), t.accuracy()))
}

/// Every figure of `model` on `data` for its task ([`Task::of`]): the
/// loss, the accuracy, MAE/RMSE/R², precision/recall/F1, the confusion
/// matrix.
pub fn evaluate_full(
    model: &dyn Module,
    data: &dyn Dataset,
    loss: LossKind,
    batch_size: usize,
) -> Result<Evaluation> {
    Ok(Evaluation::from(&tally(model, data, loss, batch_size)?))
}

/// The sums of an evaluation of `model` on `data`, batch by batch.
pub fn tally(
    model: &dyn Module,
    data: &dyn Dataset,
    loss: LossKind,
    batch_size: usize,
) -> Result<Tally> {
    tally_range(model, data, loss, batch_size, 0..data.len())
}

/// [`tally`] over the samples `range` of `data`.
fn tally_range(
    model: &dyn Module,
    data: &dyn Dataset,
    loss: LossKind,
    batch_size: usize,
    range: std::ops::Range<usize>,
) -> Result<Tally> {
    let width = model
        .output_shape(data.sample_shape())
        .ok()
        .and_then(|s| s.first().copied())
        .unwrap_or(1);
    let mut t = Tally::new(Task::of(data.targets(), loss), width);
    let n = range.end;
    let mut start = range.start;
    while start < n {
        let end = (start + batch_size.max(1)).min(n);
        let idx: Vec<usize> = (start..end).collect();
        let (x, y) = data.batch(&idx)?;
        let mut p = Pass::eval(model);
        let xv = p.input(x);
        let out = model.forward(&mut p, xv);
        let l = apply_loss(loss, &mut p, out, &y);
        t.add(p.value(out), &y, loss, p.value(l).item() as f64);
        start = end;
    }
    Ok(t)
}

/// Every check [`train`] makes before its first step: the settings, the
/// model against both data sets, and batch sizes batch norm can use. Callers
/// that print something before training (the CLI) run it first themselves.
pub fn check_run<D: Dataset>(
    model: &dyn Module,
    train: &D,
    test: Option<&D>,
    cfg: &TrainConfig,
) -> Result<()> {
    check_run_dyn(model, train, test.map(|t| t as &dyn Dataset), cfg)
}

/// [`check_run`] on trait objects.
fn check_run_dyn(
    model: &dyn Module,
    train: &dyn Dataset,
    test: Option<&dyn Dataset>,
    cfg: &TrainConfig,
) -> Result<()> {
    cfg.validate()?;
    check_compatible(model, train, cfg.loss)?;
    // The full batch and the last, partial one.
    for n in [
        cfg.batch_size.min(train.len()),
        train.len() % cfg.batch_size,
    ] {
        if n > 0 {
            model.check_batch(train.sample_shape(), n)?;
        }
    }
    if let Some(t) = test {
        check_compatible(model, t, cfg.loss)?;
    }
    check_memory(model, train, cfg)
}

/// The memory a training step needs beyond the weights and the data
/// already held, asked for in one block before the first step (see
/// [`crate::mem`]): the gradients and the optimizer's state (as many values
/// as the parameters, each), and a batch's activations, their gradients and
/// the ops' saved values (about three times the layers' outputs). The
/// error says which part does not fit, and the batch size that would.
pub fn check_memory(model: &dyn Module, train: &dyn Dataset, cfg: &TrainConfig) -> Result<()> {
    use crate::mem::{can_reserve, human, largest_reservable};
    let params = model.num_parameters();
    let copies = 1 + cfg.optimizer.state_copies();
    let fixed = params.saturating_mul(4 * copies);
    let sample = train.sample_shape();
    let per_sample = model
        .activation_values(sample)?
        .saturating_add(sample.iter().product())
        .saturating_mul(4 * 3);
    let batch = cfg.batch_size.min(train.len()).max(1);
    let need = fixed.saturating_add(per_sample.saturating_mul(batch));
    if can_reserve(need) {
        return Ok(());
    }
    let most = largest_reservable(need);
    let state = format!(
        "{} for the gradients and the optimizer's state ({params} parameters × {copies} copies × 4 bytes)",
        human(fixed)
    );
    if most < fixed.saturating_add(per_sample) {
        return Err(Error::OutOfMemory(format!(
            "training needs {state} and {} per sample of a batch; this machine can give at most {} now: \
             use smaller layers, or an optimizer that keeps less state (sgd keeps none, adam two copies)",
            human(per_sample),
            human(most)
        )));
    }
    let fits = (most - fixed) / per_sample;
    Err(Error::invalid(
        Setting::BatchSize,
        cfg.batch_size,
        format!(
            "not enough memory: a batch of {batch} needs about {} for its activations, on top of {state}; \
             this machine can give at most {} now: a batch size of {fits} would fit",
            human(per_sample.saturating_mul(batch)),
            human(most)
        ),
    ))
}

/// The evaluation batch size to use: `cfg.eval_batch_size`, or as many
/// samples as the memory left can hold (evaluation keeps one layer output
/// per value, no gradients) when that is fewer. The test loss may then
/// differ in its last digits (other partial sums); the accuracy does not.
fn eval_batch_that_fits(model: &dyn Module, data: &dyn Dataset, cfg: &TrainConfig) -> usize {
    let per_sample = model
        .activation_values(data.sample_shape())
        .unwrap_or(0)
        .saturating_mul(4)
        .max(1);
    let want = cfg.eval_batch_size.max(1);
    if crate::mem::can_reserve(per_sample.saturating_mul(want)) {
        return want;
    }
    (crate::mem::largest_reservable(per_sample.saturating_mul(want)) / per_sample).clamp(1, want)
}

/// The dropout seed of training step `step` (1-based) of a run seeded with
/// `seed`: what [`train`] gives [`Pass::train`], so that a loop written by
/// hand draws the same masks.
pub fn step_seed(seed: u64, step: usize) -> u64 {
    seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Where a run stands: everything besides the model and the optimizer's
/// state that it needs to continue exactly as if never stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The run's settings.
    pub config: TrainConfig,
    /// Optimizer steps taken.
    pub steps: usize,
    /// The epoch in progress (0-based); equal to the epochs done when `batch` is 0.
    pub epoch: usize,
    /// Batches of `epoch` done.
    pub batch: usize,
    /// The shuffling generator's position (ChaCha8 word position, as text)
    /// before `epoch`'s batch order was drawn, so that the order is drawn again.
    pub order_position: String,
    /// `epoch`'s running sums so far: summed batch loss × samples, correct
    /// predictions, samples, steps.
    pub loss_sum: f64,
    /// Correct predictions in `epoch` so far.
    pub right: usize,
    /// Samples seen in `epoch` so far.
    pub seen: usize,
    /// The finished epochs' records.
    pub records: Vec<EpochRecord>,
    /// The warnings given so far.
    pub warnings: Vec<String>,
    /// [`Dataset::fingerprint`] of the training data (and the test data);
    /// `(0, None)` in a run that neither saves nor resumes (nothing reads
    /// it there).
    pub data: (u64, Option<u64>),
    /// Whether the run ended (its last epoch, or its step limit).
    pub finished: bool,
}

impl RunState {
    /// A run of `config` at its start, on data with the fingerprints `data`.
    pub fn new(config: TrainConfig, data: (u64, Option<u64>)) -> RunState {
        RunState {
            config,
            steps: 0,
            epoch: 0,
            batch: 0,
            order_position: "0".into(),
            loss_sum: 0.0,
            right: 0,
            seen: 0,
            records: Vec::new(),
            warnings: Vec::new(),
            data,
            finished: false,
        }
    }
}

/// A run to continue: its [`RunState`] and the optimizer's
/// [`state_dict`](Optimizer::state_dict).
pub struct Resume {
    /// Where the run stood.
    pub state: RunState,
    /// The optimizer's state, as [`Optimizer::state_dict`] gave it.
    pub optimizer: Vec<(String, Tensor)>,
}

/// What a checkpoint writes: the model, the optimizer, where the run stands,
/// and the observer's [`Observer::save_state`].
pub type SaveFn<'a> =
    dyn FnMut(&dyn Module, &Optimizer, &RunState, Option<serde_json::Value>) -> Result<()> + 'a;

/// Saving a run as it goes: `save` is called every `every` optimizer steps
/// (0: never) and at the end of every epoch, after the parameters were
/// checked to be finite. An error stops the run with that error.
pub struct Checkpoints<'a> {
    /// Save every this many optimizer steps (0: only at epochs' ends).
    pub every: usize,
    /// Write the model, the optimizer and the run's state.
    pub save: &'a mut SaveFn<'a>,
}

/// Train `model` on `train`, evaluating on `test` after each epoch
/// (`Trainer::new(cfg).run(…)`).
///
/// Stops with [`Error::Diverged`] if the loss becomes NaN or infinite; the
/// model is then left as it was after the last good step.
pub fn train<D: Dataset>(
    model: &mut dyn Module,
    train: &D,
    test: Option<&D>,
    cfg: &TrainConfig,
    obs: &mut dyn Observer,
) -> Result<(Summary, Optimizer)> {
    Trainer::new(cfg).run(model, train, test, obs)
}

/// A training run with its options: continuing a saved run, saving as it
/// goes, training data-parallel over several processes.
///
/// A resumed run with the same settings and thread count ends with
/// bit-identical weights to one never stopped. The settings may extend the
/// saved run's epochs or step limit; any other difference is an error naming it.
pub struct Trainer<'a> {
    cfg: &'a TrainConfig,
    resume: Option<Resume>,
    checkpoints: Option<Checkpoints<'a>>,
    collective: Option<Rc<dyn Collective>>,
    ahead: usize,
}

impl<'a> Trainer<'a> {
    /// A run with the settings `cfg`, two batches prepared ahead on a
    /// background thread.
    pub fn new(cfg: &'a TrainConfig) -> Trainer<'a> {
        Trainer {
            cfg,
            resume: None,
            checkpoints: None,
            collective: None,
            ahead: 2,
        }
    }

    /// Prepare up to `n` batches ahead on a background thread (0: on the
    /// training thread). The run is the same, bit for bit, either way.
    pub fn prefetch(mut self, n: usize) -> Self {
        self.ahead = n;
        self
    }

    /// Continue the saved run `r` (the model must hold the weights saved with it).
    pub fn resume(mut self, r: Resume) -> Self {
        self.resume = Some(r);
        self
    }

    /// Save as the run goes.
    pub fn checkpoints(mut self, c: Checkpoints<'a>) -> Self {
        self.checkpoints = Some(c);
        self
    }

    /// Train data-parallel over the processes of `comm` (see [`crate::dist`]):
    /// every process runs the same `Trainer` with the same settings and data,
    /// and holds the same weights after every step.
    pub fn collective(mut self, comm: Rc<dyn Collective>) -> Self {
        self.collective = Some(comm);
        self
    }

    /// Run it.
    pub fn run<D: Dataset>(
        self,
        model: &mut dyn Module,
        train: &D,
        test: Option<&D>,
        obs: &mut dyn Observer,
    ) -> Result<(Summary, Optimizer)> {
        let test = test.map(|t| t as &dyn Dataset);
        let mut l = trainer::Loop::start(self, model, train, test, obs)?;
        for epoch in l.first_epoch()..l.epochs() {
            if l.epoch(epoch)? {
                break;
            }
        }
        l.finish()
    }
}

/// Sum the shards' gradients (and losses and correct counts) over the
/// processes, in rank order; returns the global batch's correct count.
fn sum_over_processes(comm: &dyn Collective, grads: &mut ParamGrads, correct: usize) -> usize {
    let mut flat: Vec<f32> = Vec::new();
    for g in grads.tensors().iter().flatten() {
        flat.extend_from_slice(g.data());
    }
    comm.sum_f32(&mut flat);
    let mut at = 0;
    for g in grads.tensors_mut().iter_mut().flatten() {
        let n = g.numel();
        g.data_mut().copy_from_slice(&flat[at..at + n]);
        at += n;
    }
    let mut v = [grads.loss as f64, correct as f64];
    comm.sum_f64(&mut v);
    grads.loss = v[0] as f32;
    v[1] as usize
}

/// Before a data-parallel run: every process has the same settings, data,
/// and initial weights, and every batch has a sample for each process.
fn check_processes(
    comm: &dyn Collective,
    model: &dyn Module,
    train: &dyn Dataset,
    test: Option<&dyn Dataset>,
    cfg: &TrainConfig,
) -> Result<()> {
    let n = comm.size();
    let last = train.len() % cfg.batch_size;
    let smallest = if last > 0 {
        last
    } else {
        cfg.batch_size.min(train.len())
    };
    if smallest < n {
        return Err(Error::invalid(
            Setting::BatchSize,
            cfg.batch_size,
            format!(
                "a batch of {smallest} sample(s) cannot be shared by {n} processes (the last batch holds what \
                 is left of {} samples); use a batch size with at least {n} samples in every batch",
                train.len()
            ),
        ));
    }
    let digest = |text: &str| {
        let mut h = crate::data::Fnv::new();
        h.bytes(text.as_bytes());
        h.finish()
    };
    let settings = setting_values(cfg);
    let all = comm.gather_u64(digest(&format!("{settings:?}")));
    if all.iter().any(|&v| v != all[0]) {
        // Find the first setting that differs (every rank takes the same turns).
        for (name, value) in &settings {
            let all = comm.gather_u64(digest(value));
            if let Some(r) = all.iter().position(|&v| v != all[0]) {
                return Err(Error::Config(format!(
                    "process {r} of {n} started with other settings than process 0: its `{name}` differs \
                     (here, on process {}: {value}); start every process with the same command line and files",
                    comm.rank()
                )));
            }
        }
    }
    let weights = weights_digest(model);
    for (what, mine) in [
        ("training data", train.fingerprint()),
        ("test data", test.map_or(0, |t| t.fingerprint())),
        ("initial weights", weights),
    ] {
        let all = comm.gather_u64(mine);
        if let Some(r) = all.iter().position(|&v| v != all[0]) {
            return Err(Error::Config(format!(
                "process {r} of {n} started with other {what} than process 0; start every process with the \
                 same command line and files"
            )));
        }
    }
    Ok(())
}

/// Every setting of `cfg` as `(name, value)`, nested ones by their path
/// (`optimizer.lr`), in a fixed order.
fn setting_values(cfg: &TrainConfig) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&name, v, out);
                }
            }
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    let v = serde_json::to_value(cfg).expect("settings serialize (no maps, no non-finite keys)");
    walk("", &v, &mut out);
    out
}

/// A digest of every parameter's and buffer's name and bits.
fn weights_digest(model: &dyn Module) -> u64 {
    let mut h = crate::data::Fnv::new();
    for (name, t) in model.state_dict() {
        h.bytes(name.as_bytes());
        for v in t.data() {
            h.word(v.to_bits() as u64);
        }
    }
    h.finish()
}

/// [`tally`] split over the processes: each takes a contiguous part of
/// `data`, and the sums are added over the processes.
fn tally_shared(
    model: &dyn Module,
    data: &dyn Dataset,
    loss: LossKind,
    batch_size: usize,
    comm: &dyn Collective,
) -> Result<Tally> {
    let (lo, hi) = shard(data.len(), comm.rank(), comm.size());
    let mut t = tally_range(model, data, loss, batch_size, lo..hi)?;
    let mut v = t.flat();
    comm.sum_f64(&mut v);
    t.set_flat(&v);
    Ok(t)
}

/// The first setting in which `a` and `b` differ: its name
/// (`optimizer.lr`) and both values.
fn first_difference(a: &TrainConfig, b: &TrainConfig) -> Option<(String, String, String)> {
    if a == b {
        return None;
    }
    let (va, vb) = (setting_values(a), setting_values(b));
    va.into_iter()
        .zip(vb)
        .find(|(x, y)| x != y)
        .map(|((name, x), (_, y))| (name, x, y))
}

/// The chance-level warning, if a classifier's loss and accuracy so far
/// (the epoch's, with this step's `(loss, correct, samples)`) are still
/// at chance after `st.steps` steps.
fn chance_level_warning(
    cfg: &TrainConfig,
    st: &RunState,
    classes: usize,
    (l, right, n): (f32, usize, usize),
) -> Option<(WarningKind, String)> {
    if cfg.loss != LossKind::CrossEntropy {
        return None;
    }
    let all = (st.seen + n) as f64;
    let loss = (st.loss_sum + l as f64 * n as f64) / all;
    let acc = (st.right + right) as f64 / all;
    chance_level(st.steps, classes, loss, acc).map(|m| (WarningKind::NotLearning, m))
}

fn diverged(what: &str, step: usize, epoch: usize, lr: f32) -> Error {
    Error::Diverged(format!(
        "{what} at step {step} (epoch {epoch}): lower the learning rate (e.g. to {:e}) or clip the \
         gradients' norm (e.g. to 1.0); nothing was saved",
        lr / 10.0
    ))
}

/// The last update can turn weights (or the outputs they give) NaN or
/// infinite without the training loss showing it yet.
fn check_finite(model: &dyn Module, rec: Option<&EpochRecord>, step: usize, lr: f32) -> Result<()> {
    let epoch = rec.map_or(1, |r| r.epoch);
    for (name, t) in model.parameters() {
        if let Some(v) = t.value().data().iter().find(|v| !v.is_finite()) {
            return Err(diverged(
                &format!("parameter `{name}` became {v}"),
                step,
                epoch,
                lr,
            ));
        }
    }
    if let Some(l) = rec.and_then(|r| r.test_loss).filter(|l| !l.is_finite()) {
        return Err(diverged(
            &format!("the test loss became {l}"),
            step,
            epoch,
            lr,
        ));
    }
    Ok(())
}

/// Where an epoch's loop stopped.
struct EpochTally {
    /// The run's task.
    task: Task,
    /// Seconds waited for batches.
    waited: f64,
    /// The evaluation's batch size ([`eval_batch_that_fits`]).
    eval_batch: usize,
    epoch: usize,
    steps: usize,
    lr: f32,
    loss_sum: f64,
    right: usize,
    seen: usize,
    t0: Instant,
}

fn finish_epoch(
    model: &dyn Module,
    test: Option<&dyn Dataset>,
    cfg: &TrainConfig,
    comm: Option<&dyn Collective>,
    t: EpochTally,
) -> Result<(EpochRecord, Option<Vec<Vec<usize>>>)> {
    let secs = t.t0.elapsed().as_secs_f64();
    let eval = match (test, comm) {
        (None, _) => None,
        (Some(d), None) => Some(tally(model, d, cfg.loss, t.eval_batch)?),
        (Some(d), Some(c)) => Some(tally_shared(model, d, cfg.loss, t.eval_batch, c)?),
    };
    let eval = eval.as_ref().map(Evaluation::from);
    let confusion = eval.as_ref().and_then(|e| e.confusion.clone());
    let rec = EpochRecord {
        epoch: t.epoch + 1,
        steps: t.steps,
        lr: t.lr,
        train_loss: t.loss_sum / t.seen.max(1) as f64,
        train_accuracy: t.right as f64 / t.seen.max(1) as f64,
        train_seconds: secs,
        samples_per_second: t.seen as f64 / secs.max(1e-9),
        test_loss: eval.as_ref().map(|e| e.loss),
        test_accuracy: eval.as_ref().map(|e| e.accuracy),
        test_metrics: eval.map(|e| e.metrics),
        task: t.task,
        data_wait_seconds: t.waited,
    };
    Ok((rec, confusion))
}
