//! A GPT as nanoGPT writes it (`model.py`): token and learned position
//! embeddings, pre-norm transformer blocks, a final layer norm, and an
//! output layer that shares the token embedding's weights. Its
//! `state_dict` names are nanoGPT's (`transformer.wte.weight`,
//! `transformer.h.0.attn.c_attn.weight`, …, `lm_head.weight`), so a saved
//! model loads into nanoGPT's `GPT` with `load_state_dict`.
//!
//! ```
//! use backprop::nn::{GptConfig, Module, ModuleExt, Pass};
//! let cfg = GptConfig { n_layer: 2, n_head: 2, n_embd: 16, ..GptConfig::baby(65, 32) };
//! let gpt = cfg.init(&mut backprop::rand::seeded(0)).unwrap();
//! let names: Vec<String> = gpt.state_dict().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names[..3], ["transformer.wte.weight", "transformer.wpe.weight",
//!                         "transformer.h.0.ln_1.weight"]);
//! assert_eq!(names.last().unwrap(), "lm_head.weight");
//! // ids [N, T] → logits [N, T, vocab]
//! assert_eq!(gpt.output_shape(&[32]).unwrap(), vec![32, 65]);
//! ```

use super::layers::{Block, BlockConfig, Dropout, Embedding, LayerNorm};
use super::module::{Module, Pass, Visitor, VisitorMut};
use super::registry::{tensor_sizes, Plan};
use super::spec::Item;
use super::{Init, Sequential};
use crate::{Error, Result, Tensor, Var};
use rand_chacha::ChaCha8Rng;

/// The sizes of a [`Gpt`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GptConfig {
    /// The vocabulary (token ids 0..vocab_size).
    pub vocab_size: usize,
    /// The context: the longest sequence, the rows of the position table.
    pub block_size: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block.
    pub n_head: usize,
    /// The width of every position's vector.
    pub n_embd: usize,
    /// Biases in the linear layers and layer norms (nanoGPT's `bias`).
    pub bias: bool,
    /// Dropout after the embeddings and after each block's projections
    /// (the attention weights themselves are not dropped).
    pub dropout: f32,
}

impl GptConfig {
    /// nanoGPT's "baby GPT" for a laptop CPU: 4 layers, 4 heads, width 128,
    /// no biases, no dropout.
    pub fn baby(vocab_size: usize, block_size: usize) -> GptConfig {
        GptConfig {
            vocab_size,
            block_size,
            n_layer: 4,
            n_head: 4,
            n_embd: 128,
            bias: false,
            dropout: 0.0,
        }
    }

    fn block(&self) -> BlockConfig {
        BlockConfig {
            n_embd: self.n_embd,
            n_head: self.n_head,
            bias: self.bias,
            dropout: self.dropout,
            n_layer: self.n_layer,
        }
    }

    /// Check the sizes (heads dividing the width, a vocabulary and a
    /// context, dropout in [0, 1)).
    pub fn check(&self) -> Result<()> {
        if self.vocab_size == 0 || self.block_size == 0 || self.n_layer == 0 {
            return Err(Error::Spec(format!(
                "gpt: vocab ({}), block ({}) and layers ({}) must all be at least 1",
                self.vocab_size, self.block_size, self.n_layer
            )));
        }
        self.block().check().map_err(|e| match e {
            Error::Spec(m) => Error::Spec(format!("gpt: {m}")),
            e => e,
        })
    }

    /// The number of values the model holds (the tied output layer counted once).
    pub fn num_parameters(&self) -> usize {
        let (c, b) = (self.n_embd, usize::from(self.bias));
        let per_block = 2 * c * (1 + b) // ln_1, ln_2
            + 3 * c * c + 3 * c * b     // c_attn
            + c * c + c * b             // attn.c_proj
            + 4 * c * c + 4 * c * b     // c_fc
            + 4 * c * c + c * b; // mlp.c_proj
        (self.vocab_size + self.block_size) * c + self.n_layer * per_block + c * (1 + b)
    }

    /// Draw the weights as GPT-2 does: N(0, 0.02²) for linear layers and
    /// embeddings, N(0, (0.02/√(2·n_layer))²) for the output projections of
    /// the blocks, zero biases, unit layer-norm scales.
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Result<Gpt> {
        self.check()?;
        let (c, bc) = (self.n_embd, self.block());
        let wte = Embedding::new(self.vocab_size, c).std(0.02).init(rng);
        let wpe = Embedding::new(self.block_size, c).std(0.02).init(rng);
        let mut h = Sequential::new();
        for _ in 0..self.n_layer {
            h = h.push(Block::new(&bc, rng));
        }
        Ok(Gpt {
            transformer: Transformer {
                wte,
                wpe,
                drop: Dropout::new(self.dropout),
                h,
                ln_f: LayerNorm::new(c).bias(self.bias),
            },
            config: *self,
        })
    }

    /// The model-line item of this configuration:
    /// `gpt(vocab=65,block=64,layers=4,heads=4,embd=128)`.
    pub fn spec(&self) -> String {
        let mut s = format!(
            "gpt(vocab={},block={},layers={},heads={},embd={}",
            self.vocab_size, self.block_size, self.n_layer, self.n_head, self.n_embd
        );
        if self.bias {
            s += ",bias=true";
        }
        if self.dropout != 0.0 {
            s += &format!(",dropout={}", self.dropout);
        }
        s + ")"
    }
}

/// nanoGPT's `transformer` `ModuleDict`: the embeddings, the blocks, the
/// final layer norm. Its forward gives the final hidden states `[N, T, C]`.
#[derive(Clone, Debug)]
pub struct Transformer {
    /// Token embedding, `[vocab, C]`; also the output layer's weight.
    pub wte: Embedding,
    /// Position embedding, `[block, C]`.
    pub wpe: Embedding,
    /// After the embeddings' sum.
    pub drop: Dropout,
    /// The blocks, named `h.0`, `h.1`, ….
    pub h: Sequential,
    /// The final layer norm.
    pub ln_f: LayerNorm,
}

impl Module for Transformer {
    fn forward(&self, p: &mut Pass, ids: Var) -> Var {
        let t = *p.shape(ids).last().expect("gpt: ids [N, T]");
        let tok = self.wte.forward(p, ids);
        let pos = p.input(Tensor::from_vec(
            vec![t],
            (0..t).map(|i| i as f32).collect(),
        ));
        let pos = self.wpe.forward(p, pos);
        let x = p.add(tok, pos);
        let x = self.drop.forward(p, x);
        let x = self.h.forward(p, x);
        self.ln_f.forward(p, x)
    }

    crate::submodules!(wte, wpe, drop, h, ln_f);
}

/// A GPT (see the [module docs](self)): ids `[N, T]` (T ≤ `block_size`) to
/// logits `[N, T, vocab]`.
#[derive(Clone, Debug)]
pub struct Gpt {
    /// Embeddings, blocks and the final norm.
    pub transformer: Transformer,
    config: GptConfig,
}

impl Gpt {
    /// Its sizes.
    pub fn config(&self) -> &GptConfig {
        &self.config
    }
}

impl Module for Gpt {
    fn forward(&self, p: &mut Pass, ids: Var) -> Var {
        let x = self.transformer.forward(p, ids);
        // lm_head: the token embedding's table, transposed (weight tying)
        let w = p.param(&self.transformer.wte.weight);
        let y = p.linear(x, w, None);
        p.layer_output(self, y);
        y
    }

    fn visit<'m>(&'m self, v: &mut Visitor<'_, 'm>) {
        v.module("transformer", &self.transformer);
        v.tied("lm_head.weight", &self.transformer.wte.weight);
    }

    fn visit_mut(&mut self, v: &mut VisitorMut<'_>) {
        v.module("transformer", &mut self.transformer);
    }

    fn spec(&self) -> Option<String> {
        Some(self.config.spec())
    }

    fn checkpoint_blocks(&mut self) -> usize {
        let h = &mut self.transformer.h;
        h.checkpoints = (0..h.len()).map(|i| i..i + 1).collect();
        h.len()
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let c = &self.config;
        match s {
            [t] if (1..=c.block_size).contains(t) => Ok(vec![*t, c.vocab_size]),
            [t] => Err(Error::Spec(format!(
                "gpt: a sequence of {t} tokens, but the model's context (its position table) holds {}; \
                 use windows of at most {} (--block-size)",
                c.block_size, c.block_size
            ))),
            _ => Err(Error::Spec(format!(
                "gpt reads token ids [N, T], got [N, {}]",
                s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    fn input_vocab(&self) -> Option<usize> {
        Some(self.config.vocab_size)
    }

    fn input_context(&self) -> Option<usize> {
        Some(self.config.block_size)
    }

    fn names_at_root(&self) -> bool {
        true
    }
}

/// `gpt(vocab=V,block=T,layers=4,heads=4,embd=128,bias=false,dropout=0)`.
pub(crate) fn plan_gpt(item: &Item, _init: Init) -> Result<Plan> {
    let usage = "gpt(vocab=V,block=T,layers=4,heads=4,embd=128,bias=false,dropout=0)";
    let kws = [
        "vocab", "block", "layers", "heads", "embd", "bias", "dropout",
    ];
    item.expect_args(0, &kws, usage)?;
    let whole = |kw: &str, default: usize| -> Result<usize> {
        match item.keyword(kw) {
            None => Ok(default),
            Some(v) if v >= 1.0 && v.fract() == 0.0 && v <= 1e7 => Ok(v as usize),
            Some(v) => Err(item.err(format!("{kw} must be a whole number ≥ 1, got {v}"))),
        }
    };
    let (vocab, block) = (whole("vocab", 0)?, whole("block", 0)?);
    if vocab == 0 || block == 0 {
        return Err(item.err(format!(
            "needs its vocabulary and context: {usage} (the command line fills them in from a text \
             file and --block-size)"
        )));
    }
    let cfg = GptConfig {
        vocab_size: vocab,
        block_size: block,
        n_layer: whole("layers", 4)?,
        n_head: whole("heads", 4)?,
        n_embd: whole("embd", 128)?,
        bias: item.keyword("bias").unwrap_or(0.0) != 0.0,
        dropout: item.keyword("dropout").unwrap_or(0.0),
    };
    cfg.check()
        .map_err(|e| item.err(e.to_string().trim_start_matches("model spec: gpt: ")))?;
    let c = cfg.n_embd;
    tensor_sizes(
        item,
        &[
            ("wte", &[vocab, c]),
            ("wpe", &[block, c]),
            ("c_fc", &[4 * c, c]),
        ],
    )?;
    Ok(Plan::new(cfg.num_parameters(), move |rng| {
        Box::new(cfg.init(rng).expect("checked"))
    }))
}
