//! `softmax` and `log_softmax` over the last axis, through log-sum-exp.
//!
//! `softmax(z)ᵢ = e^(zᵢ−m) / Σⱼ e^(zⱼ−m)` with `m = max z`, so no exponent
//! overflows; `log_softmax(z) = z − m − ln Σ e^(z−m)` never takes `log(0)`.
//!
//! Backward (per row, `y` the output, `g` the upstream gradient):
//! softmax: `∂z = y ⊙ (g − Σ g⊙y)`; log_softmax: `∂z = g − softmax(z)·Σ g`.

use crate::autograd::{Backward, Op};
use crate::{Graph, Tensor, Var};

/// Row-wise log-softmax of `z` seen as `[rows, c]` into `out`.
pub fn log_softmax_rows(z: &[f32], c: usize, out: &mut [f32]) {
    for (zr, or) in z.chunks(c).zip(out.chunks_mut(c)) {
        let m = zr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = zr.iter().map(|&v| (v - m).exp()).sum();
        let lse = m + s.ln();
        for (o, &v) in or.iter_mut().zip(zr) {
            *o = v - lse;
        }
    }
}

/// [`log_softmax_rows`] into `lsm` and [`softmax_rows`] into `p` at once,
/// each exponential taken once (the same operations, so the same bits as
/// the two calls): cross-entropy's forward pass keeps the probabilities for
/// its backward pass instead of exponentiating every logit again.
pub fn log_softmax_and_softmax_rows(z: &[f32], c: usize, lsm: &mut [f32], p: &mut [f32]) {
    for ((zr, lr), pr) in z.chunks(c).zip(lsm.chunks_mut(c)).zip(p.chunks_mut(c)) {
        let m = zr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0.0;
        for (e, &v) in pr.iter_mut().zip(zr) {
            *e = (v - m).exp();
            s += *e;
        }
        let lse = m + s.ln();
        for (o, &v) in lr.iter_mut().zip(zr) {
            *o = v - lse;
        }
        let inv = 1.0 / s;
        for e in pr.iter_mut() {
            *e *= inv;
        }
    }
}

/// Row-wise softmax of `z` seen as `[rows, c]` into `out`.
pub fn softmax_rows(z: &[f32], c: usize, out: &mut [f32]) {
    for (zr, or) in z.chunks(c).zip(out.chunks_mut(c)) {
        let m = zr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0.0;
        for (o, &v) in or.iter_mut().zip(zr) {
            *o = (v - m).exp();
            s += *o;
        }
        let inv = 1.0 / s;
        for o in or.iter_mut() {
            *o *= inv;
        }
    }
}

struct SoftmaxBack {
    log: bool,
}

impl Backward for SoftmaxBack {
    fn backward(
        &self,
        g: &Tensor,
        _inp: &[&Tensor],
        out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let c = *out.shape().last().unwrap();
        let mut gz = g.clone();
        for (gr, yr) in gz.data_mut().chunks_mut(c).zip(out.data().chunks(c)) {
            if self.log {
                let s: f32 = gr.iter().sum();
                for (d, &y) in gr.iter_mut().zip(yr) {
                    *d -= y.exp() * s;
                }
            } else {
                let s: f32 = gr.iter().zip(yr).map(|(a, b)| a * b).sum();
                for (d, &y) in gr.iter_mut().zip(yr) {
                    *d = y * (*d - s);
                }
            }
        }
        vec![Some(gz)]
    }
}

impl Graph {
    /// Softmax over the last axis.
    pub fn softmax(&mut self, z: Var) -> Var {
        let zv = self.value(z);
        let c = *zv.shape().last().expect("softmax of a scalar");
        let mut y = zv.zeros_like();
        softmax_rows(zv.data(), c, y.data_mut());
        self.push(Op::Softmax, y, &[z], SoftmaxBack { log: false })
    }

    /// Softmax over `axis` (`F.softmax(z, dim=axis)`): the axis moved last,
    /// the softmax, and back.
    pub fn softmax_axis(&mut self, z: Var, axis: usize) -> Var {
        self.over_axis(z, axis, |g, v| g.softmax(v))
    }

    /// Log-softmax over `axis` (`F.log_softmax(z, dim=axis)`).
    pub fn log_softmax_axis(&mut self, z: Var, axis: usize) -> Var {
        self.over_axis(z, axis, |g, v| g.log_softmax(v))
    }

    /// `f` applied with `axis` moved to the last place.
    fn over_axis(&mut self, z: Var, axis: usize, f: impl Fn(&mut Graph, Var) -> Var) -> Var {
        let last = self.shape(z).len().saturating_sub(1);
        if axis >= last {
            return f(self, z);
        }
        let t = self.transpose(z, axis, last);
        let y = f(self, t);
        self.transpose(y, axis, last)
    }

    /// Log-softmax over the last axis.
    pub fn log_softmax(&mut self, z: Var) -> Var {
        let zv = self.value(z);
        let c = *zv.shape().last().expect("log_softmax of a scalar");
        let mut y = zv.zeros_like();
        log_softmax_rows(zv.data(), c, y.data_mut());
        self.push(Op::LogSoftmax, y, &[z], SoftmaxBack { log: true })
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{check, pseudo_random};
    use crate::{Graph, Tensor};

    #[test]
    fn softmax_over_any_axis() {
        let z = pseudo_random(&[2, 4, 3], 9);
        for axis in 0..3 {
            check("softmax_axis", std::slice::from_ref(&z), |g, v| {
                g.softmax_axis(v[0], axis)
            });
            check("log_softmax_axis", std::slice::from_ref(&z), |g, v| {
                g.log_softmax_axis(v[0], axis)
            });
        }
        let mut g = Graph::new();
        let x = g.input(z);
        let p = g.softmax_axis(x, 1);
        // each (i, ·, k) sums to 1
        let sums = g.sum_axes(p, &[1], false);
        assert!(g.value(sums).data().iter().all(|s| (s - 1.0).abs() < 1e-6));
    }

    #[test]
    fn both_at_once_are_the_two_calls() {
        let c = 7;
        let z: Vec<f32> = (0..5 * c)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.9)
            .collect();
        let (mut l1, mut p1) = (vec![0.0; z.len()], vec![0.0; z.len()]);
        let (mut l2, mut p2) = (vec![0.0; z.len()], vec![0.0; z.len()]);
        super::log_softmax_rows(&z, c, &mut l1);
        super::softmax_rows(&z, c, &mut p1);
        super::log_softmax_and_softmax_rows(&z, c, &mut l2, &mut p2);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!((bits(&l1), bits(&p1)), (bits(&l2), bits(&p2)));
    }

    #[test]
    fn gradients_match_finite_differences() {
        let z = pseudo_random(&[4, 6], 1).map(|v| v * 3.0);
        check("softmax", std::slice::from_ref(&z), |g, v| g.softmax(v[0]));
        check("log_softmax", &[z], |g, v| g.log_softmax(v[0]));
    }

    #[test]
    fn large_logits_stay_finite() {
        let mut g = Graph::no_grad();
        let z = g.input(Tensor::from_vec(vec![1, 3], vec![1000.0, 0.0, -1000.0]));
        let y = g.softmax(z);
        assert_eq!(g.value(y).data(), &[1.0, 0.0, 0.0]);
        let l = g.log_softmax(z);
        assert_eq!(g.value(l).data(), &[0.0, -1000.0, -2000.0]);
    }
}
