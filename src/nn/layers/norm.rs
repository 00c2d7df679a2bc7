//! Normalization: `BatchNorm1d`, `BatchNorm2d` (`nn.BatchNorm1d/2d`) over
//! the batch, `LayerNorm` (`nn.LayerNorm`) over each sample's last axis.

use super::{numel, spec_err};
use crate::nn::init::Init;
use crate::nn::module::{Buffer, Module, Param, Pass, Visitor, VisitorMut};
use crate::nn::registry::{tensor_sizes, Plan};
use crate::nn::spec::Item;
use crate::ops::batchnorm::RunningStats;
use crate::{Error, Result, Tensor, Var};

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

    fn spec(&self) -> Option<String> {
        let mut s = format!("batchnorm{D}d({}", self.features);
        if self.eps != 1e-5 {
            s += &format!(",eps={}", self.eps);
        }
        if self.momentum != 0.1 {
            s += &format!(",momentum={}", self.momentum);
        }
        Some(s + ")")
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        if !(self.eps > 0.0 && (0.0..=1.0).contains(&self.momentum)) {
            return Err(spec_err("eps must be > 0 and momentum in [0, 1]".into()));
        }
        crate::ops::batchnorm::batch_norm_shape(s, self.features, Some(D)).map_err(Error::Spec)
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

/// `batchnorm1d(num_features,eps=1e-5,momentum=0.1)` and `batchnorm2d(…)`.
pub(crate) fn plan_batchnorm(item: &Item, _init: Init) -> Result<Plan> {
    item.expect_args(
        3,
        &["num_features", "eps", "momentum"],
        &format!("{}(num_features,eps=1e-5,momentum=0.1)", item.name),
    )?;
    let c = item.usize_arg(0, "num_features", "num_features")?;
    let eps = item.f32_arg(1, "eps").unwrap_or(1e-5);
    let momentum = item.f32_arg(2, "momentum").unwrap_or(0.1);
    if eps.is_nan() || eps <= 0.0 || !(0.0..=1.0).contains(&momentum) {
        return Err(item.err("eps must be > 0 and momentum in [0, 1]"));
    }
    // weight, bias, running_mean, running_var, num_batches_tracked
    let n = 4 * tensor_sizes(item, &[("weight", &[c])])? + 1;
    Ok(if item.name == "batchnorm1d" {
        Plan::new(n, move |_| {
            Box::new(BatchNorm1d::new(c).eps(eps).momentum(momentum))
        })
    } else {
        Plan::new(n, move |_| {
            Box::new(BatchNorm2d::new(c).eps(eps).momentum(momentum))
        })
    })
}

/// Layer normalization over the last axis (`nn.LayerNorm(d)`): each row of
/// `d` values is normalized by its own mean and biased variance, then
/// scaled by γ and shifted by β. No statistics are kept: training and
/// evaluation compute the same thing.
///
/// ```
/// use backprop::nn::{LayerNorm, Module, ModuleExt};
/// let ln = LayerNorm::new(8).bias(false);
/// let names: Vec<String> = ln.state_dict().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["weight"]);
/// assert_eq!(ln.output_shape(&[5, 8]).unwrap(), vec![5, 8]);
/// ```
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// The scale γ, `[d]` (PyTorch's `weight`), 1 at first.
    pub weight: Param,
    /// The shift β, `[d]` (PyTorch's `bias`), 0 at first; none with `bias(false)`.
    pub bias: Option<Param>,
    features: usize,
    eps: f32,
}

impl LayerNorm {
    /// Normalize rows of `normalized_shape` values; γ = 1, β = 0, eps 1e-5
    /// (PyTorch's defaults).
    pub fn new(normalized_shape: usize) -> Self {
        let d = normalized_shape;
        LayerNorm {
            weight: Param::new(Tensor::full(&[d], 1.0)),
            bias: Some(Param::new(Tensor::zeros(&[d]))),
            features: d,
            eps: 1e-5,
        }
    }

    /// Added to the variance before the square root (default 1e-5).
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// With or without the shift β (default: with; GPT-2 style models
    /// sometimes drop it).
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on.then(|| Param::new(Tensor::zeros(&[self.features])));
        self
    }
}

impl Module for LayerNorm {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let w = p.param(&self.weight);
        let b = match &self.bias {
            Some(b) => p.param(b),
            None => p.input(Tensor::zeros(&[self.features])),
        };
        let y = p.layer_norm(x, w, b, self.eps);
        p.layer_output(self, y);
        y
    }

    fn visit<'m>(&'m self, v: &mut Visitor<'_, 'm>) {
        v.param("weight", &self.weight);
        if let Some(b) = &self.bias {
            v.param("bias", b);
        }
    }

    fn visit_mut(&mut self, v: &mut VisitorMut<'_>) {
        v.param("weight", &mut self.weight);
        if let Some(b) = &mut self.bias {
            v.param("bias", b);
        }
    }

    fn spec(&self) -> Option<String> {
        let mut s = format!("layernorm({}", self.features);
        if self.eps != 1e-5 {
            s += &format!(",eps={}", self.eps);
        }
        if self.bias.is_none() {
            s += ",bias=false";
        }
        Some(s + ")")
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        if self.eps.is_nan() || self.eps <= 0.0 {
            return Err(spec_err("eps must be > 0".into()));
        }
        crate::ops::layernorm::layer_norm_shape(s, self.features).map_err(Error::Spec)
    }
}

/// `layernorm(normalized_shape,eps=1e-5,bias=true)`.
pub(crate) fn plan_layernorm(item: &Item, _init: Init) -> Result<Plan> {
    let usage = "layernorm(normalized_shape,eps=1e-5,bias=true)";
    item.expect_args(2, &["normalized_shape", "eps", "bias"], usage)?;
    let d = item.usize_arg(0, "normalized_shape", "normalized_shape")?;
    let eps = item.f32_arg(1, "eps").unwrap_or(1e-5);
    if eps.is_nan() || eps <= 0.0 {
        return Err(item.err("eps must be > 0"));
    }
    let bias = super::has_bias(item);
    let n = tensor_sizes(item, &[("weight", &[d])])? * (1 + usize::from(bias));
    Ok(Plan::new(n, move |_| {
        Box::new(LayerNorm::new(d).eps(eps).bias(bias))
    }))
}
