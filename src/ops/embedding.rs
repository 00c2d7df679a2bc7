//! A lookup table of vectors, as `F.embedding(ids, weight)`: row `i` of
//! the weight for each id `i`.
//!
//! # Shapes
//! `ids: [...]` (whole numbers below `V`, stored as `f32` like every
//! batch), `W: [V, D]` → `y: [..., D]`.
//!
//! # Backward
//! `∂W[i] = Σ_{positions p with ids[p] = i} ∂L/∂y[p]` (a scatter-add: an
//! id used twice collects both rows), in position order; the ids get no
//! gradient.

use crate::autograd::{Backward, Op};
use crate::{Graph, Tensor, Var};

/// The shape of one sample's output for one sample of ids shaped `s` and a
/// weight `w` (`[V, D]`): `s` followed by `D`.
pub fn embedding_shape(s: &[usize], w: &[usize]) -> Result<Vec<usize>, String> {
    let [_, d] = *w else {
        return Err(format!(
            "embedding: the weight must be [num_embeddings, embedding_dim], got {w:?}"
        ));
    };
    let mut out = s.to_vec();
    out.push(d);
    Ok(out)
}

/// The ids of `ids`, each checked to be a whole number below `v`.
fn ids_of(ids: &Tensor, v: usize) -> Result<Vec<usize>, String> {
    ids.data()
        .iter()
        .enumerate()
        .map(|(p, &x)| {
            if x >= 0.0 && x.fract() == 0.0 && (x as usize) < v {
                Ok(x as usize)
            } else {
                Err(format!(
                    "embedding: id {x} at position {p} is not a whole number in 0..{v} (the table's rows)"
                ))
            }
        })
        .collect()
}

struct EmbeddingBack {
    ids: Vec<usize>,
}

impl Backward for EmbeddingBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let w = inp[1];
        let d = w.shape()[1];
        let gw = needs[1].then(|| {
            let mut acc = w.zeros_like();
            let a = acc.data_mut();
            for (&i, row) in self.ids.iter().zip(g.data().chunks_exact(d)) {
                for (t, &v) in a[i * d..(i + 1) * d].iter_mut().zip(row) {
                    *t += v;
                }
            }
            acc
        });
        vec![None, gw]
    }
}

impl Graph {
    /// The rows of `weight` (`[V, D]`) at the ids held by `ids` (any
    /// shape; whole numbers below `V`) → `[..ids' shape, D]`. An id that is
    /// not a whole number below `V` is a shape error (a panic, or recorded
    /// in a [shape probe](Graph::shape_probe)).
    pub fn embedding(&mut self, ids: Var, weight: Var) -> Var {
        let (is, ws) = (self.shape(ids).to_vec(), self.shape(weight).to_vec());
        let checked = embedding_shape(&is, &ws)
            .and_then(|shape| ids_of(self.value(ids), ws[0]).map(|idx| (shape, idx)));
        let (shape, idx) = match checked {
            Ok(v) => v,
            Err(e) => {
                let mut instead = is.clone();
                instead.push(ws.get(1).copied().unwrap_or(1));
                return self.bad_shapes(e, &instead);
            }
        };
        let d = ws[1];
        let w = self.value(weight).data();
        let mut y = Vec::with_capacity(idx.len() * d);
        for &i in &idx {
            y.extend_from_slice(&w[i * d..(i + 1) * d]);
        }
        let y = Tensor::from_vec(shape, y);
        self.push(Op::Embedding, y, &[ids, weight], EmbeddingBack { ids: idx })
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{check, pseudo_random};
    use crate::{Graph, Tensor};

    #[test]
    fn rows_by_id_and_repeated_ids_sum_their_gradients() {
        let mut g = Graph::new();
        let ids = g.input(Tensor::from_vec(vec![2, 2], vec![2., 0., 2., 1.]));
        let w = g.param(Tensor::from_vec(vec![3, 2], vec![1., 2., 3., 4., 5., 6.]));
        let y = g.embedding(ids, w);
        assert_eq!(g.shape(y), &[2, 2, 2]);
        assert_eq!(g.value(y).data(), &[5., 6., 1., 2., 5., 6., 3., 4.]);
        let s = g.sum(y);
        let grads = g.backward(s);
        assert_eq!(grads.get(w).unwrap().data(), &[1., 1., 1., 1., 2., 2.]);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let ids = Tensor::from_vec(
            vec![3, 4],
            vec![0., 3., 3., 1., 4., 0., 2., 2., 1., 1., 0., 4.],
        );
        let w = pseudo_random(&[5, 3], 7);
        check("embedding", &[w], |g, v| {
            let ids = g.input(ids.clone());
            g.embedding(ids, v[0])
        });
    }

    #[test]
    #[should_panic(expected = "id 5 at position 1 is not a whole number in 0..5")]
    fn an_id_past_the_table_is_refused() {
        let mut g = Graph::new();
        let ids = g.input(Tensor::from_vec(vec![2], vec![0., 5.]));
        let w = g.param(Tensor::zeros(&[5, 2]));
        g.embedding(ids, w);
    }
}
