//! The tape: reverse-mode automatic differentiation on a recorded graph.
//!
//! Every op run through a [`Graph`] appends a node holding its output value,
//! the ids of its inputs and the op's backward rule. Node ids grow with
//! creation, so the reverse of creation order is a valid reverse topological
//! order: [`Graph::backward`] walks the tape from the loss down to the first
//! node, with no graph search and no recursion (long RNN unrolls cannot
//! overflow the stack). The gradient table maps each node to ∂L/∂node; when a
//! value feeds several consumers their contributions are *summed* into its
//! entry before it is propagated further.
//!
//! A graph made with [`Graph::no_grad`] records values only: no backward rules,
//! nothing saved for a backward pass. Evaluation and inference use it.

mod clip;
mod grads;
mod op;

pub use clip::{clip_grad_norm, clip_grad_value};
pub use grads::ParamGrads;
pub use op::{Activation, Op};

use crate::Tensor;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// A handle to a node of a [`Graph`]: its creation id, and the graph it
/// belongs to. Using a `Var` with another graph panics (it would otherwise
/// silently read whatever node has the same position there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var {
    graph: u32,
    id: u32,
}

impl Var {
    /// The node's creation id (its position on the tape).
    pub fn id(self) -> usize {
        self.id as usize
    }
}

/// Every graph gets its own number, so that a `Var` knows where it is from.
static NEXT_GRAPH: AtomicU32 = AtomicU32::new(1);

/// The local derivative of one op, run during the backward pass.
///
/// Given `grad` = ∂L/∂out, return ∂L/∂input for every input (in the order the
/// inputs were recorded), or `None` where `needs[i]` is false: the engine
/// never asks for a gradient nobody uses (e.g. ∂L/∂x for the data batch).
pub trait Backward {
    /// ∂L/∂input for each of `inputs`, given `grad` = ∂L/∂`out` (`None` where
    /// `needs[i]` is false).
    fn backward(
        &self,
        grad: &Tensor,
        inputs: &[&Tensor],
        out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>>;

    /// What the rule saved for the backward pass that is worth looking at
    /// (attention's weights, `[..., T, T]`), for the page and the tape
    /// viewer; most rules save nothing of the kind.
    fn saved(&self) -> Option<Tensor> {
        None
    }
}

struct Node {
    value: Arc<Tensor>,
    parents: Vec<Var>,
    backward: Option<Box<dyn Backward>>,
    requires_grad: bool,
    retain_grad: bool,
    op: Op,
}

/// A recorded computation (the tape).
///
/// ```
/// use backprop::{Graph, Tensor};
/// let mut g = Graph::new();
/// let x = g.param(Tensor::from_vec(vec![2], vec![1.0, -2.0]));
/// let y = g.mul(x, x); // x², a value used twice
/// let l = g.sum(y);
/// let grads = g.backward(l);
/// assert_eq!(grads.get(x).unwrap().data(), &[2.0, -4.0]);
/// ```
pub struct Graph {
    nodes: Vec<Node>,
    grad_enabled: bool,
    id: u32,
    /// In a shape probe ([`Graph::shape_probe`]): the shape errors the ops
    /// met, in order, instead of panics.
    shape_errors: Option<Vec<String>>,
}

impl Default for Graph {
    fn default() -> Self {
        Self::new()
    }
}

impl Graph {
    /// A graph that records backward rules (training).
    pub fn new() -> Self {
        Graph {
            nodes: Vec::new(),
            grad_enabled: true,
            id: NEXT_GRAPH.fetch_add(1, Ordering::Relaxed),
            shape_errors: None,
        }
    }

    /// A graph that records nothing for a backward pass (evaluation, inference).
    pub fn no_grad() -> Self {
        Graph {
            nodes: Vec::new(),
            grad_enabled: false,
            id: NEXT_GRAPH.fetch_add(1, Ordering::Relaxed),
            shape_errors: None,
        }
    }

    /// A graph that finds out what a computation does to shapes: it records
    /// no backward rule, and an op given shapes it cannot work with records
    /// the error ([`Graph::shape_error`]) and goes on with zeros of a
    /// plausible shape instead of panicking. What a module's default
    /// `output_shape` runs.
    pub fn shape_probe() -> Self {
        Graph {
            shape_errors: Some(Vec::new()),
            ..Self::no_grad()
        }
    }

    /// The first shape error a [shape probe](Graph::shape_probe) met.
    pub fn shape_error(&self) -> Option<&str> {
        self.shape_errors.as_ref()?.first().map(String::as_str)
    }

    /// An op was given shapes it cannot work with (`msg` says which and
    /// why). In a [shape probe](Graph::shape_probe) the error is recorded
    /// and a leaf of zeros shaped `instead` stands for the op's output;
    /// otherwise it panics: a shape the caller should have checked is a bug.
    pub fn bad_shapes(&mut self, msg: String, instead: &[usize]) -> Var {
        match &mut self.shape_errors {
            Some(errors) => {
                errors.push(msg);
                self.input(Tensor::zeros(instead))
            }
            None => panic!("{msg}"),
        }
    }

    /// Whether this graph records backward rules.
    pub fn grad_enabled(&self) -> bool {
        self.grad_enabled
    }

    /// The node behind `v`; panics if `v` belongs to another graph.
    #[inline]
    fn node(&self, v: Var) -> &Node {
        assert!(
            v.graph == self.id,
            "Var {} belongs to another graph: a Var can only be used with the Graph that made it",
            v.id
        );
        &self.nodes[v.id as usize]
    }

    /// The `Var` of node `id` of this graph (ids are positions on the tape).
    ///
    /// # Panics
    /// If there is no such node.
    pub fn var(&self, id: usize) -> Var {
        assert!(
            id < self.nodes.len(),
            "node {id} of a graph of {} nodes",
            self.nodes.len()
        );
        self.var_unchecked(id)
    }

    fn var_unchecked(&self, id: usize) -> Var {
        Var {
            graph: self.id,
            id: u32::try_from(id).expect("fewer than 2^32 nodes on a tape"),
        }
    }

    /// Number of nodes recorded.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node has been recorded.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A leaf that needs no gradient (a data batch, a target). Takes a
    /// `Tensor` or an `Arc<Tensor>`, as [`Graph::param`].
    pub fn input(&mut self, t: impl Into<Arc<Tensor>>) -> Var {
        self.leaf(t.into(), false)
    }

    /// A leaf whose gradient is wanted (a parameter). Takes a `Tensor` or an
    /// `Arc<Tensor>`: parameters are shared with the model, not copied.
    pub fn param(&mut self, t: impl Into<Arc<Tensor>>) -> Var {
        let rg = self.grad_enabled;
        self.leaf(t.into(), rg)
    }

    fn leaf(&mut self, value: Arc<Tensor>, requires_grad: bool) -> Var {
        self.nodes.push(Node {
            value,
            parents: Vec::new(),
            backward: None,
            requires_grad,
            retain_grad: requires_grad,
            op: Op::Leaf,
        });
        self.var_unchecked(self.nodes.len() - 1)
    }

    /// Record an op's output. The backward rule is kept only if some input
    /// needs a gradient and the graph records gradients. `op` is an [`Op`],
    /// or the name of an op written outside the crate (`"swish"`).
    pub fn push<B: Backward + 'static>(
        &mut self,
        op: impl Into<Op>,
        value: Tensor,
        parents: &[Var],
        backward: B,
    ) -> Var {
        let requires_grad =
            self.grad_enabled && parents.iter().any(|p| self.node(*p).requires_grad);
        self.nodes.push(Node {
            value: Arc::new(value),
            parents: parents.to_vec(),
            backward: if requires_grad {
                Some(Box::new(backward))
            } else {
                None
            },
            requires_grad,
            retain_grad: false,
            op: op.into(),
        });
        self.var_unchecked(self.nodes.len() - 1)
    }

    /// The value of a node.
    pub fn value(&self, v: Var) -> &Tensor {
        &self.node(v).value
    }

    /// The shape of a node's value.
    pub fn shape(&self, v: Var) -> &[usize] {
        self.node(v).value.shape()
    }

    /// Whether a gradient flows into this node.
    pub fn requires_grad(&self, v: Var) -> bool {
        self.node(v).requires_grad
    }

    /// The op that produced a node ([`Op::Leaf`] for inputs and parameters).
    pub fn op(&self, v: Var) -> Op {
        self.node(v).op
    }

    /// What the node's backward rule saved that is worth looking at
    /// (attention's weights; see [`Backward::saved`]); `None` for most ops
    /// and on a graph that records no backward rules.
    pub fn saved(&self, v: Var) -> Option<Tensor> {
        self.node(v).backward.as_ref()?.saved()
    }

    /// The name of the op that produced a node (`"leaf"` for inputs and
    /// parameters).
    pub fn op_name(&self, v: Var) -> &'static str {
        self.node(v).op.name()
    }

    /// The inputs of a node.
    pub fn parents(&self, v: Var) -> &[Var] {
        &self.node(v).parents
    }

    /// Keep this (non-leaf) node's gradient in the table returned by
    /// [`Graph::backward`], e.g. to inspect δ = ∂L/∂z of a layer.
    pub fn retain_grad(&mut self, v: Var) {
        self.node(v);
        self.nodes[v.id as usize].retain_grad = true;
    }

    /// Backpropagate from a scalar `loss` (seed ∂L/∂L = 1).
    pub fn backward(&self, loss: Var) -> GradTable {
        let shape = self.shape(loss).to_vec();
        assert_eq!(
            shape.iter().product::<usize>(),
            1,
            "backward() needs a scalar loss, got shape {shape:?}"
        );
        self.backward_with(loss, Tensor::full(&shape, 1.0))
    }

    /// Backpropagate from `out` with a given upstream gradient `seed` = ∂L/∂out.
    pub fn backward_with(&self, out: Var, seed: Tensor) -> GradTable {
        assert_eq!(
            seed.shape(),
            self.shape(out),
            "backward seed shape vs output shape"
        );
        let last = out.id as usize;
        let mut table: Vec<Option<Tensor>> = (0..=last).map(|_| None).collect();
        table[last] = Some(seed);
        for i in (0..=last).rev() {
            let node = &self.nodes[i];
            let Some(bw) = &node.backward else { continue };
            // Non-retained intermediate gradients are freed as soon as used.
            let grad = if node.retain_grad {
                match &table[i] {
                    Some(g) => g.clone(),
                    None => continue,
                }
            } else {
                match table[i].take() {
                    Some(g) => g,
                    None => continue,
                }
            };
            let inputs: Vec<&Tensor> = node
                .parents
                .iter()
                .map(|p| &*self.nodes[p.id as usize].value)
                .collect();
            let needs: Vec<bool> = node
                .parents
                .iter()
                .map(|p| self.nodes[p.id as usize].requires_grad)
                .collect();
            let grads = bw.backward(&grad, &inputs, &node.value, &needs);
            assert_eq!(
                grads.len(),
                node.parents.len(),
                "{}: backward arity",
                node.op
            );
            for (p, g) in node.parents.iter().zip(grads) {
                let Some(g) = g else { continue };
                let p = p.id as usize;
                if !self.nodes[p].requires_grad {
                    continue;
                }
                assert_eq!(
                    g.shape(),
                    self.nodes[p].value.shape(),
                    "{}: gradient shape vs input shape",
                    node.op
                );
                // Fan-out: a value used by several consumers sums their contributions.
                match &mut table[p] {
                    Some(acc) => acc.add_assign(&g),
                    slot @ None => *slot = Some(g),
                }
            }
        }
        // Drop what nobody asked to keep.
        for (i, slot) in table.iter_mut().enumerate() {
            if !self.nodes[i].retain_grad && i != last {
                *slot = None;
            }
        }
        GradTable {
            table,
            graph: self.id,
        }
    }
}

/// The gradient table after a backward pass: ∂L/∂v for every leaf that
/// requires a gradient and every node marked with [`Graph::retain_grad`].
pub struct GradTable {
    table: Vec<Option<Tensor>>,
    graph: u32,
}

impl GradTable {
    /// ∂L/∂v, or `None` if nothing flowed into `v`.
    pub fn get(&self, v: Var) -> Option<&Tensor> {
        self.check(v);
        self.table.get(v.id as usize).and_then(|g| g.as_ref())
    }

    /// Move ∂L/∂v out of the table.
    pub fn take(&mut self, v: Var) -> Option<Tensor> {
        self.check(v);
        self.table.get_mut(v.id as usize).and_then(|g| g.take())
    }

    fn check(&self, v: Var) {
        assert!(
            v.graph == self.graph,
            "Var {} belongs to another graph than this gradient table",
            v.id
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "belongs to another graph")]
    fn a_var_from_another_graph_is_refused() {
        let mut a = Graph::new();
        let mut b = Graph::new();
        let _ = b.input(Tensor::scalar(1.0));
        let x = a.input(Tensor::scalar(2.0));
        // Same position on b's tape, but not b's node.
        b.value(x);
    }

    #[test]
    #[should_panic(expected = "another graph than this gradient table")]
    fn a_gradient_table_refuses_a_foreign_var() {
        let mut a = Graph::new();
        let x = a.param(Tensor::scalar(2.0));
        let y = a.mul(x, x);
        let mut b = Graph::new();
        let z = b.param(Tensor::scalar(3.0));
        let grads = a.backward(y);
        grads.get(z);
    }
}
