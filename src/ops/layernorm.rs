//! Layer normalization over the last axis, as
//! `F.layer_norm(x, [D], weight, bias, eps)`: each row of `D` values is
//! normalized with its own mean and (biased) variance, then scaled and
//! shifted per feature.
//!
//! # Shapes
//! `x: [..., D]`, `γ, β: [D]` → `y: [..., D]`.
//!
//! # Forward, per row
//! `μ = Σx/D`, `σ² = Σ(x − μ)²/D`, `x̂ = (x − μ)/√(σ² + ε)`, `y = γ·x̂ + β`
//! (the sums in `f64`).
//!
//! # Backward
//! With `g = ∂L/∂y` and `r = 1/√(σ² + ε)`: `∂β = Σ_rows g`,
//! `∂γ = Σ_rows g·x̂`, and per row
//! `∂x = r·(g·γ − mean(g·γ) − x̂·mean(g·γ·x̂))`: the same three terms as
//! batch norm's, over the features of one sample instead of the samples
//! of one channel.

use crate::autograd::{Backward, Op};
use crate::cpu::{par, rows, threads};
use crate::{Graph, Tensor, Var};

/// Whether one sample `s` (`[..., D]`) fits a layer norm over `d` features;
/// the output has its shape.
pub fn layer_norm_shape(s: &[usize], d: usize) -> Result<Vec<usize>, String> {
    if s.last() == Some(&d) {
        return Ok(s.to_vec());
    }
    Err(format!(
        "expects input [N, …, {d}] (the last axis normalized), got {}",
        crate::ops::shape::fmt(s)
    ))
}

struct LayerNormBack {
    /// The normalized input `x̂`, `[rows, D]`.
    xhat: Vec<f32>,
    /// `1/√(σ² + ε)` per row.
    rstd: Vec<f32>,
}

impl Backward for LayerNormBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let (x, gamma) = (inp[0], inp[1]);
        let d = gamma.numel();
        let gd = g.data();
        let gx = needs[0].then(|| {
            let mut dx = vec![0f32; x.numel()];
            let per = rows_per_job(dx.len() / d.max(1), d);
            let jobs: Vec<_> = dx
                .chunks_mut(per * d)
                .zip(gd.chunks(per * d))
                .zip(self.xhat.chunks(per * d))
                .zip(self.rstd.chunks(per))
                .collect();
            par::map_jobs(jobs, |(((dx, g), xhat), rstd)| {
                rows::layer_norm_grad_rows(g, gamma.data(), xhat, rstd, dx)
            });
            Tensor::from_vec(x.shape().to_vec(), dx)
        });
        let (gw, gb) = if needs[1] || needs[2] {
            let (mut gw, mut gb) = (vec![0f64; d], vec![0f64; d]);
            rows::layer_norm_column_sums(gd, &self.xhat, &mut gw, &mut gb);
            let t = |v: Vec<f64>| Tensor::from_vec(vec![d], v.iter().map(|&x| x as f32).collect());
            (needs[1].then(|| t(gw)), needs[2].then(|| t(gb)))
        } else {
            (None, None)
        };
        vec![gx, gw, gb]
    }
}

/// Rows per job: an even share for each kernel thread once the tensor is
/// large, else all of them (each row is computed alike whatever the split).
fn rows_per_job(rows: usize, d: usize) -> usize {
    let jobs = if rows * d >= par::SPLIT_MIN {
        threads()
    } else {
        1
    };
    rows.div_ceil(jobs.max(1)).max(1)
}

impl Graph {
    /// Layer normalization of `x` over its last axis with scale `gamma`
    /// and shift `beta` (`[D]` each) and `eps` (PyTorch's default 1e-5);
    /// see the [module docs](self).
    pub fn layer_norm(&mut self, x: Var, gamma: Var, beta: Var, eps: f32) -> Var {
        let (xs, gs, bs) = (self.shape(x), self.shape(gamma), self.shape(beta));
        let d = gs.first().copied().unwrap_or(0);
        let bad = match layer_norm_shape(crate::ops::shape::sample(xs), d) {
            Err(e) => Some(e),
            Ok(_) if gs != [d] || bs != [d] => Some(format!(
                "layer_norm: weight {gs:?} and bias {bs:?} must both be [{d}]"
            )),
            Ok(_) => None,
        };
        if let Some(e) = bad {
            let instead = xs.to_vec();
            return self.bad_shapes(e, &instead);
        }
        let (xv, gv, bv) = (self.value(x), self.value(gamma), self.value(beta));
        let rows = xv.numel() / d.max(1);
        let (mut y, mut xhat) = (vec![0f32; xv.numel()], vec![0f32; xv.numel()]);
        let mut rstd = vec![0f32; rows];
        let per = rows_per_job(rows, d);
        let jobs: Vec<_> = xv
            .data()
            .chunks(per * d)
            .zip(y.chunks_mut(per * d))
            .zip(xhat.chunks_mut(per * d))
            .zip(rstd.chunks_mut(per))
            .collect();
        par::map_jobs(jobs, |(((x, y), xhat), rstd)| {
            rows::layer_norm_rows(x, gv.data(), bv.data(), eps, y, xhat, rstd)
        });
        let y = Tensor::from_vec(xv.shape().to_vec(), y);
        self.push(
            Op::LayerNorm,
            y,
            &[x, gamma, beta],
            LayerNormBack { xhat, rstd },
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{check, pseudo_random};

    #[test]
    fn gradients_match_finite_differences() {
        let x = pseudo_random(&[3, 2, 5], 1).map(|v| 2.0 * v + 0.5);
        let w = pseudo_random(&[5], 2).map(|v| 1.0 + 0.3 * v);
        let b = pseudo_random(&[5], 3);
        check("layer_norm", &[x, w, b], |g, v| {
            g.layer_norm(v[0], v[1], v[2], 1e-5)
        });
    }

    #[test]
    fn rows_come_out_normalized() {
        let mut g = crate::Graph::new();
        let x = g.input(crate::Tensor::from_vec(
            vec![2, 4],
            vec![1., 2., 3., 4., -2., 0., 2., 4.],
        ));
        let w = g.param(crate::Tensor::full(&[4], 1.0));
        let b = g.param(crate::Tensor::zeros(&[4]));
        let y = g.layer_norm(x, w, b, 0.0);
        for row in g.value(y).data().chunks(4) {
            let m: f32 = row.iter().sum::<f32>() / 4.0;
            let v: f32 = row.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / 4.0;
            assert!(m.abs() < 1e-6 && (v - 1.0).abs() < 1e-5, "{row:?}");
        }
    }

    #[test]
    fn wide_rows_far_from_zero_match_float64() {
        // 700 rows (split over the threads) of 37 values (8-lane blocks and
        // a remainder), offset by 1000: the shifted sums keep the variance
        let (rows, d) = (700, 37);
        let x = pseudo_random(&[rows, d], 4).map(|v| 1000.0 + 3.0 * v);
        let w = pseudo_random(&[d], 5).map(|v| 1.0 + 0.3 * v);
        let b = pseudo_random(&[d], 6);
        let mut g = crate::Graph::new();
        let (xv, wv, bv) = (g.param(x.clone()), g.param(w.clone()), g.param(b.clone()));
        let y = g.layer_norm(xv, wv, bv, 1e-5);
        for (r, (xr, yr)) in x
            .data()
            .chunks(d)
            .zip(g.value(y).data().chunks(d))
            .enumerate()
        {
            let m = xr.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
            let var = xr.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / d as f64;
            for j in 0..d {
                let want = (xr[j] as f64 - m) / (var + 1e-5).sqrt() * w.data()[j] as f64
                    + b.data()[j] as f64;
                let e = (yr[j] as f64 - want).abs();
                assert!(
                    e < 1e-4 * want.abs().max(1.0),
                    "row {r}, {j}: {} vs {want}",
                    yr[j]
                );
            }
        }
    }
}
