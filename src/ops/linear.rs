//! The affine layer as one node: `y = x · Wᵀ + b`.
//!
//! # Shapes
//! `x: [..., in]`, `W: [out, in]` (PyTorch's layout), `b: [out]` → `y: [..., out]`.
//!
//! Backward, with `g = ∂L/∂y` seen as `[M, out]` (M = product of leading axes):
//! `∂x = g · W`, `∂W = gᵀ · x`, `∂b = Σ_rows g`. One fused node instead of a
//! matmul, a transpose and a broadcast add: one pass gives all three, and
//! `∂x` is skipped when `x` needs no gradient (the data batch).

use crate::autograd::{Backward, Op};
use crate::cpu::channels::column_sums;
use crate::cpu::par;
use crate::cpu::{matmul, matmul_into, matmul_on, team, threads, Trans};
use crate::ops::shape;
use crate::{Graph, Tensor, Var};

/// The shape of one sample's output of `linear` for one sample of shape
/// `s` (`[…, in]`), a weight `w` (`[out, in]`) and a bias `b` (`[out]`):
/// `[…, out]`, or what is wrong. The op and the
/// [`Linear`](crate::nn::Linear) layer both ask it.
pub fn linear_shape(s: &[usize], w: &[usize], b: Option<&[usize]>) -> Result<Vec<usize>, String> {
    let [out_f, in_f] = *w else {
        return Err(format!("linear: the weight must be [out, in], got {w:?}"));
    };
    if s.last() != Some(&in_f) {
        let hint = if s.len() > 1 && shape::numel(s) == Some(in_f) {
            format!("; add `flatten` before it (the input has {in_f} values per sample)")
        } else {
            String::new()
        };
        return Err(format!(
            "expects input [N, {in_f}], got {}{hint}",
            shape::fmt(s)
        ));
    }
    if let Some(b) = b.filter(|b| *b != [out_f]) {
        return Err(format!("linear: the bias must be [{out_f}], got {b:?}"));
    }
    let mut y = s.to_vec();
    *y.last_mut().expect("checked") = out_f;
    Ok(y)
}

/// Forward of `linear` on plain tensors.
pub fn linear_forward(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    let (out_f, in_f) = (w.shape()[0], w.shape()[1]);
    let xs = x.shape();
    assert!(
        w.ndim() == 2 && xs.last() == Some(&in_f),
        "linear: input {xs:?} does not end in {in_f} (weight {:?})",
        w.shape()
    );
    let m = x.numel() / in_f;
    let mut shape = xs.to_vec();
    *shape.last_mut().unwrap() = out_f;
    let data = match b {
        None => matmul(x.data(), Trans::No, w.data(), Trans::Yes, m, in_f, out_f),
        Some(b) => {
            assert_eq!(
                b.shape(),
                &[out_f],
                "linear: bias shape vs weight {:?}",
                w.shape()
            );
            // Every row starts as the bias; the product is added to it.
            let mut y = par::repeated(b.data(), m);
            matmul_into(
                &mut y,
                x.data(),
                Trans::No,
                w.data(),
                Trans::Yes,
                m,
                in_f,
                out_f,
                true,
            );
            y
        }
    };
    Tensor::from_vec(shape, data)
}

struct LinearBack;

impl Backward for LinearBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let (x, w) = (inp[0], inp[1]);
        let (out_f, in_f) = (w.shape()[0], w.shape()[1]);
        let m = x.numel() / in_f;
        // Two threads: ∂x and ∂W side by side, one product on each, instead
        // of each product split over both (the same sums either way).
        let side_by_side = needs[0] && needs[1] && threads() == 2;
        let t = if side_by_side { 1 } else { threads() };
        let gx = || {
            let v = matmul_on(t, g.data(), Trans::No, w.data(), Trans::No, m, out_f, in_f);
            Tensor::from_vec(x.shape().to_vec(), v)
        };
        let gw = || {
            let v = matmul_on(t, g.data(), Trans::Yes, x.data(), Trans::No, out_f, m, in_f);
            Tensor::from_vec(w.shape().to_vec(), v)
        };
        let (gx, gw) = if side_by_side {
            let mut both = team::map(vec![0, 1], |_, i| if i == 0 { gx() } else { gw() });
            let gw = both.pop();
            (both.pop(), gw)
        } else {
            (needs[0].then(gx), needs[1].then(gw))
        };
        let mut res = vec![gx, gw];
        if inp.len() == 3 {
            // ∂b: the column sums of δ, each in row order.
            res.push(needs[2].then(|| Tensor::from_vec(vec![out_f], column_sums(g.data(), out_f))));
        }
        res
    }
}

impl Graph {
    /// `x · Wᵀ + b` (see the [module docs](self) for shapes).
    pub fn linear(&mut self, x: Var, w: Var, b: Option<Var>) -> Var {
        let bs = b.map(|b| self.shape(b));
        if let Err(e) = linear_shape(shape::sample(self.shape(x)), self.shape(w), bs) {
            let mut instead = self.shape(x).to_vec();
            if let (Some(l), Some(&o)) = (instead.last_mut(), self.shape(w).first()) {
                *l = o;
            }
            return self.bad_shapes(e, &instead);
        }
        let y = linear_forward(self.value(x), self.value(w), b.map(|b| self.value(b)));
        match b {
            Some(b) => self.push(Op::Linear, y, &[x, w, b], LinearBack),
            None => self.push(Op::Linear, y, &[x, w], LinearBack),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{check, pseudo_random};

    #[test]
    fn gradients_match_finite_differences() {
        let (x, w, b) = (
            pseudo_random(&[5, 7], 1),
            pseudo_random(&[3, 7], 2),
            pseudo_random(&[3], 3),
        );
        check("linear", &[x.clone(), w.clone(), b], |g, v| {
            g.linear(v[0], v[1], Some(v[2]))
        });
        check("linear no bias", &[x, w.clone()], |g, v| {
            g.linear(v[0], v[1], None)
        });
        check(
            "linear 3-d input",
            &[pseudo_random(&[2, 4, 7], 4), w],
            |g, v| g.linear(v[0], v[1], None),
        );
    }
}
