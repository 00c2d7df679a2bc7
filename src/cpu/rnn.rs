//! The RNN's recurrence loops: each block of batch rows runs through every
//! time step on its own thread, writing its slices of a time-major buffer
//! in place (no zeroed buffer: every value is written once). The op that
//! calls them, with the recurrence and its gradients, is `ops::rnn`.

use crate::cpu::tanh::tanh_in_place;
use crate::cpu::{as_uninit, assume_init, assume_init_mut};
use crate::cpu::{matmul_serial_into, par, team, threads, PackedRhs, Trans};
use std::mem::MaybeUninit;

/// The rows of a batch, cut into one block per kernel thread: the
/// recurrence of each row (sample) is independent of the others, so each
/// thread runs its rows through every time step without waiting for the
/// others (one hand-off per pass, not one per step: with one per step, the
/// helper thread idled for a fifth of an rnn-rows epoch).
pub(crate) fn row_blocks(b: usize) -> Vec<std::ops::Range<usize>> {
    par::ranges(b, threads(), 1)
}

/// One block of rows: its `T` slices of a time-major buffer, and the rows.
type Block<'a> = (Vec<&'a mut [MaybeUninit<f32>]>, std::ops::Range<usize>);

/// A time-major `[T, B, H]` buffer, to be written, as, for each row block
/// of [`row_blocks`], its `T` slices (`[rows, H]` each) and its rows, so
/// that each block can be handed to its own thread.
fn by_block(buf: &mut [MaybeUninit<f32>], b: usize, h: usize) -> Vec<Block<'_>> {
    let blocks = row_blocks(b);
    let mut out: Vec<Vec<&mut [MaybeUninit<f32>]>> = blocks.iter().map(|_| Vec::new()).collect();
    for step in buf.chunks_exact_mut(b * h) {
        let mut rest = step;
        for (k, r) in blocks.iter().enumerate() {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * h);
            out[k].push(head);
            rest = tail;
        }
    }
    out.into_iter().zip(blocks).collect()
}

/// `W_hh` as every time step multiplies it (`op(W_hh)`, `[H, H]`): packed
/// once for our kernel where it runs, else handed to the product each time.
struct StepWeight<'a> {
    w: &'a [f32],
    tw: Trans,
    h: usize,
    packed: Option<PackedRhs>,
}

impl<'a> StepWeight<'a> {
    fn new(w: &'a [f32], tw: Trans, h: usize) -> Self {
        let packed = PackedRhs::new(w, tw, h, h);
        StepWeight { w, tw, h, packed }
    }

    /// `out[rows, H] (+)= a[rows, H] · op(W_hh)`, on the calling thread.
    fn product(&self, out: &mut [f32], a: &[f32], rows: usize, accumulate: bool) {
        let h = self.h;
        match &self.packed {
            Some(p) => p.product(out, a, Trans::No, rows, accumulate),
            None => matmul_serial_into(out, a, Trans::No, self.w, self.tw, rows, h, h, accumulate),
        }
    }
}

/// The hidden states `h_1..h_T`, time-major `[T, B, H]`, of the recurrence
/// `h_s = tanh(proj_s + h_{s−1}·W_hhᵀ)` (`h_0 = 0`), with `proj` the input
/// projection (biases included) batch-major `[B, T, H]` and `w_hh` `[H, H]`.
pub(crate) fn hidden_states(
    proj: &[f32],
    w_hh: &[f32],
    (b, t, h): (usize, usize, usize),
) -> Vec<f32> {
    let bh = b * h;
    assert_eq!(proj.len(), t * bh, "rnn: input projection");
    // Hidden states h_1..h_T, time-major [T, B, H]: each block of rows
    // runs through time on its own thread.
    let mut hs: Vec<f32> = Vec::with_capacity(t * bh);
    let w = StepWeight::new(w_hh, Trans::Yes, h);
    let blocks = by_block(&mut hs.spare_capacity_mut()[..t * bh], b, h);
    team::map(blocks, |_, (mut hb, rows)| {
        for s in 0..t {
            let (done, rest) = hb.split_at_mut(s);
            let cur = &mut *rest[0];
            for (k, i) in rows.clone().enumerate() {
                let src = &proj[(i * t + s) * h..(i * t + s + 1) * h];
                cur[k * h..(k + 1) * h].copy_from_slice(as_uninit(src));
            }
            // SAFETY: every value of `cur` was written just above.
            let cur = unsafe { assume_init_mut(cur) };
            if s > 0 {
                // SAFETY: the previous step of this block was written
                // in full by the previous iteration.
                let prev = unsafe { assume_init(done[s - 1]) };
                w.product(cur, prev, rows.len(), true);
            }
            tanh_in_place(cur);
        }
    });
    // SAFETY: the blocks cover every row of every step (`by_block`),
    // and each wrote every value of its slices.
    unsafe { hs.set_len(t * bh) };
    hs
}

/// The δ of every step of the backward pass through time, time-major
/// `[T, B, H]`, and with `batch_major` the same batch-major `[B, T, H]`
/// (else empty): from `dh_T = g` (`[B, H]`), `δ_s = dh_s ⊙ (1 − h_s²)` and
/// `dh_{s−1} = δ_s·W_hh`, with `hs` the forward pass's hidden states.
pub(crate) fn deltas(
    g: &[f32],
    hs: &[f32],
    w_hh: &[f32],
    (b, t, h): (usize, usize, usize),
    batch_major: bool,
) -> (Vec<f32>, Vec<f32>) {
    let bh = b * h;
    assert_eq!(hs.len(), t * bh, "rnn: hidden states");
    // δ_t for every step, time-major [T, B, H]: each block of rows
    // runs back through time on its own thread. Where ∂x or ∂W_ih is
    // needed, each block also writes its rows of δ batch-major
    // [B, T, H] (to meet x [B, T, F] row for row), while they are in
    // cache.
    let mut delta: Vec<f32> = Vec::with_capacity(t * bh);
    let mut delta_bt: Vec<f32> = Vec::with_capacity(if batch_major { t * bh } else { 0 });
    let blocks = by_block(&mut delta.spare_capacity_mut()[..t * bh], b, h);
    let mut bt_rest = &mut delta_bt.spare_capacity_mut()[..];
    let jobs: Vec<_> = blocks
        .into_iter()
        .map(|(ds, rows)| {
            let len = if batch_major { rows.len() * t * h } else { 0 };
            let (bt, tail) = std::mem::take(&mut bt_rest).split_at_mut(len);
            bt_rest = tail;
            (ds, rows, bt)
        })
        .collect();
    let w = StepWeight::new(w_hh, Trans::No, h);
    team::map(jobs, |_, (mut ds, rows, bt)| {
        let n = rows.len();
        let mut dh = g[rows.start * h..rows.end * h].to_vec();
        for s in (0..t).rev() {
            let hcur = &hs[s * bh + rows.start * h..s * bh + rows.end * h];
            let d = &mut *ds[s];
            for ((d, &gv), &hv) in d.iter_mut().zip(&dh).zip(hcur) {
                d.write(gv * (1.0 - hv * hv));
            }
            // SAFETY: every value of `d` was written just above.
            let d = unsafe { assume_init_mut(d) };
            if batch_major {
                for (k, row) in d.chunks_exact(h).enumerate() {
                    let at = (k * t + s) * h;
                    bt[at..at + h].copy_from_slice(as_uninit(row));
                }
            }
            if s > 0 {
                // dh_{t−1} = δ_t · W_hh
                w.product(&mut dh, d, n, false);
            }
        }
    });
    // SAFETY: the blocks cover every row of every step (`by_block`),
    // and each wrote every value of its slices of `delta` and, when
    // `batch_major`, all `T` steps of its rows in `delta_bt`.
    unsafe {
        delta.set_len(t * bh);
        if batch_major {
            delta_bt.set_len(t * bh);
        }
    }
    (delta, delta_bt)
}
