//! The direct convolution's x86-64 kernels: AVX2 + FMA (6×16 forward
//! tile, the `∂W` pair kernel) and AVX-512 (6×32 or 8×32 tiles, 16-lane
//! `∂W`). Each takes the token that proves the CPU has its features; the
//! plan that calls them is in the parent module, the same arithmetic one
//! lane at a time in `portable.rs`.

use super::{TapRuns, MR, WIDE_MR};
use crate::cpu::isa::{Avx2, Avx512};
use std::arch::x86_64::*;

/// The forward micro-kernel: `c[r, 0..16] = Σ_t a[t·6 + r] · x[offs[t] + 0..16]`
/// over the taps `t` of `runs` in order, for the 6 rows `r`, stored with
/// row stride `ldc`.
///
/// # Safety
/// - The CPU supports AVX2 and FMA (the [`Avx2`] token proves it).
/// - For every tap `t` of `runs`, `a + t·6` is valid for reads of 6
///   initialized floats and `x + offs[t]` for reads of 16 (`offs` itself is
///   bounds-checked).
/// - For every row `r < 6`, `c + r·ldc` is valid for writes of 16 floats.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tile(
    _: Avx2,
    runs: TapRuns,
    a: *const f32,
    x: *const f32,
    offs: &[usize],
    c: *mut f32,
    ldc: usize,
) {
    let z = _mm256_setzero_ps();
    let mut acc = [[z; 2]; MR];
    for r in 0..runs.runs {
        let t0 = runs.start + r * runs.stride;
        let mut a = a.add(t0 * MR);
        for &off in &offs[t0..t0 + runs.len] {
            let b = x.add(off);
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
        }
    }
    for (i, r) in acc.iter().enumerate() {
        _mm256_storeu_ps(c.add(i * ldc), r[0]);
        _mm256_storeu_ps(c.add(i * ldc + 8), r[1]);
    }
}

/// [`tile`] with AVX-512 for `R` rows (6 or 8) of `16·V` positions (16 or
/// 32): `c[r, 0..16V] = Σ_t a[t·R + r] · x[offs[t] + 0..16V]`, each sum over
/// the taps of `runs` in the same order. `R·V` accumulators (at most 16 of
/// the 32 registers), each row's weight broadcast once per tap.
///
/// # Safety
/// As [`tile`] with `R` rows for 6 and `16·V` for 16, and the CPU supports
/// AVX-512F (the [`Avx512`] token proves it).
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn tile_wide<const R: usize, const V: usize>(
    _: Avx512,
    runs: TapRuns,
    a: *const f32,
    x: *const f32,
    offs: &[usize],
    c: *mut f32,
    ldc: usize,
) {
    let z = _mm512_setzero_ps();
    let mut acc = [[z; V]; R];
    for r in 0..runs.runs {
        let t0 = runs.start + r * runs.stride;
        let mut a = a.add(t0 * R);
        for &off in &offs[t0..t0 + runs.len] {
            let b = x.add(off);
            let bv: [__m512; V] = std::array::from_fn(|u| _mm512_loadu_ps(b.add(16 * u)));
            // Constant trip counts: unrolled, `acc` stays in registers.
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*a.add(i));
                for (s, &bu) in row.iter_mut().zip(&bv) {
                    *s = _mm512_fmadd_ps(ai, bu, *s);
                }
            }
            a = a.add(R);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (u, &s) in row.iter().enumerate() {
            _mm512_storeu_ps(c.add(i * ldc + 16 * u), s);
        }
    }
}

/// [`weight_pair`] with AVX-512 for `R` rows (6 or 8; `sums` rows past `R`
/// are left alone): 16 positions per vector, `vecs` of them. (Three or four
/// taps a pass would load `δ` less often, but LLVM then spilled
/// accumulators every iteration: 10 % slower on a LeNet epoch.)
///
/// # Safety
/// As [`weight_pair`] with `R` rows for 6 and `16·vecs` for `8·vecs`, and
/// the CPU supports AVX-512F (the [`Avx512`] token proves it).
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn weight_pair_wide<const R: usize>(
    _: Avx512,
    vecs: usize,
    d: *const f32,
    ld: usize,
    x: [*const f32; 2],
    sums: &mut [[f32; 2]; WIDE_MR],
) {
    let z = _mm512_setzero_ps();
    let mut acc = [[z; 2]; R];
    for v in 0..vecs {
        let xv = x.map(|p| _mm512_loadu_ps(p.add(16 * v)));
        for (i, row) in acc.iter_mut().enumerate() {
            let dv = _mm512_loadu_ps(d.add(i * ld + 16 * v));
            for (s, &xu) in row.iter_mut().zip(&xv) {
                *s = _mm512_fmadd_ps(dv, xu, *s);
            }
        }
    }
    let mut v = [z; 16];
    for (k, a) in acc.iter().flatten().enumerate() {
        v[k] = *a;
    }
    let lanes = reduce16(v);
    for (r, s) in sums.iter_mut().enumerate().take(R) {
        for (u, su) in s.iter_mut().enumerate() {
            *su = lanes[reduced_lane(2 * r + u)];
        }
    }
}

/// The lane of [`reduce16`]'s result that holds the sum of vector `k`.
pub(super) fn reduced_lane(k: usize) -> usize {
    4 * (k % 4) + k / 4
}

/// The sums of 16 vectors' lanes at once, each added in the order of
/// `_mm512_reduce_add_ps` (lanes `i` and `i + 8`, then `i + 4`, `i + 2`,
/// `i + 1`): the same bits, in 15 shuffle pairs and 15 additions instead
/// of 16 × 8 instructions. Vector `k`'s sum is lane [`reduced_lane`]`(k)`.
/// (The `∂W` kernel of LeNet's second layer runs only 9 vectors per pair
/// of taps, so its 12 reductions were a third of its instructions.)
///
/// # Safety
/// The CPU supports AVX-512F (the [`Avx512`] token proves it). It touches no memory,
/// so nothing else is required.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn reduce16(v: [__m512; 16]) -> [f32; 16] {
    // Lanes i + 8 onto i: [a(8 sums), b(8 sums)] from each pair.
    let l1: [__m512; 8] = std::array::from_fn(|k| {
        let (a, b) = (v[2 * k], v[2 * k + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
        )
    });
    // Lanes i + 4 onto i: four vectors' 4 sums, a 128-bit block each.
    let l2: [__m512; 4] = std::array::from_fn(|k| {
        let (a, b) = (l1[2 * k], l1[2 * k + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
        )
    });
    // Lanes i + 2 onto i, within each block: two vectors' 2 sums a block.
    let l3: [__m512; 2] = std::array::from_fn(|k| {
        let (a, b) = (l2[2 * k], l2[2 * k + 1]);
        _mm512_add_ps(
            _mm512_shuffle_ps::<0b01_00_01_00>(a, b),
            _mm512_shuffle_ps::<0b11_10_11_10>(a, b),
        )
    });
    // Lane i + 1 onto i: block j holds vectors j, 4 + j, 8 + j, 12 + j.
    let sums = _mm512_add_ps(
        _mm512_shuffle_ps::<0b10_00_10_00>(l3[0], l3[1]),
        _mm512_shuffle_ps::<0b11_01_11_01>(l3[0], l3[1]),
    );
    let mut out = [0f32; 16];
    _mm512_storeu_ps(out.as_mut_ptr(), sums);
    out
}

/// The `∂W` kernel for 6 channels and 2 taps: `sums[r][u] = Σ_q d[r·ld + q] ·
/// xu[q]` over `q < 8·vecs` for `r < 6` (the rows past 6 are left alone),
/// with `x0`, `x1` the padded input at the two taps' offsets.
///
/// # Safety
/// - The CPU supports AVX2 and FMA (the [`Avx2`] token proves it).
/// - `x0` and `x1` are valid for reads of `8·vecs` initialized floats, and
///   so is `d + r·ld` for every row `r < 6`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn weight_pair(
    _: Avx2,
    vecs: usize,
    d: *const f32,
    ld: usize,
    [x0, x1]: [*const f32; 2],
    sums: &mut [[f32; 2]; WIDE_MR],
) {
    let z = _mm256_setzero_ps();
    let mut acc = [[z; 2]; MR];
    for v in 0..vecs {
        let xa = _mm256_loadu_ps(x0.add(8 * v));
        let xb = _mm256_loadu_ps(x1.add(8 * v));
        macro_rules! row {
            ($i:literal) => {
                let dv = _mm256_loadu_ps(d.add($i * ld + 8 * v));
                acc[$i][0] = _mm256_fmadd_ps(dv, xa, acc[$i][0]);
                acc[$i][1] = _mm256_fmadd_ps(dv, xb, acc[$i][1]);
            };
        }
        row!(0);
        row!(1);
        row!(2);
        row!(3);
        row!(4);
        row!(5);
    }
    for (s, a) in sums.iter_mut().zip(&acc) {
        for (su, &au) in s.iter_mut().zip(a) {
            *su = hsum(au);
        }
    }
}

/// The sum of a vector's 8 lanes, in a fixed order.
///
/// # Safety
/// The CPU supports AVX2 and FMA, the features it is compiled with
/// (the [`Avx2`] token proves it). It touches no memory, so nothing else is required.
#[target_feature(enable = "avx2,fma")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 16 sums at once are `_mm512_reduce_add_ps`'s, bit for bit.
    #[test]
    fn reduce16_gives_the_bits_of_reduce_add() {
        if !crate::cpu::isa::test_requires(crate::cpu::isa::Level::Avx512) {
            return;
        }
        let vals: Vec<f32> = (0..256)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 1.37e-3 * (1.0 + (i % 7) as f32 * 1e3))
            .collect();
        // SAFETY: the CPU has AVX-512F (this process uses it: checked above); `vals` holds 16
        // vectors of 16.
        unsafe {
            let v: [__m512; 16] = std::array::from_fn(|k| _mm512_loadu_ps(vals[16 * k..].as_ptr()));
            let got = reduce16(v);
            for (k, &vk) in v.iter().enumerate() {
                let want = _mm512_reduce_add_ps(vk);
                assert_eq!(got[reduced_lane(k)].to_bits(), want.to_bits(), "vector {k}");
            }
        }
    }
}
