//! The built-in layers, as PyTorch names and lays them out.
//!
//! Each layer is a public type built with named arguments and PyTorch's
//! defaults: the required sizes in `new`, everything optional as a named
//! setter (`Conv2d::new(1, 6, 5).padding(2)`, `BatchNorm1d::new(256).eps(1e-3)`),
//! and layers with weights drawn from a seeded generator by `.init(&mut rng)`.
//!
//! | layer | input → output | parameters (PyTorch layout) | buffers |
//! | --- | --- | --- | --- |
//! | [`Linear`] | `[N, …, in] → [N, …, out]` | `weight [out, in]`, `bias [out]` | |
//! | [`Conv2d`] | `[N, C, H, W] → [N, O, H', W']` | `weight [O, C, k, k]`, `bias [O]` | |
//! | [`MaxPool2d`] | `[N, C, H, W] → [N, C, H', W']` | | |
//! | [`BatchNorm1d`] | `[N, C]` or `[N, C, L]` | `weight [C]`, `bias [C]` | `running_mean`, `running_var [C]`, `num_batches_tracked []` |
//! | [`BatchNorm2d`] | `[N, C, H, W]` | as above | as above |
//! | [`LayerNorm`] | `[N, …, d]` | `weight [d]`, `bias [d]` | |
//! | [`Embedding`] | ids `[N, T]` → `[N, T, d]` | `weight [num_embeddings, d]` | |
//! | [`Dropout`] | any | | |
//! | [`Rnn`] | `[N, T, F] → [N, H]` (last hidden state; every step's `[N, T, H]` with `last(false)`) | `weight_ih_l0 [H, F]`, `weight_hh_l0 [H, H]`, `bias_ih_l0 [H]`, `bias_hh_l0 [H]` | |
//! | [`Lstm`], [`Gru`] | `[N, T, F] → [N, T, H]` (or `[N, H]` with `last`) | `weight_ih_lk [G·H, F or H]`, `weight_hh_lk [G·H, H]`, `bias_ih_lk`, `bias_hh_lk` (G = 4, 3) | |
//! | [`Flatten`] | `[N, …] → [N, product]` | | |
//! | [`Reshape`] | `[N, …] → [N, *shape]` | | |
//! | [`Activation`] | any (softmax, log_softmax: `[N, C]`) | | |
//! | [`PRelu`] | any, `n` = 1 or channels on axis 1 | `weight [n]` | |
//! | [`CausalSelfAttention`] | `[N, T, C]` | `c_attn.weight [3C, C]`, `c_proj.weight [C, C]` (+ biases) | |
//! | [`Block`] | `[N, T, C]` | `ln_1`, `attn`, `ln_2`, `mlp.c_fc [4C, C]`, `mlp.c_proj [C, 4C]` | |

mod activation;
mod conv;
mod dropout;
mod embedding;
mod gated;
mod linear;
mod norm;
mod pool;
mod resnet;
mod rnn;
mod shape;
mod transformer;

pub use activation::{Activation, ActivationKind, PRelu};
pub use conv::{Conv2d, Conv2dConfig};
pub use dropout::{Dropout, Dropout2d};
pub use embedding::{Embedding, EmbeddingConfig};
pub use gated::{GatedConfig, GatedRnn, Gru, Lstm};
pub use linear::{Linear, LinearConfig};
pub use norm::{BatchNorm, BatchNorm1d, BatchNorm2d, LayerNorm};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use resnet::{Downsample, ResBlock};
pub use rnn::{Rnn, RnnConfig};
pub use shape::{Flatten, Identity, Reshape};
pub use transformer::{Block, BlockConfig, CausalSelfAttention, Mlp};

pub(crate) use activation::{
    plan_elu, plan_leaky_relu, plan_log_softmax, plan_prelu, plan_softmax,
};
pub(crate) use conv::plan_conv2d;
pub(crate) use dropout::{plan_dropout, plan_dropout2d};
pub(crate) use embedding::plan_embedding;
pub(crate) use gated::plan_gated;
pub(crate) use linear::plan_linear;
pub(crate) use norm::{plan_batchnorm, plan_layernorm};
pub(crate) use pool::{plan_adaptiveavgpool2d, plan_avgpool2d, plan_maxpool2d};
pub(crate) use resnet::plan_resblock;
pub(crate) use rnn::plan_rnn;
pub(crate) use shape::{plan_flatten, plan_identity, plan_reshape};

use super::module::{Param, Visitor, VisitorMut};
use super::spec::Item;
use crate::Error;

pub(crate) use crate::ops::shape::{fmt as fmt_shape, numel};

/// Whether a layer item keeps its bias (`bias=false` drops it).
fn has_bias(item: &Item) -> bool {
    item.keyword("bias").unwrap_or(1.0) != 0.0
}

fn spec_err(msg: String) -> Error {
    Error::Spec(msg)
}

/// `weight`, then `bias` if there is one: the tensors of Linear and Conv2d.
fn visit_weight_bias<'m>(v: &mut Visitor<'_, 'm>, weight: &'m Param, bias: &'m Option<Param>) {
    v.param("weight", weight);
    if let Some(b) = bias {
        v.param("bias", b);
    }
}

/// [`visit_weight_bias`] with mutable access.
fn visit_weight_bias_mut(v: &mut VisitorMut<'_>, weight: &mut Param, bias: &mut Option<Param>) {
    v.param("weight", weight);
    if let Some(b) = bias {
        v.param("bias", b);
    }
}
