//! Every differentiable operation: its forward, its backward rule, its docs
//! and its tests live together in one module.
//!
//! Each op is a method on [`Graph`](crate::Graph) that computes the output
//! value and records a small struct implementing
//! [`Backward`](crate::autograd::Backward): exactly what the backward pass
//! needs is saved in that struct (or read back from the recorded input and
//! output values), nothing more.
//!
//! | module | ops |
//! | --- | --- |
//! | [`arith`] | add, sub, mul, div, maximum, minimum (NumPy broadcasting) |
//! | [`matmul`] | matmul (batched) |
//! | [`linear`] | linear: `x·Wᵀ + b` as one node |
//! | [`reduce`] | sum, mean (all elements or over axes) |
//! | [`shape`] | reshape, flatten, transpose, permute, narrow, split, concat, stack, index_select, masked_fill |
//! | [`unary`] | exp, log, sigmoid, tanh, relu, leaky_relu, elu, gelu, silu, sqrt, abs, pow, clamp |
//! | [`prelu`] | prelu (learned slope) |
//! | [`softmax`] | softmax, log_softmax (the last axis or any) |
//! | [`conv`] | conv2d (im2col + gemm, batch-parallel) |
//! | [`pool`] | max_pool2d (PyTorch's tie rule) |
//! | [`loss`] | mse, l1, huber, bce, bce_with_logits, cross_entropy (with ignore_index, label smoothing, class weights), nll |
//! | [`batchnorm`] | batch_norm (BatchNorm1d/2d, running statistics) |
//! | [`dropout`] | dropout (inverted, seeded mask) |
//! | [`rnn`] | rnn_tanh: an Elman RNN over a sequence as one node |
//! | [`gated`] | gated_layer: an LSTM or GRU layer over a sequence (a composition of ops) |
//! | [`embedding`] | embedding: rows of a table by id |
//! | [`layernorm`] | layer_norm over the last axis |
//! | [`attention`] | causal_attention: scaled dot-product attention with a causal mask, one node |
//! | [`gradcheck`] | central finite differences against the backward rules |

pub mod arith;
pub mod attention;
pub mod avgpool;
pub mod batchnorm;
pub mod broadcast;
pub mod conv;
pub mod conv_groups;
pub mod dropout;
pub mod embedding;
pub mod gated;
pub mod gradcheck;
pub mod layernorm;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod pool;
pub mod prelu;
pub mod reduce;
pub mod rnn;
pub mod shape;
pub mod softmax;
pub mod unary;
