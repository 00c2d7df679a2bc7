//! Models as Rust code: the [`Module`] trait, [`Param`]eters and
//! [`Buffer`]s with PyTorch's dotted names, and one forward pass ([`Pass`]).
//!
//! A module is a plain struct. It says how it runs ([`Module::forward`], on
//! a [`Pass`]) and what it holds ([`Module::visit`]: its parameters, its
//! buffers and its child modules, each under a name). The names come from the
//! structure, as in PyTorch: a child `block` holding a `Sequential` whose
//! layer 0 has a `weight` owns `block.0.weight`. That one walk drives
//! everything that needs the parameters in a fixed order: the optimizer
//! state, saving and loading, the per-layer diagnostics.
//!
//! The training loop a user writes is forward, loss, backward, step:
//!
//! ```
//! use backprop::prelude::*;
//! use rand::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let mut model = Sequential::new()
//!     .push(Linear::new(4, 8).init(&mut rng))
//!     .push(Activation::relu())
//!     .push(Linear::new(8, 3).init(&mut rng));
//! let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam));
//! let x = Tensor::from_vec(vec![2, 4], vec![0.5; 8]);
//! let before = model.predict(&x);
//! for step in 0..5 {
//!     let mut p = Pass::train(&model, step);           // records a graph
//!     let input = p.input(x.clone());
//!     let out = model.forward(&mut p, input);
//!     let loss = p.cross_entropy(out, &[0, 2]);
//!     let grads = p.backward(loss);                     // the graph is gone now
//!     opt.step(&mut model, grads);                      // parameters and buffers
//! }
//! assert_ne!(model.predict(&x), before);
//! ```
//!
//! A user's struct of modules becomes a module with [`submodules!`](crate::submodules)
//! (see `examples/residual.rs`); a layer of one's own lists its tensors with
//! [`Visitor::param`] and [`Visitor::buffer`] (see `examples/custom_op.rs`).

use crate::autograd::{GradTable, ParamGrads};
use crate::dist::Collective;
use crate::{Error, Graph, Result, Tensor, Var};
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A trainable tensor of a module.
///
/// A graph shares its value while a pass is alive (no copy); the optimizer
/// writes it in place after [`Pass::backward`] has dropped the graph. A
/// clone is a new parameter with the same value: to use one weight in two
/// places, call the same module twice.
#[derive(Debug)]
pub struct Param {
    id: u64,
    value: Arc<Tensor>,
}

impl Param {
    /// A parameter holding `value`.
    pub fn new(value: Tensor) -> Param {
        Param {
            id: next_id(),
            value: Arc::new(value),
        }
    }

    /// The current value.
    pub fn value(&self) -> &Tensor {
        &self.value
    }

    /// Mutable access to the value (copied first only if a live graph still
    /// shares it).
    pub fn value_mut(&mut self) -> &mut Tensor {
        Arc::make_mut(&mut self.value)
    }

    /// Replace the value.
    pub fn set(&mut self, value: Tensor) {
        self.value = Arc::new(value);
    }

    pub(crate) fn shared(&self) -> Arc<Tensor> {
        self.value.clone()
    }
}

impl Clone for Param {
    fn clone(&self) -> Param {
        Param {
            id: next_id(),
            value: self.value.clone(),
        }
    }
}

/// A tensor a module keeps and saves but does not train (batch norm's
/// running statistics). Forward passes never write it: they hand new values
/// to [`Pass::update_buffer`], and [`Optimizer::step`](crate::optim::Optimizer::step)
/// stores them with the parameters' update.
#[derive(Debug)]
pub struct Buffer {
    id: u64,
    value: Tensor,
}

impl Buffer {
    /// A buffer holding `value`.
    pub fn new(value: Tensor) -> Buffer {
        Buffer {
            id: next_id(),
            value,
        }
    }

    /// The current value.
    pub fn value(&self) -> &Tensor {
        &self.value
    }

    /// Replace the value.
    pub fn set(&mut self, value: Tensor) {
        self.value = value;
    }
}

impl Clone for Buffer {
    fn clone(&self) -> Buffer {
        Buffer::new(self.value.clone())
    }
}

/// What a [`Visitor`] is shown.
pub enum Entry<'m> {
    /// A trainable parameter.
    Param(&'m Param),
    /// A buffer (saved, not trained).
    Buffer(&'m Buffer),
    /// A child module, shown before its own entries.
    Module(&'m dyn Module),
    /// A parameter shown a second time under another name (weight tying:
    /// PyTorch's `lm_head.weight = transformer.wte.weight`). It is saved
    /// under both names, as PyTorch's `state_dict` lists it, but trained,
    /// counted and loaded once, through its first name. [`VisitorMut`] does
    /// not show it.
    Tied(&'m Param),
}

/// What a [`VisitorMut`] is shown.
pub enum EntryMut<'m> {
    /// A trainable parameter.
    Param(&'m mut Param),
    /// A buffer (saved, not trained).
    Buffer(&'m mut Buffer),
}

/// Walks a module tree, telling a callback `(prefix, name, entry)` for every
/// parameter, buffer and child module; the full name is `prefix + name`
/// (`prefix` is empty or ends with a dot).
pub struct Visitor<'a, 'm> {
    prefix: String,
    f: &'a mut dyn FnMut(&str, &str, Entry<'m>),
}

impl<'a, 'm> Visitor<'a, 'm> {
    /// A visitor at the root (empty prefix) that calls `f`.
    pub fn new(f: &'a mut dyn FnMut(&str, &str, Entry<'m>)) -> Self {
        Visitor {
            prefix: String::new(),
            f,
        }
    }

    /// A parameter of the module being visited.
    pub fn param(&mut self, name: &str, p: &'m Param) {
        (self.f)(&self.prefix, name, Entry::Param(p));
    }

    /// A buffer of the module being visited.
    pub fn buffer(&mut self, name: &str, b: &'m Buffer) {
        (self.f)(&self.prefix, name, Entry::Buffer(b));
    }

    /// A parameter already shown under another name, shown again as
    /// `name` ([`Entry::Tied`]).
    pub fn tied(&mut self, name: &str, p: &'m Param) {
        (self.f)(&self.prefix, name, Entry::Tied(p));
    }

    /// A child module: its entries are named `name.…`.
    pub fn module(&mut self, name: &str, m: &'m dyn Module) {
        (self.f)(&self.prefix, name, Entry::Module(m));
        let len = self.prefix.len();
        self.prefix.push_str(name);
        self.prefix.push('.');
        m.visit(self);
        self.prefix.truncate(len);
    }
}

/// [`Visitor`] with mutable access (the optimizer, loading).
pub struct VisitorMut<'a> {
    prefix: String,
    f: &'a mut dyn FnMut(&str, &str, EntryMut<'_>),
}

impl<'a> VisitorMut<'a> {
    /// A visitor at the root (empty prefix) that calls `f`.
    pub fn new(f: &'a mut dyn FnMut(&str, &str, EntryMut<'_>)) -> Self {
        VisitorMut {
            prefix: String::new(),
            f,
        }
    }

    /// A parameter of the module being visited.
    pub fn param(&mut self, name: &str, p: &mut Param) {
        (self.f)(&self.prefix, name, EntryMut::Param(p));
    }

    /// A buffer of the module being visited.
    pub fn buffer(&mut self, name: &str, b: &mut Buffer) {
        (self.f)(&self.prefix, name, EntryMut::Buffer(b));
    }

    /// A child module: its entries are named `name.…` (the callback is not
    /// told about the module itself).
    pub fn module(&mut self, name: &str, m: &mut dyn Module) {
        let len = self.prefix.len();
        self.prefix.push_str(name);
        self.prefix.push('.');
        m.visit_mut(self);
        self.prefix.truncate(len);
    }
}

/// What a model's output holds per class, for turning it into probabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// Unnormalized scores (the softmax gives probabilities).
    Logits,
    /// Probabilities already (the model ends in softmax or sigmoid).
    Probabilities,
    /// Log-probabilities (the model ends in log_softmax).
    LogProbabilities,
}

/// What every `Module + Clone` gets for free: a copy behind `dyn Module`,
/// and itself as `&dyn Module`.
pub trait CloneModule {
    /// A deep copy (parameters share their values until one is written).
    fn clone_module(&self) -> Box<dyn Module>;
    /// `self` as a trait object.
    fn as_module(&self) -> &dyn Module;
}

impl<T: Module + Clone + 'static> CloneModule for T {
    fn clone_module(&self) -> Box<dyn Module> {
        Box::new(self.clone())
    }
    fn as_module(&self) -> &dyn Module {
        self
    }
}

impl Clone for Box<dyn Module> {
    fn clone(&self) -> Self {
        self.clone_module()
    }
}

/// A piece of a model: a layer, a block of layers, a whole network.
///
/// A module is `Clone` (derive it): copies serve gradient checkpointing,
/// and a model can be kept aside, e.g. the best one so far.
///
/// Required: [`forward`](Module::forward). A module that holds parameters,
/// buffers or child modules also lists them in [`visit`](Module::visit) and
/// [`visit_mut`](Module::visit_mut), in PyTorch's `state_dict` order (its own
/// parameters, its own buffers, then its children); [`submodules!`](crate::submodules) writes
/// both for a struct of modules. A parameter used in `forward` but not
/// listed is an error at the first training pass, not a weight that silently
/// never learns.
pub trait Module: CloneModule + Send + Sync {
    /// Run on `x` (a batch: the first axis is the sample), recording on `p`.
    fn forward(&self, p: &mut Pass, x: Var) -> Var;

    /// Show every parameter, buffer and child module to `v`.
    fn visit<'m>(&'m self, _v: &mut Visitor<'_, 'm>) {}

    /// [`visit`](Module::visit) with mutable access; the same entries in the same order.
    fn visit_mut(&mut self, _v: &mut VisitorMut<'_>) {}

    /// The model-line item that builds this module again, with its sizes
    /// and options (`linear(784,128)`, `conv2d(1,6,5,padding=2)`), or
    /// `None` for a module the model line cannot express (one written in
    /// Rust). Saved with the weights, so that `eval` and `predict` need only
    /// the file; a module without one saves its weights alone.
    fn spec(&self) -> Option<String> {
        None
    }

    /// How reports name this module: its [`spec`](Module::spec), else its
    /// type's name (`Residual`).
    fn describe(&self) -> String {
        if let Some(s) = self.spec() {
            return s;
        }
        let full = self.type_name();
        let base = full.split('<').next().unwrap_or(full);
        base.rsplit("::").next().unwrap_or(base).to_string()
    }

    /// The shape of one output sample for one input sample (no batch
    /// axis), or an error that says what is wrong. The default runs the
    /// module on one zero sample on a [shape probe](Graph::shape_probe) and
    /// reports the first shape an op could not work with.
    fn output_shape(&self, sample: &[usize]) -> Result<Vec<usize>> {
        probe_output_shape(self.as_module(), sample)
    }

    /// About how many values a forward pass keeps per input sample of
    /// shape `sample` (the outputs of its layers), for the memory a batch
    /// needs. The default counts the output alone; a container sums its
    /// children's.
    fn activation_values(&self, sample: &[usize]) -> Result<usize> {
        Ok(self.output_shape(sample)?.iter().product())
    }

    /// Whether the module can run a training pass on batches of `batch`
    /// samples of shape `sample` (batch norm needs two values per channel).
    fn check_batch(&self, _sample: &[usize], _batch: usize) -> Result<()> {
        Ok(())
    }

    /// What the output holds (see [`OutputKind`]).
    fn output_kind(&self) -> OutputKind {
        OutputKind::Logits
    }

    /// The per-sample input shape this module implies, if it implies one
    /// (a `Linear` first layer: `[in_features]`).
    fn input_shape_hint(&self) -> Option<Vec<usize>> {
        None
    }

    /// If the module reads token ids (an `Embedding` first), how many there
    /// are: every input value must then be a whole number below it, which
    /// the trainer checks against the data before the first step.
    fn input_vocab(&self) -> Option<usize> {
        None
    }

    /// If the module reads sequences of a fixed longest length (a GPT's
    /// position table), that length.
    fn input_context(&self) -> Option<usize> {
        None
    }

    /// Whether this module is a whole model (a GPT) whose tensors keep
    /// their own names when it is the only item of a model line
    /// (`transformer.wte.weight`, not `0.transformer.wte.weight`), as the
    /// PyTorch class it mirrors names them.
    fn names_at_root(&self) -> bool {
        false
    }

    /// Recompute each of the module's repeated blocks (a GPT's transformer
    /// blocks) during the backward pass instead of keeping their
    /// activations (gradient checkpointing, one segment per block); returns
    /// how many blocks it has (0: none, nothing changed).
    fn checkpoint_blocks(&mut self) -> usize {
        0
    }

    #[doc(hidden)]
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// The default [`Module::output_shape`]: run one zero sample in evaluation
/// mode on a [shape probe](Graph::shape_probe), where an op given shapes it
/// cannot work with records the error instead of panicking; the first such
/// error, or the output's shape.
fn probe_output_shape(m: &dyn Module, sample: &[usize]) -> Result<Vec<usize>> {
    let mut shape = vec![1];
    shape.extend_from_slice(sample);
    let mut p = Pass::with_graph(&[m], Mode::Eval, Graph::shape_probe());
    let x = p.input(Tensor::zeros(&shape));
    let y = m.forward(&mut p, x);
    match p.graph.shape_error() {
        Some(msg) => Err(Error::Spec(format!(
            "{} cannot take input {}: {msg}",
            m.describe(),
            crate::ops::shape::fmt(sample)
        ))),
        None => Ok(p.shape(y)[1..].to_vec()),
    }
}

/// Implements [`Module::visit`] and [`Module::visit_mut`] for a struct whose
/// listed fields are modules, named after the fields (PyTorch's dotted
/// names: a field `conv1` owns `conv1.weight`). Use it inside `impl Module`:
///
/// ```
/// use backprop::prelude::*;
///
/// #[derive(Clone)]
/// struct Mlp { fc1: Linear, act: Activation, fc2: Linear }
///
/// impl Module for Mlp {
///     fn forward(&self, p: &mut Pass, x: Var) -> Var {
///         let h = self.fc1.forward(p, x);
///         let h = self.act.forward(p, h);
///         self.fc2.forward(p, h)
///     }
///     submodules!(fc1, act, fc2);
/// }
///
/// let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
/// let m = Mlp { fc1: Linear::new(4, 8).init(&mut rng), act: Activation::relu(),
///               fc2: Linear::new(8, 2).init(&mut rng) };
/// let names: Vec<String> = m.parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
/// ```
#[macro_export]
macro_rules! submodules {
    ($($field:ident),* $(,)?) => {
        fn visit<'m>(&'m self, v: &mut $crate::nn::Visitor<'_, 'm>) {
            $( v.module(stringify!($field), &self.$field); )*
        }
        fn visit_mut(&mut self, v: &mut $crate::nn::VisitorMut<'_>) {
            $( v.module(stringify!($field), &mut self.$field); )*
        }
    };
}

/// A module's output recorded during a pass, for the diagnostics: which
/// module (by address and type) and which node.
#[derive(Clone, Copy, Debug)]
pub struct LayerOutput {
    pub(crate) addr: usize,
    pub(crate) type_name: &'static str,
    /// The output's node on the pass's graph.
    pub var: Var,
}

impl LayerOutput {
    /// Whether this output was recorded by `m`.
    pub fn is_from(&self, m: &dyn Module) -> bool {
        self.addr == module_addr(m) && self.type_name == m.type_name()
    }
}

fn module_addr<M: Module + ?Sized>(m: &M) -> usize {
    m as *const M as *const () as usize
}

/// Training (batch statistics, dropout on) or evaluation behaviour of the
/// layers that differ; one value for the whole pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics, dropout on. `seed` drives this pass's dropout
    /// masks (the training loop derives it from its seed and the step).
    Train {
        /// The seed of this pass's dropout masks.
        seed: u64,
    },
    /// Running statistics, dropout off, and no graph recorded for a backward pass.
    Eval,
}

/// One forward pass of a module (and its backward): the recording graph,
/// the mode, the model's parameters as graph leaves, and what the pass
/// hands back to the model (new buffer values).
///
/// It dereferences to [`Graph`], so every op is a method on it
/// (`p.relu(x)`, `p.cross_entropy(out, &labels)`).
pub struct Pass {
    graph: Graph,
    mode: Mode,
    /// One leaf per parameter of the model, in visit order.
    params: Vec<Var>,
    index: HashMap<u64, usize>,
    updates: Vec<(u64, Tensor)>,
    outputs: Vec<LayerOutput>,
    dropouts: u64,
    /// The batch's first sample's index in the global batch (a data-parallel shard).
    first_sample: usize,
    /// The processes of a data-parallel run, for batch statistics over the global batch.
    collective: Option<Rc<dyn Collective>>,
}

impl std::ops::Deref for Pass {
    type Target = Graph;
    fn deref(&self) -> &Graph {
        &self.graph
    }
}

impl std::ops::DerefMut for Pass {
    fn deref_mut(&mut self) -> &mut Graph {
        &mut self.graph
    }
}

impl Pass {
    /// A training pass of `model`: records a graph, batch statistics,
    /// dropout masks drawn from `seed`.
    pub fn train(model: &dyn Module, seed: u64) -> Pass {
        Pass::new(model, Mode::Train { seed })
    }

    /// An evaluation pass: records no graph for a backward pass.
    pub fn eval(model: &dyn Module) -> Pass {
        Pass::new(model, Mode::Eval)
    }

    /// A pass in `mode`.
    pub fn new(model: &dyn Module, mode: Mode) -> Pass {
        let graph = match mode {
            Mode::Train { .. } => Graph::new(),
            Mode::Eval => Graph::no_grad(),
        };
        Pass::with_graph(&[model], mode, graph)
    }

    /// A pass in `mode` that records a graph for a backward pass even in
    /// evaluation mode (gradients of a model with its running statistics and
    /// without dropout: gradient checks, saliency).
    pub fn with_grad(model: &dyn Module, mode: Mode) -> Pass {
        Pass::with_graph(&[model], mode, Graph::new())
    }

    /// A pass over the parameters of `modules` (a checkpointed segment),
    /// recording a graph for a backward pass only if `record`.
    pub(crate) fn over(modules: &[&dyn Module], mode: Mode, record: bool) -> Pass {
        let graph = if record && mode != Mode::Eval {
            Graph::new()
        } else {
            Graph::no_grad()
        };
        Pass::with_graph(modules, mode, graph)
    }

    fn with_graph(modules: &[&dyn Module], mode: Mode, graph: Graph) -> Pass {
        let mut p = Pass {
            graph,
            mode,
            params: Vec::new(),
            index: HashMap::new(),
            updates: Vec::new(),
            outputs: Vec::new(),
            dropouts: 0,
            first_sample: 0,
            collective: None,
        };
        let mut add = |_: &str, _: &str, e: Entry<'_>| {
            if let Entry::Param(t) = e {
                let v = p.graph.param(t.shared());
                p.index.insert(t.id, p.params.len());
                p.params.push(v);
            }
        };
        let mut v = Visitor::new(&mut add);
        for m in modules {
            m.visit(&mut v);
        }
        p
    }

    /// Make this a pass over one shard of a data-parallel run's global
    /// batch: its first sample is sample `first_sample` of the global batch
    /// (dropout draws each sample's mask from its global index), and batch
    /// norm in training takes the global batch's statistics through `comm`.
    pub fn set_shard(&mut self, first_sample: usize, comm: Rc<dyn Collective>) {
        self.first_sample = first_sample;
        self.collective = Some(comm);
    }

    /// The index of this pass's first sample in the global batch (0 in one process).
    pub fn first_sample(&self) -> usize {
        self.first_sample
    }

    /// The processes of a data-parallel run, if this pass is one's shard.
    pub fn collective(&self) -> Option<Rc<dyn Collective>> {
        self.collective.clone()
    }

    /// The mode of the pass.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether layers behave as in training.
    pub fn training(&self) -> bool {
        matches!(self.mode, Mode::Train { .. })
    }

    /// The graph leaf of a parameter of the model.
    ///
    /// # Panics
    /// If `param` is not one of the model's (its module's `visit` does not
    /// list it).
    pub fn param(&mut self, param: &Param) -> Var {
        match self.index.get(&param.id) {
            Some(&i) => self.params[i],
            None => panic!(
                "a parameter of shape {:?} is used in forward but is not one of the model's: \
                 list it in its module's visit() (or the module in its parent's submodules!)",
                param.value().shape()
            ),
        }
    }

    /// The parameters' leaves, in the model's visit order.
    pub fn param_vars(&self) -> &[Var] {
        &self.params
    }

    /// A new value for `buffer`, stored by the optimizer step.
    pub fn update_buffer(&mut self, buffer: &Buffer, value: Tensor) {
        if self.training() {
            self.updates.push((buffer.id, value));
        }
    }

    /// A fresh seed for one dropout mask of this pass (the k-th call of a
    /// pass gets the k-th seed, so a pass recomputed with the same seed
    /// draws the same masks).
    pub fn dropout_seed(&mut self) -> u64 {
        let Mode::Train { seed } = self.mode else {
            return 0;
        };
        self.dropouts += 1;
        seed ^ self.dropouts.wrapping_mul(0xA24B_AED4_963E_E407)
    }

    /// Record `out` as the output of layer `m` (for the per-layer diagnostics).
    pub fn layer_output<M: Module + ?Sized>(&mut self, m: &M, out: Var) {
        self.outputs.push(LayerOutput {
            addr: module_addr(m),
            type_name: m.type_name(),
            var: out,
        });
    }

    /// The layer outputs recorded so far, in order.
    pub fn layer_outputs(&self) -> &[LayerOutput] {
        &self.outputs
    }

    /// Backpropagate from the scalar `loss` and hand back the gradients of
    /// the model's parameters; the graph is dropped here, so the
    /// optimizer then updates the parameters in place.
    pub fn backward(self, loss: Var) -> ParamGrads {
        self.backward_inspect(loss, |_, _, _, _| ()).0
    }

    /// [`backward`](Pass::backward), with a look at the graph and the whole
    /// gradient table before they are dropped (the diagnostics use it;
    /// mark nodes with [`Graph::retain_grad`] beforehand to keep their δ).
    pub fn backward_inspect<R>(
        self,
        loss: Var,
        inspect: impl FnOnce(&Graph, &GradTable, &[LayerOutput], &[Option<Tensor>]) -> R,
    ) -> (ParamGrads, R) {
        let value = self.graph.value(loss).item();
        let mut table = self.graph.backward(loss);
        let grads: Vec<Option<Tensor>> = self.params.iter().map(|v| table.take(*v)).collect();
        let r = inspect(&self.graph, &table, &self.outputs, &grads);
        (ParamGrads::new(value, grads, self.updates), r)
    }

    /// Take the buffer updates and dropout count of an inner pass (a
    /// recomputed segment) into this one.
    pub(crate) fn absorb(&mut self, updates: Vec<(u64, Tensor)>, dropouts: u64) {
        self.updates.extend(updates);
        self.dropouts += dropouts;
    }

    pub(crate) fn dropouts(&self) -> u64 {
        self.dropouts
    }

    pub(crate) fn set_dropouts(&mut self, n: u64) {
        self.dropouts = n;
    }

    pub(crate) fn take_updates(&mut self) -> Vec<(u64, Tensor)> {
        std::mem::take(&mut self.updates)
    }
}

/// Store buffer values computed by a pass into the module's buffers.
pub(crate) fn apply_buffer_updates<M: Module + ?Sized>(model: &mut M, updates: Vec<(u64, Tensor)>) {
    if updates.is_empty() {
        return;
    }
    let mut updates: Vec<Option<(u64, Tensor)>> = updates.into_iter().map(Some).collect();
    model.visit_mut(&mut VisitorMut::new(&mut |_, _, e| {
        if let EntryMut::Buffer(b) = e {
            for u in updates.iter_mut() {
                if u.as_ref().is_some_and(|(id, _)| *id == b.id) {
                    b.value = u.take().expect("checked").1;
                }
            }
        }
    }));
}

/// Named access to a module's tensors, for every [`Module`].
pub trait ModuleExt: Module {
    /// `(full name, parameter)` in visit order (`named_parameters()`).
    fn parameters(&self) -> Vec<(String, &Param)> {
        let mut out = Vec::new();
        self.visit(&mut Visitor::new(&mut |prefix, name, e| {
            if let Entry::Param(p) = e {
                out.push((format!("{prefix}{name}"), p));
            }
        }));
        out
    }

    /// Call `f(full name, parameter)` for every parameter, in visit order,
    /// with mutable access.
    fn for_each_param_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param)) {
        self.visit_mut(&mut VisitorMut::new(&mut |prefix, name, e| {
            if let EntryMut::Param(p) = e {
                f(&format!("{prefix}{name}"), p);
            }
        }));
    }

    /// Number of scalar parameters.
    fn num_parameters(&self) -> usize {
        self.parameters()
            .iter()
            .map(|(_, p)| p.value().numel())
            .sum()
    }

    /// Everything PyTorch's `state_dict()` holds: parameters and buffers
    /// with their full names, in visit order.
    fn state_dict(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit(&mut Visitor::new(&mut |prefix, name, e| match e {
            Entry::Param(p) | Entry::Tied(p) => {
                out.push((format!("{prefix}{name}"), p.value().clone()))
            }
            Entry::Buffer(b) => out.push((format!("{prefix}{name}"), b.value().clone())),
            Entry::Module(_) => {}
        }));
        out
    }

    /// Replace every parameter and buffer with the tensor of the same name
    /// in `state`, as PyTorch's strict `load_state_dict`: every one must be
    /// present with the right shape, and `state` must hold nothing else.
    /// A tied parameter takes the value of its first name (PyTorch saves
    /// the same values under both). `origin` names the file in errors.
    fn load_state_dict(&mut self, state: &[(String, Tensor)], origin: &Path) -> Result<()> {
        let what = self.describe();
        let names: Vec<(String, Vec<usize>)> = self
            .state_dict()
            .into_iter()
            .map(|(n, t)| (n, t.shape().to_vec()))
            .collect();
        for (name, _) in state {
            if !names.iter().any(|(n, _)| n == name) {
                let expected: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
                return Err(Error::weights(
                    origin,
                    format!(
                        "unexpected tensor `{name}`: the model `{what}` has {}",
                        expected.join(", ")
                    ),
                ));
            }
        }
        let mut values: HashMap<&str, Tensor> = HashMap::with_capacity(names.len());
        for (name, shape) in &names {
            let t = state
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| {
                    Error::weights(
                        origin,
                        format!("missing tensor `{name}` (shape {shape:?}) for model `{what}`"),
                    )
                })?;
            // A one-element counter is accepted as `[]` or `[1]`: exporters differ.
            let counter = name.ends_with("num_batches_tracked") && t.numel() == 1;
            if t.shape() != shape.as_slice() && !counter {
                return Err(Error::weights(
                    origin,
                    format!(
                        "tensor `{name}` has shape {:?}, the model `{what}` needs {shape:?}",
                        t.shape()
                    ),
                ));
            }
            values.insert(name, t.clone().reshape(shape));
        }
        self.visit_mut(&mut VisitorMut::new(&mut |prefix, name, e| {
            let full = format!("{prefix}{name}");
            let v = values.remove(full.as_str()).expect("checked above");
            match e {
                EntryMut::Param(p) => p.set(v),
                EntryMut::Buffer(b) => b.set(v),
            }
        }));
        Ok(())
    }

    /// Inference on a batch in evaluation mode: records no graph.
    fn predict(&self, x: &Tensor) -> Tensor {
        let mut p = Pass::eval(self.as_module());
        let xv = p.input(x.clone());
        let out = self.forward(&mut p, xv);
        p.value(out).clone()
    }

    /// Class probabilities from outputs `[N, C]` of this model: the softmax
    /// of logits, or the outputs themselves when the model already ends in
    /// softmax or sigmoid (exp of log_softmax).
    fn probabilities(&self, out: &Tensor) -> Tensor {
        let c = out.shape().last().copied().unwrap_or(1).max(1);
        match self.output_kind() {
            OutputKind::Probabilities => out.clone(),
            OutputKind::LogProbabilities => out.map(f32::exp),
            OutputKind::Logits => {
                let mut p = vec![0.0; out.numel()];
                for (z, o) in out.data().chunks(c).zip(p.chunks_mut(c)) {
                    crate::ops::softmax::softmax_rows(z, c, o);
                }
                Tensor::from_vec(out.shape().to_vec(), p)
            }
        }
    }
}

impl<M: Module + ?Sized> ModuleExt for M {}

/// Every module of a tree with its full name, the root as `""` (for trait objects).
pub fn named_modules(root: &dyn Module) -> Vec<(String, &dyn Module)> {
    let mut out: Vec<(String, &dyn Module)> = vec![(String::new(), root)];
    root.visit(&mut Visitor::new(&mut |prefix, name, e| {
        if let Entry::Module(m) = e {
            out.push((format!("{prefix}{name}"), m));
        }
    }));
    out
}

/// The name of the module that recorded `out`: the deepest module of the
/// tree at that address and of that type (a struct and its first field
/// share an address).
pub fn output_owner<'a>(
    modules: &'a [(String, &'a dyn Module)],
    out: &LayerOutput,
) -> Option<&'a (String, &'a dyn Module)> {
    modules.iter().rev().find(|(_, m)| out.is_from(*m))
}
