//! Activations: `Activation` (ReLU, sigmoid, tanh, leaky ReLU, ELU, softmax, log-softmax) and `PRelu` (`nn.PReLU`).

use super::{fmt_shape, spec_err};
use crate::nn::init::Init;
use crate::nn::module::{Module, OutputKind, Param, Pass, Visitor, VisitorMut};
use crate::nn::registry::{tensor_sizes, Plan};
use crate::nn::spec::Item;
use crate::ops::unary::Unary;
use crate::{Error, Result, Tensor, Var};

/// What an [`Activation`] computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActivationKind {
    /// An elementwise function (relu, sigmoid, tanh, leaky_relu, elu).
    Elementwise(Unary),
    /// Softmax over axis 1 of `[N, C]`.
    Softmax,
    /// Log-softmax over axis 1 of `[N, C]`.
    LogSoftmax,
}

/// An activation without parameters (`nn.ReLU`, `nn.Sigmoid`, `nn.Tanh`,
/// `nn.LeakyReLU`, `nn.ELU`, `nn.Softmax(dim=1)`, `nn.LogSoftmax(dim=1)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Activation {
    kind: ActivationKind,
}

impl Activation {
    /// `x` if `x > 0`, else 0 (`nn.ReLU`).
    pub fn relu() -> Self {
        Activation::elementwise(Unary::Relu)
    }
    /// `1/(1+e⁻ˣ)` (`nn.Sigmoid`).
    pub fn sigmoid() -> Self {
        Activation::elementwise(Unary::Sigmoid)
    }
    /// `tanh x` (`nn.Tanh`).
    pub fn tanh() -> Self {
        Activation::elementwise(Unary::Tanh)
    }
    /// `x` if `x > 0`, else `negative_slope·x` (PyTorch's default slope: 0.01).
    pub fn leaky_relu(negative_slope: f32) -> Self {
        Activation::elementwise(Unary::LeakyRelu(negative_slope))
    }
    /// `x` if `x > 0`, else `α(eˣ − 1)` (PyTorch's default α: 1).
    pub fn elu(alpha: f32) -> Self {
        Activation::elementwise(Unary::Elu(alpha))
    }
    /// `x·Φ(x)`, with the exact erf (`nn.GELU()`).
    pub fn gelu() -> Self {
        Activation::elementwise(Unary::Gelu)
    }
    /// GELU's tanh approximation (`nn.GELU(approximate='tanh')`).
    pub fn gelu_tanh() -> Self {
        Activation::elementwise(Unary::GeluTanh)
    }
    /// `x·σ(x)` (`nn.SiLU()`).
    pub fn silu() -> Self {
        Activation::elementwise(Unary::Silu)
    }
    /// Softmax over axis 1 of `[N, C]` (`nn.Softmax(dim=1)`).
    pub fn softmax() -> Self {
        Activation {
            kind: ActivationKind::Softmax,
        }
    }
    /// Log-softmax over axis 1 of `[N, C]` (`nn.LogSoftmax(dim=1)`).
    pub fn log_softmax() -> Self {
        Activation {
            kind: ActivationKind::LogSoftmax,
        }
    }
    /// Any elementwise function of [`Unary`].
    pub fn elementwise(f: Unary) -> Self {
        Activation {
            kind: ActivationKind::Elementwise(f),
        }
    }
    /// What this activation computes.
    pub fn kind(&self) -> ActivationKind {
        self.kind
    }
}

impl Module for Activation {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let y = match self.kind {
            ActivationKind::Elementwise(f) => p.unary(f, x),
            ActivationKind::Softmax => p.softmax(x),
            ActivationKind::LogSoftmax => p.log_softmax(x),
        };
        p.layer_output(self, y);
        y
    }

    fn spec(&self) -> Option<String> {
        Some(match self.kind {
            ActivationKind::Elementwise(Unary::LeakyRelu(s)) if s != 0.01 => {
                format!("leaky_relu({s})")
            }
            ActivationKind::Elementwise(Unary::Elu(a)) if a != 1.0 => format!("elu({a})"),
            ActivationKind::Elementwise(Unary::GeluTanh) => "gelu_tanh".into(),
            ActivationKind::Elementwise(f) => f.name().into(),
            ActivationKind::Softmax => "softmax".into(),
            ActivationKind::LogSoftmax => "log_softmax".into(),
        })
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        if matches!(
            self.kind,
            ActivationKind::Softmax | ActivationKind::LogSoftmax
        ) && s.len() != 1
        {
            return Err(spec_err(format!(
                "expects input [N, C], got {}",
                fmt_shape(s)
            )));
        }
        Ok(s.to_vec())
    }

    fn output_kind(&self) -> OutputKind {
        match self.kind {
            ActivationKind::Softmax | ActivationKind::Elementwise(Unary::Sigmoid) => {
                OutputKind::Probabilities
            }
            ActivationKind::LogSoftmax => OutputKind::LogProbabilities,
            _ => OutputKind::Logits,
        }
    }
}

/// ReLU with a learned negative slope (`nn.PReLU`): one slope, or one per
/// channel of axis 1; PyTorch's initial slope 0.25.
#[derive(Clone, Debug)]
pub struct PRelu {
    /// The negative slopes, `[num_parameters]` (PyTorch's `weight`).
    pub weight: Param,
}

impl PRelu {
    /// `num_parameters` slopes (1, or the number of channels), each 0.25.
    pub fn new(num_parameters: usize) -> PRelu {
        PRelu::with_init(num_parameters, 0.25)
    }

    /// `num_parameters` slopes, each starting at `init`.
    pub fn with_init(num_parameters: usize, init: f32) -> PRelu {
        PRelu {
            weight: Param::new(Tensor::full(&[num_parameters], init)),
        }
    }
}

impl Module for PRelu {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let a = p.param(&self.weight);
        let y = p.prelu(x, a);
        p.layer_output(self, y);
        y
    }

    fn visit<'m>(&'m self, v: &mut Visitor<'_, 'm>) {
        v.param("weight", &self.weight);
    }

    fn visit_mut(&mut self, v: &mut VisitorMut<'_>) {
        v.param("weight", &mut self.weight);
    }

    fn spec(&self) -> Option<String> {
        Some(match self.weight.value().numel() {
            1 => "prelu".into(),
            n => format!("prelu({n})"),
        })
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let mut x = vec![1];
        x.extend_from_slice(s);
        let a = [self.weight.value().numel()];
        crate::ops::prelu::prelu_shape(&x, &a)
            .map(|_| s.to_vec())
            .map_err(Error::Spec)
    }
}

/// `leaky_relu(negative_slope=0.01)`.
pub(crate) fn plan_leaky_relu(item: &Item, _init: Init) -> Result<Plan> {
    item.expect_args(
        1,
        &["negative_slope", "slope"],
        "leaky_relu or leaky_relu(0.01)",
    )?;
    let s = item
        .f32_arg(0, "negative_slope")
        .or(item.keyword("slope"))
        .unwrap_or(0.01);
    Ok(Plan::ready(Activation::leaky_relu(s)))
}

/// `elu(alpha=1.0)`.
pub(crate) fn plan_elu(item: &Item, _init: Init) -> Result<Plan> {
    item.expect_args(1, &["alpha"], "elu or elu(1.0)")?;
    Ok(Plan::ready(Activation::elu(
        item.f32_arg(0, "alpha").unwrap_or(1.0),
    )))
}

/// `prelu(num_parameters=1,init=0.25)`.
pub(crate) fn plan_prelu(item: &Item, _init: Init) -> Result<Plan> {
    item.expect_args(
        2,
        &["num_parameters", "init"],
        "prelu or prelu(num_parameters, init)",
    )?;
    let n = if item.args.is_empty() && !item.kwargs.iter().any(|(k, _)| k == "num_parameters") {
        1
    } else {
        item.usize_arg(0, "num_parameters", "num_parameters")?
    };
    let a = item.f32_arg(1, "init").unwrap_or(0.25);
    let size = tensor_sizes(item, &[("weight", &[n])])?;
    Ok(Plan::new(size, move |_| Box::new(PRelu::with_init(n, a))))
}

/// `softmax` (over the last axis).
pub(crate) fn plan_softmax(item: &Item, _init: Init) -> Result<Plan> {
    item.expect_args(1, &["dim"], "softmax")?;
    Ok(Plan::ready(Activation::softmax()))
}

/// `log_softmax` (over the last axis).
pub(crate) fn plan_log_softmax(item: &Item, _init: Init) -> Result<Plan> {
    item.expect_args(1, &["dim"], "log_softmax")?;
    Ok(Plan::ready(Activation::log_softmax()))
}
