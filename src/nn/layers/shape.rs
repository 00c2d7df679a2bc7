//! Layers that only reshape: `Flatten` (`nn.Flatten`), `Reshape` (`nn.Unflatten`).

use super::{fmt_shape, numel, spec_err};
use crate::nn::init::Init;
use crate::nn::module::{Module, Pass};
use crate::nn::registry::Plan;
use crate::nn::spec::Item;
use crate::nn::MAX_TENSOR_ELEMENTS;
use crate::{Error, Result, Var};

/// `[N, …] → [N, product]` (`nn.Flatten()`).
#[derive(Clone, Copy, Debug)]
pub struct Flatten {
    /// Always 1 (PyTorch's default): the batch axis stays. A field, so that
    /// every `Flatten` has an address of its own (the diagnostics tell
    /// layers apart by address).
    start_dim: usize,
}

impl Flatten {
    /// `[N, …] → [N, product of the rest]` (`nn.Flatten()`, `start_dim = 1`).
    pub fn new() -> Flatten {
        Flatten { start_dim: 1 }
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten::new()
    }
}

impl Module for Flatten {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        debug_assert_eq!(self.start_dim, 1);
        let y = p.flatten(x);
        p.layer_output(self, y);
        y
    }

    fn spec(&self) -> Option<String> {
        Some("flatten".into())
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        let n = numel(s).ok_or_else(|| {
            spec_err(format!(
                "the input {} holds more values per sample than can be counted",
                fmt_shape(s)
            ))
        })?;
        Ok(vec![n])
    }
}

/// `[N, …] → [N, *shape]` (`nn.Unflatten(1, shape)`).
#[derive(Clone, Debug)]
pub struct Reshape {
    shape: Vec<usize>,
}

impl Reshape {
    /// The per-sample shape to produce, e.g. `&[28, 28]`.
    pub fn new(shape: &[usize]) -> Reshape {
        Reshape {
            shape: shape.to_vec(),
        }
    }
}

impl Module for Reshape {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let mut shape = vec![p.shape(x)[0]];
        shape.extend(&self.shape);
        let y = p.reshape(x, &shape);
        p.layer_output(self, y);
        y
    }

    fn spec(&self) -> Option<String> {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        Some(format!("reshape({})", dims.join(",")))
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        crate::ops::shape::reshape_shape(s, &self.shape).map_err(Error::Spec)
    }
}

/// The input itself (`nn.Identity`): a placeholder where a block may hold
/// a layer or none (a ResNet's shortcut when the shapes agree).
///
/// ```
/// use backprop::nn::{Identity, Module};
/// assert_eq!(Identity.output_shape(&[3, 32, 32]).unwrap(), vec![3, 32, 32]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl Module for Identity {
    fn forward(&self, _p: &mut Pass, x: Var) -> Var {
        x
    }

    fn spec(&self) -> Option<String> {
        Some("identity".into())
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        Ok(s.to_vec())
    }
}

/// `identity`.
pub(crate) fn plan_identity(item: &Item, _init: Init) -> Result<Plan> {
    item.expect_args(0, &[], "identity")?;
    Ok(Plan::ready(Identity))
}

/// `flatten`.
pub(crate) fn plan_flatten(item: &Item, _init: Init) -> Result<Plan> {
    item.expect_args(0, &[], "flatten")?;
    Ok(Plan::ready(Flatten::new()))
}

/// `reshape(d1,d2,…)` (`unflatten`, `view`): the per-sample shape.
pub(crate) fn plan_reshape(item: &Item, _init: Init) -> Result<Plan> {
    if item.args.is_empty() {
        return Err(item.err("give the per-sample shape, e.g. reshape(28,28)"));
    }
    item.expect_args(8, &[], "reshape(28,28)")?;
    let dims = (0..item.args.len())
        .map(|i| item.usize_arg(i, "", "dimension"))
        .collect::<Result<Vec<_>>>()?;
    let n = dims.iter().fold(1u128, |a, &d| a.saturating_mul(d as u128));
    if n > MAX_TENSOR_ELEMENTS as u128 {
        return Err(item.err(format!(
            "the shape holds {n} values per sample, more than the {MAX_TENSOR_ELEMENTS} (2^31) \
             one tensor may hold"
        )));
    }
    Ok(Plan::ready(Reshape::new(&dims)))
}
