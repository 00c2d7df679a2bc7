//! Gradient norms per named block: the parameters grouped by where they sit
//! in the model, so that a GPT's gradient flow reads per transformer block
//! (`transformer.h.0`, `transformer.h.1`, …) and a model line's per layer.
//!
//! A parameter's block is its name up to and including the last numbered
//! part (`transformer.h.2.attn.c_attn.weight` → `transformer.h.2`,
//! `1.weight_hh_l0` → `1`); a name with no number belongs to the module
//! that holds it (`transformer.wte.weight` → `transformer.wte`).

use crate::nn::{Module, ModuleExt};
use crate::ParamGrads;

/// The block a parameter of this full name belongs to.
///
/// ```
/// use backprop::inspect::blocks::block_of;
/// assert_eq!(block_of("transformer.h.2.attn.c_attn.weight"), "transformer.h.2");
/// assert_eq!(block_of("1.weight_hh_l0"), "1");
/// assert_eq!(block_of("transformer.ln_f.weight"), "transformer.ln_f");
/// assert_eq!(block_of("bias"), "bias");
/// ```
pub fn block_of(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((module, _)) => block_of_module(module),
        None => name,
    }
}

/// The block of a module (or layer) of this full name: up to and including
/// its last numbered part, else the whole name.
///
/// ```
/// use backprop::inspect::blocks::block_of_module;
/// assert_eq!(block_of_module("transformer.h.0.attn.c_proj"), "transformer.h.0");
/// assert_eq!(block_of_module("transformer.wte"), "transformer.wte");
/// ```
pub fn block_of_module(name: &str) -> &str {
    let mut end = None;
    let mut at = 0;
    for part in name.split('.') {
        at += part.len();
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            end = Some(at);
        }
        at += 1;
    }
    &name[..end.unwrap_or(name.len())]
}

/// A model's blocks in the order their first parameter is visited, and the
/// block of each parameter (aligned with [`ParamGrads::tensors`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocks {
    /// The blocks' names, in order.
    pub names: Vec<String>,
    /// For each parameter, its block's index in `names`.
    pub of_param: Vec<usize>,
}

impl Blocks {
    /// The blocks of `model`'s parameters.
    pub fn of(model: &dyn Module) -> Blocks {
        let mut names: Vec<String> = Vec::new();
        let mut of_param = Vec::new();
        for (name, _) in model.parameters() {
            let b = block_of(&name);
            let i = match names.iter().position(|n| n == b) {
                Some(i) => i,
                None => {
                    names.push(b.to_string());
                    names.len() - 1
                }
            };
            of_param.push(i);
        }
        Blocks { names, of_param }
    }

    /// ‖∂C/∂θ‖ of each block (the Euclidean norm over all its parameters'
    /// gradients, summed in f64); a block nothing flowed into has 0.
    pub fn grad_norms(&self, grads: &ParamGrads) -> Vec<f64> {
        let mut sq = vec![0.0f64; self.names.len()];
        for (g, &b) in grads.tensors().iter().zip(&self.of_param) {
            if let Some(g) = g {
                sq[b] += g.data().iter().map(|&v| v as f64 * v as f64).sum::<f64>();
            }
        }
        sq.into_iter().map(f64::sqrt).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{GptConfig, Pass};

    #[test]
    fn a_gpts_blocks_are_its_embeddings_its_transformer_blocks_and_its_final_norm() {
        let cfg = GptConfig {
            vocab_size: 7,
            block_size: 4,
            n_layer: 2,
            n_head: 1,
            n_embd: 8,
            bias: false,
            dropout: 0.0,
        };
        let gpt = cfg.init(&mut crate::rand::seeded(0)).unwrap();
        let b = Blocks::of(&gpt);
        assert_eq!(
            b.names,
            [
                "transformer.wte",
                "transformer.wpe",
                "transformer.h.0",
                "transformer.h.1",
                "transformer.ln_f"
            ]
        );
        let mut p = Pass::train(&gpt, 0);
        let x = p.input(crate::Tensor::from_vec(
            vec![1, 4],
            vec![1.0, 2.0, 3.0, 4.0],
        ));
        let y = gpt.forward(&mut p, x);
        let l = p.cross_entropy_with(y, &[2, 3, 4, 5], &Default::default());
        let g = p.backward(l);
        let norms = b.grad_norms(&g);
        // the blocks' norms make up the global norm
        let total: f64 = g
            .tensors()
            .iter()
            .flatten()
            .flat_map(|t| t.data().iter().map(|&v| v as f64 * v as f64))
            .sum();
        let parts: f64 = norms.iter().map(|n| n * n).sum();
        assert!((total - parts).abs() <= 1e-9 * total, "{total} vs {parts}");
        assert!(norms.iter().all(|&n| n > 0.0), "{norms:?}");
    }
}
