//! The optimizers' loops over one chunk of a parameter: the update rules of
//! `torch.optim.SGD`, `Adam`/`AdamW` and `RMSprop` (not centered), value by
//! value, compiled for the widest vectors ([`wide_fn!`]). The scalars of a
//! step (bias corrections, decays) are worked out by [`crate::optim`], in
//! the precision PyTorch uses; these loops only apply them.

use crate::cpu::simd::wide_fn;

/// One SGD step's scalars.
pub(crate) struct Sgd {
    pub lr: f32,
    pub weight_decay: f32,
    /// Momentum μ (0: none).
    pub mu: f32,
    pub dampening: f32,
    pub nesterov: bool,
    /// The buffer is set to the gradient itself (the first step, as PyTorch).
    pub first: bool,
}

/// One Adam / AdamW step's scalars.
pub(crate) struct Adam {
    /// `lr / (1 − β₁ᵗ)`.
    pub step_size: f32,
    /// `√(1 − β₂ᵗ)`.
    pub bc2_sqrt: f32,
    /// `1 − β₁`.
    pub w1: f32,
    /// `β₂`.
    pub b2: f32,
    /// `1 − β₂`.
    pub w2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// AdamW: decay the weights (`θ ·= decay`) instead of the gradient.
    pub decoupled: bool,
    /// `1 − lr·λ`.
    pub decay: f32,
}

/// One RMSprop step's scalars.
pub(crate) struct RmsProp {
    pub lr: f32,
    pub alpha: f32,
    /// `1 − α`.
    pub w_alpha: f32,
    pub eps: f32,
    /// Momentum μ (0: none).
    pub mu: f32,
    pub weight_decay: f32,
}

wide_fn! {
    /// `torch.optim.SGD` on one chunk; `buf` (the momentum buffer, empty
    /// without momentum) is overwritten on the first step.
    pub(crate) fn sgd(k: &Sgd, p: &mut [f32], g: &[f32], buf: &mut [f32]) {
        let (lr, wd, mu) = (k.lr, k.weight_decay, k.mu);
        if mu == 0.0 {
            for (p, &g) in p.iter_mut().zip(g) {
                let d = if wd != 0.0 { g + wd * *p } else { g };
                *p += -lr * d;
            }
            return;
        }
        for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
            let d = if wd != 0.0 { g + wd * *p } else { g };
            *b = if k.first { d } else { *b * mu + (1.0 - k.dampening) * d };
            let step = if k.nesterov { d + mu * *b } else { *b };
            *p += -lr * step;
        }
    }
}

wide_fn! {
    /// `torch.optim.Adam` / `AdamW` on one chunk.
    pub(crate) fn adam(k: &Adam, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let wd = k.weight_decay;
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let mut g = g;
            if wd != 0.0 {
                if k.decoupled {
                    *p *= k.decay;
                } else {
                    g += wd * *p;
                }
            }
            // exp_avg.lerp_(grad, 1 − β₁): m + w(g − m) for w < 0.5.
            *m += k.w1 * (g - *m);
            *v = *v * k.b2 + k.w2 * g * g;
            let denom = v.sqrt() / k.bc2_sqrt + k.eps;
            *p += -k.step_size * *m / denom;
        }
    }
}

wide_fn! {
    /// `torch.optim.RMSprop` (not centered) on one chunk.
    pub(crate) fn rmsprop(k: &RmsProp, p: &mut [f32], g: &[f32], buf: &mut [f32], sq: &mut [f32]) {
        let (a, wa, eps, mu, wd, lr) = (k.alpha, k.w_alpha, k.eps, k.mu, k.weight_decay, k.lr);
        for (i, (p, &g)) in p.iter_mut().zip(g).enumerate() {
            let g = if wd != 0.0 { g + wd * *p } else { g };
            let s = &mut sq[i];
            *s = *s * a + wa * g * g;
            let avg = s.sqrt() + eps;
            if mu > 0.0 {
                let b = &mut buf[i];
                *b = *b * mu + g / avg;
                *p += -lr * *b;
            } else {
                *p += -lr * g / avg;
            }
        }
    }
}
