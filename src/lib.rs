//! # backprop
//!
//! Train neural networks by backpropagation, natively in Rust.
//!
//! - [`Tensor`]: n-dimensional row-major `f32` arrays.
//! - [`Graph`]: the tape. Ops record their outputs and backward rules;
//!   [`Graph::backward`] walks the tape in reverse creation order, filling a
//!   gradient table and summing contributions where a value fans out.
//! - [`ops`]: every op's forward and backward rule, side by side.
//! - [`nn`]: the [`Module`](nn::Module) trait, the layers, [`Sequential`](nn::Sequential)
//!   and the one-line model spec, initialization, parameter names.
//! - [`optim`]: SGD (momentum, Nesterov), RMSprop, Adam, AdamW, clipping, schedules.
//! - [`data`]: IDX and CSV data sets, batching, seeded shuffling.
//! - [`io`]: safetensors weights with PyTorch `nn.Sequential` names.
//! - [`mem`]: the memory a run needs, asked for before it is used.
//! - [`train`]: the training loop behind `backprop train`.
//! - [`dist`]: data-parallel training over several processes (MPI with feature `mpi`).

#![warn(missing_docs)]
// Every `unsafe` block lives in `cpu`; the other modules may not have one.
#[cfg(feature = "mimalloc")]
pub use cpu::alloc;
#[forbid(unsafe_code)]
pub mod autograd;
pub mod cpu;
#[forbid(unsafe_code)]
pub mod data;
#[forbid(unsafe_code)]
pub mod dist;
#[forbid(unsafe_code)]
pub mod error;
#[forbid(unsafe_code)]
pub mod inspect;
#[forbid(unsafe_code)]
pub mod io;
#[forbid(unsafe_code)]
pub mod mem;
#[forbid(unsafe_code)]
pub mod nn;
#[forbid(unsafe_code)]
pub mod ops;
#[forbid(unsafe_code)]
pub mod optim;
#[forbid(unsafe_code)]
pub mod run;
#[cfg(feature = "serve")]
#[forbid(unsafe_code)]
pub mod serve;
#[forbid(unsafe_code)]
pub mod tensor;
#[forbid(unsafe_code)]
pub mod train;

pub use autograd::{GradTable, Graph, ParamGrads, Var};

/// What a model and its training loop usually need, in one import:
/// `use backprop::prelude::*;`.
pub mod prelude {
    pub use crate::nn::{
        Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout,
        Dropout2d, Embedding, Flatten, Gpt, GptConfig, Gru, Identity, Init, LayerNorm, Linear,
        Lstm, MaxPool2d, Module, ModuleExt, PRelu, Pass, Reshape, Rnn, Sequential, Visitor,
        VisitorMut,
    };
    pub use crate::optim::{
        DecayOn, Momentum, Optimizer, OptimizerConfig, OptimizerKind, Schedule,
    };
    pub use crate::train::{LossKind, Printer, TrainConfig};
    pub use crate::{submodules, Graph, ParamGrads, Tensor, Var};
}

/// The seeded generator the library draws weights, shuffles and dropout
/// masks with (ChaCha8, as `rand_chacha` 0.9 has it). Use this one rather
/// than adding `rand` and `rand_chacha` to your own `Cargo.toml`: another
/// version of those crates makes a generator of another type, which the
/// library does not take.
///
/// ```
/// let mut rng = backprop::rand::seeded(0);
/// let fc = backprop::nn::Linear::new(4, 2).init(&mut rng);
/// assert_eq!(fc.weight.value().shape(), &[2, 4]);
/// ```
pub mod rand {
    pub use rand::{Rng, SeedableRng};
    pub use rand_chacha::ChaCha8Rng;

    /// A generator seeded with `seed`: the same draws every time.
    pub fn seeded(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }
}

pub use error::{Error, Result, Setting, SETTINGS};
pub use tensor::Tensor;

/// The README's Rust examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
