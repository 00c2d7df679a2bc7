//! `Rnn` (`nn.RNN`, tanh, one layer, `batch_first`): the last hidden state.

use crate::nn::init::{self, Init};
use crate::nn::module::{Module, Param, Pass, Visitor, VisitorMut};
use crate::nn::registry::{bias_size, tensor_sizes, Plan};
use crate::nn::spec::Item;
use crate::{Error, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

/// An Elman RNN with tanh over a sequence (`nn.RNN(batch_first=True)`, one
/// layer), returning the last hidden state: `h_t = tanh(x_t·W_ihᵀ + b_ih +
/// h_{t−1}·W_hhᵀ + b_hh)`, `h_0 = 0`.
#[derive(Clone, Debug)]
pub struct Rnn {
    /// Input-to-hidden weight W_ih, `[hidden_size, input_size]` (PyTorch's `weight_ih_l0`).
    pub weight_ih_l0: Param,
    /// Hidden-to-hidden weight W_hh, `[hidden_size, hidden_size]` (PyTorch's `weight_hh_l0`).
    pub weight_hh_l0: Param,
    /// Input-to-hidden bias b_ih, `[hidden_size]`, if the layer has biases.
    pub bias_ih_l0: Option<Param>,
    /// Hidden-to-hidden bias b_hh, `[hidden_size]`, if the layer has biases.
    pub bias_hh_l0: Option<Param>,
    input_size: usize,
    hidden_size: usize,
}

/// The options of an [`Rnn`] before its weights are drawn.
#[derive(Clone, Copy, Debug)]
pub struct RnnConfig {
    input_size: usize,
    hidden_size: usize,
    bias: bool,
    weight_init: Init,
}

impl Rnn {
    /// `input_size` features per step, `hidden_size` units (PyTorch's order).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(input_size: usize, hidden_size: usize) -> RnnConfig {
        RnnConfig {
            input_size,
            hidden_size,
            bias: true,
            weight_init: Init::Default,
        }
    }
}

impl RnnConfig {
    /// With or without the two biases (default: with).
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }

    /// How the weights are drawn (default: PyTorch's, U(−1/√H, 1/√H) for
    /// every parameter; other schemes draw the weights and zero the biases).
    pub fn weight_init(mut self, init: Init) -> Self {
        self.weight_init = init;
        self
    }

    /// Draw `weight_ih_l0`, `weight_hh_l0`, then the biases, from `rng`.
    pub fn init(self, rng: &mut ChaCha8Rng) -> Rnn {
        let (f, h, scheme) = (self.input_size, self.hidden_size, self.weight_init);
        let bound = 1.0 / (h as f32).sqrt();
        let mut w = |shape: &[usize], fan_in: usize| {
            Param::new(match scheme {
                Init::Default => init::uniform(shape, bound, rng),
                other => other.weight(shape, fan_in, h, rng),
            })
        };
        let weight_ih_l0 = w(&[h, f], f);
        let weight_hh_l0 = w(&[h, h], h);
        let mut b = || {
            Param::new(match scheme {
                Init::Default => init::uniform(&[h], bound, rng),
                _ => Tensor::zeros(&[h]),
            })
        };
        let (bias_ih_l0, bias_hh_l0) = if self.bias {
            (Some(b()), Some(b()))
        } else {
            (None, None)
        };
        Rnn {
            weight_ih_l0,
            weight_hh_l0,
            bias_ih_l0,
            bias_hh_l0,
            input_size: f,
            hidden_size: h,
        }
    }
}

impl Module for Rnn {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let wi = p.param(&self.weight_ih_l0);
        let wh = p.param(&self.weight_hh_l0);
        let bi = self.bias_ih_l0.as_ref().map(|b| p.param(b));
        let bh = self.bias_hh_l0.as_ref().map(|b| p.param(b));
        let y = p.rnn_tanh(x, wi, wh, bi, bh);
        p.layer_output(self, y);
        y
    }

    fn visit<'m>(&'m self, v: &mut Visitor<'_, 'm>) {
        v.param("weight_ih_l0", &self.weight_ih_l0);
        v.param("weight_hh_l0", &self.weight_hh_l0);
        if let (Some(bi), Some(bh)) = (&self.bias_ih_l0, &self.bias_hh_l0) {
            v.param("bias_ih_l0", bi);
            v.param("bias_hh_l0", bh);
        }
    }

    fn visit_mut(&mut self, v: &mut VisitorMut<'_>) {
        v.param("weight_ih_l0", &mut self.weight_ih_l0);
        v.param("weight_hh_l0", &mut self.weight_hh_l0);
        if let (Some(bi), Some(bh)) = (&mut self.bias_ih_l0, &mut self.bias_hh_l0) {
            v.param("bias_ih_l0", bi);
            v.param("bias_hh_l0", bh);
        }
    }

    fn spec(&self) -> Option<String> {
        let bias = if self.bias_ih_l0.is_some() {
            ""
        } else {
            ",bias=false"
        };
        Some(format!(
            "rnn({},{}{bias})",
            self.input_size, self.hidden_size
        ))
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let (f, h) = (self.input_size, self.hidden_size);
        crate::ops::rnn::rnn_shape(s, &[h, f], &[h, h]).map_err(Error::Spec)
    }
}

/// `rnn(input_size,hidden_size,bias=true)`.
pub(crate) fn plan_rnn(item: &Item, init: Init) -> Result<Plan> {
    item.expect_args(
        2,
        &["input_size", "hidden_size", "bias"],
        "rnn(input_size,hidden_size)",
    )?;
    let f = item.usize_arg(0, "input_size", "input_size")?;
    let h = item.usize_arg(1, "hidden_size", "hidden_size")?;
    let bias = super::has_bias(item);
    let n = tensor_sizes(
        item,
        &[("weight_ih_l0", &[h, f]), ("weight_hh_l0", &[h, h])],
    )? + 2 * bias_size(item, bias, h)?;
    Ok(Plan::new(n, move |rng| {
        Box::new(Rnn::new(f, h).bias(bias).weight_init(init).init(rng))
    }))
}
