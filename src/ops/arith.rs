//! Elementwise `add`, `sub`, `mul`, `div`, `maximum`, `minimum` with NumPy
//! broadcasting.
//!
//! Backward: the local derivatives are 1, −1, the other operand, (1/b,
//! −a/b²), and for maximum/minimum 1 to the chosen operand (½ to each on a
//! tie, as PyTorch); each input's gradient is then summed over the axes
//! along which that input was broadcast ([`reduce_to`]).

use super::broadcast::{broadcast_shape, for_each, reduce_to};
use crate::autograd::{Backward, Op};
use crate::cpu::par;
use crate::{Graph, Tensor, Var};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

impl Kind {
    fn op(self) -> Op {
        match self {
            Kind::Add => Op::Add,
            Kind::Sub => Op::Sub,
            Kind::Mul => Op::Mul,
            Kind::Div => Op::Div,
            Kind::Max => Op::Maximum,
            Kind::Min => Op::Minimum,
        }
    }

    fn name(self) -> &'static str {
        self.op().name()
    }
}

fn forward(kind: Kind, a: &Tensor, b: &Tensor) -> Tensor {
    let shape = broadcast_shape(a.shape(), b.shape()).unwrap_or_else(|| {
        panic!(
            "{}: shapes {:?} and {:?} do not broadcast",
            kind.name(),
            a.shape(),
            b.shape()
        )
    });
    let (ad, bd) = (a.data(), b.data());
    if a.shape() == b.shape() {
        let v = par::fill(ad.len(), |s, out| {
            for ((o, &x), &y) in out.iter_mut().zip(&ad[s..]).zip(&bd[s..]) {
                o.write(apply(kind, x, y));
            }
        });
        return Tensor::from_vec(shape, v);
    }
    if a.shape() == shape.as_slice() && shape.ends_with(b.shape()) && !bd.is_empty() {
        // b repeated along a's leading axes (a position table added to a batch)
        let n = bd.len();
        let v = par::fill(ad.len(), |s, out| {
            for (i, (o, &x)) in out.iter_mut().zip(&ad[s..]).enumerate() {
                o.write(apply(kind, x, bd[(s + i) % n]));
            }
        });
        return Tensor::from_vec(shape, v);
    }
    let mut out = Tensor::zeros(&shape);
    let od = out.data_mut();
    for_each(&shape, a.shape(), b.shape(), |o, i, j| {
        od[o] = apply(kind, ad[i], bd[j])
    });
    out
}

/// The local gradients of same-shape operands, `(∂a, ∂b)` as asked.
fn same_shape_back(
    kind: Kind,
    g: &Tensor,
    a: &Tensor,
    b: &Tensor,
    needs: &[bool],
) -> Vec<Option<Tensor>> {
    let (ad, bd, gd) = (a.data(), b.data(), g.data());
    let each = |f: &(dyn Fn(f32, f32, f32) -> f32 + Sync)| {
        Tensor::from_vec(g.shape().to_vec(), par::map3(gd, ad, bd, f))
    };
    let (ga, gb) = match kind {
        Kind::Add => (needs[0].then(|| g.clone()), needs[1].then(|| g.clone())),
        Kind::Sub => (needs[0].then(|| g.clone()), needs[1].then(|| g.map(|v| -v))),
        Kind::Mul => (
            needs[0].then(|| each(&|g, _, y| g * y)),
            needs[1].then(|| each(&|g, x, _| g * x)),
        ),
        Kind::Div => (
            needs[0].then(|| each(&|g, _, y| g / y)),
            needs[1].then(|| each(&|g, x, y| -g * x / (y * y))),
        ),
        Kind::Max | Kind::Min => (
            needs[0].then(|| each(&|g, x, y| pick(kind, g, x, y).0)),
            needs[1].then(|| each(&|g, x, y| pick(kind, g, x, y).1)),
        ),
    };
    vec![ga, gb]
}

#[inline(always)]
fn apply(kind: Kind, x: f32, y: f32) -> f32 {
    match kind {
        Kind::Add => x + y,
        Kind::Sub => x - y,
        Kind::Mul => x * y,
        Kind::Div => x / y,
        Kind::Max if x.is_nan() || y.is_nan() => f32::NAN,
        Kind::Min if x.is_nan() || y.is_nan() => f32::NAN,
        Kind::Max => {
            if x >= y {
                x
            } else {
                y
            }
        }
        Kind::Min => {
            if x <= y {
                x
            } else {
                y
            }
        }
    }
}

/// The local derivatives of `max(x, y)` / `min(x, y)`: the gradient goes to
/// the chosen operand, half to each on a tie (PyTorch's `maximum`/`minimum`).
#[inline(always)]
fn pick(kind: Kind, g: f32, x: f32, y: f32) -> (f32, f32) {
    let first = match kind {
        Kind::Max => x > y,
        _ => x < y,
    };
    if x == y {
        (g / 2.0, g / 2.0)
    } else if first {
        (g, 0.0)
    } else {
        (0.0, g)
    }
}

struct ArithBack(Kind);

impl Backward for ArithBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let (a, b) = (inp[0], inp[1]);
        if a.shape() == b.shape() {
            return same_shape_back(self.0, g, a, b, needs);
        }
        let shape = g.shape();
        let (ad, bd, gd) = (a.data(), b.data(), g.data());
        // Full-size local gradients, then summed down to each input's shape.
        let mut ga = needs[0].then(|| Tensor::zeros(shape));
        let mut gb = needs[1].then(|| Tensor::zeros(shape));
        {
            let mut da = ga.as_mut().map(|t| t.data_mut());
            let mut db = gb.as_mut().map(|t| t.data_mut());
            for_each(shape, a.shape(), b.shape(), |o, i, j| {
                let (x, y, g) = (ad[i], bd[j], gd[o]);
                let (lx, ly) = match self.0 {
                    Kind::Add => (g, g),
                    Kind::Sub => (g, -g),
                    Kind::Mul => (g * y, g * x),
                    Kind::Div => (g / y, -g * x / (y * y)),
                    Kind::Max | Kind::Min => pick(self.0, g, x, y),
                };
                if let Some(d) = da.as_deref_mut() {
                    d[o] = lx;
                }
                if let Some(d) = db.as_deref_mut() {
                    d[o] = ly;
                }
            });
        }
        vec![
            ga.map(|t| unbroadcast(t, a.shape())),
            gb.map(|t| unbroadcast(t, b.shape())),
        ]
    }
}

/// `g` summed down to `shape`; moved, not copied, when nothing was broadcast.
fn unbroadcast(g: Tensor, shape: &[usize]) -> Tensor {
    if g.shape() == shape {
        g
    } else {
        reduce_to(&g, shape)
    }
}

impl Graph {
    fn arith(&mut self, kind: Kind, a: Var, b: Var) -> Var {
        let (sa, sb) = (self.shape(a), self.shape(b));
        if broadcast_shape(sa, sb).is_none() {
            let msg = format!("{}: shapes {sa:?} and {sb:?} do not broadcast", kind.name());
            let instead = sa.to_vec();
            return self.bad_shapes(msg, &instead);
        }
        let v = forward(kind, self.value(a), self.value(b));
        self.push(kind.op(), v, &[a, b], ArithBack(kind))
    }

    /// `a + b`, broadcasting.
    pub fn add(&mut self, a: Var, b: Var) -> Var {
        self.arith(Kind::Add, a, b)
    }

    /// The larger of `a` and `b`, elementwise, broadcasting (`torch.maximum`:
    /// NaN if either is; on a tie each gets half the gradient).
    pub fn maximum(&mut self, a: Var, b: Var) -> Var {
        self.arith(Kind::Max, a, b)
    }

    /// The smaller of `a` and `b`, elementwise, broadcasting (`torch.minimum`).
    pub fn minimum(&mut self, a: Var, b: Var) -> Var {
        self.arith(Kind::Min, a, b)
    }

    /// `a − b`, broadcasting.
    pub fn sub(&mut self, a: Var, b: Var) -> Var {
        self.arith(Kind::Sub, a, b)
    }

    /// `a ⊙ b` (elementwise), broadcasting.
    pub fn mul(&mut self, a: Var, b: Var) -> Var {
        self.arith(Kind::Mul, a, b)
    }

    /// `a / b` (elementwise), broadcasting.
    pub fn div(&mut self, a: Var, b: Var) -> Var {
        self.arith(Kind::Div, a, b)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::check;
    use crate::Tensor;

    #[test]
    fn gradients_match_finite_differences_with_broadcasting() {
        for (sa, sb) in [
            (vec![3, 4], vec![3, 4]),
            (vec![3, 4], vec![4]),
            (vec![2, 3, 4], vec![3, 1]),
            (vec![4, 1], vec![1, 5]),
            (vec![], vec![2, 2]),
        ] {
            let a = Tensor::from_vec(
                sa.clone(),
                (0..sa.iter().product())
                    .map(|i| (i as f32 * 0.37).sin())
                    .collect(),
            );
            let b = Tensor::from_vec(
                sb.clone(),
                (0..sb.iter().product())
                    .map(|i| 0.5 + (i as f32 * 0.71).cos().abs())
                    .collect(),
            );
            check("add", &[a.clone(), b.clone()], |g, v| g.add(v[0], v[1]));
            check("sub", &[a.clone(), b.clone()], |g, v| g.sub(v[0], v[1]));
            check("mul", &[a.clone(), b.clone()], |g, v| g.mul(v[0], v[1]));
            check("div", &[a.clone(), b.clone()], |g, v| g.div(v[0], v[1]));
            check("maximum", &[a.clone(), b.clone()], |g, v| {
                g.maximum(v[0], v[1])
            });
            check("minimum", &[a.clone(), b.clone()], |g, v| {
                g.minimum(v[0], v[1])
            });
        }
    }

    #[test]
    fn maximum_splits_a_tie_and_keeps_nan() {
        let mut g = crate::Graph::new();
        let a = g.param(Tensor::from_vec(vec![3], vec![1.0, 2.0, f32::NAN]));
        let b = g.param(Tensor::from_vec(vec![3], vec![1.0, 3.0, 0.0]));
        let m = g.maximum(a, b);
        assert_eq!(g.value(m).data()[..2], [1.0, 3.0]);
        assert!(g.value(m).data()[2].is_nan());
        let n = g.narrow(m, 0, 0, 2);
        let l = g.sum(n);
        let grads = g.backward(l);
        assert_eq!(grads.get(a).unwrap().data()[..2], [0.5, 0.0]);
        assert_eq!(grads.get(b).unwrap().data()[..2], [0.5, 1.0]);
    }

    #[test]
    fn a_value_used_twice_sums_both_contributions() {
        let x = Tensor::from_vec(vec![3], vec![0.5, -1.0, 2.0]);
        check("x*x", std::slice::from_ref(&x), |g, v| g.mul(v[0], v[0]));
        check("x/x+x", &[x], |g, v| {
            let d = g.div(v[0], v[0]);
            g.add(d, v[0])
        });
    }
}
