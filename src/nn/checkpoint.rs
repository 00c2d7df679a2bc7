//! Gradient checkpointing: trade compute for memory.
//!
//! A checkpointed segment of layers is recorded on the tape as ONE node. Its
//! forward runs the layers on a graph that records nothing, so none of the
//! segment's inner activations are kept: only its input (already on the tape)
//! and its output. Its backward runs the segment again, this time recording,
//! and backpropagates the upstream gradient through that short-lived graph to
//! get the gradients of the segment's input and parameters. The recomputation
//! uses the same parameters, the same mode and the same dropout seed, so the
//! gradients are identical to those of the run without checkpointing.
//!
//! Cost: one more forward pass of each segment per step. Saving: the inner
//! activations of every segment, for the whole time between the forward and
//! the backward pass (see `BENCHMARKS.md` for the measured figure on LeNet).

use super::{layer_forward, Layer, Mode};
use crate::autograd::Backward;
use crate::{Error, Graph, Result, Tensor, Var};

/// Record `layers` (model indices `first..`) as one recomputed node.
pub(crate) fn segment(
    g: &mut Graph,
    layers: &[Layer],
    first: usize,
    x: Var,
    params: &[Var],
    mode: Mode,
    buffer_updates: &mut Vec<(usize, &'static str, Tensor)>,
) -> Var {
    // Forward without recording: inner values are dropped as soon as used.
    let mut inner = Graph::no_grad();
    let xi = inner.input(g.value(x).clone());
    let pi: Vec<Var> = layers
        .iter()
        .flat_map(|l| l.params.iter())
        .map(|(_, t)| inner.param(t.clone()))
        .collect();
    let out = run(&mut inner, layers, first, xi, &pi, mode, buffer_updates);
    let value = inner.value(out).clone();
    drop(inner);
    let mut parents = vec![x];
    parents.extend_from_slice(params);
    let bw = CheckpointBack {
        layers: layers.to_vec(),
        first,
        mode,
    };
    g.push("checkpoint", value, &parents, bw)
}

fn run(
    g: &mut Graph,
    layers: &[Layer],
    first: usize,
    mut h: Var,
    params: &[Var],
    mode: Mode,
    updates: &mut Vec<(usize, &'static str, Tensor)>,
) -> Var {
    let mut k = 0;
    for (j, l) in layers.iter().enumerate() {
        let np = l.params.len();
        h = layer_forward(first + j, l, g, h, &params[k..k + np], mode, updates);
        k += np;
    }
    h
}

struct CheckpointBack {
    /// The segment's layers (their parameters are shared `Arc`s, not copies).
    layers: Vec<Layer>,
    first: usize,
    mode: Mode,
}

impl Backward for CheckpointBack {
    fn backward(
        &self,
        grad: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let mut g = Graph::new();
        let x = if needs[0] {
            g.param(inputs[0].clone())
        } else {
            g.input(inputs[0].clone())
        };
        let ps: Vec<Var> = self
            .layers
            .iter()
            .flat_map(|l| l.params.iter())
            .map(|(_, t)| g.param(t.clone()))
            .collect();
        // Buffer updates were taken from the first pass; drop the repeats.
        let out = run(
            &mut g,
            &self.layers,
            self.first,
            x,
            &ps,
            self.mode,
            &mut Vec::new(),
        );
        let grads = g.backward_with(out, grad.clone());
        let mut res = vec![if needs[0] {
            grads.get(x).cloned()
        } else {
            None
        }];
        for (p, need) in ps.iter().zip(&needs[1..]) {
            res.push(if *need { grads.get(*p).cloned() } else { None });
        }
        res
    }
}

/// Parse `--checkpoint`: comma-separated layer ranges `a-b` (inclusive), e.g.
/// `0-5,6-9`, checked against a model of `n` layers.
///
/// ```
/// use backprop::nn::checkpoint::parse_segments;
/// assert_eq!(parse_segments("0-2,4-5", 7).unwrap(), vec![0..3, 4..6]);
/// assert!(parse_segments("3-9", 7).is_err());
/// ```
pub fn parse_segments(s: &str, n: usize) -> Result<Vec<std::ops::Range<usize>>> {
    let bad = |m: String| Error::Config(format!("--checkpoint {s}: {m}"));
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: usize = a
            .trim()
            .parse()
            .map_err(|_| bad(format!("`{part}` is not a range like 0-5")))?;
        let b: usize = b
            .trim()
            .parse()
            .map_err(|_| bad(format!("`{part}` is not a range like 0-5")))?;
        if a > b || b >= n {
            return Err(bad(format!("`{part}`: the model has layers 0..{}", n - 1)));
        }
        if out.last().is_some_and(|r| r.end > a) {
            return Err(bad("ranges must be in order and must not overlap".into()));
        }
        out.push(a..b + 1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::nn::{Init, Mode, Model};
    use crate::ops::gradcheck::pseudo_random;
    use crate::Graph;
    use rand::SeedableRng;

    fn grads(m: &Model, x: &crate::Tensor) -> (Vec<crate::Tensor>, usize) {
        let mut g = Graph::new();
        let xv = g.input(x.clone());
        let f = m.forward(&mut g, xv, Mode::Train { seed: 1 });
        let l = g.cross_entropy(f.out, &[0, 2, 1, 2]);
        let n = g.len();
        let gr = g.backward(l);
        (
            f.params
                .iter()
                .map(|p| gr.get(*p).unwrap().clone())
                .collect(),
            n,
        )
    }

    #[test]
    fn gradients_are_identical_with_and_without_checkpointing() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut m = Model::new(
            "flatten,linear(12,16),tanh,linear(16,16),relu,linear(16,3)",
            Init::Default,
            &mut rng,
        )
        .unwrap();
        let x = pseudo_random(&[4, 3, 4], 3);
        let (plain, n_plain) = grads(&m, &x);
        m.checkpoints = super::parse_segments("1-2,3-4", m.layers.len()).unwrap();
        let (ckpt, n_ckpt) = grads(&m, &x);
        assert_eq!(plain, ckpt, "bit-identical gradients");
        assert!(
            n_ckpt < n_plain,
            "fewer nodes kept on the tape: {n_ckpt} vs {n_plain}"
        );
    }
}
