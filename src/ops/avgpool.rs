//! 2-d average pooling, as PyTorch's `F.avg_pool2d` (zero padding counted
//! in the divisor, `count_include_pad=True`; `ceil_mode=False`) and
//! `F.adaptive_avg_pool2d` (windows chosen to cover the input in the
//! output's size; `output 1×1` is global average pooling).
//!
//! # Shapes
//! `x: [N, C, H, W]` → `y: [N, C, Ho, Wo]`. Fixed windows: `Ho = ⌊(H + 2p −
//! k)/s⌋ + 1` as max pooling. Adaptive: output row `i` averages input rows
//! `⌊i·H/Ho⌋ .. ⌈(i+1)·H/Ho⌉` (so do the columns).
//!
//! # Forward and backward
//! `y[i,j] = Σ_window x / d`, with `d` the kernel's area (fixed: padded
//! positions count as zeros) or the window's (adaptive). The backward hands
//! each output's gradient, divided by `d`, to every input of its window:
//! `∂x[a,b] = Σ_{windows ∋ (a,b)} g[i,j] / d`. Every window is the product
//! of a row range and a column range, which is how they are stored.

use crate::autograd::{Backward, Op};
use crate::{Graph, Tensor, Var};

/// The windows of one pooling: per output row and column, the input range
/// it reads (clipped to the input), and each output's divisor.
#[derive(Clone, Debug)]
struct Windows {
    rows: Vec<(usize, usize)>,
    cols: Vec<(usize, usize)>,
    /// The kernel's area (fixed windows), or `None`: each window's own.
    area: Option<f32>,
    h: usize,
    w: usize,
}

impl Windows {
    /// Fixed windows of `kernel`, `stride`, `padding` along an axis of `n`.
    fn fixed_axis(n: usize, k: usize, s: usize, p: usize) -> Vec<(usize, usize)> {
        let out = super::pool::pool_out_size(n, k, s, p).unwrap_or(0);
        (0..out)
            .map(|i| {
                let start = (i * s) as isize - p as isize;
                let end = (start + k as isize).min(n as isize);
                (start.max(0) as usize, end.max(0) as usize)
            })
            .collect()
    }

    /// Adaptive windows of an axis of `n` into `out`.
    fn adaptive_axis(n: usize, out: usize) -> Vec<(usize, usize)> {
        (0..out)
            .map(|i| ((i * n) / out, ((i + 1) * n).div_ceil(out)))
            .collect()
    }

    fn divisor(&self, r: (usize, usize), c: (usize, usize)) -> f32 {
        self.area
            .unwrap_or(((r.1 - r.0) * (c.1 - c.0)).max(1) as f32)
    }

    /// `y` of the planes `x` (`planes × h × w`).
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let (ho, wo) = (self.rows.len(), self.cols.len());
        let mut y = Vec::with_capacity(x.len() / (self.h * self.w) * ho * wo);
        for plane in x.chunks(self.h * self.w) {
            for &r in &self.rows {
                for &c in &self.cols {
                    let mut s = 0f32;
                    for row in plane[r.0 * self.w..r.1 * self.w].chunks(self.w) {
                        s += row[c.0..c.1].iter().sum::<f32>();
                    }
                    y.push(s / self.divisor(r, c));
                }
            }
        }
        y
    }

    /// `∂x` of the planes' output gradients `g`.
    fn backward(&self, g: &[f32], planes: usize) -> Vec<f32> {
        let (ho, wo) = (self.rows.len(), self.cols.len());
        let mut dx = vec![0f32; planes * self.h * self.w];
        for (plane, gp) in dx.chunks_mut(self.h * self.w).zip(g.chunks(ho * wo)) {
            for (i, &r) in self.rows.iter().enumerate() {
                for (j, &c) in self.cols.iter().enumerate() {
                    let v = gp[i * wo + j] / self.divisor(r, c);
                    for row in plane[r.0 * self.w..r.1 * self.w].chunks_mut(self.w) {
                        row[c.0..c.1].iter_mut().for_each(|d| *d += v);
                    }
                }
            }
        }
        dx
    }
}

struct AvgPoolBack {
    win: Windows,
}

impl Backward for AvgPoolBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let s = inp[0].shape();
        let dx = self.win.backward(g.data(), s[0] * s[1]);
        vec![Some(Tensor::from_vec(s.to_vec(), dx))]
    }
}

/// The output shape of adaptive pooling of one sample `s` (`[C, H, W]`)
/// to `out`, or what is wrong.
pub fn adaptive_avg_pool2d_shape(s: &[usize], out: (usize, usize)) -> Result<Vec<usize>, String> {
    let [c, h, w] = super::conv::image_shape(s, 0)?;
    if out.0 == 0 || out.1 == 0 || h == 0 || w == 0 {
        return Err(format!(
            "the output size {}×{} and the input {} must have no empty axis",
            out.0,
            out.1,
            super::shape::fmt(s)
        ));
    }
    Ok(vec![c, out.0, out.1])
}

impl Graph {
    /// 2-d average pooling of `x: [N, C, H, W]` with `kernel`, `stride` and
    /// zero `padding` (counted in the divisor, as PyTorch's default), given
    /// as (height, width) → `[N, C, Ho, Wo]`; see the
    /// [module docs](crate::ops::avgpool).
    ///
    /// ```
    /// use backprop::{Graph, Tensor};
    /// let mut g = Graph::new();
    /// let x = g.input(Tensor::from_vec(vec![1, 1, 2, 4], vec![1., 5., 2., 0., 3., 3., 7., 7.]));
    /// let y = g.avg_pool2d(x, (2, 2), (2, 2), (0, 0));
    /// assert_eq!(g.value(y).data(), &[3., 4.]);
    /// ```
    pub fn avg_pool2d(
        &mut self,
        x: Var,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Var {
        if let Some(bad) = self.pool_shapes_refused("avg_pool2d", x, kernel, stride, padding) {
            return bad;
        }
        let xs = self.shape(x).to_vec();
        let win = Windows {
            rows: Windows::fixed_axis(xs[2], kernel.0, stride.0, padding.0),
            cols: Windows::fixed_axis(xs[3], kernel.1, stride.1, padding.1),
            area: Some((kernel.0 * kernel.1) as f32),
            h: xs[2],
            w: xs[3],
        };
        self.avg_windows(x, &xs, win)
    }

    /// Adaptive average pooling of `x: [N, C, H, W]` to `[N, C, out.0,
    /// out.1]` (PyTorch's `F.adaptive_avg_pool2d`); `(1, 1)` averages each
    /// channel's whole plane.
    ///
    /// ```
    /// use backprop::{Graph, Tensor};
    /// let mut g = Graph::new();
    /// let x = g.input(Tensor::from_vec(vec![1, 2, 1, 3], vec![1., 2., 3., 4., 4., 7.]));
    /// let y = g.adaptive_avg_pool2d(x, (1, 1));
    /// assert_eq!(g.value(y).data(), &[2., 5.]);
    /// ```
    pub fn adaptive_avg_pool2d(&mut self, x: Var, out: (usize, usize)) -> Var {
        let xs = self.shape(x).to_vec();
        let ok = match xs.len() {
            4 => adaptive_avg_pool2d_shape(&xs[1..], out),
            _ => Err(format!("the input must be [N, C, H, W], got {xs:?}")),
        };
        if let Err(e) = ok {
            let msg = format!("adaptive_avg_pool2d: input {xs:?}, output {out:?}: {e}");
            let instead = [
                xs.first().copied().unwrap_or(1),
                1,
                out.0.max(1),
                out.1.max(1),
            ];
            return self.bad_shapes(msg, &instead);
        }
        let win = Windows {
            rows: Windows::adaptive_axis(xs[2], out.0),
            cols: Windows::adaptive_axis(xs[3], out.1),
            area: None,
            h: xs[2],
            w: xs[3],
        };
        self.avg_windows(x, &xs, win)
    }

    fn avg_windows(&mut self, x: Var, xs: &[usize], win: Windows) -> Var {
        let y = win.forward(self.value(x).data());
        let shape = vec![xs[0], xs[1], win.rows.len(), win.cols.len()];
        self.push(
            Op::AvgPool2d,
            Tensor::from_vec(shape, y),
            &[x],
            AvgPoolBack { win },
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{check, pseudo_random};

    #[test]
    fn gradients_match_finite_differences() {
        let x = || vec![pseudo_random(&[2, 3, 7, 6], 4)];
        check("avg 2 stride 2", &x(), |g, v| {
            g.avg_pool2d(v[0], (2, 2), (2, 2), (0, 0))
        });
        check("avg 3 stride 2 pad 1", &x(), |g, v| {
            g.avg_pool2d(v[0], (3, 3), (2, 2), (1, 1))
        });
        check("avg 3x2 stride 1", &x(), |g, v| {
            g.avg_pool2d(v[0], (3, 2), (1, 1), (0, 0))
        });
        check("adaptive 1x1", &x(), |g, v| {
            g.adaptive_avg_pool2d(v[0], (1, 1))
        });
        check("adaptive 3x4", &x(), |g, v| {
            g.adaptive_avg_pool2d(v[0], (3, 4))
        });
        check("adaptive 5x5 (overlapping)", &x(), |g, v| {
            g.adaptive_avg_pool2d(v[0], (5, 5))
        });
    }

    #[test]
    fn padding_counts_in_the_divisor_and_adaptive_windows_overlap() {
        let mut g = crate::Graph::new();
        let x = g.input(crate::Tensor::from_vec(
            vec![1, 1, 2, 2],
            vec![4., 4., 4., 4.],
        ));
        // 3×3 windows, padding 1: the corner window holds 4 values of 4 over 9 places
        let y = g.avg_pool2d(x, (3, 3), (1, 1), (1, 1));
        assert!(g
            .value(y)
            .data()
            .iter()
            .all(|&v| (v - 16.0 / 9.0).abs() < 1e-6));
        // 5 → 3 adaptive: rows 0..2, 1..4, 3..5
        let v = g.input(crate::Tensor::from_vec(
            vec![1, 1, 1, 5],
            vec![0., 3., 6., 9., 12.],
        ));
        let y = g.adaptive_avg_pool2d(v, (1, 3));
        assert_eq!(g.value(y).data(), &[1.5, 6.0, 10.5]);
    }
}
