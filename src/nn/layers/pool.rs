//! The pooling layers: `MaxPool2d` (`nn.MaxPool2d`), `AvgPool2d`
//! (`nn.AvgPool2d`) and `AdaptiveAvgPool2d` (`nn.AdaptiveAvgPool2d`,
//! global pooling at `1×1`). The two fixed-window pools share their
//! window ([`Window`]): its options, its model-line text and its shape.

use crate::nn::init::Init;
use crate::nn::module::{Module, Pass};
use crate::nn::registry::{opt_usize, Plan};
use crate::nn::spec::Item;
use crate::{Error, Result, Var};

/// A square pooling window: its size, the step between windows and the
/// padding on every side (at most half the kernel).
#[derive(Clone, Copy, Debug)]
struct Window {
    kernel_size: usize,
    stride: usize,
    padding: usize,
}

impl Window {
    /// PyTorch's defaults: stride = kernel, no padding.
    fn new(kernel_size: usize) -> Window {
        Window {
            kernel_size,
            stride: kernel_size,
            padding: 0,
        }
    }

    /// `(kernel, stride, padding)` as the ops take them, (height, width).
    fn pairs(&self) -> [(usize, usize); 3] {
        let (k, s, p) = (self.kernel_size, self.stride, self.padding);
        [(k, k), (s, s), (p, p)]
    }

    /// `name(k[,stride=s][,padding=p])`.
    fn spec(&self, name: &str) -> String {
        let mut s = format!("{name}({}", self.kernel_size);
        if self.stride != self.kernel_size {
            s += &format!(",stride={}", self.stride);
        }
        if self.padding != 0 {
            s += &format!(",padding={}", self.padding);
        }
        s + ")"
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let [k, st, pd] = self.pairs();
        crate::ops::pool::max_pool2d_shape(s, k, st, pd).map_err(Error::Spec)
    }

    /// `name(kernel_size,stride=kernel_size,padding=0)` read from `item`.
    fn plan(item: &Item, name: &str) -> Result<Window> {
        let usage = format!("{name}(kernel_size,stride=kernel_size,padding=0)");
        item.expect_args(3, &["kernel_size", "stride", "padding"], &usage)?;
        let k = item.usize_arg(0, "kernel_size", "kernel_size")?;
        let stride = opt_usize(item, 1, "stride", k, 1)?;
        let padding = opt_usize(item, 2, "padding", 0, 0)?;
        if padding * 2 > k {
            return Err(item.err(format!(
                "padding {padding} must be at most half the kernel size {k}"
            )));
        }
        Ok(Window {
            kernel_size: k,
            stride,
            padding,
        })
    }
}

/// The max of each `k × k` window (`nn.MaxPool2d`); the gradient goes to
/// the arg-max (the first one on ties, as PyTorch).
///
/// ```
/// use backprop::nn::{MaxPool2d, Module};
/// assert_eq!(MaxPool2d::new(2).output_shape(&[6, 28, 28]).unwrap(), vec![6, 14, 14]);
/// ```
#[derive(Clone, Debug)]
pub struct MaxPool2d {
    w: Window,
}

/// The mean of each `k × k` window (`nn.AvgPool2d`, zero padding counted in
/// the divisor as PyTorch's default).
///
/// ```
/// use backprop::nn::{AvgPool2d, Module};
/// assert_eq!(AvgPool2d::new(2).output_shape(&[6, 28, 28]).unwrap(), vec![6, 14, 14]);
/// ```
#[derive(Clone, Debug)]
pub struct AvgPool2d {
    w: Window,
}

/// The builder of a fixed-window pool, the same for both.
macro_rules! window_builder {
    ($t:ident) => {
        impl $t {
            /// Windows of `kernel_size`, stride `kernel_size`, no padding
            /// (PyTorch's defaults).
            pub fn new(kernel_size: usize) -> $t {
                $t {
                    w: Window::new(kernel_size),
                }
            }

            /// Step between windows (default: the kernel size).
            pub fn stride(mut self, s: usize) -> Self {
                self.w.stride = s;
                self
            }

            /// Padding on every side, at most half the kernel size (default
            /// 0; −∞ for max pooling, zeros for average pooling).
            pub fn padding(mut self, p: usize) -> Self {
                self.w.padding = p;
                self
            }
        }
    };
}
window_builder!(MaxPool2d);
window_builder!(AvgPool2d);

impl Module for MaxPool2d {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let [k, s, pd] = self.w.pairs();
        let y = p.max_pool2d(x, k, s, pd);
        p.layer_output(self, y);
        y
    }

    fn spec(&self) -> Option<String> {
        Some(self.w.spec("maxpool2d"))
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        self.w.output_shape(s)
    }
}

impl Module for AvgPool2d {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let [k, s, pd] = self.w.pairs();
        let y = p.avg_pool2d(x, k, s, pd);
        p.layer_output(self, y);
        y
    }

    fn spec(&self) -> Option<String> {
        Some(self.w.spec("avgpool2d"))
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        self.w.output_shape(s)
    }
}

/// The mean over windows that cover the input in `h × w` outputs
/// (`nn.AdaptiveAvgPool2d`): `1×1` averages each channel's whole plane
/// (global average pooling), whatever the input's size.
///
/// ```
/// use backprop::nn::{AdaptiveAvgPool2d, Module};
/// assert_eq!(AdaptiveAvgPool2d::new(1, 1).output_shape(&[64, 8, 8]).unwrap(), vec![64, 1, 1]);
/// ```
#[derive(Clone, Debug)]
pub struct AdaptiveAvgPool2d {
    out: (usize, usize),
}

impl AdaptiveAvgPool2d {
    /// Outputs of `h × w` per channel.
    pub fn new(h: usize, w: usize) -> AdaptiveAvgPool2d {
        AdaptiveAvgPool2d { out: (h, w) }
    }
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let y = p.adaptive_avg_pool2d(x, self.out);
        p.layer_output(self, y);
        y
    }

    fn spec(&self) -> Option<String> {
        Some(match self.out {
            (h, w) if h == w => format!("adaptiveavgpool2d({h})"),
            (h, w) => format!("adaptiveavgpool2d({h},{w})"),
        })
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        crate::ops::avgpool::adaptive_avg_pool2d_shape(s, self.out).map_err(Error::Spec)
    }
}

/// `maxpool2d(kernel_size,stride=kernel_size,padding=0)`.
pub(crate) fn plan_maxpool2d(item: &Item, _init: Init) -> Result<Plan> {
    Ok(Plan::ready(MaxPool2d {
        w: Window::plan(item, "maxpool2d")?,
    }))
}

/// `avgpool2d(kernel_size,stride=kernel_size,padding=0)`.
pub(crate) fn plan_avgpool2d(item: &Item, _init: Init) -> Result<Plan> {
    Ok(Plan::ready(AvgPool2d {
        w: Window::plan(item, "avgpool2d")?,
    }))
}

/// `adaptiveavgpool2d(output_size)` or `adaptiveavgpool2d(h,w)`.
pub(crate) fn plan_adaptiveavgpool2d(item: &Item, _init: Init) -> Result<Plan> {
    item.expect_args(2, &["output_size"], "adaptiveavgpool2d(1)")?;
    let h = item.usize_arg(0, "output_size", "output_size")?;
    let w = opt_usize(item, 1, "w", h, 1)?;
    if h == 0 {
        return Err(item.err("the output size must be at least 1"));
    }
    Ok(Plan::ready(AdaptiveAvgPool2d::new(h, w)))
}

#[cfg(test)]
mod tests {
    use crate::nn::{Init, Module, ModuleExt, Sequential};
    use crate::Tensor;

    #[test]
    fn the_image_layers_parse_describe_and_shape_as_pytorch() {
        let line =
            "conv2d(4,8,3,padding=2,dilation=2,groups=4),dropout2d(0.2),avgpool2d(2),identity,\
                    adaptiveavgpool2d(1),flatten,linear(8,3)";
        let mut rng = rand::SeedableRng::seed_from_u64(0);
        let m = Sequential::parse(line, Init::Default, &mut rng).unwrap();
        assert_eq!(m.describe().replace(' ', ""), line);
        assert_eq!(m.output_shape(&[4, 16, 16]).unwrap(), vec![3]);
        let sd = m.state_dict();
        assert_eq!(sd[0].0, "0.weight");
        assert_eq!(sd[0].1.shape(), &[8, 1, 3, 3]); // [O, C/groups, k, k]
                                                    // PyTorch's bound for this weight: 1/√(fan_in) with fan_in = C/groups·k² = 9
        assert!(sd[0].1.data().iter().all(|v| v.abs() <= 1.0 / 3.0));
        assert_eq!(m.num_parameters(), 8 * 9 + 8 + 8 * 3 + 3);
        let y = m.predict(&Tensor::zeros(&[2, 4, 16, 16]));
        assert_eq!(y.shape(), &[2, 3]);
        let bad = Sequential::parse("conv2d(3,8,3,groups=2)", Init::Default, &mut rng).unwrap_err();
        assert!(
            bad.to_string()
                .contains("2 groups must divide in_channels (3)"),
            "{bad}"
        );
    }
}
