//! Plain loops compiled for the CPU's widest vectors.
//!
//! The crate is built for baseline x86-64 (SSE2: 4 floats a vector), so that
//! its binaries run everywhere. The hand-written kernels check the CPU at run
//! time (`sgemm`, `direct_conv`); [`wide`] gives the simple elementwise loops
//! and per-channel sums the same: its closure is compiled a second time with
//! AVX-512 enabled and that copy runs when the CPU has it. The arithmetic is
//! the loop's own (Rust never reorders or fuses float operations), so both
//! copies give the same bits; only the width of each instruction changes.

/// Whether the CPU has AVX-512F (with AVX2 and FMA), checked once.
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OK.get_or_init(|| {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Runs `f`, compiled with AVX-512 when the CPU has it ([`avx512`]). `f` and
/// what it calls must be inlined into it to be widened: mark helpers
/// `#[inline(always)]`.
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        #[target_feature(enable = "avx512f,avx2,fma")]
        fn on<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU has the features `on` is compiled with (checked
        // just above); `on` itself is safe code.
        return unsafe { on(f) };
    }
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_gives_the_plain_loops_bits() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        let sum = |x: &[f32]| {
            let mut s = [0f64; 8];
            for c in x.chunks_exact(8) {
                for l in 0..8 {
                    s[l] += c[l] as f64 * c[l] as f64;
                }
            }
            s.iter().sum::<f64>()
        };
        assert_eq!(wide(|| sum(&x)).to_bits(), sum(&x).to_bits());
    }
}
