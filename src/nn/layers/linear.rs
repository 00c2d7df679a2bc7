//! `Linear` (`nn.Linear`): `y = x·Wᵀ + b` over the last axis.

use super::{visit_weight_bias, visit_weight_bias_mut};
use crate::nn::init::Init;
use crate::nn::module::{Module, Param, Pass, Visitor, VisitorMut};
use crate::nn::registry::{bias_size, tensor_sizes, Plan};
use crate::nn::spec::Item;
use crate::{Error, Result, Var};
use rand_chacha::ChaCha8Rng;

/// `y = x·Wᵀ + b` over the last axis (`nn.Linear`).
///
/// ```
/// use backprop::nn::{Linear, Module};
/// let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
/// let fc = Linear::new(784, 128).init(&mut rng);
/// assert_eq!(fc.weight.value().shape(), &[128, 784]);
/// assert_eq!(fc.output_shape(&[784]).unwrap(), vec![128]);
/// ```
#[derive(Clone, Debug)]
pub struct Linear {
    /// `[out_features, in_features]`, as PyTorch's `weight`.
    pub weight: Param,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Param>,
    in_features: usize,
    out_features: usize,
}

/// The options of a [`Linear`] before its weights are drawn.
#[derive(Clone, Copy, Debug)]
pub struct LinearConfig {
    in_features: usize,
    out_features: usize,
    bias: bool,
    weight_init: Init,
}

impl Linear {
    /// A layer from `in_features` to `out_features` (PyTorch's argument
    /// order), with a bias and PyTorch's initialization by default.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(in_features: usize, out_features: usize) -> LinearConfig {
        LinearConfig {
            in_features,
            out_features,
            bias: true,
            weight_init: Init::Default,
        }
    }
}

impl LinearConfig {
    /// With or without a bias (default: with).
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }

    /// How the weights are drawn (default: PyTorch's).
    pub fn weight_init(mut self, init: Init) -> Self {
        self.weight_init = init;
        self
    }

    /// Draw the weights (then the bias) from `rng`.
    pub fn init(self, rng: &mut ChaCha8Rng) -> Linear {
        let (i, o) = (self.in_features, self.out_features);
        let weight = Param::new(self.weight_init.weight(&[o, i], i, o, rng));
        let bias = self
            .bias
            .then(|| Param::new(self.weight_init.bias(&[o], i, rng)));
        Linear {
            weight,
            bias,
            in_features: i,
            out_features: o,
        }
    }
}

impl Module for Linear {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let w = p.param(&self.weight);
        let b = self.bias.as_ref().map(|b| p.param(b));
        let y = p.linear(x, w, b);
        p.layer_output(self, y);
        y
    }

    fn visit<'m>(&'m self, v: &mut Visitor<'_, 'm>) {
        visit_weight_bias(v, &self.weight, &self.bias);
    }

    fn visit_mut(&mut self, v: &mut VisitorMut<'_>) {
        visit_weight_bias_mut(v, &mut self.weight, &mut self.bias);
    }

    fn spec(&self) -> Option<String> {
        let bias = if self.bias.is_some() {
            ""
        } else {
            ",bias=false"
        };
        Some(format!(
            "linear({},{}{bias})",
            self.in_features, self.out_features
        ))
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let w = [self.out_features, self.in_features];
        crate::ops::linear::linear_shape(s, &w, None).map_err(Error::Spec)
    }

    fn input_shape_hint(&self) -> Option<Vec<usize>> {
        Some(vec![self.in_features])
    }
}

/// `linear(in_features,out_features,bias=true)` (`dense`).
pub(crate) fn plan_linear(item: &Item, init: Init) -> Result<Plan> {
    item.expect_args(2, &["bias"], "linear(in_features,out_features)")?;
    let i = item.usize_arg(0, "in_features", "in_features")?;
    let o = item.usize_arg(1, "out_features", "out_features")?;
    let bias = super::has_bias(item);
    let n = tensor_sizes(item, &[("weight", &[o, i])])? + bias_size(item, bias, o)?;
    Ok(Plan::new(n, move |rng| {
        Box::new(Linear::new(i, o).bias(bias).weight_init(init).init(rng))
    }))
}
