//! Looking inside a model: the tape of one step ([`tape`]: its nodes,
//! values, gradients and memory, as a table, Graphviz or the page's trace),
//! gradients against finite differences ([`gradcheck`]), and the per-layer
//! statistics and warnings measured while training ([`diagnostics`]), and
//! gradient norms per named block ([`blocks`]); a text's walk through a
//! language model, with its attention weights ([`sequence`]).

pub mod blocks;
pub mod diagnostics;
pub mod gradcheck;
pub mod sequence;
pub mod tape;
