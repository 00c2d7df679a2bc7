//! Central finite differences against the backward rules.
//!
//! For a function `f` of some input tensors, the check draws a fixed upstream
//! gradient `r` (not all ones: a backward that ignored its upstream gradient
//! would pass a plain `sum()` loss) and compares, for every input element,
//! the analytic ∂(Σ r·f)/∂x from the backward pass with
//! `(L(x+h) − L(x−h)) / 2h`.
//!
//! The engine computes in `f32`, so the forward values are `f32`; the loss
//! `Σ r·f` and the difference quotient are accumulated in `f64`, and the step
//! `h` is large enough (1e-2 relative) that `f32` rounding of the outputs stays
//! far below the tolerance. The second, fully-`f64` oracle is PyTorch run in
//! double precision (`tools/make_fixtures.py`, `tests/torch_ops.rs`).

use crate::{Graph, Tensor, Var};

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

fn weighted_sum(out: &Tensor, r: &Tensor) -> f64 {
    out.data()
        .iter()
        .zip(r.data())
        .map(|(&o, &w)| o as f64 * w as f64)
        .sum()
}

/// For each input, the worst error between the analytic and the numeric
/// gradient, measured as `|a − n| / max(1, |a|, |n|)`.
pub fn gradient_errors(inputs: &[Tensor], f: impl Fn(&mut Graph, &[Var]) -> Var) -> Vec<f64> {
    let mut g = Graph::new();
    let vars: Vec<Var> = inputs.iter().map(|t| g.param(t.clone())).collect();
    let out = f(&mut g, &vars);
    let r = pseudo_random(g.shape(out), 7);
    let grads = g.backward_with(out, r.clone());
    let loss_at = |inputs: &[Tensor]| {
        let mut g = Graph::no_grad();
        let vars: Vec<Var> = inputs.iter().map(|t| g.input(t.clone())).collect();
        let out = f(&mut g, &vars);
        weighted_sum(g.value(out), &r)
    };
    let mut worst = vec![0.0f64; inputs.len()];
    for (i, v) in vars.iter().enumerate() {
        let analytic = grads
            .get(*v)
            .cloned()
            .unwrap_or_else(|| inputs[i].zeros_like());
        let mut xs = inputs.to_vec();
        for j in 0..inputs[i].numel() {
            let x0 = inputs[i].data()[j];
            let h = 1e-2 * x0.abs().max(1.0);
            xs[i].data_mut()[j] = x0 + h;
            let lp = loss_at(&xs);
            xs[i].data_mut()[j] = x0 - h;
            let lm = loss_at(&xs);
            xs[i].data_mut()[j] = x0;
            // The step actually taken, in f32.
            let hh = ((x0 + h) as f64 - (x0 - h) as f64) / 2.0;
            let numeric = (lp - lm) / (2.0 * hh);
            let a = analytic.data()[j] as f64;
            let err = (a - numeric).abs() / 1f64.max(a.abs()).max(numeric.abs());
            worst[i] = worst[i].max(err);
        }
    }
    worst
}

/// Assert that every input's gradient of `f` matches finite differences
/// within 2e-3 (see [`gradient_errors`] for the measure).
pub fn check(name: &str, inputs: &[Tensor], f: impl Fn(&mut Graph, &[Var]) -> Var) {
    let errs = gradient_errors(inputs, f);
    for (i, e) in errs.iter().enumerate() {
        assert!(
            *e < 2e-3,
            "{name}: input {i} gradient error {e:.2e} vs finite differences"
        );
    }
}
