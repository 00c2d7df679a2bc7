//! Which vector instructions this process uses, detected once.
//!
//! The crate is built for baseline x86-64 (SSE2), so its binaries run on
//! every x86-64 CPU; the kernels that need more check here, at run time.
//! A kernel compiled with `#[target_feature(enable = "avx2,fma")]` is
//! undefined behaviour on a CPU without them, so such kernels take a
//! token ([`Avx2`], [`Avx512`]) that only this module makes, after the
//! check: holding one is the proof their `SAFETY` comments point to.
//!
//! `BACKPROP_ISA=portable` (or `avx2`) caps what is used, for the whole
//! process: CI runs the kernel tests with the portable loops forced, and a
//! benchmark can compare widths. It is read once, at the first detection.
//! Unset, or `native`, uses all the CPU has.

use std::sync::OnceLock;

/// The widest vectors the kernels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Plain Rust loops at the target's baseline width (the portable kernels).
    Portable,
    /// x86-64 with AVX2 and FMA (8 floats a vector).
    Avx2,
    /// x86-64 with AVX-512F, AVX2 and FMA (16 floats a vector).
    Avx512,
}

/// Proof that the CPU has AVX2 and FMA (made by [`avx2`] only).
#[derive(Clone, Copy, Debug)]
pub struct Avx2(());

/// Proof that the CPU has AVX-512F, AVX2 and FMA (made by [`avx512`] only).
#[derive(Clone, Copy, Debug)]
pub struct Avx512(());

impl Avx512 {
    /// A CPU with AVX-512F, AVX2 and FMA has AVX2 and FMA.
    pub fn avx2(self) -> Avx2 {
        Avx2(())
    }
}

/// A kernel's choice of loops: what [`simd`] hands out.
#[derive(Clone, Copy, Debug)]
pub enum Simd {
    /// The portable loops.
    Portable,
    /// The AVX2 + FMA kernels.
    Avx2(Avx2),
    /// The AVX-512 kernels.
    Avx512(Avx512),
}

impl Simd {
    /// The AVX2 token, where these loops have AVX2 (AVX-512 has it too).
    pub fn avx2(self) -> Option<Avx2> {
        match self {
            Simd::Portable => None,
            Simd::Avx2(t) => Some(t),
            Simd::Avx512(t) => Some(t.avx2()),
        }
    }

    /// The AVX-512 token, if these are the AVX-512 loops.
    pub fn avx512(self) -> Option<Avx512> {
        match self {
            Simd::Avx512(t) => Some(t),
            _ => None,
        }
    }

    /// Every choice this process may use, narrowest first (for tests that
    /// check each kernel against the portable one).
    pub fn all() -> Vec<Simd> {
        let mut v = vec![Simd::Portable];
        v.extend(avx2().map(Simd::Avx2));
        v.extend(avx512().map(Simd::Avx512));
        v
    }
}

/// What the CPU has, capped by `BACKPROP_ISA`; detected once.
#[inline]
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = match std::env::var("BACKPROP_ISA").as_deref() {
            Ok("portable") => Level::Portable,
            Ok("avx2") => Level::Avx2,
            _ => Level::Avx512,
        };
        detected().min(cap)
    })
}

/// What the CPU itself has.
fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        if avx2 && is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if avx2 {
            return Level::Avx2;
        }
    }
    Level::Portable
}

/// The AVX2 token, if this process uses AVX2.
#[inline]
pub fn avx2() -> Option<Avx2> {
    (level() >= Level::Avx2).then_some(Avx2(()))
}

/// The AVX-512 token, if this process uses AVX-512.
#[inline]
pub fn avx512() -> Option<Avx512> {
    (level() >= Level::Avx512).then_some(Avx512(()))
}

/// The widest loops this process uses.
#[inline]
pub fn simd() -> Simd {
    match (avx512(), avx2()) {
        (Some(t), _) => Simd::Avx512(t),
        (None, Some(t)) => Simd::Avx2(t),
        _ => Simd::Portable,
    }
}

/// For a test of the kernels of `want`: the token's level is used, or the
/// test fails: a test that returned early on a CPU without the feature
/// would pass having tested nothing. `BACKPROP_SKIP_MISSING_ISA=1` turns
/// that failure into a skip (returns `false`), for machines that lack the
/// feature or runs with `BACKPROP_ISA` capped.
#[cfg(test)]
pub(crate) fn test_requires(want: Level) -> bool {
    if level() >= want {
        return true;
    }
    let skip = std::env::var("BACKPROP_SKIP_MISSING_ISA").is_ok_and(|v| v == "1");
    assert!(
        skip,
        "this test needs {want:?}, which this process does not use (CPU: {:?}, BACKPROP_ISA: {:?}); \
         set BACKPROP_SKIP_MISSING_ISA=1 to skip it",
        detected(),
        std::env::var("BACKPROP_ISA").ok()
    );
    eprintln!("skipped: needs {want:?} (BACKPROP_SKIP_MISSING_ISA=1)");
    false
}

/// For a test that checks every kernel against the portable one: every
/// choice of loops, portable first. On x86-64 the test fails when this
/// process lacks AVX2 or AVX-512 (it would pass having tested less than it
/// says), unless `BACKPROP_SKIP_MISSING_ISA=1` (then the missing ones are
/// skipped, and said so).
#[cfg(test)]
pub(crate) fn test_simds() -> Vec<Simd> {
    if cfg!(target_arch = "x86_64") {
        test_requires(Level::Avx512);
    }
    Simd::all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_follow_the_level() {
        assert_eq!(avx2().is_some(), level() >= Level::Avx2);
        assert_eq!(avx512().is_some(), level() >= Level::Avx512);
        assert_eq!(Simd::all().len(), 1 + level() as usize);
        assert!(level() <= detected());
    }
}
