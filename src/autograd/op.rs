//! What made a node of the tape: one enum, so that the tape viewer, the
//! diagnostics and the gradient check ask the op ([`Op::kinked`],
//! [`Op::activation`]) instead of matching its name in several places.

/// The op that produced a node. Built-in ops have their own variant; an op
/// written outside the crate ([`Graph::push`](super::Graph::push) with a
/// name) is [`Op::Custom`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// An input or a parameter.
    Leaf,
    /// `a + b` (broadcasting).
    Add,
    /// `a − b`.
    Sub,
    /// `a ⊙ b`.
    Mul,
    /// `a / b`.
    Div,
    /// `eˣ`.
    Exp,
    /// `ln x`.
    Log,
    /// `1 / (1 + e⁻ˣ)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `max(x, 0)`.
    Relu,
    /// `x` or `slope·x`.
    LeakyRelu,
    /// `x` or `α(eˣ − 1)`.
    Elu,
    /// `x` or `a·x` with a learned `a`.
    PRelu,
    /// `x·Φ(x)` (either form).
    Gelu,
    /// `x·σ(x)`.
    Silu,
    /// Softmax over the last axis.
    Softmax,
    /// Log-softmax over the last axis.
    LogSoftmax,
    /// A sum (of all values or along an axis).
    Sum,
    /// A mean (of all values or along an axis).
    Mean,
    /// The same values in another shape.
    Reshape,
    /// Two axes swapped.
    Transpose,
    /// A slice along one axis.
    Narrow,
    /// Tensors joined along one axis.
    Concat,
    /// Rows of a table by id.
    Embedding,
    /// Layer normalization over the last axis.
    LayerNorm,
    /// Causal scaled dot-product attention.
    Attention,
    /// Causal multi-head self-attention from fused `[q | k | v]` rows.
    SelfAttention,
    /// `√x`.
    Sqrt,
    /// `|x|`.
    Abs,
    /// `xᵖ`.
    Pow,
    /// `x` limited to `[lo, hi]`.
    Clamp,
    /// The larger of `a` and `b`, elementwise.
    Maximum,
    /// The smaller of `a` and `b`, elementwise.
    Minimum,
    /// Entries along an axis by index.
    IndexSelect,
    /// Entries along an axis by an index tensor of the output's shape.
    Gather,
    /// Entries replaced where a mask is set.
    MaskedFill,
    /// Mean absolute error.
    L1,
    /// The Huber loss.
    Huber,
    /// Negative log-likelihood of log-probabilities.
    Nll,
    /// An LSTM's recurrence over a sequence.
    Lstm,
    /// A GRU's recurrence over a sequence.
    Gru,
    /// A matrix product (2-d or batched).
    Matmul,
    /// `x·Wᵀ + b`.
    Linear,
    /// A 2-d convolution.
    Conv2d,
    /// 2-d max pooling.
    MaxPool2d,
    /// 2-d average pooling (fixed or adaptive windows).
    AvgPool2d,
    /// A kernel spread out with zeros between its taps (dilation).
    DilateKernel,
    /// Batch normalization (1-d or 2-d).
    BatchNorm,
    /// Dropout.
    Dropout,
    /// A tanh RNN over a sequence.
    RnnTanh,
    /// Mean squared error.
    Mse,
    /// Binary cross-entropy on probabilities.
    Bce,
    /// Binary cross-entropy on logits.
    BceWithLogits,
    /// Softmax cross-entropy with class labels.
    CrossEntropy,
    /// Softmax cross-entropy with class probabilities as targets.
    CrossEntropyProbs,
    /// An op defined outside the crate, by its name.
    Custom(&'static str),
}

/// The elementwise nonlinearities, as the diagnostics tell them apart
/// (dead units after a ReLU, saturated ones after a sigmoid or tanh).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// ReLU.
    Relu,
    /// Leaky ReLU.
    LeakyRelu,
    /// PReLU.
    PRelu,
    /// ELU.
    Elu,
    /// The logistic sigmoid.
    Sigmoid,
    /// tanh.
    Tanh,
    /// GELU.
    Gelu,
    /// SiLU.
    Silu,
}

impl Op {
    /// The op's name, as the tape viewer and reports show it (PyTorch's
    /// functional names: `linear`, `max_pool2d`, `cross_entropy`).
    pub fn name(self) -> &'static str {
        match self {
            Op::Leaf => "leaf",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::Exp => "exp",
            Op::Log => "log",
            Op::Sigmoid => "sigmoid",
            Op::Tanh => "tanh",
            Op::Relu => "relu",
            Op::LeakyRelu => "leaky_relu",
            Op::Elu => "elu",
            Op::PRelu => "prelu",
            Op::Gelu => "gelu",
            Op::Silu => "silu",
            Op::Softmax => "softmax",
            Op::LogSoftmax => "log_softmax",
            Op::Sum => "sum",
            Op::Mean => "mean",
            Op::Reshape => "reshape",
            Op::Transpose => "transpose",
            Op::Narrow => "narrow",
            Op::Concat => "concat",
            Op::Embedding => "embedding",
            Op::LayerNorm => "layer_norm",
            Op::Attention => "scaled_dot_product_attention",
            Op::SelfAttention => "causal_self_attention",
            Op::Sqrt => "sqrt",
            Op::Abs => "abs",
            Op::Pow => "pow",
            Op::Clamp => "clamp",
            Op::Maximum => "maximum",
            Op::Minimum => "minimum",
            Op::IndexSelect => "index_select",
            Op::Gather => "gather",
            Op::MaskedFill => "masked_fill",
            Op::L1 => "l1_loss",
            Op::Huber => "huber_loss",
            Op::Nll => "nll_loss",
            Op::Lstm => "lstm",
            Op::Gru => "gru",
            Op::Matmul => "matmul",
            Op::Linear => "linear",
            Op::Conv2d => "conv2d",
            Op::MaxPool2d => "max_pool2d",
            Op::AvgPool2d => "avg_pool2d",
            Op::DilateKernel => "dilate_kernel",
            Op::BatchNorm => "batch_norm",
            Op::Dropout => "dropout",
            Op::RnnTanh => "rnn_tanh",
            Op::Mse => "mse",
            Op::Bce => "bce",
            Op::BceWithLogits => "bce_with_logits",
            Op::CrossEntropy => "cross_entropy",
            Op::CrossEntropyProbs => "cross_entropy_probs",
            Op::Custom(name) => name,
        }
    }

    /// Whether the op's derivative jumps somewhere (a kink): finite
    /// differences across it are wrong, so a gradient check is looser.
    pub fn kinked(self) -> bool {
        matches!(
            self,
            Op::Relu
                | Op::LeakyRelu
                | Op::PRelu
                | Op::MaxPool2d
                | Op::Abs
                | Op::Clamp
                | Op::Maximum
                | Op::Minimum
        )
    }

    /// The nonlinearity this op is, if it is one.
    pub fn activation(self) -> Option<Activation> {
        Some(match self {
            Op::Relu => Activation::Relu,
            Op::LeakyRelu => Activation::LeakyRelu,
            Op::PRelu => Activation::PRelu,
            Op::Elu => Activation::Elu,
            Op::Sigmoid => Activation::Sigmoid,
            Op::Tanh => Activation::Tanh,
            Op::Gelu => Activation::Gelu,
            Op::Silu => Activation::Silu,
            _ => return None,
        })
    }

    /// Whether this is a loss (its output is the scalar a backward pass
    /// starts from).
    pub fn is_loss(self) -> bool {
        matches!(
            self,
            Op::Mse
                | Op::Bce
                | Op::BceWithLogits
                | Op::CrossEntropy
                | Op::CrossEntropyProbs
                | Op::L1
                | Op::Huber
                | Op::Nll
        )
    }
}

impl From<&'static str> for Op {
    /// An op of the crate by its name, else [`Op::Custom`].
    fn from(name: &'static str) -> Op {
        ALL.iter()
            .copied()
            .find(|op| op.name() == name)
            .unwrap_or(Op::Custom(name))
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every built-in op (not [`Op::Custom`]).
const ALL: [Op; 55] = [
    Op::Leaf,
    Op::Add,
    Op::Sub,
    Op::Mul,
    Op::Div,
    Op::Exp,
    Op::Log,
    Op::Sigmoid,
    Op::Tanh,
    Op::Relu,
    Op::LeakyRelu,
    Op::Elu,
    Op::PRelu,
    Op::Gelu,
    Op::Silu,
    Op::Softmax,
    Op::LogSoftmax,
    Op::Sum,
    Op::Mean,
    Op::Reshape,
    Op::Transpose,
    Op::Narrow,
    Op::Concat,
    Op::Embedding,
    Op::LayerNorm,
    Op::Attention,
    Op::SelfAttention,
    Op::Sqrt,
    Op::Abs,
    Op::Pow,
    Op::Clamp,
    Op::Maximum,
    Op::Minimum,
    Op::IndexSelect,
    Op::Gather,
    Op::MaskedFill,
    Op::L1,
    Op::Huber,
    Op::Nll,
    Op::Lstm,
    Op::Gru,
    Op::Matmul,
    Op::Linear,
    Op::Conv2d,
    Op::MaxPool2d,
    Op::AvgPool2d,
    Op::DilateKernel,
    Op::BatchNorm,
    Op::Dropout,
    Op::RnnTanh,
    Op::Mse,
    Op::Bce,
    Op::BceWithLogits,
    Op::CrossEntropy,
    Op::CrossEntropyProbs,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_custom_ops_keep_theirs() {
        for op in ALL {
            assert_eq!(Op::from(op.name()), op);
        }
        assert_eq!(Op::from("swish"), Op::Custom("swish"));
        assert_eq!(Op::Custom("swish").name(), "swish");
        assert!(Op::Relu.kinked() && !Op::Tanh.kinked());
        assert_eq!(Op::Tanh.activation(), Some(Activation::Tanh));
        assert_eq!(Op::Linear.activation(), None);
    }
}
