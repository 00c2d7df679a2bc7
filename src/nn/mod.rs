//! Models: the [`Module`] trait and the built-in layers, [`Sequential`]
//! and the one-line model spec, initialization, parameter names.
//!
//! A model is Rust code: any [`Module`]. Its parameters and buffers carry
//! PyTorch's `state_dict` names (`1.weight`, `block.0.running_mean`), so a
//! model saves to, and loads from, the `state_dict()` of its PyTorch twin
//! with no name mapping. The model line
//! (`flatten,linear(784,128),relu,linear(128,10)`) is one way to build one:
//! it parses into a [`Sequential`] whose layer *i* owns `i.weight`, `i.bias`,
//! … exactly as `nn.Sequential` does.

pub mod checkpoint;
pub mod gpt;
pub mod init;
pub mod layers;
pub mod module;
pub mod registry;
pub mod spec;

pub use gpt::{Gpt, GptConfig};
pub use init::Init;
pub use layers::{
    Activation, ActivationKind, AdaptiveAvgPool2d, AvgPool2d, BatchNorm, BatchNorm1d, BatchNorm2d,
    Block, BlockConfig, CausalSelfAttention, Conv2d, Conv2dConfig, Dropout, Dropout2d, Embedding,
    EmbeddingConfig, Flatten, GatedConfig, GatedRnn, Gru, Identity, LayerNorm, Linear,
    LinearConfig, Lstm, MaxPool2d, Mlp, PRelu, ResBlock, Reshape, Rnn, RnnConfig,
};
pub use module::{
    named_modules, Buffer, Entry, EntryMut, LayerOutput, Mode, Module, ModuleExt, OutputKind,
    Param, Pass, Visitor, VisitorMut,
};

use crate::{Error, Result, Var};
use rand_chacha::ChaCha8Rng;
use registry::plan_layers;

/// Modules run one after the other (`nn.Sequential`); child *i* is named `i`.
///
/// Built from a model line by [`Sequential::parse`], or in Rust:
///
/// ```
/// use backprop::nn::{Activation, Flatten, Linear, ModuleExt, Sequential};
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let a = Sequential::parse("flatten,linear(4,3),relu,linear(3,2)", Default::default(), &mut rng).unwrap();
/// let names: Vec<String> = a.parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["1.weight", "1.bias", "3.weight", "3.bias"]);
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let b = Sequential::new()
///     .push(Flatten::new())
///     .push(Linear::new(4, 3).init(&mut rng))
///     .push(Activation::relu())
///     .push(Linear::new(3, 2).init(&mut rng));
/// assert_eq!(a.state_dict(), b.state_dict()); // the same draws, the same names
/// assert_eq!(b.line().unwrap(), "flatten,linear(4,3),relu,linear(3,2)");
/// ```
#[derive(Clone, Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
    /// Each layer as written in the model line (for error messages).
    texts: Vec<Option<String>>,
    /// The model line it was built from (after preset expansion).
    line: Option<String>,
    /// Layer ranges whose activations are not kept for the backward pass but
    /// recomputed during it (gradient checkpointing); see [`checkpoint`].
    pub checkpoints: Vec<std::ops::Range<usize>>,
}

impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sequential({})", self.describe())
    }
}

impl Sequential {
    /// An empty sequence (the identity).
    pub fn new() -> Sequential {
        Sequential::default()
    }

    /// Append a layer.
    pub fn push(mut self, m: impl Module + 'static) -> Sequential {
        self.layers.push(Box::new(m));
        self.texts.push(None);
        self.line = None;
        self
    }

    /// Build a model from a model line or preset name, drawing weights with
    /// `init` in layer order.
    ///
    /// Every item is checked before any weight is allocated: no tensor may
    /// hold more than [`MAX_TENSOR_ELEMENTS`] values and the whole model no
    /// more than [`MAX_MODEL_ELEMENTS`]; a layer over either limit is an
    /// [`Error::Spec`] naming the layer.
    pub fn parse(line: &str, init: Init, rng: &mut ChaCha8Rng) -> Result<Sequential> {
        let spec = spec::expand_preset(line);
        let items = spec::parse(&spec)?;
        let (plans, values) = plan_layers(&items, init)?;
        crate::mem::reserve(
            values.saturating_mul(4),
            &format!("the model's {values} parameters and buffers (float32)"),
            "use smaller layers",
        )?;
        let mut layers = Vec::with_capacity(items.len());
        let mut texts = Vec::with_capacity(items.len());
        for (it, plan) in items.into_iter().zip(plans) {
            layers.push((plan.build)(rng));
            texts.push(Some(it.text));
        }
        Ok(Sequential {
            layers,
            texts,
            line: Some(spec),
            checkpoints: Vec::new(),
        })
    }

    /// Check a model line (or preset name) exactly as [`Sequential::parse`]
    /// does, without allocating or drawing any weight: the number of values
    /// the model's parameters and buffers would hold. `parse` accepts exactly
    /// the lines this accepts.
    ///
    /// ```
    /// use backprop::nn::Sequential;
    /// assert_eq!(Sequential::check_line("mlp").unwrap(), 784 * 128 + 128 + 128 * 10 + 10);
    /// let e = Sequential::check_line("flatten,linear(1000000000,1000000000)").unwrap_err();
    /// assert!(e.to_string().contains("layer 1 `linear(1000000000,1000000000)`"));
    /// ```
    pub fn check_line(line: &str) -> Result<usize> {
        let items = spec::parse(&spec::expand_preset(line))?;
        Ok(plan_layers(&items, Init::Default)?.1)
    }

    /// The model line: as given to [`Sequential::parse`] (presets
    /// expanded), else the layers' [`spec`](Module::spec)s joined by commas
    /// (`None` if a layer has none).
    pub fn line(&self) -> Option<String> {
        if let Some(l) = &self.line {
            return Some(l.clone());
        }
        let items: Option<Vec<String>> = self.layers.iter().map(|l| l.spec()).collect();
        items.map(|v| v.join(","))
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Layer `i`.
    pub fn layer(&self, i: usize) -> &dyn Module {
        &*self.layers[i]
    }

    /// Layer `i` as written in the model line, or its description.
    pub fn layer_text(&self, i: usize) -> String {
        self.texts[i]
            .clone()
            .unwrap_or_else(|| self.layers[i].describe())
    }

    /// "layer 2 `linear(784)`": how errors point at a layer.
    fn at(&self, i: usize) -> String {
        format!("layer {i} `{}`", self.layer_text(i))
    }

    /// A layer's error, pointing at the layer.
    fn wrap(&self, i: usize, e: Error) -> Error {
        match e {
            Error::Spec(m) => Error::Spec(format!("{}: {m}", self.at(i))),
            other => other,
        }
    }

    /// The per-sample input shape of every layer, then the model's output
    /// shape (`len() + 1` entries); errors name the layer and the shapes.
    pub fn shapes(&self, sample: &[usize]) -> Result<Vec<Vec<usize>>> {
        let mut s = sample.to_vec();
        let mut all = Vec::with_capacity(self.layers.len() + 1);
        for (i, l) in self.layers.iter().enumerate() {
            all.push(s.clone());
            s = l.output_shape(&s).map_err(|e| self.wrap(i, e))?;
            if layers::numel(&s).is_none_or(|n| n > MAX_TENSOR_ELEMENTS) {
                return Err(self.wrap(
                    i,
                    Error::Spec(format!(
                        "its output {} holds more than {MAX_TENSOR_ELEMENTS} (2^31) values per sample, \
                         more than one tensor may hold; use smaller layers",
                        layers::fmt_shape(&s)
                    )),
                ));
            }
        }
        all.push(s);
        Ok(all)
    }
}

impl Module for Sequential {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let mut h = x;
        let mut i = 0;
        while i < self.layers.len() {
            let seg = self
                .checkpoints
                .iter()
                .find(|r| r.start == i && r.end > r.start && r.end <= self.layers.len());
            match seg {
                Some(r) if p.grad_enabled() => {
                    h = checkpoint::segment(p, &self.layers[r.clone()], h);
                    i = r.end;
                }
                _ => {
                    h = self.layers[i].forward(p, h);
                    i += 1;
                }
            }
        }
        h
    }

    fn visit<'m>(&'m self, v: &mut Visitor<'_, 'm>) {
        if let [only] = &self.layers[..] {
            if only.names_at_root() {
                return only.visit(v);
            }
        }
        for (i, l) in self.layers.iter().enumerate() {
            v.module(&i.to_string(), &**l);
        }
    }

    fn visit_mut(&mut self, v: &mut VisitorMut<'_>) {
        if let [only] = &mut self.layers[..] {
            if only.names_at_root() {
                return only.visit_mut(v);
            }
        }
        for (i, l) in self.layers.iter_mut().enumerate() {
            v.module(&i.to_string(), &mut **l);
        }
    }

    fn spec(&self) -> Option<String> {
        self.line()
    }

    fn checkpoint_blocks(&mut self) -> usize {
        self.layers.iter_mut().map(|l| l.checkpoint_blocks()).sum()
    }

    fn describe(&self) -> String {
        self.line().unwrap_or_else(|| {
            let parts: Vec<String> = self.layers.iter().map(|l| l.describe()).collect();
            parts.join(",")
        })
    }

    fn output_shape(&self, sample: &[usize]) -> Result<Vec<usize>> {
        Ok(self.shapes(sample)?.pop().expect("at least the input"))
    }

    fn activation_values(&self, sample: &[usize]) -> Result<usize> {
        let shapes = self.shapes(sample)?;
        let mut total = 0usize;
        for (i, (l, s)) in self.layers.iter().zip(&shapes).enumerate() {
            let n = l.activation_values(s).map_err(|e| self.wrap(i, e))?;
            total = total.saturating_add(n);
        }
        Ok(total)
    }

    fn check_batch(&self, sample: &[usize], batch: usize) -> Result<()> {
        let shapes = self.shapes(sample)?;
        for (i, (l, s)) in self.layers.iter().zip(&shapes).enumerate() {
            l.check_batch(s, batch).map_err(|e| self.wrap(i, e))?;
        }
        Ok(())
    }

    fn output_kind(&self) -> OutputKind {
        self.layers
            .last()
            .map_or(OutputKind::Logits, |l| l.output_kind())
    }

    fn input_shape_hint(&self) -> Option<Vec<usize>> {
        self.layers.first().and_then(|l| l.input_shape_hint())
    }

    fn input_vocab(&self) -> Option<usize> {
        self.layers.first().and_then(|l| l.input_vocab())
    }

    fn input_context(&self) -> Option<usize> {
        self.layers.first().and_then(|l| l.input_context())
    }
}

/// The most values one tensor (a weight, a bias, a buffer) of a model built
/// from a model line may hold: 2^31, 8 GiB of `f32`. A `reshape` to a larger
/// per-sample shape is refused too.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 31;

/// The most values the parameters and buffers of a model built from a model
/// line may hold together: 2^32, 16 GiB of `f32`.
pub const MAX_MODEL_ELEMENTS: usize = 1 << 32;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn model(line: &str) -> Result<Sequential> {
        Sequential::parse(line, Init::Default, &mut ChaCha8Rng::seed_from_u64(0))
    }

    #[test]
    fn shape_errors_name_the_layer_and_both_shapes() {
        let m = model("linear(784,128),relu").unwrap();
        let e = m.output_shape(&[1, 28, 28]).unwrap_err().to_string();
        assert!(e.contains("layer 0 `linear(784,128)`"), "{e}");
        assert!(
            e.contains("[N, 784]") && e.contains("[N, 1, 28, 28]") && e.contains("flatten"),
            "{e}"
        );
        let m = model("flatten,linear(784,128),relu,linear(100,10)").unwrap();
        let e = m.output_shape(&[1, 28, 28]).unwrap_err().to_string();
        assert!(e.contains("layer 3") && e.contains("[N, 128]"), "{e}");
    }

    #[test]
    fn spec_errors() {
        for (line, want) in [
            ("flatten,linear(784),relu", "missing out_features"),
            ("linear(784,-3)", "positive whole number"),
            ("flatten,relu2", "unknown layer `relu2`"),
            ("conv2d(1,6)", "missing kernel_size"),
            ("relu(3)", "at most 0 argument"),
        ] {
            let e = model(line).unwrap_err().to_string();
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn layer_shape_errors_name_the_layer_and_the_shapes() {
        for (line, sample, want) in [
            (
                "conv2d(1,6,7)",
                vec![1, 5, 5],
                vec!["layer 0", "kernel 7×7 is larger than the padded input 5×5"],
            ),
            (
                "conv2d(3,6,5)",
                vec![1, 28, 28],
                vec!["layer 0", "3 input channels", "[N, 1, 28, 28]"],
            ),
            (
                "conv2d(1,6,5)",
                vec![784],
                vec!["images [N, C, H, W]", "reshape(1,28,28)"],
            ),
            ("maxpool2d(4)", vec![1, 3, 3], vec!["window 4×4", "3×3"]),
            (
                "rnn(28,16)",
                vec![1, 28, 28],
                vec!["[N, T, 28]", "[N, 1, 28, 28]", "reshape(28,28)"],
            ),
            (
                "flatten,linear(784,8),batchnorm1d(16)",
                vec![1, 28, 28],
                vec!["layer 2", "[N, 16]", "[N, 8]"],
            ),
            ("batchnorm2d(3)", vec![3, 4], vec!["[N, 3, H, W]"]),
        ] {
            let e = model(line)
                .unwrap()
                .output_shape(&sample)
                .unwrap_err()
                .to_string();
            for w in want {
                assert!(e.contains(w), "{line} on {sample:?}: `{w}` not in: {e}");
            }
        }
        let e = model("maxpool2d(2,padding=2)").unwrap_err().to_string();
        assert!(e.contains("padding 2 must be at most half"), "{e}");
        let e = model("dropout(1.5)").unwrap_err().to_string();
        assert!(e.contains("[0, 1]"), "{e}");
    }

    #[test]
    fn batch_norm_refuses_a_training_batch_of_one() {
        let m = model("flatten,linear(4,3),batchnorm1d(3)").unwrap();
        assert!(m.check_batch(&[4], 64).is_ok());
        assert!(m.check_batch(&[4], 2).is_ok());
        let e = m.check_batch(&[4], 1).unwrap_err().to_string();
        assert!(e.contains("layer 2") && e.contains("batch of 1"), "{e}");
        // Two-d batch norm has H·W values per channel even for one sample.
        let m = model("batchnorm2d(1)").unwrap();
        assert!(m.check_batch(&[1, 2, 2], 1).is_ok());
    }

    #[test]
    fn sizes_over_the_caps_are_refused_before_allocating() {
        // Found by review for the fuzzing issue: these used to try to allocate
        // 4·10^18 bytes (an abort), or to overflow a shape product (a panic).
        for (line, want) in [
            (
                "flatten,linear(1000000000,1000000000)",
                "layer 1 `linear(1000000000,1000000000)`: its weight would be 1000000000×1000000000 = \
                 1000000000000000000 values, more than the 2147483648 (2^31)",
            ),
            (
                "conv2d(1000,1000,1000)",
                "layer 0 `conv2d(1000,1000,1000)`: its weight would be 1000×1000×1000×1000",
            ),
            ("rnn(10,100000)", "its weight_hh_l0 would be 100000×100000"),
            (
                "reshape(1000000,1000000,1000000)",
                "the shape holds 1000000000000000000 values per sample",
            ),
            (
                "linear(46000,46000),linear(46000,46000),linear(46000,46000)",
                "layer 2 `linear(46000,46000)`: the model's parameters and buffers up to this layer \
                 would hold 6348138000 values, more than the 4294967296 (2^32)",
            ),
        ] {
            let e = model(line).unwrap_err().to_string();
            assert!(e.contains(want), "{line}: {e}");
            assert_eq!(Sequential::check_line(line).unwrap_err().to_string(), e);
        }
        // at the cap is fine to check (but not built here: 8 GiB)
        assert_eq!(
            Sequential::check_line("linear(32768,65536,bias=false)").unwrap(),
            MAX_TENSOR_ELEMENTS
        );
        assert!(Sequential::check_line("linear(32768,65537,bias=false)").is_err());
        // batch norm: 4 vectors and a counter
        assert_eq!(Sequential::check_line("batchnorm2d(6)").unwrap(), 25);
    }

    #[test]
    fn check_line_counts_what_parse_allocates() {
        for line in [
            "mlp",
            "lenet",
            "rnn",
            "mlp-bn",
            "conv2d(1,4,3,stride=2,bias=false),batchnorm2d(4),maxpool2d(2),flatten,linear(36,10,bias=0)",
            "reshape(28,28),rnn(28,16,bias=false),prelu(16),linear(16,10)",
            "embedding(65,8),layernorm(8),gelu_tanh,layernorm(8,bias=false),flatten,linear(64,3)",
            "embedding(65,8),lstm(8,16,layers=2),gru(16,8,bias=false,last=true),linear(8,65)",
            "reshape(28,28),rnn(28,16,layers=3,last=false),rnn(16,8,bias=false),linear(8,10)",
        ] {
            let n = Sequential::check_line(line).unwrap();
            let held: usize = model(line)
                .unwrap()
                .state_dict()
                .iter()
                .map(|(_, t)| t.data().len())
                .sum();
            assert_eq!(n, held, "{line}");
        }
    }

    #[test]
    fn huge_per_sample_shapes_are_errors_not_overflows() {
        // conv2d with huge padding: its output per sample is refused
        let m = model("conv2d(1,10000000,1,padding=1000000),flatten").unwrap();
        let e = m.output_shape(&[1, 28, 28]).unwrap_err().to_string();
        assert!(e.contains("layer 0") && e.contains("2^31"), "{e}");
        let m = model("conv2d(1,2000,1,padding=1000000),flatten").unwrap();
        let e = m.output_shape(&[1, 28, 28]).unwrap_err().to_string();
        assert!(
            e.contains("layer 0 `conv2d(1,2000,1,padding=1000000)`")
                && e.contains("[N, 2000, 2000028, 2000028]")
                && e.contains("2^31"),
            "{e}"
        );
        let f = Flatten::new();
        let e = f.output_shape(&[usize::MAX, 2]).unwrap_err().to_string();
        assert!(
            e.contains("more values per sample than can be counted"),
            "{e}"
        );
        let r = Reshape::new(&[usize::MAX, 3]);
        let e = r.output_shape(&[4]).unwrap_err().to_string();
        assert!(e.contains("too many to count"), "{e}");
    }

    #[test]
    fn presets_expand() {
        let m = model("mlp").unwrap();
        assert_eq!(
            m.line().unwrap(),
            "flatten,linear(784,128),relu,linear(128,10)"
        );
        assert_eq!(m.num_parameters(), 784 * 128 + 128 + 128 * 10 + 10);
    }

    #[test]
    fn every_layer_describes_itself_as_its_model_line_item() {
        let line =
            "conv2d(1,6,5,padding=2),relu,maxpool2d(2),batchnorm2d(6),flatten,dropout(0.25),\
                    linear(1176,32),tanh,prelu,reshape(4,8),rnn(8,16),linear(16,10),log_softmax";
        let m = model(line).unwrap();
        let again = model(
            &m.layers
                .iter()
                .map(|l| l.describe())
                .collect::<Vec<_>>()
                .join(","),
        )
        .unwrap();
        assert_eq!(m.state_dict().len(), again.state_dict().len());
        for ((a, ta), (b, tb)) in m.state_dict().iter().zip(again.state_dict().iter()) {
            assert_eq!((a, ta.shape()), (b, tb.shape()));
        }
        assert_eq!(m.output_shape(&[1, 28, 28]).unwrap(), vec![10]);
        assert_eq!(m.output_kind(), OutputKind::LogProbabilities);
    }

    #[test]
    fn a_sequence_line_describes_itself_and_checks_its_ids() {
        let line = "embedding(7,4),layernorm(4,eps=0.001),silu,layernorm(4,bias=false),lstm(4,4,layers=2),\
                    gru(4,4,bias=false),flatten,linear(12,2)";
        let m = model(line).unwrap();
        assert_eq!(m.line().unwrap(), line);
        assert_eq!(m.output_shape(&[3]).unwrap(), vec![2]);
        let names: Vec<String> = m.state_dict().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 4 + 8 + 2 + 2);
        assert_eq!(
            names[4..7],
            ["4.weight_ih_l0", "4.weight_hh_l0", "4.bias_ih_l0"]
        );
        assert_eq!(names[14..], ["7.weight", "7.bias"]);
        assert_eq!(m.input_vocab(), Some(7));
        assert_eq!(model("mlp").unwrap().input_vocab(), None);
    }

    #[test]
    fn a_sequence_model_gradient_matches_finite_differences() {
        let m = model("embedding(5,4),layernorm(4),gelu,flatten,linear(12,2)").unwrap();
        let ids: Vec<f32> = [0, 3, 4, 1, 1, 2].iter().map(|&i| i as f32).collect();
        let x = crate::Tensor::from_vec(vec![2, 3], ids);
        let cfg = crate::inspect::gradcheck::CheckConfig {
            sample_shape: vec![3],
            batch: 2,
            seed: 0,
            samples: 0,
            tolerance: 2e-3,
        };
        let res = crate::inspect::gradcheck::check_module(&m, &x, &cfg);
        assert_eq!(res.len(), 5);
        assert!(res.iter().all(|p| p.worst.error < 2e-3), "{res:?}");
    }

    #[test]
    fn whole_model_gradient_matches_finite_differences() {
        let m =
            model("flatten,linear(6,5),tanh,linear(5,4),prelu,linear(4,3),elu,linear(3,2),sigmoid")
                .unwrap();
        let x = crate::ops::gradcheck::pseudo_random(&[3, 2, 3], 9);
        let cfg = crate::inspect::gradcheck::CheckConfig {
            sample_shape: vec![2, 3],
            batch: 3,
            seed: 0,
            samples: 0,
            tolerance: 2e-3,
        };
        let res = crate::inspect::gradcheck::check_module(&m, &x, &cfg);
        assert!(res.iter().all(|p| p.worst.error < 2e-3), "{res:?}");
    }
}
