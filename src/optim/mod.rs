//! Optimizers with PyTorch's exact update rules and defaults, gradient
//! clipping, and learning-rate schedules.
//!
//! Each update is one fused loop over a parameter buffer (no temporaries),
//! written in the same order of `f32` operations as PyTorch's single-tensor
//! CPU implementations (`torch/optim/{sgd,adam,adamw,rmsprop}.py`), so that
//! runs agree step for step to float tolerance.

mod clip;
mod schedule;

pub use clip::{clip_grad_norm, clip_grad_value};
pub use schedule::Schedule;

use crate::tensor::par;
use crate::{Error, Result, Tensor};

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Stochastic gradient descent; with `momentum` > 0 the heavy-ball
    /// `v = μv + g; θ −= ηv`, or Nesterov's variant.
    Sgd,
    /// Adam (bias-corrected); weight decay as L2 added to the gradient.
    Adam,
    /// Adam with decoupled weight decay `θ −= η·λ·θ`.
    AdamW,
    /// RMSprop: `s = αs + (1−α)g²; θ −= η g / (√s + ε)`.
    RmsProp,
}

impl Kind {
    /// Parse a name as given on the command line.
    pub fn parse(s: &str) -> Result<Kind> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "sgd" | "gd" => Kind::Sgd,
            "adam" => Kind::Adam,
            "adamw" => Kind::AdamW,
            "rmsprop" => Kind::RmsProp,
            _ => {
                return Err(Error::Config(format!(
                    "--optimizer {s}: unknown optimizer; use sgd, adam, adamw or rmsprop"
                )))
            }
        })
    }
}

/// Hyper-parameters. [`Config::new`] gives PyTorch's defaults for each kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub kind: Kind,
    pub lr: f32,
    /// SGD and RMSprop momentum μ.
    pub momentum: f32,
    /// SGD dampening (PyTorch's default 0).
    pub dampening: f32,
    /// Nesterov momentum (SGD).
    pub nesterov: bool,
    /// L2 penalty added to the gradient (SGD, Adam, RMSprop) or decoupled decay (AdamW).
    pub weight_decay: f32,
    /// Adam's (β₁, β₂).
    pub betas: (f64, f64),
    /// ε of Adam and RMSprop.
    pub eps: f32,
    /// RMSprop's smoothing constant α.
    pub alpha: f64,
}

impl Config {
    /// PyTorch's defaults: SGD lr 1e-3; Adam/AdamW lr 1e-3, β = (0.9, 0.999),
    /// ε = 1e-8, AdamW weight decay 0.01; RMSprop lr 1e-2, α = 0.99, ε = 1e-8.
    ///
    /// ```
    /// use backprop::optim::{Config, Kind};
    /// let c = Config::new(Kind::AdamW);
    /// assert_eq!((c.lr, c.eps, c.weight_decay), (1e-3, 1e-8, 1e-2));
    /// ```
    pub fn new(kind: Kind) -> Config {
        Config {
            kind,
            lr: if kind == Kind::RmsProp { 1e-2 } else { 1e-3 },
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: if kind == Kind::AdamW { 1e-2 } else { 0.0 },
            betas: (0.9, 0.999),
            eps: 1e-8,
            alpha: 0.99,
        }
    }

    /// Reject values PyTorch would reject, with the option's name.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if !(self.lr >= 0.0 && self.lr.is_finite()) {
            return bad(format!(
                "--lr {}: the learning rate must be a finite number ≥ 0",
                self.lr
            ));
        }
        if !(self.momentum >= 0.0 && self.momentum.is_finite()) {
            return bad(format!("--momentum {}: must be ≥ 0", self.momentum));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(format!("--weight-decay {}: must be ≥ 0", self.weight_decay));
        }
        if self.nesterov
            && self.kind == Kind::Sgd
            && (self.momentum <= 0.0 || self.dampening != 0.0)
        {
            return bad("--nesterov needs --momentum > 0 (and no dampening)".into());
        }
        if self.nesterov && self.kind != Kind::Sgd {
            return bad("--nesterov applies to --optimizer sgd only".into());
        }
        if !(0.0..1.0).contains(&self.betas.0) || !(0.0..1.0).contains(&self.betas.1) {
            return bad(format!("betas {:?}: each must be in [0, 1)", self.betas));
        }
        if self.eps.is_nan() || self.eps < 0.0 {
            return bad(format!("eps {}: must be ≥ 0", self.eps));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return bad(format!("alpha {}: must be in [0, 1]", self.alpha));
        }
        Ok(())
    }
}

/// An optimizer: its config plus per-parameter state.
pub struct Optimizer {
    pub config: Config,
    /// Momentum buffer / Adam's first moment (empty until first used).
    m: Vec<Vec<f32>>,
    /// Adam's second moment / RMSprop's running mean of g².
    v: Vec<Vec<f32>>,
    /// Steps taken.
    pub steps: u64,
}

impl Optimizer {
    pub fn new(config: Config) -> Optimizer {
        Optimizer {
            config,
            m: Vec::new(),
            v: Vec::new(),
            steps: 0,
        }
    }

    /// One update of every parameter with its gradient at learning rate `lr`
    /// (the schedule's current value). Parameters and gradients come in the
    /// model's fixed parameter order.
    pub fn step(&mut self, params: &mut [&mut Tensor], grads: &[Tensor], lr: f32) {
        assert_eq!(
            params.len(),
            grads.len(),
            "optimizer: parameters vs gradients"
        );
        if self.m.is_empty() {
            self.m = params.iter().map(|_| Vec::new()).collect();
            self.v = params.iter().map(|_| Vec::new()).collect();
        }
        self.steps += 1;
        let c = &self.config;
        for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            assert_eq!(
                p.shape(),
                g.shape(),
                "optimizer: parameter {i} vs its gradient"
            );
            let (p, g) = (p.data_mut(), g.data());
            let n = p.len();
            // State buffers start empty and are sized on the first step (SGD
            // stores the first gradient itself, as PyTorch does).
            let first = self.m[i].is_empty();
            let (m, v) = (&mut self.m[i], &mut self.v[i]);
            match c.kind {
                Kind::Sgd => {
                    if first && c.momentum != 0.0 {
                        m.resize(n, 0.0);
                    }
                    par::for_chunks(n, [p, m], |s, [p, m]| {
                        sgd(c, lr, first, p, &g[s..s + p.len()], m)
                    });
                }
                Kind::Adam | Kind::AdamW => {
                    if first {
                        m.resize(n, 0.0);
                        v.resize(n, 0.0);
                    }
                    let t = self.steps;
                    par::for_chunks(n, [p, m, v], |s, [p, m, v]| {
                        adam(c, lr, t, p, &g[s..s + p.len()], m, v)
                    });
                }
                Kind::RmsProp => {
                    if v.is_empty() {
                        v.resize(n, 0.0);
                        if c.momentum > 0.0 {
                            m.resize(n, 0.0);
                        }
                    }
                    par::for_chunks(n, [p, m, v], |s, [p, m, v]| {
                        rmsprop(c, lr, p, &g[s..s + p.len()], m, v)
                    });
                }
            }
        }
    }

    /// The optimizer's state as named tensors (`{param}.momentum_buffer`,
    /// `{param}.exp_avg`, `{param}.exp_avg_sq`, `{param}.square_avg`), for saving.
    pub fn state(&self, names: &[String]) -> Vec<(String, Tensor)> {
        let (mname, vname) = match self.config.kind {
            Kind::Sgd => ("momentum_buffer", ""),
            Kind::Adam | Kind::AdamW => ("exp_avg", "exp_avg_sq"),
            Kind::RmsProp => ("momentum_buffer", "square_avg"),
        };
        let mut out = Vec::new();
        for (i, n) in names.iter().enumerate() {
            if let Some(m) = self.m.get(i).filter(|m| !m.is_empty()) {
                out.push((
                    format!("{n}.{mname}"),
                    Tensor::from_vec(vec![m.len()], m.clone()),
                ));
            }
            if let Some(v) = self.v.get(i).filter(|v| !v.is_empty()) {
                out.push((
                    format!("{n}.{vname}"),
                    Tensor::from_vec(vec![v.len()], v.clone()),
                ));
            }
        }
        out
    }
}

/// `torch.optim.SGD` on one chunk of a parameter; `buf` (the momentum
/// buffer, empty without momentum) is overwritten on the `first` step.
fn sgd(c: &Config, lr: f32, first: bool, p: &mut [f32], g: &[f32], buf: &mut [f32]) {
    let (wd, mu, damp) = (c.weight_decay, c.momentum, c.dampening);
    if mu == 0.0 {
        for (p, &g) in p.iter_mut().zip(g) {
            let d = if wd != 0.0 { g + wd * *p } else { g };
            *p += -lr * d;
        }
        return;
    }
    for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
        let d = if wd != 0.0 { g + wd * *p } else { g };
        *b = if first { d } else { *b * mu + (1.0 - damp) * d };
        let step = if c.nesterov { d + mu * *b } else { *b };
        *p += -lr * step;
    }
}

/// `torch.optim.Adam` / `AdamW` on one chunk of a parameter.
fn adam(c: &Config, lr: f32, t: u64, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let (b1, b2) = c.betas;
    // PyTorch computes these scalars in Python floats (f64).
    let bc1 = 1.0 - b1.powi(t as i32);
    let bc2 = 1.0 - b2.powi(t as i32);
    let step_size = (lr as f64 / bc1) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    let (w1, b2f, w2, eps) = ((1.0 - b1) as f32, b2 as f32, (1.0 - b2) as f32, c.eps);
    let decoupled = c.kind == Kind::AdamW;
    let wd = c.weight_decay;
    let decay = (1.0 - lr as f64 * wd as f64) as f32;
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let mut g = g;
        if wd != 0.0 {
            if decoupled {
                *p *= decay;
            } else {
                g += wd * *p;
            }
        }
        // exp_avg.lerp_(grad, 1 − β₁): m + w(g − m) for w < 0.5.
        *m += w1 * (g - *m);
        *v = *v * b2f + w2 * g * g;
        let denom = v.sqrt() / bc2_sqrt + eps;
        *p += -step_size * *m / denom;
    }
}

/// `torch.optim.RMSprop` (not centered) on one chunk of a parameter.
fn rmsprop(c: &Config, lr: f32, p: &mut [f32], g: &[f32], buf: &mut [f32], sq: &mut [f32]) {
    let (a, wa, eps, mu, wd) = (
        c.alpha as f32,
        (1.0 - c.alpha) as f32,
        c.eps,
        c.momentum,
        c.weight_decay,
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cfg: Config, steps: usize) -> f32 {
        // Minimize (θ − 3)² from θ = 0.
        let mut opt = Optimizer::new(cfg.clone());
        let mut p = Tensor::scalar(0.0);
        for _ in 0..steps {
            let g = Tensor::scalar(2.0 * (p.item() - 3.0));
            opt.step(&mut [&mut p], &[g], cfg.lr);
        }
        p.item()
    }

    #[test]
    fn every_optimizer_minimizes_a_quadratic() {
        for kind in [Kind::Sgd, Kind::Adam, Kind::AdamW, Kind::RmsProp] {
            let mut c = Config::new(kind);
            c.lr = 0.05;
            c.weight_decay = 0.0;
            let p = run(c, 2000);
            assert!((p - 3.0).abs() < 0.05, "{kind:?}: {p}");
        }
    }

    #[test]
    fn momentum_first_step_and_nesterov_by_hand() {
        let mut c = Config::new(Kind::Sgd);
        c.lr = 0.1;
        c.momentum = 0.9;
        let mut opt = Optimizer::new(c.clone());
        let mut p = Tensor::scalar(1.0);
        opt.step(&mut [&mut p], &[Tensor::scalar(2.0)], 0.1); // buf = 2; p = 1 − 0.2
        assert!((p.item() - 0.8).abs() < 1e-7);
        opt.step(&mut [&mut p], &[Tensor::scalar(1.0)], 0.1); // buf = 2.8; p = 0.8 − 0.28
        assert!((p.item() - 0.52).abs() < 1e-6);
        c.nesterov = true;
        let mut opt = Optimizer::new(c);
        let mut p = Tensor::scalar(1.0);
        opt.step(&mut [&mut p], &[Tensor::scalar(2.0)], 0.1); // buf = 2; step = 2 + 1.8
        assert!((p.item() - (1.0 - 0.38)).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_is_lr_times_sign() {
        let c = Config::new(Kind::Adam);
        let mut opt = Optimizer::new(c);
        let mut p = Tensor::from_vec(vec![2], vec![1.0, 1.0]);
        opt.step(
            &mut [&mut p],
            &[Tensor::from_vec(vec![2], vec![0.5, -3.0])],
            1e-3,
        );
        assert!((p.data()[0] - (1.0 - 1e-3)).abs() < 1e-6);
        assert!((p.data()[1] - (1.0 + 1e-3)).abs() < 1e-6);
    }

    #[test]
    fn validation_names_the_option() {
        let mut c = Config::new(Kind::Sgd);
        c.lr = -1.0;
        assert!(c.validate().unwrap_err().to_string().contains("--lr"));
        let mut c = Config::new(Kind::Sgd);
        c.nesterov = true;
        assert!(c.validate().unwrap_err().to_string().contains("--nesterov"));
    }
}
