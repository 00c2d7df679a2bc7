//! An Elman RNN with tanh (PyTorch's `nn.RNN(F, H, batch_first=True)`,
//! one layer, `h₀ = 0`) as ONE node, returning the last hidden state:
//!
//! `h_t = tanh(x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh)`, `t = 1..T`, `y = h_T`.
//!
//! # Shapes
//! `x: [B, T, F]`, `W_ih: [H, F]`, `W_hh: [H, H]`, `b_ih, b_hh: [H]` (each
//! optional) → `y: [B, H]`.
//!
//! Forward: the input projection `x·W_ihᵀ + b_ih + b_hh` for every time step
//! is one `[B·T, F]·[F, H]` matrix product; each step then adds
//! `h_{t−1}·W_hhᵀ` into its slice (accumulating product, no temporary) and
//! applies tanh in place ([`tanh_f32`], src/tensor/tanh.rs: vectorizable,
//! within 1 ulp). All hidden states `h_1..h_T` are kept, time-major
//! `[T, B, H]`, for the backward pass.
//!
//! Backward (backpropagation through time), its own loop from `t = T` down,
//! with `dh_T = ∂L/∂y`:
//! `δ_t = dh_t ⊙ (1 − h_t²)`, `dh_{t−1} = δ_t·W_hh`; then, over all steps
//! at once (the weights are shared, so their gradients are sums over steps):
//! `∂W_hh = Σ_t δ_tᵀ·h_{t−1}` (one product over `[T−1]·B` rows),
//! `∂W_ih = Σ_t δ_tᵀ·x_t` and `∂x_t = δ_t·W_ih` (one product each over `B·T`
//! rows), `∂b_ih = ∂b_hh = Σ_t Σ_rows δ_t`. `∂x` is skipped when `x` needs no
//! gradient (the data batch). No recursion: long sequences are a loop.

use crate::autograd::{Backward, Op};
use crate::cpu::channels::column_sums;
use crate::cpu::par;
use crate::cpu::rnn;
pub use crate::cpu::tanh::tanh_f32;
use crate::cpu::{matmul_into, Trans};
use crate::{Graph, Tensor, Var};

/// The shape of one sample's output of a tanh RNN over one sample `s`
/// (`[T, F]`) with `w_ih` (`[H, F]`) and `w_hh` (`[H, H]`): `[H]` (the last
/// hidden state), or what is wrong. The op and the [`Rnn`](crate::nn::Rnn)
/// layer both ask it.
pub fn rnn_shape(s: &[usize], w_ih: &[usize], w_hh: &[usize]) -> Result<Vec<usize>, String> {
    let [h, f] = *w_ih else {
        return Err(format!(
            "rnn_tanh: weight_ih must be [hidden, features], got {w_ih:?}"
        ));
    };
    if s.len() != 2 || s[1] != f {
        let n = crate::ops::shape::numel(s).unwrap_or(0);
        let hint = if f > 0 && n > 0 && n.is_multiple_of(f) {
            format!("; add reshape({},{f}) before it", n / f)
        } else {
            String::new()
        };
        return Err(format!(
            "a sequence layer reads [N, T, {f}] (T steps of {f} features), got {}{hint}",
            crate::ops::shape::fmt(s)
        ));
    }
    if s[0] == 0 {
        return Err("rnn_tanh: an empty sequence (T = 0)".into());
    }
    if w_hh != [h, h] {
        return Err(format!(
            "rnn_tanh: weight_hh must be [{h}, {h}], got {w_hh:?}"
        ));
    }
    Ok(vec![h])
}

/// `(B, T, F, H)` of shapes [`rnn_shape`] accepted.
fn dims(x: &[usize], w_ih: &[usize]) -> (usize, usize, usize, usize) {
    (x[0], x[1], x[2], w_ih[0])
}

struct RnnTanhBack {
    /// Hidden states `h_1..h_T`, time-major `[T, B, H]`.
    hs: Vec<f32>,
}

impl Backward for RnnTanhBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let (x, w_ih, w_hh) = (inp[0], inp[1], inp[2]);
        let (b, t, f, h) = dims(x.shape(), w_ih.shape());
        let bh = b * h;
        let hs = &self.hs;
        // δ_t for every step, time-major [T, B, H] (and batch-major
        // [B, T, H] where ∂x or ∂W_ih is needed, to meet x row for row).
        let batch_major = (needs[0] || needs[1]) && b > 1 && t > 1;
        let (delta, delta_bt) =
            rnn::deltas(g.data(), &self.hs, w_hh.data(), (b, t, h), batch_major);
        let g_whh = needs[2].then(|| {
            // Σ_{t≥2} δ_tᵀ·h_{t−1}: rows of δ from step 2 on pair with the
            // hidden states from step 1 to T−1 (δ_1 meets h_0 = 0).
            let mut gw = w_hh.zeros_like();
            matmul_into(
                gw.data_mut(),
                &delta[bh..],
                Trans::Yes,
                &hs[..(t - 1) * bh],
                Trans::No,
                h,
                (t - 1) * b,
                h,
                false,
            );
            gw
        });
        let dbt = if batch_major { &delta_bt } else { &delta };
        let gx = needs[0].then(|| {
            let mut gx = x.zeros_like();
            matmul_into(
                gx.data_mut(),
                dbt,
                Trans::No,
                w_ih.data(),
                Trans::No,
                b * t,
                h,
                f,
                false,
            );
            gx
        });
        let g_wih = needs[1].then(|| {
            let mut gw = w_ih.zeros_like();
            matmul_into(
                gw.data_mut(),
                dbt,
                Trans::Yes,
                x.data(),
                Trans::No,
                h,
                b * t,
                f,
                false,
            );
            gw
        });
        let mut res = vec![gx, g_wih, g_whh];
        // Both biases (whichever were given) get Σ δ over steps and rows.
        let n_bias = inp.len() - 3;
        let gb = needs[3..].iter().any(|&n| n).then(|| {
            let acc = column_sums::<f64>(&delta, h);
            Tensor::from_vec(vec![h], acc.iter().map(|&v| v as f32).collect())
        });
        for k in 0..n_bias {
            res.push(if needs[3 + k] { gb.clone() } else { None });
        }
        res
    }
}

impl Graph {
    /// Every step's hidden state `[N, T, H]` of an Elman tanh layer over
    /// `x: [N, T, F]` (PyTorch's `output`), from the graph's ops: the input
    /// projections of all steps as one `linear`, then per step
    /// `h = tanh(xi_t + h·W_hhᵀ + b_hh)`. `b`: `(b_ih, b_hh)`.
    pub fn rnn_tanh_seq(&mut self, x: Var, w_ih: Var, w_hh: Var, b: Option<(Var, Var)>) -> Var {
        let s = self.shape(x).to_vec();
        let (ws, hs) = (self.shape(w_ih).to_vec(), self.shape(w_hh).to_vec());
        if let Err(e) = rnn_shape(crate::ops::shape::sample(&s), &ws, &hs) {
            let instead = [
                s.first().copied().unwrap_or(1),
                s.get(1).copied().unwrap_or(1),
                hs.first().copied().unwrap_or(1),
            ];
            return self.bad_shapes(e, &instead);
        }
        let (n, t, h) = (s[0], s[1], hs[0]);
        let xi = self.linear(x, w_ih, b.map(|b| b.0));
        let mut hid = self.input(Tensor::zeros(&[n, h]));
        let mut steps = Vec::with_capacity(t);
        for step in 0..t {
            let gx = self.narrow(xi, 1, step, 1);
            let gx = self.reshape(gx, &[n, h]);
            let gh = self.linear(hid, w_hh, b.map(|b| b.1));
            let a = self.add(gx, gh);
            hid = self.tanh(a);
            steps.push(self.reshape(hid, &[n, 1, h]));
        }
        self.concat(&steps, 1)
    }

    /// A one-layer tanh RNN over `x`, returning the last hidden state (see
    /// the [module docs](self) for the recurrence and shapes).
    pub fn rnn_tanh(
        &mut self,
        x: Var,
        w_ih: Var,
        w_hh: Var,
        b_ih: Option<Var>,
        b_hh: Option<Var>,
    ) -> Var {
        let (xs, wis, whs) = (self.shape(x), self.shape(w_ih), self.shape(w_hh));
        let mut bad = match xs.len() {
            3 => rnn_shape(&xs[1..], wis, whs).err(),
            _ => Some(format!(
                "rnn_tanh: input must be [batch, time, features], got {xs:?}"
            )),
        };
        let h = wis.first().copied().unwrap_or(1);
        for (name, bv) in [("bias_ih", b_ih), ("bias_hh", b_hh)] {
            if let Some(bv) = bv.filter(|bv| bad.is_none() && self.shape(*bv) != [h]) {
                bad = Some(format!(
                    "rnn_tanh: {name} must be [{h}], got {:?}",
                    self.shape(bv)
                ));
            }
        }
        if let Some(e) = bad {
            let instead = [xs.first().copied().unwrap_or(1), h];
            return self.bad_shapes(e, &instead);
        }
        let (xv, wi, wh) = (self.value(x), self.value(w_ih), self.value(w_hh));
        let (b, t, f, h) = dims(xv.shape(), wi.shape());
        let bh = b * h;
        // The bias of every step, b_ih + b_hh.
        let mut bias: Option<Vec<f32>> = None;
        for (name, bv) in [("bias_ih", b_ih), ("bias_hh", b_hh)] {
            let Some(bv) = bv else { continue };
            let bt = self.value(bv);
            assert_eq!(bt.shape(), &[h], "rnn_tanh: {name} must be [{h}]");
            match &mut bias {
                Some(acc) => acc.iter_mut().zip(bt.data()).for_each(|(a, v)| *a += v),
                None => bias = Some(bt.data().to_vec()),
            }
        }
        // Input projection for all steps at once, batch-major [B, T, H].
        let mut proj = match &bias {
            Some(bias) => par::repeated(bias, b * t),
            None => vec![0f32; b * t * h],
        };
        matmul_into(
            &mut proj,
            xv.data(),
            Trans::No,
            wi.data(),
            Trans::Yes,
            b * t,
            f,
            h,
            bias.is_some(),
        );
        // Hidden states h_1..h_T, time-major [T, B, H].
        let hs = rnn::hidden_states(&proj, wh.data(), (b, t, h));
        let y = Tensor::from_vec(vec![b, h], hs[(t - 1) * bh..].to_vec());
        let mut parents = vec![x, w_ih, w_hh];
        parents.extend(b_ih);
        parents.extend(b_hh);
        self.push(Op::RnnTanh, y, &parents, RnnTanhBack { hs })
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{check, pseudo_random};
    use crate::{Graph, Tensor, Var};

    fn weights(f: usize, h: usize) -> Vec<Tensor> {
        let s = 1.0 / (h as f32).sqrt();
        vec![
            pseudo_random(&[h, f], 2).map(|v| v * s),
            pseudo_random(&[h, h], 3).map(|v| v * s),
            pseudo_random(&[h], 4).map(|v| v * s),
            pseudo_random(&[h], 5).map(|v| v * s),
        ]
    }

    fn rnn_check(name: &str, b: usize, t: usize, f: usize, h: usize) {
        let w = weights(f, h);
        let x = pseudo_random(&[b, t, f], 1);
        check(
            name,
            &[
                x.clone(),
                w[0].clone(),
                w[1].clone(),
                w[2].clone(),
                w[3].clone(),
            ],
            |g, v| g.rnn_tanh(v[0], v[1], v[2], Some(v[3]), Some(v[4])),
        );
        check(
            &format!("{name} no bias"),
            &[x.clone(), w[0].clone(), w[1].clone()],
            |g, v| g.rnn_tanh(v[0], v[1], v[2], None, None),
        );
        check(
            &format!("{name} only bias_hh"),
            &[x, w[0].clone(), w[1].clone(), w[3].clone()],
            |g, v| g.rnn_tanh(v[0], v[1], v[2], None, Some(v[3])),
        );
    }

    #[test]
    fn every_steps_form_ends_where_the_fused_node_does() {
        let (x, wi, wh, bi, bh) = (
            pseudo_random(&[3, 6, 4], 21),
            pseudo_random(&[5, 4], 22),
            pseudo_random(&[5, 5], 23),
            pseudo_random(&[5], 24),
            pseudo_random(&[5], 25),
        );
        let mut g = Graph::new();
        let v: Vec<_> = [x, wi, wh, bi, bh]
            .into_iter()
            .map(|t| g.param(t))
            .collect();
        let last = g.rnn_tanh(v[0], v[1], v[2], Some(v[3]), Some(v[4]));
        let seq = g.rnn_tanh_seq(v[0], v[1], v[2], Some((v[3], v[4])));
        let end = g.narrow(seq, 1, 5, 1);
        let d = g
            .value(last)
            .data()
            .iter()
            .zip(g.value(end).data())
            .map(|(a, b)| (a - b).abs());
        assert!(d.fold(0f32, f32::max) < 1e-6);
        check(
            "rnn_tanh_seq",
            &[
                pseudo_random(&[2, 3, 4], 26),
                pseudo_random(&[5, 4], 27),
                pseudo_random(&[5, 5], 28),
            ],
            |g, v| g.rnn_tanh_seq(v[0], v[1], v[2], None),
        );
    }

    #[test]
    fn gradients_match_finite_differences() {
        rnn_check("rnn T=1", 2, 1, 3, 4);
        rnn_check("rnn T=5", 3, 5, 4, 3);
        rnn_check("rnn B=1 T=5", 1, 5, 2, 3);
    }

    /// The same RNN unrolled from existing ops (linear, add, tanh), one step
    /// per time index, with the same weight nodes at every step.
    fn unrolled(g: &mut Graph, xs: &[Var], w: &[Var], b: usize, h: usize) -> Var {
        let mut hid = g.input(Tensor::zeros(&[b, h]));
        for &xt in xs {
            let a = g.linear(xt, w[0], Some(w[2]));
            let r = g.linear(hid, w[1], Some(w[3]));
            let z = g.add(a, r);
            hid = g.tanh(z);
        }
        hid
    }

    /// Fused vs unrolled: value, ∂x_t and the shared weights' gradients.
    fn compare_with_unrolled(b: usize, t: usize, f: usize, h: usize, tol: f32) {
        let w = weights(f, h);
        let x = pseudo_random(&[b, t, f], 11).map(|v| 2.0 * v);
        let seed = pseudo_random(&[b, h], 12);

        let mut g = Graph::new();
        let xv = g.param(x.clone());
        let wv: Vec<Var> = w.iter().map(|p| g.param(p.clone())).collect();
        let y = g.rnn_tanh(xv, wv[0], wv[1], Some(wv[2]), Some(wv[3]));
        let fused = g.backward_with(y, seed.clone());

        let mut u = Graph::new();
        let xs: Vec<Var> = (0..t)
            .map(|s| {
                let mut d = Vec::with_capacity(b * f);
                for i in 0..b {
                    d.extend_from_slice(&x.data()[(i * t + s) * f..(i * t + s + 1) * f]);
                }
                u.param(Tensor::from_vec(vec![b, f], d))
            })
            .collect();
        let uw: Vec<Var> = w.iter().map(|p| u.param(p.clone())).collect();
        let uy = unrolled(&mut u, &xs, &uw, b, h);
        let ug = u.backward_with(uy, seed);

        assert!(g.value(y).max_abs_diff(u.value(uy)) < 1e-5);
        for k in 0..4 {
            let (a, e) = (fused.get(wv[k]).unwrap(), ug.get(uw[k]).unwrap());
            let scale = e.data().iter().fold(1f32, |m, v| m.max(v.abs()));
            assert!(
                a.max_abs_diff(e) < tol * scale,
                "T={t} param {k}: {} vs unrolled (scale {scale})",
                a.max_abs_diff(e)
            );
        }
        let gx = fused.get(xv).unwrap();
        for (s, &xt) in xs.iter().enumerate() {
            let e = ug.get(xt).unwrap();
            for i in 0..b {
                for j in 0..f {
                    let a = gx.data()[(i * t + s) * f + j];
                    assert!((a - e.data()[i * f + j]).abs() < tol, "∂x[{i},{s},{j}]");
                }
            }
        }
    }

    #[test]
    fn shared_weight_gradients_are_sums_over_steps() {
        compare_with_unrolled(3, 1, 4, 5, 1e-5);
        compare_with_unrolled(3, 6, 4, 5, 1e-5);
        compare_with_unrolled(1, 4, 2, 3, 1e-5);
    }

    #[test]
    fn long_sequence_runs_without_recursion() {
        // T = 200 through the fused node, in a thread with a small stack.
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| compare_with_unrolled(2, 200, 3, 8, 1e-4))
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn data_input_gets_no_gradient() {
        let w = weights(3, 4);
        let mut g = Graph::new();
        let x = g.input(pseudo_random(&[2, 3, 3], 1));
        let wi = g.param(w[0].clone());
        let wh = g.param(w[1].clone());
        let y = g.rnn_tanh(x, wi, wh, None, None);
        assert_eq!(g.shape(y), &[2, 4]);
        let l = g.sum(y);
        let grads = g.backward(l);
        assert!(grads.get(x).is_none());
        assert!(grads.get(wi).is_some() && grads.get(wh).is_some());
    }
}
