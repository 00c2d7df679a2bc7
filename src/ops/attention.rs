//! Causal scaled dot-product attention as ONE node, equal to
//! `F.scaled_dot_product_attention(q, k, v, is_causal=True)`: each position
//! attends to itself and the positions before it.
//!
//! # Shapes
//! `q, k, v: [..., T, D]` (the same leading axes, e.g. `[B, H, T, D]`) →
//! `o: [..., T, D]`.
//!
//! # Forward, per leading index (a head of a sample)
//! `S = q·kᵀ/√D` (`[T, T]`), `S[i, j] = −∞` for `j > i`, `P = softmax(S)`
//! row by row, `o = P·v`. `P` is kept for the backward pass (`T²` values a
//! head: the memory gradient checkpointing saves).
//!
//! # Backward
//! With `G = ∂L/∂o`: `∂v = Pᵀ·G`, `∂P = G·vᵀ`,
//! `∂S = P ⊙ (∂P − rowsum(∂P ⊙ P))` (softmax's rule; zero above the
//! diagonal, where `P` is), `∂q = ∂S·k/√D`, `∂k = ∂Sᵀ·q/√D`.

use crate::autograd::{Backward, Op};
use crate::cpu::{matmul_into, Trans};
use crate::{Graph, Tensor, Var};

/// The output shape of attention over `q`, `k`, `v` (`[..., T, D]`, all
/// the same), or what is wrong.
pub fn attention_shape(q: &[usize], k: &[usize], v: &[usize]) -> Result<Vec<usize>, String> {
    if q.len() < 2 {
        return Err(format!("attention: q must be [..., T, D], got {q:?}"));
    }
    if q != k || q != v {
        return Err(format!(
            "attention: q {q:?}, k {k:?} and v {v:?} must have one shape [..., T, D]"
        ));
    }
    Ok(q.to_vec())
}

struct AttentionBack {
    /// The attention weights `P`, `[heads, T, T]`.
    p: Vec<f32>,
    t: usize,
    d: usize,
}

impl Backward for AttentionBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let (q, k, v) = (inp[0], inp[1], inp[2]);
        let (t, d) = (self.t, self.d);
        let scale = 1.0 / (d as f32).sqrt();
        let (mut gq, mut gk, mut gv) = (q.zeros_like(), k.zeros_like(), v.zeros_like());
        let (mut dp, mut ds) = (vec![0f32; t * t], vec![0f32; t * t]);
        for h in 0..q.numel() / (t * d) {
            let (hd, ht) = (h * t * d..(h + 1) * t * d, h * t * t..(h + 1) * t * t);
            let p = &self.p[ht];
            let gh = &g.data()[hd.clone()];
            // ∂v = Pᵀ·G
            matmul_into(
                &mut gv.data_mut()[hd.clone()],
                p,
                Trans::Yes,
                gh,
                Trans::No,
                t,
                t,
                d,
                false,
            );
            // ∂P = G·vᵀ, then ∂S = P ⊙ (∂P − rowsum(∂P ⊙ P))
            matmul_into(
                &mut dp,
                gh,
                Trans::No,
                &v.data()[hd.clone()],
                Trans::Yes,
                t,
                d,
                t,
                false,
            );
            for ((dsr, dpr), pr) in ds
                .chunks_exact_mut(t)
                .zip(dp.chunks_exact(t))
                .zip(p.chunks_exact(t))
            {
                let dot: f32 = dpr.iter().zip(pr).map(|(a, b)| a * b).sum();
                for ((o, &a), &b) in dsr.iter_mut().zip(dpr).zip(pr) {
                    *o = b * (a - dot) * scale;
                }
            }
            // ∂q = ∂S·k/√D, ∂k = ∂Sᵀ·q/√D (the scale folded into ∂S)
            matmul_into(
                &mut gq.data_mut()[hd.clone()],
                &ds,
                Trans::No,
                &k.data()[hd.clone()],
                Trans::No,
                t,
                t,
                d,
                false,
            );
            matmul_into(
                &mut gk.data_mut()[hd.clone()],
                &ds,
                Trans::Yes,
                &q.data()[hd],
                Trans::No,
                t,
                t,
                d,
                false,
            );
        }
        vec![
            needs[0].then_some(gq),
            needs[1].then_some(gk),
            needs[2].then_some(gv),
        ]
    }
}

impl Graph {
    /// Causal scaled dot-product attention of `q`, `k`, `v` (`[..., T, D]`),
    /// as `F.scaled_dot_product_attention(q, k, v, is_causal=True)`; see the
    /// [module docs](self).
    pub fn causal_attention(&mut self, q: Var, k: Var, v: Var) -> Var {
        let (qs, ks, vs) = (self.shape(q), self.shape(k), self.shape(v));
        if let Err(e) = attention_shape(qs, ks, vs) {
            let instead = qs.to_vec();
            return self.bad_shapes(e, &instead);
        }
        let shape = qs.to_vec();
        let (t, d) = (shape[shape.len() - 2], shape[shape.len() - 1]);
        let heads = shape.iter().product::<usize>() / (t * d).max(1);
        let scale = 1.0 / (d as f32).sqrt();
        let (qv, kv, vv) = (
            self.value(q).data(),
            self.value(k).data(),
            self.value(v).data(),
        );
        let mut p = vec![0f32; heads * t * t];
        let mut o = vec![0f32; heads * t * d];
        for h in 0..heads {
            let (hd, ht) = (h * t * d..(h + 1) * t * d, h * t * t..(h + 1) * t * t);
            let s = &mut p[ht.clone()];
            matmul_into(
                s,
                &qv[hd.clone()],
                Trans::No,
                &kv[hd.clone()],
                Trans::Yes,
                t,
                d,
                t,
                false,
            );
            for (i, row) in s.chunks_exact_mut(t).enumerate() {
                let m = row[..=i]
                    .iter()
                    .fold(f32::NEG_INFINITY, |a, &b| a.max(b * scale));
                let mut sum = 0f32;
                for x in &mut row[..=i] {
                    *x = (*x * scale - m).exp();
                    sum += *x;
                }
                for x in &mut row[..=i] {
                    *x /= sum;
                }
                row[i + 1..].fill(0.0);
            }
            matmul_into(
                &mut o[hd.clone()],
                &p[ht],
                Trans::No,
                &vv[hd],
                Trans::No,
                t,
                t,
                d,
                false,
            );
        }
        let y = Tensor::from_vec(shape, o);
        self.push(Op::Attention, y, &[q, k, v], AttentionBack { p, t, d })
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{check, pseudo_random};
    use crate::{Graph, Tensor};

    #[test]
    fn gradients_match_finite_differences() {
        let (q, k, v) = (
            pseudo_random(&[2, 3, 5, 4], 1),
            pseudo_random(&[2, 3, 5, 4], 2),
            pseudo_random(&[2, 3, 5, 4], 3),
        );
        check("causal_attention", &[q, k, v], |g, x| {
            g.causal_attention(x[0], x[1], x[2])
        });
    }

    #[test]
    fn the_first_position_sees_only_itself_and_later_ones_average() {
        let mut g = Graph::new();
        // All keys equal: each position averages the values it may see.
        let q = g.input(Tensor::from_vec(vec![3, 1], vec![1., 2., 3.]));
        let k = g.input(Tensor::from_vec(vec![3, 1], vec![0., 0., 0.]));
        let v = g.input(Tensor::from_vec(vec![3, 1], vec![3., 6., 9.]));
        let o = g.causal_attention(q, k, v);
        assert_eq!(g.value(o).data(), &[3., 4.5, 6.]);
    }
}
