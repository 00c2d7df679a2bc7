//! The layers of the model line, in one table: each layer's names, how an
//! item of the line becomes the layer (a `Plan`: its sizes checked before
//! anything is allocated), and how it is written (`usage`). The layers
//! print themselves back with [`Module::spec`],
//! which [`Sequential::parse`](crate::nn::Sequential::parse) reads.

use super::layers::{self, Activation};
use super::spec::Item;
use super::{Init, Module, MAX_MODEL_ELEMENTS, MAX_TENSOR_ELEMENTS};
use crate::Result;
use rand_chacha::ChaCha8Rng;

/// One layer of the model line.
pub struct LayerKind {
    /// Its name (PyTorch's, lowercase): `linear`, `maxpool2d`, `leaky_relu`.
    pub name: &'static str,
    /// Other names it answers to (`dense`, `view`).
    pub aliases: &'static [&'static str],
    /// How to write it, with its defaults: `linear(in_features,out_features,bias=true)`.
    pub usage: &'static str,
    /// The item as a layer to build.
    pub(crate) plan: fn(&Item, Init) -> Result<Plan>,
}

impl LayerKind {
    /// Whether a normalized item name (lowercase, no `_` or `-`) is this layer.
    fn answers(&self, name: &str) -> bool {
        let norm = |s: &str| s.replace('_', "");
        norm(self.name) == name || self.aliases.iter().any(|a| norm(a) == name)
    }
}

macro_rules! kind {
    ($name:literal, [$($alias:literal),*], $usage:literal, $plan:expr) => {
        LayerKind {
            name: $name,
            aliases: &[$($alias),*],
            usage: $usage,
            plan: $plan,
        }
    };
}

/// Every layer of the model line.
pub static LAYERS: [LayerKind; 30] = [
    kind!("flatten", [], "flatten", layers::plan_flatten),
    kind!(
        "reshape",
        ["unflatten", "view"],
        "reshape(d1,d2,…)",
        layers::plan_reshape
    ),
    kind!(
        "linear",
        ["dense"],
        "linear(in_features,out_features,bias=true)",
        layers::plan_linear
    ),
    kind!(
        "conv2d",
        [],
        "conv2d(in_channels,out_channels,kernel_size,stride=1,padding=0,bias=true,dilation=1,groups=1)",
        layers::plan_conv2d
    ),
    kind!(
        "maxpool2d",
        [],
        "maxpool2d(kernel_size,stride=kernel_size,padding=0)",
        layers::plan_maxpool2d
    ),
    kind!(
        "avgpool2d",
        [],
        "avgpool2d(kernel_size,stride=kernel_size,padding=0)",
        layers::plan_avgpool2d
    ),
    kind!(
        "adaptiveavgpool2d",
        [],
        "adaptiveavgpool2d(output_size)",
        layers::plan_adaptiveavgpool2d
    ),
    kind!(
        "batchnorm1d",
        [],
        "batchnorm1d(num_features,eps=1e-5,momentum=0.1)",
        layers::plan_batchnorm
    ),
    kind!(
        "batchnorm2d",
        [],
        "batchnorm2d(num_features,eps=1e-5,momentum=0.1)",
        layers::plan_batchnorm
    ),
    kind!(
        "layernorm",
        [],
        "layernorm(normalized_shape,eps=1e-5,bias=true)",
        layers::plan_layernorm
    ),
    kind!(
        "embedding",
        [],
        "embedding(num_embeddings,embedding_dim)",
        layers::plan_embedding
    ),
    kind!("dropout", [], "dropout(p=0.5)", layers::plan_dropout),
    kind!("dropout2d", [], "dropout2d(p=0.5)", layers::plan_dropout2d),
    kind!("identity", [], "identity", layers::plan_identity),
    kind!(
        "resblock",
        ["basicblock"],
        "resblock(in_channels,out_channels,stride=1)",
        layers::plan_resblock
    ),
    kind!(
        "gpt",
        [],
        "gpt(vocab=V,block=T,layers=4,heads=4,embd=128,bias=false,dropout=0)",
        super::gpt::plan_gpt
    ),
    kind!(
        "rnn",
        [],
        "rnn(input_size,hidden_size,layers=1,bias=true,last=true)",
        layers::plan_rnn
    ),
    kind!(
        "lstm",
        [],
        "lstm(input_size,hidden_size,layers=1,bias=true,last=false)",
        layers::plan_gated
    ),
    kind!(
        "gru",
        [],
        "gru(input_size,hidden_size,layers=1,bias=true,last=false)",
        layers::plan_gated
    ),
    kind!("relu", [], "relu", |i, _| act(i, Activation::relu())),
    kind!("sigmoid", [], "sigmoid", |i, _| act(
        i,
        Activation::sigmoid()
    )),
    kind!("tanh", [], "tanh", |i, _| act(i, Activation::tanh())),
    kind!(
        "leaky_relu",
        [],
        "leaky_relu(negative_slope=0.01)",
        layers::plan_leaky_relu
    ),
    kind!(
        "prelu",
        [],
        "prelu(num_parameters=1,init=0.25)",
        layers::plan_prelu
    ),
    kind!("elu", [], "elu(alpha=1.0)", layers::plan_elu),
    kind!("gelu", [], "gelu", |i, _| act(i, Activation::gelu())),
    kind!(
        "gelu_tanh",
        [],
        "gelu_tanh (GELU's tanh approximation)",
        |i, _| act(i, Activation::gelu_tanh())
    ),
    kind!("silu", ["swish"], "silu", |i, _| act(i, Activation::silu())),
    kind!("softmax", [], "softmax", layers::plan_softmax),
    kind!("log_softmax", [], "log_softmax", layers::plan_log_softmax),
];

/// The layer an item names (lowercase, `_` and `-` dropped), if any.
pub fn find(name: &str) -> Option<&'static LayerKind> {
    LAYERS.iter().find(|k| k.answers(name))
}

/// One item of a model line as a layer to build, its arguments and sizes
/// checked.
fn plan_layer(item: &Item, init: Init) -> Result<Plan> {
    match find(&item.name) {
        Some(kind) => (kind.plan)(item, init),
        None => {
            let names: Vec<&str> = LAYERS.iter().map(|k| k.name).collect();
            Err(item.err(format!(
                "unknown layer `{}`; the layers are {}",
                item.name,
                names.join(", ")
            )))
        }
    }
}

/// Allocates a planned layer, drawing its weights from the generator.
pub(crate) type Build = Box<dyn FnOnce(&mut ChaCha8Rng) -> Box<dyn Module>>;

/// A layer of a model line whose arguments and sizes have been checked but
/// whose weights are not allocated yet.
pub(crate) struct Plan {
    /// The values its parameters and buffers will hold.
    pub(crate) elements: usize,
    /// Allocate the layer, drawing its weights from the generator.
    pub(crate) build: Build,
}

impl Plan {
    pub(crate) fn new(
        elements: usize,
        build: impl FnOnce(&mut ChaCha8Rng) -> Box<dyn Module> + 'static,
    ) -> Plan {
        Plan {
            elements,
            build: Box::new(build),
        }
    }

    /// A layer with no parameters, already built (it allocates nothing).
    pub(crate) fn ready(m: impl Module + 'static) -> Plan {
        Plan::new(0, move |_| Box::new(m))
    }
}

/// Plan every item of a model line, then check the model's total size: the
/// plans and the total number of values.
pub(crate) fn plan_layers(items: &[Item], init: Init) -> Result<(Vec<Plan>, usize)> {
    let mut total = 0usize;
    let mut plans = Vec::with_capacity(items.len());
    for it in items {
        let plan = plan_layer(it, init)?;
        total += plan.elements; // each is at most 2^33, fewer than 2^31 items: no overflow
        if total > MAX_MODEL_ELEMENTS {
            return Err(it.err(format!(
                "the model's parameters and buffers up to this layer would hold {total} values, \
                 more than the {MAX_MODEL_ELEMENTS} (2^32) a model line may allocate; use smaller layers"
            )));
        }
        plans.push(plan);
    }
    Ok((plans, total))
}

/// The values the named tensors of `item` would hold, each checked against
/// [`MAX_TENSOR_ELEMENTS`] before anything is allocated.
pub(crate) fn tensor_sizes(item: &Item, tensors: &[(&str, &[usize])]) -> Result<usize> {
    let mut total = 0;
    for &(name, dims) in tensors {
        let n = dims.iter().fold(1u128, |a, &d| a.saturating_mul(d as u128));
        if n > MAX_TENSOR_ELEMENTS as u128 {
            let shape = dims
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("×");
            return Err(item.err(format!(
                "its {name} would be {shape} = {n} values, more than the {MAX_TENSOR_ELEMENTS} (2^31) \
                 one tensor may hold; use smaller sizes"
            )));
        }
        total += n as usize;
    }
    Ok(total)
}

/// The values a bias of `n` holds (checked), 0 without one.
pub(crate) fn bias_size(item: &Item, bias: bool, n: usize) -> Result<usize> {
    if bias {
        tensor_sizes(item, &[("bias", &[n])])
    } else {
        Ok(0)
    }
}

/// An optional whole-number argument with a default and a minimum.
pub(crate) fn opt_usize(
    item: &Item,
    i: usize,
    kw: &str,
    default: usize,
    min: usize,
) -> Result<usize> {
    let given = item.kwargs.iter().any(|(k, _)| k == kw) || item.args.len() > i;
    if !given {
        return Ok(default);
    }
    let v = item.f32_arg(i, kw).unwrap_or(0.0) as f64;
    if v < min as f64 || v.fract() != 0.0 || v > 1e6 {
        return Err(item.err(format!("{kw} must be a whole number ≥ {min}, got {v}")));
    }
    Ok(v as usize)
}

/// An activation without arguments (`relu`, `sigmoid`, `tanh`).
fn act(item: &Item, a: Activation) -> Result<Plan> {
    item.expect_args(0, &["inplace"], &item.name)?;
    Ok(Plan::ready(a))
}
