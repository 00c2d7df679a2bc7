//! Elementwise functions and activations, each with its derivative beside it.
//!
//! | op | f(x) | f'(x), as computed |
//! | --- | --- | --- |
//! | exp | eˣ | y |
//! | log | ln x | 1/x |
//! | sigmoid | 1/(1+e⁻ˣ) | y(1−y) |
//! | tanh | tanh x | 1−y² |
//! | relu | x if x > 0 else 0 | 1 if x > 0 else 0 (relu'(0) = 0, as PyTorch) |
//! | leaky_relu(s) | x if x > 0 else s·x | 1 if x > 0 else s (so s at 0, as PyTorch) |
//! | elu(α) | x if x > 0 else α(eˣ−1) | 1 if x > 0 else α·eˣ |
//! | gelu | x·Φ(x) = x(1 + erf(x/√2))/2 | Φ(x) + x·φ(x) |
//! | gelu_tanh | x(1 + tanh u)/2, u = √(2/π)(x + 0.044715x³) | (1 + tanh u)/2 + x(1 − tanh² u)u′/2 |
//! | silu | x·σ(x) | σ(x)(1 + x(1 − σ(x))) |
//! | sqrt | √x | 1/(2y) |
//! | abs | \|x\| | sign x (0 at 0, as PyTorch) |
//! | pow(p) | xᵖ | p·xᵖ⁻¹ (0 for p = 0) |
//! | clamp(lo, hi) | min(max(x, lo), hi) | 1 if lo ≤ x ≤ hi else 0 (the bounds pass it, as PyTorch) |
//!
//! (Φ, φ: the standard normal's distribution and density; `gelu` is
//! `nn.GELU()`, `gelu_tanh` `nn.GELU(approximate='tanh')`, `silu` `nn.SiLU()`.)
//!
//! Written as `max(x, 0)` the ReLU derivative at 0 would depend on how the
//! max breaks ties; the explicit `x > 0` pins PyTorch's convention.

use crate::autograd::{Backward, Op};
use crate::cpu::par;
use crate::cpu::tanh::{gelu_f32, gelu_grad_f32, gelu_grad_into, gelu_into};
use crate::{Graph, Tensor, Var};

/// An elementwise function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// eˣ.
    Exp,
    /// ln x.
    Log,
    /// 1/(1+e⁻ˣ).
    Sigmoid,
    /// tanh x.
    Tanh,
    /// x if x > 0 else 0.
    Relu,
    /// Negative slope (PyTorch's default 0.01).
    LeakyRelu(f32),
    /// α (PyTorch's default 1.0).
    Elu(f32),
    /// x·Φ(x), with the exact erf (`nn.GELU()`).
    Gelu,
    /// GELU's tanh approximation (`nn.GELU(approximate='tanh')`).
    GeluTanh,
    /// x·σ(x) (`nn.SiLU()`, swish).
    Silu,
    /// √x.
    Sqrt,
    /// |x|.
    Abs,
    /// xᵖ for a constant p.
    Pow(f32),
    /// x limited to [lo, hi].
    Clamp(f32, f32),
}

/// √(2/π), of GELU's tanh form.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

impl Unary {
    /// The op on the tape.
    pub fn op(self) -> Op {
        match self {
            Unary::Exp => Op::Exp,
            Unary::Log => Op::Log,
            Unary::Sigmoid => Op::Sigmoid,
            Unary::Tanh => Op::Tanh,
            Unary::Relu => Op::Relu,
            Unary::LeakyRelu(_) => Op::LeakyRelu,
            Unary::Elu(_) => Op::Elu,
            Unary::Gelu | Unary::GeluTanh => Op::Gelu,
            Unary::Silu => Op::Silu,
            Unary::Sqrt => Op::Sqrt,
            Unary::Abs => Op::Abs,
            Unary::Pow(_) => Op::Pow,
            Unary::Clamp(..) => Op::Clamp,
        }
    }

    /// The op's name on the tape.
    pub fn name(self) -> &'static str {
        self.op().name()
    }

    /// f(x).
    #[inline(always)]
    pub fn f(self, x: f32) -> f32 {
        match self {
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Sigmoid => sigmoid(x),
            // Not the RNN's `tensor::tanh::tanh_f32` (faster, differs by ≤ 2 ulp): see there.
            Unary::Tanh => x.tanh(),
            Unary::Relu => {
                if x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            Unary::LeakyRelu(s) => {
                if x > 0.0 {
                    x
                } else {
                    s * x
                }
            }
            Unary::Elu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x.exp_m1()
                }
            }
            Unary::Gelu => gelu_f32(x), // x(1 + erf(x/√2))/2
            Unary::GeluTanh => {
                let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
                0.5 * x * (1.0 + u.tanh())
            }
            Unary::Silu => x * sigmoid(x),
            Unary::Sqrt => x.sqrt(),
            Unary::Abs => x.abs(),
            Unary::Pow(p) => x.powf(p),
            Unary::Clamp(lo, hi) => {
                if x < lo {
                    lo
                } else if x > hi {
                    hi
                } else {
                    x
                }
            }
        }
    }

    /// f'(x), given x and y = f(x).
    #[inline(always)]
    pub fn df(self, x: f32, y: f32) -> f32 {
        match self {
            Unary::Exp => y,
            Unary::Log => 1.0 / x,
            Unary::Sigmoid => y * (1.0 - y),
            Unary::Tanh => 1.0 - y * y,
            Unary::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Unary::LeakyRelu(s) => {
                if x > 0.0 {
                    1.0
                } else {
                    s
                }
            }
            Unary::Elu(a) => {
                if x > 0.0 {
                    1.0
                } else {
                    a * x.exp()
                }
            }
            Unary::Gelu => gelu_grad_f32(x), // Φ(x) + x·φ(x)
            Unary::GeluTanh => {
                let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
                let t = u.tanh();
                let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
            }
            Unary::Silu => {
                let s = sigmoid(x);
                s * (1.0 + x * (1.0 - s))
            }
            Unary::Sqrt => 0.5 / y,
            Unary::Abs => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            Unary::Pow(p) => {
                if p == 0.0 {
                    0.0
                } else {
                    p * x.powf(p - 1.0)
                }
            }
            Unary::Clamp(lo, hi) => {
                if x >= lo && x <= hi {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// The logistic function, without overflow for large |x|.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

// The two passes below spell out every variant so that, inside each
// closure, the variant is a constant: the per-element `match` of
// [`Unary::f`] / [`Unary::df`] then folds away and each loop is compiled and
// vectorized for one function. A captured `Unary` value is matched on every
// element instead (a jump table per value: measured, most of the time of an
// activation pass).

/// `f(x)` for every value, into a new buffer (threads for large ones).
fn forward_pass(u: Unary, x: &[f32]) -> Vec<f32> {
    use Unary::*;
    match u {
        Exp => par::map(x, |v| Exp.f(v)),
        Log => par::map(x, |v| Log.f(v)),
        Sigmoid => par::map(x, |v| Sigmoid.f(v)),
        Tanh => par::map(x, |v| Tanh.f(v)),
        Relu => par::map(x, |v| Relu.f(v)),
        LeakyRelu(s) => par::map(x, move |v| LeakyRelu(s).f(v)),
        Elu(a) => par::map(x, move |v| Elu(a).f(v)),
        // the same formula as Gelu.f, its loop compiled for wide vectors
        Gelu => par::fill(x.len(), |s, out| gelu_into(&x[s..s + out.len()], out)),
        GeluTanh => par::map(x, |v| GeluTanh.f(v)),
        Silu => par::map(x, |v| Silu.f(v)),
        Sqrt => par::map(x, |v| Sqrt.f(v)),
        Abs => par::map(x, |v| Abs.f(v)),
        Pow(p) => par::map(x, move |v| Pow(p).f(v)),
        Clamp(lo, hi) => par::map(x, move |v| Clamp(lo, hi).f(v)),
    }
}

/// `g · f'(x)` for every value, given `y = f(x)`.
fn backward_pass(u: Unary, g: &[f32], x: &[f32], y: &[f32]) -> Vec<f32> {
    use Unary::*;
    match u {
        Exp => par::map3(g, x, y, |g, x, y| g * Exp.df(x, y)),
        Log => par::map3(g, x, y, |g, x, y| g * Log.df(x, y)),
        Sigmoid => par::map3(g, x, y, |g, x, y| g * Sigmoid.df(x, y)),
        Tanh => par::map3(g, x, y, |g, x, y| g * Tanh.df(x, y)),
        Relu => par::map3(g, x, y, |g, x, y| g * Relu.df(x, y)),
        LeakyRelu(s) => par::map3(g, x, y, move |g, x, y| g * LeakyRelu(s).df(x, y)),
        Elu(a) => par::map3(g, x, y, move |g, x, y| g * Elu(a).df(x, y)),
        Gelu => par::fill(x.len(), |s, out| {
            let r = s..s + out.len();
            gelu_grad_into(&g[r.clone()], &x[r], out)
        }),
        GeluTanh => par::map3(g, x, y, |g, x, y| g * GeluTanh.df(x, y)),
        Silu => par::map3(g, x, y, |g, x, y| g * Silu.df(x, y)),
        Sqrt => par::map3(g, x, y, |g, x, y| g * Sqrt.df(x, y)),
        Abs => par::map3(g, x, y, |g, x, y| g * Abs.df(x, y)),
        Pow(p) => par::map3(g, x, y, move |g, x, y| g * Pow(p).df(x, y)),
        Clamp(lo, hi) => par::map3(g, x, y, move |g, x, y| g * Clamp(lo, hi).df(x, y)),
    }
}

struct UnaryBack(Unary);

impl Backward for UnaryBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let gx = backward_pass(self.0, g.data(), inp[0].data(), out.data());
        vec![Some(Tensor::from_vec(g.shape().to_vec(), gx))]
    }
}

impl Graph {
    /// Apply an elementwise function.
    pub fn unary(&mut self, f: Unary, x: Var) -> Var {
        let xv = self.value(x);
        let y = forward_pass(f, xv.data());
        let y = Tensor::from_vec(xv.shape().to_vec(), y);
        self.push(f.op(), y, &[x], UnaryBack(f))
    }
    /// GELU, x·Φ(x) (`F.gelu`).
    pub fn gelu(&mut self, x: Var) -> Var {
        self.unary(Unary::Gelu, x)
    }
    /// GELU's tanh approximation (`F.gelu(approximate='tanh')`).
    pub fn gelu_tanh(&mut self, x: Var) -> Var {
        self.unary(Unary::GeluTanh, x)
    }
    /// SiLU (swish), x·σ(x) (`F.silu`).
    pub fn silu(&mut self, x: Var) -> Var {
        self.unary(Unary::Silu, x)
    }
    /// Elementwise √x (`torch.sqrt`).
    pub fn sqrt(&mut self, x: Var) -> Var {
        self.unary(Unary::Sqrt, x)
    }
    /// Elementwise |x| (`torch.abs`).
    pub fn abs(&mut self, x: Var) -> Var {
        self.unary(Unary::Abs, x)
    }
    /// Elementwise xᵖ for a constant `p` (`torch.pow(x, p)`).
    pub fn pow(&mut self, x: Var, p: f32) -> Var {
        self.unary(Unary::Pow(p), x)
    }
    /// Elementwise `x` limited to `[lo, hi]` (`torch.clamp`).
    pub fn clamp(&mut self, x: Var, lo: f32, hi: f32) -> Var {
        self.unary(Unary::Clamp(lo, hi), x)
    }
    /// Elementwise eˣ.
    pub fn exp(&mut self, x: Var) -> Var {
        self.unary(Unary::Exp, x)
    }
    /// Elementwise natural logarithm.
    pub fn log(&mut self, x: Var) -> Var {
        self.unary(Unary::Log, x)
    }
    /// Elementwise logistic sigmoid 1/(1+e⁻ˣ).
    pub fn sigmoid(&mut self, x: Var) -> Var {
        self.unary(Unary::Sigmoid, x)
    }
    /// Elementwise hyperbolic tangent.
    pub fn tanh(&mut self, x: Var) -> Var {
        self.unary(Unary::Tanh, x)
    }
    /// Elementwise ReLU, `x` if `x > 0` else 0 (derivative 0 at 0, as PyTorch).
    pub fn relu(&mut self, x: Var) -> Var {
        self.unary(Unary::Relu, x)
    }
    /// Elementwise leaky ReLU: `x` if `x > 0` else `slope·x`.
    pub fn leaky_relu(&mut self, x: Var, slope: f32) -> Var {
        self.unary(Unary::LeakyRelu(slope), x)
    }
    /// Elementwise ELU: `x` if `x > 0` else `alpha·(eˣ − 1)`.
    pub fn elu(&mut self, x: Var, alpha: f32) -> Var {
        self.unary(Unary::Elu(alpha), x)
    }
}

#[cfg(test)]
mod tests {
    use super::Unary;
    use crate::ops::gradcheck::{check, pseudo_random};
    use crate::{Graph, Tensor};

    #[test]
    fn gradients_match_finite_differences() {
        // Scaled away from the kinks at 0 (finite differences straddling a kink are meaningless).
        let x = pseudo_random(&[4, 5], 1).map(|v| if v.abs() < 0.05 { v + 0.1 } else { v } * 3.0);
        for f in [
            Unary::Exp,
            Unary::Sigmoid,
            Unary::Tanh,
            Unary::Relu,
            Unary::LeakyRelu(0.01),
            Unary::LeakyRelu(0.2),
            Unary::Elu(1.0),
            Unary::Elu(0.5),
            Unary::Gelu,
            Unary::GeluTanh,
            Unary::Silu,
            Unary::Abs,
            Unary::Pow(3.0),
            Unary::Pow(2.0),
            Unary::Clamp(-0.7, 0.9),
        ] {
            check(f.name(), std::slice::from_ref(&x), |g, v| g.unary(f, v[0]));
        }
        let positive = x.map(|v| v.abs() + 0.5);
        check("log", std::slice::from_ref(&positive), |g, v| g.log(v[0]));
        check("sqrt", std::slice::from_ref(&positive), |g, v| g.sqrt(v[0]));
        check("pow(-1.5)", &[positive], |g, v| g.pow(v[0], -1.5));
    }

    #[test]
    fn derivatives_at_zero_follow_pytorch() {
        let mut g = Graph::new();
        let x = g.param(Tensor::from_vec(vec![3], vec![0.0, 0.0, 0.0]));
        let a = g.relu(x);
        let b = g.leaky_relu(x, 0.01);
        let c = g.elu(x, 1.0);
        let s = g.add(a, b);
        let s = g.add(s, c);
        let l = g.sum(s);
        // relu'(0) = 0, leaky'(0) = slope, elu'(0) = α·e⁰ = 1.
        let grads = g.backward(l);
        for &v in grads.get(x).unwrap().data() {
            assert!((v - 1.01).abs() < 1e-6, "{v}");
        }
    }

    #[test]
    fn abs_and_clamp_at_their_kinks_follow_pytorch() {
        let mut g = Graph::new();
        let x = g.param(Tensor::from_vec(vec![4], vec![0.0, -1.0, 1.0, 2.0]));
        let a = g.abs(x);
        let c = g.clamp(x, -1.0, 1.0);
        let (la, lc) = (g.sum(a), g.sum(c));
        // abs'(0) = 0; clamp passes the gradient at its bounds, not beyond
        assert_eq!(
            g.backward(la).get(x).unwrap().data(),
            &[0.0, -1.0, 1.0, 1.0]
        );
        assert_eq!(g.backward(lc).get(x).unwrap().data(), &[1.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn sigmoid_is_finite_for_large_inputs() {
        assert_eq!(super::sigmoid(-200.0), 0.0);
        assert_eq!(super::sigmoid(200.0), 1.0);
        assert!(super::sigmoid(-88.0) > 0.0);
    }
}
