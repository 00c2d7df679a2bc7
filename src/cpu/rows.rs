//! Layer normalization's kernels: each row of `D` values normalized by its
//! own mean and variance, each row's input gradient, and the columns' sums
//! for the scale's and shift's gradients. Sums run in `f64` over eight
//! independent lanes (so they pipeline and vectorize); the per-value passes
//! run in `f32`; every loop is compiled for the widest vectors
//! ([`wide_fn!`](crate::cpu::simd::wide_fn)).

use crate::cpu::simd::wide_fn;

/// `(mean, 1/√(var + ε))` of a row, the variance biased (PyTorch's), summed
/// shifted by the row's first value (no cancellation for rows far from 0).
#[inline(always)]
fn row_moments(x: &[f32], eps: f32) -> (f32, f32) {
    let k = x.first().copied().unwrap_or(0.0) as f64;
    let (mut s, mut q) = ([0f64; 8], [0f64; 8]);
    let c = x.chunks_exact(8);
    let rest = c.remainder();
    for v in c {
        for l in 0..8 {
            let d = v[l] as f64 - k;
            s[l] += d;
            q[l] += d * d;
        }
    }
    let (mut s, mut q) = (s.iter().sum::<f64>(), q.iter().sum::<f64>());
    for &v in rest {
        let d = v as f64 - k;
        s += d;
        q += d * d;
    }
    let n = x.len().max(1) as f64;
    let (m, var) = (s / n, (q / n - (s / n) * (s / n)).max(0.0));
    ((k + m) as f32, (1.0 / (var + eps as f64).sqrt()) as f32)
}

wide_fn! {
    /// For each row of `x` (`gamma.len()` values): `x̂ = (x − mean)·rstd`
    /// into `xhat`, `y = x̂·γ + β` into `y`, and `rstd` per row.
    pub(crate) fn layer_norm_rows(
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
            let (mean, rs) = row_moments(xr, eps);
            *r = rs;
            for j in 0..d {
                let n = (xr[j] - mean) * rs;
                hr[j] = n;
                yr[j] = n * gamma[j] + beta[j];
            }
        }
    }
}

wide_fn! {
    /// For each row: `∂x = rstd·(g·γ − mean(g·γ) − x̂·mean(g·γ·x̂))`.
    pub(crate) fn layer_norm_grad_rows(g: &[f32], gamma: &[f32], xhat: &[f32], rstd: &[f32], dx: &mut [f32]) {
        let d = gamma.len();
        for (((dxr, gr), hr), &rs) in dx
            .chunks_exact_mut(d)
            .zip(g.chunks_exact(d))
            .zip(xhat.chunks_exact(d))
            .zip(rstd)
        {
            let (mut m1, mut m2) = ([0f64; 8], [0f64; 8]);
            let whole = d / 8 * 8;
            for j0 in (0..whole).step_by(8) {
                for l in 0..8 {
                    let gg = (gr[j0 + l] * gamma[j0 + l]) as f64;
                    m1[l] += gg;
                    m2[l] += gg * hr[j0 + l] as f64;
                }
            }
            let (mut a, mut b) = (m1.iter().sum::<f64>(), m2.iter().sum::<f64>());
            for j in whole..d {
                let gg = (gr[j] * gamma[j]) as f64;
                a += gg;
                b += gg * hr[j] as f64;
            }
            let (a, b) = ((a / d as f64) as f32, (b / d as f64) as f32);
            for j in 0..d {
                dxr[j] = rs * (gr[j] * gamma[j] - a - hr[j] * b);
            }
        }
    }
}

wide_fn! {
    /// Column sums over the rows of `g` (`d` a row): `Σ g·x̂` into `gw` and
    /// `Σ g` into `gb`, in `f64`, row by row (the order does not depend on
    /// the thread count).
    pub(crate) fn layer_norm_column_sums(g: &[f32], xhat: &[f32], gw: &mut [f64], gb: &mut [f64]) {
        let d = gw.len();
        for (gr, hr) in g.chunks_exact(d).zip(xhat.chunks_exact(d)) {
            for j in 0..d {
                gw[j] += gr[j] as f64 * hr[j] as f64;
                gb[j] += gr[j] as f64;
            }
        }
    }
}
