//! `Rnn` (`nn.RNN`, tanh, `batch_first`, any number of layers): the last
//! hidden state, or every step's.

use crate::nn::init::Init;
use crate::nn::module::{Module, Param, Pass, Visitor, VisitorMut};
use crate::nn::registry::{bias_size, tensor_sizes, Plan};
use crate::nn::spec::Item;
use crate::{Error, Result, Var};
use rand_chacha::ChaCha8Rng;

/// A layer above the first: `weight_ih`, `weight_hh` (`[H, H]` each) and
/// the biases if any.
type UpperLayer = (Param, Param, Option<(Param, Param)>);

/// An Elman RNN with tanh over a sequence (`nn.RNN(batch_first=True)`),
/// returning the last hidden state `[N, H]` (or with `last(false)` every
/// step's, `[N, T, H]`, PyTorch's `output`): `h_t = tanh(x_t·W_ihᵀ + b_ih +
/// h_{t−1}·W_hhᵀ + b_hh)`, `h_0 = 0`; with `layers(k)` each layer reads
/// the one below's every step (`weight_ih_l1`, …). One layer returning its
/// last state is one fused node (`Graph::rnn_tanh`); otherwise the layers
/// are compositions of the graph's ops.
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
    /// Layers 1, 2, …: `(weight_ih, weight_hh, biases)`, each `[H, H]`.
    upper: Vec<UpperLayer>,
    last: bool,
    input_size: usize,
    hidden_size: usize,
}

/// The options of an [`Rnn`] before its weights are drawn.
#[derive(Clone, Copy, Debug)]
pub struct RnnConfig {
    input_size: usize,
    hidden_size: usize,
    bias: bool,
    layers: usize,
    last: bool,
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
            layers: 1,
            last: true,
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

    /// Stacked layers (PyTorch's `num_layers`, default 1).
    pub fn layers(mut self, n: usize) -> Self {
        self.layers = n.max(1);
        self
    }

    /// Return the last step's hidden state `[N, H]` (default) or, with
    /// `false`, every step's `[N, T, H]`.
    pub fn last(mut self, on: bool) -> Self {
        self.last = on;
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
        let mut draw = |shape: &[usize], fan_in: usize, bias: bool| {
            Param::new(scheme.recurrent(shape, (fan_in, h, h), bias, rng))
        };
        let weight_ih_l0 = draw(&[h, f], f, false);
        let weight_hh_l0 = draw(&[h, h], h, false);
        let (bias_ih_l0, bias_hh_l0) = if self.bias {
            (Some(draw(&[h], f, true)), Some(draw(&[h], h, true)))
        } else {
            (None, None)
        };
        let upper = (1..self.layers)
            .map(|_| {
                let wi = draw(&[h, h], h, false);
                let wh = draw(&[h, h], h, false);
                let bs = self
                    .bias
                    .then(|| (draw(&[h], h, true), draw(&[h], h, true)));
                (wi, wh, bs)
            })
            .collect();
        Rnn {
            weight_ih_l0,
            weight_hh_l0,
            bias_ih_l0,
            bias_hh_l0,
            upper,
            last: self.last,
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
        let y = if self.upper.is_empty() && self.last {
            p.rnn_tanh(x, wi, wh, bi, bh)
        } else {
            let mut seq = p.rnn_tanh_seq(x, wi, wh, bi.zip(bh));
            for (wi, wh, bs) in &self.upper {
                let (wi, wh) = (p.param(wi), p.param(wh));
                let bs = bs.as_ref().map(|(a, b)| (p.param(a), p.param(b)));
                seq = p.rnn_tanh_seq(seq, wi, wh, bs);
            }
            if self.last {
                let (n, t) = (p.shape(seq)[0], p.shape(seq)[1]);
                let y = p.narrow(seq, 1, t - 1, 1);
                p.reshape(y, &[n, self.hidden_size])
            } else {
                seq
            }
        };
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
        for (k, (wi, wh, bs)) in self.upper.iter().enumerate() {
            v.param(&format!("weight_ih_l{}", k + 1), wi);
            v.param(&format!("weight_hh_l{}", k + 1), wh);
            if let Some((bi, bh)) = bs {
                v.param(&format!("bias_ih_l{}", k + 1), bi);
                v.param(&format!("bias_hh_l{}", k + 1), bh);
            }
        }
    }

    fn visit_mut(&mut self, v: &mut VisitorMut<'_>) {
        v.param("weight_ih_l0", &mut self.weight_ih_l0);
        v.param("weight_hh_l0", &mut self.weight_hh_l0);
        if let (Some(bi), Some(bh)) = (&mut self.bias_ih_l0, &mut self.bias_hh_l0) {
            v.param("bias_ih_l0", bi);
            v.param("bias_hh_l0", bh);
        }
        for (k, (wi, wh, bs)) in self.upper.iter_mut().enumerate() {
            v.param(&format!("weight_ih_l{}", k + 1), wi);
            v.param(&format!("weight_hh_l{}", k + 1), wh);
            if let Some((bi, bh)) = bs {
                v.param(&format!("bias_ih_l{}", k + 1), bi);
                v.param(&format!("bias_hh_l{}", k + 1), bh);
            }
        }
    }

    fn spec(&self) -> Option<String> {
        let mut s = format!("rnn({},{}", self.input_size, self.hidden_size);
        if !self.upper.is_empty() {
            s += &format!(",layers={}", self.upper.len() + 1);
        }
        if self.bias_ih_l0.is_none() {
            s += ",bias=false";
        }
        if !self.last {
            s += ",last=false";
        }
        Some(s + ")")
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let (f, h) = (self.input_size, self.hidden_size);
        let out = crate::ops::rnn::rnn_shape(s, &[h, f], &[h, h]).map_err(Error::Spec)?;
        Ok(if self.last { out } else { vec![s[0], h] })
    }
}

/// `rnn(input_size,hidden_size,layers=1,bias=true,last=true)`.
pub(crate) fn plan_rnn(item: &Item, init: Init) -> Result<Plan> {
    item.expect_args(
        2,
        &["input_size", "hidden_size", "layers", "bias", "last"],
        "rnn(input_size,hidden_size,layers=1,bias=true,last=true)",
    )?;
    let f = item.usize_arg(0, "input_size", "input_size")?;
    let h = item.usize_arg(1, "hidden_size", "hidden_size")?;
    let layers = crate::nn::registry::opt_usize(item, usize::MAX, "layers", 1, 1)?;
    let bias = super::has_bias(item);
    let last = item.keyword("last").unwrap_or(1.0) != 0.0;
    let mut n = tensor_sizes(
        item,
        &[("weight_ih_l0", &[h, f]), ("weight_hh_l0", &[h, h])],
    )? + 2 * bias_size(item, bias, h)?;
    if layers > 1 {
        let upper = tensor_sizes(
            item,
            &[("weight_ih_l1", &[h, h]), ("weight_hh_l1", &[h, h])],
        )? + 2 * bias_size(item, bias, h)?;
        n += (layers - 1) * upper;
    }
    Ok(Plan::new(n, move |rng| {
        Box::new(
            Rnn::new(f, h)
                .bias(bias)
                .layers(layers)
                .last(last)
                .weight_init(init)
                .init(rng),
        )
    }))
}
