//! Seeing inside a training run: per-layer statistics of the gradient flow,
//! sampled every few steps, and the plain warnings they raise.
//!
//! On a sampled step (`--diagnostics-every N`, default 50; also step 1) the
//! training loop marks each parameterized layer's output with
//! [`Graph::retain_grad`] before the backward pass, so that the gradient
//! table keeps δ = ∂C/∂z for it, and reads the statistics below off the graph,
//! the gradients and the weights before and after the optimizer step. Other
//! steps run exactly as without diagnostics, which keeps the cost at about
//! 1 % of training time on the `mlp-small` workload at the default of every
//! 50 steps (`cargo run --release --example diagnostics_cost` measures it).
//!
//! | statistic | column | layers | meaning |
//! | --- | --- | --- | --- |
//! | [`Stat::GradNorm`] | `grad_norm` | with parameters | ‖∂C/∂W‖ of the layer's weights (every parameter whose name starts with `weight`; all parameters if none does), before clipping |
//! | [`Stat::DeltaNorm`] | `delta_norm` | with parameters | ‖δ‖ = ‖∂C/∂z‖ over the batch, z = the layer's output (before its activation) |
//! | [`Stat::WeightNorm`] | `weight_norm` | with parameters | ‖W‖ before the step |
//! | [`Stat::UpdateRatio`] | `update_ratio` | with parameters | ‖ΔW‖ / ‖W‖ of this step's update (learning rate, momentum, clipping included); about 1e-3 is healthy |
//! | [`Stat::WeightQ`] | `w_q0`, `w_q16`, `w_q50`, `w_q84`, `w_q100` | with parameters | the weights' quantiles before the step: least, 16th percentile, median, 84th, greatest (a normal distribution's ±1σ band), for histograms over time |
//! | [`Stat::GradQ`] | `g_q0` … `g_q100` | with parameters | the same quantiles of the weights' gradients |
//! | [`Stat::DeadFrac`] | `dead_frac` | `relu` | share of units that are 0 for every sample of the batch |
//! | [`Stat::SaturatedFrac`] | `saturated_frac` | `sigmoid`, `tanh` | share of units whose derivative is below 1 % of its peak for every sample of the batch |
//!
//! A *unit* is one element of a sample's output: one feature of `[N, F]`, one
//! (channel, position) of `[N, C, H, W]`. A sigmoid unit is saturated when
//! σ' = σ(1−σ) < 0.0025 (|z| > 5.99), a tanh unit when 1 − tanh² < 0.01
//! (|z| > 2.99); both are read off the layer's output, so no extra tensor is
//! kept. Like a dead ReLU, a unit saturated for the whole batch passes back
//! (almost) no gradient for that batch.
//!
//! C is the mean loss over the batch, so gradient norms shrink as the batch
//! grows; compare layers within a run, not runs with different batch sizes.

use crate::autograd::Activation;
use crate::nn::module::output_owner;
use crate::nn::{named_modules, LayerOutput, Module, ModuleExt, Pass};
use crate::ops::unary::Unary;
use crate::{GradTable, Graph, Tensor};
use std::collections::HashSet;

/// One per-layer statistic (a column of `metrics.csv`: `L{layer}.{name}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Stat {
    /// ‖∂C/∂W‖ of the layer's weights, before clipping (`grad_norm`).
    GradNorm,
    /// ‖δ‖ = ‖∂C/∂z‖ over the batch, z = the layer's output (`delta_norm`).
    DeltaNorm,
    /// ‖W‖ before the step (`weight_norm`).
    WeightNorm,
    /// ‖ΔW‖ / ‖W‖ of the step's update (`update_ratio`).
    UpdateRatio,
    /// Share of ReLU units that are 0 for every sample of the batch (`dead_frac`).
    DeadFrac,
    /// Share of sigmoid or tanh units saturated for every sample of the batch (`saturated_frac`).
    SaturatedFrac,
    /// The weights' [`QUANTILES`]`[i]` before the step (`w_q0` … `w_q100`).
    WeightQ(usize),
    /// The weight gradients' [`QUANTILES`]`[i]` (`g_q0` … `g_q100`).
    GradQ(usize),
}

/// The quantiles of each layer's weights and gradients recorded at a
/// sampled step: the least, the 16th percentile, the median, the 84th and
/// the greatest (for a normal distribution, the ±1σ band inside the
/// range), enough to draw a distribution over time as TensorBoard does.
pub const QUANTILES: [f64; 5] = [0.0, 0.16, 0.5, 0.84, 1.0];

/// The [`QUANTILES`] of `values`, nearest rank (none when empty; values
/// that are not finite left out).
///
/// ```
/// use backprop::inspect::diagnostics::quantiles;
/// let q = quantiles((0..=100).rev().map(|i| i as f32)).unwrap();
/// assert_eq!(q, [0.0, 16.0, 50.0, 84.0, 100.0]);
/// assert!(quantiles([f32::NAN].into_iter()).is_none());
/// ```
pub fn quantiles(values: impl Iterator<Item = f32>) -> Option<Vec<f64>> {
    let mut v: Vec<f32> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len();
    Some(
        QUANTILES
            .iter()
            .map(|q| {
                let k = ((q * (n - 1) as f64).round() as usize).min(n - 1);
                *v.select_nth_unstable_by(k, f32::total_cmp).1 as f64
            })
            .collect(),
    )
}

impl Stat {
    /// The column suffix.
    pub fn name(self) -> &'static str {
        match self {
            Stat::GradNorm => "grad_norm",
            Stat::DeltaNorm => "delta_norm",
            Stat::WeightNorm => "weight_norm",
            Stat::UpdateRatio => "update_ratio",
            Stat::DeadFrac => "dead_frac",
            Stat::SaturatedFrac => "saturated_frac",
            Stat::WeightQ(i) => ["w_q0", "w_q16", "w_q50", "w_q84", "w_q100"][i.min(4)],
            Stat::GradQ(i) => ["g_q0", "g_q16", "g_q50", "g_q84", "g_q100"][i.min(4)],
        }
    }

    /// The statistics of a layer with parameters.
    pub const PARAM: [Stat; 4] = [
        Stat::GradNorm,
        Stat::DeltaNorm,
        Stat::WeightNorm,
        Stat::UpdateRatio,
    ];
}

/// The statistics of one layer at one sampled step.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerStats {
    /// The layer's module name: its index in a model line (`1`, whose
    /// parameters are `1.weight`, …), or its path in a struct (`block.conv1`).
    pub layer: String,
    /// What the layer is, e.g. `linear(784,128)`.
    pub name: String,
    /// [`Stat::GradNorm`] (layers with parameters).
    pub grad_norm: Option<f64>,
    /// [`Stat::DeltaNorm`] (layers with parameters).
    pub delta_norm: Option<f64>,
    /// [`Stat::WeightNorm`] (layers with parameters).
    pub weight_norm: Option<f64>,
    /// [`Stat::UpdateRatio`] (layers with parameters).
    pub update_ratio: Option<f64>,
    /// [`Stat::DeadFrac`] (`relu` layers), in [0, 1].
    pub dead_frac: Option<f64>,
    /// [`Stat::SaturatedFrac`] (`sigmoid` and `tanh` layers), in [0, 1].
    pub saturated_frac: Option<f64>,
    /// [`Stat::WeightQ`] (layers with parameters).
    #[serde(default)]
    pub weight_quantiles: Option<Vec<f64>>,
    /// [`Stat::GradQ`] (layers with parameters).
    #[serde(default)]
    pub grad_quantiles: Option<Vec<f64>>,
}

impl LayerStats {
    /// The value of one statistic, if this layer has it.
    pub fn get(&self, s: Stat) -> Option<f64> {
        match s {
            Stat::GradNorm => self.grad_norm,
            Stat::DeltaNorm => self.delta_norm,
            Stat::WeightNorm => self.weight_norm,
            Stat::UpdateRatio => self.update_ratio,
            Stat::DeadFrac => self.dead_frac,
            Stat::SaturatedFrac => self.saturated_frac,
            Stat::WeightQ(i) => self.weight_quantiles.as_ref()?.get(i).copied(),
            Stat::GradQ(i) => self.grad_quantiles.as_ref()?.get(i).copied(),
        }
    }

    /// "layer 3 linear(128,10)": how reports name a layer.
    pub fn label(&self) -> String {
        format!("layer {} {}", self.layer, self.name)
    }

    /// The statistics this layer has (the columns it fills).
    pub fn stats(&self) -> Vec<Stat> {
        let mut v = Vec::new();
        if self.grad_norm.is_some() {
            v.extend(Stat::PARAM);
            v.extend((0..QUANTILES.len()).map(Stat::WeightQ));
            v.extend((0..QUANTILES.len()).map(Stat::GradQ));
        }
        if self.dead_frac.is_some() {
            v.push(Stat::DeadFrac);
        }
        if self.saturated_frac.is_some() {
            v.push(Stat::SaturatedFrac);
        }
        v
    }
}

/// Everything measured at one sampled step.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// The step (1-based, counted over the run).
    pub step: usize,
    /// The epoch (1-based).
    pub epoch: usize,
    /// The learning rate of the step.
    pub lr: f32,
    /// One entry per watched layer, in layer order (see [`Probe::columns`]).
    pub layers: Vec<LayerStats>,
}

/// Whether step `step` (1-based) is sampled when sampling every `every` steps:
/// step 1, then every multiple of `every`; never when `every` is 0.
///
/// ```
/// use backprop::inspect::diagnostics::is_sampled;
/// let s: Vec<usize> = (1..=120).filter(|&s| is_sampled(s, 50)).collect();
/// assert_eq!(s, [1, 50, 100]);
/// assert!(!is_sampled(1, 0));
/// ```
pub fn is_sampled(step: usize, every: usize) -> bool {
    every > 0 && (step == 1 || step.is_multiple_of(every))
}

/// One layer the statistics cover.
#[derive(Clone, Debug)]
struct Watched {
    /// The module's name (`1`, `block.conv1`).
    layer: String,
    /// Its description (`linear(784,128)`).
    name: String,
    /// Positions in the model's parameter order of the weights measured.
    weights: Vec<usize>,
    /// The activation whose units are counted (relu: dead; sigmoid, tanh: saturated).
    act: Option<Unary>,
    /// Which of the pass's recorded layer outputs is this layer's.
    output: usize,
}

impl Watched {
    fn stats(&self) -> Vec<Stat> {
        let mut v = Vec::new();
        if !self.weights.is_empty() {
            v.extend(Stat::PARAM);
            v.extend((0..QUANTILES.len()).map(Stat::WeightQ));
            v.extend((0..QUANTILES.len()).map(Stat::GradQ));
        }
        match self.act {
            Some(Unary::Relu) => v.push(Stat::DeadFrac),
            Some(Unary::Sigmoid | Unary::Tanh) => v.push(Stat::SaturatedFrac),
            _ => {}
        }
        v
    }
}

/// Which layers of a model are measured, and how; made once per run from
/// the first training pass.
///
/// A layer is a module that records its output with
/// [`Pass::layer_output`] (every built-in layer with parameters, and the
/// activations): its parameters are the ones it owns directly, its δ the
/// gradient of that output.
///
/// ```
/// use backprop::nn::{Init, Module, Pass, Sequential};
/// use backprop::inspect::diagnostics::Probe;
/// use backprop::Tensor;
/// use rand::SeedableRng;
/// let m = Sequential::parse("flatten,linear(4,3),relu,linear(3,2)", Init::Default,
///     &mut rand_chacha::ChaCha8Rng::seed_from_u64(0)).unwrap();
/// let mut p = Pass::train(&m, 0);
/// let x = p.input(Tensor::zeros(&[2, 4]));
/// m.forward(&mut p, x);
/// let cols = Probe::new(&m, &p).columns();
/// assert_eq!(cols[..5], ["L1.grad_norm", "L1.delta_norm", "L1.weight_norm", "L1.update_ratio", "L1.w_q0"]);
/// assert_eq!(cols[14], "L2.dead_frac");
/// assert_eq!(cols.len(), 29); // 14 per layer with parameters, 1 per relu
/// ```
#[derive(Clone, Debug)]
pub struct Probe {
    watched: Vec<Watched>,
}

impl Probe {
    /// Watch every layer output `pass` recorded (a forward pass of `model`)
    /// whose module has parameters of its own, and every relu, sigmoid and tanh.
    pub fn new(model: &dyn Module, pass: &Pass) -> Probe {
        let mods = named_modules(model);
        let params: Vec<String> = model.parameters().into_iter().map(|(n, _)| n).collect();
        let mut watched: Vec<Watched> = Vec::new();
        for (k, out) in pass.layer_outputs().iter().enumerate() {
            let Some((layer, m)) = output_owner(&mods, out) else {
                continue;
            };
            if watched.iter().any(|w| &w.layer == layer) {
                continue; // a module called twice: its first call stands for it
            }
            // The parameters the module owns itself: `{layer}.{local}`.
            let own: Vec<(usize, &str)> = params
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    let local = if layer.is_empty() {
                        Some(n.as_str())
                    } else {
                        n.strip_prefix(layer.as_str())?.strip_prefix('.')
                    }?;
                    (!local.contains('.')).then_some((i, local))
                })
                .collect();
            let named: Vec<usize> = own
                .iter()
                .filter(|(_, l)| l.starts_with("weight"))
                .map(|(i, _)| *i)
                .collect();
            let weights = if named.is_empty() {
                own.iter().map(|(i, _)| *i).collect()
            } else {
                named
            };
            let act = match pass.op(out.var).activation() {
                Some(Activation::Relu) => Some(Unary::Relu),
                Some(Activation::Sigmoid) => Some(Unary::Sigmoid),
                Some(Activation::Tanh) => Some(Unary::Tanh),
                _ => None,
            };
            if !weights.is_empty() || act.is_some() {
                watched.push(Watched {
                    layer: layer.clone(),
                    name: m.describe(),
                    weights,
                    act,
                    output: k,
                });
            }
        }
        Probe { watched }
    }

    /// `(layer, statistic)` for every value a sample holds, in column order.
    pub fn stats(&self) -> Vec<(String, Stat)> {
        self.watched
            .iter()
            .flat_map(|w| w.stats().into_iter().map(move |s| (w.layer.clone(), s)))
            .collect()
    }

    /// The per-layer column names of `metrics.csv`: `L{layer}.{statistic}`.
    pub fn columns(&self) -> Vec<String> {
        self.stats()
            .iter()
            .map(|(l, s)| format!("L{l}.{}", s.name()))
            .collect()
    }

    /// Whether the model has sigmoid or tanh layers.
    pub fn has_squashing(&self) -> bool {
        self.watched
            .iter()
            .any(|w| matches!(w.act, Some(Unary::Sigmoid | Unary::Tanh)))
    }

    /// Before the backward pass: keep δ of every parameterized layer's output.
    pub fn retain(&self, pass: &mut Pass) {
        for w in self.watched.iter().filter(|w| !w.weights.is_empty()) {
            if let Some(o) = pass.layer_outputs().get(w.output) {
                let v = o.var;
                pass.retain_grad(v);
            }
        }
    }

    /// After the backward pass: gradient and δ norms, dead and saturated
    /// shares. `grads` are the parameter gradients in the model's order
    /// (before clipping); `table` the gradient table [`Probe::retain`]
    /// prepared, `outputs` the pass's recorded layer outputs. Weight norms
    /// and update ratios come later, from [`Probe::after_step`].
    pub fn measure(
        &self,
        g: &Graph,
        table: &GradTable,
        outputs: &[LayerOutput],
        grads: &[Option<Tensor>],
    ) -> Vec<LayerStats> {
        self.watched
            .iter()
            .filter_map(|w| {
                let out = outputs.get(w.output)?.var;
                let mut s = LayerStats {
                    layer: w.layer.clone(),
                    name: w.name.clone(),
                    ..Default::default()
                };
                if !w.weights.is_empty() {
                    s.grad_norm =
                        Some(norm_of(w.weights.iter().filter_map(|&i| grads[i].as_ref())));
                    s.delta_norm = Some(table.get(out).map_or(0.0, |d| norm_of([d].into_iter())));
                    s.grad_quantiles = quantiles(
                        w.weights
                            .iter()
                            .filter_map(|&i| grads[i].as_ref())
                            .flat_map(|t| t.data().iter().copied()),
                    );
                }
                match w.act {
                    Some(Unary::Relu) => s.dead_frac = Some(dead_fraction(g.value(out))),
                    Some(f @ (Unary::Sigmoid | Unary::Tanh)) => {
                        s.saturated_frac = Some(saturated_fraction(g.value(out), f))
                    }
                    _ => {}
                }
                Some(s)
            })
            .collect()
    }

    /// Copies of the measured weights, taken just before the optimizer step.
    pub fn snapshot(&self, model: &dyn Module) -> Vec<Tensor> {
        let params = model.parameters();
        self.watched
            .iter()
            .flat_map(|w| w.weights.iter().map(|&i| params[i].1.value().clone()))
            .collect()
    }

    /// After the optimizer step: ‖W‖ before it and ‖ΔW‖ / ‖W‖, from the
    /// [`Probe::snapshot`] taken before.
    pub fn after_step(&self, stats: &mut [LayerStats], before: &[Tensor], model: &dyn Module) {
        let params = model.parameters();
        let mut k = 0;
        for w in &self.watched {
            if w.weights.is_empty() {
                continue;
            }
            let (mut ww, mut dd) = (0f64, 0f64);
            let first = k;
            for &i in &w.weights {
                let old = &before[k];
                k += 1;
                let (w2, d2) = squares_and_moves(old.data(), params[i].1.value().data());
                ww += w2;
                dd += d2;
            }
            let Some(s) = stats.iter_mut().find(|s| s.layer == w.layer) else {
                continue;
            };
            s.weight_norm = Some(ww.sqrt());
            s.weight_quantiles = quantiles(
                before[first..k]
                    .iter()
                    .flat_map(|t| t.data().iter().copied()),
            );
            s.update_ratio = Some(if ww > 0.0 {
                (dd / ww).sqrt()
            } else if dd > 0.0 {
                f64::INFINITY
            } else {
                0.0
            });
        }
    }
}

/// ‖(t₁, t₂, …)‖: the Euclidean norm of several tensors taken together.
pub fn norm_of<'a>(ts: impl Iterator<Item = &'a Tensor>) -> f64 {
    ts.map(|t| squares_and_moves(t.data(), &[]).0)
        .sum::<f64>()
        .sqrt()
}

/// `(Σ a², Σ (b − a)²)` in `f64` (the second over the values `b` has; `b`
/// empty gives 0), each in eight interleaved partial sums: a single running
/// sum waits on every add in turn, and these passes over all the weights
/// (every 50 steps) were 3 % of mlp-small's calling thread.
fn squares_and_moves(a: &[f32], b: &[f32]) -> (f64, f64) {
    let (mut s, mut d) = ([0f64; 8], [0f64; 8]);
    let whole = a.len() / 8 * 8;
    // One pass over `a` (and `b`, when given).
    for (i, x) in a[..whole].chunks_exact(8).enumerate() {
        let y = b.get(8 * i..8 * i + 8);
        for l in 0..8 {
            s[l] += x[l] as f64 * x[l] as f64;
            if let Some(y) = y {
                d[l] += (y[l] as f64 - x[l] as f64).powi(2);
            }
        }
    }
    let (mut ss, mut dd) = (s.iter().sum::<f64>(), d.iter().sum::<f64>());
    for (i, &u) in a.iter().enumerate().skip(whole) {
        ss += u as f64 * u as f64;
        if let Some(&v) = b.get(i) {
            dd += (v as f64 - u as f64).powi(2);
        }
    }
    (ss, dd)
}

/// The share of units (elements of a sample's output) that are exactly 0 for
/// every sample of the batch `out: [N, ...]`.
///
/// ```
/// use backprop::{Tensor, inspect::diagnostics::dead_fraction};
/// // Unit 1 is zero for both samples: dead. Unit 0 is alive in sample 2.
/// let out = Tensor::from_vec(vec![2, 3], vec![0.0, 0.0, 1.0, 0.5, 0.0, 2.0]);
/// assert_eq!(dead_fraction(&out), 1.0 / 3.0);
/// ```
pub fn dead_fraction(out: &Tensor) -> f64 {
    unit_share(out, |v| v == 0.0)
}

/// The share of units of a sigmoid or tanh output `out: [N, ...]` whose
/// derivative, read off the output, is below 1 % of its peak for every sample
/// of the batch: σ(1−σ) < 0.0025 (|z| > 5.99), 1 − tanh² < 0.01 (|z| > 2.99).
///
/// ```
/// use backprop::{Tensor, ops::unary::Unary, inspect::diagnostics::saturated_fraction};
/// let z = [8.0f32, -7.0, 0.5, -9.0];          // unit 0 and 1 saturated in both samples
/// let s = |z: f32| 1.0 / (1.0 + (-z).exp());
/// let out = Tensor::from_vec(vec![2, 2], z.iter().map(|&z| s(z)).collect());
/// assert_eq!(saturated_fraction(&out, Unary::Sigmoid), 0.5);
/// ```
pub fn saturated_fraction(out: &Tensor, f: Unary) -> f64 {
    match f {
        Unary::Sigmoid => unit_share(out, |s| s * (1.0 - s) < 0.0025),
        Unary::Tanh => unit_share(out, |t| 1.0 - t * t < 0.01),
        _ => 0.0,
    }
}

/// The share of units for which `pred` holds in every sample of `out: [N, ...]`.
fn unit_share(out: &Tensor, pred: impl Fn(f32) -> bool) -> f64 {
    let n = out.shape().first().copied().unwrap_or(0);
    if n == 0 || out.numel() == 0 {
        return 0.0;
    }
    let per = out.numel() / n;
    let mut all = vec![true; per];
    for row in out.data().chunks(per) {
        for (a, &v) in all.iter_mut().zip(row) {
            *a = *a && pred(v);
        }
    }
    all.iter().filter(|&&a| a).count() as f64 / per as f64
}

// ---------------------------------------------------------------- warnings

/// What a warning is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// A layer's gradient is orders of magnitude below the last layer's.
    Vanishing,
    /// A layer's gradient is orders of magnitude above the last layer's, or keeps growing.
    Exploding,
    /// More than half of a ReLU layer's units are dead.
    DeadRelu,
    /// More than half of a sigmoid/tanh layer's units are saturated.
    Saturated,
    /// The first layers' updates stay far below the last layer's.
    SlowUpdates,
    /// The training loss stays at chance level.
    NotLearning,
    /// The test loss rises while the training loss falls.
    Overfitting,
}

/// The first layer with parameters moving by less than this share of its
/// weights per step, and by less than [`SLOW_RATIO`] of the last layer's
/// share, for [`SLOW_SAMPLES`] samples in a row, is barely learning (the
/// rule of thumb for a healthy update/weight ratio is about 1e-3).
pub const SLOW_UPDATE: f64 = 1e-4;
/// See [`SLOW_UPDATE`].
pub const SLOW_RATIO: f64 = 1.0 / 30.0;
/// See [`SLOW_UPDATE`].
pub const SLOW_SAMPLES: usize = 3;

/// The warning for a run whose cross-entropy loss stays at chance level
/// (`ln C` for C classes, within 2 %) with chance accuracy (below 1.5/C)
/// after `step` steps, if that is so.
///
/// ```
/// use backprop::inspect::diagnostics::chance_level;
/// assert!(chance_level(300, 10, 2.302, 0.11).is_some());
/// assert!(chance_level(300, 10, 1.2, 0.6).is_none());
/// assert!(chance_level(100, 10, 2.302, 0.11).is_none()); // too early to tell
/// ```
pub fn chance_level(step: usize, classes: usize, loss: f64, accuracy: f64) -> Option<String> {
    if step < 200 || classes < 2 {
        return None;
    }
    let chance = (classes as f64).ln();
    ((loss - chance).abs() < 0.02 * chance && accuracy < 1.5 / classes as f64).then(|| {
        format!(
            "the training loss stays at chance level after {step} steps: loss {loss:.3} (ln {classes} = {chance:.3} is what \
             guessing uniformly gives), accuracy {:.1} %. The network is not learning. Remedies: relu instead of \
             sigmoid/tanh, He or Xavier initialization, batch norm, a larger learning rate, or Adam",
            accuracy * 100.0
        )
    })
}

/// Evaluations in a row over which a rising test loss and a falling
/// training loss mean overfitting.
pub const OVERFIT_EVALS: usize = 2;

/// How an overfitting warning begins (the run gives it once: a resumed
/// run finds it among the warnings it saved).
pub const OVERFITTING: &str = "overfitting at epoch";

/// The overfitting warning for a run whose epochs so far had these
/// `(training loss, test loss)`, if the test loss rose at each of the last
/// [`OVERFIT_EVALS`] epochs while the training loss fell.
///
/// ```
/// use backprop::inspect::diagnostics::overfitting;
/// let run = [(0.3, 0.10), (0.1, 0.034), (0.05, 0.04), (0.02, 0.045), (0.007, 0.053)];
/// assert!(overfitting(&run[..3]).is_none());
/// assert!(overfitting(&run[..4]).unwrap().contains("--epochs 2"));
/// ```
pub fn overfitting(epochs: &[(f64, f64)]) -> Option<String> {
    let (k, n) = (OVERFIT_EVALS, epochs.len());
    let rising = n > k
        && epochs[n - k - 1..]
            .windows(2)
            .all(|p| p[1].1 > p[0].1 && p[1].0 < p[0].0);
    if !rising {
        return None;
    }
    let (best, low) = epochs
        .iter()
        .enumerate()
        .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
        .map(|(i, e)| (i + 1, e.1))?;
    let (first, last) = (epochs[n - k - 1], epochs[n - 1]);
    Some(format!(
        "{OVERFITTING} {n}: the test loss rose from {:.4} to {:.4} over the last {k} epochs while \
         the training loss fell from {:.4} to {:.4}. Remedies: stop at the best test loss ({low:.4} at \
         epoch {best}; --epochs {best}), weight decay (--weight-decay 1e-4), dropout, more data",
        first.1, last.1, first.0, last.0,
    ))
}

/// A layer whose gradient norm is below this times the last layer's is vanishing.
pub const VANISHING_RATIO: f64 = 1e-3;
/// A layer whose gradient norm is above this times the last layer's is exploding.
pub const EXPLODING_RATIO: f64 = 1e3;
/// A gradient norm that rose at each of the last 3 samples to more than
/// this times its recent level (the median of the [`BASELINE`] samples
/// before the rise) is exploding.
pub const GROWTH: f64 = 1e2;
/// Samples whose median is a gradient's recent level: a median, so that
/// one near-zero batch does not make every later value look like a
/// hundredfold rise (as the smallest value of the whole run did).
pub const BASELINE: usize = 8;

/// Turns samples into plain warnings, each (layer, kind) at most once a run.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    warned: HashSet<(String, WarningKind)>,
    /// Gradient norm of each watched parameterized layer at each sample so far.
    history: Vec<(String, Vec<f64>)>,
    /// The model has sigmoid or tanh layers (the first remedy for vanishing).
    squashing: bool,
    /// Samples in a row in which the first layer's update ratio was too small.
    slow: usize,
}

impl Watch {
    /// A watch over the layers `probe` measures.
    pub fn new(probe: &Probe) -> Watch {
        Watch {
            squashing: probe.has_squashing(),
            ..Default::default()
        }
    }

    /// The warnings a sample raises that were not given before.
    pub fn check(&mut self, s: &Sample) -> Vec<(WarningKind, String)> {
        let mut out = Vec::new();
        let param: Vec<&LayerStats> = s.layers.iter().filter(|l| l.grad_norm.is_some()).collect();
        // Gradient-norm history, for growth.
        for l in &param {
            let g = l.grad_norm.unwrap_or(0.0);
            match self.history.iter_mut().find(|(i, _)| *i == l.layer) {
                Some((_, h)) => h.push(g),
                None => self.history.push((l.layer.clone(), vec![g])),
            }
        }
        if let Some((last, earlier)) = param.split_last() {
            out.extend(self.vanishing(s, last, earlier));
            out.extend(self.exploding(s, last, &param));
        }
        out.extend(self.units(s));
        out.extend(self.slow_updates(s));
        out
    }

    /// Layers whose weight gradient is far below the last layer's.
    fn vanishing(
        &mut self,
        s: &Sample,
        last: &LayerStats,
        earlier: &[&LayerStats],
    ) -> Option<(WarningKind, String)> {
        let gl = last.grad_norm.unwrap_or(0.0);
        let mut out = None;
        // Vanishing: far below the last layer.
        let vanish: Vec<&LayerStats> = earlier
            .iter()
            .copied()
            .filter(|l| gl > 0.0 && l.grad_norm.unwrap_or(0.0) < VANISHING_RATIO * gl)
            .filter(|l| self.first(&l.layer, WarningKind::Vanishing))
            .collect();
        if let Some(first) = vanish.first() {
            let g = first.grad_norm.unwrap_or(0.0);
            out = Some((
                WarningKind::Vanishing,
                format!(
                    "vanishing gradient at step {}: {} gets a weight gradient of norm {g:.1e}, {:.0e} × that of \
                     the last layer ({} {gl:.1e}), so it barely learns{}. Remedies: {}He or Xavier \
                     initialization (--weight-init kaiming-normal, xavier-normal), batch norm, fewer layers",
                    s.step,
                    first.label(),
                    g / gl,
                    last.label(),
                    also(&vanish[1..]),
                    if self.squashing {
                        "relu instead of sigmoid/tanh, "
                    } else {
                        ""
                    }
                ),
            ));
        }
        out
    }

    /// Layers whose weight gradient is far above the last layer's, grows
    /// without bound, or is not finite.
    fn exploding(
        &mut self,
        s: &Sample,
        last: &LayerStats,
        param: &[&LayerStats],
    ) -> Option<(WarningKind, String)> {
        let gl = last.grad_norm.unwrap_or(0.0);
        let mut explode = Vec::new();
        for l in param {
            let g = l.grad_norm.unwrap_or(0.0);
            let h = self
                .history
                .iter()
                .find(|(i, _)| *i == l.layer)
                .map(|(_, h)| h.as_slice())
                .unwrap_or(&[]);
            let why = if !g.is_finite() {
                Some(format!("the weight gradient of {} is {g}", l.label()))
            } else if l.layer != last.layer && gl > 0.0 && g > EXPLODING_RATIO * gl {
                Some(format!(
                    "the weight gradient of {} has norm {g:.1e}, {:.0e} × that of the last layer ({} {gl:.1e})",
                    l.label(),
                    g / gl,
                    last.label()
                ))
            } else {
                growing(h).map(|base| {
                    format!(
                        "the weight gradient norm of {} rose at each of the last 3 samples, from about {base:.1e} \
                         to {g:.1e}",
                        l.label()
                    )
                })
            };
            if let Some(why) = why {
                if self.first(&l.layer, WarningKind::Exploding) {
                    explode.push(why);
                }
            }
        }
        if !explode.is_empty() {
            return Some((
                WarningKind::Exploding,
                format!(
                    "exploding gradient at step {}: {}. Remedies: clip the gradients (--clip-grad-norm 1.0), \
                     a lower learning rate (--lr {}), smaller initial weights (--weight-init xavier-normal), \
                     batch norm",
                    s.step,
                    explode.join("; "),
                    as_written(s.lr / 10.0)
                ),
            ));
        }
        None
    }

    /// Layers whose units are mostly dead (ReLU) or saturated (sigmoid, tanh).
    fn units(&mut self, s: &Sample) -> Vec<(WarningKind, String)> {
        let mut out = Vec::new();
        for l in &s.layers {
            if let Some(d) = l.dead_frac.filter(|&d| d > 0.5) {
                if self.first(&l.layer, WarningKind::DeadRelu) {
                    out.push((
                        WarningKind::DeadRelu,
                        format!(
                            "{:.0} % of the units of {} are dead at step {}: zero for every sample of the batch, \
                             so no gradient flows through them. Remedies: a lower learning rate (--lr {}), \
                             He initialization (--weight-init kaiming-normal), leaky_relu instead of relu",
                            d * 100.0,
                            l.label(),
                            s.step,
                            as_written(s.lr / 10.0)
                        ),
                    ));
                }
            }
            if let Some(f) = l.saturated_frac.filter(|&f| f > 0.5) {
                if self.first(&l.layer, WarningKind::Saturated) {
                    out.push((
                        WarningKind::Saturated,
                        format!(
                            "{:.0} % of the units of {} are saturated at step {} (derivative below 1 % of its peak \
                             for every sample), so gradients through them vanish. Remedies: Xavier initialization \
                             (--weight-init xavier-normal), a lower learning rate, batch norm, relu instead",
                            f * 100.0,
                            l.label(),
                            s.step
                        ),
                    ));
                }
            }
        }
        out
    }

    /// The first layers barely moving while the last one does, several
    /// samples in a row.
    fn slow_updates(&mut self, s: &Sample) -> Option<(WarningKind, String)> {
        let mut out = None;
        // The first layers barely move while the last one does.
        let ratios: Vec<&LayerStats> = s
            .layers
            .iter()
            .filter(|l| l.update_ratio.is_some())
            .collect();
        if let (Some(first), Some(last)) = (ratios.first(), ratios.last()) {
            let (a, b) = (
                first.update_ratio.unwrap_or(0.0),
                last.update_ratio.unwrap_or(0.0),
            );
            if ratios.len() > 1 && a < SLOW_UPDATE && a < SLOW_RATIO * b {
                self.slow += 1;
            } else {
                self.slow = 0;
            }
            if self.slow >= SLOW_SAMPLES && self.first(&first.layer, WarningKind::SlowUpdates) {
                out = Some((
                    WarningKind::SlowUpdates,
                    format!(
                        "the first layers barely learn: at step {} {} changes by {a:.1e} of its weights per step, \
                         {} of the last layer's {b:.1e} ({}); about 1e-3 is healthy. Remedies: {}He or Xavier \
                         initialization, batch norm, a larger learning rate, Adam",
                        s.step,
                        first.label(),
                        share_of(a, b),
                        last.label(),
                        if self.squashing {
                            "relu instead of sigmoid/tanh, "
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
        out
    }

    /// True the first time `(layer, kind)` is asked about.
    fn first(&mut self, layer: &str, kind: WarningKind) -> bool {
        self.warned.insert((layer.to_string(), kind))
    }
}

/// `a` as a share of `b` the way a person says it: `1/350`, or `1/3.5e12`
/// when the share is tiny, or `none` when `a` is 0 (the first layer did not
/// move at all, as with gradients that vanished below f32's resolution).
fn share_of(a: f64, b: f64) -> String {
    if a <= 0.0 {
        return "none".into();
    }
    let k = b / a;
    if k < 1e6 {
        format!("1/{k:.0}")
    } else {
        format!("1/{}", as_written(k as f32))
    }
}

/// "; also layer 2 linear(64,64), layer 4 linear(64,64)" for further layers.
fn also(rest: &[&LayerStats]) -> String {
    if rest.is_empty() {
        return String::new();
    }
    let names: Vec<String> = rest
        .iter()
        .map(|l| format!("{} ({:.1e})", l.label(), l.grad_norm.unwrap_or(0.0)))
        .collect();
    format!("; so do {}", names.join(", "))
}

/// The gradient's recent level (the median of the [`BASELINE`] samples
/// before the last 3) if it rose at each of those 3 samples to more than
/// [`GROWTH`] times that level. Judged only once there are that many
/// samples: in the first steps gradients rise from the initial weights'
/// small values as a matter of course (a LeNet run's first layer from 8e-3
/// to 0.85 in 30 steps, on its way to 98.7 %).
fn growing(h: &[f64]) -> Option<f64> {
    if h.len() < BASELINE + 3 {
        return None;
    }
    let (before, rise) = h.split_at(h.len() - 3);
    let start = *before.last().expect("at least one sample before the rise");
    let rising = std::iter::once(&start)
        .chain(rise)
        .collect::<Vec<_>>()
        .windows(2)
        .all(|w| w[1] > w[0]);
    let mut recent: Vec<f64> = before[before.len().saturating_sub(BASELINE)..].to_vec();
    recent.sort_by(f64::total_cmp);
    let base = recent[recent.len() / 2];
    let now = *rise.last().expect("3 samples");
    (rising && base > 0.0 && now > GROWTH * base).then_some(base)
}

/// A learning rate as a person writes it: 3 significant digits, no
/// trailing zeros (`1e-4`, not `1.00000005e-4`).
///
/// ```
/// # use backprop::inspect::diagnostics::as_written;
/// assert_eq!(as_written(1e-3 / 10.0), "1e-4");
/// assert_eq!(as_written(0.035), "3.5e-2");
/// ```
pub fn as_written(v: f32) -> String {
    let s = format!("{:.2e}", v as f64);
    match s.split_once('e') {
        Some((m, e)) => {
            let m = m.trim_end_matches('0').trim_end_matches('.');
            format!("{m}e{e}")
        }
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Init, Sequential};
    use rand::SeedableRng;

    #[test]
    fn squares_and_moves_are_the_sums() {
        for n in [0, 1, 7, 8, 9, 1003] {
            let a: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let b: Vec<f32> = a.iter().map(|v| v * 0.9 + 0.01).collect();
            let s: f64 = a.iter().map(|&v| v as f64 * v as f64).sum();
            let d: f64 = a
                .iter()
                .zip(&b)
                .map(|(&u, &v)| (v as f64 - u as f64).powi(2))
                .sum();
            let (gs, gd) = squares_and_moves(&a, &b);
            assert!((gs - s).abs() <= 1e-12 * s.max(1.0) && (gd - d).abs() <= 1e-12 * d.max(1.0));
            assert_eq!(squares_and_moves(&a, &[]), (gs, 0.0));
            let t = Tensor::from_vec(vec![n], a.clone());
            assert!((norm_of([&t].into_iter()) - t.norm()).abs() <= 1e-12 * s.sqrt().max(1.0));
        }
    }

    fn model(line: &str) -> Sequential {
        Sequential::parse(
            line,
            Init::Default,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap()
    }

    /// The probe and watch of a model line, from one pass on zeros.
    fn watch(line: &str) -> Watch {
        let m = model(line);
        let mut p = Pass::train(&m, 0);
        let x = p.input(Tensor::zeros(&[2, 8]));
        m.forward(&mut p, x);
        Watch::new(&Probe::new(&m, &p))
    }

    #[test]
    fn dead_and_saturated_units_by_hand() {
        // [N=3, F=4]: unit 2 is 0 for every sample; unit 0 is 0 twice only.
        let out = Tensor::from_vec(
            vec![3, 4],
            vec![
                0.0, 1.0, 0.0, 2.0, //
                0.0, 0.5, 0.0, 0.0, //
                3.0, 0.1, 0.0, 1.0,
            ],
        );
        assert_eq!(dead_fraction(&out), 0.25);
        // A conv-shaped output: units are (channel, position).
        let out = Tensor::from_vec(
            vec![2, 2, 1, 2],
            vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0],
        );
        assert_eq!(dead_fraction(&out), 0.5);
        // tanh: |z| = 3 is saturated (1 − tanh²(3) = 0.0099), |z| = 2.9 is not.
        let t = |z: f32| z.tanh();
        let out = Tensor::from_vec(
            vec![2, 3],
            vec![t(3.0), t(2.9), t(-4.0), t(-3.5), t(5.0), t(-3.0)],
        );
        let f = saturated_fraction(&out, Unary::Tanh);
        assert!((f - 2.0 / 3.0).abs() < 1e-12, "{f}");
        // sigmoid: the bound is |z| = 5.99.
        let s = crate::ops::unary::sigmoid;
        let out = Tensor::from_vec(vec![1, 4], vec![s(6.1), s(-6.1), s(5.8), s(0.0)]);
        assert_eq!(saturated_fraction(&out, Unary::Sigmoid), 0.5);
    }

    #[test]
    fn shares_read_as_a_person_writes_them() {
        assert_eq!(share_of(1e-5, 3.5e-3), "1/350");
        assert_eq!(share_of(0.0, 0.18), "none");
        assert!(
            !share_of(1e-40, 0.18).contains("000000"),
            "{}",
            share_of(1e-40, 0.18)
        );
    }

    /// Runs one probed step by hand on `linear(2,2),relu,linear(2,1)` with
    /// chosen weights and checks every statistic against a hand computation.
    #[test]
    fn statistics_of_a_hand_computed_step() {
        let mut m = model("linear(2,2),relu,linear(2,1)");
        // W1 = [[1, 0], [0, -1]], b1 = 0: unit 1 of the relu is dead for x ≥ 0.
        let mut values = vec![
            vec![1.0, 0.0, 0.0, -1.0],
            vec![0.0, 0.0],
            vec![2.0, 3.0],
            vec![0.0],
        ]
        .into_iter();
        m.for_each_param_mut(&mut |_, p| {
            let shape = p.value().shape().to_vec();
            p.set(Tensor::from_vec(shape, values.next().unwrap()));
        });
        let mut pass = Pass::train(&m, 0);
        let x = pass.input(Tensor::from_vec(vec![2, 2], vec![1.0, 2.0, 3.0, 1.0]));
        let out = m.forward(&mut pass, x);
        let probe = Probe::new(&m, &pass);
        assert_eq!(
            probe.columns(),
            [
                "L0.grad_norm",
                "L0.delta_norm",
                "L0.weight_norm",
                "L0.update_ratio",
                "L0.w_q0",
                "L0.w_q16",
                "L0.w_q50",
                "L0.w_q84",
                "L0.w_q100",
                "L0.g_q0",
                "L0.g_q16",
                "L0.g_q50",
                "L0.g_q84",
                "L0.g_q100",
                "L1.dead_frac",
                "L2.grad_norm",
                "L2.delta_norm",
                "L2.weight_norm",
                "L2.update_ratio",
                "L2.w_q0",
                "L2.w_q16",
                "L2.w_q50",
                "L2.w_q84",
                "L2.w_q100",
                "L2.g_q0",
                "L2.g_q16",
                "L2.g_q50",
                "L2.g_q84",
                "L2.g_q100"
            ]
        );
        // x = [[1, 2], [3, 1]]; h = relu(x W1ᵀ) = [[1, 0], [3, 0]]; y = h W2ᵀ = [[2], [6]].
        // C = mean(y) ⇒ δ2 = ∂C/∂y = [[0.5], [0.5]], ‖δ2‖ = √0.5.
        // ∂C/∂W2 = δ2ᵀ h = [2, 0] ⇒ ‖·‖ = 2.
        // δ1 = (δ2 W2) ⊙ relu'(z1) = [[1, 0], [1, 0]] ⇒ ‖δ1‖ = √2.
        // ∂C/∂W1 = δ1ᵀ x = [[4, 3], [0, 0]] ⇒ ‖·‖ = 5.
        let c = pass.mean(out);
        probe.retain(&mut pass);
        let (grads, mut st) = pass.backward_inspect(c, |g, table, outs, grads| {
            probe.measure(g, table, outs, grads)
        });
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-6;
        assert!(close(st[0].grad_norm, 5.0), "{st:?}");
        assert!(close(st[0].delta_norm, 2f64.sqrt()), "{st:?}");
        assert_eq!(st[1].dead_frac, Some(0.5));
        assert!(close(st[2].grad_norm, 2.0), "{st:?}");
        assert!(close(st[2].delta_norm, 0.5f64.sqrt()), "{st:?}");
        // Quantiles (nearest rank) of ∂C/∂W1's entries {4, 3, 0, 0}: least,
        // 16 %, median, 84 %, greatest.
        assert_eq!(st[0].grad_quantiles, Some(vec![0.0, 0.0, 3.0, 4.0, 4.0]));
        // Plain SGD with lr 0.1: ΔW1 = −0.1·[[4, 3], [0, 0]], ‖ΔW1‖ = 0.5, ‖W1‖ = √2.
        let before = probe.snapshot(&m);
        let mut opt = crate::optim::Optimizer::new(crate::optim::OptimizerConfig::sgd(
            0.1,
            crate::optim::Momentum::None,
        ));
        opt.step(&mut m, grads);
        probe.after_step(&mut st, &before, &m);
        assert!(close(st[0].weight_norm, 2f64.sqrt()), "{st:?}");
        // and of W1's before the step, {1, 0, 0, −1}
        assert_eq!(
            st[0].weight_quantiles,
            Some(vec![-1.0, -1.0, 0.0, 1.0, 1.0])
        );
        assert!(close(st[0].update_ratio, 0.5 / 2f64.sqrt()), "{st:?}");
        // ‖W2‖ = √13, ΔW2 = −0.1·[2, 0] ⇒ ratio 0.2/√13.
        assert!(close(st[2].update_ratio, 0.2 / 13f64.sqrt()), "{st:?}");
    }

    fn sample(step: usize, grads: &[f64], dead: Option<f64>) -> Sample {
        let mut layers: Vec<LayerStats> = grads
            .iter()
            .enumerate()
            .map(|(i, &g)| LayerStats {
                layer: (2 * i).to_string(),
                name: "linear(8,8)".into(),
                grad_norm: Some(g),
                ..Default::default()
            })
            .collect();
        layers.insert(
            1,
            LayerStats {
                layer: "1".into(),
                name: "relu".into(),
                dead_frac: dead,
                ..Default::default()
            },
        );
        Sample {
            step,
            epoch: 1,
            lr: 0.1,
            layers,
        }
    }

    #[test]
    fn warnings_fire_once_per_layer_and_kind() {
        let mut w = watch("linear(8,8),sigmoid,linear(8,8),sigmoid,linear(8,8)");
        let ws = w.check(&sample(1, &[1e-7, 1e-2, 1.0], Some(0.75)));
        let kinds: Vec<WarningKind> = ws.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [WarningKind::Vanishing, WarningKind::DeadRelu],
            "{ws:?}"
        );
        let msg = &ws[0].1;
        assert!(
            msg.contains("layer 0 linear(8,8)") && msg.contains("relu instead of sigmoid"),
            "{msg}"
        );
        assert!(msg.contains("--weight-init kaiming-normal"), "{msg}");
        assert!(
            ws[1].1.contains("75 % of the units of layer 1 relu"),
            "{}",
            ws[1].1
        );
        // Same state again: nothing new.
        assert!(w
            .check(&sample(50, &[1e-7, 1e-2, 1.0], Some(0.75)))
            .is_empty());
        // Healthy gradients raise nothing.
        let mut w = watch("linear(8,8),sigmoid,linear(8,8),sigmoid,linear(8,8)");
        assert!(w.check(&sample(1, &[0.3, 0.5, 1.0], Some(0.1))).is_empty());
    }

    #[test]
    fn exploding_by_ratio_and_by_growth() {
        let line = "linear(8,8),relu,linear(8,8),relu,linear(8,8)";
        let mut w = watch(line);
        let ws = w.check(&sample(1, &[5e3, 1.0, 1.0], None));
        assert_eq!(ws.len(), 1, "{ws:?}");
        assert_eq!(ws[0].0, WarningKind::Exploding);
        assert!(
            ws[0].1.contains("--clip-grad-norm") && ws[0].1.contains("--lr 1e-2"),
            "{}",
            ws[0].1
        );
        // Growth: the same layer steady at 1, then rising 10 → 100 → 1000
        // (all layers alike: no ratio).
        let mut w = watch(line);
        for (i, g) in [1.0; 8].into_iter().chain([10.0, 100.0]).enumerate() {
            assert!(w.check(&sample(i + 1, &[g, g, g], None)).is_empty());
        }
        let ws = w.check(&sample(11, &[1e3, 1e3, 1e3], None));
        assert_eq!(ws.len(), 1, "{ws:?}");
        assert!(ws[0].1.contains("from about 1.0e0 to 1.0e3"), "{}", ws[0].1);
        // Noisy but bounded norms do not count as growth.
        assert_eq!(
            growing(&[1.0, 3.0, 2.0, 5.0, 4.0, 6.0, 5.0, 7.0, 6.0, 8.0, 9.0]),
            None
        );
        // nor the first steps' rise from the initial weights
        assert_eq!(growing(&[8e-3, 0.05, 0.3, 0.85]), None);
        // One near-zero batch among normal ones (a LeNet run that reached
        // 99 %) does not make later normal values a hundredfold rise.
        let lenet = [
            0.8, 0.6, 0.7, 2e-4, 0.5, 0.6, 0.4, 0.5, 0.3, 0.35, 0.45, 0.6,
        ];
        assert_eq!(growing(&lenet), None);
        let mut w = watch(line);
        for (i, g) in lenet.into_iter().enumerate() {
            assert!(
                w.check(&sample(i + 1, &[g, g, g], None)).is_empty(),
                "sample {i}"
            );
        }
        // but a rise from its recent level does
        let rise = [0.5, 0.6, 0.4, 0.5, 0.5, 0.6, 0.4, 0.5, 6.0, 70.0, 800.0];
        assert_eq!(growing(&rise), Some(0.5));
    }
}
