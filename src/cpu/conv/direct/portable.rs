//! The direct convolution's kernels in plain Rust, one lane at a time: the
//! arithmetic of the x86-64 kernels (`x86.rs`) in the same order, for CPUs
//! without AVX2 and for the tests that check the vector kernels against
//! them (compiled and tested on every target).

use super::{TapRuns, MR, NR, WIDE_MR};

/// The forward tile (same arithmetic, one lane at a time).
///
/// # Safety
/// As the x86-64 `tile`, less the CPU features: for every tap `t` of
/// `runs`, `a + t·6` is valid for reads of 6 initialized floats and
/// `x + offs[t]` for reads of 16, and `c + r·ldc` for writes of 16 for
/// every row `r < 6`.
pub(super) unsafe fn tile(
    runs: TapRuns,
    a: *const f32,
    x: *const f32,
    offs: &[usize],
    c: *mut f32,
    ldc: usize,
) {
    for r in 0..MR {
        for l in 0..NR {
            let mut acc = 0f32;
            for t in runs.taps() {
                acc = (*a.add(t * MR + r)).mul_add(*x.add(offs[t] + l), acc);
            }
            *c.add(r * ldc + l) = acc;
        }
    }
}

/// The `∂W` pair kernel (lane sums added in the vector kernel's order).
///
/// # Safety
/// As the x86-64 `weight_pair`, less the CPU features: `x0`, `x1` and
/// `d + r·ld` for every row `r < 6` are valid for reads of `8·vecs`
/// initialized floats.
pub(super) unsafe fn weight_pair(
    vecs: usize,
    d: *const f32,
    ld: usize,
    [x0, x1]: [*const f32; 2],
    sums: &mut [[f32; 2]; WIDE_MR],
) {
    for (r, s) in sums.iter_mut().enumerate().take(MR) {
        for (u, x) in [x0, x1].into_iter().enumerate() {
            let mut lanes = [0f32; 8];
            for v in 0..vecs {
                for (l, lane) in lanes.iter_mut().enumerate() {
                    *lane = (*d.add(r * ld + 8 * v + l)).mul_add(*x.add(8 * v + l), *lane);
                }
            }
            let h: [f32; 4] = std::array::from_fn(|i| lanes[i] + lanes[i + 4]);
            s[u] = (h[0] + h[2]) + (h[1] + h[3]);
        }
    }
}
