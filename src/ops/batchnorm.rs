//! Batch normalization (PyTorch's `BatchNorm1d` / `BatchNorm2d`) as one node.
//!
//! Per channel `c`, with `μ`, `σ²` the statistics of that channel:
//! `x̂ = (x − μ) / √(σ² + ε)`, `y = γ·x̂ + β`.
//!
//! - Training: `μ`, `σ²` are the mean and the *biased* variance of the batch
//!   (over N and every spatial position). The running statistics come back
//!   updated as `new = (1 − momentum)·old + momentum·stat`, where the running
//!   variance takes the *unbiased* batch variance (`σ²·n/(n−1)`), as PyTorch.
//!   A channel with a single value (`n = 1`) has no unbiased variance:
//!   training on it panics (PyTorch raises too).
//! - Evaluation: `μ`, `σ²` are the running statistics; nothing is updated.
//!
//! # Shapes
//! `x: [N, C]` (BatchNorm1d), `[N, C, L]` (BatchNorm1d on sequences) or
//! `[N, C, H, W]` (BatchNorm2d); `γ, β, running_mean, running_var: [C]` →
//! `y` shaped as `x`. Statistics are taken over every axis but axis 1.
//!
//! Backward, one fused node, with `g = ∂L/∂y` and sums over a channel's `n`
//! values: `∂γ = Σ g·x̂`, `∂β = Σ g`, and
//! - training: `∂x = γ/σ · (g − mean(g) − x̂·mean(g·x̂))` (the statistics
//!   depend on `x`),
//! - evaluation: `∂x = γ/σ · g` (fixed statistics).
//!
//! Statistics and gradient sums are accumulated in `f64` (shifted by a
//! sample of the channel, so a large mean does not cancel the variance), in
//! two passes over the data forward and two backward. The backward saves
//! only the per-channel `μ` and `1/σ` (in `f64`, plus the mode); `x̂` is
//! recomputed from `x`. The per-channel loops (f64 sums, the affine maps)
//! are in `tensor::channels` (src/tensor/channels.rs).

use crate::autograd::{Backward, Op};
use crate::cpu::channels::{
    affine_per_channel, dot_sums_per_channel, grad_per_channel, shifted_sums,
};
use crate::cpu::par::written;
use crate::dist::Collective;
use crate::{Graph, Tensor, Var};
use std::rc::Rc;

/// Whether one sample `s` fits batch normalization over `c` channels:
/// `[C, …]` for the op; for the layers (`d` = `Some(1)` or `Some(2)`),
/// `[C]` or `[C, L]` (`BatchNorm1d`) and `[C, H, W]` (`BatchNorm2d`). The
/// output has the input's shape.
pub fn batch_norm_shape(s: &[usize], c: usize, d: Option<usize>) -> Result<Vec<usize>, String> {
    let fits = s.first() == Some(&c)
        && match d {
            None => true,
            Some(1) => s.len() <= 2,
            Some(_) => s.len() == 3,
        };
    if fits {
        return Ok(s.to_vec());
    }
    let want = match d {
        Some(1) => format!("[N, {c}] or [N, {c}, L]"),
        Some(_) => format!("[N, {c}, H, W]"),
        None => format!("[N, {c}, …]"),
    };
    Err(format!(
        "expects input {want}, got {}",
        crate::ops::shape::fmt(s)
    ))
}

/// `(N, C, inner)`: samples, channels, values per sample per channel.
fn layout(x: &[usize]) -> (usize, usize, usize) {
    assert!(
        x.len() >= 2,
        "batch_norm: input must be [N, C], [N, C, L] or [N, C, H, W], got {x:?}"
    );
    (x[0], x[1], x[2..].iter().product())
}

/// Per-channel mean and biased variance of `x` (`[N, C, inner]`), in `f64`.
fn batch_stats(x: &[f32], n: usize, c: usize, inner: usize) -> (Vec<f64>, Vec<f64>) {
    // Shift by one sample of each channel: the moments of x − k do not suffer
    // the cancellation of Σx² − (Σx)²/n when |mean| ≫ std.
    let shift: Vec<f64> = (0..c).map(|ch| x[ch * inner] as f64).collect();
    let (s, q) = shifted_sums(x, c, inner, &shift);
    finish_stats(&s, &q, &shift, (n * inner) as f64)
}

/// Mean and biased variance from shifted sums over `cnt` values.
fn finish_stats(s: &[f64], q: &[f64], shift: &[f64], cnt: f64) -> (Vec<f64>, Vec<f64>) {
    let c = s.len();
    let mut mean = vec![0f64; c];
    let mut var = vec![0f64; c];
    for ch in 0..c {
        let m = s[ch] / cnt;
        mean[ch] = shift[ch] + m;
        var[ch] = (q[ch] / cnt - m * m).max(0.0);
    }
    (mean, var)
}

struct BatchNormBack {
    /// Per-channel mean used to normalize (batch or running).
    mean: Vec<f64>,
    /// Per-channel `1/√(σ² + ε)` used to normalize.
    invstd: Vec<f64>,
    /// Whether the statistics came from the batch (and so depend on `x`).
    training: bool,
    /// Synchronized over several processes: the statistics were of the
    /// global batch (`count` values per channel), and so are the sums ∂x needs.
    sync: Option<(Rc<dyn Collective>, f64)>,
}

impl Backward for BatchNormBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let (x, gamma) = (inp[0], inp[1]);
        let (n, c, inner) = layout(x.shape());
        let (xd, gd) = (x.data(), g.data());
        // Σ g and Σ g·(x − μ) per channel.
        let (sg, sgx) = dot_sums_per_channel(gd, xd, c, inner, &self.mean);
        // Synchronized: ∂x needs the sums over the global batch; ∂γ and ∂β
        // stay this process's (the gradients are summed over processes later).
        let (gsg, gsgx, cnt) = match &self.sync {
            Some((comm, count)) => {
                let mut v = sg.clone();
                v.extend_from_slice(&sgx);
                comm.sum_f64(&mut v);
                let rest = v.split_off(c);
                (v, rest, *count)
            }
            None => (sg.clone(), sgx.clone(), (n * inner) as f64),
        };
        let gx = needs[0].then(|| {
            // ∂x = a·g + b·(x − μ) + k per channel.
            let mut a = vec![0f32; c];
            let mut b = vec![0f32; c];
            let mut k = vec![0f32; c];
            let mu: Vec<f32> = self.mean.iter().map(|&m| m as f32).collect();
            for ch in 0..c {
                let is = self.invstd[ch];
                let gi = gamma.data()[ch] as f64 * is;
                a[ch] = gi as f32;
                if self.training {
                    // b·(x − μ) = b·(x − μ_f32) − b·(μ − μ_f32)
                    let bb = -gi * is * is * gsgx[ch] / cnt;
                    b[ch] = bb as f32;
                    k[ch] = (-gi * gsg[ch] / cnt - bb * (self.mean[ch] - mu[ch] as f64)) as f32;
                }
            }
            let gx = written(xd.len(), |out| {
                grad_per_channel(out, gd, xd, inner, [&a, &b, &k, &mu], self.training)
            });
            Tensor::from_vec(x.shape().to_vec(), gx)
        });
        let ggamma = needs[1].then(|| {
            let v = (0..c)
                .map(|ch| (sgx[ch] * self.invstd[ch]) as f32)
                .collect();
            Tensor::from_vec(vec![c], v)
        });
        let gbeta =
            needs[2].then(|| Tensor::from_vec(vec![c], sg.iter().map(|&v| v as f32).collect()));
        vec![gx, ggamma, gbeta]
    }
}

/// A batch-norm layer's running statistics and settings.
#[derive(Clone, Copy, Debug)]
pub struct RunningStats<'a> {
    /// `running_mean [C]`.
    pub mean: &'a Tensor,
    /// `running_var [C]`.
    pub var: &'a Tensor,
    /// How far the running statistics move toward the batch's (PyTorch: 0.1).
    pub momentum: f32,
    /// Added to the variance (PyTorch: 1e-5).
    pub eps: f32,
}

impl Graph {
    /// Batch normalization over axis 1 (see the [module docs](self)).
    ///
    /// Returns the output and, in training, the updated
    /// `(running_mean, running_var)`; in evaluation `None`.
    ///
    /// # Panics
    /// On shape mismatches, and in training when a channel has a single
    /// value (`N·H·W = 1`): the unbiased variance is undefined.
    pub fn batch_norm(
        &mut self,
        x: Var,
        gamma: Var,
        beta: Var,
        stats: RunningStats<'_>,
        training: bool,
    ) -> (Var, Option<(Tensor, Tensor)>) {
        self.batch_norm_with(x, gamma, beta, stats, training, None)
    }

    /// Batch normalization in training with the statistics of the global
    /// batch of a data-parallel run (`SyncBatchNorm`): the per-channel sums
    /// of every process are added by `comm` in the forward pass, and those
    /// ∂x needs in the backward pass. Returns the output and the updated
    /// running statistics (the same on every process).
    pub fn batch_norm_sync(
        &mut self,
        x: Var,
        gamma: Var,
        beta: Var,
        stats: RunningStats<'_>,
        comm: Rc<dyn Collective>,
    ) -> (Var, (Tensor, Tensor)) {
        let (y, update) = self.batch_norm_with(x, gamma, beta, stats, true, Some(comm));
        (y, update.expect("training updates the statistics"))
    }

    fn batch_norm_with(
        &mut self,
        x: Var,
        gamma: Var,
        beta: Var,
        stats: RunningStats<'_>,
        training: bool,
        comm: Option<Rc<dyn Collective>>,
    ) -> (Var, Option<(Tensor, Tensor)>) {
        let RunningStats {
            mean: running_mean,
            var: running_var,
            momentum,
            eps,
        } = stats;
        let (xs, c) = (
            self.shape(x),
            self.shape(gamma).first().copied().unwrap_or(0),
        );
        let mut bad = match xs.len() {
            0 | 1 => Some(format!(
                "batch_norm: the input must be [N, C, …], got {xs:?}"
            )),
            _ => batch_norm_shape(&xs[1..], c, None).err(),
        };
        for (name, s) in [
            ("weight", self.shape(gamma)),
            ("bias", self.shape(beta)),
            ("running_mean", running_mean.shape()),
            ("running_var", running_var.shape()),
        ] {
            if bad.is_none() && s != [c] {
                bad = Some(format!("batch_norm: {name} must be [{c}] for input {xs:?}"));
            }
        }
        if let Some(e) = bad {
            let instead = xs.to_vec();
            return (self.bad_shapes(e, &instead), None);
        }
        let xv = self.value(x);
        let (n, c, inner) = layout(xv.shape());
        for (name, t) in [
            ("weight", self.value(gamma)),
            ("bias", self.value(beta)),
            ("running_mean", running_mean),
            ("running_var", running_var),
        ] {
            assert_eq!(
                t.shape(),
                &[c],
                "batch_norm: {name} must be [{c}] for input {:?}",
                xv.shape()
            );
        }
        let mut cnt = n * inner;
        let (mean, invstd, update) = if training {
            let (mean, var) = match &comm {
                None => {
                    assert!(
                        cnt > 1,
                        "batch_norm: expected more than 1 value per channel when training, \
                         got input of shape {:?} (use a batch of 2 or more, or evaluation mode)",
                        xv.shape()
                    );
                    batch_stats(xv.data(), n, c, inner)
                }
                Some(comm) => {
                    // Shifted by the running mean, the same on every process.
                    let shift: Vec<f64> = running_mean.data().iter().map(|&v| v as f64).collect();
                    let (s, q) = shifted_sums(xv.data(), c, inner, &shift);
                    let mut v = s;
                    v.extend_from_slice(&q);
                    v.push(cnt as f64);
                    comm.sum_f64(&mut v);
                    cnt = v.pop().expect("the count") as usize;
                    assert!(
                        cnt > 1,
                        "batch_norm: one value per channel in the global batch"
                    );
                    let q = v.split_off(c);
                    finish_stats(&v, &q, &shift, cnt as f64)
                }
            };
            let invstd: Vec<f64> = var.iter().map(|&v| 1.0 / (v + eps as f64).sqrt()).collect();
            let m = momentum as f64;
            let unbias = cnt as f64 / (cnt - 1) as f64;
            let rm = (0..c)
                .map(|ch| ((1.0 - m) * running_mean.data()[ch] as f64 + m * mean[ch]) as f32)
                .collect();
            let rv = (0..c)
                .map(|ch| ((1.0 - m) * running_var.data()[ch] as f64 + m * var[ch] * unbias) as f32)
                .collect();
            (
                mean,
                invstd,
                Some((Tensor::from_vec(vec![c], rm), Tensor::from_vec(vec![c], rv))),
            )
        } else {
            let mean = running_mean.data().iter().map(|&v| v as f64).collect();
            let invstd = running_var
                .data()
                .iter()
                .map(|&v| 1.0 / (v as f64 + eps as f64).sqrt())
                .collect();
            (mean, invstd, None)
        };
        let (gd, bd) = (self.value(gamma).data(), self.value(beta).data());
        // y = (x − μ_f32)·a + (β − (μ − μ_f32)·a): the part of μ that f32
        // cannot hold goes into the constant, at no cost per element.
        let mu: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let a: Vec<f32> = (0..c)
            .map(|ch| (gd[ch] as f64 * invstd[ch]) as f32)
            .collect();
        let shift: Vec<f32> = (0..c)
            .map(|ch| (bd[ch] as f64 - (mean[ch] - mu[ch] as f64) * a[ch] as f64) as f32)
            .collect();
        let y = written(xv.data().len(), |y| {
            affine_per_channel(xv.data(), y, c, inner, &mu, &a, &shift)
        });
        let y = Tensor::from_vec(xv.shape().to_vec(), y);
        let back = BatchNormBack {
            mean,
            invstd,
            training,
            sync: comm.map(|c| (c, cnt as f64)),
        };
        (self.push(Op::BatchNorm, y, &[x, gamma, beta], back), update)
    }
}

#[cfg(test)]
mod tests {
    use super::RunningStats;

    /// The statistics argument from its parts.
    fn running<'a>(
        mean: &'a crate::Tensor,
        var: &'a crate::Tensor,
        momentum: f32,
        eps: f32,
    ) -> RunningStats<'a> {
        RunningStats {
            mean,
            var,
            momentum,
            eps,
        }
    }

    use crate::ops::gradcheck::{check, pseudo_random};
    use crate::{Graph, Tensor};

    fn stats(c: usize, seed: u64) -> (Tensor, Tensor) {
        let rm = pseudo_random(&[c], seed).map(|v| 0.3 * v);
        let rv = pseudo_random(&[c], seed + 1).map(|v| 0.5 + v.abs());
        (rm, rv)
    }

    fn params(c: usize) -> (Tensor, Tensor) {
        (
            pseudo_random(&[c], 11).map(|v| 1.0 + 0.5 * v),
            pseudo_random(&[c], 12),
        )
    }

    fn bn_check(name: &str, shape: &[usize], training: bool) {
        bn_check_x(
            name,
            pseudo_random(shape, 1).map(|v| 2.0 * v + 0.5),
            training,
        );
    }

    fn bn_check_x(name: &str, x: Tensor, training: bool) {
        let c = x.shape()[1];
        let (rm, rv) = stats(c, 3);
        let (w, b) = params(c);
        check(name, &[x, w, b], |g, v| {
            g.batch_norm(v[0], v[1], v[2], running(&rm, &rv, 0.1, 1e-5), training)
                .0
        });
    }

    #[test]
    fn gradients_match_finite_differences_1d() {
        bn_check("bn1d train", &[6, 3], true);
        bn_check("bn1d eval", &[6, 3], false);
        bn_check("bn1d eval N=1", &[1, 3], false);
        // Tiny batches: values well apart, or the finite-difference step
        // (1e-2) is not small against the batch's spread.
        let x = Tensor::from_vec(vec![2, 4], vec![-1.0, 2.0, 0.5, 3.0, 1.5, -0.5, 2.5, -2.0]);
        bn_check_x("bn1d train N=2", x, true);
        let x = pseudo_random(&[3, 4], 3).map(|v| 2.0 * v + 0.5);
        bn_check_x("bn1d train N=3", x, true);
        bn_check("bn1d [N,C,L] train", &[3, 2, 5], true);
    }

    #[test]
    fn gradients_match_finite_differences_2d() {
        bn_check("bn2d train", &[3, 2, 3, 4], true);
        bn_check("bn2d eval", &[3, 2, 3, 4], false);
        bn_check("bn2d eval N=1", &[1, 2, 3, 3], false);
        // N = 1 is fine in training when there are several positions.
        bn_check("bn2d train N=1", &[1, 3, 3, 3], true);
        // Lengths not a multiple of the 8 accumulation lanes, and longer than 8.
        bn_check("bn2d train 5x5", &[2, 2, 5, 5], true);
    }

    #[test]
    fn fan_out_sums_both_paths() {
        let (rm, rv) = stats(3, 3);
        let (w, b) = params(3);
        let x = pseudo_random(&[5, 3], 1);
        for training in [true, false] {
            check("bn fan-out", &[x.clone(), w.clone(), b.clone()], |g, v| {
                let y = g
                    .batch_norm(v[0], v[1], v[2], running(&rm, &rv, 0.1, 1e-5), training)
                    .0;
                let z = g.mul(y, v[0]);
                g.add(z, v[0])
            });
        }
        // The 2-d layout, x also feeding a second batch norm.
        let x = pseudo_random(&[2, 3, 2, 3], 5);
        check("bn2d fan-out", &[x, w, b], |g, v| {
            let y1 = g
                .batch_norm(v[0], v[1], v[2], running(&rm, &rv, 0.1, 1e-5), true)
                .0;
            let y2 = g
                .batch_norm(v[0], v[1], v[2], running(&rm, &rv, 0.1, 1e-5), false)
                .0;
            let s = g.mul(y1, y2);
            g.add(s, v[0])
        });
    }

    #[test]
    fn training_uses_biased_variance_and_updates_with_unbiased() {
        // Channel 0: 1, 2, 3, 6 → mean 3, biased var 3.5, unbiased 14/3.
        // Channel 1: 0, 0, 4, 4 → mean 2, biased var 4, unbiased 16/3.
        let x = Tensor::from_vec(vec![4, 2], vec![1., 0., 2., 0., 3., 4., 6., 4.]);
        let rm = Tensor::from_vec(vec![2], vec![1.0, -1.0]);
        let rv = Tensor::from_vec(vec![2], vec![2.0, 0.5]);
        let mut g = Graph::new();
        let xv = g.input(x);
        let w = g.param(Tensor::from_vec(vec![2], vec![2.0, 1.0]));
        let b = g.param(Tensor::from_vec(vec![2], vec![0.5, -1.0]));
        let (y, upd) = g.batch_norm(xv, w, b, running(&rm, &rv, 0.1, 1e-5), true);
        let (nrm, nrv) = upd.expect("training returns running statistics");
        let close = |a: f32, b: f64| (a as f64 - b).abs() < 1e-6 * b.abs().max(1.0);
        assert!(close(nrm.data()[0], 0.9 * 1.0 + 0.1 * 3.0));
        assert!(close(nrm.data()[1], -0.9 + 0.1 * 2.0));
        assert!(close(nrv.data()[0], 0.9 * 2.0 + 0.1 * 14.0 / 3.0));
        assert!(close(nrv.data()[1], 0.9 * 0.5 + 0.1 * 16.0 / 3.0));
        let s0 = (3.5f64 + 1e-5).sqrt();
        let s1 = (4.0f64 + 1e-5).sqrt();
        let want = [
            2.0 * (1.0 - 3.0) / s0 + 0.5,
            (0.0 - 2.0) / s1 - 1.0,
            2.0 * (2.0 - 3.0) / s0 + 0.5,
            (0.0 - 2.0) / s1 - 1.0,
            2.0 * (3.0 - 3.0) / s0 + 0.5,
            (4.0 - 2.0) / s1 - 1.0,
            2.0 * (6.0 - 3.0) / s0 + 0.5,
            (4.0 - 2.0) / s1 - 1.0,
        ];
        for (&a, &b) in g.value(y).data().iter().zip(&want) {
            assert!((a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn eval_uses_running_statistics_and_returns_no_update() {
        let x = Tensor::from_vec(vec![1, 2], vec![3.0, -1.0]);
        let rm = Tensor::from_vec(vec![2], vec![1.0, 0.0]);
        let rv = Tensor::from_vec(vec![2], vec![4.0, 0.25]);
        let mut g = Graph::new();
        let xv = g.param(x);
        let w = g.param(Tensor::from_vec(vec![2], vec![1.5, 1.0]));
        let b = g.param(Tensor::from_vec(vec![2], vec![0.0, 2.0]));
        let (y, upd) = g.batch_norm(xv, w, b, running(&rm, &rv, 0.1, 0.0), false);
        assert!(upd.is_none());
        assert_eq!(g.value(y).data(), &[1.5 * 2.0 / 2.0, -1.0 / 0.5 + 2.0]);
        let l = g.sum(y);
        let grads = g.backward(l);
        assert_eq!(grads.get(xv).unwrap().data(), &[1.5 / 2.0, 1.0 / 0.5]);
        assert_eq!(grads.get(w).unwrap().data(), &[1.0, -2.0]);
        assert_eq!(grads.get(b).unwrap().data(), &[1.0, 1.0]);
    }

    #[test]
    fn batchnorm2d_statistics_are_per_channel_over_n_h_w() {
        let (n, c, hw) = (3, 4, 5 * 7);
        // A large offset: the shifted f64 moments keep the variance exact.
        let x = pseudo_random(&[n, c, 5, 7], 9).map(|v| 1000.0 + v);
        let (rm, rv) = (Tensor::zeros(&[c]), Tensor::full(&[c], 1.0));
        let mut g = Graph::no_grad();
        let xv = g.input(x.clone());
        let w = g.param(Tensor::full(&[c], 1.0));
        let b = g.param(Tensor::zeros(&[c]));
        let (y, upd) = g.batch_norm(xv, w, b, running(&rm, &rv, 1.0, 1e-5), true);
        let (nrm, nrv) = upd.unwrap();
        for ch in 0..c {
            let vals: Vec<f64> = (0..n)
                .flat_map(|i| x.data()[(i * c + ch) * hw..(i * c + ch + 1) * hw].to_vec())
                .map(|v| v as f64)
                .collect();
            let cnt = vals.len() as f64;
            let m = vals.iter().sum::<f64>() / cnt;
            let v = vals.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / cnt;
            // momentum 1: the running statistics become the batch's.
            assert!((nrm.data()[ch] as f64 - m).abs() < 1e-4);
            assert!((nrv.data()[ch] as f64 - v * cnt / (cnt - 1.0)).abs() < 1e-5);
            for i in 0..n {
                for s in 0..hw {
                    let k = (i * c + ch) * hw + s;
                    let want = (x.data()[k] as f64 - m) / (v + 1e-5).sqrt();
                    assert!((g.value(y).data()[k] as f64 - want).abs() < 2e-3);
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "more than 1 value per channel")]
    fn training_with_one_value_per_channel_panics() {
        let mut g = Graph::new();
        let x = g.input(Tensor::from_vec(vec![1, 2], vec![1.0, 2.0]));
        let w = g.param(Tensor::full(&[2], 1.0));
        let b = g.param(Tensor::zeros(&[2]));
        let s = Tensor::zeros(&[2]);
        g.batch_norm(x, w, b, running(&s, &s, 0.1, 1e-5), true);
    }
}
