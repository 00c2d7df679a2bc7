//! Plain loops compiled for the CPU's widest vectors.
//!
//! The crate is built for baseline x86-64 (SSE2: 4 floats a vector), so that
//! its binaries run everywhere. The hand-written kernels check the CPU at run
//! time (`sgemm`, `direct_conv`, through [`crate::cpu::isa`]); [`wide_fn!`] gives the simple elementwise loops
//! and per-channel sums the same: its body is compiled a second time with
//! AVX-512 enabled and that copy runs when the CPU has it. The arithmetic is
//! the loop's own (Rust never reorders or fuses float operations), so both
//! copies give the same bits; only the width of each instruction changes.

/// Defines a function whose body is compiled twice, for baseline x86-64 and
/// with AVX-512, and runs the AVX-512 copy when this process has an
/// [`Avx512`](crate::cpu::isa::Avx512) token. Arguments are `name: Type` (no patterns). Keep the body to
/// loops and `#[inline(always)]` helpers: a closure or iterator adapter that
/// LLVM declines to inline stays a baseline function, called from both
/// copies. (A closure-taking `fn wide(f)` was tried first: LLVM inlined some
/// closures and only jumped to others, which then ran without AVX-512.)
macro_rules! wide_fn {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            if let Some(_avx512) = $crate::cpu::isa::avx512() {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn wide($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                // SAFETY: the CPU has the features `wide` is compiled with
                // (the `Avx512` token proves it); its body is the safe `body`.
                return unsafe { wide($($arg),*) };
            }
            body($($arg),*)
        }
    };
}
pub(crate) use wide_fn;

#[cfg(test)]
mod tests {

    #[test]
    fn wide_gives_the_plain_loops_bits() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        fn plain(x: &[f32]) -> f64 {
            let mut s = [0f64; 8];
            for c in x.chunks_exact(8) {
                for l in 0..8 {
                    s[l] += c[l] as f64 * c[l] as f64;
                }
            }
            s.iter().sum::<f64>()
        }
        wide_fn! {
            fn widened(x: &[f32]) -> f64 {
                plain(x)
            }
        }
        assert_eq!(widened(&x).to_bits(), plain(&x).to_bits());
    }
}
