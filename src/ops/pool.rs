//! 2-d max pooling, as PyTorch's `F.max_pool2d` (dilation 1, `ceil_mode=False`).
//!
//! # Shapes
//! `x: [N, C, H, W]` → `y: [N, C, Ho, Wo]` with `Ho = ⌊(H + 2·ph − kh)/sh⌋ + 1`
//! and `Wo = ⌊(W + 2·pw − kw)/sw⌋ + 1` (see [`pool_out_size`]). The padding is
//! implicit −∞: it never wins a window. As in PyTorch it may be at most half
//! the kernel (`p ≤ k/2`), so every window holds at least one real element.
//!
//! # Forward and backward
//! The forward records, for every output, the flat index (within its `H×W`
//! plane) of the element its window picked. The backward adds each output's
//! gradient to that single element; an element picked by several overlapping
//! windows receives the sum of their gradients, every other element gets 0.
//!
//! # Ties and NaN
//! As PyTorch's CPU kernel: the window is scanned row by row, starting from a
//! maximum of −∞, and a value replaces the current maximum only when
//! `v > max || v.is_nan()`. So among equal maxima the *first* in scan order
//! wins (and takes the whole gradient), and a NaN in the window propagates to
//! the output (the last NaN of the window is the one picked).
//!
//! The loops (chunks of planes over the thread team, a fast path for 2×2
//! windows with stride 2, AVX2) are in `tensor::pool`
//! (src/tensor/pool.rs); results do not depend on the thread count.

use crate::autograd::{Backward, Op};
use crate::cpu::pool::{max_pool, max_pool_backward, PoolGeom};
use crate::cpu::threads;
use crate::{Graph, Tensor, Var};

/// The output length of a max pooling along one axis:
/// `⌊(input + 2·padding − kernel)/stride⌋ + 1`, or `None` when the stride or
/// kernel is 0, the padding is more than half the kernel, or the kernel is
/// larger than the padded input.
///
/// ```
/// use backprop::ops::pool::pool_out_size;
/// assert_eq!(pool_out_size(28, 2, 2, 0), Some(14));
/// assert_eq!(pool_out_size(5, 3, 2, 1), Some(3));
/// assert_eq!(pool_out_size(5, 3, 2, 2), None); // padding > kernel/2
/// assert_eq!(pool_out_size(1, 2, 2, 0), None);
/// ```
pub fn pool_out_size(input: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    if padding > kernel / 2 {
        return None;
    }
    super::conv::conv_out_size(input, kernel, stride, padding)
}

/// The shape of one sample's output of max pooling one sample `s`
/// (`[C, H, W]`) with `kernel`, `stride` and `padding`: `[C, Ho, Wo]`, or
/// what is wrong. The op and the [`MaxPool2d`](crate::nn::MaxPool2d) layer
/// both ask it.
pub fn max_pool2d_shape(
    s: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Vec<usize>, String> {
    if kernel.0 == 0 || kernel.1 == 0 || stride.0 == 0 || stride.1 == 0 {
        return Err(format!(
            "kernel {kernel:?} and stride {stride:?} must be positive"
        ));
    }
    if padding.0 * 2 > kernel.0 || padding.1 * 2 > kernel.1 {
        return Err(format!(
            "padding {} must be at most half the kernel size {}",
            padding.0.max(padding.1),
            kernel.0.min(kernel.1)
        ));
    }
    let [c, h, w] = crate::ops::conv::image_shape(s, 0)?;
    if c == 0 || h == 0 || w == 0 {
        return Err(format!(
            "the input {} has an empty axis",
            crate::ops::shape::fmt(s)
        ));
    }
    if h.saturating_mul(w) > u32::MAX as usize {
        return Err(format!("planes of {h}×{w} are too large"));
    }
    match (
        pool_out_size(h, kernel.0, stride.0, padding.0),
        pool_out_size(w, kernel.1, stride.1, padding.1),
    ) {
        (Some(ho), Some(wo)) => Ok(vec![c, ho, wo]),
        _ => Err(format!(
            "window {}×{} is larger than the padded input {}×{} (input {})",
            kernel.0,
            kernel.1,
            h + 2 * padding.0,
            w + 2 * padding.1,
            crate::ops::shape::fmt(s)
        )),
    }
}

/// The sizes of one pooling of `xs`, checked: panics naming the shapes
/// when the input is not `[N, C, H, W]`, the kernel does not fit or the
/// padding exceeds half the kernel.
fn geom(
    xs: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> PoolGeom {
    assert!(
        xs.len() == 4 && xs[1..].iter().all(|&d| d > 0),
        "max_pool2d: input {xs:?} must be [N, C, H, W] with C, H, W > 0"
    );
    assert!(
        kernel.0 > 0 && kernel.1 > 0 && stride.0 > 0 && stride.1 > 0,
        "max_pool2d: kernel {kernel:?} and stride {stride:?} must be positive (input {xs:?})"
    );
    assert!(
        padding.0 <= kernel.0 / 2 && padding.1 <= kernel.1 / 2,
        "max_pool2d: padding {padding:?} must be at most half the kernel {kernel:?} (input {xs:?})"
    );
    let (Some(ho), Some(wo)) = (
        pool_out_size(xs[2], kernel.0, stride.0, padding.0),
        pool_out_size(xs[3], kernel.1, stride.1, padding.1),
    ) else {
        panic!("max_pool2d: kernel {kernel:?} does not fit input {xs:?} with padding {padding:?}")
    };
    assert!(
        xs[2] * xs[3] <= u32::MAX as usize,
        "max_pool2d: input {xs:?} has planes too large for u32 indices"
    );
    PoolGeom {
        planes: xs[0] * xs[1],
        h: xs[2],
        w: xs[3],
        kh: kernel.0,
        kw: kernel.1,
        sh: stride.0,
        sw: stride.1,
        ph: padding.0,
        pw: padding.1,
        ho,
        wo,
    }
}

struct MaxPool2dBack {
    geom: PoolGeom,
    /// The picked flat index within its plane, for every output.
    arg: Vec<u32>,
}

impl Backward for MaxPool2dBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let dx = max_pool_backward(&self.geom, &self.arg, g.data(), threads());
        vec![Some(Tensor::from_vec(inp[0].shape().to_vec(), dx))]
    }
}

impl Graph {
    /// A node standing for a pooling whose shapes do not fit (see
    /// [`max_pool2d_shape`]: the error is recorded on the graph), or
    /// `None` when they fit. Both pools ask it.
    pub(crate) fn pool_shapes_refused(
        &mut self,
        op: &str,
        x: Var,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Option<Var> {
        let xs = self.shape(x).to_vec();
        let out = match xs.len() {
            4 => max_pool2d_shape(&xs[1..], kernel, stride, padding),
            _ => Err(format!("the input must be [N, C, H, W], got {xs:?}")),
        };
        let e = out.err()?;
        let msg = format!(
            "{op}: input {xs:?}, kernel {kernel:?}, stride {stride:?}, padding {padding:?}: {e}"
        );
        let instead = [xs.first().copied().unwrap_or(1), 1, 1, 1];
        Some(self.bad_shapes(msg, &instead))
    }

    /// 2-d max pooling of `x: [N, C, H, W]` with `kernel`, `stride` and
    /// implicit −∞ `padding` given as (height, width) → `[N, C, Ho, Wo]`
    /// (see the [module docs](crate::ops::pool): PyTorch's semantics, first
    /// maximum wins ties).
    ///
    /// Panics, naming the shapes, when the kernel does not fit or the padding
    /// exceeds half the kernel (the model builder checks earlier with
    /// [`pool_out_size`]).
    ///
    /// ```
    /// use backprop::{Graph, Tensor};
    /// let mut g = Graph::new();
    /// let x = g.input(Tensor::from_vec(vec![1, 1, 2, 4], vec![1., 5., 2., 0., 3., 4., 7., 6.]));
    /// let y = g.max_pool2d(x, (2, 2), (2, 2), (0, 0));
    /// assert_eq!(g.value(y).data(), &[5., 7.]);
    /// ```
    pub fn max_pool2d(
        &mut self,
        x: Var,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Var {
        if let Some(bad) = self.pool_shapes_refused("max_pool2d", x, kernel, stride, padding) {
            return bad;
        }
        let xs = self.shape(x);
        let geom = geom(xs, kernel, stride, padding);
        let shape = vec![xs[0], xs[1], geom.ho, geom.wo];
        let (y, arg) = max_pool(&geom, self.value(x).data(), threads());
        let y = Tensor::from_vec(shape, y);
        self.push(Op::MaxPool2d, y, &[x], MaxPool2dBack { geom, arg })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, pseudo_random};

    /// Distinct values 0.03 apart (a pseudo-random permutation), so that no
    /// finite-difference step (≤ 0.012 for |x| ≤ 1.2) changes a window's pick.
    fn distinct(shape: &[usize], seed: u64) -> Tensor {
        let r = pseudo_random(shape, seed);
        let n = r.numel();
        assert!(n <= 80, "distinct: at most 80 values");
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| r.data()[a].total_cmp(&r.data()[b]));
        let mut v = vec![0.0; n];
        for (rank, &i) in order.iter().enumerate() {
            v[i] = (rank as f32 - n as f32 / 2.0) * 0.03;
        }
        Tensor::from_vec(shape.to_vec(), v)
    }

    fn pool_check(
        name: &str,
        xs: &[usize],
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) {
        check(name, &[distinct(xs, 1)], |g, v| {
            g.max_pool2d(v[0], kernel, stride, padding)
        });
    }

    /// ∂x for a given ∂y.
    fn grad(
        x: Tensor,
        dy: &[f32],
        k: (usize, usize),
        s: (usize, usize),
        p: (usize, usize),
    ) -> Tensor {
        let mut g = Graph::new();
        let xv = g.param(x);
        let y = g.max_pool2d(xv, k, s, p);
        let seed = Tensor::from_vec(g.shape(y).to_vec(), dy.to_vec());
        g.backward_with(y, seed).get(xv).unwrap().clone()
    }

    #[test]
    fn gradients_match_finite_differences() {
        pool_check("pool 2 stride 2", &[1, 2, 6, 6], (2, 2), (2, 2), (0, 0));
        pool_check("pool 3 stride 1", &[1, 1, 8, 9], (3, 3), (1, 1), (0, 0));
        pool_check(
            "pool 3 stride 2 pad 1",
            &[1, 1, 7, 7],
            (3, 3),
            (2, 2),
            (1, 1),
        );
        pool_check("pool 2x3 pad 1", &[2, 1, 5, 6], (2, 3), (1, 2), (1, 1));
        pool_check(
            "pool 2 stride 1 pad 1",
            &[2, 2, 4, 5],
            (2, 2),
            (1, 1),
            (1, 1),
        );
        pool_check("pool uneven", &[1, 3, 5, 5], (2, 2), (2, 2), (0, 0));
    }

    #[test]
    fn value_and_gradient_hand_computed() {
        let x = Tensor::from_vec(
            vec![1, 1, 4, 4],
            vec![
                1., 3., 2., 0., //
                4., -1., 5., 6., //
                0., 2., -3., 1., //
                7., 1., 1., 8.,
            ],
        );
        let mut g = Graph::new();
        let xv = g.input(x.clone());
        let y = g.max_pool2d(xv, (2, 2), (2, 2), (0, 0));
        assert_eq!(g.shape(y), &[1, 1, 2, 2]);
        assert_eq!(g.value(y).data(), &[4., 6., 7., 8.]);
        let dx = grad(x, &[1., 2., 3., 4.], (2, 2), (2, 2), (0, 0));
        assert_eq!(
            dx.data(),
            &[
                0., 0., 0., 0., //
                1., 0., 0., 2., //
                0., 0., 0., 0., //
                3., 0., 0., 4.,
            ]
        );
    }

    #[test]
    fn ties_go_to_the_first_maximum() {
        // One window of equal values: everything to its first element.
        let dx = grad(
            Tensor::full(&[1, 1, 2, 2], 1.0),
            &[5.],
            (2, 2),
            (2, 2),
            (0, 0),
        );
        assert_eq!(dx.data(), &[5., 0., 0., 0.]);
        // A tie after a smaller value: the first of the two maxima.
        let x = Tensor::from_vec(vec![1, 1, 2, 2], vec![0., 5., 5., 1.]);
        assert_eq!(
            grad(x, &[1.], (2, 2), (2, 2), (0, 0)).data(),
            &[0., 1., 0., 0.]
        );
        // Overlapping windows on a constant: each window's own top-left element.
        let dx = grad(
            Tensor::full(&[1, 1, 3, 3], 2.0),
            &[1., 2., 3., 4.],
            (2, 2),
            (1, 1),
            (0, 0),
        );
        assert_eq!(dx.data(), &[1., 2., 0., 3., 4., 0., 0., 0., 0.]);
        // Padding never wins, even against −∞.
        let x = Tensor::full(&[1, 1, 2, 2], f32::NEG_INFINITY);
        let dx = grad(x, &[1., 2., 3., 4.], (3, 3), (1, 1), (1, 1));
        assert_eq!(dx.data(), &[1. + 2. + 3. + 4., 0., 0., 0.]);
    }

    #[test]
    fn nan_propagates_and_takes_the_gradient() {
        let x = Tensor::from_vec(vec![1, 1, 2, 2], vec![1., f32::NAN, 9., f32::NAN]);
        let mut g = Graph::new();
        let xv = g.input(x.clone());
        let y = g.max_pool2d(xv, (2, 2), (2, 2), (0, 0));
        assert!(g.value(y).data()[0].is_nan());
        // The last NaN in scan order is the one picked.
        assert_eq!(
            grad(x, &[1.], (2, 2), (2, 2), (0, 0)).data(),
            &[0., 0., 0., 1.]
        );
    }

    #[test]
    fn overlapping_windows_sum_their_gradients() {
        // Kernel 3, stride 2 on 5×5: windows start at rows/columns 0 and 2.
        let mut v: Vec<f32> = (0..25).map(|i| i as f32 * 0.01).collect();
        v[2] = 10.0; // (0, 2): in windows (0, 0) and (0, 1)
        v[12] = 5.0; // (2, 2): in all four, the max of the two lower ones
        let x = Tensor::from_vec(vec![1, 1, 5, 5], v);
        let mut g = Graph::new();
        let xv = g.input(x.clone());
        let y = g.max_pool2d(xv, (3, 3), (2, 2), (0, 0));
        assert_eq!(g.value(y).data(), &[10., 10., 5., 5.]);
        let dx = grad(x, &[1., 2., 4., 8.], (3, 3), (2, 2), (0, 0));
        let mut want = [0.0; 25];
        want[2] = 1. + 2.;
        want[12] = 4. + 8.;
        assert_eq!(dx.data(), &want[..]);
    }

    #[test]
    fn padding_is_minus_infinity() {
        // All negative: zero padding would win, −∞ padding does not.
        let x = Tensor::from_vec(vec![1, 1, 2, 2], vec![-1., -2., -3., -4.]);
        let mut g = Graph::new();
        let xv = g.input(x.clone());
        let y = g.max_pool2d(xv, (2, 2), (2, 2), (1, 1));
        assert_eq!(g.value(y).data(), &[-1., -2., -3., -4.]);
        let y = g.max_pool2d(xv, (3, 3), (1, 1), (1, 1));
        assert_eq!(g.value(y).data(), &[-1., -1., -1., -1.]);
        let dx = grad(x, &[1., 2., 3., 4.], (3, 3), (1, 1), (1, 1));
        assert_eq!(dx.data(), &[10., 0., 0., 0.]);
        // Kernel 3, stride 2, padding 1 on 5×5: Ho = ⌊(5 + 2 − 3)/2⌋ + 1 = 3.
        let x = Tensor::from_vec(vec![1, 1, 5, 5], (0..25).map(|i| -(i as f32)).collect());
        let mut g = Graph::new();
        let xv = g.input(x);
        let y = g.max_pool2d(xv, (3, 3), (2, 2), (1, 1));
        assert_eq!(
            g.value(y).data(),
            &[0., -1., -3., -5., -6., -8., -15., -16., -18.]
        );
    }

    #[test]
    fn many_chunks_are_bit_identical_for_any_thread_count() {
        let xs = [32, 20, 12, 13];
        let geom = geom(&xs, (3, 2), (2, 2), (1, 1));
        assert!(geom.planes.div_ceil(geom.chunk()) > 2);
        let x = pseudo_random(&xs, 1);
        let dy = pseudo_random(&[geom.planes * geom.ho * geom.wo], 2);
        let (y1, a1) = max_pool(&geom, x.data(), 1);
        let dx1 = max_pool_backward(&geom, &a1, dy.data(), 1);
        for t in [2, 3, 8] {
            let (y, a) = max_pool(&geom, x.data(), t);
            assert_eq!(y, y1);
            assert_eq!(a, a1);
            assert_eq!(max_pool_backward(&geom, &a, dy.data(), t), dx1);
        }
        // Every picked element is the max of its window.
        for (p, (yp, ap)) in y1
            .chunks(geom.ho * geom.wo)
            .zip(a1.chunks(geom.ho * geom.wo))
            .enumerate()
        {
            for (&v, &i) in yp.iter().zip(ap) {
                assert_eq!(v, x.data()[p * 12 * 13 + i as usize]);
            }
        }
    }

    /// PyTorch's CPU loop, one window at a time.
    fn reference(
        x: &[f32],
        xs: [usize; 4],
        k: (usize, usize),
        s: (usize, usize),
        p: (usize, usize),
    ) -> (Vec<f32>, Vec<u32>) {
        let (h, w) = (xs[2], xs[3]);
        let ho = pool_out_size(h, k.0, s.0, p.0).unwrap();
        let wo = pool_out_size(w, k.1, s.1, p.1).unwrap();
        let (mut y, mut arg) = (Vec::new(), Vec::new());
        for plane in x.chunks(h * w) {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut ih0 = (oy * s.0) as isize - p.0 as isize;
                    let mut iw0 = (ox * s.1) as isize - p.1 as isize;
                    let ih1 = (ih0 + k.0 as isize).min(h as isize);
                    let iw1 = (iw0 + k.1 as isize).min(w as isize);
                    ih0 = ih0.max(0);
                    iw0 = iw0.max(0);
                    let mut best = ih0 * w as isize + iw0;
                    let mut max = f32::NEG_INFINITY;
                    for ih in ih0..ih1 {
                        for iw in iw0..iw1 {
                            let i = ih * w as isize + iw;
                            let v = plane[i as usize];
                            if v > max || v.is_nan() {
                                max = v;
                                best = i;
                            }
                        }
                    }
                    y.push(max);
                    arg.push(best as u32);
                }
            }
        }
        (y, arg)
    }

    #[test]
    fn matches_pytorchs_loop_with_ties_nan_and_infinities() {
        for (xs, k, s, p) in [
            ([2, 3, 7, 9], (2, 2), (2, 2), (0, 0)),
            ([2, 2, 28, 28], (2, 2), (2, 2), (0, 0)),
            ([1, 2, 10, 37], (2, 2), (2, 2), (0, 0)),
            ([1, 2, 7, 9], (2, 2), (2, 2), (1, 1)),
            ([1, 2, 8, 7], (3, 2), (2, 1), (1, 1)),
            ([1, 1, 9, 10], (4, 3), (1, 3), (2, 1)),
            ([1, 2, 9, 9], (3, 3), (3, 3), (1, 1)),
            ([1, 1, 6, 5], (1, 1), (2, 2), (0, 0)),
            ([1, 1, 5, 8], (5, 2), (1, 2), (2, 0)),
        ] {
            // Three levels: plenty of ties; a few NaN and infinities.
            let mut x = pseudo_random(&xs, 3).map(|v| (v * 1.5).round());
            for (i, v) in x.data_mut().iter_mut().enumerate() {
                match (i * 7919) % 31 {
                    0 => *v = f32::NAN,
                    1 => *v = f32::NEG_INFINITY,
                    2 => *v = f32::INFINITY,
                    _ => {}
                }
            }
            let geom = geom(&xs, k, s, p);
            let (y, arg) = max_pool(&geom, x.data(), 1);
            let (ry, rarg) = reference(x.data(), xs, k, s, p);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&ry), "{xs:?} {k:?} {s:?} {p:?}");
            assert_eq!(arg, rarg, "{xs:?} {k:?} {s:?} {p:?}");
            // Backward: a scatter-add into zeros, bit for bit (a δ of −0
            // leaves +0), also over threads.
            let mut dy = pseudo_random(&[y.len()], 4).into_vec();
            for (i, v) in dy.iter_mut().enumerate() {
                if i % 5 == 0 {
                    *v = -0.0;
                }
            }
            let plane_in = xs[2] * xs[3];
            let mut rdx = vec![0.0f32; x.numel()];
            let per_plane = y.len() / (xs[0] * xs[1]);
            for (j, (&a, &d)) in rarg.iter().zip(&dy).enumerate() {
                rdx[j / per_plane * plane_in + a as usize] += d;
            }
            for t in [1, 2] {
                let dx = max_pool_backward(&geom, &arg, &dy, t);
                assert_eq!(
                    bits(&dx),
                    bits(&rdx),
                    "backward {xs:?} {k:?} {s:?} {p:?} t={t}"
                );
            }
        }
    }

    #[test]
    fn no_grad_graph_gives_the_same_values() {
        let x = pseudo_random(&[2, 3, 9, 8], 1);
        let mut g = Graph::new();
        let xv = g.param(x.clone());
        let y = g.max_pool2d(xv, (2, 2), (2, 2), (0, 0));
        let mut e = Graph::no_grad();
        let xe = e.input(x);
        let ye = e.max_pool2d(xe, (2, 2), (2, 2), (0, 0));
        assert_eq!(g.value(y), e.value(ye));
        assert_eq!(e.shape(ye), &[2, 3, 4, 4]);
    }

    #[test]
    fn empty_batch() {
        let mut g = Graph::new();
        let x = g.param(Tensor::zeros(&[0, 3, 4, 4]));
        let y = g.max_pool2d(x, (2, 2), (2, 2), (0, 0));
        assert_eq!(g.shape(y), &[0, 3, 2, 2]);
        let l = g.sum(y);
        assert_eq!(g.backward(l).get(x).unwrap().shape(), &[0, 3, 4, 4]);
    }

    #[test]
    fn out_size() {
        assert_eq!(pool_out_size(28, 2, 2, 0), Some(14));
        assert_eq!(pool_out_size(10, 2, 2, 0), Some(5));
        assert_eq!(pool_out_size(5, 2, 2, 0), Some(2));
        assert_eq!(pool_out_size(5, 3, 2, 1), Some(3));
        assert_eq!(pool_out_size(2, 2, 2, 1), Some(2));
        assert_eq!(pool_out_size(5, 3, 2, 2), None);
        assert_eq!(pool_out_size(4, 1, 1, 1), None);
        assert_eq!(pool_out_size(1, 2, 2, 0), None);
        assert_eq!(pool_out_size(5, 2, 0, 0), None);
        assert_eq!(pool_out_size(5, 0, 1, 0), None);
    }

    #[test]
    #[should_panic(expected = "padding (2, 0): padding 2 must be at most half the kernel size 3")]
    fn too_much_padding_panics() {
        let mut g = Graph::new();
        let x = g.input(Tensor::zeros(&[1, 1, 6, 6]));
        g.max_pool2d(x, (3, 3), (1, 1), (2, 0));
    }

    #[test]
    #[should_panic(expected = "max_pool2d: input [1, 1, 2, 2], kernel (3, 3)")]
    fn kernel_too_large_panics() {
        let mut g = Graph::new();
        let x = g.input(Tensor::zeros(&[1, 1, 2, 2]));
        g.max_pool2d(x, (3, 3), (1, 1), (0, 0));
    }
}
