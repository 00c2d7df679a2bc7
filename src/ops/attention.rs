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
//!
//! # Multi-head self-attention, fused
//! [`Graph::causal_self_attention`] takes a GPT's `c_attn` output
//! `[N, T, 3C]` (queries, keys, values side by side, each `H` heads of
//! `D = C/H`) and returns the heads' outputs side by side, `[N, T, C]`: the
//! same numbers as splitting it (narrow, reshape to `[N, T, H, D]`,
//! transpose to `[N, H, T, D]`), attending, and merging back, without the
//! eight copies in between. Each head's rows are gathered into a small
//! contiguous block, which stays in cache.

use crate::autograd::{Backward, Op};
use crate::cpu::{matmul_serial_into, par, threads, Trans};
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
    fn saved(&self) -> Option<Tensor> {
        let t = self.t;
        Some(Tensor::from_vec(
            vec![self.p.len() / (t * t).max(1), t, t],
            self.p.clone(),
        ))
    }

    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let (q, k, v) = (inp[0], inp[1], inp[2]);
        let (t, d) = (self.t, self.d);
        let (mut gq, mut gk, mut gv) = (q.zeros_like(), k.zeros_like(), v.zeros_like());
        let per = heads_per_job(q.numel() / (t * d), t, d);
        let jobs: Vec<_> = gq
            .data_mut()
            .chunks_mut(per * t * d)
            .zip(gk.data_mut().chunks_mut(per * t * d))
            .zip(gv.data_mut().chunks_mut(per * t * d))
            .enumerate()
            .collect();
        par::map_jobs(jobs, |(j, ((gq, gk), gv))| {
            let (mut dp, mut ds) = (vec![0f32; t * t], vec![0f32; t * t]);
            for i in 0..gq.len() / (t * d) {
                let (h, l) = (j * per + i, i * t * d..(i + 1) * t * d);
                let (hd, ht) = (h * t * d..(h + 1) * t * d, h * t * t..(h + 1) * t * t);
                let heads = Head {
                    q: &q.data()[hd.clone()],
                    k: &k.data()[hd.clone()],
                    v: &v.data()[hd.clone()],
                    t,
                    d,
                };
                let grads = (&mut gq[l.clone()], &mut gk[l.clone()], &mut gv[l]);
                heads.backward(&self.p[ht], &g.data()[hd], grads, &mut dp, &mut ds);
            }
        });
        vec![
            needs[0].then_some(gq),
            needs[1].then_some(gk),
            needs[2].then_some(gv),
        ]
    }
}

/// One head's `q`, `k`, `v` (`[T, D]` each).
struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    t: usize,
    d: usize,
}

impl Head<'_> {
    /// `P = softmax(q·kᵀ/√D)` below the diagonal into `p` (`[T, T]`), and
    /// `o = P·v` into `o`.
    fn forward(&self, p: &mut [f32], o: &mut [f32]) {
        let (t, d) = (self.t, self.d);
        let scale = 1.0 / (d as f32).sqrt();
        matmul_serial_into(p, self.q, Trans::No, self.k, Trans::Yes, t, d, t, false);
        for (i, row) in p.chunks_exact_mut(t).enumerate() {
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
        matmul_serial_into(o, p, Trans::No, self.v, Trans::No, t, t, d, false);
    }

    /// The head's gradients from `P` and `G = ∂L/∂o`, with scratch `dp`, `ds`
    /// (`[T, T]` each).
    fn backward(
        &self,
        p: &[f32],
        g: &[f32],
        (gq, gk, gv): (&mut [f32], &mut [f32], &mut [f32]),
        dp: &mut [f32],
        ds: &mut [f32],
    ) {
        let (t, d) = (self.t, self.d);
        let scale = 1.0 / (d as f32).sqrt();
        // ∂v = Pᵀ·G
        matmul_serial_into(gv, p, Trans::Yes, g, Trans::No, t, t, d, false);
        // ∂P = G·vᵀ, then ∂S = P ⊙ (∂P − rowsum(∂P ⊙ P))
        matmul_serial_into(dp, g, Trans::No, self.v, Trans::Yes, t, d, t, false);
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
        matmul_serial_into(gq, ds, Trans::No, self.k, Trans::No, t, t, d, false);
        matmul_serial_into(gk, ds, Trans::Yes, self.q, Trans::No, t, t, d, false);
    }
}

/// Heads per job: an even share of the heads for each kernel thread, one
/// job for them all when the whole is small.
fn heads_per_job(heads: usize, t: usize, d: usize) -> usize {
    let work = heads * t * t * d;
    let jobs = if work >= par::SPLIT_MIN * 16 {
        threads()
    } else {
        1
    };
    heads.div_ceil(jobs.max(1)).max(1)
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
        let (qv, kv, vv) = (
            self.value(q).data(),
            self.value(k).data(),
            self.value(v).data(),
        );
        let mut p = vec![0f32; heads * t * t];
        let mut o = vec![0f32; heads * t * d];
        let per = heads_per_job(heads, t, d);
        let jobs: Vec<_> = p
            .chunks_mut(per * t * t)
            .zip(o.chunks_mut(per * t * d))
            .enumerate()
            .collect();
        par::map_jobs(jobs, |(j, (p, o))| {
            for i in 0..o.len() / (t * d) {
                let hd = (j * per + i) * t * d..(j * per + i + 1) * t * d;
                let head = Head {
                    q: &qv[hd.clone()],
                    k: &kv[hd.clone()],
                    v: &vv[hd],
                    t,
                    d,
                };
                head.forward(
                    &mut p[i * t * t..(i + 1) * t * t],
                    &mut o[i * t * d..(i + 1) * t * d],
                );
            }
        });
        let y = Tensor::from_vec(shape, o);
        self.push(Op::Attention, y, &[q, k, v], AttentionBack { p, t, d })
    }
}

/// The output shape of multi-head self-attention over fused rows
/// `[..., T, 3C]` with `heads` heads, or what is wrong.
pub fn self_attention_shape(s: &[usize], heads: usize) -> Result<Vec<usize>, String> {
    match s {
        [.., _, w] if heads > 0 && w % (3 * heads) == 0 && *w > 0 => {
            let mut out = s.to_vec();
            *out.last_mut().expect("two axes") = w / 3;
            Ok(out)
        }
        _ => Err(format!(
            "causal_self_attention: expects [..., T, 3C] with 3C a multiple of 3 × {heads} heads, got {s:?}"
        )),
    }
}

/// Where the heads of fused rows lie: `n` sequences of `t` rows of `w`
/// values (`3C` in, `C` out), `h` heads of `d`.
#[derive(Clone, Copy)]
struct Layout {
    t: usize,
    c: usize,
    h: usize,
    d: usize,
}

impl Layout {
    /// Copy part `part` (0: q, 1: k, 2: v) of head `head` of sequence `n`
    /// out of rows of `width` values into `out` (`[T, D]`).
    fn gather(
        &self,
        rows: &[f32],
        width: usize,
        n: usize,
        part: usize,
        head: usize,
        out: &mut [f32],
    ) {
        for (i, o) in out.chunks_exact_mut(self.d).enumerate() {
            let at = (n * self.t + i) * width + part * self.c + head * self.d;
            o.copy_from_slice(&rows[at..at + self.d]);
        }
    }
}

struct SelfAttentionBack {
    /// The attention weights, `[N, H, T, T]`.
    p: Vec<f32>,
    layout: Layout,
}

impl Backward for SelfAttentionBack {
    fn saved(&self) -> Option<Tensor> {
        let (t, h) = (self.layout.t, self.layout.h);
        let n = self.p.len() / (h * t * t).max(1);
        Some(Tensor::from_vec(vec![n, h, t, t], self.p.clone()))
    }

    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let l = self.layout;
        let (t, c, d) = (l.t, l.c, l.d);
        let qkv = inp[0].data();
        let seqs = qkv.len() / (t * 3 * c);
        let mut dqkv = vec![0f32; qkv.len()];
        // one job per sequence block: each writes its own rows of ∂qkv
        let per = heads_per_job(seqs, t, c);
        let jobs: Vec<_> = dqkv.chunks_mut(per * t * 3 * c).enumerate().collect();
        par::map_jobs(jobs, |(j, rows)| {
            let mut s = vec![0f32; 7 * t * d + 2 * t * t];
            let (qs, rest) = s.split_at_mut(t * d);
            let (ks, rest) = rest.split_at_mut(t * d);
            let (vs, rest) = rest.split_at_mut(t * d);
            let (gs, rest) = rest.split_at_mut(t * d);
            let (gq, rest) = rest.split_at_mut(t * d);
            let (gk, rest) = rest.split_at_mut(t * d);
            let (gv, rest) = rest.split_at_mut(t * d);
            let (dp, ds) = rest.split_at_mut(t * t);
            for local in 0..rows.len() / (t * 3 * c) {
                let n = j * per + local;
                for head in 0..l.h {
                    l.gather(qkv, 3 * c, n, 0, head, qs);
                    l.gather(qkv, 3 * c, n, 1, head, ks);
                    l.gather(qkv, 3 * c, n, 2, head, vs);
                    l.gather(g.data(), c, n, 0, head, gs);
                    let hp = (n * l.h + head) * t * t;
                    let hd = Head {
                        q: qs,
                        k: ks,
                        v: vs,
                        t,
                        d,
                    };
                    hd.backward(
                        &self.p[hp..hp + t * t],
                        gs,
                        (&mut *gq, &mut *gk, &mut *gv),
                        dp,
                        ds,
                    );
                    for (part, src) in [(0, &*gq), (1, &*gk), (2, &*gv)] {
                        for (i, r) in src.chunks_exact(d).enumerate() {
                            let at = (local * t + i) * 3 * c + part * c + head * d;
                            rows[at..at + d].copy_from_slice(r);
                        }
                    }
                }
            }
        });
        vec![Some(Tensor::from_vec(inp[0].shape().to_vec(), dqkv))]
    }
}

impl Graph {
    /// Causal multi-head self-attention of fused rows `qkv: [..., T, 3C]`
    /// (queries, keys, values side by side, `heads` heads each) into
    /// `[..., T, C]`, the heads side by side; see the [module docs](self).
    pub fn causal_self_attention(&mut self, qkv: Var, heads: usize) -> Var {
        let s = self.shape(qkv).to_vec();
        let out_shape = match self_attention_shape(&s, heads) {
            Ok(o) => o,
            Err(e) => {
                let mut instead = s.clone();
                if let Some(w) = instead.last_mut() {
                    *w = (*w / 3).max(1);
                }
                return self.bad_shapes(e, &instead);
            }
        };
        let (t, c) = (s[s.len() - 2], out_shape[out_shape.len() - 1]);
        let l = Layout {
            t,
            c,
            h: heads,
            d: c / heads,
        };
        let x = self.value(qkv).data();
        let seqs = x.len() / (t * 3 * c).max(1);
        let mut p = vec![0f32; seqs * heads * t * t];
        let mut o = vec![0f32; seqs * t * c];
        let per = heads_per_job(seqs, t, c);
        let jobs: Vec<_> = p
            .chunks_mut(per * heads * t * t)
            .zip(o.chunks_mut(per * t * c))
            .enumerate()
            .collect();
        par::map_jobs(jobs, |(j, (p, o))| {
            let d = l.d;
            let mut s = vec![0f32; 4 * t * d];
            let (qs, rest) = s.split_at_mut(t * d);
            let (ks, rest) = rest.split_at_mut(t * d);
            let (vs, os) = rest.split_at_mut(t * d);
            for local in 0..o.len() / (t * c) {
                let n = j * per + local;
                for head in 0..heads {
                    l.gather(x, 3 * c, n, 0, head, qs);
                    l.gather(x, 3 * c, n, 1, head, ks);
                    l.gather(x, 3 * c, n, 2, head, vs);
                    let hp = (local * heads + head) * t * t;
                    Head {
                        q: qs,
                        k: ks,
                        v: vs,
                        t,
                        d,
                    }
                    .forward(&mut p[hp..hp + t * t], os);
                    for (i, r) in os.chunks_exact(d).enumerate() {
                        let at = (local * t + i) * c + head * d;
                        o[at..at + d].copy_from_slice(r);
                    }
                }
            }
        });
        let y = Tensor::from_vec(out_shape, o);
        self.push(
            Op::SelfAttention,
            y,
            &[qkv],
            SelfAttentionBack { p, layout: l },
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{check, pseudo_random};
    use crate::{Graph, Tensor};

    /// The weights it shows, times each head's values, are its output.
    #[test]
    fn the_weights_shown_are_the_ones_the_fused_op_uses() {
        let (n, t, h, d) = (2, 5, 3, 4);
        let c = h * d;
        let qkv = pseudo_random(&[n, t, 3 * c], 7);
        let mut g = Graph::new();
        let x = g.param(qkv.clone());
        let o = g.causal_self_attention(x, h);
        let w = g.saved(o).expect("attention shows its weights");
        assert_eq!(w.shape(), &[n, h, t, t]);
        let (xv, wv, ov) = (qkv.data(), w.data(), g.value(o).data());
        for s in 0..n {
            for head in 0..h {
                for i in 0..t {
                    let row = &wv[((s * h + head) * t + i) * t..][..t];
                    assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
                    assert!(row[i + 1..].iter().all(|&v| v == 0.0));
                    for e in 0..d {
                        let want: f32 = (0..t)
                            .map(|j| row[j] * xv[(s * t + j) * 3 * c + 2 * c + head * d + e])
                            .sum();
                        let got = ov[(s * t + i) * c + head * d + e];
                        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
                    }
                }
            }
        }
        // a graph without backward rules saves nothing
        let mut g = Graph::no_grad();
        let x = g.input(qkv);
        let o = g.causal_self_attention(x, h);
        assert!(g.saved(o).is_none());
    }

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
    fn fused_self_attention_is_the_split_heads_attention() {
        let x = pseudo_random(&[2, 5, 18], 4); // N 2, T 5, C 6 in 3 heads of 2
        let mut g = Graph::new();
        let qkv = g.param(x.clone());
        let fused = g.causal_self_attention(qkv, 3);
        let split = |g: &mut Graph, i: usize| {
            let y = g.narrow(qkv, 2, 6 * i, 6);
            let y = g.reshape(y, &[2, 5, 3, 2]);
            g.transpose(y, 1, 2)
        };
        let (q, k, v) = (split(&mut g, 0), split(&mut g, 1), split(&mut g, 2));
        let a = g.causal_attention(q, k, v);
        let a = g.transpose(a, 1, 2);
        let unfused = g.reshape(a, &[2, 5, 6]);
        assert_eq!(g.value(fused), g.value(unfused));
        let r = pseudo_random(&[2, 5, 6], 5);
        let gf = g.backward_with(fused, r.clone()).get(qkv).unwrap().clone();
        let gu = g.backward_with(unfused, r).get(qkv).unwrap().clone();
        let e = gf
            .data()
            .iter()
            .zip(gu.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(e < 1e-6, "{e}");
        check("causal_self_attention", &[x], |g, v| {
            g.causal_self_attention(v[0], 3)
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
