//! A training pass's gradients by parameter, with clipping
//! (`torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`).

use crate::Tensor;

/// The gradients of one training pass, in the model's parameter order, and
/// the buffer values it computed. Give them to
/// [`Optimizer::step`](crate::optim::Optimizer::step), which applies both.
#[must_use = "give the gradients to Optimizer::step: it updates the parameters and stores the batch-norm statistics"]
pub struct ParamGrads {
    /// The loss the gradients are of.
    pub loss: f32,
    grads: Vec<Option<Tensor>>,
    updates: Vec<(u64, Tensor)>,
}

impl ParamGrads {
    /// ∂L/∂θ of each parameter in visit order (`None`: nothing flowed into it).
    pub fn tensors(&self) -> &[Option<Tensor>] {
        &self.grads
    }

    /// Mutable access, e.g. to average or scale the gradients.
    pub fn tensors_mut(&mut self) -> &mut [Option<Tensor>] {
        &mut self.grads
    }

    /// Scale all gradients together so that their global L2 norm is at most
    /// `max_norm` (`torch.nn.utils.clip_grad_norm_`); returns the norm before.
    pub fn clip_norm(&mut self, max_norm: f32) -> f32 {
        super::clip_grad_norm(self.grads.iter_mut().flatten(), max_norm)
    }

    /// Clamp every element to `[-v, v]` (`torch.nn.utils.clip_grad_value_`).
    pub fn clip_value(&mut self, v: f32) {
        super::clip_grad_value(self.grads.iter_mut().flatten(), v)
    }

    /// The gradients of one pass (with its `loss`) and the buffer values
    /// it computed, by buffer id.
    pub(crate) fn new(loss: f32, grads: Vec<Option<Tensor>>, updates: Vec<(u64, Tensor)>) -> Self {
        ParamGrads {
            loss,
            grads,
            updates,
        }
    }

    pub(crate) fn into_parts(self) -> (Vec<Option<Tensor>>, Vec<(u64, Tensor)>) {
        (self.grads, self.updates)
    }
}
