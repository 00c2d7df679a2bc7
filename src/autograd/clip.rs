//! Gradient clipping, as `torch.nn.utils.clip_grad_norm_` and `clip_grad_value_`.

use crate::Tensor;

/// Scale all gradients together so that their global L2 norm is at most
/// `max_norm`; returns the norm before clipping. As PyTorch, the scale is
/// `max_norm / (norm + 1e-6)`, applied only when it is below 1.
///
/// ```
/// use backprop::{Tensor, optim::clip_grad_norm};
/// let mut g = vec![Tensor::from_vec(vec![2], vec![3.0, 4.0])];
/// assert_eq!(clip_grad_norm(g.iter_mut(), 1.0), 5.0);
/// assert!((g[0].norm() - 1.0).abs() < 1e-5);
/// ```
pub fn clip_grad_norm<'a>(grads: impl IntoIterator<Item = &'a mut Tensor>, max_norm: f32) -> f32 {
    let mut grads: Vec<&mut Tensor> = grads.into_iter().collect();
    // each tensor's norm on its own thread, summed in order
    let shared: Vec<&Tensor> = grads.iter().map(|g| &**g).collect();
    let norms = crate::cpu::team::map(shared, |_, g| g.norm());
    let total = norms
        .into_iter()
        .map(|n| (n as f32) as f64)
        .map(|n| n * n)
        .sum::<f64>()
        .sqrt() as f32;
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        for g in grads.iter_mut() {
            g.scale(coef);
        }
    }
    total
}

/// Clamp every gradient element to `[-v, v]`.
///
/// ```
/// use backprop::{Tensor, optim::clip_grad_value};
/// let mut g = vec![Tensor::from_vec(vec![3], vec![-2.0, 0.1, 5.0])];
/// clip_grad_value(g.iter_mut(), 0.5);
/// assert_eq!(g[0].data(), &[-0.5, 0.1, 0.5]);
/// ```
pub fn clip_grad_value<'a>(grads: impl IntoIterator<Item = &'a mut Tensor>, v: f32) {
    for g in grads {
        for x in g.data_mut() {
            *x = x.clamp(-v, v);
        }
    }
}
