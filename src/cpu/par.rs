//! Element-wise loops over large buffers, split over threads.
//!
//! Between two matrix products a training step runs element-wise passes
//! (activations and their derivatives, the optimizer update) over tensors of
//! up to a few million values. Run on one thread, they left the other core
//! idle for about a fifth of an mlp-wide step. Here such a pass is cut into
//! chunks of [`CHUNK`] values handed to the [`team`] when the buffer is large and
//! more than one thread is allowed ([`threads`]); small buffers stay on the
//! calling thread, where a split would cost more than it saves.
//!
//! Every element is computed by the same code whatever the split, so results
//! do not depend on the thread count.

use super::{as_uninit, team, threads};
use std::mem::MaybeUninit;
use std::ops::Range;

/// A new buffer of `n` values, every one written by `write` (none zeroed
/// first: a step's large activations are each written once, not twice).
pub(crate) fn written(n: usize, write: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    write(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: `write` initialized all `n` values (its contract), and the
    // capacity is at least `n`.
    unsafe { v.set_len(n) };
    v
}

/// The fewest values a pass that mostly waits on memory (a copy, a gather,
/// the row passes of an `[N, C]` tensor) splits over the kernel threads.
pub(crate) const SPLIT_MIN: usize = 1 << 14;

/// `0..n` cut into at most `t` consecutive ranges, each `align`·k long
/// (the last shorter), none empty.
pub(crate) fn ranges(n: usize, t: usize, align: usize) -> Vec<Range<usize>> {
    let per = n.div_ceil(t.max(1)).next_multiple_of(align.max(1)).max(1);
    (0..n).step_by(per).map(|a| a..(a + per).min(n)).collect()
}

/// `f(range)` for each of [`ranges`]`(n, t, align)`, one job of the team
/// each (on the calling thread when there is one range), the results in
/// order.
pub(crate) fn by_ranges<R: Send>(
    n: usize,
    t: usize,
    align: usize,
    f: impl Fn(Range<usize>) -> R + Sync,
) -> Vec<R> {
    let rs = ranges(n, t, align);
    if rs.len() <= 1 {
        return rs.into_iter().map(f).collect();
    }
    team::map(rs, |_, r| f(r))
}

/// `f(job)` for every job, on the kernel threads (on the calling thread
/// when there is one job): for a pass that cut its outputs into disjoint
/// pieces itself (the heads of attention).
pub(crate) fn map_jobs<T: Send>(jobs: Vec<T>, f: impl Fn(T) + Sync) {
    if jobs.len() <= 1 {
        return jobs.into_iter().for_each(f);
    }
    team::map(jobs, |_, j| f(j));
}

/// `f(first row, block)` for blocks of whole rows of `out` (`row` values a
/// row), one block per kernel thread once `out` holds [`SPLIT_MIN`] values,
/// else the whole of `out` on the calling thread.
pub(crate) fn by_row_blocks<T: Send>(
    out: &mut [T],
    row: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let rows = out.len().checked_div(row).unwrap_or(0);
    let t = if out.len() >= SPLIT_MIN { threads() } else { 1 };
    let rs = ranges(rows, t, 1);
    if rs.len() <= 1 {
        return f(0, out);
    }
    let jobs: Vec<_> = out.chunks_mut(rs[0].len() * row).zip(rs).collect();
    team::map(jobs, |_, (block, r)| f(r.start, block));
}

/// A copy of `x`, made on every kernel thread from [`SPLIT_MIN`] values on
/// (a batch's copy waits on memory more than on the core).
pub(crate) fn copied(x: &[f32]) -> Vec<f32> {
    written(x.len(), |out| {
        by_row_blocks(out, 1, |first, o| {
            o.copy_from_slice(as_uninit(&x[first..first + o.len()]))
        })
    })
}

/// `m` copies of `row`, one after another (the bias rows a product is
/// then added to), filled on every kernel thread for a large `m`.
pub(crate) fn repeated(row: &[f32], m: usize) -> Vec<f32> {
    let src = as_uninit(row);
    written(m * row.len(), |out| {
        by_row_blocks(out, row.len(), |_, block| {
            for r in block.chunks_exact_mut(row.len().max(1)) {
                r.copy_from_slice(src);
            }
        })
    })
}

/// Values per parallel chunk (128 KiB of `f32`): big enough to amortize a
/// job, small enough to balance two to sixteen threads.
pub const CHUNK: usize = 1 << 15;

/// Whether a pass over `n` values is worth splitting.
pub fn split(n: usize) -> bool {
    splits(n, CHUNK)
}

/// Whether a pass over `n` values in chunks of `chunk` is worth splitting:
/// two chunks or more, and more than one thread.
fn splits(n: usize, chunk: usize) -> bool {
    n >= 2 * chunk && threads() > 1
}

/// A new buffer of `n` values, chunk by chunk: `fill(start, chunk)` must
/// write every element of `chunk`, which holds values `start..start + len`.
/// No value is zeroed first.
pub fn fill(n: usize, fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    let spare = &mut v.spare_capacity_mut()[..n];
    if split(n) {
        let chunks: Vec<_> = spare.chunks_mut(CHUNK).collect();
        team::map(chunks, |i, c| fill(i * CHUNK, c));
    } else {
        fill(0, spare);
    }
    // SAFETY: `fill` initialized all `n` values (its contract), and the
    // capacity is at least `n`.
    unsafe { v.set_len(n) };
    v
}

/// A new buffer of `n` zeros, zeroed by all threads for a large `n` (a
/// recurrence's saved states and gradients: megabytes a step, which
/// `vec![0.0; n]` zeroes on the calling thread alone).
pub fn zeros(n: usize) -> Vec<f32> {
    fill(n, |_, chunk| {
        for v in chunk.iter_mut() {
            v.write(0.0);
        }
    })
}

/// `f(x)` for every value of `x`, into a new buffer.
pub fn map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    fill(x.len(), |s, out| {
        for (o, &v) in out.iter_mut().zip(&x[s..]) {
            o.write(f(v));
        }
    })
}

/// `f(a, b, c)` for every position of three buffers of the same length.
pub fn map3(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert!(
        a.len() == b.len() && a.len() == c.len(),
        "map3: lengths differ"
    );
    fill(a.len(), |s, out| {
        for (((o, &x), &y), &z) in out.iter_mut().zip(&a[s..]).zip(&b[s..]).zip(&c[s..]) {
            o.write(f(x, y, z));
        }
    })
}

/// Runs `f` on matching chunks of `n` values of several buffers: each
/// buffer in `bufs` is either empty (an absent optimizer state, handed on as
/// empty chunks) or `n` long. `f(start, chunks)` gets one chunk of each.
pub fn for_chunks<const N: usize>(
    n: usize,
    bufs: [&mut [f32]; N],
    f: impl Fn(usize, [&mut [f32]; N]) + Sync,
) {
    for_chunks_of(CHUNK, n, bufs, f)
}

/// [`for_chunks`] with chunks of `chunk` values, split over the threads
/// from two chunks on: a pass that does more per value than a copy (a
/// square root and two divisions in Adam) pays for a job with fewer values.
pub fn for_chunks_of<const N: usize>(
    chunk: usize,
    n: usize,
    bufs: [&mut [f32]; N],
    f: impl Fn(usize, [&mut [f32]; N]) + Sync,
) {
    debug_assert!(bufs.iter().all(|b| b.is_empty() || b.len() == n));
    let chunk = chunk.max(1);
    if !splits(n, chunk) {
        return f(0, bufs);
    }
    let mut jobs: Vec<(usize, [&mut [f32]; N])> = Vec::with_capacity(n.div_ceil(chunk));
    let mut rest = bufs;
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let mut heads: [&mut [f32]; N] = std::array::from_fn(|_| <&mut [f32]>::default());
        for (h, r) in heads.iter_mut().zip(rest.iter_mut()) {
            if !r.is_empty() {
                let (a, b) = std::mem::take(r).split_at_mut(len);
                *h = a;
                *r = b;
            }
        }
        jobs.push((start, heads));
        start += len;
    }
    team::map(jobs, |_, (s, c)| f(s, c));
}

/// `f(ch)` for every channel, split over the kernel threads when the tensor
/// (`size` values) is large. Each channel is one job that walks its blocks
/// in sample order, as one thread would: the sums do not depend on the split.
pub(crate) fn per_channel<R: Send>(c: usize, size: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    if c > 1 && split(size) {
        team::map((0..c).collect(), |_, ch| f(ch))
    } else {
        (0..c).map(f).collect()
    }
}

/// `f(block, values)` for every `inner`-long block of `out` (in a
/// `[N, C, inner]` tensor, block `i` is sample `i / C`, channel `i % C`),
/// split over the kernel threads when large.
/// `T` is `f32`, or `MaybeUninit<f32>` for a new buffer that `f` fills.
pub(crate) fn for_blocks<T: Send>(out: &mut [T], inner: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if !split(out.len()) {
        out.chunks_exact_mut(inner)
            .enumerate()
            .for_each(|(i, b)| f(i, b));
        return;
    }
    let per = (CHUNK / inner).max(1) * inner;
    let jobs: Vec<(usize, &mut [T])> = out
        .chunks_mut(per)
        .enumerate()
        .map(|(j, chunk)| (j * per / inner, chunk))
        .collect();
    team::map(jobs, |_, (first, chunk)| {
        for (k, b) in chunk.chunks_exact_mut(inner).enumerate() {
            f(first + k, b)
        }
    });
}

/// Runs of items per thread in [`map_tasks`].
const RUNS_PER_THREAD: usize = 4;

/// Runs `f(state, index, item)` for every item on at most
/// `t·RUNS_PER_THREAD` jobs of the [team](crate::cpu::team) (each job
/// takes a run of consecutive items and makes one `state` with `init`, for
/// its scratch buffers), and returns the results in item order. With `t ≤ 1` or a single item everything runs
/// on the calling thread.
pub(crate) fn map_tasks<I: Send, S, R: Send>(
    items: Vec<I>,
    t: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize, I) -> R + Sync,
) -> Vec<R> {
    let t = t.min(items.len());
    if t <= 1 {
        let mut state = init();
        return items
            .into_iter()
            .enumerate()
            .map(|(i, it)| f(&mut state, i, it))
            .collect();
    }
    // A few runs per thread, not one: when a core is taken away for a while
    // (CPU steal on a virtual machine), the other threads take its
    // remaining runs instead of waiting for them.
    let per = items.len().div_ceil(t * RUNS_PER_THREAD);
    let mut it = items.into_iter().enumerate().peekable();
    let mut groups = Vec::with_capacity(t);
    while it.peek().is_some() {
        groups.push(it.by_ref().take(per).collect::<Vec<_>>());
    }
    let done: Vec<Vec<R>> = team::map(groups, |_, g| {
        let mut state = init();
        g.into_iter().map(|(i, it)| f(&mut state, i, it)).collect()
    });
    done.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_serial_agree() {
        let n = 5 * CHUNK + 17;
        let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.01).sin()).collect();
        let pool = |t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        };
        let run = |t: usize| {
            pool(t).install(|| {
                crate::cpu::set_threads(t);
                let y = map(&x, |v| v * 2.0 + 1.0);
                let z = map3(&x, &y, &x, |a, b, c| a * b - c);
                let mut p = x.clone();
                let mut empty: Vec<f32> = Vec::new();
                for_chunks(n, [&mut p, &mut empty], |s, [p, e]| {
                    assert!(e.is_empty());
                    for (i, v) in p.iter_mut().enumerate() {
                        *v += (s + i) as f32;
                    }
                });
                crate::cpu::set_threads(0);
                (y, z, p)
            })
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(one, two);
        assert_eq!(one.0[n - 1], x[n - 1] * 2.0 + 1.0);
        assert_eq!(one.2[n - 1], x[n - 1] + (n - 1) as f32);
    }
}
