//! 2-d convolution (a cross-correlation, as PyTorch's `F.conv2d`): by the
//! direct kernels of `tensor::direct_conv` (src/tensor/direct_conv.rs) for stride 1
//! on CPUs with AVX2 and FMA (the default), else by im2col and one matrix
//! product per sample, as described below. The loops over the batch are in
//! `tensor::conv` (src/tensor/conv.rs); this file is the op: shapes, the
//! node and its backward. The two agree to float rounding
//! (the direct kernels read the padded input in place instead of copying it
//! into columns; see that file); [`set_im2col_only`] forces im2col, to
//! compare. Either is deterministic, whatever the thread count.
//!
//! # Shapes
//! `x: [N, C, H, W]`, `w: [O, C, kh, kw]` (PyTorch's layout), `b: [O]` →
//! `y: [N, O, Ho, Wo]` with `Ho = ⌊(H + 2·ph − kh)/sh⌋ + 1` and
//! `Wo = ⌊(W + 2·pw − kw)/sw⌋ + 1` (see [`conv_out_size`]). The padding is
//! zeros; dilation is 1 and there are no groups.
//!
//! # Forward
//! For each sample, im2col lays every receptive field out as one column of a
//! `[K, P]` matrix (`K = C·kh·kw`, `P = Ho·Wo`):
//! `cols[(c·kh + i)·kw + j, oy·Wo + ox] = x[c, oy·sh + i − ph, ox·sw + j − pw]`
//! (0 in the padding). Then `y_n = W · cols_n + b` with `W` seen as `[O, K]`:
//! one gemm per sample, into an output block already holding the bias.
//! A 1×1 kernel with stride 1 and no padding needs no im2col: `cols_n` is `x_n`.
//!
//! # Backward
//! With `δ_n = ∂L/∂y_n` seen as `[O, P]`:
//! - `∂W = Σ_n δ_n · cols_nᵀ`: the same weights are used at every position of
//!   every sample, so their gradient sums over both;
//! - `∂b = Σ_n Σ_p δ_n[:, p]`;
//! - `∂x_n = col2im(Wᵀ · δ_n)`: each column's gradient goes back to the input
//!   pixels it was copied from, summed where receptive fields overlap. Skipped
//!   when `x` needs no gradient (the data batch of a first layer).
//!
//! # Parallelism and determinism
//! The batch is cut into chunks of consecutive samples. The chunk length
//! depends on the shapes only (enough work per chunk to be worth a task, at
//! most 64 chunks), never on the thread count. Chunks run as a few jobs
//! of the thread team (`tensor::team`) per thread
//! ([`threads()`](crate::cpu::threads); runs of consecutive chunks),
//! each job allocating its scratch buffers once and reusing them for all its
//! samples. In backward every chunk sums its
//! own partial `∂W` and `∂b` over its samples in order, and the partials are
//! then added in chunk order: the gradients are bit-identical from run to run
//! *and* for any thread count. The batch is the parallel axis: when it spans
//! several chunks, every per-sample product is one single-threaded `gemm`
//! call (no nested thread split, no synchronisation per product). Only a
//! batch of a single chunk (a few large images) hands its products to
//! [`matmul_into`](crate::cpu::matmul_into), which may split each one over threads; its results are
//! then bit-identical run to run for the same thread count.
//!
//! # Memory
//! `∂W` needs `cols_n` again. When `w` needs a gradient and the im2col of the
//! whole batch fits in [`KEEP_COLS_MAX_BYTES`], the forward writes it into
//! buffers (one per chunk, allocated by the task that fills it) kept in the
//! backward node (memory: `kh·kw/(sh·sw)` times the input, about 25× for
//! LeNet's 5×5 first layer: 5 MB for a batch of 64 MNIST images), and
//! backward only runs gemms. Above the budget, or when `w` is
//! frozen, the forward uses the per-job scratch buffer and backward recomputes
//! the im2col (a memory-bound copy, cheap next to the gemms once `O` is
//! large, which is exactly when the buffer would be big). Both paths give
//! bit-identical gradients.

use crate::autograd::{Backward, Op};
#[doc(hidden)]
pub use crate::cpu::conv::set_im2col_only;
use crate::cpu::conv::{conv_backward, conv_forward, ConvGeom};
use crate::cpu::threads;
use crate::ops::shape;
use crate::{Graph, Tensor, Var};

/// The most bytes of im2col columns a `conv2d` node keeps from its forward
/// pass for its backward pass (see the [module docs](self#memory)).
pub const KEEP_COLS_MAX_BYTES: usize = 64 << 20;

/// The output length of a convolution along one axis:
/// `⌊(input + 2·padding − kernel)/stride⌋ + 1`, or `None` when the kernel is
/// larger than the padded input, or the stride or kernel is 0.
///
/// ```
/// use backprop::ops::conv::conv_out_size;
/// assert_eq!(conv_out_size(28, 5, 1, 2), Some(28)); // LeNet's first layer
/// assert_eq!(conv_out_size(14, 5, 1, 0), Some(10));
/// assert_eq!(conv_out_size(7, 3, 2, 1), Some(4));
/// assert_eq!(conv_out_size(3, 5, 1, 0), None);
/// assert_eq!(conv_out_size(3, 3, 0, 0), None);
/// ```
pub fn conv_out_size(input: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    if stride == 0 || kernel == 0 {
        return None;
    }
    let padded = input.checked_add(padding.checked_mul(2)?)?;
    padded.checked_sub(kernel).map(|r| r / stride + 1)
}

/// `[C, H, W]` of an image-shaped sample, or what is wrong, with a hint
/// when the values would make `channels` square images.
pub fn image_shape(s: &[usize], channels: usize) -> Result<[usize; 3], String> {
    if let [c, h, w] = *s {
        return Ok([c, h, w]);
    }
    let n = shape::numel(s).unwrap_or(0);
    let side = (n / channels.max(1)) as f64;
    let square = side.sqrt().fract() == 0.0;
    let hint = if channels > 0 && n > 0 && n.is_multiple_of(channels) && square {
        let r = side.sqrt() as usize;
        format!("; add reshape({channels},{r},{r}) before it")
    } else {
        String::new()
    };
    Err(format!(
        "expects images [N, C, H, W], got {}{hint}",
        shape::fmt(s)
    ))
}

/// The shape of one sample's output of a convolution of one sample `s`
/// (`[C, H, W]`) with weights `w` (`[O, C, kh, kw]`), a bias `b` (`[O]`),
/// `stride` and `padding`: `[O, Ho, Wo]`, or what is wrong. The op and the
/// [`Conv2d`](crate::nn::Conv2d) layer both ask it.
pub fn conv2d_shape(
    s: &[usize],
    w: &[usize],
    b: Option<&[usize]>,
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Vec<usize>, String> {
    let [o, wc, kh, kw] = *w else {
        return Err(format!("the weight must be [O, C, kh, kw], got {w:?}"));
    };
    let [c, h, wd] = image_shape(s, wc)?;
    if c != wc {
        return Err(format!(
            "expects {wc} input channels, got input {} with {c}",
            shape::fmt(s)
        ));
    }
    if s.iter().chain(w).any(|&d| d == 0) {
        return Err(format!(
            "input {} and weight {w:?} have an empty axis",
            shape::fmt(s)
        ));
    }
    if let Some(b) = b.filter(|b| *b != [o]) {
        return Err(format!("the bias must be [{o}], got {b:?}"));
    }
    match (
        conv_out_size(h, kh, stride.0, padding.0),
        conv_out_size(wd, kw, stride.1, padding.1),
    ) {
        (Some(ho), Some(wo)) => Ok(vec![o, ho, wo]),
        _ => Err(format!(
            "kernel {kh}×{kw} is larger than the padded input {}×{} (input {})",
            h + 2 * padding.0,
            wd + 2 * padding.1,
            shape::fmt(s)
        )),
    }
}

/// The sizes of one convolution whose shapes [`conv2d_shape`] accepted.
fn geom(xs: &[usize], ws: &[usize], stride: (usize, usize), padding: (usize, usize)) -> ConvGeom {
    let out = |i, k, s, p| conv_out_size(i, k, s, p).expect("checked by conv2d_shape");
    let (ho, wo) = (
        out(xs[2], ws[2], stride.0, padding.0),
        out(xs[3], ws[3], stride.1, padding.1),
    );
    ConvGeom {
        n: xs[0],
        c: xs[1],
        h: xs[2],
        w: xs[3],
        o: ws[0],
        kh: ws[2],
        kw: ws[3],
        sh: stride.0,
        sw: stride.1,
        ph: padding.0,
        pw: padding.1,
        ho,
        wo,
    }
}

struct Conv2dBack {
    geom: ConvGeom,
    /// The forward's im2col of the batch, `[chunk, K, P]` per chunk, if kept.
    cols: Option<Vec<Vec<f32>>>,
    /// Whether the backward uses the direct kernels (chosen once, at the
    /// forward pass, which then kept no columns).
    direct: bool,
}

impl Backward for Conv2dBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let (x, w) = (inp[0], inp[1]);
        let has_b = inp.len() == 3;
        let (dx, dw, db) = conv_backward(
            &self.geom,
            x.data(),
            w.data(),
            g.data(),
            self.cols.as_deref(),
            (needs[0], needs[1], has_b && needs[2]),
            self.direct,
            threads(),
        );
        let mut res = vec![
            dx.map(|d| Tensor::from_vec(x.shape().to_vec(), d)),
            dw.map(|d| Tensor::from_vec(w.shape().to_vec(), d)),
        ];
        if has_b {
            res.push(db.map(|d| Tensor::from_vec(vec![self.geom.o], d)));
        }
        res
    }
}

impl Graph {
    /// 2-d convolution of `x: [N, C, H, W]` with `w: [O, C, kh, kw]` plus an
    /// optional bias `b: [O]`, with `stride` and zero `padding` given as
    /// (height, width) → `[N, O, Ho, Wo]` (see the [module docs](crate::ops::conv)).
    ///
    /// Panics, naming both shapes, when the shapes do not fit (the model
    /// builder checks them earlier with [`conv_out_size`]).
    ///
    /// ```
    /// use backprop::{Graph, Tensor};
    /// let mut g = Graph::new();
    /// let x = g.input(Tensor::from_vec(vec![1, 1, 3, 3], (1..=9).map(|v| v as f32).collect()));
    /// let w = g.param(Tensor::from_vec(vec![1, 1, 2, 2], vec![1., 2., 3., 4.]));
    /// let y = g.conv2d(x, w, None, (1, 1), (0, 0));
    /// assert_eq!(g.value(y).data(), &[37., 47., 67., 77.]);
    /// ```
    pub fn conv2d(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Var {
        let (xs, ws) = (self.shape(x), self.shape(w));
        let out = match xs.len() {
            4 => conv2d_shape(&xs[1..], ws, b.map(|b| self.shape(b)), stride, padding),
            _ => Err(format!(
                "conv2d: the input must be [N, C, H, W], got {xs:?}"
            )),
        };
        if let Err(e) = out {
            let msg = format!("conv2d: input {xs:?} and weight {ws:?}: {e}");
            let instead = [
                xs.first().copied().unwrap_or(1),
                ws.first().copied().unwrap_or(1),
                1,
                1,
            ];
            return self.bad_shapes(msg, &instead);
        }
        let geom = geom(self.shape(x), self.shape(w), stride, padding);
        let direct = geom.direct();
        let keep = self.requires_grad(w)
            && !direct
            && geom.n * geom.k() * geom.p() * std::mem::size_of::<f32>() <= KEEP_COLS_MAX_BYTES;
        let (y, cols) = conv_forward(
            &geom,
            self.value(x).data(),
            self.value(w).data(),
            b.map(|b| self.value(b).data()),
            keep,
            direct,
            threads(),
        );
        let y = Tensor::from_vec(vec![geom.n, geom.o, geom.ho, geom.wo], y);
        let back = Conv2dBack { geom, cols, direct };
        match b {
            Some(b) => self.push(Op::Conv2d, y, &[x, w, b], back),
            None => self.push(Op::Conv2d, y, &[x, w], back),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::conv::direct as direct_conv;
    use crate::cpu::conv::{as_uninit_mut, col2im, im2col, Spans};
    use crate::ops::gradcheck::{check, gradient_errors, pseudo_random};

    /// Finite differences for one configuration, with and without bias.
    fn conv_check(
        name: &str,
        xs: &[usize],
        ws: &[usize],
        bias: bool,
        stride: (usize, usize),
        padding: (usize, usize),
    ) {
        let mut inputs = vec![pseudo_random(xs, 1), pseudo_random(ws, 2)];
        if bias {
            inputs.push(pseudo_random(&[ws[0]], 3));
        }
        check(name, &inputs, |g, v| {
            g.conv2d(v[0], v[1], v.get(2).copied(), stride, padding)
        });
    }

    #[test]
    fn gradients_no_padding_stride_1() {
        conv_check(
            "conv 3x3",
            &[1, 1, 5, 5],
            &[1, 1, 3, 3],
            true,
            (1, 1),
            (0, 0),
        );
    }

    #[test]
    fn gradients_padding_2() {
        conv_check(
            "conv pad 2",
            &[1, 1, 5, 5],
            &[1, 1, 3, 3],
            true,
            (1, 1),
            (2, 2),
        );
        // Padding as large as the kernel: whole windows of padding.
        conv_check(
            "conv pad 2 k2",
            &[1, 1, 3, 3],
            &[1, 1, 2, 2],
            true,
            (1, 1),
            (2, 2),
        );
    }

    #[test]
    fn gradients_stride_2() {
        conv_check(
            "conv stride 2",
            &[1, 1, 7, 7],
            &[1, 1, 3, 3],
            true,
            (2, 2),
            (0, 0),
        );
        // Stride not dividing the input: the last row and column are unused.
        conv_check(
            "conv stride 2 odd",
            &[1, 1, 6, 6],
            &[1, 1, 3, 3],
            true,
            (2, 2),
            (0, 0),
        );
    }

    #[test]
    fn gradients_non_square_kernel() {
        conv_check(
            "conv 2x3",
            &[1, 2, 5, 6],
            &[2, 2, 2, 3],
            true,
            (1, 1),
            (0, 0),
        );
        conv_check(
            "conv 3x2 pad",
            &[1, 1, 5, 4],
            &[2, 1, 3, 2],
            true,
            (1, 1),
            (1, 0),
        );
    }

    #[test]
    fn gradients_padding_with_stride() {
        conv_check(
            "conv pad 1 stride 2",
            &[1, 1, 6, 7],
            &[1, 1, 3, 3],
            true,
            (2, 2),
            (1, 1),
        );
        conv_check(
            "conv pad (2,1) stride (1,2)",
            &[1, 2, 5, 6],
            &[2, 2, 3, 2],
            true,
            (1, 2),
            (2, 1),
        );
        conv_check(
            "conv pad 2 stride 3",
            &[1, 1, 7, 5],
            &[1, 1, 2, 3],
            true,
            (3, 3),
            (2, 2),
        );
    }

    #[test]
    fn gradients_channels_in_and_out() {
        conv_check(
            "conv C=3 O=4",
            &[1, 3, 5, 5],
            &[4, 3, 3, 3],
            true,
            (1, 1),
            (1, 1),
        );
    }

    #[test]
    fn gradients_batch() {
        conv_check(
            "conv N=3",
            &[3, 2, 5, 4],
            &[2, 2, 3, 3],
            true,
            (1, 1),
            (1, 1),
        );
    }

    #[test]
    fn gradients_without_bias() {
        conv_check(
            "conv no bias",
            &[2, 2, 5, 5],
            &[3, 2, 3, 3],
            false,
            (1, 1),
            (1, 1),
        );
    }

    #[test]
    fn gradients_pointwise_kernel() {
        conv_check(
            "conv 1x1",
            &[2, 3, 4, 3],
            &[5, 3, 1, 1],
            true,
            (1, 1),
            (0, 0),
        );
        conv_check(
            "conv 1x1 stride 2",
            &[1, 2, 5, 5],
            &[2, 2, 1, 1],
            true,
            (2, 2),
            (0, 0),
        );
        conv_check(
            "conv 1x1 pad 1",
            &[1, 2, 3, 3],
            &[2, 2, 1, 1],
            false,
            (1, 1),
            (1, 1),
        );
    }

    #[test]
    fn gradients_fan_out() {
        // The same x fed to two convolutions.
        let inputs = [
            pseudo_random(&[2, 2, 5, 5], 1),
            pseudo_random(&[3, 2, 3, 3], 2),
            pseudo_random(&[3, 2, 3, 3], 3),
            pseudo_random(&[3], 4),
        ];
        check("conv x twice", &inputs, |g, v| {
            let a = g.conv2d(v[0], v[1], Some(v[3]), (1, 1), (1, 1));
            let b = g.conv2d(v[0], v[2], None, (1, 1), (1, 1));
            g.mul(a, b)
        });
        // The same w (and b) used twice, in a chain.
        let inputs = [
            pseudo_random(&[1, 2, 6, 6], 5),
            pseudo_random(&[2, 2, 3, 3], 6),
            pseudo_random(&[2], 7),
        ];
        check("conv w twice", &inputs, |g, v| {
            let a = g.conv2d(v[0], v[1], Some(v[2]), (1, 1), (1, 1));
            g.conv2d(a, v[1], Some(v[2]), (2, 2), (0, 0))
        });
    }

    #[test]
    fn errors_are_tiny_for_a_linear_op() {
        let inputs = [
            pseudo_random(&[2, 2, 6, 5], 1),
            pseudo_random(&[3, 2, 3, 2], 2),
            pseudo_random(&[3], 3),
        ];
        let errs = gradient_errors(&inputs, |g, v| {
            g.conv2d(v[0], v[1], Some(v[2]), (2, 1), (1, 1))
        });
        for e in errs {
            assert!(e < 2e-4, "{e:.2e}");
        }
    }

    #[test]
    fn value_hand_computed() {
        let mut g = Graph::new();
        let x = g.input(Tensor::from_vec(
            vec![1, 1, 3, 3],
            (1..=9).map(|v| v as f32).collect(),
        ));
        let w = g.param(Tensor::from_vec(vec![1, 1, 2, 2], vec![1., 2., 3., 4.]));
        let b = g.param(Tensor::from_vec(vec![1], vec![1.0]));
        // [[1,2,3],[4,5,6],[7,8,9]] ⋆ [[1,2],[3,4]]: 1+4+12+20 = 37, ...
        let y = g.conv2d(x, w, Some(b), (1, 1), (0, 0));
        assert_eq!(g.shape(y), &[1, 1, 2, 2]);
        assert_eq!(g.value(y).data(), &[38., 48., 68., 78.]);
        // Padding 1, stride 2: windows at (−1,−1), (−1,1), (1,−1), (1,1).
        // (−1,−1) sees x[0,0] under w[1,1]: 4·1; (−1,1): 3·2 + 4·3 = 18;
        // (1,−1): 2·4 + 4·7 = 36; (1,1): 1·5 + 2·6 + 3·8 + 4·9 = 77.
        let y = g.conv2d(x, w, None, (2, 2), (1, 1));
        assert_eq!(g.shape(y), &[1, 1, 2, 2]);
        assert_eq!(g.value(y).data(), &[4., 18., 36., 77.]);
        // Backward with ∂L/∂y = 1 everywhere: ∂W[i,j] = Σ of the inputs each
        // weight saw; ∂x[p] = Σ of the weights that saw p.
        let y = g.conv2d(x, w, Some(b), (1, 1), (0, 0));
        let l = g.sum(y);
        let grads = g.backward(l);
        assert_eq!(grads.get(w).unwrap().data(), &[12., 16., 24., 28.]);
        assert_eq!(grads.get(b).unwrap().data(), &[4.]);
        assert!(grads.get(x).is_none());
    }

    #[test]
    fn input_gradient_hand_computed() {
        let mut g = Graph::new();
        let x = g.param(Tensor::zeros(&[1, 1, 3, 3]));
        let w = g.input(Tensor::from_vec(vec![1, 1, 2, 2], vec![1., 2., 3., 4.]));
        let y = g.conv2d(x, w, None, (1, 1), (0, 0));
        let l = g.sum(y);
        let grads = g.backward(l);
        // Corners see one weight, edges two, the centre all four.
        assert_eq!(
            grads.get(x).unwrap().data(),
            &[1., 3., 2., 4., 10., 6., 3., 7., 4.]
        );
        assert!(grads.get(w).is_none());
    }

    /// Direct-definition convolution and its gradients, in f64.
    #[allow(clippy::type_complexity, clippy::needless_range_loop)]
    fn naive(
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        dy: &Tensor,
        s: (usize, usize),
        pd: (usize, usize),
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let [n, c, h, wd] = x.shape().try_into().unwrap();
        let [o, _, kh, kw] = w.shape().try_into().unwrap();
        let ho = conv_out_size(h, kh, s.0, pd.0).unwrap();
        let wo = conv_out_size(wd, kw, s.1, pd.1).unwrap();
        let mut y = vec![0f64; n * o * ho * wo];
        let mut dx = vec![0f64; x.numel()];
        let mut dw = vec![0f64; w.numel()];
        let mut db = vec![0f64; o];
        for ni in 0..n {
            for oi in 0..o {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let yi = ((ni * o + oi) * ho + oy) * wo + ox;
                        let gy = dy.data()[yi] as f64;
                        let mut acc = b.data()[oi] as f64;
                        db[oi] += gy;
                        for ci in 0..c {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy = (oy * s.0 + i) as isize - pd.0 as isize;
                                    let ix = (ox * s.1 + j) as isize - pd.1 as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xi = ((ni * c + ci) * h + iy as usize) * wd + ix as usize;
                                    let wi = ((oi * c + ci) * kh + i) * kw + j;
                                    acc += x.data()[xi] as f64 * w.data()[wi] as f64;
                                    dx[xi] += gy * w.data()[wi] as f64;
                                    dw[wi] += gy * x.data()[xi] as f64;
                                }
                            }
                        }
                        y[yi] = acc;
                    }
                }
            }
        }
        (y, dx, dw, db)
    }

    fn close(a: &[f32], b: &[f64], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (&a, &b)) in a.iter().zip(b).enumerate() {
            assert!(
                (a as f64 - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{what}[{i}]: {a} vs {b}"
            );
        }
    }

    #[test]
    fn batches_match_the_definition_and_are_bit_identical_for_any_thread_count() {
        for (xs, ws, s, pd) in [
            ([37, 3, 9, 8], [4, 3, 3, 3], (1, 1), (1, 1)),
            ([150, 2, 11, 10], [3, 2, 5, 4], (2, 3), (2, 1)),
            ([300, 4, 6, 6], [6, 4, 1, 1], (1, 1), (0, 0)),
            // Products above matmul_into's threading threshold: one chunk per
            // sample (single-threaded gemms), and a single-chunk batch.
            ([3, 16, 16, 16], [32, 16, 3, 3], (1, 1), (1, 1)),
            ([1, 16, 16, 16], [32, 16, 3, 3], (1, 1), (1, 1)),
        ] {
            let (x, w, b) = (
                pseudo_random(&xs, 1),
                pseudo_random(&ws, 2),
                pseudo_random(&ws[..1], 3),
            );
            let geom = geom(&xs, &ws, s, pd);
            assert!(
                xs[0] == 1 || geom.n.div_ceil(geom.chunk()) > 2,
                "{xs:?}: want several chunks"
            );
            let dy = pseudo_random(&[geom.n, geom.o, geom.ho, geom.wo], 4);
            let (ry, rdx, rdw, rdb) = naive(&x, &w, &b, &dy, s, pd);
            // im2col everywhere; the direct kernels where they apply. Each
            // is bit-identical across thread counts and kept columns.
            let direct_applies = s == (1, 1) && !geom.pointwise() && direct_conv::available();
            for direct in [false, true] {
                if direct && !direct_applies {
                    continue;
                }
                let mut first = None;
                for t in [1, 2, 3, 8] {
                    for keep in [false, true] {
                        let bx = b.data();
                        let (y, kept) =
                            conv_forward(&geom, x.data(), w.data(), Some(bx), keep, direct, t);
                        assert_eq!(kept.is_some(), keep && !geom.pointwise() && !direct);
                        let needs = (true, true, true);
                        let (dx, dw, db) = conv_backward(
                            &geom,
                            x.data(),
                            w.data(),
                            dy.data(),
                            kept.as_deref(),
                            needs,
                            direct,
                            t,
                        );
                        let (dx, dw, db) = (dx.unwrap(), dw.unwrap(), db.unwrap());
                        close(&y, &ry, "y");
                        close(&dx, &rdx, "dx");
                        close(&dw, &rdw, "dw");
                        close(&db, &rdb, "db");
                        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        let all = (bits(&y), bits(&dx), bits(&dw), bits(&db));
                        match &first {
                            None => first = Some(all),
                            Some(f) => assert!(
                                *f == all,
                                "{xs:?}: t={t} keep={keep} direct={direct} differs"
                            ),
                        }
                        // Only ∂W: same bits as when ∂x is computed too.
                        let (none_x, dw2, none_b) = conv_backward(
                            &geom,
                            x.data(),
                            w.data(),
                            dy.data(),
                            kept.as_deref(),
                            (false, true, false),
                            direct,
                            t,
                        );
                        assert!(none_x.is_none() && none_b.is_none());
                        assert_eq!(bits(&dw2.unwrap()), first.as_ref().unwrap().2);
                    }
                }
            }
        }
    }

    #[test]
    fn im2col_and_col2im_match_the_definition() {
        // Widths covering every branch of the short copies and fills, wide
        // padded rows, strides and kernels larger than the padding.
        let mut cases = vec![
            ([2, 37, 40], [4, 3], (1, 1), (3, 3)),
            ([1, 5, 70], [3, 7], (2, 3), (1, 3)),
        ];
        for w in 1..=20 {
            cases.push(([2, 4, w], [3, 2.min(w)], (1, 1), (1, 0)));
            cases.push(([1, 6, w + 2], [2, 3], (2, 1), (0, 2)));
        }
        for (xs, ks, s, pd) in cases {
            let xs = [1, xs[0], xs[1], xs[2]];
            let ws = [1, xs[1], ks[0], ks[1]];
            let g = geom(&xs, &ws, s, pd);
            let sp = Spans::new(&g);
            let x = pseudo_random(&xs, 5);
            let mut cols = vec![f32::NAN; g.k() * g.p()];
            im2col(&g, &sp, x.data(), as_uninit_mut(&mut cols));
            // cols must hold x where the receptive field is inside, 0 elsewhere.
            let mut back = vec![0.0f32; x.numel()];
            let mut want_back = vec![0.0f32; x.numel()];
            for c in 0..g.c {
                for i in 0..g.kh {
                    for j in 0..g.kw {
                        let r = (c * g.kh + i) * g.kw + j;
                        for oy in 0..g.ho {
                            for ox in 0..g.wo {
                                let iy = (oy * g.sh + i) as isize - g.ph as isize;
                                let ix = (ox * g.sw + j) as isize - g.pw as isize;
                                let inside =
                                    iy >= 0 && ix >= 0 && iy < g.h as isize && ix < g.w as isize;
                                let got = cols[r * g.p() + oy * g.wo + ox];
                                if inside {
                                    let xi = (c * g.h + iy as usize) * g.w + ix as usize;
                                    assert_eq!(got, x.data()[xi], "{xs:?} {ws:?} {s:?} {pd:?}");
                                    want_back[xi] += got;
                                } else {
                                    assert_eq!(got, 0.0, "{xs:?} {ws:?} {s:?} {pd:?}");
                                }
                            }
                        }
                    }
                }
            }
            col2im(&g, &sp, &cols, &mut back);
            assert_eq!(back, want_back, "col2im {xs:?} {ws:?} {s:?} {pd:?}");
        }
    }

    #[test]
    fn first_layer_skips_the_input_gradient() {
        let (xt, wt, bt) = (
            pseudo_random(&[4, 1, 8, 8], 1),
            pseudo_random(&[3, 1, 5, 5], 2),
            pseudo_random(&[3], 3),
        );
        let grads_of = |x_is_param: bool| {
            let mut g = Graph::new();
            let x = if x_is_param {
                g.param(xt.clone())
            } else {
                g.input(xt.clone())
            };
            let w = g.param(wt.clone());
            let b = g.param(bt.clone());
            let y = g.conv2d(x, w, Some(b), (1, 1), (2, 2));
            let l = g.sum(y);
            let grads = g.backward(l);
            (
                grads.get(x).cloned(),
                grads.get(w).unwrap().clone(),
                grads.get(b).unwrap().clone(),
            )
        };
        let (dx, dw, db) = grads_of(false);
        let (dx2, dw2, db2) = grads_of(true);
        assert!(dx.is_none() && dx2.is_some());
        assert_eq!(dw, dw2);
        assert_eq!(db, db2);
    }

    #[test]
    fn no_grad_graph_gives_the_same_values() {
        let (x, w) = (
            pseudo_random(&[3, 2, 7, 6], 1),
            pseudo_random(&[4, 2, 3, 3], 2),
        );
        let mut g = Graph::new();
        let (xv, wv) = (g.input(x.clone()), g.param(w.clone()));
        let y = g.conv2d(xv, wv, None, (2, 1), (1, 0));
        let mut e = Graph::no_grad();
        let (xe, we) = (e.input(x), e.param(w));
        let ye = e.conv2d(xe, we, None, (2, 1), (1, 0));
        assert_eq!(g.value(y), e.value(ye));
        assert_eq!(e.shape(ye), &[3, 4, 4, 4]);
    }

    #[test]
    fn empty_batch() {
        let mut g = Graph::new();
        let x = g.param(Tensor::zeros(&[0, 2, 5, 5]));
        let w = g.param(pseudo_random(&[3, 2, 3, 3], 1));
        let b = g.param(pseudo_random(&[3], 2));
        let y = g.conv2d(x, w, Some(b), (1, 1), (1, 1));
        assert_eq!(g.shape(y), &[0, 3, 5, 5]);
        let l = g.sum(y);
        let grads = g.backward(l);
        assert_eq!(grads.get(x).unwrap().shape(), &[0, 2, 5, 5]);
        assert_eq!(grads.get(w).unwrap(), &Tensor::zeros(&[3, 2, 3, 3]));
        assert_eq!(grads.get(b).unwrap(), &Tensor::zeros(&[3]));
    }

    #[test]
    fn out_size() {
        assert_eq!(conv_out_size(28, 5, 1, 2), Some(28));
        assert_eq!(conv_out_size(28, 5, 1, 0), Some(24));
        assert_eq!(conv_out_size(5, 3, 2, 0), Some(2));
        assert_eq!(conv_out_size(6, 3, 2, 0), Some(2));
        assert_eq!(conv_out_size(6, 3, 2, 1), Some(3));
        assert_eq!(conv_out_size(3, 3, 1, 0), Some(1));
        assert_eq!(conv_out_size(2, 3, 1, 0), None);
        assert_eq!(conv_out_size(2, 3, 1, 1), Some(2));
        assert_eq!(conv_out_size(0, 1, 1, 0), None);
        assert_eq!(conv_out_size(5, 3, 0, 0), None);
        assert_eq!(conv_out_size(5, 0, 1, 0), None);
        assert_eq!(conv_out_size(usize::MAX, 1, 1, 1), None);
    }

    #[test]
    #[should_panic(expected = "conv2d: input [1, 2, 5, 5] and weight [1, 3, 3, 3]")]
    fn channel_mismatch_panics() {
        let mut g = Graph::new();
        let x = g.input(Tensor::zeros(&[1, 2, 5, 5]));
        let w = g.param(Tensor::zeros(&[1, 3, 3, 3]));
        g.conv2d(x, w, None, (1, 1), (0, 0));
    }

    #[test]
    #[should_panic(
        expected = "conv2d: input [1, 1, 3, 3] and weight [1, 1, 5, 5]: kernel 5×5 is larger"
    )]
    fn kernel_too_large_panics() {
        let mut g = Graph::new();
        let x = g.input(Tensor::zeros(&[1, 1, 3, 3]));
        let w = g.param(Tensor::zeros(&[1, 1, 5, 5]));
        g.conv2d(x, w, None, (1, 1), (0, 0));
    }

    #[test]
    #[should_panic(expected = "and weight [2, 1, 3, 3]: the bias must be [2], got [3]")]
    fn bias_mismatch_panics() {
        let mut g = Graph::new();
        let x = g.input(Tensor::zeros(&[1, 1, 3, 3]));
        let w = g.param(Tensor::zeros(&[2, 1, 3, 3]));
        let b = g.param(Tensor::zeros(&[3]));
        g.conv2d(x, w, Some(b), (1, 1), (0, 0));
    }
}
