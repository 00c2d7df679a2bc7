//! Per-channel sums and maps over `[N, C, inner]` data (channels on axis 1,
//! `inner` values per sample and channel): the kernels behind batch norm
//! (`ops::batchnorm`).
//!
//! Sums are in `f64`, eight independent lanes per channel (pipelined adds;
//! with AVX-512 the eight lanes are one register, same bits), channels
//! spread over the thread team. Maps write every output value once.
//! `inner = 1` (`[N, C]`, batch norm 1-d on features) walks rows instead,
//! every channel at once, each channel's sums in row order.

use crate::cpu::par::{by_ranges, by_row_blocks, for_blocks, per_channel, SPLIT_MIN};
use crate::cpu::simd::wide_fn;
use crate::cpu::threads;
use std::mem::MaybeUninit;
use std::ops::Range;

/// `(Σ a, Σ a·b)` over two equal-length slices, in `f64`, with `a` read as
/// given and `b` shifted by `-kb`. Eight independent lanes keep the adds
/// pipelined (and vectorized).
#[inline(always)]
fn dot_sums(a: &[f32], b: &[f32], kb: f64) -> (f64, f64) {
    let mut s = [0f64; 8];
    let mut p = [0f64; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    #[cfg(target_arch = "x86_64")]
    let done = match crate::cpu::isa::avx512() {
        Some(t) => {
            // SAFETY: the token proves the CPU has AVX-512F, AVX2 and FMA,
            // what `dot_sums` is compiled for; the chunks are whole.
            unsafe { lanes::dot_sums(t, ac.clone(), bc.clone(), kb, &mut s, &mut p) };
            true
        }
        None => false,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = false;
    if !done {
        for (x, y) in ac.zip(bc) {
            for l in 0..8 {
                let (xa, yb) = (x[l] as f64, y[l] as f64 - kb);
                s[l] += xa;
                p[l] += xa * yb;
            }
        }
    }
    let (mut ss, mut pp) = (s.iter().sum::<f64>(), p.iter().sum::<f64>());
    for (&x, &y) in ar.iter().zip(br) {
        ss += x as f64;
        pp += x as f64 * (y as f64 - kb);
    }
    (ss, pp)
}

/// `(Σ (v−k), Σ (v−k)²)` over a slice, in `f64`.
#[inline(always)]
fn shifted_moments(v: &[f32], k: f64) -> (f64, f64) {
    let mut s = [0f64; 8];
    let mut q = [0f64; 8];
    let c = v.chunks_exact(8);
    let r = c.remainder();
    #[cfg(target_arch = "x86_64")]
    let done = match crate::cpu::isa::avx512() {
        Some(t) => {
            // SAFETY: the token proves the CPU has AVX-512F, AVX2 and FMA,
            // what `shifted_moments` is compiled for; the chunks are whole.
            unsafe { lanes::shifted_moments(t, c.clone(), k, &mut s, &mut q) };
            true
        }
        None => false,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = false;
    if !done {
        for x in c {
            for l in 0..8 {
                let d = x[l] as f64 - k;
                s[l] += d;
                q[l] += d * d;
            }
        }
    }
    let (mut ss, mut qq) = (s.iter().sum::<f64>(), q.iter().sum::<f64>());
    for &x in r {
        let d = x as f64 - k;
        ss += d;
        qq += d * d;
    }
    (ss, qq)
}

/// The 8-lane loops of [`dot_sums`] and [`shifted_moments`] with AVX-512:
/// the eight `f64` lanes in one register, lane `l` summing the same values
/// in the same order as the plain loop's `s[l]` (separate multiply and add,
/// no FMA), so the bits are the plain loop's. LLVM did not vectorize the
/// plain loops (scalar converts and adds, even built for AVX-512).
#[cfg(target_arch = "x86_64")]
mod lanes {
    use std::arch::x86_64::*;
    use std::slice::ChunksExact;

    /// `s[l] += a[l]`, `p[l] += a[l]·(b[l] − kb)` over the chunks.
    ///
    /// Compiled for AVX-512F, AVX2 and FMA: the caller's token proves the
    /// CPU has them.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn dot_sums(
        _: crate::cpu::isa::Avx512,
        a: ChunksExact<'_, f32>,
        b: ChunksExact<'_, f32>,
        kb: f64,
        s: &mut [f64; 8],
        p: &mut [f64; 8],
    ) {
        let k = _mm512_set1_pd(kb);
        // SAFETY: `s` and `p` are arrays of 8 `f64`, exactly one load each.
        let (mut sv, mut pv) =
            unsafe { (_mm512_loadu_pd(s.as_ptr()), _mm512_loadu_pd(p.as_ptr())) };
        for (x, y) in a.zip(b) {
            assert!(x.len() == 8 && y.len() == 8);
            // SAFETY: each chunk holds 8 `f32` (asserted), one 8-lane load.
            let (x, y) = unsafe { (_mm256_loadu_ps(x.as_ptr()), _mm256_loadu_ps(y.as_ptr())) };
            let xa = _mm512_cvtps_pd(x);
            let yb = _mm512_sub_pd(_mm512_cvtps_pd(y), k);
            sv = _mm512_add_pd(sv, xa);
            pv = _mm512_add_pd(pv, _mm512_mul_pd(xa, yb));
        }
        // SAFETY: `s` and `p` are arrays of 8 `f64`, exactly one store each.
        unsafe {
            _mm512_storeu_pd(s.as_mut_ptr(), sv);
            _mm512_storeu_pd(p.as_mut_ptr(), pv);
        }
    }

    /// `s[l] += v[l] − k`, `q[l] += (v[l] − k)²` over the chunks.
    ///
    /// Compiled for AVX-512F, AVX2 and FMA: the caller's token proves the
    /// CPU has them.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn shifted_moments(
        _: crate::cpu::isa::Avx512,
        v: ChunksExact<'_, f32>,
        k: f64,
        s: &mut [f64; 8],
        q: &mut [f64; 8],
    ) {
        let kv = _mm512_set1_pd(k);
        // SAFETY: `s` and `q` are arrays of 8 `f64`, exactly one load each.
        let (mut sv, mut qv) =
            unsafe { (_mm512_loadu_pd(s.as_ptr()), _mm512_loadu_pd(q.as_ptr())) };
        for x in v {
            assert!(x.len() == 8);
            // SAFETY: the chunk holds 8 `f32` (asserted), one 8-lane load.
            let x = unsafe { _mm256_loadu_ps(x.as_ptr()) };
            let d = _mm512_sub_pd(_mm512_cvtps_pd(x), kv);
            sv = _mm512_add_pd(sv, d);
            qv = _mm512_add_pd(qv, _mm512_mul_pd(d, d));
        }
        // SAFETY: `s` and `q` are arrays of 8 `f64`, exactly one store each.
        unsafe {
            _mm512_storeu_pd(s.as_mut_ptr(), sv);
            _mm512_storeu_pd(q.as_mut_ptr(), qv);
        }
    }
}

wide_fn! {
    /// `(Σ (x−k), Σ (x−k)²)` of channel `ch` of `x: [N, C, inner]`, in
    /// `f64`, sample by sample.
    fn channel_moments(x: &[f32], c: usize, inner: usize, ch: usize, k: f64) -> (f64, f64) {
        let (mut s, mut q) = (0f64, 0f64);
        for at in (ch * inner..x.len()).step_by(c * inner) {
            let (a, b) = shifted_moments(&x[at..at + inner], k);
            s += a;
            q += b;
        }
        (s, q)
    }
}

wide_fn! {
    /// `(Σ g, Σ g·(x − μ))` of channel `ch` of `g, x: [N, C, inner]`, in
    /// `f64`, sample by sample.
    fn channel_dot_sums(g: &[f32], x: &[f32], c: usize, inner: usize, ch: usize, mu: f64) -> (f64, f64) {
        let (mut s, mut p) = (0f64, 0f64);
        for at in (ch * inner..x.len()).step_by(c * inner) {
            let r = at..at + inner;
            let (a, b) = dot_sums(&g[r.clone()], &x[r], mu);
            s += a;
            p += b;
        }
        (s, p)
    }
}

wide_fn! {
    /// `y = (x − m)·a + b`, value by value (every `y` written).
    fn affine(y: &mut [MaybeUninit<f32>], x: &[f32], m: f32, a: f32, b: f32) {
        for (y, &v) in y.iter_mut().zip(x) {
            y.write((v - m) * a + b);
        }
    }
}

wide_fn! {
    /// Batch norm's `∂x = a·g + b·(x − m) + k` (training) or `a·g`
    /// (evaluation), value by value (every `o` written); `coef` is
    /// `[a, b, k, m]`.
    fn grad_block(o: &mut [MaybeUninit<f32>], g: &[f32], x: &[f32], coef: [f32; 4], training: bool) {
        let [a, b, k, m] = coef;
        if training {
            for ((o, &gv), &xv) in o.iter_mut().zip(g).zip(x) {
                o.write(a * gv + b * (xv - m) + k);
            }
        } else {
            for (o, &gv) in o.iter_mut().zip(g) {
                o.write(a * gv);
            }
        }
    }
}

// The `[N, C]` case (batch norm 1-d on features): walk the rows, every
// channel at once (`C = shift.len()` values a row), each channel's sums in
// row order.

wide_fn! {
    /// `s[ch] += Σ (x − k[ch])`, `q[ch] += Σ (x − k[ch])²` over the rows, for
    /// the channels `c0..c0 + k.len()` of `c`.
    fn rows_moments(x: &[f32], c: usize, c0: usize, k: &[f64], s: &mut [f64], q: &mut [f64]) {
        for row in x.chunks_exact(c) {
            let row = &row[c0..c0 + k.len()];
            for (((s, q), &v), &kc) in s.iter_mut().zip(q.iter_mut()).zip(row).zip(k) {
                let d = v as f64 - kc;
                *s += d;
                *q += d * d;
            }
        }
    }
}

wide_fn! {
    /// `sg[ch] += Σ g`, `sgx[ch] += Σ g·(x − μ[ch])` over the rows, for the
    /// channels `c0..c0 + mu.len()` of `c`.
    fn rows_dot_sums(g: &[f32], x: &[f32], c: usize, c0: usize, mu: &[f64], sg: &mut [f64], sgx: &mut [f64]) {
        let r = c0..c0 + mu.len();
        for (gr, xr) in g.chunks_exact(c).zip(x.chunks_exact(c)) {
            let (gr, xr) = (&gr[r.clone()], &xr[r.clone()]);
            for ((((s, p), &gv), &xv), &m) in
                sg.iter_mut().zip(sgx.iter_mut()).zip(gr).zip(xr).zip(mu)
            {
                let gv = gv as f64;
                *s += gv;
                *p += gv * (xv as f64 - m);
            }
        }
    }
}

wide_fn! {
    /// `y = (x − μ)·a + b` per channel; `coef` is `[μ, a, b]`.
    fn rows_affine(y: &mut [MaybeUninit<f32>], x: &[f32], coef: [&[f32]; 3]) {
        let [mu, a, b] = coef;
        let c = mu.len();
        for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
            for ((((y, &v), &m), &a), &b) in yr.iter_mut().zip(xr).zip(mu).zip(a).zip(b) {
                y.write((v - m) * a + b);
            }
        }
    }
}

wide_fn! {
    /// `∂x = a·g + b·(x − μ) + k` per channel; `coef` is `[a, b, k, μ]`.
    fn rows_grad(o: &mut [MaybeUninit<f32>], g: &[f32], x: &[f32], coef: [&[f32]; 4]) {
        let [a, b, k, mu] = coef;
        let c = mu.len();
        for ((or, gr), xr) in o.chunks_exact_mut(c).zip(g.chunks_exact(c)).zip(x.chunks_exact(c)) {
            for (((((o, &gv), &xv), &a), &b), (&k, &m)) in
                or.iter_mut().zip(gr).zip(xr).zip(a).zip(b).zip(k.iter().zip(mu))
            {
                o.write(a * gv + b * (xv - m) + k);
            }
        }
    }
}

/// `f(range)` for the channels of an `[N, C]` pass of `size` values, cut
/// into one range per kernel thread from [`SPLIT_MIN`] values on, the
/// results in channel order. Each channel's sums walk the rows in order
/// whatever the cut, so they do not depend on it.
fn by_channel_ranges<R: Send>(
    c: usize,
    size: usize,
    f: impl Fn(Range<usize>) -> R + Sync,
) -> Vec<R> {
    let t = if size >= SPLIT_MIN { threads() } else { 1 };
    by_ranges(c, t, 1, f)
}

/// Per-channel `(Σ (x−k), Σ (x−k)²)` of `x` (`[N, C, inner]`), in `f64`,
/// with `k = shift[ch]`.
pub(crate) fn shifted_sums(
    x: &[f32],
    c: usize,
    inner: usize,
    shift: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    if inner == 1 {
        let parts = by_channel_ranges(c, x.len(), |r| {
            let (mut s, mut q) = (vec![0f64; r.len()], vec![0f64; r.len()]);
            rows_moments(x, c, r.start, &shift[r], &mut s, &mut q);
            (s, q)
        });
        let (s, q): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        (s.concat(), q.concat())
    } else {
        per_channel(c, x.len(), |ch| channel_moments(x, c, inner, ch, shift[ch]))
            .into_iter()
            .unzip()
    }
}

/// `out = (x − μ)·a + b` per channel of `x: [N, C, inner]` (`a`, `b`, `μ`
/// given per channel); every value of `out` written.
pub(crate) fn affine_per_channel(
    x: &[f32],
    out: &mut [MaybeUninit<f32>],
    c: usize,
    inner: usize,
    mu: &[f32],
    a: &[f32],
    b: &[f32],
) {
    if inner == 1 {
        by_row_blocks(out, c, |first, o| {
            rows_affine(o, &x[first * c..first * c + o.len()], [mu, a, b])
        });
    } else {
        for_blocks(out, inner, |i, yb| {
            let ch = i % c;
            affine(yb, &x[i * inner..(i + 1) * inner], mu[ch], a[ch], b[ch]);
        });
    }
}

/// What a column sum is taken in: `f64` (batch norm's statistics, the
/// RNN's bias gradient) or `f32` (a linear layer's bias gradient, as
/// PyTorch sums it).
pub(crate) trait ColumnSum: Copy + Default + Send {
    /// `self + v` in this type.
    fn plus(self, v: f32) -> Self;
    /// [`add_rows`] at the CPU's widest vectors.
    fn add_rows_wide(x: &[f32], c: usize, c0: usize, acc: &mut [Self]);
}

/// `acc[j] += x[row, c0 + j]` over the rows of `x: [N, C]`, row by row.
#[inline(always)]
fn add_rows<A: ColumnSum>(x: &[f32], c: usize, c0: usize, acc: &mut [A]) {
    for row in x.chunks_exact(c) {
        let row = &row[c0..c0 + acc.len()];
        for (a, &v) in acc.iter_mut().zip(row) {
            *a = a.plus(v);
        }
    }
}

wide_fn! {
    fn add_rows_f64(x: &[f32], c: usize, c0: usize, acc: &mut [f64]) {
        add_rows(x, c, c0, acc)
    }
}

wide_fn! {
    fn add_rows_f32(x: &[f32], c: usize, c0: usize, acc: &mut [f32]) {
        add_rows(x, c, c0, acc)
    }
}

impl ColumnSum for f64 {
    #[inline(always)]
    fn plus(self, v: f32) -> f64 {
        self + v as f64
    }
    fn add_rows_wide(x: &[f32], c: usize, c0: usize, acc: &mut [f64]) {
        add_rows_f64(x, c, c0, acc)
    }
}

impl ColumnSum for f32 {
    #[inline(always)]
    fn plus(self, v: f32) -> f32 {
        self + v
    }
    fn add_rows_wide(x: &[f32], c: usize, c0: usize, acc: &mut [f32]) {
        add_rows_f32(x, c, c0, acc)
    }
}

/// The column sums of `x: [N, C]`, each in row order, split by columns
/// over the threads for a large `x`.
pub(crate) fn column_sums<A: ColumnSum>(x: &[f32], c: usize) -> Vec<A> {
    if c == 0 {
        return Vec::new();
    }
    by_channel_ranges(c, x.len(), |r| {
        let mut acc = vec![A::default(); r.len()];
        A::add_rows_wide(x, c, r.start, &mut acc);
        acc
    })
    .concat()
}

/// Per-channel `(Σ g, Σ g·(x − μ))` of `g, x: [N, C, inner]`, in `f64`,
/// with `μ = mu[ch]`.
pub(crate) fn dot_sums_per_channel(
    g: &[f32],
    x: &[f32],
    c: usize,
    inner: usize,
    mu: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    if inner == 1 {
        let parts = by_channel_ranges(c, x.len(), |r| {
            let (mut sg, mut sgx) = (vec![0f64; r.len()], vec![0f64; r.len()]);
            rows_dot_sums(g, x, c, r.start, &mu[r], &mut sg, &mut sgx);
            (sg, sgx)
        });
        let (sg, sgx): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        (sg.concat(), sgx.concat())
    } else {
        per_channel(c, x.len(), |ch| {
            channel_dot_sums(g, x, c, inner, ch, mu[ch])
        })
        .into_iter()
        .unzip()
    }
}

/// Batch norm's `∂x`: `out = a·g + b·(x − μ) + k` per channel of
/// `g, x: [N, C, inner]` (`coef = [a, b, k, μ]`, each per channel), or
/// `a·g` where `training` is false and `inner > 1` (for `inner = 1` the
/// caller passes `b = k = 0`); every value of `out` written.
pub(crate) fn grad_per_channel(
    out: &mut [MaybeUninit<f32>],
    g: &[f32],
    x: &[f32],
    inner: usize,
    coef: [&[f32]; 4],
    training: bool,
) {
    if inner == 1 {
        let c = coef[3].len();
        by_row_blocks(out, c, |first, o| {
            let r = first * c..first * c + o.len();
            rows_grad(o, &g[r.clone()], &x[r], coef)
        });
    } else {
        let [a, b, k, mu] = coef;
        let c = mu.len();
        for_blocks(out, inner, |i, o| {
            let ch = i % c;
            let r = i * inner..(i + 1) * inner;
            grad_block(
                o,
                &g[r.clone()],
                &x[r],
                [a[ch], b[ch], k[ch], mu[ch]],
                training,
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::with_threads;

    /// `[N, C]` passes split over threads (by channels for the sums, by
    /// rows for the maps) give the bits of the plain row-order loops.
    #[test]
    fn rows_passes_are_the_same_for_any_thread_count() {
        let (n, c) = (300, 70);
        let x: Vec<f32> = (0..n * c)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let g: Vec<f32> = (0..n * c)
            .map(|i| ((i * 11 % 89) as f32 - 40.0) / 3.0)
            .collect();
        let k: Vec<f64> = (0..c).map(|ch| x[ch] as f64).collect();
        let coef: Vec<Vec<f32>> = (0..4)
            .map(|j| (0..c).map(|ch| (ch + j) as f32 * 0.01).collect())
            .collect();
        // The plain loops, row by row.
        let (mut s, mut q, mut sg, mut sgx) =
            (vec![0f64; c], vec![0f64; c], vec![0f64; c], vec![0f64; c]);
        for (xr, gr) in x.chunks_exact(c).zip(g.chunks_exact(c)) {
            for ch in 0..c {
                let d = xr[ch] as f64 - k[ch];
                s[ch] += d;
                q[ch] += d * d;
                let gv = gr[ch] as f64;
                sg[ch] += gv;
                sgx[ch] += gv * (xr[ch] as f64 - k[ch]);
            }
        }
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let mut maps = None;
        for t in [1, 2, 3] {
            let got = with_threads(t, || {
                let moments = shifted_sums(&x, c, 1, &k);
                let columns = column_sums::<f64>(&x, c);
                let columns_f32 = column_sums::<f32>(&x, c);
                let dots = dot_sums_per_channel(&g, &x, c, 1, &k);
                let mut y = vec![MaybeUninit::new(f32::NAN); n * c];
                affine_per_channel(&x, &mut y, c, 1, &coef[0], &coef[1], &coef[2]);
                let mut o = vec![MaybeUninit::new(f32::NAN); n * c];
                let cf = [&coef[0][..], &coef[1][..], &coef[2][..], &coef[3][..]];
                grad_per_channel(&mut o, &g, &x, 1, cf, true);
                // SAFETY: initialized to NaN above (and overwritten).
                let read = |v: Vec<MaybeUninit<f32>>| -> Vec<u32> {
                    v.iter()
                        .map(|e| unsafe { e.assume_init() }.to_bits())
                        .collect()
                };
                (moments, dots, (columns, columns_f32), read(y), read(o))
            });
            let ((ms, mq), (dg, dgx), (columns, columns_f32), y, o) = got;
            let plain_f32: Vec<u32> = (0..c)
                .map(|ch| {
                    x.iter()
                        .skip(ch)
                        .step_by(c)
                        .fold(0f32, |a, &v| a + v)
                        .to_bits()
                })
                .collect();
            let got_f32: Vec<u32> = columns_f32.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got_f32, plain_f32, "{t} threads");
            let plain: Vec<f64> = (0..c)
                .map(|ch| {
                    x.iter()
                        .skip(ch)
                        .step_by(c)
                        .fold(0f64, |a, &v| a + v as f64)
                })
                .collect();
            assert_eq!(bits(&columns), bits(&plain), "{t} threads");
            assert_eq!((bits(&ms), bits(&mq)), (bits(&s), bits(&q)), "{t} threads");
            assert_eq!(
                (bits(&dg), bits(&dgx)),
                (bits(&sg), bits(&sgx)),
                "{t} threads"
            );
            assert!(y.iter().chain(&o).all(|&b| !f32::from_bits(b).is_nan()));
            match &maps {
                None => maps = Some((y, o)),
                Some((y1, o1)) => assert!(*y1 == y && *o1 == o, "{t} threads"),
            }
        }
    }

    /// The AVX-512 lanes (where the CPU has them) give the plain loops' bits.
    #[test]
    fn channel_sums_are_the_plain_loops() {
        let a: Vec<f32> = (0..1003)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let b: Vec<f32> = (0..1003)
            .map(|i| ((i * 11 % 89) as f32 - 40.0) / 3.0)
            .collect();
        let (mut s, mut p) = ([0f64; 8], [0f64; 8]);
        let (mut m, mut q) = ([0f64; 8], [0f64; 8]);
        for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
            for l in 0..8 {
                let (xa, yb) = (x[l] as f64, y[l] as f64 - 0.25);
                s[l] += xa;
                p[l] += xa * yb;
                let d = x[l] as f64 - 0.25;
                m[l] += d;
                q[l] += d * d;
            }
        }
        let (mut ss, mut pp) = (s.iter().sum::<f64>(), p.iter().sum::<f64>());
        let (mut mm, mut qq) = (m.iter().sum::<f64>(), q.iter().sum::<f64>());
        for (&x, &y) in a[1000..].iter().zip(&b[1000..]) {
            ss += x as f64;
            pp += x as f64 * (y as f64 - 0.25);
            let d = x as f64 - 0.25;
            mm += d;
            qq += d * d;
        }
        let (gs, gp) = super::dot_sums(&a, &b, 0.25);
        assert_eq!((gs.to_bits(), gp.to_bits()), (ss.to_bits(), pp.to_bits()));
        let (ms, mq) = super::shifted_moments(&a, 0.25);
        assert_eq!((ms.to_bits(), mq.to_bits()), (mm.to_bits(), qq.to_bits()));
    }
}
