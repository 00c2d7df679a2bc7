//! `Embedding` (`nn.Embedding`): a learned vector per token id.

use crate::nn::init::{self, Init};
use crate::nn::module::{Module, Param, Pass, Visitor, VisitorMut};
use crate::nn::registry::{tensor_sizes, Plan};
use crate::nn::spec::Item;
use crate::{Error, Result, Var};
use rand_chacha::ChaCha8Rng;

/// A table of `num_embeddings` learned vectors of `embedding_dim` values:
/// ids `[N, T]` (whole numbers below `num_embeddings`, stored as floats)
/// become rows `[N, T, embedding_dim]`. The rows are drawn from N(0, 1), as
/// PyTorch's.
///
/// ```
/// use backprop::nn::{Embedding, Module};
/// let mut rng = backprop::rand::seeded(0);
/// let emb = Embedding::new(65, 32).init(&mut rng);
/// assert_eq!(emb.weight.value().shape(), &[65, 32]);
/// assert_eq!(emb.output_shape(&[8]).unwrap(), vec![8, 32]);
/// ```
#[derive(Clone, Debug)]
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`, as PyTorch's `weight`.
    pub weight: Param,
}

/// The sizes of an [`Embedding`] before its table is drawn.
#[derive(Clone, Copy, Debug)]
pub struct EmbeddingConfig {
    num_embeddings: usize,
    embedding_dim: usize,
    std: f32,
}

impl Embedding {
    /// `num_embeddings` ids, each a vector of `embedding_dim`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(num_embeddings: usize, embedding_dim: usize) -> EmbeddingConfig {
        EmbeddingConfig {
            num_embeddings,
            embedding_dim,
            std: 1.0,
        }
    }

    /// `num_embeddings` (the vocabulary).
    pub fn num_embeddings(&self) -> usize {
        self.weight.value().shape()[0]
    }

    /// `embedding_dim` (the width of a row).
    pub fn embedding_dim(&self) -> usize {
        self.weight.value().shape()[1]
    }
}

impl EmbeddingConfig {
    /// The standard deviation of the drawn rows (default 1, PyTorch's;
    /// GPT-2 draws with 0.02).
    pub fn std(mut self, std: f32) -> Self {
        self.std = std;
        self
    }

    /// Draw the table from `rng`.
    pub fn init(self, rng: &mut ChaCha8Rng) -> Embedding {
        let shape = [self.num_embeddings, self.embedding_dim];
        Embedding {
            weight: Param::new(init::normal(&shape, self.std, rng)),
        }
    }
}

impl Module for Embedding {
    fn forward(&self, p: &mut Pass, ids: Var) -> Var {
        let w = p.param(&self.weight);
        let y = p.embedding(ids, w);
        p.layer_output(self, y);
        y
    }

    fn visit<'m>(&'m self, v: &mut Visitor<'_, 'm>) {
        v.param("weight", &self.weight);
    }

    fn visit_mut(&mut self, v: &mut VisitorMut<'_>) {
        v.param("weight", &mut self.weight);
    }

    fn spec(&self) -> Option<String> {
        Some(format!(
            "embedding({},{})",
            self.num_embeddings(),
            self.embedding_dim()
        ))
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        crate::ops::embedding::embedding_shape(s, self.weight.value().shape()).map_err(Error::Spec)
    }

    fn input_vocab(&self) -> Option<usize> {
        Some(self.num_embeddings())
    }
}

/// `embedding(num_embeddings,embedding_dim)`.
pub(crate) fn plan_embedding(item: &Item, _init: Init) -> Result<Plan> {
    let usage = "embedding(num_embeddings,embedding_dim)";
    item.expect_args(2, &["num_embeddings", "embedding_dim"], usage)?;
    let v = item.usize_arg(0, "num_embeddings", "num_embeddings")?;
    let d = item.usize_arg(1, "embedding_dim", "embedding_dim")?;
    let n = tensor_sizes(item, &[("weight", &[v, d])])?;
    Ok(Plan::new(n, move |rng| {
        Box::new(Embedding::new(v, d).init(rng))
    }))
}
