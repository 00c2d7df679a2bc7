//! The RNN's recurrence loops: each block of batch rows runs through every
//! time step on its own thread, writing its slices of a time-major buffer
//! in place (no zeroed buffer: every value is written once). The op that
//! calls them, with the recurrence and its gradients, is `ops::rnn`. Also
//! the LSTM's and GRU's cells, forward and back, as loops compiled wide
//! (`ops::gated` runs the steps).

use crate::cpu::tanh::{exp_pos, tanh_f32, tanh_in_place};
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

/// `W_hh` as every time step multiplies it (`op(W_hh)`, `[K, N]`): packed
/// once for our kernel where it runs, else handed to the product each time.
pub(crate) struct StepWeight<'a> {
    w: &'a [f32],
    tw: Trans,
    k: usize,
    n: usize,
    packed: Option<PackedRhs>,
}

impl<'a> StepWeight<'a> {
    /// `op(w)` of `k` rows and `n` columns.
    pub(crate) fn new(w: &'a [f32], tw: Trans, k: usize, n: usize) -> Self {
        let packed = PackedRhs::new(w, tw, k, n);
        StepWeight {
            w,
            tw,
            k,
            n,
            packed,
        }
    }

    /// `out[rows, N] (+)= a[rows, K] · op(W)`, on the calling thread; each
    /// value summed in the same order whatever `rows` is.
    pub(crate) fn product(&self, out: &mut [f32], a: &[f32], rows: usize, accumulate: bool) {
        let (k, n) = (self.k, self.n);
        match &self.packed {
            Some(p) => p.product(out, a, Trans::No, rows, accumulate),
            None => matmul_serial_into(out, a, Trans::No, self.w, self.tw, rows, k, n, accumulate),
        }
    }
}

/// σ(x) = 1/(1 + e^{−x}) with the branch-free `e^x` (within 2 ulp).
#[inline(always)]
fn sigmoid_f32(x: f32) -> f32 {
    let z = -x;
    let z = z.clamp(-87.0, 88.0);
    1.0 / (1.0 + exp_pos(z))
}

crate::cpu::simd::wide_fn! {
    /// One LSTM step of one sequence: the gates (i, f, g, o) from the input
    /// projection `x` and the hidden one `p` (`[4H]` each) into `a`, the
    /// new cell `cn` from the old `cp`, the new hidden state `hn`.
    pub(crate) fn lstm_cell(x: &[f32], p: &[f32], cp: &[f32], a: &mut [f32], cn: &mut [f32], hn: &mut [f32]) {
        let h = hn.len();
        let (x, p, a) = (&x[..4 * h], &p[..4 * h], &mut a[..4 * h]);
        let (cp, cn) = (&cp[..h], &mut cn[..h]);
        for j in 0..h {
            let i = sigmoid_f32(x[j] + p[j]);
            let f = sigmoid_f32(x[h + j] + p[h + j]);
            let g = tanh_f32(x[2 * h + j] + p[2 * h + j]);
            let o = sigmoid_f32(x[3 * h + j] + p[3 * h + j]);
            let c = f * cp[j] + i * g;
            cn[j] = c;
            hn[j] = o * tanh_f32(c);
            a[j] = i;
            a[h + j] = f;
            a[2 * h + j] = g;
            a[3 * h + j] = o;
        }
    }
}

crate::cpu::simd::wide_fn! {
    /// One GRU step of one sequence: the gates (r, z, n) into `a`, the
    /// hidden projection of the new gate `p_n` into `keep`, the new hidden
    /// state `hn = n + z·(h − n)`.
    pub(crate) fn gru_cell(x: &[f32], p: &[f32], hprev: &[f32], a: &mut [f32], keep: &mut [f32], hn: &mut [f32]) {
        let h = hn.len();
        let (x, p, a) = (&x[..3 * h], &p[..3 * h], &mut a[..3 * h]);
        let (hprev, keep) = (&hprev[..h], &mut keep[..h]);
        for j in 0..h {
            let r = sigmoid_f32(x[j] + p[j]);
            let z = sigmoid_f32(x[h + j] + p[h + j]);
            let n = tanh_f32(x[2 * h + j] + r * p[2 * h + j]);
            keep[j] = p[2 * h + j];
            hn[j] = n + z * (hprev[j] - n);
            a[j] = r;
            a[h + j] = z;
            a[2 * h + j] = n;
        }
    }
}

crate::cpu::simd::wide_fn! {
    /// One LSTM step back for one sequence: from `dy + dh` (the output's
    /// and the next step's gradient) and the carried `dc`, the gates'
    /// pre-activation gradients into `dx`; `dc` becomes the previous
    /// step's.
    pub(crate) fn lstm_cell_back(a: &[f32], cp: &[f32], c: &[f32], dy: &[f32], dh: &[f32], dc: &mut [f32], dx: &mut [f32]) {
        let h = dc.len();
        let (a, dx) = (&a[..4 * h], &mut dx[..4 * h]);
        let (cp, c, dy, dh) = (&cp[..h], &c[..h], &dy[..h], &dh[..h]);
        for j in 0..h {
            let (i, f, g, o) = (a[j], a[h + j], a[2 * h + j], a[3 * h + j]);
            let d = dy[j] + dh[j];
            let tc = tanh_f32(c[j]);
            let dcj = dc[j] + d * o * (1.0 - tc * tc);
            dx[j] = dcj * g * i * (1.0 - i);
            dx[h + j] = dcj * cp[j] * f * (1.0 - f);
            dx[2 * h + j] = dcj * i * (1.0 - g * g);
            dx[3 * h + j] = d * tc * o * (1.0 - o);
            dc[j] = dcj * f;
        }
    }
}

crate::cpu::simd::wide_fn! {
    /// One GRU step back for one sequence: the pre-activation gradients of
    /// the input projection into `dx` and of the hidden one into `dp`, and
    /// `dh` becomes the previous step's direct path `(dy + dh)·z`.
    pub(crate) fn gru_cell_back(a: &[f32], keep: &[f32], hprev: &[f32], dy: &[f32], dh: &mut [f32], dx: &mut [f32], dp: &mut [f32]) {
        let h = dh.len();
        let (a, dx, dp) = (&a[..3 * h], &mut dx[..3 * h], &mut dp[..3 * h]);
        let (keep, hprev, dy) = (&keep[..h], &hprev[..h], &dy[..h]);
        for j in 0..h {
            let (r, z, n) = (a[j], a[h + j], a[2 * h + j]);
            let d = dy[j] + dh[j];
            let dan = d * (1.0 - z) * (1.0 - n * n);
            let dar = dan * keep[j] * r * (1.0 - r);
            let daz = d * (hprev[j] - n) * z * (1.0 - z);
            dx[j] = dar;
            dx[h + j] = daz;
            dx[2 * h + j] = dan;
            dp[j] = dar;
            dp[h + j] = daz;
            dp[2 * h + j] = dan * r;
            dh[j] = d * z;
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
    let w = StepWeight::new(w_hh, Trans::Yes, h, h);
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
    let w = StepWeight::new(w_hh, Trans::No, h, h);
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
