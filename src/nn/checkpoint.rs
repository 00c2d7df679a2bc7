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

use super::module::{Entry, Mode, Module, Pass, Visitor};
use crate::autograd::Backward;
use crate::{Error, Graph, Result, Tensor, Var};

fn run(layers: &[&dyn Module], p: &mut Pass, mut h: Var) -> Var {
    for l in layers {
        h = l.forward(p, h);
    }
    h
}

/// Record `layers` on `p` as one recomputed node.
pub(crate) fn segment(p: &mut Pass, layers: &[Box<dyn Module>], x: Var) -> Var {
    let refs: Vec<&dyn Module> = layers.iter().map(|l| &**l).collect();
    // Forward without recording: inner values are dropped as soon as used.
    // The segment draws the dropout masks the outer pass would have drawn,
    // and its buffer updates (batch norm) are the outer pass's.
    let start = p.dropouts();
    let mut inner = Pass::over(&refs, p.mode(), false);
    inner.set_dropouts(start);
    let xi = inner.input(p.value(x).clone());
    let out = run(&refs, &mut inner, xi);
    let value = inner.value(out).clone();
    let used = inner.dropouts() - start;
    let updates = inner.take_updates();
    drop(inner);
    p.absorb(updates, used);
    let mut parents = vec![x];
    for l in &refs {
        l.visit(&mut Visitor::new(&mut |_, _, e| {
            if let Entry::Param(t) = e {
                parents.push(p.param(t));
            }
        }));
    }
    let mode = p.mode();
    // The backward pass runs a copy: the parameters' values are shared, not copied.
    let copy = layers.to_vec();
    p.push(
        "checkpoint",
        value,
        &parents,
        CheckpointBack {
            layers: copy,
            mode,
            start,
        },
    )
}

struct CheckpointBack {
    layers: Vec<Box<dyn Module>>,
    mode: Mode,
    /// The outer pass's dropout count where the segment began.
    start: u64,
}

impl Backward for CheckpointBack {
    fn backward(
        &self,
        grad: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        // Run the segment again, recording this time; its buffer updates were
        // taken from the first pass, so the repeats are dropped with `inner`.
        let refs: Vec<&dyn Module> = self.layers.iter().map(|l| &**l).collect();
        let mut inner = Pass::over(&refs, self.mode, true);
        inner.set_dropouts(self.start);
        let x = if needs[0] {
            Graph::param(&mut inner, inputs[0].clone())
        } else {
            inner.input(inputs[0].clone())
        };
        let out = run(&refs, &mut inner, x);
        let grads = inner.backward_with(out, grad.clone());
        let mut res = vec![if needs[0] {
            grads.get(x).cloned()
        } else {
            None
        }];
        for (v, need) in inner.param_vars().iter().zip(&needs[1..]) {
            res.push(if *need { grads.get(*v).cloned() } else { None });
        }
        res
    }
}

/// Set `model`'s checkpointing from `--checkpoint`: `blocks` (each of its
/// repeated blocks, a GPT's transformer blocks, recomputed on its own) or
/// layer ranges of the model line (see [`parse_segments`]).
pub fn apply(model: &mut super::Sequential, s: &str) -> Result<()> {
    if s.trim() == "blocks" {
        if model.checkpoint_blocks() == 0 {
            return Err(Error::invalid(
                crate::Setting::Checkpoint,
                "blocks",
                format!(
                    "`{}` has no repeated blocks (a gpt(…) item has); give layer ranges of the \
                     model line instead, e.g. 0-{}",
                    model.describe(),
                    model.len().saturating_sub(1)
                ),
            ));
        }
        return Ok(());
    }
    model.checkpoints = parse_segments(s, model.len())?;
    Ok(())
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
    let bad = |m: String| Error::Config(format!("checkpoint segments `{s}`: {m}"));
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
    use crate::nn::{Init, ModuleExt, Pass, Sequential};
    use crate::ops::gradcheck::pseudo_random;
    use rand::SeedableRng;

    fn grads(m: &Sequential, x: &crate::Tensor) -> (Vec<Option<crate::Tensor>>, usize) {
        let mut p = Pass::train(m, 1);
        let xv = p.input(x.clone());
        let out = crate::nn::Module::forward(m, &mut p, xv);
        let l = p.cross_entropy(out, &[0, 2, 1, 2]);
        let n = p.len();
        (p.backward(l).tensors().to_vec(), n)
    }

    #[test]
    fn gradients_are_identical_with_and_without_checkpointing() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut m = Sequential::parse(
            "flatten,linear(12,16),tanh,dropout(0.3),linear(16,16),relu,batchnorm1d(16),linear(16,3)",
            Init::Default,
            &mut rng,
        )
        .unwrap();
        let x = pseudo_random(&[4, 3, 4], 3);
        let (plain, n_plain) = grads(&m, &x);
        m.checkpoints = super::parse_segments("1-3,4-6", m.len()).unwrap();
        let (ckpt, n_ckpt) = grads(&m, &x);
        assert!(plain.iter().all(Option::is_some));
        assert_eq!(plain, ckpt, "bit-identical gradients");
        assert!(
            n_ckpt < n_plain,
            "fewer nodes kept on the tape: {n_ckpt} vs {n_plain}"
        );
        assert_eq!(
            m.num_parameters(),
            12 * 16 + 16 + 16 * 16 + 16 + 32 + 16 * 3 + 3
        );
    }
}
