//! Matrix products: our kernel (`sgemm.rs`) on x86-64 CPUs with AVX2 and
//! FMA (with AVX-512, for the large products only: [`MatmulKernel::BySize`]),
//! the `gemm` crate (AVX-512 / AVX2 / NEON kernels chosen at run time) for
//! the rest.
//!
//! Both take arbitrary row and column strides, so a transposed operand costs
//! nothing here: we never copy to transpose (the kernels' packing absorbs it).

#[cfg(target_arch = "x86_64")]
use super::sgemm::Shared;
use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Number of threads the kernels may use (0 = the default: rayon's pool
/// size, i.e. `RAYON_NUM_THREADS` or the number of cores).
pub fn set_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// Threads the kernels use: the value given to [`set_threads`], else rayon's pool size.
pub fn threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => rayon::current_num_threads(),
        n => n,
    }
}

/// Whether an operand of a matrix product is read transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trans {
    /// Read as stored.
    No,
    /// Read transposed.
    Yes,
}

/// `out[m,n] (+)= op(a)[m,k] · op(b)[k,n]`, all row-major.
///
/// `op(a)` is `a` stored `[m,k]` when `ta == No`, or `a` stored `[k,m]` read
/// transposed when `ta == Yes`; likewise `b` (`[k,n]` or `[n,k]`). With
/// `accumulate` the product is added to `out`, otherwise it overwrites it.
///
/// ```
/// use backprop::cpu::{matmul_into, Trans};
/// let a = [1., 2., 3., 4.]; // [[1,2],[3,4]]
/// let b = [1., 0., 0., 1.];
/// let mut c = [0.0; 4];
/// matmul_into(&mut c, &a, Trans::Yes, &b, Trans::No, 2, 2, 2, false);
/// assert_eq!(c, [1., 3., 2., 4.]); // aᵀ
/// ```
#[allow(clippy::too_many_arguments)]
pub fn matmul_into(
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
    check_len(out.len(), m, n);
    // SAFETY: `out` holds m×n initialized values (checked), and as a `&mut`
    // it overlaps neither `a` nor `b` and nothing else accesses it.
    unsafe {
        product(
            out.as_mut_ptr(),
            a,
            ta,
            b,
            tb,
            m,
            k,
            n,
            accumulate,
            threads(),
        )
    };
}

/// `op(a) · op(b)` as a new `m×n` row-major buffer (see [`matmul_into`]),
/// written once by the kernel instead of zeroed first and then overwritten.
pub fn matmul(
    a: &[f32],
    ta: Trans,
    b: &[f32],
    tb: Trans,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    matmul_on(threads(), a, ta, b, tb, m, k, n)
}

/// [`matmul`] on at most `t` threads (1: the calling thread only, for a
/// caller that runs several products side by side itself).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_on(
    t: usize,
    a: &[f32],
    ta: Trans,
    b: &[f32],
    tb: Trans,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(m * n);
    // SAFETY: the capacity is m×n of a new buffer (so not `a` or `b`);
    // without `accumulate` the product writes every value of the output and
    // reads none, so all m×n are initialized.
    unsafe {
        product(out.as_mut_ptr(), a, ta, b, tb, m, k, n, false, t);
        out.set_len(m * n);
    }
    out
}

fn check_len(len: usize, m: usize, n: usize) {
    assert_eq!(len, m * n, "matmul: out has {len} values, want {m}x{n}");
}

/// [`matmul_into`] on the calling thread only: for callers that already run
/// on several threads (the convolution splits the batch) and must not nest
/// a second split inside.
#[allow(clippy::too_many_arguments)]
pub fn matmul_serial_into(
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
    check_len(out.len(), m, n);
    // SAFETY: `out` holds m×n initialized values (checked), and as a `&mut`
    // it overlaps neither `a` nor `b` and nothing else accesses it.
    unsafe { product(out.as_mut_ptr(), a, ta, b, tb, m, k, n, accumulate, 1) };
}

/// Which kernel computes matrix products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    /// Our kernel (`sgemm.rs`, AVX2+FMA, 6×32 tiles with AVX-512): the
    /// default on x86-64 with AVX2 and FMA but without AVX-512.
    Own,
    /// The `gemm` crate: the default off x86-64.
    GemmCrate,
    /// Ours for products with an output of at least 256×256 and 2²⁴
    /// multiply-adds, the crate's for the others: the default with AVX-512.
    /// There the two kernels run at the same speed in isolation
    /// (`examples/matmul_gflops.rs`), but in a training step ours packs a
    /// shared operand once for both threads and reads `x·Wᵀ`'s transposed
    /// operand faster (mlp-wide 2.04 → 1.81 s an epoch), while the crate's
    /// was faster on rnn-rows (all ours: 1.42–1.55 s an epoch against
    /// 0.93–1.35; with ours only for its 128×128 `∂W_hh`, summed over 1 728
    /// rows: 1.16–1.48 s).
    BySize,
}

static KERNEL: AtomicUsize = AtomicUsize::new(0); // 0: not chosen yet

/// The kernel [`matmul_into`] uses: [`set_matmul_kernel`]'s choice, else
/// `BACKPROP_MATMUL=gemm` (the crate) from the environment, else the best
/// one for this CPU.
pub fn matmul_kernel() -> MatmulKernel {
    match KERNEL.load(Ordering::Relaxed) {
        1 => MatmulKernel::Own,
        2 => MatmulKernel::GemmCrate,
        3 => MatmulKernel::BySize,
        _ => {
            let k = match std::env::var("BACKPROP_MATMUL").as_deref() {
                Ok("gemm") => MatmulKernel::GemmCrate,
                Ok("own") => MatmulKernel::Own,
                _ => default_kernel(),
            };
            set_matmul_kernel(k);
            k
        }
    }
}

/// Chooses the kernel (to compare the two; [`MatmulKernel::Own`] falls back
/// to the crate on a CPU without AVX2+FMA).
pub fn set_matmul_kernel(k: MatmulKernel) {
    let code = match k {
        _ if crate::cpu::isa::avx2().is_none() => 2,
        MatmulKernel::Own => 1,
        MatmulKernel::GemmCrate => 2,
        MatmulKernel::BySize => 3,
    };
    KERNEL.store(code, Ordering::Relaxed);
}

/// A right operand `op(b)` (`k × n`) packed once for many products
/// `a·op(b)` by our kernel ([`PackedRhs::product`]): an RNN's recurrent
/// weight, multiplied at every time step. Packing it at every step (as
/// the `gemm` crate must) took 11 % of an rnn-rows epoch.
pub(crate) struct PackedRhs {
    #[cfg(target_arch = "x86_64")]
    packed: Shared,
    #[cfg(target_arch = "x86_64")]
    token: crate::cpu::isa::Avx2,
    k: usize,
    n: usize,
}

impl PackedRhs {
    /// `op(b)` packed, or `None` where our kernel does not run (no AVX2 and
    /// FMA, or [`MatmulKernel::GemmCrate`] chosen) or `n` is too wide to be
    /// packed in one block.
    pub(crate) fn new(b: &[f32], tb: Trans, k: usize, n: usize) -> Option<PackedRhs> {
        assert_eq!(
            b.len(),
            k * n,
            "matmul: rhs has {} values, want {k}x{n}",
            b.len()
        );
        if k == 0 || n == 0 || matmul_kernel() == MatmulKernel::GemmCrate {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let token = crate::cpu::isa::avx2()?;
            let (b_cs, b_rs) = match tb {
                Trans::No => (1, n as isize),
                Trans::Yes => (k as isize, 1),
            };
            // SAFETY: `b` holds k×n values (asserted), which these strides
            // address; the token proves AVX2 and FMA.
            let packed =
                unsafe { Shared::pack(token, true, 1, (0, n, k), (&[], 0, 0), (b, b_rs, b_cs)) }?;
            Some(PackedRhs {
                packed,
                token,
                k,
                n,
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = tb;
            None
        }
    }

    /// `out[m, n] (+)= op(a)[m, k] · op(b)` on the calling thread. Our
    /// kernel sums each value in the same order whatever `m` is, so the
    /// rows may be computed in any blocks.
    pub(crate) fn product(
        &self,
        out: &mut [f32],
        a: &[f32],
        ta: Trans,
        m: usize,
        accumulate: bool,
    ) {
        let (k, n) = (self.k, self.n);
        check_len(out.len(), m, n);
        assert_eq!(
            a.len(),
            m * k,
            "matmul: lhs has {} values, want {m}x{k}",
            a.len()
        );
        if m == 0 {
            return;
        }
        let (a_cs, a_rs) = match ta {
            Trans::No => (1, k as isize),
            Trans::Yes => (m as isize, 1),
        };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `a` holds m×k values and `out` m×n (checked), addressed by
        // these strides and `ldc = n`; `out` is a `&mut`, so it overlaps
        // nothing; `token` proves AVX2 and FMA, and `packed` holds this
        // product's `op(b)`. The `b` pointer is not
        // read when `B` comes packed; the packed buffer's start stands in.
        unsafe {
            let b = match &self.packed {
                Shared::B(v) | Shared::A(v) => v.as_ptr(),
            };
            super::sgemm::sgemm(
                self.token,
                m,
                n,
                k,
                a.as_ptr(),
                a_rs,
                a_cs,
                b,
                0,
                0,
                out.as_mut_ptr(),
                n,
                accumulate,
                Some(&self.packed),
            )
        };
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (out, a_rs, a_cs, accumulate);
            unreachable!("a PackedRhs exists only on x86-64");
        }
    }
}

/// Products from this many multiply-adds, with outputs at least `OWN_SIDE`
/// on each side, run on our kernel under [`MatmulKernel::BySize`].
const OWN_MIN: usize = 1 << 24;
const OWN_SIDE: usize = 256;

/// Whether our kernel computes an `m×k×n` product.
fn own_for(m: usize, n: usize, k: usize) -> bool {
    match matmul_kernel() {
        MatmulKernel::Own => true,
        MatmulKernel::GemmCrate => false,
        MatmulKernel::BySize => m * n * k >= OWN_MIN && m.min(n) >= OWN_SIDE,
    }
}

fn default_kernel() -> MatmulKernel {
    use crate::cpu::isa::{simd, Simd};
    match simd() {
        Simd::Avx512(_) => MatmulKernel::BySize,
        Simd::Avx2(_) => MatmulKernel::Own,
        Simd::Portable => MatmulKernel::GemmCrate,
    }
}

/// The product into `out`, which must be valid for m×n writes (and reads,
/// with `accumulate`).
///
/// # Safety
/// - `out` is valid for writes of `m·n` consecutive `f32`s, and with
///   `accumulate` for reads too (all `m·n` initialized); without
///   `accumulate` none is read, so they may be uninitialized.
/// - Those `m·n` values do not overlap `a` or `b`, and nothing else reads
///   or writes them during the call (up to `t` threads write disjoint
///   blocks of them).
///
/// The sizes of `a` and `b` are asserted, not assumed, and the CPU features
/// of our kernel are checked by [`matmul_kernel`].
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    out: *mut f32,
    a: &[f32],
    ta: Trans,
    b: &[f32],
    tb: Trans,
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
    t: usize,
) {
    assert_eq!(
        a.len(),
        m * k,
        "matmul: lhs has {} values, want {m}x{k}",
        a.len()
    );
    assert_eq!(
        b.len(),
        k * n,
        "matmul: rhs has {} values, want {k}x{n}",
        b.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            std::ptr::write_bytes(out, 0, m * n);
        }
        return;
    }
    // (column stride, row stride) of each operand as gemm wants them.
    let (a_cs, a_rs) = match ta {
        Trans::No => (1, k as isize),
        Trans::Yes => (m as isize, 1),
    };
    let (b_cs, b_rs) = match tb {
        Trans::No => (1, n as isize),
        Trans::Yes => (k as isize, 1),
    };
    // gemm's own rayon split costs more than it gains at the sizes of a
    // batch-64 step, so we split the output into contiguous blocks ourselves
    // (one or two per thread, at multiples of our kernel's 6×16 tile), each a
    // single-threaded kernel call. Every output element is computed by one
    // thread in one order, so the same thread count gives bit-identical
    // results. Our kernel sums each element in the same order whatever the
    // block, so with it any thread count gives the same bits; the gemm
    // crate's blocking depends on the block sizes.
    let parts = parts_for(m, n, k, t);
    #[cfg(target_arch = "x86_64")]
    let own = own_for(m, n, k).then(crate::cpu::isa::avx2).flatten();
    let by_rows = m >= n;
    // With our kernel, the operand that every block reads in full (A when
    // the output is split by columns, B when by rows) is packed once, its
    // panels split over the threads, instead of by every block again (a
    // third of the packing of an mlp-wide step was such repeats).
    #[cfg(target_arch = "x86_64")]
    let shared = match own {
        Some(t) if parts > 1 && shares_packing(m, n, k) => {
            // SAFETY: the operands hold m×k and k×n values (checked above),
            // addressed by these strides; `t` proves AVX2 and FMA.
            unsafe {
                Shared::pack(
                    t,
                    by_rows,
                    parts,
                    (m, n, k),
                    (a, a_rs, a_cs),
                    (b, b_rs, b_cs),
                )
            }
        }
        _ => None,
    };
    // The address, not the `&mut`, crosses into the threads.
    let out_addr = out as usize;
    let block = |i0: usize, i1: usize, j0: usize, j1: usize| {
        let (a0, b0) = (i0 as isize * a_rs, j0 as isize * b_cs);
        // SAFETY: rows i0..i1 and columns j0..j1 of `out` are written by this
        // call only; the operand offsets select the matching rows of op(a)
        // and columns of op(b), and stay inside the slices checked above;
        // `out` overlaps neither (the caller's promise); `own` holds the
        // token of our kernel's CPU features.
        unsafe {
            let c = (out_addr as *mut f32).add(i0 * n + j0);
            #[cfg(target_arch = "x86_64")]
            if let Some(t) = own {
                let (ap, bp) = (a.as_ptr().offset(a0), b.as_ptr().offset(b0));
                let (mb, nb) = (i1 - i0, j1 - j0);
                super::sgemm::sgemm(
                    t,
                    mb,
                    nb,
                    k,
                    ap,
                    a_rs,
                    a_cs,
                    bp,
                    b_rs,
                    b_cs,
                    c,
                    n,
                    accumulate,
                    shared.as_ref(),
                );
                return;
            }
            gemm::gemm(
                i1 - i0,
                j1 - j0,
                k,
                c,
                1,
                n as isize,
                accumulate,
                a.as_ptr().offset(a0),
                a_cs,
                a_rs,
                b.as_ptr().offset(b0),
                b_cs,
                b_rs,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    if parts <= 1 {
        block(0, m, 0, n);
    } else if by_rows {
        let step = m.div_ceil(parts).next_multiple_of(6);
        super::team::run(m.div_ceil(step), &|p| {
            block(p * step, ((p + 1) * step).min(m), 0, n)
        });
    } else {
        let step = n.div_ceil(parts).next_multiple_of(16);
        super::team::run(n.div_ceil(step), &|p| {
            block(0, m, p * step, ((p + 1) * step).min(n))
        });
    }
}

/// How many blocks an `m×k×n` product is cut into for `t` threads.
fn parts_for(m: usize, n: usize, k: usize, t: usize) -> usize {
    if t > 1 && m * n * k >= 1 << 18 {
        // Large products that share their packing are cut into a few
        // blocks per thread (the shared operand is packed once whatever the
        // count), so that a thread whose core stalls for a while (CPU steal
        // on a virtual machine) holds up one small block while the others
        // take the rest.
        let fine = shares_packing(m, n, k) && m * n * k >= FINE_SPLIT_MIN;
        let per = if fine { BLOCKS_PER_THREAD } else { 1 };
        (per * t).min(m.max(n) / 8).max(1)
    } else {
        1
    }
}

/// Products from this many multiply-adds share the packing of their common
/// operand between threads (below, a second fork-join costs more than the
/// repeated packing).
const SHARED_PACK_MIN: usize = 1 << 22;

/// Blocks per thread of a product that shares its packing and has at least
/// [`FINE_SPLIT_MIN`] multiply-adds: mlp-wide's products (2·10⁸), not
/// mlp-small's (6·10⁶), where the extra blocks cost more CPU time than they
/// saved.
const BLOCKS_PER_THREAD: usize = 2;
const FINE_SPLIT_MIN: usize = 1 << 26;

/// Whether a threaded product packs its shared operand once (our kernel
/// only; with the gemm crate, more blocks would mean more packing).
fn shares_packing(m: usize, n: usize, k: usize) -> bool {
    m * n * k >= SHARED_PACK_MIN && own_for(m, n, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    c[i * n + j] += a[i * k + p] * b[p * n + j];
                }
            }
        }
        c
    }

    /// Deterministic `a: [m, k]` and `b: [k, n]` with small exact values.
    fn operands(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
        let a = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let b = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
            .collect();
        (a, b)
    }

    fn transpose(a: &[f32], r: usize, c: usize) -> Vec<f32> {
        let mut t = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                t[j * r + i] = a[i * c + j];
            }
        }
        t
    }

    #[test]
    fn threaded_products_share_packing_and_keep_the_bits() {
        // Above the shared-packing threshold, split by columns (A shared)
        // and by rows (B shared), k crossing the kernel's block depth,
        // ragged panels: every thread count gives the one-thread bits.
        // The last has enough work for two blocks per thread.
        for (m, k, n) in [
            (70, 600, 130),
            (130, 600, 70),
            (301, 257, 64),
            (190, 730, 500),
        ] {
            let (a, b) = operands(m, k, n);
            let want = naive(&a, &b, m, k, n);
            let (at, bt) = (transpose(&a, m, k), transpose(&b, k, n));
            for (aa, ta) in [(&a, Trans::No), (&at, Trans::Yes)] {
                for (bb, tb) in [(&b, Trans::No), (&bt, Trans::Yes)] {
                    let run = |t: usize| {
                        let pool = rayon::ThreadPoolBuilder::new()
                            .num_threads(t)
                            .build()
                            .unwrap();
                        let mut c = vec![f32::NAN; m * n];
                        // SAFETY: `c` is a new buffer of m×n initialized
                        // values, separate from the operands.
                        pool.install(|| unsafe {
                            product(c.as_mut_ptr(), aa, ta, bb, tb, m, k, n, false, t)
                        });
                        c
                    };
                    let one = run(1);
                    for (x, y) in one.iter().zip(&want) {
                        assert!(
                            (x - y).abs() < 1e-3 * (1.0 + y.abs()),
                            "{ta:?} {tb:?}: {x} vs {y}"
                        );
                    }
                    // The gemm crate's blocking depends on the block sizes.
                    if !own_for(m, n, k) {
                        continue;
                    }
                    for t in [2, 3] {
                        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&run(t)), bits(&one), "{m}x{k}x{n} {ta:?} {tb:?} t={t}");
                    }
                }
            }
        }
    }

    #[test]
    fn all_transpose_combinations_match_naive() {
        let (m, k, n) = (37, 23, 71);
        let (a, b) = operands(m, k, n);
        let want = naive(&a, &b, m, k, n);
        let at = transpose(&a, m, k);
        let bt = transpose(&b, k, n);
        for (aa, ta) in [(&a, Trans::No), (&at, Trans::Yes)] {
            for (bb, tb) in [(&b, Trans::No), (&bt, Trans::Yes)] {
                let mut c = vec![1.0; m * n];
                matmul_into(&mut c, aa, ta, bb, tb, m, k, n, false);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-4, "{ta:?} {tb:?}: {x} vs {y}");
                }
                matmul_into(&mut c, aa, ta, bb, tb, m, k, n, true);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - 2.0 * y).abs() < 2e-4);
                }
            }
        }
    }
}
