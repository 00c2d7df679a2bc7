//! The convolution layer: `Conv2d` (`nn.Conv2d`). The pools are in `pool.rs`.

use super::{visit_weight_bias, visit_weight_bias_mut};
use crate::nn::init::Init;
use crate::nn::module::{Module, Param, Pass, Visitor, VisitorMut};
use crate::nn::registry::{bias_size, opt_usize, tensor_sizes, Plan};
use crate::nn::spec::Item;
use crate::ops::conv_groups::ConvOptions;
use crate::{Error, Result, Var};
use rand_chacha::ChaCha8Rng;

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
    dilation: usize,
    groups: usize,
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
            dilation: 1,
            groups: 1,
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

    /// Distance between the kernel's taps (default 1: adjacent).
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = d;
        self
    }

    /// Channel groups (default 1); `groups = in_channels = out_channels`
    /// is a depthwise convolution. Both channel counts must be multiples.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    /// The options of the op.
    fn options(&self) -> ConvOptions {
        ConvOptions {
            stride: (self.stride, self.stride),
            padding: (self.padding, self.padding),
            dilation: (self.dilation, self.dilation),
            groups: self.groups,
        }
    }

    /// The weight's shape, `[O, C/groups, k, k]`.
    fn weight_shape(&self) -> [usize; 4] {
        let k = self.kernel_size;
        [
            self.out_channels,
            self.in_channels / self.groups.max(1),
            k,
            k,
        ]
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
        let [o, cg, k, _] = self.weight_shape();
        let fan_in = cg * k * k;
        let fan_out = o / self.groups.max(1) * k * k;
        let weight =
            Param::new(
                self.weight_init
                    .weight(&self.weight_shape(), fan_in, fan_out, rng),
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

impl Module for Conv2d {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let c = &self.cfg;
        let w = p.param(&self.weight);
        let b = self.bias.as_ref().map(|b| p.param(b));
        let y = p.conv2d_with(x, w, b, c.options());
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
        if self.bias.is_none() {
            s += ",bias=false";
        }
        if c.dilation != 1 {
            s += &format!(",dilation={}", c.dilation);
        }
        if c.groups != 1 {
            s += &format!(",groups={}", c.groups);
        }
        Some(s + ")")
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let c = &self.cfg;
        crate::ops::conv_groups::conv2d_with_shape(s, &c.weight_shape(), None, c.options())
            .map_err(Error::Spec)
    }
}

/// `conv2d(in_channels,out_channels,kernel_size,stride=1,padding=0,bias=true,dilation=1,groups=1)`.
pub(crate) fn plan_conv2d(item: &Item, init: Init) -> Result<Plan> {
    item.expect_args(
        5,
        &[
            "in_channels",
            "out_channels",
            "kernel_size",
            "stride",
            "padding",
            "bias",
            "dilation",
            "groups",
        ],
        "conv2d(in_channels,out_channels,kernel_size,stride=1,padding=0,dilation=1,groups=1)",
    )?;
    let c = item.usize_arg(0, "in_channels", "in_channels")?;
    let o = item.usize_arg(1, "out_channels", "out_channels")?;
    let k = item.usize_arg(2, "kernel_size", "kernel_size")?;
    let stride = opt_usize(item, 3, "stride", 1, 1)?;
    let pad = opt_usize(item, 4, "padding", 0, 0)?;
    let dilation = opt_usize(item, 6, "dilation", 1, 1)?;
    let groups = opt_usize(item, 7, "groups", 1, 1)?;
    if !c.is_multiple_of(groups) || !o.is_multiple_of(groups) {
        return Err(item.err(format!(
            "{groups} groups must divide in_channels ({c}) and out_channels ({o})"
        )));
    }
    let bias = super::has_bias(item);
    let n = tensor_sizes(item, &[("weight", &[o, c / groups, k, k])])? + bias_size(item, bias, o)?;
    Ok(Plan::new(n, move |rng| {
        Box::new(
            Conv2d::new(c, o, k)
                .stride(stride)
                .padding(pad)
                .dilation(dilation)
                .groups(groups)
                .bias(bias)
                .weight_init(init)
                .init(rng),
        )
    }))
}
