//! Our own single-precision matrix product for x86-64 with AVX2 and FMA.
//!
//! Why hand-written: the matrix product is most of a training step (68 % of
//! an mlp-wide epoch went to the `gemm` crate's micro-kernel), and on this
//! project's AVX2 machine that kernel reached about 77 GFLOP/s per core
//! against PyTorch's 87. This is the classic BLIS/GotoBLAS layout, sized for
//! AVX2 cores:
//!
//! - `B` is packed in `KC × NC` blocks, as column panels `NR = 16` wide
//!   (two ymm registers) stored `k`-major;
//! - `A` is packed in `MC × KC` blocks, as row panels `MR = 6` tall;
//! - a 6×16 micro-kernel keeps the output tile in 12 ymm registers and does
//!   `KC` rank-1 updates: two loads of `B`, six broadcasts of `A`, twelve
//!   FMAs per step.
//!
//! Packing turns every transpose into the same contiguous panel layout, so
//! one micro-kernel serves all four transpose combinations. Edge tiles are
//! computed in full into a scratch tile (panels are zero-padded) and only
//! their valid part is written back.
//!
//! Every output element is summed in the same order (over `KC` blocks, then
//! `k` within a block) whatever the tile or block that computes it, so the
//! result does not depend on how the caller splits the output over threads.
//!
//! The pack buffers live in thread-local storage and are reused from call to
//! call: no allocation in the steady state. When a large product is split
//! over threads, the operand every block reads in full is packed once into a
//! shared buffer instead, by the threads together ([`Shared`],
//! [`sgemm`]).

#![cfg(target_arch = "x86_64")]

use crate::cpu::isa::Avx2;
use std::arch::x86_64::*;
use std::cell::RefCell;

const MR: usize = 6;
const NR: usize = 16;
/// Depth of a block: a 16 × 256 panel of `B` (16 KiB) stays in L1.
const KC: usize = 256;
/// Rows of `A` packed at once: 96 × 256 floats (96 KiB) stay in L2.
const MC: usize = 96;
/// Columns of `B` packed at once: 256 × 2048 floats (2 MiB), from L3.
const NC: usize = 2048;

/// Up to this many rows of A, a row-major B is read in place (see `sgemm`).
const DIRECT_B_MAX_M: usize = 3 * MR;

/// A `Vec<f32>` whose usable part starts on a 64-byte boundary.
#[derive(Default)]
struct Aligned {
    buf: Vec<f32>,
}

impl Aligned {
    fn get(&mut self, len: usize) -> *mut f32 {
        if self.buf.len() < len + 16 {
            self.buf = vec![0.0; len + 16];
        }
        let p = self.buf.as_mut_ptr();
        let off = p.align_offset(64);
        // SAFETY: `off < 16` floats, and the buffer holds `len + 16`.
        unsafe { p.add(off) }
    }
}

thread_local! {
    static PACK: RefCell<(Aligned, Aligned)> = RefCell::new(Default::default());
}

/// The operand that every block of a threaded product reads in full, packed
/// once for all of them: `A` when the output is split by columns, `B` when
/// by rows. Its layout is that of the per-call packing, for every `KC`
/// block at once: block `pc` at `pc·lines_pad`, its panel of lines from `l`
/// at `pc·lines_pad + l·kc`.
pub(super) enum Shared {
    A(Vec<f32>),
    B(Vec<f32>),
}

impl Shared {
    /// Packs `B` (`k × n`) when `by_rows`, else `A` (`m × k`), its panels
    /// split over `jobs` jobs of the team; `None` when `B` is wider than one `NC`
    /// block. Each operand is addressed as in [`sgemm`], from the start of
    /// its slice.
    ///
    /// # Safety
    /// The slices must hold every element those strides address (the
    /// token proves the CPU has AVX2 and FMA).
    pub(super) unsafe fn pack(
        _: Avx2,
        by_rows: bool,
        jobs: usize,
        (m, n, k): (usize, usize, usize),
        (a, a_rs, a_cs): (&[f32], isize, isize),
        (b, b_rs, b_cs): (&[f32], isize, isize),
    ) -> Option<Shared> {
        if by_rows && n > NC {
            return None;
        }
        let (lines, panel) = if by_rows { (n, NR) } else { (m, MR) };
        let len = lines.next_multiple_of(panel) * k;
        let mut buf: Vec<f32> = Vec::with_capacity(len);
        // The address, not the `&mut`, crosses into the jobs.
        let dst = buf.as_mut_ptr() as usize;
        let step = lines.div_ceil(jobs).next_multiple_of(panel);
        super::team::run(lines.div_ceil(step), &|j| {
            let range = j * step..((j + 1) * step).min(lines);
            let dst = dst as *mut f32;
            // SAFETY: the operands hold what the strides address (the
            // caller's promise, as is the token's AVX2); each job writes only
            // the panels of its own lines, inside the `len` values of `buf`:
            // `step` is a multiple of the panel width, so every range starts
            // on a panel and ends on one or at `lines`.
            unsafe {
                if by_rows {
                    pack_full::<NR>(n, k, b.as_ptr(), b_cs, b_rs, range, dst);
                } else {
                    pack_full::<MR>(m, k, a.as_ptr(), a_rs, a_cs, range, dst);
                }
            }
        });
        // SAFETY: the jobs wrote all `len` values (every panel of every
        // block, zero-padded) and have finished.
        buf.set_len(len);
        Some(if by_rows {
            Shared::B(buf)
        } else {
            Shared::A(buf)
        })
    }
}

/// Packs lines `lines` (from a multiple of `W`) of an operand of `len`
/// lines of `k` values (line `i` value `p` at `src + i*si + p*sp`, as in
/// [`pack`]) into `dst`, for every `KC` block: the layout of [`Shared`].
/// Each call writes only its lines' panels, so jobs can pack disjoint
/// ranges at once.
///
/// # Safety
/// - The CPU supports AVX2 and FMA (the caller holds an [`Avx2`] token): [`pack`] may call
///   [`pack_transposed`].
/// - For every line `i` in `lines` and every `p < k`, `src + i*si + p*sp`
///   is a valid, initialized `f32`.
/// - `lines.start` is a multiple of `W` and `lines.end ≤ len`; `dst` is
///   valid for writes of `len.next_multiple_of(W) * k` floats (the whole
///   [`Shared`] layout) and overlaps no value of the source.
/// - Calls that run at the same time on one `dst` take disjoint `lines`,
///   each ending on a multiple of `W` or at `len`: a last panel is
///   zero-padded to `W` lines, which would otherwise write into the next
///   range's panel.
unsafe fn pack_full<const W: usize>(
    len: usize,
    k: usize,
    src: *const f32,
    si: isize,
    sp: isize,
    lines: std::ops::Range<usize>,
    dst: *mut f32,
) {
    debug_assert!(lines.start.is_multiple_of(W) && lines.end <= len);
    let len_pad = len.next_multiple_of(W);
    for pc in (0..k).step_by(KC) {
        let kc = KC.min(k - pc);
        let s = src.offset(lines.start as isize * si + pc as isize * sp);
        let d = dst.add(pc * len_pad + lines.start * kc);
        pack::<W>(lines.len(), kc, s, si, sp, d);
    }
}

/// `C[m,n] (+)= A[m,k] · B[k,n]` with element `(i,p)` of `A` at
/// `a + i*a_rs + p*a_cs`, `(p,j)` of `B` at `b + p*b_rs + j*b_cs`, and `C`
/// row-major with row stride `ldc`. `shared`: `A` or `B` already packed by
/// [`Shared::pack`] for this product (`A`: its rows from this call's first;
/// `B`: all of its columns), bit-identical to packing it here (the same
/// panels, the same order of sums).
///
/// # Safety
/// The pointers and strides must address `m×k`, `k×n` and `m×n` valid
/// elements, `C` must not overlap `A` or `B`, and `shared` must hold this
/// product's operand (the token proves the CPU has AVX2 and FMA).
/// In detail: `C`'s `m` rows of `n` values, `ldc` apart, are valid for
/// writes, and with `accumulate` for reads too (initialized); nothing else
/// accesses them during the call. With `k = 0` nothing is written.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn sgemm(
    _: Avx2,
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: isize,
    b_cs: isize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    shared: Option<&Shared>,
) {
    let (packed_a, packed_b) = match shared {
        Some(Shared::A(v)) => (Some(v.as_ptr()), None),
        Some(Shared::B(v)) => (None, Some(v.as_ptr())),
        None => (None, None),
    };
    debug_assert!(packed_b.is_none() || n <= NC);
    // With few rows of A, each panel of B serves one to three micro-kernel
    // calls, and packing it would cost as much as the product (the
    // convolution's W·cols with 6 or 16 output channels). A row-major B
    // already has the panel layout, 16 contiguous values per `k`, only with
    // a row stride: the kernel then reads it in place. With many rows the
    // packed panel wins (one TLB page instead of one per `k`).
    let direct_b = packed_b.is_none() && b_cs == 1 && m <= DIRECT_B_MAX_M;
    let wide = crate::cpu::isa::avx512().is_some();
    let (mp, np) = (m.next_multiple_of(MR), n.next_multiple_of(NR));
    PACK.with(|pack| {
        let mut pack = pack.borrow_mut();
        let (pa, pb) = &mut *pack;
        let pa = pa.get(MC * KC);
        let pb = pb.get(KC * NC.min(n.next_multiple_of(NR)));
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                let add = accumulate || pc > 0;
                let bblock = b.offset(pc as isize * b_rs + jc as isize * b_cs);
                let full = nc / NR * NR;
                let pb: *const f32 = match packed_b {
                    Some(p) => p.add(pc * np),
                    // Direct B: the full panels are read in place, only the
                    // ragged last one is packed (at the start of `pb`).
                    None if direct_b => {
                        if full < nc {
                            pack_b(kc, nc - full, bblock.add(full), b_rs, b_cs, pb);
                        }
                        pb
                    }
                    None => {
                        pack_b(kc, nc, bblock, b_rs, b_cs, pb);
                        pb
                    }
                };
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    let pa: *const f32 = match packed_a {
                        Some(p) => p.add(pc * mp + ic * kc),
                        None => {
                            pack_a(
                                mc,
                                kc,
                                a.offset(ic as isize * a_rs + pc as isize * a_cs),
                                a_rs,
                                a_cs,
                                pa,
                            );
                            pa
                        }
                    };
                    let panel = |jr: usize| match (direct_b, jr < full) {
                        (true, true) => (bblock.add(jr), b_rs as usize),
                        (true, false) => (pb, NR),
                        (false, _) => (pb.add(jr * kc), NR),
                    };
                    let mut jr = 0;
                    while jr < nc {
                        let nr = NR.min(nc - jr);
                        let (bp, b_step) = panel(jr);
                        // With AVX-512, two whole panels side by side: a 6×32
                        // tile in 12 registers of 16 (the same sums in the
                        // same order as two 6×16 tiles).
                        let pair = wide && jr + 2 * NR <= full;
                        for ir in (0..mc).step_by(MR) {
                            let mr = MR.min(mc - ir);
                            let ap = pa.add(ir * kc);
                            let cp = c.add((ic + ir) * ldc + jc + jr);
                            if pair && mr == MR {
                                let (bq, q_step) = panel(jr + NR);
                                debug_assert_eq!(q_step, b_step);
                                kernel_wide(kc, ap, bp, bq, b_step, cp, ldc, add);
                            } else if pair {
                                for half in 0..2 {
                                    let (bh, h_step) = panel(jr + half * NR);
                                    let ch = cp.add(half * NR);
                                    edge_tile(kc, ap, bh, h_step, ch, ldc, (mr, NR), add);
                                }
                            } else if mr == MR && nr == NR {
                                kernel(kc, ap, bp, b_step, cp, ldc, add);
                            } else {
                                edge_tile(kc, ap, bp, b_step, cp, ldc, (mr, nr), add);
                            }
                        }
                        jr += if pair { 2 * NR } else { NR };
                    }
                }
            }
        }
    });
}

/// Packs `A[0..mc, 0..kc]` into row panels of `MR`.
///
/// # Safety
/// [`pack`]'s, with `W = MR`, `len = mc`, `si = rs`, `sp = cs`: the CPU
/// supports AVX2 and FMA, `kc ≥ 1`, `A[i, p]` at `a + i*rs + p*cs` is a
/// valid, initialized `f32` for `i < mc`, `p < kc`, and `dst` is valid for
/// writes of `mc.next_multiple_of(MR) * kc` floats, overlapping none of `A`.
unsafe fn pack_a(mc: usize, kc: usize, a: *const f32, rs: isize, cs: isize, dst: *mut f32) {
    pack::<MR>(mc, kc, a, rs, cs, dst)
}

/// Packs `B[0..kc, 0..nc]` into column panels of `NR`.
///
/// # Safety
/// [`pack`]'s, with `W = NR`, `len = nc`, `si = cs`, `sp = rs`: the CPU
/// supports AVX2 and FMA, `B[p, j]` at `b + p*rs + j*cs` is a valid,
/// initialized `f32` for `p < kc`, `j < nc`, and `dst` is valid for writes
/// of `nc.next_multiple_of(NR) * kc` floats, overlapping none of `B`.
unsafe fn pack_b(kc: usize, nc: usize, b: *const f32, rs: isize, cs: isize, dst: *mut f32) {
    pack::<NR>(nc, kc, b, cs, rs, dst)
}

/// Packs `len` lines (rows of A, columns of B) of `kc` values, line `i`
/// value `p` at `src + i*si + p*sp`, into panels of `W` lines, each stored
/// `k`-major (`W` values per `p`), the last panel zero-padded.
///
/// # Safety
/// - The CPU supports AVX2 and FMA ([`available`]): with `sp == 1` and
///   `si != 1` it calls [`pack_transposed`].
/// - `kc ≥ 1` when `W` is not a multiple of 8 (see [`pack_transposed`]).
/// - For `i < len` and `p < kc`, `src + i*si + p*sp` is a valid,
///   initialized `f32`.
/// - `dst` is valid for writes of `len.next_multiple_of(W) * kc` floats and
///   overlaps none of the values read (they are copied with
///   `copy_nonoverlapping`).
unsafe fn pack<const W: usize>(
    len: usize,
    kc: usize,
    src: *const f32,
    si: isize,
    sp: isize,
    dst: *mut f32,
) {
    for i0 in (0..len).step_by(W) {
        let w = W.min(len - i0);
        let d = dst.add(i0 * kc);
        let s = src.offset(i0 as isize * si);
        if si == 1 {
            // The `w` values of one `p` are contiguous: the panel layout.
            // A copy of constant length `W` compiles to register moves; a
            // length known only at run time would be a `memcpy` call per `p`.
            if w == W {
                for p in 0..kc {
                    std::ptr::copy_nonoverlapping(s.offset(p as isize * sp), d.add(p * W), W);
                }
            } else {
                for p in 0..kc {
                    let dp = d.add(p * W);
                    std::ptr::copy_nonoverlapping(s.offset(p as isize * sp), dp, w);
                    std::ptr::write_bytes(dp.add(w), 0, W - w);
                }
            }
        } else if sp == 1 {
            // Lines contiguous in `k` (A row-major, B as in `x·Wᵀ`):
            // transpose 8×8 blocks in registers.
            pack_transposed::<W>(kc, s, si, w, d);
        } else {
            for p in 0..kc {
                for i in 0..W {
                    *d.add(p * W + i) = if i < w {
                        *s.offset(i as isize * si + p as isize * sp)
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// Transposes the 8×8 block whose rows are `r`: column `q` comes out as
/// row `q`.
///
/// # Safety
/// The CPU supports AVX2 and FMA, the features it is compiled with
/// ([`available`]). It touches no memory, so nothing else is required.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}

/// One panel from `w ≤ W` lines that are contiguous in `k` (line `i` at
/// `src + i*si`), zero-padded to `W` lines. When `W` is not a multiple of 8
/// (A's 6), each 8-wide store also writes values past its `p`, which the
/// next store overwrites; the last `p` is written by the scalar loop.
///
/// # Safety
/// - The CPU supports AVX2 and FMA ([`available`]).
/// - `w ≤ W`, and for every line `i < w`, `src + i*si` is valid for reads
///   of `kc` consecutive, initialized floats.
/// - `d` is valid for writes of `W * kc` floats (the panel); no store goes
///   past it.
/// - `kc ≥ 1` when `W` is not a multiple of 8: `kc - 1` would wrap in a
///   release build and the vector loop would read and write far past both.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_transposed<const W: usize>(
    kc: usize,
    src: *const f32,
    si: isize,
    w: usize,
    d: *mut f32,
) {
    let z = _mm256_setzero_ps();
    // With `W` not a multiple of 8, the 8-wide store of the panel's last `p`
    // would run past the panel: that block is left to the scalar loop, so
    // that every call writes inside its own panels (threads pack disjoint
    // panels of one buffer at once, see `Shared::pack`).
    let vec_end = if W.is_multiple_of(8) { kc } else { kc - 1 };
    let mut p0 = 0;
    while p0 + 8 <= vec_end {
        for h in (0..W).step_by(8) {
            let mut r = [z; 8];
            for (j, rj) in r.iter_mut().enumerate() {
                if h + j < w {
                    *rj = _mm256_loadu_ps(src.offset((h + j) as isize * si).add(p0));
                }
            }
            for (q, col) in transpose8(r).into_iter().enumerate() {
                _mm256_storeu_ps(d.add((p0 + q) * W + h), col);
            }
        }
        p0 += 8;
    }
    for p in p0..kc {
        for i in 0..W {
            *d.add(p * W + i) = if i < w {
                *src.offset(i as isize * si).add(p)
            } else {
                0.0
            };
        }
    }
}

/// The 6×16 micro-kernel: `C[0..6, 0..16] (+)= Σ_p a[p] ⊗ b[p]` over the
/// packed panel `a` (6 per `p`) and the panel `b` (16 per `p`, `b_step`
/// apart: 16 when packed, B's row stride when read in place).
///
/// # Safety
/// - The CPU supports AVX2 and FMA ([`available`]).
/// - `a` is valid for reads of `MR * kc` initialized floats, and for every
///   `p < kc`, `b + p*b_step` for reads of `NR` of them.
/// - For every row `i < MR`, `c + i*ldc` is valid for writes of `NR`
///   floats, and with `add` for reads too (initialized). The prefetches of
///   `C` need no validity.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel(
    kc: usize,
    a: *const f32,
    b: *const f32,
    b_step: usize,
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    for i in 0..MR {
        _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + NR - 1) as *const i8);
    }
    let z = _mm256_setzero_ps();
    let mut acc = [[z; 2]; MR];
    let mut a = a;
    let mut b = b;
    for _ in 0..kc {
        let b0 = _mm256_loadu_ps(b);
        let b1 = _mm256_loadu_ps(b.add(8));
        // Fully unrolled over the six rows: `acc` stays in 12 registers.
        macro_rules! row {
            ($i:literal) => {
                let ai = _mm256_broadcast_ss(&*a.add($i));
                acc[$i][0] = _mm256_fmadd_ps(ai, b0, acc[$i][0]);
                acc[$i][1] = _mm256_fmadd_ps(ai, b1, acc[$i][1]);
            };
        }
        row!(0);
        row!(1);
        row!(2);
        row!(3);
        row!(4);
        row!(5);
        a = a.add(MR);
        b = b.add(b_step);
    }
    macro_rules! store {
        ($i:literal) => {
            let r = c.add($i * ldc);
            let (mut lo, mut hi) = (acc[$i][0], acc[$i][1]);
            if add {
                lo = _mm256_add_ps(_mm256_loadu_ps(r), lo);
                hi = _mm256_add_ps(_mm256_loadu_ps(r.add(8)), hi);
            }
            _mm256_storeu_ps(r, lo);
            _mm256_storeu_ps(r.add(8), hi);
        };
    }
    store!(0);
    store!(1);
    store!(2);
    store!(3);
    store!(4);
    store!(5);
}

/// A tile at an edge of `C`, `mr × nr` (at most `MR × NR`): [`kernel`]
/// into a scratch tile, then its corner copied into `C` (or added to it),
/// row by row as slices so that the copy or sum vectorizes.
///
/// # Safety
/// As [`kernel`] for `a` and `b`, with `C` valid for `mr` rows of `nr`
/// values `ldc` apart.
#[allow(clippy::too_many_arguments)]
unsafe fn edge_tile(
    kc: usize,
    a: *const f32,
    b: *const f32,
    b_step: usize,
    c: *mut f32,
    ldc: usize,
    (mr, nr): (usize, usize),
    add: bool,
) {
    let mut tile = [0f32; MR * NR];
    kernel(kc, a, b, b_step, tile.as_mut_ptr(), NR, false);
    for (i, src) in tile.chunks_exact(NR).take(mr).enumerate() {
        let dst = std::slice::from_raw_parts_mut(c.add(i * ldc), nr);
        if add {
            for (d, v) in dst.iter_mut().zip(src) {
                *d += v;
            }
        } else {
            dst.copy_from_slice(&src[..nr]);
        }
    }
}

/// The 6×32 micro-kernel with AVX-512: [`kernel`] over two panels of `B`
/// at once (`b0` for columns 0..16, `b1` for 16..32, both `b_step` apart),
/// each output summed in the same order as there, so the same bits.
///
/// # Safety
/// As [`kernel`] for each of the two panels, with `2·NR` columns of `C`
/// per row, and the CPU supports AVX-512F
/// ([`avx512`](super::simd::avx512)).
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_wide(
    kc: usize,
    a: *const f32,
    b0: *const f32,
    b1: *const f32,
    b_step: usize,
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    for i in 0..MR {
        _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + 2 * NR - 1) as *const i8);
    }
    let z = _mm512_setzero_ps();
    let mut acc = [[z; 2]; MR];
    let (mut a, mut b0, mut b1) = (a, b0, b1);
    for _ in 0..kc {
        let x0 = _mm512_loadu_ps(b0);
        let x1 = _mm512_loadu_ps(b1);
        // Fully unrolled over the six rows: `acc` stays in 12 registers.
        macro_rules! row {
            ($i:literal) => {
                let ai = _mm512_set1_ps(*a.add($i));
                acc[$i][0] = _mm512_fmadd_ps(ai, x0, acc[$i][0]);
                acc[$i][1] = _mm512_fmadd_ps(ai, x1, acc[$i][1]);
            };
        }
        row!(0);
        row!(1);
        row!(2);
        row!(3);
        row!(4);
        row!(5);
        a = a.add(MR);
        b0 = b0.add(b_step);
        b1 = b1.add(b_step);
    }
    for (i, r) in acc.iter().enumerate() {
        let p = c.add(i * ldc);
        let (mut lo, mut hi) = (r[0], r[1]);
        if add {
            lo = _mm512_add_ps(_mm512_loadu_ps(p), lo);
            hi = _mm512_add_ps(_mm512_loadu_ps(p.add(NR)), hi);
        }
        _mm512_storeu_ps(p, lo);
        _mm512_storeu_ps(p.add(NR), hi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `sgemm` against an f64 reference for every transpose
    /// combination, overwriting and accumulating.
    fn check(m: usize, k: usize, n: usize) {
        if !crate::cpu::isa::test_requires(crate::cpu::isa::Level::Avx2) {
            return;
        }
        let t = crate::cpu::isa::avx2().expect("checked");
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
            .collect();
        for ta in [false, true] {
            for tb in [false, true] {
                // a holds op(a) as [m,k] (ta false) or [k,m] (ta true), etc.
                let (a_rs, a_cs) = if ta { (1, m as isize) } else { (k as isize, 1) };
                let (b_rs, b_cs) = if tb { (1, k as isize) } else { (n as isize, 1) };
                let at = |i: usize, p: usize| a[i * a_rs as usize + p * a_cs as usize] as f64;
                let bt = |p: usize, j: usize| b[p * b_rs as usize + j * b_cs as usize] as f64;
                let mut c = vec![1.0f32; m * n];
                for accumulate in [false, true] {
                    // SAFETY: `t` proves AVX2 and FMA; `a`, `b` and
                    // `c` hold m×k, k×n and m×n initialized values, which
                    // these strides (and `ldc = n`) address exactly; `c` is
                    // a separate buffer.
                    unsafe {
                        sgemm(
                            t,
                            m,
                            n,
                            k,
                            a.as_ptr(),
                            a_rs,
                            a_cs,
                            b.as_ptr(),
                            b_rs,
                            b_cs,
                            c.as_mut_ptr(),
                            n,
                            accumulate,
                            None,
                        )
                    };
                    let times = if accumulate { 2.0 } else { 1.0 };
                    for i in 0..m {
                        for j in 0..n {
                            let want: f64 =
                                (0..k).map(|p| at(i, p) * bt(p, j)).sum::<f64>() * times;
                            let got = c[i * n + j] as f64;
                            let tol = 1e-5 * (k as f64).sqrt() * (1.0 + want.abs());
                            assert!(
                                (got - want).abs() <= tol,
                                "{m}x{k}x{n} ta={ta} tb={tb} acc={accumulate} at ({i},{j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn edges_and_blocks_match_reference() {
        // Tiles cut at every edge; k crossing KC; m crossing MC; n crossing NC.
        for (m, k, n) in [
            (1, 1, 1),
            (5, 3, 15),
            (6, 8, 16),
            (7, 9, 17),
            (13, 31, 33),
            (97, 7, 40),
        ] {
            check(m, k, n);
        }
        check(12, KC + 9, 20);
        check(MC + 7, 20, 18);
        check(7, 5, NC + 18);
    }

    /// (With AVX-512 this also checks the 6×32 kernel against the 6×16 one:
    /// the blocks below pair their panels differently from the whole.)
    #[test]
    fn output_does_not_depend_on_the_split() {
        if !crate::cpu::isa::test_requires(crate::cpu::isa::Level::Avx2) {
            return;
        }
        let t = crate::cpu::isa::avx2().expect("checked");
        let (m, k, n) = (50, 600, 70);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut whole = vec![0f32; m * n];
        let mut parts = vec![0f32; m * n];
        // SAFETY: `t` proves AVX2 and FMA; `a`, `b`, `whole` and
        // `parts` hold m×k, k×n, m×n and m×n values. Each block starts at
        // row `i0`, column `j0` of them and addresses (i1−i0)×k, k×(j1−j0)
        // and (i1−i0)×(j1−j0) values with the full row strides, all inside;
        // the outputs are separate from the operands.
        unsafe {
            sgemm(
                t,
                m,
                n,
                k,
                a.as_ptr(),
                k as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                whole.as_mut_ptr(),
                n,
                false,
                None,
            );
            // Four blocks of uneven sizes, as threads would take them.
            for (i0, i1, j0, j1) in [(0, 13, 0, 37), (0, 13, 37, n), (13, m, 0, 5), (13, m, 5, n)] {
                sgemm(
                    t,
                    i1 - i0,
                    j1 - j0,
                    k,
                    a.as_ptr().add(i0 * k),
                    k as isize,
                    1,
                    b.as_ptr().add(j0),
                    n as isize,
                    1,
                    parts.as_mut_ptr().add(i0 * n + j0),
                    n,
                    false,
                    None,
                );
            }
        }
        assert_eq!(whole, parts);
    }
}
