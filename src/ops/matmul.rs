//! Matrix product, batched: `a[..., m, k] · b[..., k, n]`.
//!
//! `b` is either 2-d (shared by every batch entry, as a weight is) or has the
//! same leading axes as `a`. Backward: `∂a = g · bᵀ`, `∂b = aᵀ · g`, the
//! latter summed over the batch when `b` was shared. Transposes are strides
//! handed to the kernel, never copies.

use crate::autograd::{Backward, Op};
use crate::cpu::{matmul_into, Trans};
use crate::{Graph, Tensor, Var};

struct Dims {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    shared_b: bool,
}

/// The output shape of `a · b` (`[…, m, k] · [k, n]` or `[…, k, n]` with
/// the same batch axes): `[…, m, n]`, or what is wrong.
pub fn matmul_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    if a.len() < 2 || b.len() < 2 {
        return Err(format!(
            "matmul: needs at least 2-d operands, got {a:?} and {b:?}"
        ));
    }
    let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
    let (kb, n) = (b[b.len() - 2], b[b.len() - 1]);
    if k != kb {
        return Err(format!("matmul: inner sizes differ: {a:?} · {b:?}"));
    }
    if b.len() != 2 && a[..a.len() - 2] != b[..b.len() - 2] {
        return Err(format!("matmul: batch axes differ: {a:?} · {b:?}"));
    }
    let mut out = a[..a.len() - 2].to_vec();
    out.extend([m, n]);
    Ok(out)
}

/// The sizes of a product whose shapes [`matmul_shape`] accepted.
fn dims(a: &[usize], b: &[usize]) -> Dims {
    let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
    let n = b[b.len() - 1];
    Dims {
        batch: a[..a.len() - 2].iter().product(),
        m,
        k,
        n,
        shared_b: b.len() == 2,
    }
}

struct MatmulBack;

impl Backward for MatmulBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let (a, b) = (inp[0], inp[1]);
        let Dims {
            batch,
            m,
            k,
            n,
            shared_b,
        } = dims(a.shape(), b.shape());
        let ga = needs[0].then(|| {
            let mut ga = a.zeros_like();
            for i in 0..batch {
                let bi = if shared_b { 0 } else { i };
                matmul_into(
                    &mut ga.data_mut()[i * m * k..(i + 1) * m * k],
                    &g.data()[i * m * n..(i + 1) * m * n],
                    Trans::No,
                    &b.data()[bi * k * n..(bi + 1) * k * n],
                    Trans::Yes,
                    m,
                    n,
                    k,
                    false,
                );
            }
            ga
        });
        let gb = needs[1].then(|| {
            let mut gb = b.zeros_like();
            if shared_b {
                // Σ over the batch of aᵢᵀ·gᵢ = (a as [batch·m, k])ᵀ · (g as [batch·m, n]).
                matmul_into(
                    gb.data_mut(),
                    a.data(),
                    Trans::Yes,
                    g.data(),
                    Trans::No,
                    k,
                    batch * m,
                    n,
                    false,
                );
            } else {
                for i in 0..batch {
                    matmul_into(
                        &mut gb.data_mut()[i * k * n..(i + 1) * k * n],
                        &a.data()[i * m * k..(i + 1) * m * k],
                        Trans::Yes,
                        &g.data()[i * m * n..(i + 1) * m * n],
                        Trans::No,
                        k,
                        m,
                        n,
                        false,
                    );
                }
            }
            gb
        });
        vec![ga, gb]
    }
}

impl Graph {
    /// Matrix product `a[..., m, k] · b[..., k, n] → [..., m, n]`; `b` may be
    /// 2-d and shared across `a`'s batch axes.
    pub fn matmul(&mut self, a: Var, b: Var) -> Var {
        if let Err(e) = matmul_shape(self.shape(a), self.shape(b)) {
            let instead = self.shape(a).to_vec();
            return self.bad_shapes(e, &instead);
        }
        let (av, bv) = (self.value(a), self.value(b));
        let Dims {
            batch,
            m,
            k,
            n,
            shared_b,
        } = dims(av.shape(), bv.shape());
        let mut shape = av.shape()[..av.ndim() - 2].to_vec();
        shape.extend([m, n]);
        let mut out = Tensor::zeros(&shape);
        if shared_b {
            matmul_into(
                out.data_mut(),
                av.data(),
                Trans::No,
                bv.data(),
                Trans::No,
                batch * m,
                k,
                n,
                false,
            );
        } else {
            for i in 0..batch {
                matmul_into(
                    &mut out.data_mut()[i * m * n..(i + 1) * m * n],
                    &av.data()[i * m * k..(i + 1) * m * k],
                    Trans::No,
                    &bv.data()[i * k * n..(i + 1) * k * n],
                    Trans::No,
                    m,
                    k,
                    n,
                    false,
                );
            }
        }
        self.push(Op::Matmul, out, &[a, b], MatmulBack)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{check, pseudo_random};

    #[test]
    fn gradients_match_finite_differences() {
        check(
            "2d",
            &[pseudo_random(&[5, 7], 1), pseudo_random(&[7, 3], 2)],
            |g, v| g.matmul(v[0], v[1]),
        );
        check(
            "batched",
            &[pseudo_random(&[2, 5, 7], 3), pseudo_random(&[2, 7, 3], 4)],
            |g, v| g.matmul(v[0], v[1]),
        );
        check(
            "shared rhs",
            &[pseudo_random(&[2, 5, 7], 5), pseudo_random(&[7, 3], 6)],
            |g, v| g.matmul(v[0], v[1]),
        );
    }
}
