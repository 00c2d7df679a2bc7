//! Gated recurrent layers over a sequence, `batch_first` as PyTorch's
//! `nn.LSTM` and `nn.GRU`: the input projections of all steps as one
//! `linear` node, then the recurrence over the steps as one node
//! ([`Graph::gated_recurrence`]) whose backward runs back through time by
//! hand, as the seeds' BPTT does, with one matrix product for `∂W_hh` over
//! all steps. ([`Graph::gated_layer_unfused`] writes the same layer as a
//! composition of the graph's ops; the tests check one against the other.)
//!
//! # Shapes
//! `x: [N, T, F]`, `W_ih: [G·H, F]`, `W_hh: [G·H, H]`, `b_ih, b_hh: [G·H]`
//! (G = 4 for the LSTM, 3 for the GRU) → every step's hidden state
//! `[N, T, H]` and the last `[N, H]` (and the LSTM's last cell `[N, H]`).
//!
//! The input projections of all steps are one product (`x·W_ihᵀ + b_ih`,
//! `[N, T, G·H]`); each step adds `h·W_hhᵀ + b_hh` and applies the gates, in
//! PyTorch's order.
//!
//! # LSTM (gates i, f, g, o)
//! `i = σ(·)`, `f = σ(·)`, `g = tanh(·)`, `o = σ(·)`, `c' = f⊙c + i⊙g`,
//! `h' = o⊙tanh(c')`.
//!
//! # GRU (gates r, z, n)
//! `r = σ(x_r + h_r)`, `z = σ(x_z + h_z)`, `n = tanh(x_n + r⊙h_n)` (the
//! reset gate scales the hidden projection with its bias, as PyTorch's),
//! `h' = n + z⊙(h − n)` (PyTorch's form of `(1 − z)⊙n + z⊙h`).

use crate::autograd::{Backward, Op};
use crate::cpu::channels::column_sums;
use crate::cpu::rnn::{self, row_blocks, StepWeight};
use crate::cpu::{matmul_into, par, Trans};
use crate::{Graph, Tensor, Var};
use std::ops::Range;

/// Which gated cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Long short-term memory: 4 gates, a cell state.
    Lstm,
    /// Gated recurrent unit: 3 gates.
    Gru,
}

impl Cell {
    /// Gates per unit: 4 or 3.
    pub fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }

    /// PyTorch's name: `lstm`, `gru`.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
        }
    }
}

/// The weights of one layer, as graph nodes.
#[derive(Clone, Copy, Debug)]
pub struct GateVars {
    /// `[G·H, F]`.
    pub w_ih: Var,
    /// `[G·H, H]`.
    pub w_hh: Var,
    /// `[G·H]`, if the layer has biases.
    pub b_ih: Option<Var>,
    /// `[G·H]`, if the layer has biases.
    pub b_hh: Option<Var>,
}

/// What one layer returns.
#[derive(Clone, Copy, Debug)]
pub struct GatedOut {
    /// Every step's hidden state, `[N, T, H]`.
    pub seq: Var,
    /// The last hidden state, `[N, H]`.
    pub h: Var,
}

/// The per-sample output shape of a gated layer over `[T, F]` with weights
/// `[G·H, F]` and `[G·H, H]`, or what is wrong.
pub fn gated_shape(
    cell: Cell,
    s: &[usize],
    w_ih: &[usize],
    w_hh: &[usize],
) -> Result<Vec<usize>, String> {
    let g = cell.gates();
    let (&[gh, f], &[gh2, h]) = (w_ih, w_hh) else {
        return Err(format!(
            "{}: weights must be 2-d, got {w_ih:?} and {w_hh:?}",
            cell.name()
        ));
    };
    if gh != g * h || gh2 != g * h {
        return Err(format!(
            "{}: weight_ih {w_ih:?} and weight_hh {w_hh:?} must be [{g}·H, F] and [{g}·H, H]",
            cell.name()
        ));
    }
    match s {
        [t, sf] if *sf == f && *t > 0 => Ok(vec![*t, h]),
        _ => Err(format!(
            "a sequence layer reads [N, T, {f}] (T ≥ 1 steps of {f} features), got {}",
            crate::ops::shape::fmt(s)
        )),
    }
}

impl Graph {
    /// `(N, T, H)` of a gated layer over `x`, or, where the shapes do not
    /// fit, the output a shape probe records instead.
    fn gated_dims(
        &mut self,
        cell: Cell,
        x: Var,
        w: GateVars,
    ) -> Result<(usize, usize, usize), GatedOut> {
        let s = self.shape(x).to_vec();
        let (ws, hs) = (self.shape(w.w_ih).to_vec(), self.shape(w.w_hh).to_vec());
        let sample = crate::ops::shape::sample(&s).to_vec();
        match gated_shape(cell, &sample, &ws, &hs) {
            Ok(_) => Ok((s[0], s[1], hs[1])),
            Err(e) => {
                let h = hs.get(1).copied().unwrap_or(1);
                let n = s.first().copied().unwrap_or(1);
                let t = s.get(1).copied().unwrap_or(1);
                let seq = self.bad_shapes(e, &[n, t, h]);
                let last = self.input(Tensor::zeros(&[n, h]));
                Err(GatedOut { seq, h: last })
            }
        }
    }

    /// One gated layer over `x: [N, T, F]` from zero states; see the
    /// [module docs](self).
    pub fn gated_layer(&mut self, cell: Cell, x: Var, w: GateVars) -> GatedOut {
        let (n, t, h) = match self.gated_dims(cell, x, w) {
            Ok(d) => d,
            Err(out) => return out,
        };
        let xi = self.linear(x, w.w_ih, w.b_ih); // [N, T, G·H]
        let seq = self.gated_recurrence(cell, xi, w.w_hh, w.b_hh);
        let last = self.narrow(seq, 1, t - 1, 1);
        let last = self.reshape(last, &[n, h]);
        GatedOut { seq, h: last }
    }

    /// The same layer as [`Graph::gated_layer`], step by step from the
    /// graph's ops (narrow, linear, add, sigmoid, tanh, mul, concat): what
    /// the fused recurrence is checked against.
    pub fn gated_layer_unfused(&mut self, cell: Cell, x: Var, w: GateVars) -> GatedOut {
        let (n, t, h) = match self.gated_dims(cell, x, w) {
            Ok(d) => d,
            Err(out) => return out,
        };
        let g = cell.gates();
        let xi = self.linear(x, w.w_ih, w.b_ih); // [N, T, G·H]
        let mut hid = self.input(Tensor::zeros(&[n, h]));
        let mut c = (cell == Cell::Lstm).then(|| self.input(Tensor::zeros(&[n, h])));
        let mut steps = Vec::with_capacity(t);
        for step in 0..t {
            let gx = self.narrow(xi, 1, step, 1);
            let gx = self.reshape(gx, &[n, g * h]);
            let gh = self.linear(hid, w.w_hh, w.b_hh); // [N, G·H]
            match cell {
                Cell::Lstm => {
                    let gates = self.add(gx, gh);
                    let mut part = |k: usize| self.narrow(gates, 1, k * h, h);
                    let (i, f, gg, o) = (part(0), part(1), part(2), part(3));
                    let (i, f, gg, o) = (
                        self.sigmoid(i),
                        self.sigmoid(f),
                        self.tanh(gg),
                        self.sigmoid(o),
                    );
                    let keep = self.mul(f, c.expect("an LSTM's cell"));
                    let write = self.mul(i, gg);
                    let cn = self.add(keep, write);
                    let tc = self.tanh(cn);
                    hid = self.mul(o, tc);
                    c = Some(cn);
                }
                Cell::Gru => {
                    let xr = self.narrow(gx, 1, 0, h);
                    let xz = self.narrow(gx, 1, h, h);
                    let xn = self.narrow(gx, 1, 2 * h, h);
                    let hr = self.narrow(gh, 1, 0, h);
                    let hz = self.narrow(gh, 1, h, h);
                    let hn = self.narrow(gh, 1, 2 * h, h);
                    let r = self.add(xr, hr);
                    let r = self.sigmoid(r);
                    let z = self.add(xz, hz);
                    let z = self.sigmoid(z);
                    let rh = self.mul(r, hn);
                    let nn = self.add(xn, rh);
                    let nn = self.tanh(nn);
                    let d = self.sub(hid, nn);
                    let zd = self.mul(z, d);
                    hid = self.add(nn, zd);
                }
            }
            steps.push(self.reshape(hid, &[n, 1, h]));
        }
        let seq = if steps.len() == 1 {
            steps[0]
        } else {
            self.concat(&steps, 1)
        };
        GatedOut { seq, h: hid }
    }
}

impl Graph {
    /// The recurrence of a gated layer as one node: the input projections
    /// `xi: [N, T, G·H]` (`x·W_ihᵀ + b_ih`), `W_hh: [G·H, H]` and `b_hh`
    /// to every step's hidden state `[N, T, H]`, from zero states.
    pub fn gated_recurrence(&mut self, cell: Cell, xi: Var, w_hh: Var, b_hh: Option<Var>) -> Var {
        let (xs, ws) = (self.shape(xi).to_vec(), self.shape(w_hh).to_vec());
        let g = cell.gates();
        let fits = matches!((&xs[..], &ws[..]), ([_, t, gh], [gh2, h]) if *t > 0 && *gh == g * h && gh2 == gh);
        let ok = fits && b_hh.is_none_or(|b| self.shape(b) == [g * ws[1]]);
        if !ok {
            let msg = format!(
                "{}: projections {xs:?} and weight_hh {ws:?} must be [N, T, {g}·H] and [{g}·H, H]",
                cell.name()
            );
            let first = |v: &[usize], i: usize| v.get(i).copied().unwrap_or(1);
            let instead = [first(&xs, 0), first(&xs, 1), first(&ws, 1)];
            return self.bad_shapes(msg, &instead);
        }
        let (n, t, h) = (xs[0], xs[1], ws[1]);
        let dims = Dims { n, t, h, g };
        let b = b_hh.map(|b| self.value(b).data().to_vec());
        let saved = recurrence_forward(
            cell,
            dims,
            self.value(xi).data(),
            self.value(w_hh).data(),
            b.as_deref(),
        );
        let mut y = vec![0f32; n * t * h];
        for step in 0..t {
            for row in 0..n {
                let src = &saved.h[((step + 1) * n + row) * h..][..h];
                y[(row * t + step) * h..][..h].copy_from_slice(src);
            }
        }
        let y = Tensor::from_vec(vec![n, t, h], y);
        let parents: Vec<Var> = [xi, w_hh].into_iter().chain(b_hh).collect();
        let op = match cell {
            Cell::Lstm => Op::Lstm,
            Cell::Gru => Op::Gru,
        };
        self.push(op, y, &parents, RecurrenceBack { cell, dims, saved })
    }
}

/// The sizes of a recurrence: N sequences, T steps, H units, G gates.
#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    t: usize,
    h: usize,
    g: usize,
}

/// What the forward keeps for the backward, step-major (`[T, N, ·]`).
struct Saved {
    /// Hidden states `[T + 1, N, H]`, the zero start first.
    h: Vec<f32>,
    /// LSTM: cell states `[T + 1, N, H]`; GRU: `h·W_hnᵀ + b_hn`, `[T, N, H]`.
    c: Vec<f32>,
    /// The gates after their activations, `[T, N, G·H]` (LSTM i f g o; GRU r z n).
    acts: Vec<f32>,
}

/// Each block's rows of every step of a step-major buffer (`width` values
/// a row, `n` rows a step): the slices a block's thread writes.
fn per_block<'a>(
    buf: &'a mut [f32],
    n: usize,
    width: usize,
    blocks: &[Range<usize>],
) -> Vec<Vec<&'a mut [f32]>> {
    let mut out: Vec<Vec<&mut [f32]>> = blocks.iter().map(|_| Vec::new()).collect();
    for step in buf.chunks_exact_mut(n * width) {
        let mut rest = step;
        for (k, r) in blocks.iter().enumerate() {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * width);
            out[k].push(head);
            rest = tail;
        }
    }
    out
}

/// The recurrence's forward pass: every step's gates and states. Each
/// block of rows (sequences) runs through every step on its own thread
/// (the rows are independent; each value is computed alike whatever the
/// blocks).
fn recurrence_forward(
    cell: Cell,
    d: Dims,
    xi: &[f32],
    w_hh: &[f32],
    b_hh: Option<&[f32]>,
) -> Saved {
    let Dims { n, t, h, g } = d;
    let gh = g * h;
    let lstm = cell == Cell::Lstm;
    let mut hs = par::zeros((t + 1) * n * h);
    let mut cs = par::zeros(if lstm { (t + 1) * n * h } else { t * n * h });
    let mut acts = par::zeros(t * n * gh);
    let blocks = row_blocks(n);
    let w = StepWeight::new(w_hh, Trans::Yes, h, gh);
    let jobs: Vec<_> = per_block(&mut hs, n, h, &blocks)
        .into_iter()
        .zip(per_block(&mut cs, n, h, &blocks))
        .zip(per_block(&mut acts, n, gh, &blocks))
        .zip(blocks.iter().cloned())
        .collect();
    par::map_jobs(jobs, |(((mut hb, mut cb), mut ab), r)| {
        let rows = r.len();
        let mut hp = vec![0f32; rows * gh]; // h_{t−1}·W_hhᵀ + b_hh
        for step in 0..t {
            for row in hp.chunks_exact_mut(gh) {
                match b_hh {
                    Some(b) => row.copy_from_slice(b),
                    None => row.fill(0.0),
                }
            }
            let (prev, cur) = hb.split_at_mut(step + 1);
            let (prev, cur) = (&*prev[step], &mut *cur[0]);
            w.product(&mut hp, prev, rows, true);
            for k in 0..rows {
                let x = &xi[((r.start + k) * t + step) * gh..][..gh];
                let (p, a) = (&hp[k * gh..][..gh], &mut ab[step][k * gh..][..gh]);
                let hn = &mut cur[k * h..][..h];
                if lstm {
                    let (cp, cn) = cb.split_at_mut(step + 1);
                    rnn::lstm_cell(x, p, &cp[step][k * h..], a, &mut cn[0][k * h..], hn);
                } else {
                    rnn::gru_cell(x, p, &prev[k * h..], a, &mut cb[step][k * h..], hn);
                }
            }
        }
    });
    Saved { h: hs, c: cs, acts }
}

/// Row `row` of step `s` of a step-major buffer of `n` rows of `h`.
fn step_row(buf: &[f32], s: usize, row: usize, n: usize, h: usize) -> &[f32] {
    &buf[(s * n + row) * h..][..h]
}

struct RecurrenceBack {
    cell: Cell,
    dims: Dims,
    saved: Saved,
}

impl Backward for RecurrenceBack {
    fn backward(
        &self,
        gy: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let Dims { n, t, h, g } = self.dims;
        let (gh, sv, lstm) = (g * h, &self.saved, self.cell == Cell::Lstm);
        let w = StepWeight::new(inp[1].data(), Trans::No, gh, h);
        // ∂ of the steps' pre-activations: of xi (batch-major [N, T, G·H])
        // and of the hidden projection (step-major [T, N, G·H]; the LSTM's
        // are the same); each block of rows runs back through time alone
        let mut dxi = par::zeros(n * t * gh);
        let mut dhp = par::zeros(t * n * gh);
        let blocks = row_blocks(n);
        let mut dx_rest = &mut dxi[..];
        let mut dx_blocks = Vec::with_capacity(blocks.len());
        for r in &blocks {
            let (head, tail) = std::mem::take(&mut dx_rest).split_at_mut(r.len() * t * gh);
            dx_blocks.push(head);
            dx_rest = tail;
        }
        let jobs: Vec<_> = dx_blocks
            .into_iter()
            .zip(per_block(&mut dhp, n, gh, &blocks))
            .zip(blocks.iter().cloned())
            .collect();
        par::map_jobs(jobs, |((dxb, mut dpb), r)| {
            let rows = r.len();
            let (mut dh, mut dc) = (vec![0f32; rows * h], vec![0f32; rows * h]);
            for step in (0..t).rev() {
                let dp = &mut *dpb[step];
                for k in 0..rows {
                    let row = r.start + k;
                    let a = &sv.acts[(step * n + row) * gh..][..gh];
                    let dy = &gy.data()[(row * t + step) * h..][..h];
                    let dx = &mut dxb[(k * t + step) * gh..][..gh];
                    if lstm {
                        let (c, cp) = (
                            step_row(&sv.c, step + 1, row, n, h),
                            step_row(&sv.c, step, row, n, h),
                        );
                        rnn::lstm_cell_back(
                            a,
                            cp,
                            c,
                            dy,
                            &dh[k * h..][..h],
                            &mut dc[k * h..][..h],
                            dx,
                        );
                        dp[k * gh..][..gh].copy_from_slice(dx);
                    } else {
                        let (keep, hprev) = (
                            step_row(&sv.c, step, row, n, h),
                            step_row(&sv.h, step, row, n, h),
                        );
                        rnn::gru_cell_back(
                            a,
                            keep,
                            hprev,
                            dy,
                            &mut dh[k * h..][..h],
                            dx,
                            &mut dp[k * gh..][..gh],
                        );
                    }
                }
                // ∂h_{t−1} = ∂(h·W_hhᵀ)·W_hh (+ the GRU's direct path)
                w.product(&mut dh, dp, rows, !lstm);
            }
        });
        // ∂W_hh = Σ_t ∂(h·W_hhᵀ)_tᵀ·h_{t−1}: one product over all steps
        let hprev = &sv.h[..t * n * h];
        let gw = needs[1].then(|| {
            let mut gw = vec![0f32; gh * h];
            matmul_into(
                &mut gw,
                &dhp,
                Trans::Yes,
                hprev,
                Trans::No,
                gh,
                t * n,
                h,
                false,
            );
            Tensor::from_vec(vec![gh, h], gw)
        });
        let mut out = vec![needs[0].then(|| Tensor::from_vec(vec![n, t, gh], dxi)), gw];
        if inp.len() > 2 {
            out.push(needs[2].then(|| {
                // each column summed in row order, in f64, split by columns
                let gb = column_sums::<f64>(&dhp, gh);
                Tensor::from_vec(vec![gh], gb.iter().map(|&v| v as f32).collect())
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, pseudo_random};

    #[test]
    fn gradients_match_finite_differences() {
        for cell in [Cell::Lstm, Cell::Gru] {
            let g = cell.gates();
            let inputs = [
                pseudo_random(&[2, 4, 3], 1),
                pseudo_random(&[g * 5, 3], 2),
                pseudo_random(&[g * 5, 5], 3),
                pseudo_random(&[g * 5], 4),
                pseudo_random(&[g * 5], 5),
            ];
            check(cell.name(), &inputs, |gr, v| {
                let w = GateVars {
                    w_ih: v[1],
                    w_hh: v[2],
                    b_ih: Some(v[3]),
                    b_hh: Some(v[4]),
                };
                gr.gated_layer(cell, v[0], w).seq
            });
        }
    }

    #[test]
    fn the_fused_recurrence_is_the_composition_of_ops() {
        for cell in [Cell::Lstm, Cell::Gru] {
            let gs = cell.gates() * 6;
            let mut g = Graph::new();
            let x = g.param(pseudo_random(&[3, 7, 4], 11));
            let v = [
                g.param(pseudo_random(&[gs, 4], 12)),
                g.param(pseudo_random(&[gs, 6], 13)),
                g.param(pseudo_random(&[gs], 14)),
                g.param(pseudo_random(&[gs], 15)),
            ];
            let w = GateVars {
                w_ih: v[0],
                w_hh: v[1],
                b_ih: Some(v[2]),
                b_hh: Some(v[3]),
            };
            let (a, b) = (g.gated_layer(cell, x, w), g.gated_layer_unfused(cell, x, w));
            let close = |p: &Tensor, q: &Tensor| {
                p.data()
                    .iter()
                    .zip(q.data())
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max)
            };
            assert!(close(g.value(a.seq), g.value(b.seq)) < 1e-6, "{cell:?}");
            assert!(close(g.value(a.h), g.value(b.h)) < 1e-6, "{cell:?}");
            let r = pseudo_random(&[3, 7, 6], 16);
            let (ga, gb) = (g.backward_with(a.seq, r.clone()), g.backward_with(b.seq, r));
            for (k, p) in [x, v[0], v[1], v[2], v[3]].into_iter().enumerate() {
                let e = close(ga.get(p).unwrap(), gb.get(p).unwrap());
                assert!(e < 1e-5, "{cell:?}: input {k} differs by {e}");
            }
        }
    }

    #[test]
    fn shapes_are_checked() {
        assert_eq!(
            gated_shape(Cell::Lstm, &[7, 3], &[20, 3], &[20, 5]).unwrap(),
            [7, 5]
        );
        let e = gated_shape(Cell::Gru, &[7, 4], &[15, 3], &[15, 5]).unwrap_err();
        assert!(e.contains("[N, T, 3]"), "{e}");
        let e = gated_shape(Cell::Gru, &[7, 3], &[20, 3], &[20, 5]).unwrap_err();
        assert!(e.contains("[3·H, F]"), "{e}");
    }
}
