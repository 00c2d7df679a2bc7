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
//! Planes are processed in chunks, a few jobs of the
//! thread team (`tensor::team`) per thread
//! ([`threads()`](crate::tensor::threads)) when there is enough work;
//! every output and every input gradient is computed by a single job in a
//! fixed order, so results do not depend on the thread count.

use crate::autograd::Backward;
use crate::tensor::par::map_tasks;
use crate::tensor::threads;
use crate::tensor::window::valid;
use crate::{Graph, Tensor, Var};
use std::mem::MaybeUninit;

/// Roughly the window elements read by one task.
const TASK_WORK: usize = 1 << 16;

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

/// Every size of one pooling.
#[derive(Clone, Copy, Debug)]
struct Geom {
    planes: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    ho: usize,
    wo: usize,
}

impl Geom {
    fn new(
        xs: &[usize],
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Geom {
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
            panic!(
                "max_pool2d: kernel {kernel:?} does not fit input {xs:?} with padding {padding:?}"
            )
        };
        assert!(
            xs[2] * xs[3] <= u32::MAX as usize,
            "max_pool2d: input {xs:?} has planes too large for u32 indices"
        );
        Geom {
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

    /// 2×2 windows with stride 2 and no padding (LeNet's): they tile the
    /// plane, which the fast paths of the forward and backward rely on.
    fn tiles_2x2(&self) -> bool {
        (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw) == (2, 2, 2, 2, 0, 0)
    }

    /// Planes per task.
    fn chunk(&self) -> usize {
        let per_plane = self.ho * self.wo * self.kh * self.kw;
        TASK_WORK.div_ceil(per_plane.max(1)).max(1)
    }
}

/// The input range `lo..hi` covered by output `o` along one axis, clipped to `0..len`.
fn window(o: usize, k: usize, s: usize, pad: usize, len: usize) -> (usize, usize) {
    let start = o * s;
    (start.saturating_sub(pad), (start + k - pad).min(len))
}

/// The forward on flat buffers: `y` and the picked index of every window.
///
/// Each output row is computed a kernel element at a time across all its
/// windows (`for ih, for j, for ox`): the windows are independent lanes, so
/// there is no dependency chain from one comparison to the next, and each
/// window still sees its elements in row-major scan order.
fn forward(g: &Geom, x: &[f32], t: usize) -> (Vec<f32>, Vec<u32>) {
    let (plane_in, plane_out, chunk) = (g.h * g.w, g.ho * g.wo, g.chunk());
    let rows: Vec<(usize, usize)> = (0..g.ho)
        .map(|oy| window(oy, g.kh, g.sh, g.ph, g.h))
        .collect();
    // The first column of each window, and for each kernel column j the
    // outputs whose window holds a real element there.
    let first: Vec<usize> = (0..g.wo)
        .map(|ox| window(ox, g.kw, g.sw, g.pw, g.w).0)
        .collect();
    let spans: Vec<(usize, usize)> = (0..g.kw).map(|j| valid(j, g.pw, g.sw, g.w, g.wo)).collect();
    let two_by_two = g.tiles_2x2();
    let mut y = vec![0.0f32; g.planes * plane_out];
    let mut arg = vec![0u32; g.planes * plane_out];
    let items: Vec<_> = y
        .chunks_mut(chunk * plane_out)
        .zip(arg.chunks_mut(chunk * plane_out))
        .collect();
    map_tasks(
        items,
        t,
        || vec![0.0f32; g.wo],
        |lane, ti, (yc, ac)| {
            let planes = yc
                .chunks_exact_mut(plane_out)
                .zip(ac.chunks_exact_mut(plane_out));
            for (pi, (yp, ap)) in planes.enumerate() {
                let xp = &x[(ti * chunk + pi) * plane_in..][..plane_in];
                if two_by_two {
                    pool_2x2(xp, g.w, g.wo, yp, ap);
                    continue;
                }
                let out_rows = yp.chunks_exact_mut(g.wo).zip(ap.chunks_exact_mut(g.wo));
                for ((ym, am), &(ih0, ih1)) in out_rows.zip(&rows) {
                    ym.fill(f32::NEG_INFINITY);
                    for (a, &iw0) in am.iter_mut().zip(&first) {
                        *a = (ih0 * g.w + iw0) as u32;
                    }
                    for ih in ih0..ih1 {
                        let xrow = &xp[ih * g.w..(ih + 1) * g.w];
                        for (j, &(ox0, ox1)) in spans.iter().enumerate() {
                            if ox0 == ox1 {
                                continue;
                            }
                            let ix0 = ox0 * g.sw + j - g.pw;
                            let base = (ih * g.w + ix0) as u32;
                            let (ym, am) = (&mut ym[ox0..ox1], &mut am[ox0..ox1]);
                            // Gather the strided column first, so that the update
                            // below runs on contiguous lanes and vectorizes. It
                            // selects with bit masks, not branches: a branch per
                            // value would mispredict about once per window.
                            let lane = &mut lane[..ox1 - ox0];
                            for (d, s) in lane.iter_mut().zip(xrow[ix0..].iter().step_by(g.sw)) {
                                *d = *s;
                            }
                            for (l, ((m, a), &v)) in
                                ym.iter_mut().zip(am.iter_mut()).zip(&*lane).enumerate()
                            {
                                let take = ((v > *m) | v.is_nan()) as u32;
                                let mask = take.wrapping_neg();
                                *m = f32::from_bits((v.to_bits() & mask) | (m.to_bits() & !mask));
                                *a = ((base + (l * g.sw) as u32) & mask) | (*a & !mask);
                            }
                        }
                    }
                }
            }
        },
    );
    (y, arg)
}

/// One plane of the most common pooling, 2×2 with stride 2 and no padding
/// (LeNet's): every window lies inside the plane, so each output reads its
/// four elements directly, in the same scan order and with the same
/// `v > max || v.is_nan()` rule as the general loop. Starting from the
/// window's first element instead of −∞ picks the same value and index (a
/// first element of −∞ is not replaced by −∞ either way). Selection is by
/// bit masks, never branches (the pick is data: a branch mispredicted about
/// once per window); with AVX2 (checked at run time) 8 outputs of a row go
/// at once in rows of 8 or more ([`pool_2x2_avx2`]), shorter rows one by one,
/// with the same selection.
fn pool_2x2(x: &[f32], w: usize, wo: usize, y: &mut [f32], arg: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    let avx2 = is_x86_feature_detected!("avx2");
    let rows = y.chunks_exact_mut(wo).zip(arg.chunks_exact_mut(wo));
    for (oy, (ym, am)) in rows.enumerate() {
        let top = 2 * oy * w;
        let (r0, r1) = (&x[top..top + 2 * wo], &x[top + w..top + w + 2 * wo]);
        #[cfg(target_arch = "x86_64")]
        if avx2 && wo >= 8 {
            // SAFETY: the CPU has AVX2 (detected above) and `wo ≥ 8`;
            // `r0` and `r1` were sliced to exactly `2·wo` values and `ym`,
            // `am` are chunks of `wo`.
            unsafe { pool_2x2_avx2(r0, r1, top as u32, w as u32, ym, am) };
            continue;
        }
        for ox in 0..wo {
            let i0 = (top + 2 * ox) as u32;
            let (mut best, mut at) = (r0[2 * ox], i0);
            for (v, i) in [
                (r0[2 * ox + 1], i0 + 1),
                (r1[2 * ox], i0 + w as u32),
                (r1[2 * ox + 1], i0 + w as u32 + 1),
            ] {
                let mask = (((v > best) | v.is_nan()) as u32).wrapping_neg();
                best = f32::from_bits((v.to_bits() & mask) | (best.to_bits() & !mask));
                at = (i & mask) | (at & !mask);
            }
            ym[ox] = best;
            am[ox] = at;
        }
    }
}

/// Where the 8-wide steps over `n ≥ 8` outputs start: every multiple of 8,
/// then `n − 8` for a ragged end (those outputs are computed twice, the same
/// values written twice).
#[cfg(target_arch = "x86_64")]
fn steps_of_8(n: usize) -> impl Iterator<Item = usize> {
    debug_assert!(n >= 8);
    let last = (!n.is_multiple_of(8)).then(|| n - 8);
    (0..n / 8 * 8).step_by(8).chain(last)
}

/// [`pool_2x2`] for one row of at least 8 outputs, 8 at a time (see
/// [`steps_of_8`]): `r0`, `r1` are the window rows (`2·wo` values each),
/// `top` the flat index of `r0`'s first element in the plane.
///
/// # Safety
/// - The CPU supports AVX2 (checked by `is_x86_feature_detected!` in
///   [`pool_2x2`]).
/// - `y.len() ≥ 8` ([`steps_of_8`] computes `y.len() − 8`, which would wrap
///   in a release build).
/// - `r0.len()` and `r1.len()` are at least `2·y.len()`, and `arg.len()` at
///   least `y.len()`: the step at `ox` reads 16 values from `r0` and `r1` at
///   `2·ox` and stores 8 into `y` and `arg` at `ox`, unchecked.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pool_2x2_avx2(r0: &[f32], r1: &[f32], top: u32, w: u32, y: &mut [f32], arg: &mut [u32]) {
    use std::arch::x86_64::*;
    let lanes = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    // The even and odd elements of 16 consecutive values, in order.
    let split = |p: *const f32| {
        let (lo, hi) = (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
        let order = |v: __m256| {
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
        };
        (
            order(_mm256_shuffle_ps::<0b10_00_10_00>(lo, hi)),
            order(_mm256_shuffle_ps::<0b11_01_11_01>(lo, hi)),
        )
    };
    for ox in steps_of_8(y.len()) {
        let (a, b) = split(r0.as_ptr().add(2 * ox));
        let (c, d) = split(r1.as_ptr().add(2 * ox));
        let i0 = _mm256_add_epi32(_mm256_set1_epi32((top + 2 * ox as u32) as i32), lanes);
        let (mut best, mut at) = (a, _mm256_castsi256_ps(i0));
        for (v, off) in [(b, 1), (c, w), (d, w + 1)] {
            let take = _mm256_or_ps(
                _mm256_cmp_ps::<_CMP_GT_OQ>(v, best),
                _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v),
            );
            let i = _mm256_castsi256_ps(_mm256_add_epi32(i0, _mm256_set1_epi32(off as i32)));
            best = _mm256_blendv_ps(best, v, take);
            at = _mm256_blendv_ps(at, i, take);
        }
        _mm256_storeu_ps(y.as_mut_ptr().add(ox), best);
        _mm256_storeu_ps(arg.as_mut_ptr().add(ox) as *mut f32, at);
    }
}

/// `∂x`: each output's gradient added to the element its window picked.
fn backward(g: &Geom, arg: &[u32], dy: &[f32], t: usize) -> Vec<f32> {
    let (plane_in, plane_out, chunk) = (g.h * g.w, g.ho * g.wo, g.chunk());
    if g.tiles_2x2() {
        // Windows that tile the plane: every element is written once, so
        // the buffer is not zeroed first.
        let mut dx = Vec::with_capacity(g.planes * plane_in);
        let items: Vec<_> = dx.spare_capacity_mut()[..g.planes * plane_in]
            .chunks_mut(chunk * plane_in)
            .collect();
        map_tasks(
            items,
            t,
            || (),
            |_, ti, dxc| {
                for (pi, dxp) in dxc.chunks_exact_mut(plane_in).enumerate() {
                    let off = (ti * chunk + pi) * plane_out;
                    let (a, d) = (&arg[off..off + plane_out], &dy[off..off + plane_out]);
                    unpool_2x2(a, d, g.w, g.wo, dxp);
                }
            },
        );
        // SAFETY: `unpool_2x2` wrote every value of every plane, and the
        // capacity holds them all.
        unsafe { dx.set_len(g.planes * plane_in) };
        return dx;
    }
    let mut dx = vec![0.0f32; g.planes * plane_in];
    let items: Vec<_> = dx.chunks_mut(chunk * plane_in).collect();
    map_tasks(
        items,
        t,
        || (),
        |_, ti, dxc| {
            for (pi, dxp) in dxc.chunks_exact_mut(plane_in).enumerate() {
                let off = (ti * chunk + pi) * plane_out;
                for (&a, &d) in arg[off..off + plane_out]
                    .iter()
                    .zip(&dy[off..off + plane_out])
                {
                    dxp[a as usize] += d;
                }
            }
        },
    );
    dx
}

/// One plane of [`backward`] for 2×2 windows with stride 2 and no padding:
/// each window's four elements get `0 + δ` where it picked, `0` elsewhere
/// (the values and signed zeros of a scatter-add into zeros); a last row or
/// column that no window covers (odd sizes) gets `0`. Bit masks, not
/// branches (as [`pool_2x2`]); with AVX2, 8 windows of a row at once.
fn unpool_2x2(arg: &[u32], dy: &[f32], w: usize, wo: usize, dx: &mut [MaybeUninit<f32>]) {
    #[cfg(target_arch = "x86_64")]
    let avx2 = is_x86_feature_detected!("avx2");
    let mut pairs = dx.chunks_exact_mut(2 * w);
    for (oy, (ar, dr)) in arg.chunks_exact(wo).zip(dy.chunks_exact(wo)).enumerate() {
        let (row0, row1) = pairs
            .next()
            .expect("unpool_2x2: plane too short")
            .split_at_mut(w);
        let top = 2 * oy * w;
        for v in row0[2 * wo..].iter_mut().chain(&mut row1[2 * wo..]) {
            v.write(0.0);
        }
        #[cfg(target_arch = "x86_64")]
        if avx2 && wo >= 8 {
            // SAFETY: the CPU has AVX2 (detected above) and `wo ≥ 8`; `ar`
            // and `dr` are chunks of `wo`, and `row0`, `row1` hold `w ≥
            // 2·wo` values each (the slicing `row0[2 * wo..]` above checked
            // it).
            unsafe { unpool_2x2_avx2(ar, dr, top as u32, w as u32, row0, row1) };
            continue;
        }
        for ox in 0..wo {
            let d = (0.0 + dr[ox]).to_bits();
            let k = ar[ox].wrapping_sub((top + 2 * ox) as u32);
            let pick = |at: u32| f32::from_bits(d & ((k == at) as u32).wrapping_neg());
            row0[2 * ox].write(pick(0));
            row0[2 * ox + 1].write(pick(1));
            row1[2 * ox].write(pick(w as u32));
            row1[2 * ox + 1].write(pick(w as u32 + 1));
        }
    }
    for v in pairs.into_remainder() {
        v.write(0.0);
    }
}

/// [`unpool_2x2`] for one row of at least 8 windows, 8 at a time (see
/// [`steps_of_8`]), into the window rows `row0`, `row1` (`top`: the flat
/// index of `row0`'s first element).
///
/// # Safety
/// - The CPU supports AVX2 (checked by `is_x86_feature_detected!` in
///   [`unpool_2x2`]).
/// - `arg.len() ≥ 8` ([`steps_of_8`] computes `arg.len() − 8`, which would
///   wrap in a release build).
/// - `dy.len()` is at least `arg.len()`, and `row0.len()` and `row1.len()`
///   at least `2·arg.len()`: the step at `ox` reads 8 values of `arg` and
///   `dy` at `ox` and stores 16 into each row at `2·ox`, unchecked.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn unpool_2x2_avx2(
    arg: &[u32],
    dy: &[f32],
    top: u32,
    w: u32,
    row0: &mut [MaybeUninit<f32>],
    row1: &mut [MaybeUninit<f32>],
) {
    use std::arch::x86_64::*;
    let lanes = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    // 16 consecutive values, alternately from `even` and `odd`.
    let store = |p: *mut f32, even: __m256, odd: __m256| {
        let (lo, hi) = (_mm256_unpacklo_ps(even, odd), _mm256_unpackhi_ps(even, odd));
        _mm256_storeu_ps(p, _mm256_permute2f128_ps::<0x20>(lo, hi));
        _mm256_storeu_ps(p.add(8), _mm256_permute2f128_ps::<0x31>(lo, hi));
    };
    for ox in steps_of_8(arg.len()) {
        let d = _mm256_add_ps(_mm256_setzero_ps(), _mm256_loadu_ps(dy.as_ptr().add(ox)));
        let a = _mm256_loadu_si256(arg.as_ptr().add(ox) as *const __m256i);
        let i0 = _mm256_add_epi32(_mm256_set1_epi32((top + 2 * ox as u32) as i32), lanes);
        let k = _mm256_sub_epi32(a, i0);
        let pick = |at: u32| {
            let hit = _mm256_cmpeq_epi32(k, _mm256_set1_epi32(at as i32));
            _mm256_and_ps(d, _mm256_castsi256_ps(hit))
        };
        store(row0.as_mut_ptr().add(2 * ox) as *mut f32, pick(0), pick(1));
        store(
            row1.as_mut_ptr().add(2 * ox) as *mut f32,
            pick(w),
            pick(w + 1),
        );
    }
}

struct MaxPool2dBack {
    geom: Geom,
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
        let dx = backward(&self.geom, &self.arg, g.data(), threads());
        vec![Some(Tensor::from_vec(inp[0].shape().to_vec(), dx))]
    }
}

impl Graph {
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
        let xs = self.shape(x);
        let geom = Geom::new(xs, kernel, stride, padding);
        let shape = vec![xs[0], xs[1], geom.ho, geom.wo];
        let (y, arg) = forward(&geom, self.value(x).data(), threads());
        let y = Tensor::from_vec(shape, y);
        self.push("max_pool2d", y, &[x], MaxPool2dBack { geom, arg })
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
        let geom = Geom::new(&xs, (3, 2), (2, 2), (1, 1));
        assert!(geom.planes.div_ceil(geom.chunk()) > 2);
        let x = pseudo_random(&xs, 1);
        let dy = pseudo_random(&[geom.planes * geom.ho * geom.wo], 2);
        let (y1, a1) = forward(&geom, x.data(), 1);
        let dx1 = backward(&geom, &a1, dy.data(), 1);
        for t in [2, 3, 8] {
            let (y, a) = forward(&geom, x.data(), t);
            assert_eq!(y, y1);
            assert_eq!(a, a1);
            assert_eq!(backward(&geom, &a, dy.data(), t), dx1);
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
            let geom = Geom::new(&xs, k, s, p);
            let (y, arg) = forward(&geom, x.data(), 1);
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
                let dx = backward(&geom, &arg, &dy, t);
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
    #[should_panic(expected = "max_pool2d: padding (2, 0) must be at most half the kernel (3, 3)")]
    fn too_much_padding_panics() {
        let mut g = Graph::new();
        let x = g.input(Tensor::zeros(&[1, 1, 6, 6]));
        g.max_pool2d(x, (3, 3), (1, 1), (2, 0));
    }

    #[test]
    #[should_panic(expected = "max_pool2d: kernel (3, 3) does not fit input [1, 1, 2, 2]")]
    fn kernel_too_large_panics() {
        let mut g = Graph::new();
        let x = g.input(Tensor::zeros(&[1, 1, 2, 2]));
        g.max_pool2d(x, (3, 3), (1, 1), (0, 0));
    }
}
