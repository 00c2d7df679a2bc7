//! One text through a language model's tape: the same walk forward and back
//! as a drawing's [trace](super::tape::trace), with a loss at every
//! position (the cross-entropy of each next character, averaged), the
//! model's prediction at every position, and each attention node's weights
//! per head, for the page's heat maps.

use super::tape::{walk, Trace};
use crate::nn::{Module, ModuleExt};
use crate::ops::loss::CrossEntropyOptions;
use crate::{Error, Result, Tensor};

/// One attention node's weights.
#[derive(Clone, Debug)]
pub struct AttentionMap {
    /// The attention node's id on the tape.
    pub node: usize,
    /// The layer (index into the tape's layers) that made it.
    pub layer: Option<usize>,
    /// `[H, T, T]`: row `i` of head `h` is how position `i` spreads its
    /// attention over positions `0..=i`.
    pub weights: Tensor,
}

/// A text's walk through a language model's tape.
#[derive(Clone, Debug)]
pub struct SequenceTrace {
    /// The tape, every node's value and gradient, the loss; its
    /// `probabilities` and `label` are the last position's.
    pub trace: Trace,
    /// The ids read, `[T]`.
    pub ids: Vec<usize>,
    /// The next id at every position, `[T]` (what the loss is taken against).
    pub targets: Vec<usize>,
    /// The model's next-token probabilities at every position, `[T, V]`.
    pub probabilities: Tensor,
    /// Every attention node's weights, in tape order.
    pub attention: Vec<AttentionMap>,
}

/// Walk `ids` through `model` (a language model: ids `[1, T]` to logits
/// `[1, T, V]`) and back, the loss the mean cross-entropy of `targets`
/// (usually the ids shifted by one), in evaluation mode.
pub fn trace_sequence(
    model: &dyn Module,
    ids: &[usize],
    targets: &[usize],
) -> Result<SequenceTrace> {
    let t = ids.len();
    if t == 0 || targets.len() != t {
        return Err(Error::Config(format!(
            "a sequence trace needs as many targets as ids, at least one: got {t} ids, {} targets",
            targets.len()
        )));
    }
    let vocab = model.input_vocab().ok_or_else(|| {
        Error::Spec(format!(
            "`{}` does not read token ids: a sequence trace needs a language model",
            model.describe()
        ))
    })?;
    let out = model.output_shape(&[t])?;
    let v = match out[..] {
        [tt, v] if tt == t => v,
        _ => {
            return Err(Error::Spec(format!(
                "`{}` gives {out:?} for {t} ids; a language model gives [{t}, vocabulary]",
                model.describe()
            )))
        }
    };
    if let Some(bad) = ids.iter().chain(targets).find(|&&i| i >= vocab.min(v)) {
        return Err(Error::Config(format!(
            "id {bad} is outside the model's vocabulary of {}",
            vocab.min(v)
        )));
    }
    let x = Tensor::from_vec(vec![1, t], ids.iter().map(|&i| i as f32).collect());
    let mut probabilities = Tensor::zeros(&[t, v]);
    let w = walk(model, &x, |p, y| {
        let probs = model.probabilities(p.value(y));
        probabilities = Tensor::from_vec(vec![t, v], probs.data().to_vec());
        Ok(p.cross_entropy_with(y, targets, &CrossEntropyOptions::default()))
    })?;
    let attention = w
        .saved
        .iter()
        .map(|(node, s)| {
            let sh = s.shape();
            let (tt, heads) = (
                sh[sh.len() - 1],
                s.numel() / (sh[sh.len() - 1].pow(2)).max(1),
            );
            AttentionMap {
                node: *node,
                layer: w.tape.nodes[*node].layer,
                weights: Tensor::from_vec(vec![heads, tt, tt], s.data().to_vec()),
            }
        })
        .collect();
    let last = probabilities.data()[(t - 1) * v..].to_vec();
    Ok(SequenceTrace {
        trace: Trace {
            tape: w.tape,
            values: w.values,
            grads: w.grads,
            probabilities: last,
            label: targets[t - 1],
            loss: w.loss,
        },
        ids: ids.to_vec(),
        targets: targets.to_vec(),
        probabilities,
        attention,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{GptConfig, Init, Sequential};

    #[test]
    fn a_gpt_shows_every_blocks_attention_and_the_loss_of_every_position() {
        let gpt = GptConfig {
            n_layer: 2,
            n_head: 2,
            n_embd: 8,
            ..GptConfig::baby(6, 8)
        }
        .init(&mut crate::rand::seeded(1))
        .unwrap();
        let ids = [1, 2, 3, 4, 5];
        let targets = [2, 3, 4, 5, 0];
        let s = trace_sequence(&gpt, &ids, &targets).unwrap();
        assert_eq!(s.attention.len(), 2);
        for a in &s.attention {
            assert_eq!(a.weights.shape(), &[2, 5, 5]);
            assert!(a.layer.is_some());
            for row in a.weights.data().chunks(5) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
        // the first position attends to itself only
        assert!((s.attention[0].weights.data()[0] - 1.0).abs() < 1e-6);
        // the loss is the mean of each position's −log p(target)
        let want: f64 = targets
            .iter()
            .enumerate()
            .map(|(i, &y)| -(s.probabilities.data()[i * 6 + y] as f64).ln())
            .sum::<f64>()
            / 5.0;
        assert!(
            (s.trace.loss as f64 - want).abs() < 1e-5,
            "{} vs {want}",
            s.trace.loss
        );
        assert_eq!(s.trace.label, 0);
        // every parameter got a gradient
        let grads = s
            .trace
            .tape
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, crate::inspect::tape::NodeKind::Param(_)))
            .filter(|n| s.trace.grads[n.id].is_some())
            .count();
        assert!(grads > 10, "{grads}");
        // an LSTM language model has no attention, and a classifier is refused
        let lstm = Sequential::parse(
            "embedding(6,4),lstm(4,8),linear(8,6)",
            Init::Default,
            &mut crate::rand::seeded(0),
        )
        .unwrap();
        assert!(trace_sequence(&lstm, &ids, &targets)
            .unwrap()
            .attention
            .is_empty());
        let mlp =
            Sequential::parse("linear(5,3)", Init::Default, &mut crate::rand::seeded(0)).unwrap();
        let e = trace_sequence(&mlp, &ids, &targets)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not read token ids"), "{e}");
        assert!(trace_sequence(&gpt, &[1, 9], &[1, 2]).is_err());
    }
}
