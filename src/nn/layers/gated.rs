//! `Lstm` and `Gru` (`nn.LSTM`, `nn.GRU`, `batch_first`, any number of
//! layers): every step's hidden state of the last layer, or its last one.

use crate::nn::init::Init;
use crate::nn::module::{Module, Param, Pass, Visitor, VisitorMut};
use crate::nn::registry::{tensor_sizes, Plan};
use crate::nn::spec::Item;
use crate::ops::gated::{gated_shape, Cell, GateVars};
use crate::{Error, Result, Var};
use rand_chacha::ChaCha8Rng;

/// A stack of LSTM or GRU layers over `[N, T, F]` (see
/// [`ops::gated`](crate::ops::gated) for the equations), with PyTorch's
/// parameter names and layouts (`weight_ih_l0 [G·H, F]`, `weight_hh_l0
/// [G·H, H]`, `bias_ih_l0`, `bias_hh_l0`, then `…_l1`), returning every
/// step's hidden state of the top layer `[N, T, H]` (PyTorch's `output`),
/// or with `last(true)` the last one `[N, H]`.
///
/// ```
/// use backprop::nn::{Lstm, Module, ModuleExt};
/// let lstm = Lstm::new(8, 16).layers(2).init(&mut backprop::rand::seeded(0));
/// let names: Vec<String> = lstm.state_dict().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names[..4], ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]);
/// assert_eq!(lstm.state_dict()[4].1.shape(), &[64, 16]); // weight_ih_l1: [4·H, H]
/// assert_eq!(lstm.output_shape(&[10, 8]).unwrap(), vec![10, 16]);
/// ```
#[derive(Clone, Debug)]
pub struct GatedRnn {
    cell: Cell,
    layers: Vec<LayerWeights>,
    input_size: usize,
    hidden_size: usize,
    last: bool,
}

#[derive(Clone, Debug)]
struct LayerWeights {
    w_ih: Param,
    w_hh: Param,
    biases: Option<(Param, Param)>,
}

/// The sizes and options of a [`GatedRnn`] before its weights are drawn.
#[derive(Clone, Copy, Debug)]
pub struct GatedConfig {
    cell: Cell,
    input_size: usize,
    hidden_size: usize,
    layers: usize,
    bias: bool,
    last: bool,
    weight_init: Init,
}

/// `nn.LSTM(input_size, hidden_size, batch_first=True)`.
pub struct Lstm;

/// `nn.GRU(input_size, hidden_size, batch_first=True)`.
pub struct Gru;

impl Lstm {
    /// An LSTM from `input_size` features to `hidden_size` units, one layer.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(input_size: usize, hidden_size: usize) -> GatedConfig {
        GatedConfig::new(Cell::Lstm, input_size, hidden_size)
    }
}

impl Gru {
    /// A GRU from `input_size` features to `hidden_size` units, one layer.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(input_size: usize, hidden_size: usize) -> GatedConfig {
        GatedConfig::new(Cell::Gru, input_size, hidden_size)
    }
}

impl GatedConfig {
    fn new(cell: Cell, input_size: usize, hidden_size: usize) -> Self {
        GatedConfig {
            cell,
            input_size,
            hidden_size,
            layers: 1,
            bias: true,
            last: false,
            weight_init: Init::Default,
        }
    }

    /// Stacked layers (PyTorch's `num_layers`, default 1).
    pub fn layers(mut self, n: usize) -> Self {
        self.layers = n;
        self
    }

    /// With or without the biases (default: with).
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }

    /// Return only the last step's hidden state `[N, H]` (for a classifier
    /// of sequences) instead of every step's.
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

    /// Draw every layer's weights (in PyTorch's order) from `rng`.
    pub fn init(self, rng: &mut ChaCha8Rng) -> GatedRnn {
        let (h, gh) = (self.hidden_size, self.cell.gates() * self.hidden_size);
        let scheme = self.weight_init;
        let mut draw = |shape: &[usize], fan_in: usize, bias: bool| {
            Param::new(scheme.recurrent(shape, (fan_in, gh, h), bias, rng))
        };
        let layers = (0..self.layers.max(1))
            .map(|k| {
                let fin = if k == 0 { self.input_size } else { h };
                let w_ih = draw(&[gh, fin], fin, false);
                let w_hh = draw(&[gh, h], h, false);
                let biases = self
                    .bias
                    .then(|| (draw(&[gh], fin, true), draw(&[gh], h, true)));
                LayerWeights { w_ih, w_hh, biases }
            })
            .collect();
        GatedRnn {
            cell: self.cell,
            layers,
            input_size: self.input_size,
            hidden_size: h,
            last: self.last,
        }
    }
}

impl Module for GatedRnn {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let mut seq = x;
        let mut last = x;
        for l in &self.layers {
            let w = GateVars {
                w_ih: p.param(&l.w_ih),
                w_hh: p.param(&l.w_hh),
                b_ih: l.biases.as_ref().map(|b| p.param(&b.0)),
                b_hh: l.biases.as_ref().map(|b| p.param(&b.1)),
            };
            let out = p.gated_layer(self.cell, seq, w);
            (seq, last) = (out.seq, out.h);
        }
        let y = if self.last { last } else { seq };
        p.layer_output(self, y);
        y
    }

    fn visit<'m>(&'m self, v: &mut Visitor<'_, 'm>) {
        for (k, l) in self.layers.iter().enumerate() {
            v.param(&format!("weight_ih_l{k}"), &l.w_ih);
            v.param(&format!("weight_hh_l{k}"), &l.w_hh);
            if let Some((bi, bh)) = &l.biases {
                v.param(&format!("bias_ih_l{k}"), bi);
                v.param(&format!("bias_hh_l{k}"), bh);
            }
        }
    }

    fn visit_mut(&mut self, v: &mut VisitorMut<'_>) {
        for (k, l) in self.layers.iter_mut().enumerate() {
            v.param(&format!("weight_ih_l{k}"), &mut l.w_ih);
            v.param(&format!("weight_hh_l{k}"), &mut l.w_hh);
            if let Some((bi, bh)) = &mut l.biases {
                v.param(&format!("bias_ih_l{k}"), bi);
                v.param(&format!("bias_hh_l{k}"), bh);
            }
        }
    }

    fn spec(&self) -> Option<String> {
        let mut s = format!(
            "{}({},{}",
            self.cell.name(),
            self.input_size,
            self.hidden_size
        );
        if self.layers.len() != 1 {
            s += &format!(",layers={}", self.layers.len());
        }
        if self.layers[0].biases.is_none() {
            s += ",bias=false";
        }
        if self.last {
            s += ",last=true";
        }
        Some(s + ")")
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let mut shape = s.to_vec();
        for l in &self.layers {
            shape = gated_shape(
                self.cell,
                &shape,
                l.w_ih.value().shape(),
                l.w_hh.value().shape(),
            )
            .map_err(Error::Spec)?;
        }
        Ok(if self.last {
            vec![self.hidden_size]
        } else {
            shape
        })
    }
}

/// `lstm(input_size,hidden_size,layers=1,bias=true,last=false)` and `gru(…)`.
pub(crate) fn plan_gated(item: &Item, init: Init) -> Result<Plan> {
    let cell = if item.name == "lstm" {
        Cell::Lstm
    } else {
        Cell::Gru
    };
    let usage = format!(
        "{}(input_size,hidden_size,layers=1,bias=true,last=false)",
        cell.name()
    );
    item.expect_args(
        2,
        &["input_size", "hidden_size", "layers", "bias", "last"],
        &usage,
    )?;
    let f = item.usize_arg(0, "input_size", "input_size")?;
    let h = item.usize_arg(1, "hidden_size", "hidden_size")?;
    let layers = crate::nn::registry::opt_usize(item, usize::MAX, "layers", 1, 1)?;
    let bias = super::has_bias(item);
    let last = item.keyword("last").unwrap_or(0.0) != 0.0;
    let gh = cell.gates() * h;
    let mut n = 0;
    for k in 0..layers {
        let fin = if k == 0 { f } else { h };
        n += tensor_sizes(item, &[("weight_ih", &[gh, fin]), ("weight_hh", &[gh, h])])?;
        if bias {
            n += 2 * tensor_sizes(item, &[("bias_ih", &[gh])])?;
        }
    }
    Ok(Plan::new(n, move |rng| {
        Box::new(
            GatedConfig::new(cell, f, h)
                .layers(layers)
                .bias(bias)
                .last(last)
                .weight_init(init)
                .init(rng),
        )
    }))
}
