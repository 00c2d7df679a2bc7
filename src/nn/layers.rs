//! The built-in layers, as PyTorch names and lays them out.
//!
//! Each layer is a public type built with named arguments and PyTorch's
//! defaults: the required sizes in `new`, everything optional as a named
//! setter (`Conv2d::new(1, 6, 5).padding(2)`, `BatchNorm1d::new(256).eps(1e-3)`),
//! and layers with weights drawn from a seeded generator by `.init(&mut rng)`.
//!
//! | layer | input → output | parameters (PyTorch layout) | buffers |
//! | --- | --- | --- | --- |
//! | [`Linear`] | `[N, …, in] → [N, …, out]` | `weight [out, in]`, `bias [out]` | |
//! | [`Conv2d`] | `[N, C, H, W] → [N, O, H', W']` | `weight [O, C, k, k]`, `bias [O]` | |
//! | [`MaxPool2d`] | `[N, C, H, W] → [N, C, H', W']` | | |
//! | [`BatchNorm1d`] | `[N, C]` or `[N, C, L]` | `weight [C]`, `bias [C]` | `running_mean`, `running_var [C]`, `num_batches_tracked []` |
//! | [`BatchNorm2d`] | `[N, C, H, W]` | as above | as above |
//! | [`Dropout`] | any | | |
//! | [`Rnn`] | `[N, T, F] → [N, H]` (last hidden state) | `weight_ih_l0 [H, F]`, `weight_hh_l0 [H, H]`, `bias_ih_l0 [H]`, `bias_hh_l0 [H]` | |
//! | [`Flatten`] | `[N, …] → [N, product]` | | |
//! | [`Reshape`] | `[N, …] → [N, *shape]` | | |
//! | [`Activation`] | any (softmax, log_softmax: `[N, C]`) | | |
//! | [`PRelu`] | any, `n` = 1 or channels on axis 1 | `weight [n]` | |

use super::init::{self, Init};
use super::module::{Buffer, Module, OutputKind, Param, Pass, Visitor, VisitorMut};
use crate::ops::batchnorm::RunningStats;
use crate::ops::unary::Unary;
use crate::{Error, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

/// `[N, 1, 28, 28]`-style text for a per-sample shape.
pub(crate) fn fmt_shape(s: &[usize]) -> String {
    let inner: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[N, {}]", inner.join(", "))
}

fn spec_err(msg: String) -> Error {
    Error::Spec(msg)
}

/// `weight`, then `bias` if there is one: the tensors of Linear and Conv2d.
fn visit_weight_bias<'m>(v: &mut Visitor<'_, 'm>, weight: &'m Param, bias: &'m Option<Param>) {
    v.param("weight", weight);
    if let Some(b) = bias {
        v.param("bias", b);
    }
}

/// [`visit_weight_bias`] with mutable access.
fn visit_weight_bias_mut(v: &mut VisitorMut<'_>, weight: &mut Param, bias: &mut Option<Param>) {
    v.param("weight", weight);
    if let Some(b) = bias {
        v.param("bias", b);
    }
}

/// The number of values of a per-sample shape, `None` when it overflows.
pub(crate) fn numel(s: &[usize]) -> Option<usize> {
    s.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

// ------------------------------------------------------------------ Linear

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

    fn describe(&self) -> String {
        format!("linear({},{})", self.in_features, self.out_features)
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let i = self.in_features;
        if s.last() != Some(&i) {
            let hint = if s.len() > 1 && numel(s) == Some(i) {
                format!("; add `flatten` before it (the input has {i} values per sample)")
            } else {
                String::new()
            };
            return Err(spec_err(format!(
                "expects input [N, {i}], got {}{hint}",
                fmt_shape(s)
            )));
        }
        let mut o = s.to_vec();
        *o.last_mut().expect("not empty") = self.out_features;
        Ok(o)
    }

    fn input_shape_hint(&self) -> Option<Vec<usize>> {
        Some(vec![self.in_features])
    }
}

// ------------------------------------------------------------------ Conv2d

/// A 2-D convolution with square kernels (`nn.Conv2d`).
///
/// ```
/// use backprop::nn::{Conv2d, Module};
/// let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
/// let conv = Conv2d::new(1, 6, 5).padding(2).init(&mut rng);
/// assert_eq!(conv.output_shape(&[1, 28, 28]).unwrap(), vec![6, 28, 28]);
/// ```
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `[out_channels, in_channels, kernel_size, kernel_size]`, as PyTorch's `weight`.
    pub weight: Param,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Param>,
    cfg: Conv2dConfig,
}

/// The options of a [`Conv2d`] before its weights are drawn.
#[derive(Clone, Copy, Debug)]
pub struct Conv2dConfig {
    in_channels: usize,
    out_channels: usize,
    kernel_size: usize,
    stride: usize,
    padding: usize,
    bias: bool,
    weight_init: Init,
}

impl Conv2d {
    /// `in_channels → out_channels` with `kernel_size × kernel_size`
    /// kernels (PyTorch's argument order); stride 1, no padding, a bias.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize) -> Conv2dConfig {
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel_size,
            stride: 1,
            padding: 0,
            bias: true,
            weight_init: Init::Default,
        }
    }
}

impl Conv2dConfig {
    /// Step between windows, both axes (default 1).
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = s;
        self
    }

    /// Zeros added on every side (default 0).
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = p;
        self
    }

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
    pub fn init(self, rng: &mut ChaCha8Rng) -> Conv2d {
        let (c, o, k) = (self.in_channels, self.out_channels, self.kernel_size);
        let fan_in = c * k * k;
        let weight = Param::new(
            self.weight_init
                .weight(&[o, c, k, k], fan_in, o * k * k, rng),
        );
        let bias = self
            .bias
            .then(|| Param::new(self.weight_init.bias(&[o], fan_in, rng)));
        Conv2d {
            weight,
            bias,
            cfg: self,
        }
    }
}

/// `[C, H, W]` of an image-shaped per-sample input, or an error with a hint.
fn image_shape(s: &[usize], channels: usize) -> Result<[usize; 3]> {
    if let [c, h, w] = *s {
        return Ok([c, h, w]);
    }
    let n = numel(s).unwrap_or(0);
    let side = (n / channels.max(1)) as f64;
    let hint = if channels > 0 && n > 0 && n.is_multiple_of(channels) && side.sqrt().fract() == 0.0
    {
        let r = side.sqrt() as usize;
        format!("; add reshape({channels},{r},{r}) before it")
    } else {
        String::new()
    };
    Err(spec_err(format!(
        "expects images [N, C, H, W], got {}{hint}",
        fmt_shape(s)
    )))
}

impl Module for Conv2d {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let c = &self.cfg;
        let w = p.param(&self.weight);
        let b = self.bias.as_ref().map(|b| p.param(b));
        let y = p.conv2d(x, w, b, (c.stride, c.stride), (c.padding, c.padding));
        p.layer_output(self, y);
        y
    }

    fn visit<'m>(&'m self, v: &mut Visitor<'_, 'm>) {
        visit_weight_bias(v, &self.weight, &self.bias);
    }

    fn visit_mut(&mut self, v: &mut VisitorMut<'_>) {
        visit_weight_bias_mut(v, &mut self.weight, &mut self.bias);
    }

    fn describe(&self) -> String {
        let c = &self.cfg;
        let mut s = format!(
            "conv2d({},{},{}",
            c.in_channels, c.out_channels, c.kernel_size
        );
        if c.stride != 1 {
            s += &format!(",stride={}", c.stride);
        }
        if c.padding != 0 {
            s += &format!(",padding={}", c.padding);
        }
        s + ")"
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let cfg = &self.cfg;
        let [c, h, w] = image_shape(s, cfg.in_channels)?;
        if c != cfg.in_channels {
            return Err(spec_err(format!(
                "expects {} input channels, got input {} with {c}",
                cfg.in_channels,
                fmt_shape(s)
            )));
        }
        let (k, st, pd) = (cfg.kernel_size, cfg.stride, cfg.padding);
        let oh = crate::ops::conv::conv_out_size(h, k, st, pd);
        let ow = crate::ops::conv::conv_out_size(w, k, st, pd);
        match (oh, ow) {
            (Some(oh), Some(ow)) => Ok(vec![cfg.out_channels, oh, ow]),
            _ => Err(spec_err(format!(
                "kernel {k}×{k} is larger than the padded input {}×{} (input {})",
                h + 2 * pd,
                w + 2 * pd,
                fmt_shape(s)
            ))),
        }
    }
}

// --------------------------------------------------------------- MaxPool2d

/// The max of each `k × k` window (`nn.MaxPool2d`); the gradient goes to
/// the arg-max (the first one on ties, as PyTorch).
///
/// ```
/// use backprop::nn::{MaxPool2d, Module};
/// assert_eq!(MaxPool2d::new(2).output_shape(&[6, 28, 28]).unwrap(), vec![6, 14, 14]);
/// ```
#[derive(Clone, Debug)]
pub struct MaxPool2d {
    kernel_size: usize,
    stride: usize,
    padding: usize,
}

impl MaxPool2d {
    /// Windows of `kernel_size`, stride `kernel_size`, no padding (PyTorch's defaults).
    pub fn new(kernel_size: usize) -> MaxPool2d {
        MaxPool2d {
            kernel_size,
            stride: kernel_size,
            padding: 0,
        }
    }

    /// Step between windows (default: the kernel size).
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = s;
        self
    }

    /// Implicit −∞ on every side, at most half the kernel size (default 0).
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = p;
        self
    }
}

impl Module for MaxPool2d {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let (k, s, pd) = (self.kernel_size, self.stride, self.padding);
        let y = p.max_pool2d(x, (k, k), (s, s), (pd, pd));
        p.layer_output(self, y);
        y
    }

    fn describe(&self) -> String {
        let mut s = format!("maxpool2d({}", self.kernel_size);
        if self.stride != self.kernel_size {
            s += &format!(",stride={}", self.stride);
        }
        if self.padding != 0 {
            s += &format!(",padding={}", self.padding);
        }
        s + ")"
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let (k, st, pd) = (self.kernel_size, self.stride, self.padding);
        if pd * 2 > k {
            return Err(spec_err(format!(
                "padding {pd} must be at most half the kernel size {k}"
            )));
        }
        let [c, h, w] = image_shape(s, 0)?;
        let oh = crate::ops::pool::pool_out_size(h, k, st, pd);
        let ow = crate::ops::pool::pool_out_size(w, k, st, pd);
        match (oh, ow) {
            (Some(oh), Some(ow)) => Ok(vec![c, oh, ow]),
            _ => Err(spec_err(format!(
                "window {k}×{k} is larger than the padded input {}×{} (input {})",
                h + 2 * pd,
                w + 2 * pd,
                fmt_shape(s)
            ))),
        }
    }
}

// --------------------------------------------------------------- BatchNorm

/// Batch normalization over the channels of axis 1 (`nn.BatchNorm1d` for
/// `D = 1`, `nn.BatchNorm2d` for `D = 2`): in training, each channel is
/// normalized with the batch's mean and biased variance and the running
/// statistics move by `momentum` toward the batch's (unbiased variance); in
/// evaluation the running statistics are used.
///
/// ```
/// use backprop::nn::{BatchNorm1d, Module, ModuleExt};
/// let bn = BatchNorm1d::new(4).momentum(0.2);
/// let names: Vec<String> = bn.state_dict().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]);
/// ```
#[derive(Clone, Debug)]
pub struct BatchNorm<const D: usize> {
    /// The scale γ, `[C]` (PyTorch's `weight`).
    pub weight: Param,
    /// The shift β, `[C]` (PyTorch's `bias`).
    pub bias: Param,
    /// Running mean per channel, `[C]`, used in evaluation.
    pub running_mean: Buffer,
    /// Running (unbiased) variance per channel, `[C]`, used in evaluation.
    pub running_var: Buffer,
    /// Training batches seen so far, a scalar (PyTorch's `num_batches_tracked`).
    pub num_batches_tracked: Buffer,
    features: usize,
    eps: f32,
    momentum: f32,
}

/// `nn.BatchNorm1d`: input `[N, C]` or `[N, C, L]`.
pub type BatchNorm1d = BatchNorm<1>;
/// `nn.BatchNorm2d`: input `[N, C, H, W]`.
pub type BatchNorm2d = BatchNorm<2>;

impl<const D: usize> BatchNorm<D> {
    /// `num_features` channels; γ = 1, β = 0, eps 1e-5, momentum 0.1 (PyTorch's defaults).
    pub fn new(num_features: usize) -> Self {
        let c = num_features;
        BatchNorm {
            weight: Param::new(Tensor::full(&[c], 1.0)),
            bias: Param::new(Tensor::zeros(&[c])),
            running_mean: Buffer::new(Tensor::zeros(&[c])),
            running_var: Buffer::new(Tensor::full(&[c], 1.0)),
            num_batches_tracked: Buffer::new(Tensor::scalar(0.0)),
            features: c,
            eps: 1e-5,
            momentum: 0.1,
        }
    }

    /// Added to the variance before the square root (default 1e-5).
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// How far the running statistics move toward each batch's (default 0.1).
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }
}

impl<const D: usize> Module for BatchNorm<D> {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let training = p.training();
        let (w, b) = (p.param(&self.weight), p.param(&self.bias));
        let (y, stats) = match p.collective().filter(|_| training) {
            // A shard of a data-parallel run: the global batch's statistics.
            Some(comm) => {
                let stats = RunningStats {
                    mean: self.running_mean.value(),
                    var: self.running_var.value(),
                    momentum: self.momentum,
                    eps: self.eps,
                };
                let (y, s) = p.batch_norm_sync(x, w, b, stats, comm);
                (y, Some(s))
            }
            None => p.batch_norm(
                x,
                w,
                b,
                RunningStats {
                    mean: self.running_mean.value(),
                    var: self.running_var.value(),
                    momentum: self.momentum,
                    eps: self.eps,
                },
                training,
            ),
        };
        if let Some((m, v)) = stats {
            let n = self.num_batches_tracked.value().item() + 1.0;
            p.update_buffer(&self.running_mean, m);
            p.update_buffer(&self.running_var, v);
            p.update_buffer(&self.num_batches_tracked, Tensor::scalar(n));
        }
        p.layer_output(self, y);
        y
    }

    fn visit<'m>(&'m self, v: &mut Visitor<'_, 'm>) {
        v.param("weight", &self.weight);
        v.param("bias", &self.bias);
        v.buffer("running_mean", &self.running_mean);
        v.buffer("running_var", &self.running_var);
        v.buffer("num_batches_tracked", &self.num_batches_tracked);
    }

    fn visit_mut(&mut self, v: &mut VisitorMut<'_>) {
        v.param("weight", &mut self.weight);
        v.param("bias", &mut self.bias);
        v.buffer("running_mean", &mut self.running_mean);
        v.buffer("running_var", &mut self.running_var);
        v.buffer("num_batches_tracked", &mut self.num_batches_tracked);
    }

    fn describe(&self) -> String {
        format!("batchnorm{D}d({})", self.features)
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let f = self.features;
        if !(self.eps > 0.0 && (0.0..=1.0).contains(&self.momentum)) {
            return Err(spec_err("eps must be > 0 and momentum in [0, 1]".into()));
        }
        let ok = match D {
            1 => (s.len() == 1 || s.len() == 2) && s[0] == f,
            _ => s.len() == 3 && s[0] == f,
        };
        if !ok {
            let want = if D == 1 {
                format!("[N, {f}] or [N, {f}, L]")
            } else {
                format!("[N, {f}, H, W]")
            };
            return Err(spec_err(format!(
                "expects input {want}, got {}",
                fmt_shape(s)
            )));
        }
        Ok(s.to_vec())
    }

    fn check_batch(&self, sample: &[usize], batch: usize) -> Result<()> {
        let per_channel = numel(sample.get(1..).unwrap_or(&[])).unwrap_or(usize::MAX);
        if batch.saturating_mul(per_channel) == 1 {
            return Err(spec_err(format!(
                "batch normalization in training needs more than one value per channel, \
                 but a batch of {batch} sample(s) gives one; choose a batch size that leaves no \
                 batch of 1 (the last batch holds what is left over)"
            )));
        }
        Ok(())
    }
}

// ----------------------------------------------------------------- Dropout

/// Zeroes each element with probability `p` in training and scales the rest
/// by 1/(1−p) (`nn.Dropout`); the identity in evaluation.
#[derive(Clone, Debug)]
pub struct Dropout {
    p: f32,
}

impl Dropout {
    /// Drop probability `p` (PyTorch's default is 0.5).
    ///
    /// # Panics
    /// Unless `0 ≤ p ≤ 1`.
    pub fn new(p: f32) -> Dropout {
        assert!(
            (0.0..=1.0).contains(&p),
            "Dropout: p = {p}: the drop probability must be in [0, 1]"
        );
        Dropout { p }
    }
}

impl Default for Dropout {
    fn default() -> Self {
        Dropout::new(0.5)
    }
}

impl Module for Dropout {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let y = if p.training() {
            let seed = p.dropout_seed();
            let first = p.first_sample();
            p.dropout_from(x, self.p, true, seed, first)
        } else {
            x
        };
        p.layer_output(self, y);
        y
    }

    fn describe(&self) -> String {
        format!("dropout({})", self.p)
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        Ok(s.to_vec())
    }
}

// --------------------------------------------------------------------- Rnn

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

    fn describe(&self) -> String {
        format!("rnn({},{})", self.input_size, self.hidden_size)
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let f = self.input_size;
        if s.len() != 2 || s[1] != f {
            let n = numel(s).unwrap_or(0);
            let hint = if n > 0 && n.is_multiple_of(f) {
                format!("; add reshape({},{f}) before it", n / f)
            } else {
                String::new()
            };
            return Err(spec_err(format!(
                "a sequence layer reads [N, T, {f}] (T steps of {f} features), got {}{hint}",
                fmt_shape(s)
            )));
        }
        Ok(vec![self.hidden_size])
    }
}

// --------------------------------------------------------- Flatten, Reshape

/// `[N, …] → [N, product]` (`nn.Flatten()`).
#[derive(Clone, Copy, Debug)]
pub struct Flatten {
    /// Always 1 (PyTorch's default): the batch axis stays. A field, so that
    /// every `Flatten` has an address of its own (the diagnostics tell
    /// layers apart by address).
    start_dim: usize,
}

impl Flatten {
    /// `[N, …] → [N, product of the rest]` (`nn.Flatten()`, `start_dim = 1`).
    pub fn new() -> Flatten {
        Flatten { start_dim: 1 }
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten::new()
    }
}

impl Module for Flatten {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        debug_assert_eq!(self.start_dim, 1);
        let y = p.flatten(x);
        p.layer_output(self, y);
        y
    }

    fn describe(&self) -> String {
        "flatten".into()
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let n = numel(s).ok_or_else(|| {
            spec_err(format!(
                "the input {} holds more values per sample than can be counted",
                fmt_shape(s)
            ))
        })?;
        Ok(vec![n])
    }
}

/// `[N, …] → [N, *shape]` (`nn.Unflatten(1, shape)`).
#[derive(Clone, Debug)]
pub struct Reshape {
    shape: Vec<usize>,
}

impl Reshape {
    /// The per-sample shape to produce, e.g. `&[28, 28]`.
    pub fn new(shape: &[usize]) -> Reshape {
        Reshape {
            shape: shape.to_vec(),
        }
    }
}

impl Module for Reshape {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let mut shape = vec![p.shape(x)[0]];
        shape.extend(&self.shape);
        let y = p.reshape(x, &shape);
        p.layer_output(self, y);
        y
    }

    fn describe(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        format!("reshape({})", dims.join(","))
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let count = |s: &[usize]| {
            numel(s).map_or_else(|| "too many to count".to_string(), |n| n.to_string())
        };
        if numel(s).is_none() || numel(s) != numel(&self.shape) {
            return Err(spec_err(format!(
                "cannot reshape input {} ({} values per sample) to {} ({} values)",
                fmt_shape(s),
                count(s),
                fmt_shape(&self.shape),
                count(&self.shape)
            )));
        }
        Ok(self.shape.clone())
    }
}

// ------------------------------------------------------------- Activations

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

    fn describe(&self) -> String {
        match self.kind {
            ActivationKind::Elementwise(Unary::LeakyRelu(s)) if s != 0.01 => {
                format!("leaky_relu({s})")
            }
            ActivationKind::Elementwise(Unary::Elu(a)) if a != 1.0 => format!("elu({a})"),
            ActivationKind::Elementwise(f) => f.name().into(),
            ActivationKind::Softmax => "softmax".into(),
            ActivationKind::LogSoftmax => "log_softmax".into(),
        }
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

    fn describe(&self) -> String {
        match self.weight.value().numel() {
            1 => "prelu".into(),
            n => format!("prelu({n})"),
        }
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let n = self.weight.value().numel();
        if n != 1 && s.first() != Some(&n) {
            return Err(spec_err(format!(
                "{n} slopes need {n} channels on axis 1, got input {}",
                fmt_shape(s)
            )));
        }
        Ok(s.to_vec())
    }
}
