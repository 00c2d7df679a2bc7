//! Layers, the sequential model built from a one-line spec, and parameter names.
//!
//! Layer *i* of the spec owns the parameters `i.weight`, `i.bias`, … in
//! PyTorch's layouts (`Linear`: weight `[out, in]`, bias `[out]`), so a model
//! saves to, and loads from, the `state_dict()` of the equivalent
//! `nn.Sequential` with no name mapping. [`Model::parameters`] yields them in
//! one deterministic order, which drives the optimizer state, saving and the
//! per-layer reports.

pub mod checkpoint;
pub mod init;
pub mod spec;

pub use init::Init;

use crate::ops::unary::Unary;
use crate::{Error, Graph, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;
use spec::Item;
use std::sync::Arc;

/// What a layer computes.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerKind {
    /// `[N, ...] → [N, product]` (`nn.Flatten()`).
    Flatten,
    /// `[N, ...] → [N, *shape]` (`nn.Unflatten(1, shape)`).
    Reshape(Vec<usize>),
    /// `[..., in] → [..., out]`; params `weight [out, in]`, `bias [out]`.
    Linear {
        in_features: usize,
        out_features: usize,
    },
    /// An elementwise activation; shape unchanged.
    Activation(Unary),
    /// Learned-slope ReLU; param `weight [n]` (n = 1 or channels).
    PRelu { n: usize },
    /// Softmax over axis 1 of `[N, C]`.
    Softmax,
    /// Log-softmax over axis 1 of `[N, C]`.
    LogSoftmax,
    /// `[N, C, H, W] → [N, O, H', W']`; params `weight [O, C, kh, kw]`, `bias [O]`.
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    },
    /// `[N, C, H, W] → [N, C, H', W']`, the max of each window.
    MaxPool2d {
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    },
    /// Per-feature normalization over the batch (`dims` 1: `[N, C]` or
    /// `[N, C, L]`; 2: `[N, C, H, W]`); params `weight`, `bias` `[C]`,
    /// buffers `running_mean`, `running_var` `[C]`, `num_batches_tracked` `[]`.
    BatchNorm {
        features: usize,
        dims: usize,
        eps: f32,
        momentum: f32,
    },
    /// Zeroes each element with probability `p` in training (inverted scaling).
    Dropout { p: f32 },
    /// Elman RNN with tanh over `[N, T, F]`, returning the last hidden state
    /// `[N, H]`; params `weight_ih_l0 [H, F]`, `weight_hh_l0 [H, H]`,
    /// `bias_ih_l0 [H]`, `bias_hh_l0 [H]`.
    Rnn {
        input_size: usize,
        hidden_size: usize,
    },
}

/// One layer: what it computes, its parameters (PyTorch names), and the spec item it came from.
#[derive(Clone, Debug)]
pub struct Layer {
    pub kind: LayerKind,
    /// `(local name, value)`, e.g. `("weight", …)`; the full name is `"{index}.{local}"`.
    pub params: Vec<(&'static str, Arc<Tensor>)>,
    /// Non-trainable state saved with the model (`running_mean`, `running_var`,
    /// `num_batches_tracked`), in PyTorch's `state_dict` order after the params.
    pub buffers: Vec<(&'static str, Tensor)>,
    /// The spec item, for error messages and reports.
    pub item: Item,
}

/// A sequential model built from a model line.
///
/// ```
/// use backprop::nn::{Model, Init};
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let m = Model::new("flatten,linear(4,3),relu,linear(3,2)", Init::Default, &mut rng).unwrap();
/// let names: Vec<String> = m.parameters().map(|(n, _)| n).collect();
/// assert_eq!(names, ["1.weight", "1.bias", "3.weight", "3.bias"]);
/// assert_eq!(m.output_shape(&[1, 2, 2]).unwrap(), vec![2]);
/// ```
#[derive(Clone, Debug)]
pub struct Model {
    pub layers: Vec<Layer>,
    /// The model line it was built from (after preset expansion).
    pub spec: String,
    /// Layer ranges whose activations are not kept for the backward pass but
    /// recomputed during it (gradient checkpointing); see [`checkpoint`].
    pub checkpoints: Vec<std::ops::Range<usize>>,
}

/// Training or evaluation behaviour of the layers that differ (BatchNorm,
/// Dropout). The command line switches it itself: `train` runs in
/// `Train`, evaluation and `predict` in `Eval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics, dropout on. `seed` drives this pass's dropout masks
    /// (the training loop derives it from `--seed` and the step number).
    Train { seed: u64 },
    /// Running statistics, dropout off.
    Eval,
}

/// The result of a forward pass through a graph.
pub struct Forward {
    /// The model's output.
    pub out: Var,
    /// One `Var` per parameter, in [`Model::parameters`] order.
    pub params: Vec<Var>,
    /// Each layer's output, in layer order.
    pub layer_outputs: Vec<Var>,
    /// New values for buffers (BatchNorm running statistics) computed in
    /// `Train` mode: `(layer index, buffer name, value)`. The forward pass
    /// itself never mutates the model; [`Model::apply_buffer_updates`] does,
    /// after the step.
    pub buffer_updates: Vec<(usize, &'static str, Tensor)>,
}

fn build_layer(item: Item, init: Init, rng: &mut ChaCha8Rng) -> Result<Layer> {
    let mut params = Vec::new();
    let mut buffers = Vec::new();
    let kind = match item.name.as_str() {
        "flatten" => {
            item.expect_args(0, &[], "flatten")?;
            LayerKind::Flatten
        }
        "reshape" | "unflatten" | "view" => {
            if item.args.is_empty() {
                return Err(item.err("give the per-sample shape, e.g. reshape(28,28)"));
            }
            item.expect_args(8, &[], "reshape(28,28)")?;
            let dims = (0..item.args.len())
                .map(|i| item.usize_arg(i, "", "dimension"))
                .collect::<Result<Vec<_>>>()?;
            LayerKind::Reshape(dims)
        }
        "linear" | "dense" => {
            item.expect_args(2, &["bias"], "linear(in_features,out_features)")?;
            let i = item.usize_arg(0, "in_features", "in_features")?;
            let o = item.usize_arg(1, "out_features", "out_features")?;
            params.push(("weight", Arc::new(init.weight(&[o, i], i, o, rng))));
            if item.f32_arg(99, "bias").unwrap_or(1.0) != 0.0 {
                params.push(("bias", Arc::new(init.bias(&[o], i, rng))));
            }
            LayerKind::Linear {
                in_features: i,
                out_features: o,
            }
        }
        "relu" => act(&item, Unary::Relu)?,
        "sigmoid" => act(&item, Unary::Sigmoid)?,
        "tanh" => act(&item, Unary::Tanh)?,
        "leakyrelu" => {
            item.expect_args(1, &["negative_slope", "slope"], "leaky_relu or leaky_relu(0.01)")?;
            let s = item.f32_arg(0, "negative_slope").or(item.f32_arg(9, "slope")).unwrap_or(0.01);
            LayerKind::Activation(Unary::LeakyRelu(s))
        }
        "elu" => {
            item.expect_args(1, &["alpha"], "elu or elu(1.0)")?;
            LayerKind::Activation(Unary::Elu(item.f32_arg(0, "alpha").unwrap_or(1.0)))
        }
        "prelu" => {
            item.expect_args(2, &["num_parameters", "init"], "prelu or prelu(num_parameters, init)")?;
            let n = if item.args.is_empty() && !item.kwargs.iter().any(|(k, _)| k == "num_parameters") {
                1
            } else {
                item.usize_arg(0, "num_parameters", "num_parameters")?
            };
            let a = item.f32_arg(1, "init").unwrap_or(0.25);
            params.push(("weight", Arc::new(Tensor::full(&[n], a))));
            LayerKind::PRelu { n }
        }
        "softmax" => {
            item.expect_args(1, &["dim"], "softmax")?;
            LayerKind::Softmax
        }
        "logsoftmax" => {
            item.expect_args(1, &["dim"], "log_softmax")?;
            LayerKind::LogSoftmax
        }
        "conv2d" => {
            item.expect_args(
                5,
                &["in_channels", "out_channels", "kernel_size", "stride", "padding", "bias"],
                "conv2d(in_channels,out_channels,kernel_size,stride=1,padding=0)",
            )?;
            let c = item.usize_arg(0, "in_channels", "in_channels")?;
            let o = item.usize_arg(1, "out_channels", "out_channels")?;
            let k = item.usize_arg(2, "kernel_size", "kernel_size")?;
            let stride = opt_usize(&item, 3, "stride", 1, 1)?;
            let pad = opt_usize(&item, 4, "padding", 0, 0)?;
            let fan_in = c * k * k;
            params.push(("weight", Arc::new(init.weight(&[o, c, k, k], fan_in, o * k * k, rng))));
            if item.f32_arg(99, "bias").unwrap_or(1.0) != 0.0 {
                params.push(("bias", Arc::new(init.bias(&[o], fan_in, rng))));
            }
            LayerKind::Conv2d {
                in_channels: c,
                out_channels: o,
                kernel: (k, k),
                stride: (stride, stride),
                padding: (pad, pad),
            }
        }
        "maxpool2d" => {
            item.expect_args(3, &["kernel_size", "stride", "padding"], "maxpool2d(kernel_size,stride=kernel_size,padding=0)")?;
            let k = item.usize_arg(0, "kernel_size", "kernel_size")?;
            let stride = opt_usize(&item, 1, "stride", k, 1)?;
            let pad = opt_usize(&item, 2, "padding", 0, 0)?;
            if pad * 2 > k {
                return Err(item.err(format!("padding {pad} must be at most half the kernel size {k}")));
            }
            LayerKind::MaxPool2d {
                kernel: (k, k),
                stride: (stride, stride),
                padding: (pad, pad),
            }
        }
        "batchnorm1d" | "batchnorm2d" => {
            item.expect_args(3, &["num_features", "eps", "momentum"], &format!("{}(num_features,eps=1e-5,momentum=0.1)", item.name))?;
            let c = item.usize_arg(0, "num_features", "num_features")?;
            let eps = item.f32_arg(1, "eps").unwrap_or(1e-5);
            let momentum = item.f32_arg(2, "momentum").unwrap_or(0.1);
            if eps.is_nan() || eps <= 0.0 || !(0.0..=1.0).contains(&momentum) {
                return Err(item.err("eps must be > 0 and momentum in [0, 1]"));
            }
            params.push(("weight", Arc::new(Tensor::full(&[c], 1.0))));
            params.push(("bias", Arc::new(Tensor::zeros(&[c]))));
            buffers.push(("running_mean", Tensor::zeros(&[c])));
            buffers.push(("running_var", Tensor::full(&[c], 1.0)));
            buffers.push(("num_batches_tracked", Tensor::scalar(0.0)));
            LayerKind::BatchNorm {
                features: c,
                dims: if item.name == "batchnorm1d" { 1 } else { 2 },
                eps,
                momentum,
            }
        }
        "dropout" => {
            item.expect_args(1, &["p"], "dropout(p=0.5)")?;
            let p = item.f32_arg(0, "p").unwrap_or(0.5);
            if !(0.0..=1.0).contains(&p) {
                return Err(item.err(format!("p = {p}: the drop probability must be in [0, 1]")));
            }
            LayerKind::Dropout { p }
        }
        "rnn" => {
            item.expect_args(2, &["input_size", "hidden_size", "bias"], "rnn(input_size,hidden_size)")?;
            let f = item.usize_arg(0, "input_size", "input_size")?;
            let h = item.usize_arg(1, "hidden_size", "hidden_size")?;
            // PyTorch draws every RNN parameter from U(−1/√H, 1/√H).
            let w = |shape: &[usize], fan_in: usize, rng: &mut ChaCha8Rng| match init {
                Init::Default => init::uniform(shape, 1.0 / (h as f32).sqrt(), rng),
                other => other.weight(shape, fan_in, h, rng),
            };
            params.push(("weight_ih_l0", Arc::new(w(&[h, f], f, rng))));
            params.push(("weight_hh_l0", Arc::new(w(&[h, h], h, rng))));
            if item.f32_arg(99, "bias").unwrap_or(1.0) != 0.0 {
                for name in ["bias_ih_l0", "bias_hh_l0"] {
                    let b = match init {
                        Init::Default => init::uniform(&[h], 1.0 / (h as f32).sqrt(), rng),
                        _ => Tensor::zeros(&[h]),
                    };
                    params.push((name, Arc::new(b)));
                }
            }
            LayerKind::Rnn {
                input_size: f,
                hidden_size: h,
            }
        }
        other => {
            return Err(item.err(format!(
                "unknown layer `{other}`; the layers are flatten, reshape, linear, conv2d, maxpool2d, \
                 batchnorm1d, batchnorm2d, dropout, rnn, relu, sigmoid, tanh, leaky_relu, prelu, elu, \
                 softmax, log_softmax"
            )))
        }
    };
    Ok(Layer {
        kind,
        params,
        buffers,
        item,
    })
}

/// Run one layer: `i` is its index in the model, `p` its parameter nodes.
pub(crate) fn layer_forward(
    i: usize,
    l: &Layer,
    g: &mut Graph,
    h: Var,
    p: &[Var],
    mode: Mode,
    buffer_updates: &mut Vec<(usize, &'static str, Tensor)>,
) -> Var {
    match &l.kind {
        LayerKind::Flatten => g.flatten(h),
        LayerKind::Reshape(dims) => {
            let mut shape = vec![g.shape(h)[0]];
            shape.extend(dims);
            g.reshape(h, &shape)
        }
        LayerKind::Linear { .. } => g.linear(h, p[0], p.get(1).copied()),
        LayerKind::Activation(f) => g.unary(*f, h),
        LayerKind::PRelu { .. } => g.prelu(h, p[0]),
        LayerKind::Softmax => g.softmax(h),
        LayerKind::LogSoftmax => g.log_softmax(h),
        LayerKind::Conv2d {
            stride, padding, ..
        } => g.conv2d(h, p[0], p.get(1).copied(), *stride, *padding),
        LayerKind::MaxPool2d {
            kernel,
            stride,
            padding,
        } => g.max_pool2d(h, *kernel, *stride, *padding),
        LayerKind::BatchNorm { eps, momentum, .. } => {
            let training = matches!(mode, Mode::Train { .. });
            let (rm, rv) = (&l.buffers[0].1, &l.buffers[1].1);
            let (y, stats) = g.batch_norm(h, p[0], p[1], rm, rv, training, *momentum, *eps);
            if let Some((m, v)) = stats {
                let n = l.buffers[2].1.item() + 1.0;
                buffer_updates.push((i, "running_mean", m));
                buffer_updates.push((i, "running_var", v));
                buffer_updates.push((i, "num_batches_tracked", Tensor::scalar(n)));
            }
            y
        }
        LayerKind::Dropout { p: prob } => match mode {
            Mode::Train { seed } => g.dropout(
                h,
                *prob,
                true,
                seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407),
            ),
            Mode::Eval => h,
        },
        LayerKind::Rnn { .. } => g.rnn_tanh(h, p[0], p[1], p.get(2).copied(), p.get(3).copied()),
    }
}

/// An optional whole-number argument with a default and a minimum.
fn opt_usize(item: &Item, i: usize, kw: &str, default: usize, min: usize) -> Result<usize> {
    let given = item.kwargs.iter().any(|(k, _)| k == kw) || item.args.len() > i;
    if !given {
        return Ok(default);
    }
    let v = item.f32_arg(i, kw).unwrap_or(0.0) as f64;
    if v < min as f64 || v.fract() != 0.0 || v > 1e6 {
        return Err(item.err(format!("{kw} must be a whole number ≥ {min}, got {v}")));
    }
    Ok(v as usize)
}

fn act(item: &Item, f: Unary) -> Result<LayerKind> {
    item.expect_args(0, &["inplace"], &item.name)?;
    Ok(LayerKind::Activation(f))
}

/// `[C, H, W]` of an image-shaped per-sample input, or an error with a hint.
fn image_shape(l: &Layer, s: &[usize], channels: usize) -> Result<[usize; 3]> {
    if let [c, h, w] = *s {
        return Ok([c, h, w]);
    }
    let n: usize = s.iter().product();
    let side = (n / channels.max(1)) as f64;
    let hint = if channels > 0 && n.is_multiple_of(channels) && side.sqrt().fract() == 0.0 {
        let r = side.sqrt() as usize;
        format!("; add reshape({channels},{r},{r}) before it")
    } else {
        String::new()
    };
    Err(l.item.err(format!(
        "expects images [N, C, H, W], got {}{hint}",
        fmt_shape(s)
    )))
}

fn fmt_shape(s: &[usize]) -> String {
    let inner: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[N, {}]", inner.join(", "))
}

impl Model {
    /// Build a model from a model line or preset name, drawing weights with `init`.
    pub fn new(line: &str, init: Init, rng: &mut ChaCha8Rng) -> Result<Model> {
        let spec = spec::expand_preset(line);
        let layers = spec::parse(&spec)?
            .into_iter()
            .map(|it| build_layer(it, init, rng))
            .collect::<Result<Vec<_>>>()?;
        Ok(Model {
            layers,
            spec,
            checkpoints: Vec::new(),
        })
    }

    /// `(full name, value)` for every parameter, in the one fixed order.
    pub fn parameters(&self) -> impl Iterator<Item = (String, &Tensor)> + '_ {
        self.layers.iter().enumerate().flat_map(|(i, l)| {
            l.params
                .iter()
                .map(move |(n, t)| (format!("{i}.{n}"), &**t))
        })
    }

    /// Mutable access to every parameter, in [`Model::parameters`] order.
    /// Copies a value only if a graph still shares it (none should at step time).
    pub fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params.iter_mut().map(|(_, t)| Arc::make_mut(t)))
            .collect()
    }

    /// Number of scalar parameters.
    pub fn num_parameters(&self) -> usize {
        self.parameters().map(|(_, t)| t.numel()).sum()
    }

    /// Check the model against a per-sample input shape (e.g. `[1, 28, 28]`)
    /// and return the per-sample output shape. Errors name the layer and the
    /// shapes, before any training starts.
    pub fn output_shape(&self, sample: &[usize]) -> Result<Vec<usize>> {
        Ok(self
            .shapes(sample)?
            .pop()
            .unwrap_or_else(|| sample.to_vec()))
    }

    /// The per-sample input shape of every layer, then the model's output
    /// shape (`layers.len() + 1` entries); errors as [`Model::output_shape`].
    pub fn shapes(&self, sample: &[usize]) -> Result<Vec<Vec<usize>>> {
        let mut s = sample.to_vec();
        let mut all = Vec::with_capacity(self.layers.len() + 1);
        for l in &self.layers {
            all.push(s.clone());
            s = match &l.kind {
                LayerKind::Flatten => vec![s.iter().product()],
                LayerKind::Reshape(dims) => {
                    let (have, want) =
                        (s.iter().product::<usize>(), dims.iter().product::<usize>());
                    if have != want {
                        return Err(l.item.err(format!(
                            "cannot reshape input {} ({have} values per sample) to {} ({want} values)",
                            fmt_shape(&s),
                            fmt_shape(dims)
                        )));
                    }
                    dims.clone()
                }
                LayerKind::Linear {
                    in_features,
                    out_features,
                } => {
                    if s.last() != Some(in_features) {
                        let hint = if s.len() > 1 && s.iter().product::<usize>() == *in_features {
                            format!("; add `flatten` before it (the input has {in_features} values per sample)")
                        } else {
                            String::new()
                        };
                        return Err(l.item.err(format!(
                            "expects input [N, {in_features}], got {}{hint}",
                            fmt_shape(&s)
                        )));
                    }
                    let mut o = s.clone();
                    *o.last_mut().unwrap() = *out_features;
                    o
                }
                LayerKind::Activation(_) => s,
                LayerKind::PRelu { n } => {
                    if *n != 1 && s.first() != Some(n) {
                        return Err(l.item.err(format!(
                            "{n} slopes need {n} channels on axis 1, got input {}",
                            fmt_shape(&s)
                        )));
                    }
                    s
                }
                LayerKind::Softmax | LayerKind::LogSoftmax => {
                    if s.len() != 1 {
                        return Err(l
                            .item
                            .err(format!("expects input [N, C], got {}", fmt_shape(&s))));
                    }
                    s
                }
                LayerKind::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    padding,
                } => {
                    let [c, h, w] = image_shape(l, &s, *in_channels)?;
                    if c != *in_channels {
                        return Err(l.item.err(format!(
                            "expects {in_channels} input channels, got input {} with {c}",
                            fmt_shape(&s)
                        )));
                    }
                    let oh = crate::ops::conv::conv_out_size(h, kernel.0, stride.0, padding.0);
                    let ow = crate::ops::conv::conv_out_size(w, kernel.1, stride.1, padding.1);
                    match (oh, ow) {
                        (Some(oh), Some(ow)) => vec![*out_channels, oh, ow],
                        _ => {
                            return Err(l.item.err(format!(
                                "kernel {}×{} is larger than the padded input {}×{} (input {})",
                                kernel.0,
                                kernel.1,
                                h + 2 * padding.0,
                                w + 2 * padding.1,
                                fmt_shape(&s)
                            )))
                        }
                    }
                }
                LayerKind::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                } => {
                    let [c, h, w] = image_shape(l, &s, 0)?;
                    let oh = crate::ops::pool::pool_out_size(h, kernel.0, stride.0, padding.0);
                    let ow = crate::ops::pool::pool_out_size(w, kernel.1, stride.1, padding.1);
                    match (oh, ow) {
                        (Some(oh), Some(ow)) => vec![c, oh, ow],
                        _ => {
                            return Err(l.item.err(format!(
                                "window {}×{} is larger than the padded input {}×{} (input {})",
                                kernel.0,
                                kernel.1,
                                h + 2 * padding.0,
                                w + 2 * padding.1,
                                fmt_shape(&s)
                            )))
                        }
                    }
                }
                LayerKind::BatchNorm { features, dims, .. } => {
                    let ok = match dims {
                        1 => (s.len() == 1 || s.len() == 2) && s[0] == *features,
                        _ => s.len() == 3 && s[0] == *features,
                    };
                    if !ok {
                        let want = if *dims == 1 {
                            format!("[N, {features}] or [N, {features}, L]")
                        } else {
                            format!("[N, {features}, H, W]")
                        };
                        return Err(l
                            .item
                            .err(format!("expects input {want}, got {}", fmt_shape(&s))));
                    }
                    s
                }
                LayerKind::Dropout { .. } => s,
                LayerKind::Rnn {
                    input_size,
                    hidden_size,
                } => {
                    if s.len() != 2 || s[1] != *input_size {
                        let hint = if s.iter().product::<usize>() % input_size == 0 {
                            format!(
                                "; add reshape({},{input_size}) before it",
                                s.iter().product::<usize>() / input_size
                            )
                        } else {
                            String::new()
                        };
                        return Err(l.item.err(format!(
                            "a sequence layer reads [N, T, {input_size}] (T steps of {input_size} features), got {}{hint}",
                            fmt_shape(&s)
                        )));
                    }
                    vec![*hidden_size]
                }
            };
        }
        all.push(s);
        Ok(all)
    }

    /// Batch normalization in training needs more than one value per channel:
    /// refuse batch sizes (`sizes`, e.g. the full and the last partial batch)
    /// that would give it one, naming the layer.
    pub fn check_training_batches(&self, sample: &[usize], sizes: &[usize]) -> Result<()> {
        let shapes = self.shapes(sample)?;
        for (l, s) in self.layers.iter().zip(&shapes) {
            if let LayerKind::BatchNorm { .. } = l.kind {
                let per_channel: usize = s.iter().skip(1).product();
                if let Some(&n) = sizes.iter().find(|&&n| n * per_channel == 1) {
                    return Err(l.item.err(format!(
                        "batch normalization in training needs more than one value per channel, \
                         but a batch of {n} sample(s) gives one; choose a --batch-size that leaves no \
                         batch of 1 (the last batch holds what is left over)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Run the model on `x: [N, ...]` through `g`, recording parameters as leaves.
    pub fn forward(&self, g: &mut Graph, x: Var, mode: Mode) -> Forward {
        let params: Vec<Var> = self
            .layers
            .iter()
            .flat_map(|l| l.params.iter())
            .map(|(_, t)| g.param(t.clone()))
            .collect();
        self.forward_with(g, x, params, mode)
    }

    /// Run the model with the given parameter nodes (one per parameter, in
    /// [`Model::parameters`] order) instead of the model's own values.
    pub fn forward_with(&self, g: &mut Graph, x: Var, params: Vec<Var>, mode: Mode) -> Forward {
        assert_eq!(
            params.len(),
            self.layers.iter().map(|l| l.params.len()).sum::<usize>(),
            "forward_with: one Var per parameter"
        );
        let mut buffer_updates = Vec::new();
        let mut layer_outputs = Vec::with_capacity(self.layers.len());
        let mut h = x;
        let (mut i, mut k) = (0, 0);
        while i < self.layers.len() {
            let seg = self
                .checkpoints
                .iter()
                .find(|r| r.start == i && r.end > r.start && r.end <= self.layers.len());
            match seg {
                Some(r) if g.grad_enabled() => {
                    let layers = &self.layers[r.clone()];
                    let np: usize = layers.iter().map(|l| l.params.len()).sum();
                    h = checkpoint::segment(
                        g,
                        layers,
                        r.start,
                        h,
                        &params[k..k + np],
                        mode,
                        &mut buffer_updates,
                    );
                    layer_outputs.extend(std::iter::repeat_n(h, layers.len()));
                    i = r.end;
                    k += np;
                }
                _ => {
                    let l = &self.layers[i];
                    let np = l.params.len();
                    h = layer_forward(i, l, g, h, &params[k..k + np], mode, &mut buffer_updates);
                    layer_outputs.push(h);
                    i += 1;
                    k += np;
                }
            }
        }
        Forward {
            out: h,
            params,
            layer_outputs,
            buffer_updates,
        }
    }

    /// Store the buffer values a `Train`-mode forward pass computed.
    pub fn apply_buffer_updates(&mut self, updates: Vec<(usize, &'static str, Tensor)>) {
        for (layer, name, value) in updates {
            let slot = self.layers[layer]
                .buffers
                .iter_mut()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("layer {layer} has no buffer {name}"));
            slot.1 = value;
        }
    }

    /// Everything PyTorch's `state_dict()` holds for this model: per layer,
    /// its parameters then its buffers, named `"{index}.{name}"`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            for (n, t) in &l.params {
                out.push((format!("{i}.{n}"), (**t).clone()));
            }
            for (n, t) in &l.buffers {
                out.push((format!("{i}.{n}"), t.clone()));
            }
        }
        out
    }

    /// Inference on a batch in `Eval` mode: records no graph for a backward pass.
    pub fn predict(&self, x: &Tensor) -> Tensor {
        let mut g = Graph::no_grad();
        let xv = g.input(x.clone());
        let f = self.forward(&mut g, xv, Mode::Eval);
        g.value(f.out).clone()
    }

    /// Replace every parameter and buffer with the tensor of the same name
    /// in `state`. Every one must be present with the right shape, and
    /// `state` must hold nothing else (as PyTorch's strict `load_state_dict`).
    pub fn load_state(
        &mut self,
        state: &[(String, Tensor)],
        origin: &std::path::Path,
    ) -> Result<()> {
        let names: Vec<(String, Vec<usize>)> = self
            .state()
            .into_iter()
            .map(|(n, t)| (n, t.shape().to_vec()))
            .collect();
        for (name, _) in state {
            if !names.iter().any(|(n, _)| n == name) {
                let expected: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
                return Err(Error::weights(
                    origin,
                    format!(
                        "unexpected tensor `{name}`: the model `{}` has {}",
                        self.spec,
                        expected.join(", ")
                    ),
                ));
            }
        }
        let mut values = Vec::with_capacity(names.len());
        for (name, shape) in &names {
            let t = state
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| {
                    Error::weights(
                        origin,
                        format!(
                            "missing tensor `{name}` (shape {shape:?}) for model `{}`",
                            self.spec
                        ),
                    )
                })?;
            // A one-element counter is accepted as `[]` or `[1]`: exporters differ.
            let counter = name.ends_with("num_batches_tracked") && t.numel() == 1;
            if t.shape() != shape.as_slice() && !counter {
                return Err(Error::weights(
                    origin,
                    format!(
                        "tensor `{name}` has shape {:?}, the model `{}` needs {shape:?}",
                        t.shape(),
                        self.spec
                    ),
                ));
            }
            values.push(t.clone().reshape(shape));
        }
        let mut it = values.into_iter();
        for l in &mut self.layers {
            for (_, p) in &mut l.params {
                *Arc::make_mut(p) = it.next().expect("one value per parameter");
            }
            for (_, b) in &mut l.buffers {
                *b = it.next().expect("one value per buffer");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn model(line: &str) -> Result<Model> {
        Model::new(line, Init::Default, &mut ChaCha8Rng::seed_from_u64(0))
    }

    #[test]
    fn shape_errors_name_the_layer_and_both_shapes() {
        let m = model("linear(784,128),relu").unwrap();
        let e = m.output_shape(&[1, 28, 28]).unwrap_err().to_string();
        assert!(e.contains("layer 0 `linear(784,128)`"), "{e}");
        assert!(
            e.contains("[N, 784]") && e.contains("[N, 1, 28, 28]") && e.contains("flatten"),
            "{e}"
        );
        let m = model("flatten,linear(784,128),relu,linear(100,10)").unwrap();
        let e = m.output_shape(&[1, 28, 28]).unwrap_err().to_string();
        assert!(e.contains("layer 3") && e.contains("[N, 128]"), "{e}");
    }

    #[test]
    fn spec_errors() {
        for (line, want) in [
            ("flatten,linear(784),relu", "missing out_features"),
            ("linear(784,-3)", "positive whole number"),
            ("flatten,relu2", "unknown layer `relu2`"),
            ("conv2d(1,6)", "missing kernel_size"),
            ("relu(3)", "at most 0 argument"),
        ] {
            let e = model(line).unwrap_err().to_string();
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn layer_shape_errors_name_the_layer_and_the_shapes() {
        for (line, sample, want) in [
            (
                "conv2d(1,6,7)",
                vec![1, 5, 5],
                vec!["layer 0", "kernel 7×7 is larger than the padded input 5×5"],
            ),
            (
                "conv2d(3,6,5)",
                vec![1, 28, 28],
                vec!["layer 0", "3 input channels", "[N, 1, 28, 28]"],
            ),
            (
                "conv2d(1,6,5)",
                vec![784],
                vec!["images [N, C, H, W]", "reshape(1,28,28)"],
            ),
            ("maxpool2d(4)", vec![1, 3, 3], vec!["window 4×4", "3×3"]),
            (
                "rnn(28,16)",
                vec![1, 28, 28],
                vec!["[N, T, 28]", "[N, 1, 28, 28]", "reshape(28,28)"],
            ),
            (
                "flatten,linear(784,8),batchnorm1d(16)",
                vec![1, 28, 28],
                vec!["layer 2", "[N, 16]", "[N, 8]"],
            ),
            ("batchnorm2d(3)", vec![3, 4], vec!["[N, 3, H, W]"]),
        ] {
            let e = model(line)
                .unwrap()
                .output_shape(&sample)
                .unwrap_err()
                .to_string();
            for w in want {
                assert!(e.contains(w), "{line} on {sample:?}: `{w}` not in: {e}");
            }
        }
        let e = model("maxpool2d(2,padding=2)").unwrap_err().to_string();
        assert!(e.contains("padding 2 must be at most half"), "{e}");
        let e = model("dropout(1.5)").unwrap_err().to_string();
        assert!(e.contains("[0, 1]"), "{e}");
    }

    #[test]
    fn batch_norm_refuses_a_training_batch_of_one() {
        let m = model("flatten,linear(4,3),batchnorm1d(3)").unwrap();
        assert!(m.check_training_batches(&[4], &[64, 2]).is_ok());
        let e = m
            .check_training_batches(&[4], &[64, 1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 2") && e.contains("batch of 1"), "{e}");
        // Two-d batch norm has H·W values per channel even for one sample.
        let m = model("batchnorm2d(1)").unwrap();
        assert!(m.check_training_batches(&[1, 2, 2], &[1]).is_ok());
    }

    #[test]
    fn presets_expand() {
        let m = model("mlp").unwrap();
        assert_eq!(m.spec, "flatten,linear(784,128),relu,linear(128,10)");
        assert_eq!(m.num_parameters(), 784 * 128 + 128 + 128 * 10 + 10);
    }

    #[test]
    fn whole_model_gradient_matches_finite_differences() {
        let m =
            model("flatten,linear(6,5),tanh,linear(5,4),prelu,linear(4,3),elu,linear(3,2),sigmoid")
                .unwrap();
        let mut inputs: Vec<Tensor> = m.parameters().map(|(_, t)| t.clone()).collect();
        inputs.push(crate::ops::gradcheck::pseudo_random(&[3, 2, 3], 9));
        let errs = crate::ops::gradcheck::gradient_errors(&inputs, |g, v| {
            let (x, params) = v.split_last().unwrap();
            m.forward_with(g, *x, params.to_vec(), Mode::Eval).out
        });
        assert!(errs.iter().all(|&e| e < 2e-3), "{errs:?}");
    }
}
