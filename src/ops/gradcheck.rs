//! Central finite differences against the backward rules: the one checker
//! behind the op tests, `backprop gradcheck` and [`crate::inspect::gradcheck`].
//!
//! For a function of some tensors, the check draws a fixed upstream gradient
//! `r` (not all ones: a backward that ignored its upstream gradient would
//! pass a plain `sum()` loss) and compares, element by element, the analytic
//! ∂L/∂θ of `L = Σ r·f` from one backward pass with
//! `(L(θ+h) − L(θ−h)) / 2h`, `h = 1e-2·max(1, |θ|)`; the error is
//! `|a − n| / max(1, |a|, |n|)`.
//!
//! The engine computes in `f32`, so the forward values are `f32`; `L` and
//! the difference quotient are accumulated in `f64`, and the step is large
//! enough that `f32` rounding of the outputs stays far below the tolerance.
//! The second, fully-`f64` oracle is PyTorch run in double precision
//! (`tools/make_fixtures.py`, `tests/torch_parity.rs`).
//!
//! ReLU and max-pooling have kinks: when `θ ± h` moves a unit across one,
//! the central difference is off although the gradient is right, and a
//! convolution weight feeds thousands of units, so some are always near one.
//! So an element whose error is above 1e-4 is retried with `h = 1e-3` and
//! `1e-4`, and the smallest error is kept. If it stays above 1e-4, the
//! element counts as skipped rather than failed when the steps show a kink:
//! the analytic gradient agrees (within the tolerance) with one of the
//! one-sided differences `(L(θ+h) − L(θ)) / h`, `(L(θ) − L(θ−h)) / h`, or
//! the three estimates disagree with each other. A wrong backward on a
//! smooth stretch gives estimates that agree with each other and with
//! neither side's analytic slope, and fails.
//!
//! Large tensors are sampled: up to `samples` elements each (chosen at
//! random with the seed; all of them when `samples` is 0), each costing two
//! forward passes.

use crate::{Graph, Tensor, Var};
use rand::SeedableRng;

/// A deterministic pseudo-random tensor in [-1, 1] (upstream gradients, test data).
pub fn pseudo_random(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let data = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(shape.to_vec(), data)
}

/// `Σ r·out`, accumulated in `f64`.
pub fn weighted_sum(out: &Tensor, r: &Tensor) -> f64 {
    out.data()
        .iter()
        .zip(r.data())
        .map(|(&o, &w)| o as f64 * w as f64)
        .sum()
}

/// Settings of a check.
#[derive(Clone, Debug)]
pub struct CheckConfig {
    /// Per-sample input shape, e.g. `[1, 28, 28]` (for checks of a model).
    pub sample_shape: Vec<usize>,
    /// Samples in the random batch (for checks of a model).
    pub batch: usize,
    /// Seed of the random batch, the upstream gradient and the elements checked.
    pub seed: u64,
    /// Elements per tensor (0: all).
    pub samples: usize,
    /// The error that fails the check; also how close estimates must be to
    /// count as agreeing when looking for kinks.
    pub tolerance: f64,
}

impl CheckConfig {
    /// Every element, tolerance `tolerance`, seed 0.
    pub fn all(tolerance: f64) -> CheckConfig {
        CheckConfig {
            sample_shape: Vec::new(),
            batch: 0,
            seed: 0,
            samples: 0,
            tolerance,
        }
    }
}

/// The result for one tensor.
#[derive(Clone, Debug)]
pub struct ParamCheck {
    /// Its name, e.g. `1.weight`.
    pub name: String,
    /// Elements compared (excluding kinks) and the tensor's size.
    pub checked: usize,
    /// The tensor's number of elements.
    pub total: usize,
    /// Elements skipped because the steps crossed kinks.
    pub kinks: usize,
    /// The worst error and where.
    pub worst: Worst,
}

/// The worst element of a [`ParamCheck`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Worst {
    /// The error `|analytic − numeric| / max(1, |analytic|, |numeric|)`.
    pub error: f64,
    /// The element's flat (row-major) index in the tensor.
    pub element: usize,
    /// The gradient the backward pass gave.
    pub analytic: f64,
    /// The central-difference estimate.
    pub numeric: f64,
}

/// The relative steps tried in turn, while the error stays above 1e-4:
/// a smaller step is less likely to cross a kink, a larger one less noisy.
pub const STEPS: [f32; 3] = [1e-2, 1e-3, 1e-4];

/// An element whose error at the first step is above this is tried for a
/// kink and at smaller steps; the smallest error found is reported.
const RETRY: f64 = 1e-4;

/// Compare `analytic` gradients of named tensors `values` with central
/// differences of `loss_at(i, t)`, the loss with tensor `i` replaced by `t`
/// (the others at their values).
pub fn compare(
    values: &[(String, Tensor)],
    analytic: &[Tensor],
    cfg: &CheckConfig,
    mut loss_at: impl FnMut(usize, &Tensor) -> f64,
) -> Vec<ParamCheck> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut out = Vec::with_capacity(values.len());
    for (i, (name, t)) in values.iter().enumerate() {
        let base = loss_at(i, t);
        let n = t.numel();
        let idx: Vec<usize> = if cfg.samples == 0 || n <= cfg.samples {
            (0..n).collect()
        } else {
            let mut v = rand::seq::index::sample(&mut rng, n, cfg.samples).into_vec();
            v.sort_unstable();
            v
        };
        let mut pc = ParamCheck {
            name: name.clone(),
            checked: 0,
            total: n,
            kinks: 0,
            worst: Worst::default(),
        };
        let mut x = t.clone();
        for j in idx {
            let x0 = t.data()[j];
            let a = analytic[i].data()[j] as f64;
            // (error, numeric) at each step tried, and whether one side agrees.
            let mut tries: Vec<(f64, f64)> = Vec::with_capacity(STEPS.len());
            let mut one_side = false;
            let mut scale = 1f64.max(a.abs());
            for step in STEPS {
                let h = step * x0.abs().max(1.0);
                x.data_mut()[j] = x0 + h;
                let lp = loss_at(i, &x);
                x.data_mut()[j] = x0 - h;
                let lm = loss_at(i, &x);
                x.data_mut()[j] = x0;
                // The steps actually taken, in f32.
                let (hp, hm) = ((x0 + h) as f64 - x0 as f64, x0 as f64 - (x0 - h) as f64);
                let numeric = (lp - lm) / (hp + hm);
                scale = scale.max(numeric.abs());
                let e = (a - numeric).abs() / 1f64.max(a.abs()).max(numeric.abs());
                tries.push((e, numeric));
                if e <= RETRY {
                    break;
                }
                let (fwd, bwd) = ((lp - base) / hp, (base - lm) / hm);
                one_side |= (a - fwd).abs().min((a - bwd).abs()) / scale <= cfg.tolerance;
            }
            let best = tries
                .iter()
                .copied()
                .fold(
                    (f64::INFINITY, f64::NAN),
                    |b, t| if t.0 < b.0 { t } else { b },
                );
            // Estimates that agree with each other: the differences converged.
            let converged = tries.iter().enumerate().any(|(k, x)| {
                tries[k + 1..]
                    .iter()
                    .any(|y| (x.1 - y.1).abs() / scale <= cfg.tolerance)
            });
            if best.0 > RETRY && (one_side || !converged) {
                // A kink: on one side the slope is the analytic gradient, or
                // the estimates jump about with the step.
                pc.kinks += 1;
                continue;
            }
            pc.checked += 1;
            if best.0 > pc.worst.error {
                pc.worst = Worst {
                    error: best.0,
                    element: j,
                    analytic: a,
                    numeric: best.1,
                };
            }
        }
        out.push(pc);
    }
    out
}

/// Check `f` of `inputs` (each a leaf that wants a gradient): analytic
/// gradients of `Σ r·f` against central differences, every element.
pub fn check_function(
    inputs: &[Tensor],
    cfg: &CheckConfig,
    f: impl Fn(&mut Graph, &[Var]) -> Var,
) -> Vec<ParamCheck> {
    let mut g = Graph::new();
    let vars: Vec<Var> = inputs.iter().map(|t| g.param(t.clone())).collect();
    let out = f(&mut g, &vars);
    let r = pseudo_random(g.shape(out), cfg.seed.wrapping_add(7));
    let grads = g.backward_with(out, r.clone());
    let analytic: Vec<Tensor> = vars
        .iter()
        .zip(inputs)
        .map(|(v, t)| grads.get(*v).cloned().unwrap_or_else(|| t.zeros_like()))
        .collect();
    drop(g);
    let named: Vec<(String, Tensor)> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("input {i}"), t.clone()))
        .collect();
    let mut xs = inputs.to_vec();
    compare(&named, &analytic, cfg, |i, t| {
        let keep = std::mem::replace(&mut xs[i], t.clone());
        let mut g = Graph::no_grad();
        let vars: Vec<Var> = xs.iter().map(|t| g.input(t.clone())).collect();
        let out = f(&mut g, &vars);
        xs[i] = keep;
        weighted_sum(g.value(out), &r)
    })
}

/// For each input, the worst error between the analytic and the numeric
/// gradient (see [`compare`] for the measure and the kinks).
pub fn gradient_errors(inputs: &[Tensor], f: impl Fn(&mut Graph, &[Var]) -> Var) -> Vec<f64> {
    check_function(inputs, &CheckConfig::all(2e-3), f)
        .iter()
        .map(|c| c.worst.error)
        .collect()
}

/// Assert that every input's gradient of `f` matches finite differences
/// within 2e-3, with at most a tenth of the elements skipped as kinks.
pub fn check(name: &str, inputs: &[Tensor], f: impl Fn(&mut Graph, &[Var]) -> Var) {
    for (i, c) in check_function(inputs, &CheckConfig::all(2e-3), f)
        .iter()
        .enumerate()
    {
        assert!(
            c.worst.error < 2e-3 && c.kinks * 10 <= c.total,
            "{name}: input {i} gradient error {:.2e} vs finite differences ({} kinks)",
            c.worst.error,
            c.kinks
        );
    }
}
