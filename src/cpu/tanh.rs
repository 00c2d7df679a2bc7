//! `tanh` in `f32` for the RNN's hidden states: a branch-free formula
//! ([`tanh_f32`]) whose loop vectorizes, and that loop compiled for the
//! CPU's widest vectors ([`tanh_in_place`]); GELU and its derivative
//! through a branch-free `erf` ([`gelu_f32`], [`erf_f32`]), their loops
//! compiled wide alike ([`gelu_into`], [`gelu_grad_into`]).

#[cfg(target_arch = "x86_64")]
use crate::cpu::isa::{Avx2, Avx512, Simd};

/// `eˣ` for `x` in `[−87, 88]` (Cephes' `expf`: Cody–Waite reduction by
/// ln 2, a degree-7 polynomial, the power of two put in by bits),
/// branch-free so a loop of it vectorizes.
#[inline(always)]
pub(crate) fn exp_pos(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer
    let k = x * std::f32::consts::LOG2_E + MAGIC;
    let n = k - MAGIC;
    let ni = (k.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 0.166_666_65)
        * r
        + 0.5)
        * r
        * r
        + r
        + 1.0;
    p * f32::from_bits((ni.wrapping_add(127) << 23) as u32)
}

/// `tanh x` in `f32`, within 1 ulp of the correctly rounded value (checked
/// exhaustively over every `f32` of magnitude below 20, where 99.7% are
/// exact; beyond, both are ±1), NaN in NaN out, `tanh(−0) = −0`.
///
/// Branch-free, so the hidden-state loop vectorizes: about 4× faster than
/// the C library's `tanhf`, which otherwise dominates the forward pass.
/// `|x| < 0.625`: `x + x³·P(x²)` (a minimax fit of degree 4);
/// beyond: `1 − 2/(e^{2|x|} + 1)`.
///
/// Why a second tanh: the `tanh` activation (`Unary::Tanh` in
/// src/ops/unary.rs) uses [`f32::tanh`], the C library's `tanhf`. The two
/// do not give the same bits: both are within 1 ulp of the correctly
/// rounded value, but they round differently and disagree by 1–2 ulp on
/// about 5 % of the `f32`s of magnitude below 20 (measured against glibc).
/// The RNN's hidden-state update needs this vectorizable one for speed;
/// the activation keeps `f32::tanh` (switching it would change the bits of
/// every model with a tanh activation). Tests compare them:
/// `compare_with_unrolled` checks this node against the same RNN unrolled
/// from the `tanh` activation (within 1e-5), and tests/torch_parity.rs
/// checks both `tanh` and `rnn_tanh` against PyTorch.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let z = a * a;
    let p = (((-5.705_512e-3 * z + 2.063_952_2e-2) * z - 5.373_983_5e-2) * z + 0.133_314_43) * z
        - 0.333_332_8;
    let small = a + a * z * p;
    // Written so that NaN is kept (a comparison with NaN is false).
    let y = 2.0 * if a > 44.0 { 44.0 } else { a };
    let big = 1.0 - 2.0 / (exp_pos(y) + 1.0);
    let t = if a < 0.625 { small } else { big };
    t.copysign(x)
}

/// [`tanh_f32`] of every value in place. With AVX2 or AVX-512 (checked at
/// run time) the loop runs 8 or 16 values per instruction instead of the
/// default build's 4: the same operations in the same order, so the same
/// bits.
pub(crate) fn tanh_in_place(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match crate::cpu::isa::simd() {
        Simd::Avx512(t) => return tanh_in_place_avx512(t, v),
        Simd::Avx2(t) => return tanh_in_place_avx2(t, v),
        Simd::Portable => {}
    }
    for x in v {
        *x = tanh_f32(*x);
    }
}

/// [`tanh_in_place`]'s loop compiled with AVX2 enabled.
#[cfg(target_arch = "x86_64")]
fn tanh_in_place_avx2(_: Avx2, v: &mut [f32]) {
    #[target_feature(enable = "avx2")]
    fn wide(v: &mut [f32]) {
        for x in v {
            *x = tanh_f32(*x);
        }
    }
    // SAFETY: the token proves the CPU has AVX2, `wide`'s only requirement
    // (its body is safe code on a slice).
    unsafe { wide(v) }
}

/// [`tanh_in_place`]'s loop compiled with AVX-512 enabled.
#[cfg(target_arch = "x86_64")]
fn tanh_in_place_avx512(_: Avx512, v: &mut [f32]) {
    #[target_feature(enable = "avx512f,avx2")]
    fn wide(v: &mut [f32]) {
        for x in v {
            *x = tanh_f32(*x);
        }
    }
    // SAFETY: the token proves the CPU has AVX-512F and AVX2, `wide`'s only
    // requirement (its body is safe code on a slice).
    unsafe { wide(v) }
}

/// `erf x` in `f32` as PyTorch's vectorized CPU kernels compute it (its
/// `Vectorized<float>::erf`, which `nn.GELU()` runs): Abramowitz and Stegun
/// 7.1.26, `1 − (a₁t + … + a₅t⁵)·e^{−x²}` with `t = 1/(1 + p|x|)`, the sign
/// of x put back: the formula is within 1.5e-7 of erf, its `f32` evaluation
/// within 6e-7 (measured over [−6, 6]). Branch-free, so GELU's loops
/// vectorize (the C library's `erff` was a tenth of a GPT's step).
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (0.327_591_1 * a + 1.0);
    let r =
        (((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_8) * t - 0.284_496_74) * t + 0.254_829_6;
    (1.0 - r * t * exp_neg(a * a)).copysign(x)
}

/// `e^{−z}` for `z ≥ 0` (0 below `e^{−87}`, NaN kept).
#[inline(always)]
pub fn exp_neg(z: f32) -> f32 {
    let z = if z > 87.0 { 87.0 } else { z };
    let e = exp_pos(-z);
    if z >= 87.0 {
        0.0
    } else {
        e
    }
}

/// 1/√2.
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1/√(2π), the standard normal density's factor.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// GELU, `x·Φ(x) = x(1 + erf(x/√2))/2`, with [`erf_f32`].
#[inline(always)]
pub fn gelu_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * FRAC_1_SQRT_2))
}

/// GELU's derivative, `Φ(x) + x·φ(x)`.
#[inline(always)]
pub fn gelu_grad_f32(x: f32) -> f32 {
    let cdf = 0.5 * (1.0 + erf_f32(x * FRAC_1_SQRT_2));
    cdf + x * FRAC_1_SQRT_2PI * exp_neg(0.5 * x * x)
}

crate::cpu::simd::wide_fn! {
    /// [`gelu_f32`] of every value of `x` into `y` (as long).
    pub(crate) fn gelu_into(x: &[f32], y: &mut [std::mem::MaybeUninit<f32>]) {
        for (y, &v) in y.iter_mut().zip(x) {
            y.write(gelu_f32(v));
        }
    }
}

crate::cpu::simd::wide_fn! {
    /// `g·gelu'(x)` of every position into `y`.
    pub(crate) fn gelu_grad_into(g: &[f32], x: &[f32], y: &mut [std::mem::MaybeUninit<f32>]) {
        for ((y, &g), &v) in y.iter_mut().zip(g).zip(x) {
            y.write(g * gelu_grad_f32(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_exp_neg_are_close() {
        let mut worst = 0f64;
        for i in -60000..=60000 {
            let x = i as f32 * 1e-4;
            let want = libm::erf(x as f64);
            let got = erf_f32(x) as f64;
            worst = worst.max((got - want).abs());
            let z = x.abs() * 14.0;
            let (got, want) = (exp_neg(z) as f64, (-(z as f64)).exp());
            assert!(
                (got - want).abs() <= 2e-7 * want,
                "exp(-{z}) = {got}, want {want}"
            );
        }
        assert!(worst < 6e-7, "erf_f32 is {worst:e} from erf");
        assert_eq!(erf_f32(f32::INFINITY), 1.0);
        assert_eq!(erf_f32(f32::NEG_INFINITY), -1.0);
        assert!(erf_f32(f32::NAN).is_nan() && exp_neg(f32::NAN).is_nan());
        assert_eq!(exp_neg(100.0), 0.0);
    }

    #[test]
    fn the_gelu_loops_give_the_bits_of_the_formulas() {
        let x: Vec<f32> = (-4000..4003).map(|i| i as f32 * 0.0031).collect();
        let g: Vec<f32> = x.iter().map(|v| (v * 7.0).sin()).collect();
        let mut y = vec![std::mem::MaybeUninit::new(0f32); x.len()];
        gelu_into(&x, &mut y);
        for (y, &v) in y.iter().zip(&x) {
            // SAFETY: every element was made with `MaybeUninit::new` above,
            // and the kernel only overwrites values.
            assert_eq!(unsafe { y.assume_init() }.to_bits(), gelu_f32(v).to_bits());
        }
        gelu_grad_into(&g, &x, &mut y);
        for ((y, &v), &g) in y.iter().zip(&x).zip(&g) {
            assert_eq!(
                // SAFETY: as above: initialized at creation, only overwritten.
                unsafe { y.assume_init() }.to_bits(),
                (g * gelu_grad_f32(v)).to_bits()
            );
        }
    }

    #[test]
    fn tanh_in_place_gives_the_bits_of_tanh_f32() {
        // Both branches, the cut at 0.625, saturation, signed zeros, NaN,
        // and a length that leaves a remainder after 8-wide vectors.
        let mut v: Vec<f32> = (-4000..4003).map(|i| i as f32 * 0.0071).collect();
        v.extend([0.625, -0.625, 44.0, -60.0, f32::INFINITY, -0.0, f32::NAN]);
        let want: Vec<u32> = v.iter().map(|&x| tanh_f32(x).to_bits()).collect();
        tanh_in_place(&mut v);
        assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want);
    }

    #[test]
    fn tanh_f32_is_within_one_ulp() {
        let ulps = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).abs();
        // A stride through every positive f32 below 50, and the edges.
        let mut bits = (0..50f32.to_bits()).step_by(997).collect::<Vec<u32>>();
        for x in [0.625f32, 44.0, 1e-30, 1e-40, 0.000_352_111_73] {
            bits.extend([x.to_bits(), x.to_bits() - 1, x.to_bits() + 1]);
        }
        for b in bits {
            for x in [f32::from_bits(b), -f32::from_bits(b)] {
                let want = (x as f64).tanh() as f32;
                let got = tanh_f32(x);
                assert!(ulps(got, want) <= 1, "tanh({x:e}) = {got:e}, want {want:e}");
            }
        }
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert!(tanh_f32(f32::NAN).is_nan());
    }
}
