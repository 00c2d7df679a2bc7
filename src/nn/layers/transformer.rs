//! The blocks of a GPT, laid out and named as nanoGPT's `model.py`: causal
//! multi-head self-attention, the MLP, and the pre-norm residual block.
//!
//! Every block reads and returns `[N, T, C]` (`C` = `n_embd`).

use super::{Activation, Dropout, LayerNorm, Linear};
use crate::nn::init::Init;
use crate::nn::module::{Module, Pass};
use crate::{submodules, Error, Result, Var};
use rand_chacha::ChaCha8Rng;

/// The sizes of a block: width `n_embd`, `n_head` heads (dividing the
/// width), biases in the linear layers and layer norms or not, dropout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockConfig {
    /// The width C.
    pub n_embd: usize,
    /// Attention heads; each attends with `n_embd / n_head` values.
    pub n_head: usize,
    /// Biases in the linear layers and the layer norms (nanoGPT's `bias`).
    pub bias: bool,
    /// Dropout after the attention's and the MLP's projections.
    pub dropout: f32,
    /// The number of blocks of the model: the output projections are drawn
    /// with σ = 0.02/√(2·n_layer), as GPT-2's.
    pub n_layer: usize,
}

impl BlockConfig {
    /// Check the sizes: heads dividing the width, dropout in [0, 1).
    pub fn check(&self) -> Result<()> {
        if self.n_embd == 0 || self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            let h = self.n_head.max(1);
            let lower = self.n_embd / h * h;
            return Err(Error::Spec(format!(
                "{} heads do not divide the width {}: each head takes an equal share; \
                 use a width that is a multiple of the heads (e.g. {} or {})",
                self.n_head,
                self.n_embd,
                lower.max(h),
                lower + h
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Spec(format!(
                "dropout = {}: it must be in [0, 1)",
                self.dropout
            )));
        }
        Ok(())
    }

    fn linear(&self, i: usize, o: usize, std: f32, rng: &mut ChaCha8Rng) -> Linear {
        Linear::new(i, o)
            .bias(self.bias)
            .weight_init(Init::Normal(std))
            .init(rng)
    }

    fn layer_norm(&self) -> LayerNorm {
        LayerNorm::new(self.n_embd).bias(self.bias)
    }

    fn proj_std(&self) -> f32 {
        0.02 / (2.0 * self.n_layer.max(1) as f32).sqrt()
    }
}

/// Per-sample `[T, C]` for a block of width `c`.
fn check_width(s: &[usize], c: usize, what: &str) -> Result<Vec<usize>> {
    match s {
        [_, w] if *w == c => Ok(s.to_vec()),
        _ => Err(Error::Spec(format!(
            "{what} reads [N, T, {c}] (a sequence of {c}-wide vectors), got [N, {}]",
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Causal multi-head self-attention (nanoGPT's `CausalSelfAttention`): one
/// linear layer makes queries, keys and values (`c_attn`, `[3C, C]`), each
/// head attends to the positions up to its own with
/// softmax(q·kᵀ/√d)·v ([`Graph::causal_self_attention`](crate::Graph::causal_self_attention)),
/// and `c_proj` mixes the heads.
#[derive(Clone, Debug)]
pub struct CausalSelfAttention {
    /// `[3C, C]`: queries, keys, values, in that order.
    pub c_attn: Linear,
    /// `[C, C]`.
    pub c_proj: Linear,
    /// After `c_proj`.
    pub resid_dropout: Dropout,
    n_head: usize,
    n_embd: usize,
}

impl CausalSelfAttention {
    /// Draw the weights: N(0, 0.02²), `c_proj` N(0, (0.02/√(2·n_layer))²).
    pub fn new(cfg: &BlockConfig, rng: &mut ChaCha8Rng) -> Self {
        let c = cfg.n_embd;
        CausalSelfAttention {
            c_attn: cfg.linear(c, 3 * c, 0.02, rng),
            c_proj: cfg.linear(c, c, cfg.proj_std(), rng),
            resid_dropout: Dropout::new(cfg.dropout),
            n_head: cfg.n_head,
            n_embd: c,
        }
    }
}

impl Module for CausalSelfAttention {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        // queries, keys and values side by side, [N, T, 3C]; the heads
        // attend (split, attended and merged in one node), [N, T, C]
        let qkv = self.c_attn.forward(p, x);
        let y = p.causal_self_attention(qkv, self.n_head);
        let y = self.c_proj.forward(p, y);
        let y = self.resid_dropout.forward(p, y);
        p.layer_output(self, y);
        y
    }

    submodules!(c_attn, c_proj, resid_dropout);

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        check_width(s, self.n_embd, "attention")
    }
}

/// The MLP of a block: `c_proj(gelu(c_fc(x)))`, 4× wider inside.
#[derive(Clone, Debug)]
pub struct Mlp {
    /// `[4C, C]`.
    pub c_fc: Linear,
    /// The exact (erf) GELU, as `nn.GELU()`.
    pub gelu: Activation,
    /// `[C, 4C]`.
    pub c_proj: Linear,
    /// After `c_proj`.
    pub dropout: Dropout,
}

impl Mlp {
    /// Draw the weights as GPT-2 does.
    pub fn new(cfg: &BlockConfig, rng: &mut ChaCha8Rng) -> Self {
        let c = cfg.n_embd;
        Mlp {
            c_fc: cfg.linear(c, 4 * c, 0.02, rng),
            gelu: Activation::gelu(),
            c_proj: cfg.linear(4 * c, c, cfg.proj_std(), rng),
            dropout: Dropout::new(cfg.dropout),
        }
    }
}

impl Module for Mlp {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let h = self.c_fc.forward(p, x);
        let h = self.gelu.forward(p, h);
        let y = self.c_proj.forward(p, h);
        self.dropout.forward(p, y)
    }

    submodules!(c_fc, gelu, c_proj, dropout);
}

/// A pre-norm transformer block: `x + attn(ln_1(x))`, then
/// `x + mlp(ln_2(x))`.
#[derive(Clone, Debug)]
pub struct Block {
    /// Before the attention.
    pub ln_1: LayerNorm,
    /// Causal self-attention.
    pub attn: CausalSelfAttention,
    /// Before the MLP.
    pub ln_2: LayerNorm,
    /// The MLP.
    pub mlp: Mlp,
}

impl Block {
    /// A block of `cfg`'s sizes, its weights drawn from `rng`.
    pub fn new(cfg: &BlockConfig, rng: &mut ChaCha8Rng) -> Self {
        Block {
            ln_1: cfg.layer_norm(),
            attn: CausalSelfAttention::new(cfg, rng),
            ln_2: cfg.layer_norm(),
            mlp: Mlp::new(cfg, rng),
        }
    }
}

impl Module for Block {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let h = self.ln_1.forward(p, x);
        let h = self.attn.forward(p, h);
        let x = p.add(x, h);
        let h = self.ln_2.forward(p, x);
        let h = self.mlp.forward(p, h);
        let y = p.add(x, h);
        p.layer_output(self, y);
        y
    }

    submodules!(ln_1, attn, ln_2, mlp);

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        check_width(s, self.attn.n_embd, "a transformer block")
    }
}
