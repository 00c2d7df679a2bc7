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
use crate::cpu::{par, threads};
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
                input_grad_rows(g, gamma.data(), xhat, rstd, dx)
            });
            Tensor::from_vec(x.shape().to_vec(), dx)
        });
        let column_sums = |f: &dyn Fn(usize, usize) -> f64| {
            let mut acc = vec![0f64; d];
            for r in 0..gd.len() / d {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a += f(r, j);
                }
            }
            Tensor::from_vec(vec![d], acc.iter().map(|&v| v as f32).collect())
        };
        let gw = needs[1]
            .then(|| column_sums(&|r, j| gd[r * d + j] as f64 * self.xhat[r * d + j] as f64));
        let gb = needs[2].then(|| column_sums(&|r, j| gd[r * d + j] as f64));
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

/// `y = x̂·γ + β` with `x̂ = (x − mean)/√(var + ε)` for each row of `x`,
/// keeping `x̂` and `1/√(var + ε)`.
fn normalize_rows(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    y: &mut [f32],
    xhat: &mut [f32],
    rstd: &mut [f32],
) {
    let d = gamma.len();
    for (((xr, yr), hr), r) in x
        .chunks_exact(d)
        .zip(y.chunks_exact_mut(d))
        .zip(xhat.chunks_exact_mut(d))
        .zip(rstd.iter_mut())
    {
        let mean = xr.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = xr.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let rs = 1.0 / (var + eps as f64).sqrt();
        *r = rs as f32;
        for (((o, h), &v), (&g, &b)) in yr
            .iter_mut()
            .zip(hr.iter_mut())
            .zip(xr)
            .zip(gamma.iter().zip(beta))
        {
            let n = (v as f64 - mean) * rs;
            *h = n as f32;
            *o = (n * g as f64 + b as f64) as f32;
        }
    }
}

/// `∂x = rstd·(g·γ − mean(g·γ) − x̂·mean(g·γ·x̂))` for each row.
fn input_grad_rows(g: &[f32], gamma: &[f32], xhat: &[f32], rstd: &[f32], dx: &mut [f32]) {
    let d = gamma.len();
    for (((dxr, gr), xr), &rs) in dx
        .chunks_exact_mut(d)
        .zip(g.chunks_exact(d))
        .zip(xhat.chunks_exact(d))
        .zip(rstd)
    {
        let (mut m1, mut m2) = (0f64, 0f64);
        for ((&gv, &gm), &xh) in gr.iter().zip(gamma).zip(xr) {
            let gg = gv as f64 * gm as f64;
            m1 += gg;
            m2 += gg * xh as f64;
        }
        let (m1, m2, rs) = (m1 / d as f64, m2 / d as f64, rs as f64);
        for (((o, &gv), &gm), &xh) in dxr.iter_mut().zip(gr).zip(gamma).zip(xr) {
            *o = (rs * (gv as f64 * gm as f64 - m1 - xh as f64 * m2)) as f32;
        }
    }
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
            normalize_rows(x, gv.data(), bv.data(), eps, y, xhat, rstd)
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
}
