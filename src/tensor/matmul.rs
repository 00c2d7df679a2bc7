//! Matrix products, through the `gemm` crate.
//!
//! `gemm` picks AVX-512 / AVX2+FMA / NEON kernels at run time and splits work
//! over rayon threads; it takes arbitrary row and column strides, so a
//! transposed operand costs nothing: we never copy to transpose.

use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Number of threads the kernels may use (0 = rayon's default).
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
    No,
    Yes,
}

/// `out[m,n] (+)= op(a)[m,k] · op(b)[k,n]`, all row-major.
///
/// `op(a)` is `a` stored `[m,k]` when `ta == No`, or `a` stored `[k,m]` read
/// transposed when `ta == Yes`; likewise `b` (`[k,n]` or `[n,k]`). With
/// `accumulate` the product is added to `out`, otherwise it overwrites it.
///
/// ```
/// use backprop::tensor::{matmul_into, Trans};
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
    product(out, a, ta, b, tb, m, k, n, accumulate, threads());
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
    product(out, a, ta, b, tb, m, k, n, accumulate, 1);
}

#[allow(clippy::too_many_arguments)]
fn product(
    out: &mut [f32],
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
        out.len(),
        m * n,
        "matmul: out has {} values, want {m}x{n}",
        out.len()
    );
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
            out.fill(0.0);
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
    // batch-64 step, so we split the output into one contiguous block per
    // thread ourselves, each a single-threaded gemm call. Every output
    // element is computed by one thread in one order, so the same thread
    // count gives bit-identical results (gemm's blocking depends on the block
    // sizes, so a different thread count may round differently).
    let parts = if t > 1 && m * n * k >= 1 << 18 {
        t.min(m.max(n) / 8).max(1)
    } else {
        1
    };
    // The address, not the `&mut`, crosses into the threads.
    let out_addr = out.as_mut_ptr() as usize;
    let block = |i0: usize, i1: usize, j0: usize, j1: usize| {
        // SAFETY: rows i0..i1 and columns j0..j1 of `out` are written by this
        // call only; the operand offsets select the matching rows of op(a)
        // and columns of op(b), and stay inside the slices checked above.
        unsafe {
            gemm::gemm(
                i1 - i0,
                j1 - j0,
                k,
                (out_addr as *mut f32).add(i0 * n + j0),
                1,
                n as isize,
                accumulate,
                a.as_ptr().offset(i0 as isize * a_rs),
                a_cs,
                a_rs,
                b.as_ptr().offset(j0 as isize * b_cs),
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
    } else if m >= n {
        let step = m.div_ceil(parts);
        rayon::scope(|s| {
            for p in 0..parts {
                let (i0, i1) = (p * step, ((p + 1) * step).min(m));
                if i0 < i1 {
                    s.spawn(move |_| block(i0, i1, 0, n));
                }
            }
        });
    } else {
        let step = n.div_ceil(parts);
        rayon::scope(|s| {
            for p in 0..parts {
                let (j0, j1) = (p * step, ((p + 1) * step).min(n));
                if j0 < j1 {
                    s.spawn(move |_| block(0, m, j0, j1));
                }
            }
        });
    }
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
    fn all_transpose_combinations_match_naive() {
        let (m, k, n) = (37, 23, 71);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
            .collect();
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
