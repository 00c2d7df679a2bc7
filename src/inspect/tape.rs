//! `backprop graph`: the tape of one training step, as Graphviz DOT and as a
//! table with the memory it holds.
//!
//! The model runs on one batch through a recording [`Graph`](crate::Graph), followed by the
//! loss, exactly as a training step does. Every node of the tape is listed with
//! its op, its output shape and the bytes of its value: the engine keeps every
//! node's value until the step ends, and the backward rules read what they
//! need from there (the `Backward` structs themselves save next to nothing:
//! labels, a scale). Parameter leaves share the model's tensors, so they cost
//! nothing extra; their gradients are the entries of the gradient table that
//! [`Graph::backward`](crate::Graph::backward) keeps, the others are freed as soon as they are used.
//!
//! The gradient-checkpointing figure is an *estimate* from the node sizes:
//! keep only the input and every k-th layer's output (k ≈ √layers), drop the
//! rest after the forward pass, and recompute one segment at a time during the
//! backward pass, for the price of one more forward pass. Nothing is measured.

use crate::autograd::Op;
use crate::nn::module::output_owner;
use crate::nn::{named_modules, Mode, Module, ModuleExt, Pass};
use crate::ops::loss::LossKind;
use crate::Var;
use crate::{Error, Result, Setting, Tensor};
use std::fmt::Write;

/// What a node of the tape is.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// The data batch.
    Input,
    /// Any other leaf: the float targets of `mse` / `bce`, or a constant a layer uses.
    Target,
    /// A parameter leaf, by its full name (`1.weight`).
    Param(String),
    /// An op's output.
    Op,
}

/// One node of the tape.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The node's id on the tape (its creation order, from 0).
    pub id: usize,
    /// The op that made it (`"leaf"` for leaves).
    pub op: &'static str,
    /// What the node is.
    pub kind: NodeKind,
    /// The shape of the node's value.
    pub shape: Vec<usize>,
    /// Bytes of the node's value (f32).
    pub bytes: usize,
    /// The ids of the op's inputs (empty for leaves).
    pub parents: Vec<usize>,
    /// The layer (index into [`Tape::layers`]) whose forward pass created it.
    pub layer: Option<usize>,
    /// Whether a gradient flows into it (an entry of the gradient table).
    pub requires_grad: bool,
}

/// The tape of one training step of a model.
#[derive(Clone, Debug)]
pub struct Tape {
    /// The model as [`Module::describe`] names it.
    pub spec: String,
    /// `[N, sample...]`.
    pub input_shape: Vec<usize>,
    /// The loss recorded after the model.
    pub loss: LossKind,
    /// Every node of the tape, in creation order (`nodes[i].id == i`).
    pub nodes: Vec<NodeInfo>,
    /// `(name, description)` of every layer that recorded its output, in
    /// order: `("1", "linear(784,128)")`.
    pub layers: Vec<(String, String)>,
    /// The id of each layer's output node.
    pub layer_outputs: Vec<usize>,
    /// The id of the loss node.
    pub loss_node: usize,
}

/// Memory figures of a tape (bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct Totals {
    /// The parameters (shared with the model, not copied).
    pub params: usize,
    /// Every other node's value: the activations the tape keeps until backward.
    pub activations: usize,
    /// The parameters' gradients, kept in the table.
    pub param_grads: usize,
    /// The most intermediate gradients alive at once during the backward pass.
    pub peak_intermediate_grads: usize,
    /// Activations kept with gradient checkpointing (the estimate above).
    pub checkpointed: usize,
    /// The layers whose outputs the checkpointing estimate keeps.
    pub checkpoints: Vec<usize>,
}

/// Record one training step of `model` on a batch of `batch` samples of
/// `sample_shape` (zeros; the values do not change the tape) with `loss`.
pub fn record(
    model: &dyn Module,
    sample_shape: &[usize],
    batch: usize,
    loss: LossKind,
) -> Result<Tape> {
    if batch == 0 {
        return Err(Error::Config("a batch needs at least 1 sample".into()));
    }
    let out = model.output_shape(sample_shape)?;
    if out.len() != 1 {
        return Err(Error::Spec(format!(
            "the model's output per sample has shape {out:?}; the loss needs a vector of class scores: \
             end the model with `flatten` and a `linear` layer"
        )));
    }
    if out[0] == 1 && loss == LossKind::CrossEntropy {
        return Err(Error::invalid(
            Setting::Loss,
            loss.name(),
            "the cross-entropy loss needs at least 2 outputs, the model has 1: use bce-logits",
        ));
    }
    let mut shape = vec![batch];
    shape.extend_from_slice(sample_shape);
    let mut p = Pass::train(model, 0);
    let x = p.input(Tensor::zeros(&shape));
    let y = model.forward(&mut p, x);
    let labels = vec![0usize; batch];
    let l = loss.apply(&mut p, y, &labels);
    Ok(tape_of(&p, model, x, l, loss))
}

/// The [`Tape`] of a pass that ran `model` on input `x` and then `loss`
/// into `l`.
fn tape_of(p: &Pass, model: &dyn Module, x: Var, l: Var, loss: LossKind) -> Tape {
    let names: Vec<String> = model.parameters().into_iter().map(|(n, _)| n).collect();
    let mods = named_modules(model);
    let mut layers: Vec<(String, String)> = Vec::new();
    let mut layer_outputs = Vec::new();
    for o in p.layer_outputs() {
        let (name, m) = output_owner(&mods, o)
            .map(|(n, m)| (n.clone(), m.describe()))
            .unwrap_or_else(|| ("?".into(), "?".into()));
        layers.push((name, m));
        layer_outputs.push(o.var.id());
    }
    let params = p.param_vars().to_vec();
    let first_op = params.iter().map(|v| v.id()).max().unwrap_or(x.id()) + 1;
    let mut nodes = Vec::with_capacity(p.len());
    for id in 0..p.len() {
        let v = p.var(id);
        let kind = if id == x.id() {
            NodeKind::Input
        } else if let Some(k) = params.iter().position(|q| *q == v) {
            NodeKind::Param(names[k].clone())
        } else if p.op(v) == Op::Leaf {
            NodeKind::Target
        } else {
            NodeKind::Op
        };
        let layer = match &kind {
            NodeKind::Param(n) => {
                let owner = n.rsplit_once('.').map_or("", |(o, _)| o);
                layers.iter().position(|(name, _)| name == owner)
            }
            NodeKind::Op | NodeKind::Target if id >= first_op => {
                layer_outputs.iter().position(|&o| o >= id)
            }
            _ => None,
        };
        nodes.push(NodeInfo {
            id,
            op: p.op_name(v),
            shape: p.shape(v).to_vec(),
            bytes: 4 * p.value(v).numel(),
            parents: p.parents(v).iter().map(|q| q.id()).collect(),
            layer,
            requires_grad: p.requires_grad(v),
            kind,
        });
    }
    Tape {
        spec: model.describe(),
        input_shape: p.shape(x).to_vec(),
        loss,
        nodes,
        layers,
        layer_outputs,
        loss_node: l.id(),
    }
}

/// One sample through a model and back, every number kept: the tape, each
/// node's value from the forward pass and its entry of the gradient table
/// (∂C/∂node) from the backward pass. This is article 003's algorithm laid
/// open: the backward pass visits the nodes in reverse creation order, and
/// each visit adds its parents' entries to the table.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The tape (ops, shapes, parents, layers).
    pub tape: Tape,
    /// Each node's value, by node id.
    pub values: Vec<Tensor>,
    /// Each node's gradient ∂C/∂node, by node id (`None`: no gradient
    /// flows there, e.g. the labels).
    pub grads: Vec<Option<Tensor>>,
    /// The model's class probabilities for the sample.
    pub probabilities: Vec<f32>,
    /// The label the loss was taken against.
    pub label: usize,
    /// The loss C.
    pub loss: f32,
}

/// [`Trace`] `model` on one sample `x` (`[1, sample...]`), in evaluation
/// mode (batch norm's running statistics, no dropout), with the
/// cross-entropy loss against `label`, or against the model's own guess
/// when `label` is `None` (the gradients then say what would make the
/// model surer of its answer).
pub fn trace(model: &dyn Module, x: &Tensor, label_given: Option<usize>) -> Result<Trace> {
    if x.shape().first() != Some(&1) {
        return Err(Error::Config(format!(
            "a trace takes one sample, shape [1, ...]; got {:?}",
            x.shape()
        )));
    }
    let out_shape = model.output_shape(&x.shape()[1..])?;
    let c: usize = out_shape.iter().product();
    if out_shape.len() != 1 || c < 2 {
        return Err(Error::Spec(format!(
            "the model's output per sample has shape {out_shape:?}; a trace needs class scores: \
             end the model with `flatten` and a `linear` layer of 2 or more outputs"
        )));
    }
    let (mut probabilities, mut label) = (Vec::new(), 0);
    let w = walk(model, x, |p, y| {
        probabilities = model.probabilities(p.value(y)).data().to_vec();
        let guess = Tensor::from_vec(vec![1, c], probabilities.clone()).argmax_rows()[0];
        label = label_given.unwrap_or(guess);
        if label >= c {
            return Err(Error::Config(format!(
                "label {label}: the model has {c} classes (0..{})",
                c - 1
            )));
        }
        Ok(LossKind::CrossEntropy.apply(p, y, &[label]))
    })?;
    Ok(Trace {
        tape: w.tape,
        values: w.values,
        grads: w.grads,
        probabilities,
        label,
        loss: w.loss,
    })
}

/// One pass walked forward and back, every node's value and gradient kept.
pub(crate) struct Walked {
    pub tape: Tape,
    pub values: Vec<Tensor>,
    pub grads: Vec<Option<Tensor>>,
    pub loss: f32,
    /// `(node, tensor)` for each node whose backward rule saved something
    /// worth showing (attention's weights).
    pub saved: Vec<(usize, Tensor)>,
}

/// Run `model` on `x` in a recording evaluation pass (no dropout, batch
/// norm's running statistics), then `loss` on its output; keep every
/// node's gradient and walk the tape back.
pub(crate) fn walk(
    model: &dyn Module,
    x: &Tensor,
    loss: impl FnOnce(&mut Pass, Var) -> Result<Var>,
) -> Result<Walked> {
    let mut p = Pass::with_grad(model, Mode::Eval);
    let xv = p.input(x.clone());
    let y = model.forward(&mut p, xv);
    let l = loss(&mut p, y)?;
    for id in 0..p.len() {
        let v = p.var(id);
        if p.requires_grad(v) && p.op(v) != Op::Leaf {
            p.retain_grad(v);
        }
    }
    let tape = tape_of(&p, model, xv, l, LossKind::CrossEntropy);
    let values: Vec<Tensor> = (0..p.len()).map(|id| p.value(p.var(id)).clone()).collect();
    let saved = (0..p.len())
        .filter_map(|id| Some((id, p.saved(p.var(id))?)))
        .collect();
    let params: Vec<usize> = p.param_vars().iter().map(|v| v.id()).collect();
    let (_, (grads, loss)) = p.backward_inspect(l, |g, table, _, param_grads| {
        let mut grads: Vec<Option<Tensor>> = (0..g.len())
            .map(|id| table.get(g.var(id)).cloned())
            .collect();
        for (id, t) in params.iter().zip(param_grads) {
            grads[*id] = t.clone();
        }
        (grads, g.value(l).item())
    });
    Ok(Walked {
        tape,
        values,
        grads,
        loss,
        saved,
    })
}

/// `1536` → `1.5 KiB`.
///
/// ```
/// use backprop::inspect::tape::human_bytes;
/// assert_eq!(human_bytes(512), "512 B");
/// assert_eq!(human_bytes(200_704), "196.0 KiB");
/// assert_eq!(human_bytes(3 << 20), "3.0 MiB");
/// ```
pub fn human_bytes(b: usize) -> String {
    let b = b as f64;
    if b < 1024.0 {
        format!("{b} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    }
}

fn fmt_shape(s: &[usize]) -> String {
    if s.is_empty() {
        return "scalar".into();
    }
    let v: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", v.join(", "))
}

impl Tape {
    /// The memory figures (see [`Totals`]).
    pub fn totals(&self) -> Totals {
        let is_param = |n: &NodeInfo| matches!(n.kind, NodeKind::Param(_));
        let params = self
            .nodes
            .iter()
            .filter(|n| is_param(n))
            .map(|n| n.bytes)
            .sum();
        let activations: usize = self
            .nodes
            .iter()
            .filter(|n| !is_param(n))
            .map(|n| n.bytes)
            .sum();
        // Simulate the backward walk: an intermediate gradient lives from the
        // first consumer that produces it until its own node is processed.
        let mut live = vec![false; self.nodes.len()];
        let mut live_bytes = 0usize;
        let mut peak = 0usize;
        let root = self.loss_node;
        live[root] = true;
        live_bytes += self.nodes[root].bytes;
        for i in (0..=root).rev() {
            let n = &self.nodes[i];
            if !live[i] || n.op == "leaf" {
                continue;
            }
            for &p in &n.parents {
                let pn = &self.nodes[p];
                if pn.requires_grad && !is_param(pn) && !live[p] {
                    live[p] = true;
                    live_bytes += pn.bytes;
                }
            }
            peak = peak.max(live_bytes);
            live[i] = false;
            live_bytes -= n.bytes;
        }
        let param_grads = self
            .nodes
            .iter()
            .filter(|n| is_param(n) && n.requires_grad)
            .map(|n| n.bytes)
            .sum();
        // Checkpointing: per layer, the bytes of its op nodes.
        let nl = self.layer_outputs.len();
        let layer_bytes: Vec<usize> = (0..nl)
            .map(|l| {
                self.nodes
                    .iter()
                    .filter(|n| !is_param(n) && n.layer == Some(l))
                    .map(|n| n.bytes)
                    .sum()
            })
            .collect();
        let rest = activations - layer_bytes.iter().sum::<usize>(); // input, targets, loss
        let k = (nl as f64).sqrt().ceil().max(1.0) as usize;
        let checkpoints: Vec<usize> = (0..nl).filter(|l| (l + 1) % k == 0 && l + 1 < nl).collect();
        let kept: usize = checkpoints
            .iter()
            .map(|&l| self.nodes[self.layer_outputs[l]].bytes)
            .sum();
        let segment = layer_bytes
            .chunks(k)
            .map(|c| c.iter().sum::<usize>())
            .max()
            .unwrap_or(0);
        let checkpointed = (rest + kept + segment).min(activations);
        Totals {
            params,
            activations,
            param_grads,
            peak_intermediate_grads: peak,
            checkpointed,
            checkpoints,
        }
    }

    fn node_title(&self, n: &NodeInfo) -> String {
        match &n.kind {
            NodeKind::Input => "input batch".into(),
            NodeKind::Target if n.layer.is_some() => "constant".into(),
            NodeKind::Target => "targets".into(),
            NodeKind::Param(name) => format!("param {name}"),
            NodeKind::Op if n.id == self.loss_node => format!("{} (loss)", n.op),
            NodeKind::Op => n.op.to_string(),
        }
    }

    /// The tape as a Graphviz `digraph`: one box per node (op, shape, bytes
    /// kept, the gradient entry it gets), clustered by layer, data flowing
    /// down; parameters are yellow, the batch grey, the loss red.
    pub fn to_dot(&self) -> String {
        let t = self.totals();
        let mut s = String::new();
        let _ = writeln!(s, "// backprop graph: the tape of one training step of");
        let _ = writeln!(s, "//   {}", self.spec);
        let _ = writeln!(s, "// Render: dot -Tsvg this.dot -o this.svg");
        s.push_str("digraph tape {\n");
        s.push_str("  rankdir=TB;\n  labelloc=t;\n  fontname=\"DejaVu Sans\";\n");
        let _ = writeln!(
            s,
            "  label=\"{} — batch {} — activations on the tape {}, parameter gradients {}\";",
            esc(&self.spec),
            fmt_shape(&self.input_shape),
            human_bytes(t.activations),
            human_bytes(t.param_grads)
        );
        s.push_str(
            "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"DejaVu Sans\", fontsize=10];\n",
        );
        s.push_str("  edge [color=\"#555555\"];\n");
        let node_line = |n: &NodeInfo| -> String {
            let mut label = format!(
                "#{} {}\\n{}",
                n.id,
                esc(&self.node_title(n)),
                fmt_shape(&n.shape)
            );
            let (fill, shape) = match n.kind {
                NodeKind::Param(_) => {
                    label += &format!("\\n{} (the model's)", human_bytes(n.bytes));
                    if n.requires_grad {
                        label += "\\n∂L/∂· kept";
                    }
                    ("#ffe08a", "box")
                }
                NodeKind::Input | NodeKind::Target => {
                    label += &format!("\\n{} on the tape", human_bytes(n.bytes));
                    ("#dddddd", "ellipse")
                }
                NodeKind::Op => {
                    label += &format!("\\n{} on the tape", human_bytes(n.bytes));
                    if n.requires_grad && n.id != self.loss_node {
                        label += "\\n∂L/∂· freed after use";
                    }
                    if n.id == self.loss_node {
                        ("#f4a6a6", "doubleoctagon")
                    } else {
                        ("#cfe3f7", "box")
                    }
                }
            };
            format!(
                "n{} [label=\"{label}\", fillcolor=\"{fill}\", shape={shape}];",
                n.id
            )
        };
        for (li, (name, text)) in self.layers.iter().enumerate() {
            let members: Vec<&NodeInfo> =
                self.nodes.iter().filter(|n| n.layer == Some(li)).collect();
            if members.is_empty() {
                continue;
            }
            let _ = writeln!(s, "  subgraph cluster_layer{li} {{");
            let _ = writeln!(
                s,
                "    label=\"layer {name} {}\"; style=dashed; color=\"#888888\"; fontsize=11;",
                esc(text)
            );
            for n in members {
                let _ = writeln!(s, "    {}", node_line(n));
            }
            s.push_str("  }\n");
        }
        for n in self.nodes.iter().filter(|n| n.layer.is_none()) {
            let _ = writeln!(s, "  {}", node_line(n));
        }
        for n in &self.nodes {
            for p in &n.parents {
                let _ = writeln!(s, "  n{p} -> n{};", n.id);
            }
        }
        s.push_str("}\n");
        s
    }

    /// The table and totals `backprop graph` prints.
    pub fn report(&self) -> String {
        let t = self.totals();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "tape of one training step of `{}` on a batch {} with {}: {} nodes",
            self.spec,
            fmt_shape(&self.input_shape),
            self.loss.name(),
            self.nodes.len()
        );
        let _ = writeln!(
            s,
            "  {:>4}  {:<22} {:<20} {:>11}  layer / gradient",
            "node", "op", "shape", "bytes"
        );
        for n in &self.nodes {
            let layer = n
                .layer
                .and_then(|l| self.layers.get(l))
                .map(|(i, t)| format!("layer {i} {t}"))
                .unwrap_or_default();
            let grad = match (&n.kind, n.requires_grad) {
                (NodeKind::Param(_), true) => "gradient kept",
                (NodeKind::Op, true) if n.id != self.loss_node => "gradient freed after use",
                _ => "",
            };
            let sep = if layer.is_empty() || grad.is_empty() {
                ""
            } else {
                ", "
            };
            let _ = writeln!(
                s,
                "  {:>4}  {:<22} {:<20} {:>11}  {layer}{sep}{grad}",
                n.id,
                self.node_title(n),
                fmt_shape(&n.shape),
                human_bytes(n.bytes)
            );
        }
        let nparams: usize = t.params / 4;
        let _ = writeln!(
            s,
            "parameters: {nparams} values, {} (shared with the model, not copied onto the tape)",
            human_bytes(t.params)
        );
        let _ = writeln!(
            s,
            "activations on the tape: {} (every node's value, kept until the step ends)",
            human_bytes(t.activations)
        );
        let _ = writeln!(
            s,
            "gradient table: {} of parameter gradients (kept), at most {} of intermediate gradients at once",
            human_bytes(t.param_grads),
            human_bytes(t.peak_intermediate_grads)
        );
        let saved = t.activations - t.checkpointed;
        if t.checkpoints.is_empty() || saved == 0 {
            let _ = writeln!(
                s,
                "gradient checkpointing: too few layers to save anything (estimate from the node sizes)"
            );
        } else {
            let cps: Vec<String> = t
                .checkpoints
                .iter()
                .map(|&l| self.layers.get(l).map_or(l.to_string(), |(n, _)| n.clone()))
                .collect();
            let _ = writeln!(
                s,
                "gradient checkpointing (an estimate from the node sizes, not measured): keeping only the input and \
                 the output{} of layer{} {} and recomputing one segment at a time in the backward pass would hold \
                 about {} of activations instead of {}, saving {} ({:.0} %), for one extra forward pass",
                if cps.len() == 1 { "" } else { "s" },
                if cps.len() == 1 { "" } else { "s" },
                cps.join(", "),
                human_bytes(t.checkpointed),
                human_bytes(t.activations),
                human_bytes(saved),
                100.0 * saved as f64 / t.activations.max(1) as f64
            );
        }
        s
    }
}

/// Escape a string for a DOT label.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Init;
    use rand::SeedableRng;

    fn tape(line: &str, sample: &[usize], batch: usize) -> Tape {
        let m = crate::nn::Sequential::parse(
            line,
            Init::Default,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap();
        record(&m, sample, batch, LossKind::CrossEntropy).unwrap()
    }

    #[test]
    fn a_trace_fills_the_whole_gradient_table() {
        let m = crate::nn::Sequential::parse(
            "flatten,linear(6,5),tanh,linear(5,3)",
            Init::Default,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(3),
        )
        .unwrap();
        let x = Tensor::from_vec(vec![1, 1, 2, 3], vec![0.5, -1.0, 0.25, 2.0, 0.0, -0.75]);
        let t = trace(&m, &x, Some(2)).unwrap();
        let n = t.tape.nodes.len();
        assert_eq!((t.values.len(), t.grads.len()), (n, n));
        // ∂C/∂C = 1; the last layer's δ is softmax − one-hot (article 002).
        assert_eq!(t.grads[t.tape.loss_node].as_ref().unwrap().data(), [1.0]);
        let last = *t.tape.layer_outputs.last().unwrap();
        let delta = t.grads[last].as_ref().unwrap().data().to_vec();
        let mut want = t.probabilities.clone();
        want[2] -= 1.0;
        for (d, w) in delta.iter().zip(&want) {
            assert!((d - w).abs() < 1e-6, "{delta:?} vs {want:?}");
        }
        // Every node a gradient reaches has one of its value's shape; the
        // parameters' equal those of an ordinary backward pass.
        for (node, g) in t.tape.nodes.iter().zip(&t.grads) {
            assert_eq!(node.requires_grad, g.is_some(), "node {}", node.id);
            if let Some(g) = g {
                assert_eq!(g.shape(), node.shape.as_slice());
            }
        }
        let mut p = Pass::with_grad(&m, Mode::Eval);
        let xv = p.input(x.clone());
        let y = m.forward(&mut p, xv);
        let l = p.cross_entropy(y, &[2]);
        let grads = p.backward(l);
        for (k, g) in grads.tensors().iter().enumerate() {
            assert_eq!(
                g.as_ref().unwrap().data(),
                t.grads[k].as_ref().unwrap().data()
            );
        }
        // With no label the model's own guess is the target.
        let own = trace(&m, &x, None).unwrap();
        let guess = (0..3)
            .max_by(|&a, &b| t.probabilities[a].total_cmp(&t.probabilities[b]))
            .unwrap();
        assert_eq!(own.label, guess);
        assert!(trace(&m, &x, Some(3)).is_err());
    }

    #[test]
    fn mlp_tape_by_hand() {
        let t = tape(
            "flatten,linear(784,128),relu,linear(128,10)",
            &[1, 28, 28],
            64,
        );
        // 4 params (a pass makes them leaves first), x, flatten, linear, relu, linear, cross_entropy.
        assert_eq!(t.nodes.len(), 10);
        assert_eq!(t.nodes[4].kind, NodeKind::Input);
        assert_eq!(t.nodes[0].kind, NodeKind::Param("1.weight".into()));
        assert_eq!(t.nodes[0].shape, [128, 784]);
        assert_eq!(t.nodes[0].layer, Some(1));
        let ops: Vec<&str> = t.nodes[5..].iter().map(|n| n.op).collect();
        // `flatten` is a reshape on the tape.
        assert_eq!(ops[..4], ["reshape", "linear", "relu", "linear"]);
        assert_eq!(t.nodes[6].layer, Some(1));
        let tot = t.totals();
        assert_eq!(tot.params, 4 * (784 * 128 + 128 + 128 * 10 + 10));
        assert_eq!(tot.param_grads, tot.params);
        // input + flatten (both 64·784) + 2·(64·128) + 64·10 + the scalar loss.
        assert_eq!(
            tot.activations,
            4 * (2 * 64 * 784 + 2 * 64 * 128 + 64 * 10 + 1)
        );
        // The largest gradient in flight: ∂L/∂(linear 1 output) and ∂L/∂(relu output), 64·128 each.
        assert_eq!(tot.peak_intermediate_grads, 4 * 2 * 64 * 128);
        let dot = t.to_dot();
        assert!(dot.starts_with("// backprop graph") && dot.contains("digraph tape {"));
        assert!(
            dot.contains("cluster_layer1")
                && dot.contains("param 1.weight")
                && dot.contains("n6 -> n7;")
        );
        assert!(dot.trim_end().ends_with('}'));
        let r = t.report();
        assert!(
            r.contains("gradient checkpointing") && r.contains("estimate"),
            "{r}"
        );
    }

    #[test]
    fn checkpointing_saves_on_a_deep_net() {
        let line = (0..8)
            .map(|_| "linear(64,64),tanh")
            .collect::<Vec<_>>()
            .join(",")
            + ",linear(64,10)";
        let t = tape(&line, &[64], 32);
        let tot = t.totals();
        assert!(!tot.checkpoints.is_empty());
        assert!(tot.checkpointed * 10 < tot.activations * 6, "{tot:?}");
    }

    #[test]
    fn bad_shapes_are_errors() {
        let m = crate::nn::Sequential::parse(
            "linear(10,2)",
            Init::Default,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap();
        let e = record(&m, &[1, 28, 28], 4, LossKind::CrossEntropy)
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 0") && e.contains("[N, 10]"), "{e}");
        let m = crate::nn::Sequential::parse(
            "linear(10,1)",
            Init::Default,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap();
        let e = record(&m, &[10], 4, LossKind::CrossEntropy)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bce-logits"), "{e}");
    }
}
