//! Convolution with `groups` and `dilation` (PyTorch's `F.conv2d(...,
//! dilation, groups)`), built from the plain convolution:
//!
//! - **dilation** `d`: the kernel's taps sit `d` apart. A dilated kernel is
//!   the kernel spread out with `d − 1` zeros between its taps
//!   ([`Graph::dilate_kernel`], `[O, C, kh, kw]` → `[O, C, d(kh−1)+1,
//!   d(kw−1)+1]`), convolved as usual; its gradient is the spread-out
//!   kernel's gradient read back at the taps. The zeros cost multiplies
//!   (fine for the small dilations of image nets; a kernel that skips them
//!   would be the next step).
//! - **groups** `g`: the input's channels are cut into `g` groups of `C/g`,
//!   the output's into `g` groups of `O/g`; output group `i` sees input group
//!   `i` only, with the weight rows `i·O/g ..` (`w: [O, C/g, kh, kw]`). Each
//!   group is one plain convolution of a narrowed input, and the outputs are
//!   joined along the channels. `g = C` with `O = C` is a depthwise
//!   convolution.
//!
//! # Shapes
//! `x: [N, C, H, W]`, `w: [O, C/g, kh, kw]`, `b: [O]` → `[N, O, Ho, Wo]`,
//! `Ho = ⌊(H + 2p − d(kh−1) − 1)/s⌋ + 1`.

use crate::autograd::{Backward, Op};
use crate::{Graph, Tensor, Var};

/// The options of [`Graph::conv2d_with`], as (height, width) pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvOptions {
    /// Step between windows.
    pub stride: (usize, usize),
    /// Zeros on each side.
    pub padding: (usize, usize),
    /// Distance between a kernel's taps (1: adjacent).
    pub dilation: (usize, usize),
    /// Channel groups (1: every output sees every input channel).
    pub groups: usize,
}

impl Default for ConvOptions {
    /// PyTorch's: stride 1, no padding, dilation 1, one group.
    fn default() -> ConvOptions {
        ConvOptions {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

/// The shape of one sample's output (`[O, Ho, Wo]`) of a convolution of a
/// sample `s` (`[C, H, W]`) with weights `w` (`[O, C/groups, kh, kw]`), or
/// what is wrong.
pub fn conv2d_with_shape(
    s: &[usize],
    w: &[usize],
    b: Option<&[usize]>,
    o: ConvOptions,
) -> Result<Vec<usize>, String> {
    let [out, wc, kh, kw] = *w else {
        return Err(format!(
            "the weight must be [O, C/groups, kh, kw], got {w:?}"
        ));
    };
    let g = o.groups;
    if g == 0 || o.dilation.0 == 0 || o.dilation.1 == 0 {
        return Err("groups and dilation must be at least 1".into());
    }
    let [c, ..] = super::conv::image_shape(s, wc * g)?;
    if !c.is_multiple_of(g) || !out.is_multiple_of(g) {
        return Err(format!(
            "{g} groups must divide the input channels ({c}) and the output channels ({out})"
        ));
    }
    let span = |k: usize, d: usize| d * (k.max(1) - 1) + 1;
    let spread = [out / g, wc, span(kh, o.dilation.0), span(kw, o.dilation.1)];
    let mut one = s.to_vec();
    one[0] = c / g;
    let y = super::conv::conv2d_shape(&one, &spread, None, o.stride, o.padding)?;
    if let Some(b) = b {
        if b != [out] {
            return Err(format!("the bias must be [{out}], got {b:?}"));
        }
    }
    Ok(vec![out, y[1], y[2]])
}

/// Reads the spread-out kernel's gradient back at the taps.
struct DilateBack {
    dilation: (usize, usize),
}

impl Backward for DilateBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let s = inp[0].shape();
        let (kh, kw) = (s[2], s[3]);
        let (dh, dw) = self.dilation;
        let gw = g.shape()[3];
        let plane = g.shape()[2] * gw;
        let mut dw_ = Vec::with_capacity(inp[0].numel());
        for p in g.data().chunks(plane) {
            for i in 0..kh {
                for j in 0..kw {
                    dw_.push(p[i * dh * gw + j * dw]);
                }
            }
        }
        vec![Some(Tensor::from_vec(s.to_vec(), dw_))]
    }
}

impl Graph {
    /// The kernel `w: [O, C, kh, kw]` spread out with zeros so its taps sit
    /// `dilation` apart: `[O, C, d(kh−1)+1, d(kw−1)+1]`.
    ///
    /// ```
    /// use backprop::{Graph, Tensor};
    /// let mut g = Graph::new();
    /// let w = g.param(Tensor::from_vec(vec![1, 1, 1, 2], vec![1., 2.]));
    /// let d = g.dilate_kernel(w, (1, 3));
    /// assert_eq!(g.value(d).data(), &[1., 0., 0., 2.]);
    /// ```
    pub fn dilate_kernel(&mut self, w: Var, dilation: (usize, usize)) -> Var {
        let s = self.shape(w).to_vec();
        assert!(
            s.len() == 4 && dilation.0 > 0 && dilation.1 > 0,
            "dilate_kernel: weight {s:?} must be [O, C, kh, kw], dilation {dilation:?} at least 1"
        );
        let (kh, kw) = (s[2], s[3]);
        let (h, wd) = (dilation.0 * (kh - 1) + 1, dilation.1 * (kw - 1) + 1);
        let mut out = vec![0f32; s[0] * s[1] * h * wd];
        for (o, k) in out
            .chunks_mut(h * wd)
            .zip(self.value(w).data().chunks(kh * kw))
        {
            for i in 0..kh {
                for j in 0..kw {
                    o[i * dilation.0 * wd + j * dilation.1] = k[i * kw + j];
                }
            }
        }
        let y = Tensor::from_vec(vec![s[0], s[1], h, wd], out);
        self.push(Op::DilateKernel, y, &[w], DilateBack { dilation })
    }

    /// 2-d convolution with every option of PyTorch's `F.conv2d`: stride,
    /// zero padding, dilation and groups (see the
    /// [module docs](crate::ops::conv_groups)). With dilation 1 and one
    /// group it is [`Graph::conv2d`].
    ///
    /// ```
    /// use backprop::ops::conv_groups::ConvOptions;
    /// use backprop::{Graph, Tensor};
    /// let mut g = Graph::new();
    /// // depthwise: each of 2 channels with its own 1×1 kernel
    /// let x = g.input(Tensor::from_vec(vec![1, 2, 1, 2], vec![1., 2., 3., 4.]));
    /// let w = g.param(Tensor::from_vec(vec![2, 1, 1, 1], vec![10., -1.]));
    /// let o = ConvOptions { groups: 2, ..Default::default() };
    /// let y = g.conv2d_with(x, w, None, o);
    /// assert_eq!(g.value(y).data(), &[10., 20., -3., -4.]);
    /// ```
    pub fn conv2d_with(&mut self, x: Var, w: Var, b: Option<Var>, o: ConvOptions) -> Var {
        if o.groups == 1 && o.dilation == (1, 1) {
            return self.conv2d(x, w, b, o.stride, o.padding);
        }
        let (xs, ws) = (self.shape(x).to_vec(), self.shape(w).to_vec());
        let bs = b.map(|b| self.shape(b).to_vec());
        let shape = match xs.len() {
            4 => conv2d_with_shape(&xs[1..], &ws, bs.as_deref(), o),
            _ => Err(format!("the input must be [N, C, H, W], got {xs:?}")),
        };
        if let Err(e) = shape {
            let msg = format!("conv2d: input {xs:?}, weight {ws:?}, {o:?}: {e}");
            let instead = [
                xs.first().copied().unwrap_or(1),
                ws.first().copied().unwrap_or(1),
                1,
                1,
            ];
            return self.bad_shapes(msg, &instead);
        }
        let w = match o.dilation {
            (1, 1) => w,
            d => self.dilate_kernel(w, d),
        };
        let g = o.groups;
        if g == 1 {
            return self.conv2d(x, w, b, o.stride, o.padding);
        }
        let (cg, og) = (xs[1] / g, ws[0] / g);
        let parts: Vec<Var> = (0..g)
            .map(|i| {
                let xi = self.narrow(x, 1, i * cg, cg);
                let wi = self.narrow(w, 0, i * og, og);
                let bi = b.map(|b| self.narrow(b, 0, i * og, og));
                self.conv2d(xi, wi, bi, o.stride, o.padding)
            })
            .collect();
        self.concat(&parts, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, pseudo_random};

    fn opts(s: usize, p: usize, d: usize, g: usize) -> ConvOptions {
        ConvOptions {
            stride: (s, s),
            padding: (p, p),
            dilation: (d, d),
            groups: g,
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let cases = [
            ("groups 2", [2, 4, 6, 6], [6, 2, 3, 3], opts(1, 1, 1, 2)),
            ("depthwise", [2, 3, 5, 5], [3, 1, 3, 3], opts(1, 1, 1, 3)),
            ("dilation 2", [1, 2, 7, 7], [3, 2, 3, 3], opts(1, 2, 2, 1)),
            (
                "dilation 2, stride 2, groups 2",
                [1, 4, 9, 8],
                [4, 2, 2, 3],
                opts(2, 1, 2, 2),
            ),
        ];
        for (name, xs, ws, o) in cases {
            let ins = vec![
                pseudo_random(&xs, 1),
                pseudo_random(&ws, 2),
                pseudo_random(&[ws[0]], 3),
            ];
            check(name, &ins, |g, v| g.conv2d_with(v[0], v[1], Some(v[2]), o));
        }
    }

    #[test]
    fn one_group_without_dilation_is_the_plain_convolution() {
        let (x, w) = (
            pseudo_random(&[2, 3, 6, 6], 5),
            pseudo_random(&[4, 3, 3, 3], 6),
        );
        let mut g = Graph::new();
        let (xv, wv) = (g.input(x), g.param(w));
        let a = g.conv2d(xv, wv, None, (1, 1), (1, 1));
        let b = g.conv2d_with(xv, wv, None, opts(1, 1, 1, 1));
        assert_eq!(g.value(a).data(), g.value(b).data());
        // dilation 1 spread out is the kernel itself
        let d = g.dilate_kernel(wv, (1, 1));
        assert_eq!(g.value(d).data(), g.value(wv).data());
        let e = conv2d_with_shape(&[3, 6, 6], &[4, 1, 3, 3], None, opts(1, 1, 1, 2));
        assert!(e.unwrap_err().contains("divide the input channels (3)"));
    }
}
