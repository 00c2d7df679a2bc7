//! Gated recurrent layers over a sequence, `batch_first` as PyTorch's
//! `nn.LSTM` and `nn.GRU`, written as compositions of the graph's ops (their
//! backward is the ops' own: backpropagation through time by the tape).
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

use crate::{Graph, Tensor, Var};

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
    /// The LSTM's last cell state, `[N, H]`.
    pub c: Option<Var>,
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
    /// One gated layer over `x: [N, T, F]` from zero states; see the
    /// [module docs](self).
    pub fn gated_layer(&mut self, cell: Cell, x: Var, w: GateVars) -> GatedOut {
        let s = self.shape(x).to_vec();
        let (ws, hs) = (self.shape(w.w_ih).to_vec(), self.shape(w.w_hh).to_vec());
        let sample = crate::ops::shape::sample(&s).to_vec();
        if let Err(e) = gated_shape(cell, &sample, &ws, &hs) {
            let h = hs.get(1).copied().unwrap_or(1);
            let n = s.first().copied().unwrap_or(1);
            let t = s.get(1).copied().unwrap_or(1);
            let seq = self.bad_shapes(e, &[n, t, h]);
            let last = self.input(Tensor::zeros(&[n, h]));
            return GatedOut {
                seq,
                h: last,
                c: None,
            };
        }
        let (n, t, h, g) = (s[0], s[1], hs[1], cell.gates());
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
        GatedOut { seq, h: hid, c }
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
