//! 2-d convolution over a batch: the loops behind `ops::conv` (whose docs
//! give the method: direct kernels for stride 1, else im2col and a product
//! per sample; chunks of samples over the thread team; partial `∂W`, `∂b`
//! per chunk added in chunk order, so the same bits for any thread count).

pub(crate) mod direct;

use crate::cpu::par::{by_ranges, map_tasks};
use crate::cpu::window::valid;
use crate::cpu::{
    add_into, as_uninit, copy_short, matmul_into, matmul_serial_into, sum_lanes, Trans,
};
use direct::DirectConv;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

/// Roughly the multiply-adds worth one task.
const TASK_WORK: usize = 1 << 17;
/// The most chunks a batch is cut into (bounds the partial `∂W` buffers).
const MAX_TASKS: usize = 64;

static IM2COL_ONLY: AtomicBool = AtomicBool::new(false);

/// Makes every convolution use im2col (`true`) instead of the direct
/// kernels for stride 1 (`false`, the default): to compare the two. Both
/// give the same values to float rounding; each is deterministic.
pub fn set_im2col_only(on: bool) {
    IM2COL_ONLY.store(on, Ordering::Relaxed);
}

/// One per-sample product: single-threaded when the batch itself is split
/// over threads (`serial`), else through [`matmul_into`], which may split
/// the product over threads.
#[allow(clippy::too_many_arguments)]
fn product(
    serial: bool,
    out: &mut [f32],
    a: &[f32],
    ta: Trans,
    b: &[f32],
    tb: Trans,
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    if serial {
        matmul_serial_into(out, a, ta, b, tb, m, k, n, accumulate);
    } else {
        matmul_into(out, a, ta, b, tb, m, k, n, accumulate);
    }
}

/// Every size of one convolution (checked by its op, `ops::conv`): `n`
/// samples of `c × h × w`, `o` kernels of `c × kh × kw`, stride `sh, sw`,
/// zero padding `ph, pw`, outputs `ho × wo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) o: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) sh: usize,
    pub(crate) sw: usize,
    pub(crate) ph: usize,
    pub(crate) pw: usize,
    pub(crate) ho: usize,
    pub(crate) wo: usize,
}

impl ConvGeom {
    /// Rows of the im2col matrix.
    pub(crate) fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Columns of the im2col matrix (output positions).
    pub(crate) fn p(&self) -> usize {
        self.ho * self.wo
    }
    /// Values of one input sample.
    fn chw(&self) -> usize {
        self.c * self.h * self.w
    }
    /// A 1×1 kernel, stride 1, no padding: the im2col of a sample is the sample.
    pub(crate) fn pointwise(&self) -> bool {
        (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw) == (1, 1, 1, 1, 0, 0)
    }
    /// Whether the direct kernels serve this convolution: stride 1, a kernel
    /// larger than 1×1 (a pointwise one is already a plain product), and a
    /// CPU with AVX2 and FMA.
    pub(crate) fn direct(&self) -> bool {
        (self.sh, self.sw) == (1, 1)
            && !self.pointwise()
            && direct::available()
            && !IM2COL_ONLY.load(Ordering::Relaxed)
    }

    /// The direct kernels' view of this convolution.
    fn direct_conv(&self) -> DirectConv {
        DirectConv::new(
            (self.c, self.h, self.w),
            (self.o, self.kh, self.kw),
            (self.ph, self.pw),
            crate::cpu::isa::simd(),
        )
    }

    /// Samples per chunk: a function of the shapes only.
    pub(crate) fn chunk(&self) -> usize {
        let per_sample = (self.o + 1) * self.k() * self.p();
        TASK_WORK
            .div_ceil(per_sample.max(1))
            .max(self.n.div_ceil(MAX_TASKS))
            .clamp(1, self.n.max(1))
    }
}

/// `dst = 0` for short runs (the padding at the ends of an im2col row).
#[inline(always)]
fn zero_short(dst: &mut [MaybeUninit<f32>]) {
    const ZEROS: [MaybeUninit<f32>; 32] = [MaybeUninit::new(0.0); 32];
    if dst.len() <= ZEROS.len() {
        copy_short(dst, &ZEROS);
    } else {
        dst.fill(MaybeUninit::new(0.0));
    }
}

/// An initialized `f32` buffer as a destination for [`im2col`] (which only
/// ever writes initialized values into it).
pub(crate) fn as_uninit_mut(x: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same layout; every write through the result stores an
    // initialized `f32`, so `x` stays initialized.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast(), x.len()) }
}

/// For each kernel row `i` and column `j`, the output rows and columns whose
/// receptive field hits a real (not padding) input pixel there: computed once
/// per pass, not once per sample (they cost divisions).
pub(crate) struct Spans {
    rows: Vec<(usize, usize)>,
    cols: Vec<(usize, usize)>,
}

impl Spans {
    pub(crate) fn new(g: &ConvGeom) -> Spans {
        Spans {
            rows: (0..g.kh).map(|i| valid(i, g.ph, g.sh, g.h, g.ho)).collect(),
            cols: (0..g.kw).map(|j| valid(j, g.pw, g.sw, g.w, g.wo)).collect(),
        }
    }
}

/// One sample `x: [C, H, W]` → `cols: [C·kh·kw, Ho·Wo]` (every value written).
///
/// It writes every value of `cols` (padding as zeros), so `cols` may start
/// uninitialized: the kept columns are never zeroed first.
pub(crate) fn im2col(g: &ConvGeom, sp: &Spans, x: &[f32], cols: &mut [MaybeUninit<f32>]) {
    let x = as_uninit(x);
    let (wo, p) = (g.wo, g.p());
    let mut rows = cols.chunks_exact_mut(p);
    for plane in x.chunks_exact(g.h * g.w) {
        for (i, &(oy0, oy1)) in sp.rows.iter().enumerate() {
            for (j, &(ox0, ox1)) in sp.cols.iter().enumerate() {
                let row = rows.next().expect("im2col: cols too short");
                zero_short(&mut row[..oy0 * wo]);
                zero_short(&mut row[oy1 * wo..]);
                if ox0 == ox1 {
                    zero_short(&mut row[oy0 * wo..oy1 * wo]);
                    continue;
                }
                let ix0 = ox0 * g.sw + j - g.pw;
                let n = ox1 - ox0;
                let pad = ox0 > 0 || ox1 < wo;
                // Output row oy reads input row oy·sh + i − ph, from column ix0.
                let mut src = (oy0 * g.sh + i - g.ph) * g.w + ix0;
                for oy in oy0..oy1 {
                    let dst = oy * wo;
                    if pad {
                        zero_short(&mut row[dst..dst + ox0]);
                        zero_short(&mut row[dst + ox1..dst + wo]);
                    }
                    let d = &mut row[dst + ox0..dst + ox1];
                    if g.sw == 1 {
                        copy_short(d, &plane[src..src + n]);
                    } else {
                        let s = plane[src..].iter().step_by(g.sw);
                        for (d, s) in d.iter_mut().zip(s) {
                            *d = *s;
                        }
                    }
                    src += g.sh * g.w;
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: `dx += col2im(cols)` for one sample.
pub(crate) fn col2im(g: &ConvGeom, sp: &Spans, cols: &[f32], dx: &mut [f32]) {
    let (wo, p) = (g.wo, g.p());
    let mut rows = cols.chunks_exact(p);
    for plane in dx.chunks_exact_mut(g.h * g.w) {
        for (i, &(oy0, oy1)) in sp.rows.iter().enumerate() {
            for (j, &(ox0, ox1)) in sp.cols.iter().enumerate() {
                let row = rows.next().expect("col2im: cols too short");
                if ox0 == ox1 {
                    continue;
                }
                for oy in oy0..oy1 {
                    let iy = oy * g.sh + i - g.ph;
                    let ix0 = ox0 * g.sw + j - g.pw;
                    let dst = &mut plane[iy * g.w + ix0..(iy + 1) * g.w];
                    let src = &row[oy * wo + ox0..oy * wo + ox1];
                    if g.sw == 1 {
                        for (d, s) in dst.iter_mut().zip(src) {
                            *d += s;
                        }
                    } else {
                        for (d, s) in dst.iter_mut().step_by(g.sw).zip(src) {
                            *d += s;
                        }
                    }
                }
            }
        }
    }
}

/// The forward pass on flat buffers: `y: [N, O, P]`, and, when `keep` (and
/// the kernel is not pointwise), the im2col of every chunk of samples
/// (`[chunk, K, P]` each). Each chunk's buffer is allocated by its own task,
/// so its zeroing happens in cache right before im2col overwrites it.
pub(crate) fn conv_forward(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    keep: bool,
    direct: bool,
    t: usize,
) -> (Vec<f32>, Option<Vec<Vec<f32>>>) {
    let (o, k, p, chw, chunk) = (g.o, g.k(), g.p(), g.chw(), g.chunk());
    if direct {
        let d = g.direct_conv();
        let wpack = d.pack_weights(w);
        // Not zeroed first: the kernel writes every output value.
        let mut y = Vec::with_capacity(g.n * o * p);
        let items: Vec<&mut [MaybeUninit<f32>]> = y.spare_capacity_mut()[..g.n * o * p]
            .chunks_mut(chunk * o * p)
            .collect();
        // Per job: the padded input and the output tiles.
        let init = || (Vec::new(), Vec::new());
        map_tasks(items, t, init, |(xpad, tiles), ti, yc| {
            for (si, ys) in yc.chunks_exact_mut(o * p).enumerate() {
                let s = ti * chunk + si;
                d.pad_input(&x[s * chw..(s + 1) * chw], xpad);
                d.forward(&wpack, xpad, b, ys, tiles);
            }
        });
        // SAFETY: `forward` wrote all o·p values of every sample, and the
        // capacity holds n·o·p.
        unsafe { y.set_len(g.n * o * p) };
        return (y, None);
    }
    let pointwise = g.pointwise();
    let keep = keep && !pointwise;
    let spans = Spans::new(g);
    let serial = g.n > chunk;
    let mut y = vec![0.0f32; g.n * o * p];
    let items: Vec<&mut [f32]> = y.chunks_mut(chunk * o * p).collect();
    // Per job: the im2col scratch when nothing is kept.
    let init = || {
        if keep || pointwise {
            Vec::new()
        } else {
            vec![0.0f32; k * p]
        }
    };
    let kept = map_tasks(items, t, init, |scratch, ti, yc| {
        let samples = yc.len() / (o * p);
        // The kept columns are written by im2col only, never zeroed first.
        let mut kept: Vec<f32> = Vec::with_capacity(if keep { samples * k * p } else { 0 });
        for (si, ys) in yc.chunks_exact_mut(o * p).enumerate() {
            let s = ti * chunk + si;
            let xs = &x[s * chw..(s + 1) * chw];
            let cs: &[f32] = if pointwise {
                xs
            } else if keep {
                let c = &mut kept.spare_capacity_mut()[..k * p];
                im2col(g, &spans, xs, c);
                // SAFETY: im2col wrote all k·p values of `c`, and the length
                // grows by exactly those (the capacity holds every sample).
                unsafe { kept.set_len(kept.len() + k * p) };
                &kept[si * k * p..]
            } else {
                im2col(g, &spans, xs, as_uninit_mut(scratch));
                scratch
            };
            if let Some(b) = b {
                for (row, &bv) in ys.chunks_exact_mut(p).zip(b) {
                    row.fill(bv);
                }
            }
            product(
                serial,
                ys,
                w,
                Trans::No,
                cs,
                Trans::No,
                o,
                k,
                p,
                b.is_some(),
            );
        }
        kept
    });
    (y, keep.then_some(kept))
}

/// GradTable on flat buffers: `(∂x, ∂W, ∂b)`, each only where asked for.
/// `kept` is the forward's im2col of every chunk, if it was kept.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub(crate) fn conv_backward(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    kept: Option<&[Vec<f32>]>,
    needs: (bool, bool, bool),
    direct: bool,
    t: usize,
) -> (Option<Vec<f32>>, Option<Vec<f32>>, Option<Vec<f32>>) {
    let (needs_x, needs_w, needs_b) = needs;
    let (o, k, p, chw, chunk) = (g.o, g.k(), g.p(), g.chw(), g.chunk());
    let pointwise = g.pointwise();
    let direct = direct.then(|| g.direct_conv());
    // ∂x by the direct forward kernel over the transposed geometry, with its
    // weights packed once for the batch.
    let transposed = match &direct {
        Some(d) if needs_x => d.transposed().map(|t| {
            let wt = t.pack_weights(&d.flip_weights(w));
            (t, wt)
        }),
        _ => None,
    };
    let spans = Spans::new(g);
    let serial = g.n > chunk;
    let mut dx = needs_x.then(|| vec![0.0f32; g.n * chw]);
    let items: Vec<Option<&mut [f32]>> = match &mut dx {
        Some(d) => d.chunks_mut(chunk * chw).map(Some).collect(),
        None => (0..g.n.div_ceil(chunk)).map(|_| None).collect(),
    };
    // Per job: the im2col scratch (when not kept), the ∂cols scratch, and
    // the direct kernels' padded input and ∂y, and their ∂x scratch (the
    // columns or the padded ∂y and output tiles of the transposed pass).
    let init = || {
        let cols = if needs_w && kept.is_none() && !pointwise && direct.is_none() {
            vec![0.0f32; k * p]
        } else {
            Vec::new()
        };
        let dcols = if needs_x && !pointwise && direct.is_none() {
            vec![0.0f32; k * p]
        } else {
            Vec::new()
        };
        (cols, dcols, Vec::new(), Vec::new(), Vec::new(), Vec::new())
    };
    let partials = map_tasks(items, t, init, |state, ti, mut dxc| {
        let (cols, dcols, xpad, dpad, tcols, tiles) = state;
        let (s0, s1) = (ti * chunk, ((ti + 1) * chunk).min(g.n));
        let mut dw = if needs_w {
            vec![0.0f32; o * k]
        } else {
            Vec::new()
        };
        let mut db = if needs_b { vec![0.0f32; o] } else { Vec::new() };
        for s in s0..s1 {
            let gs = &dy[s * o * p..(s + 1) * o * p];
            let xs = &x[s * chw..(s + 1) * chw];
            if needs_b {
                for (acc, row) in db.iter_mut().zip(gs.chunks_exact(p)) {
                    *acc += sum_lanes(row);
                }
            }
            if let Some(d) = &direct {
                if needs_w || (dxc.is_some() && transposed.is_none()) {
                    d.pad_grad(gs, dpad);
                }
                if needs_w {
                    d.pad_input(xs, xpad);
                    d.grad_weight(xpad, dpad, &mut dw);
                }
                if let Some(dxc) = dxc.as_deref_mut() {
                    let dxs = &mut dxc[(s - s0) * chw..(s - s0 + 1) * chw];
                    if let Some((t, wt)) = &transposed {
                        // `tcols` holds the padded ∂y here.
                        t.pad_input(gs, tcols);
                        t.forward(wt, tcols, None, as_uninit_mut(dxs), tiles);
                    } else {
                        d.grad_input(w, dpad, dxs, tcols);
                    }
                }
                continue;
            }
            if needs_w {
                let cs: &[f32] = match kept {
                    _ if pointwise => xs,
                    Some(kc) => &kc[ti][(s - s0) * k * p..(s - s0 + 1) * k * p],
                    None => {
                        im2col(g, &spans, xs, as_uninit_mut(cols));
                        cols
                    }
                };
                // ∂W[O, K] += δ_n[O, P] · cols_n[K, P]ᵀ
                product(
                    serial,
                    &mut dw,
                    gs,
                    Trans::No,
                    cs,
                    Trans::Yes,
                    o,
                    p,
                    k,
                    true,
                );
            }
            if let Some(dxc) = dxc.as_deref_mut() {
                let dxs = &mut dxc[(s - s0) * chw..(s - s0 + 1) * chw];
                // ∂cols[K, P] = Wᵀ[K, O] · δ_n[O, P]
                if pointwise {
                    product(serial, dxs, w, Trans::Yes, gs, Trans::No, k, o, p, false);
                } else {
                    product(serial, dcols, w, Trans::Yes, gs, Trans::No, k, o, p, false);
                    col2im(g, &spans, dcols, dxs);
                }
            }
        }
        (dw, db)
    });
    let (pw, pb): (Vec<_>, Vec<_>) = partials.into_iter().unzip();
    let dw = needs_w.then(|| sum_in_order(&pw, o * k, t));
    let db = needs_b.then(|| sum_in_order(&pb, o, t));
    (dx, dw, db)
}

/// `0 + p₀ + p₁ + …` value by value (the partial gradients of the chunks,
/// added in chunk order), each thread summing every partial over its own
/// range of values once there is enough to add (up to `t` threads): the
/// same sums in the same order whatever the split.
fn sum_in_order(parts: &[Vec<f32>], len: usize, t: usize) -> Vec<f32> {
    let add = |r: std::ops::Range<usize>| {
        let mut acc = vec![0.0f32; r.len()];
        for p in parts {
            add_into(&mut acc, &p[r.clone()]);
        }
        acc
    };
    let t = if parts.len() * len >= 1 << 16 {
        t.min(len / 16)
    } else {
        1
    };
    by_ranges(len, t, 16, add).concat()
}

#[cfg(test)]
mod tests {
    use super::sum_in_order;

    #[test]
    fn partial_sums_are_added_in_order_whatever_the_split() {
        let parts: Vec<Vec<f32>> = (0..40)
            .map(|p| {
                (0..3000)
                    .map(|i| ((i * 31 + p * 7) % 97) as f32 * 0.37 - 11.0)
                    .collect()
            })
            .collect();
        let plain: Vec<u32> = (0..3000)
            .map(|i| parts.iter().fold(0.0f32, |a, p| a + p[i]).to_bits())
            .collect();
        for t in [1, 2, 3, 8] {
            let got: Vec<u32> = sum_in_order(&parts, 3000, t)
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(got, plain, "{t} threads");
        }
    }
}
