//! PReLU: `y = x if x > 0 else a·x`, with a learned slope `a`.
//!
//! # Shapes
//! `x: [N, C, ...]` (or `[N]`), `a: [1]` (one slope, PyTorch's default) or
//! `[C]` (one per channel, axis 1) → `y` shaped as `x`.
//!
//! Backward: `∂x = g if x > 0 else a·g`; `∂a = Σ g·x over x ≤ 0` (per channel).

use crate::autograd::{Backward, Op};
use crate::{Graph, Tensor, Var};

/// Whether `a` (`[C]`) holds slopes for `x`: one for all values, or one
/// per channel of axis 1 (`[N, C, …]`); the output has `x`'s shape.
pub fn prelu_shape(x: &[usize], a: &[usize]) -> Result<Vec<usize>, String> {
    match *a {
        [1] => Ok(x.to_vec()),
        [c] if x.len() >= 2 && x[1] == c => Ok(x.to_vec()),
        [c] => Err(format!(
            "prelu: {c} slopes for input {x:?} (one slope, or one per channel of axis 1)"
        )),
        _ => Err(format!("prelu: the weight must be 1-d, got {a:?}")),
    }
}

/// (channels, elements per channel per sample) for the slope layout of a
/// shape [`prelu_shape`] accepted.
fn layout(x: &[usize], a: &[usize]) -> (usize, usize) {
    match a[0] {
        1 => (1, 1),
        c => (c, x[2..].iter().product()),
    }
}

#[inline(always)]
fn channel(i: usize, c: usize, inner: usize) -> usize {
    if c == 1 {
        0
    } else {
        (i / inner) % c
    }
}

struct PreluBack;

impl Backward for PreluBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let (x, a) = (inp[0], inp[1]);
        let (c, inner) = layout(x.shape(), a.shape());
        let (xd, ad, gd) = (x.data(), a.data(), g.data());
        let gx = needs[0].then(|| {
            let mut gx = g.clone();
            for (i, d) in gx.data_mut().iter_mut().enumerate() {
                if xd[i] <= 0.0 {
                    *d *= ad[channel(i, c, inner)];
                }
            }
            gx
        });
        let ga = needs[1].then(|| {
            let mut acc = vec![0f64; c];
            for i in 0..xd.len() {
                if xd[i] <= 0.0 {
                    acc[channel(i, c, inner)] += (gd[i] * xd[i]) as f64;
                }
            }
            Tensor::from_vec(vec![c], acc.iter().map(|&v| v as f32).collect())
        });
        vec![gx, ga]
    }
}

impl Graph {
    /// PReLU with slopes `a` (see the [module docs](self)).
    pub fn prelu(&mut self, x: Var, a: Var) -> Var {
        if let Err(e) = prelu_shape(self.shape(x), self.shape(a)) {
            let instead = self.shape(x).to_vec();
            return self.bad_shapes(e, &instead);
        }
        let (xv, av) = (self.value(x), self.value(a));
        let (c, inner) = layout(xv.shape(), av.shape());
        let mut y = xv.clone();
        let ad = av.data();
        for (i, v) in y.data_mut().iter_mut().enumerate() {
            if *v <= 0.0 {
                *v *= ad[channel(i, c, inner)];
            }
        }
        self.push(Op::PRelu, y, &[x, a], PreluBack)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{check, pseudo_random};
    use crate::Tensor;

    #[test]
    fn gradients_match_finite_differences() {
        let x = pseudo_random(&[4, 3, 2], 1).map(|v| if v.abs() < 0.05 { v + 0.1 } else { v });
        check(
            "prelu one slope",
            &[x.clone(), Tensor::from_vec(vec![1], vec![0.25])],
            |g, v| g.prelu(v[0], v[1]),
        );
        check(
            "prelu per channel",
            &[x, Tensor::from_vec(vec![3], vec![0.25, -0.1, 0.5])],
            |g, v| g.prelu(v[0], v[1]),
        );
    }
}
