//! `ResBlock`: the basic block of a ResNet (He et al. 2016; torchvision's
//! `BasicBlock`, with its parameter names): two 3×3 convolutions with batch
//! norm, and a shortcut that adds the block's input back before the last
//! ReLU — a 1×1 convolution with batch norm (`downsample`) where the block
//! changes the shape, the input itself otherwise.
//!
//! ```text
//! y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
//! ```
//!
//! The addition is where residual nets get their gradient flow: ∂C/∂x is
//! the sum of what comes back through the convolutions and ∂C/∂y itself.

use super::{BatchNorm2d, Conv2d};
use crate::nn::init::Init;
use crate::nn::module::{Module, Pass, Visitor, VisitorMut};
use crate::nn::registry::{opt_usize, Plan};
use crate::nn::spec::Item;
use crate::{Error, Result, Var};
use rand_chacha::ChaCha8Rng;

/// The shortcut's 1×1 convolution and batch norm (`downsample.0`,
/// `downsample.1`).
#[derive(Clone, Debug)]
pub struct Downsample {
    /// `downsample.0`: 1×1, the block's stride, no bias.
    pub conv: Conv2d,
    /// `downsample.1`.
    pub bn: BatchNorm2d,
}

/// A ResNet basic block: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`,
/// the shortcut a 1×1 convolution with batch norm where the shape changes.
///
/// ```
/// use backprop::nn::{Module, ResBlock};
/// let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
/// let b = ResBlock::new(16, 32, 2, &mut rng);
/// assert_eq!(b.output_shape(&[16, 32, 32]).unwrap(), vec![32, 16, 16]);
/// ```
#[derive(Clone, Debug)]
pub struct ResBlock {
    /// 3×3, the block's stride, no bias.
    pub conv1: Conv2d,
    /// After `conv1`.
    pub bn1: BatchNorm2d,
    /// 3×3, stride 1, no bias.
    pub conv2: Conv2d,
    /// After `conv2`.
    pub bn2: BatchNorm2d,
    /// The shortcut when the block changes the shape.
    pub downsample: Option<Downsample>,
    in_channels: usize,
    out_channels: usize,
    stride: usize,
}

impl ResBlock {
    /// `in_channels → out_channels`, the first convolution (and the
    /// shortcut) with `stride`; weights drawn in torchvision's order
    /// (conv1, conv2, then the shortcut's) with PyTorch's default scheme.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        rng: &mut ChaCha8Rng,
    ) -> ResBlock {
        let conv = |c: usize, k: usize, s: usize, rng: &mut ChaCha8Rng| {
            Conv2d::new(c, out_channels, k)
                .stride(s)
                .padding(k / 2)
                .bias(false)
                .init(rng)
        };
        let conv1 = conv(in_channels, 3, stride, rng);
        let conv2 = conv(out_channels, 3, 1, rng);
        let downsample = (stride != 1 || in_channels != out_channels).then(|| Downsample {
            conv: conv(in_channels, 1, stride, rng),
            bn: BatchNorm2d::new(out_channels),
        });
        ResBlock {
            conv1,
            bn1: BatchNorm2d::new(out_channels),
            conv2,
            bn2: BatchNorm2d::new(out_channels),
            downsample,
            in_channels,
            out_channels,
            stride,
        }
    }
}

impl Module for ResBlock {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let h = self.conv1.forward(p, x);
        let h = self.bn1.forward(p, h);
        let h = p.relu(h);
        let h = self.conv2.forward(p, h);
        let h = self.bn2.forward(p, h);
        let short = match &self.downsample {
            Some(d) => {
                let s = d.conv.forward(p, x);
                d.bn.forward(p, s)
            }
            None => x,
        };
        let sum = p.add(h, short);
        let y = p.relu(sum);
        p.layer_output(self, y);
        y
    }

    fn visit<'m>(&'m self, v: &mut Visitor<'_, 'm>) {
        v.module("conv1", &self.conv1);
        v.module("bn1", &self.bn1);
        v.module("conv2", &self.conv2);
        v.module("bn2", &self.bn2);
        if let Some(d) = &self.downsample {
            v.module("downsample.0", &d.conv);
            v.module("downsample.1", &d.bn);
        }
    }

    fn visit_mut(&mut self, v: &mut VisitorMut<'_>) {
        v.module("conv1", &mut self.conv1);
        v.module("bn1", &mut self.bn1);
        v.module("conv2", &mut self.conv2);
        v.module("bn2", &mut self.bn2);
        if let Some(d) = &mut self.downsample {
            v.module("downsample.0", &mut d.conv);
            v.module("downsample.1", &mut d.bn);
        }
    }

    fn spec(&self) -> Option<String> {
        let mut s = format!("resblock({},{}", self.in_channels, self.out_channels);
        if self.stride != 1 {
            s += &format!(",stride={}", self.stride);
        }
        Some(s + ")")
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let a = self.conv1.output_shape(s)?;
        let b = self.conv2.output_shape(&a)?;
        let c = match &self.downsample {
            Some(d) => d.conv.output_shape(s)?,
            None => s.to_vec(),
        };
        if b != c {
            return Err(Error::Spec(format!(
                "resblock({},{}): the convolutions give {b:?} but the shortcut {c:?}",
                self.in_channels, self.out_channels
            )));
        }
        Ok(b)
    }
}

/// `resblock(in_channels,out_channels,stride=1)`.
pub(crate) fn plan_resblock(item: &Item, _init: Init) -> Result<Plan> {
    let usage = "resblock(in_channels,out_channels,stride=1)";
    item.expect_args(3, &["in_channels", "out_channels", "stride"], usage)?;
    let c = item.usize_arg(0, "in_channels", "in_channels")?;
    let o = item.usize_arg(1, "out_channels", "out_channels")?;
    let stride = opt_usize(item, 2, "stride", 1, 1)?;
    let shortcut = if stride != 1 || c != o {
        c * o + 2 * o
    } else {
        0
    };
    let n = 9 * c * o + 9 * o * o + 4 * o + shortcut;
    Ok(Plan::new(n, move |rng| {
        Box::new(ResBlock::new(c, o, stride, rng))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Init, ModuleExt, Sequential};
    use rand::SeedableRng;

    #[test]
    fn names_shapes_and_counts_follow_torchvision() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let b = ResBlock::new(4, 8, 2, &mut rng);
        let names: Vec<String> = b.state_dict().into_iter().map(|(n, _)| n).collect();
        for n in [
            "conv1.weight",
            "bn1.running_mean",
            "conv2.weight",
            "downsample.0.weight",
            "downsample.1.bias",
        ] {
            assert!(names.iter().any(|m| m == n), "{n} not in {names:?}");
        }
        let line = "resblock(4,8,stride=2),resblock(8,8)";
        let m = Sequential::parse(line, Init::Default, &mut rng).unwrap();
        assert_eq!(m.describe().replace(' ', ""), line);
        assert_eq!(m.output_shape(&[4, 8, 8]).unwrap(), vec![8, 4, 4]);
        // conv1 4·8·9, conv2 8·8·9, 1×1 shortcut 4·8, three batch norms of 8 (weight, bias);
        // then 2·8·8·9 and two batch norms
        assert_eq!(m.num_parameters(), 288 + 576 + 32 + 48 + 1152 + 32);
        // the identity shortcut: no downsample
        assert!(!m
            .state_dict()
            .iter()
            .any(|(n, _)| n.starts_with("1.downsample")));
    }
}
