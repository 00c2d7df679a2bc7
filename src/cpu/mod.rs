//! The CPU backend: every kernel and every `unsafe` block of the crate.
//!
//! The rest of the crate is safe code (`#![forbid(unsafe_code)]` on every
//! other module, checked by `.ci/run`): the ops in [`crate::ops`] say what
//! is computed and call the loops here to compute it.
//!
//! - [`isa`]: which vector instructions the CPU has, detected once; the
//!   kernels that need AVX2 or AVX-512 take the token that proves it.
//! - `team`, `par`: the thread team and the one way work is cut over it.
//! - `matmul` (with `sgemm`, our AVX2/AVX-512 kernel, and the `gemm`
//!   crate): matrix products with strided operands.
//! - `conv` (im2col, and `conv::direct`: the stride-1 kernels): convolution.
//! - `pool`, `channels` (batch norm's and the biases' per-channel sums),
//!   `tanh`, `rnn` (the RNN's buffers), `update` (the optimizers'
//!   loops), `simd` (plain loops compiled for the widest vectors).
//! - `mem`: whether a block of memory can be had.
//! - `alloc` (feature `mimalloc`): the allocator training programs declare.

#[cfg(feature = "mimalloc")]
pub mod alloc;
pub(crate) mod channels;
pub(crate) mod conv;
pub mod isa;
pub(crate) mod matmul;
pub(crate) mod mem;
pub(crate) mod par;
pub(crate) mod pool;
pub(crate) mod rnn;
pub(crate) mod rows;
mod sgemm;
pub(crate) mod simd;
pub(crate) mod tanh;
pub(crate) mod team;
pub(crate) mod update;
pub(crate) mod window;

pub use matmul::{matmul, matmul_into, set_threads, threads, Trans};
#[doc(hidden)]
pub use matmul::{matmul_kernel, matmul_serial_into, set_matmul_kernel, MatmulKernel};
pub(crate) use matmul::{matmul_on, PackedRhs};

/// `f()` with `t` kernel threads (in a rayon pool of `t`), for tests that
/// compare thread counts.
#[cfg(test)]
pub(crate) fn with_threads<R: Send>(t: usize, f: impl FnOnce() -> R + Send) -> R {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(t)
        .build()
        .expect("a thread pool");
    pool.install(|| {
        set_threads(t);
        let r = f();
        set_threads(0);
        r
    })
}

/// `x` seen as possibly-uninitialized values, to copy from into a buffer
/// being written.
pub(crate) fn as_uninit(x: &[f32]) -> &[std::mem::MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and reading an
    // initialized value through it is always sound.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) }
}

/// `x` with every value set to `v`, as the initialized values.
pub(crate) fn filled<T: Copy>(x: &mut [std::mem::MaybeUninit<T>], v: T) -> &mut [T] {
    for e in x.iter_mut() {
        e.write(v);
    }
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and every value was
    // written just above.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast(), x.len()) }
}

simd::wide_fn! {
    /// `acc += v`, value by value (the partial sums of a gradient, added in
    /// their order).
    pub(crate) fn add_into(acc: &mut [f32], v: &[f32]) {
        for (a, &x) in acc.iter_mut().zip(v) {
            *a += x;
        }
    }
}

/// `x` as the `f32`s it holds.
///
/// # Safety
/// Every value of `x` has been written.
pub(crate) unsafe fn assume_init(x: &[std::mem::MaybeUninit<f32>]) -> &[f32] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and the caller
    // guarantees every value is initialized.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) }
}

/// `x` as the `f32`s it holds, to change in place.
///
/// # Safety
/// Every value of `x` has been written.
pub(crate) unsafe fn assume_init_mut(x: &mut [std::mem::MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: as in [`assume_init`]; writes through the result store
    // initialized values.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast(), x.len()) }
}

/// `dst = src` for short runs (a few to a few dozen values: im2col's runs,
/// the rows of a small padded image): fixed-size moves instead of a
/// `memcpy` call per run.
#[inline(always)]
pub(crate) fn copy_short<T: Copy>(dst: &mut [T], src: &[T]) {
    let n = dst.len();
    let src = &src[..n];
    match n {
        0 => {}
        1..=3 => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = *s;
            }
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        _ => {
            let (mut d8, mut s8) = (dst.chunks_exact_mut(8), src.chunks_exact(8));
            for (d, s) in (&mut d8).zip(&mut s8) {
                d.copy_from_slice(s);
            }
            if !d8.into_remainder().is_empty() {
                dst[n - 8..].copy_from_slice(&src[n - 8..]);
            }
        }
    }
}

simd::wide_fn! {
    /// The sum of `x` in 8 interleaved partial sums (lane `l` adds `x[l]`,
    /// `x[l + 8]`, …), combined in a fixed order: a loop the compiler keeps in
    /// vector registers, where one running sum waits on each add in turn (a
    /// 784-value row cost about 4× more). The order depends on the length only,
    /// so results are deterministic.
    pub(crate) fn sum_lanes(x: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let mut chunks = x.chunks_exact(8);
        for c in &mut chunks {
            for (a, v) in acc.iter_mut().zip(c) {
                *a += v;
            }
        }
        for (a, v) in acc.iter_mut().zip(chunks.remainder()) {
            *a += v;
        }
        let h: [f32; 4] = std::array::from_fn(|i| acc[i] + acc[i + 4]);
        (h[0] + h[2]) + (h[1] + h[3])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_lanes_adds_every_value() {
        for n in [0, 1, 7, 8, 9, 100, 784] {
            let x: Vec<f32> = (0..n).map(|i| (i % 5) as f32 - 1.5).collect();
            let want: f64 = x.iter().map(|&v| v as f64).sum();
            assert_eq!(sum_lanes(&x) as f64, want, "n = {n}");
        }
    }
}
