//! Max pooling over planes: the kernels behind `ops::pool` (its docs give
//! the semantics: PyTorch's scan order, first maximum wins ties, NaN
//! propagates).
//!
//! Planes are processed in chunks, a few jobs of the thread team
//! (`tensor::team`) per thread when there is enough work; every output and
//! every input gradient is computed by a single job in a fixed order, so
//! results do not depend on the thread count. The 2×2, stride-2 pooling
//! (LeNet's) has its own loops, 8 outputs at a time with AVX2.

use crate::cpu::filled;
#[cfg(target_arch = "x86_64")]
use crate::cpu::isa::Avx2;
use crate::cpu::par::map_tasks;
use crate::cpu::window::valid;
use std::mem::MaybeUninit;

/// Roughly the window elements read by one task.
const TASK_WORK: usize = 1 << 16;

/// Every size of one pooling (checked by its op, `ops::pool`): `planes`
/// planes of `h × w` values, `kh × kw` windows, stride `sh, sw`, implicit
/// −∞ padding `ph, pw`, `ho × wo` outputs a plane.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolGeom {
    pub(crate) planes: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) sh: usize,
    pub(crate) sw: usize,
    pub(crate) ph: usize,
    pub(crate) pw: usize,
    pub(crate) ho: usize,
    pub(crate) wo: usize,
}

impl PoolGeom {
    /// 2×2 windows with stride 2 and no padding (LeNet's): they tile the
    /// plane, which the fast paths of the forward and backward rely on.
    fn tiles_2x2(&self) -> bool {
        (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw) == (2, 2, 2, 2, 0, 0)
    }

    /// Planes per task.
    pub(crate) fn chunk(&self) -> usize {
        let per_plane = self.ho * self.wo * self.kh * self.kw;
        TASK_WORK.div_ceil(per_plane.max(1)).max(1)
    }
}

/// The input range `lo..hi` covered by output `o` along one axis, clipped to `0..len`.
fn window(o: usize, k: usize, s: usize, pad: usize, len: usize) -> (usize, usize) {
    let start = o * s;
    (start.saturating_sub(pad), (start + k - pad).min(len))
}

/// The forward on flat buffers (`x`: `planes` planes of `h × w`): `y` and
/// the picked index of every window (flat, within its plane).
///
/// Each output row is computed a kernel element at a time across all its
/// windows (`for ih, for j, for ox`): the windows are independent lanes, so
/// there is no dependency chain from one comparison to the next, and each
/// window still sees its elements in row-major scan order.
pub(crate) fn max_pool(g: &PoolGeom, x: &[f32], t: usize) -> (Vec<f32>, Vec<u32>) {
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
    // Each task clears its own chunks (in parallel, in cache) before
    // writing them, instead of one thread zeroing both buffers first.
    let n = g.planes * plane_out;
    let mut y: Vec<f32> = Vec::with_capacity(n);
    let mut arg: Vec<u32> = Vec::with_capacity(n);
    let items: Vec<_> = y.spare_capacity_mut()[..n]
        .chunks_mut(chunk * plane_out)
        .zip(arg.spare_capacity_mut()[..n].chunks_mut(chunk * plane_out))
        .collect();
    map_tasks(
        items,
        t,
        || vec![0.0f32; g.wo],
        |lane, ti, (yc, ac)| {
            let (yc, ac) = (filled(yc, 0.0), filled(ac, 0));
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
    // SAFETY: the chunks cover all `n` values of both buffers, and every
    // task filled its chunks (`filled`) before writing them.
    unsafe {
        y.set_len(n);
        arg.set_len(n);
    }
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
    let avx2 = crate::cpu::isa::avx2();
    let rows = y.chunks_exact_mut(wo).zip(arg.chunks_exact_mut(wo));
    for (oy, (ym, am)) in rows.enumerate() {
        let top = 2 * oy * w;
        let (r0, r1) = (&x[top..top + 2 * wo], &x[top + w..top + w + 2 * wo]);
        #[cfg(target_arch = "x86_64")]
        if let (Some(t), true) = (avx2, wo >= 8) {
            // SAFETY: `wo ≥ 8`; `r0` and `r1` were sliced to exactly `2·wo`
            // values and `ym`, `am` are chunks of `wo` (the token is the
            // proof of AVX2).
            unsafe { pool_2x2_avx2(t, r0, r1, top as u32, w as u32, ym, am) };
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
/// (The CPU supports AVX2: the token proves it.)
/// - `y.len() ≥ 8` ([`steps_of_8`] computes `y.len() − 8`, which would wrap
///   in a release build).
/// - `r0.len()` and `r1.len()` are at least `2·y.len()`, and `arg.len()` at
///   least `y.len()`: the step at `ox` reads 16 values from `r0` and `r1` at
///   `2·ox` and stores 8 into `y` and `arg` at `ox`, unchecked.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pool_2x2_avx2(
    _: Avx2,
    r0: &[f32],
    r1: &[f32],
    top: u32,
    w: u32,
    y: &mut [f32],
    arg: &mut [u32],
) {
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
pub(crate) fn max_pool_backward(g: &PoolGeom, arg: &[u32], dy: &[f32], t: usize) -> Vec<f32> {
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

/// One plane of [`max_pool_backward`] for 2×2 windows with stride 2 and no padding:
/// each window's four elements get `0 + δ` where it picked, `0` elsewhere
/// (the values and signed zeros of a scatter-add into zeros); a last row or
/// column that no window covers (odd sizes) gets `0`. Bit masks, not
/// branches (as [`pool_2x2`]); with AVX2, 8 windows of a row at once.
fn unpool_2x2(arg: &[u32], dy: &[f32], w: usize, wo: usize, dx: &mut [MaybeUninit<f32>]) {
    #[cfg(target_arch = "x86_64")]
    let avx2 = crate::cpu::isa::avx2();
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
        if let (Some(t), true) = (avx2, wo >= 8) {
            // SAFETY: `wo ≥ 8`; `ar` and `dr` are chunks of `wo`, and
            // `row0`, `row1` hold `w ≥ 2·wo` values each (the slicing
            // `row0[2 * wo..]` above checked it); the token is the proof
            // of AVX2.
            unsafe { unpool_2x2_avx2(t, ar, dr, top as u32, w as u32, row0, row1) };
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
/// (The CPU supports AVX2: the token proves it.)
/// - `arg.len() ≥ 8` ([`steps_of_8`] computes `arg.len() − 8`, which would
///   wrap in a release build).
/// - `dy.len()` is at least `arg.len()`, and `row0.len()` and `row1.len()`
///   at least `2·arg.len()`: the step at `ox` reads 8 values of `arg` and
///   `dy` at `ox` and stores 16 into each row at `2·ox`, unchecked.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn unpool_2x2_avx2(
    _: Avx2,
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
