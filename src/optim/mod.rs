//! Optimizers with PyTorch's exact update rules and defaults, gradient
//! clipping, and learning-rate schedules.
//!
//! Each update is one fused loop over a parameter buffer (no temporaries),
//! written in the same order of `f32` operations as PyTorch's single-tensor
//! CPU implementations (`torch/optim/{sgd,adam,adamw,rmsprop}.py`), so that
//! runs agree step for step to float tolerance.

mod schedule;

pub use crate::autograd::{clip_grad_norm, clip_grad_value};
pub use schedule::{Schedule, ScheduleKind};

use crate::autograd::ParamGrads;
use crate::cpu::{par, update};
use crate::nn::module::apply_buffer_updates;
use crate::nn::{Entry, EntryMut, Module, Visitor, VisitorMut};
use crate::{Error, Result, Setting, Tensor};

/// Values per parallel job of Adam and RMSprop, whose step divides and
/// takes a square root per value: a weight matrix of LeNet's (48 000
/// values) is split over the threads instead of run on one while the
/// others wait.
const DIVIDING_CHUNK: usize = 1 << 13;

/// Which update rule (`--optimizer`: `sgd`, `adam`, `adamw`, `rmsprop`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum OptimizerKind {
    /// Stochastic gradient descent, with optional (Nesterov) momentum.
    #[cfg_attr(feature = "cli", value(alias = "gd"))]
    Sgd,
    /// Adam (bias-corrected); weight decay as L2 added to the gradient.
    Adam,
    /// Adam with decoupled weight decay (θ −= η·λ·θ).
    #[cfg_attr(feature = "cli", value(name = "adamw"))]
    AdamW,
    /// RMSprop: s = αs + (1−α)g²; θ −= η g / (√s + ε).
    #[cfg_attr(feature = "cli", value(name = "rmsprop"))]
    RmsProp,
}

impl OptimizerKind {
    /// The name on the command line (`sgd`, `adam`, `adamw`, `rmsprop`).
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
            OptimizerKind::RmsProp => "rmsprop",
        }
    }
}

impl std::str::FromStr for OptimizerKind {
    type Err = Error;

    /// `sgd` (or `gd`), `adam`, `adamw`, `rmsprop`, any case.
    fn from_str(s: &str) -> Result<OptimizerKind> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "sgd" | "gd" => OptimizerKind::Sgd,
            "adam" => OptimizerKind::Adam,
            "adamw" => OptimizerKind::AdamW,
            "rmsprop" => OptimizerKind::RmsProp,
            _ => {
                return Err(Error::Config(format!(
                    "unknown optimizer `{s}`; use sgd, adam, adamw or rmsprop"
                )))
            }
        })
    }
}

/// The momentum of SGD (and RMSprop, which uses `Classic` without dampening).
#[derive(Clone, Copy, Debug, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum Momentum {
    /// Plain gradient steps.
    #[default]
    None,
    /// Heavy ball: `v = μv + (1 − dampening)·g; θ −= ηv` (the first step
    /// stores `g` itself, as PyTorch).
    Classic {
        /// The momentum factor μ.
        mu: f32,
        /// The fraction of the gradient left out of the velocity (0 in PyTorch's default).
        dampening: f32,
    },
    /// Nesterov's variant: `v = μv + g; θ −= η(g + μv)`.
    Nesterov {
        /// The momentum factor μ.
        mu: f32,
    },
}

impl Momentum {
    /// Heavy-ball momentum `mu` without dampening (PyTorch's `momentum=mu`).
    pub fn classic(mu: f32) -> Momentum {
        if mu == 0.0 {
            Momentum::None
        } else {
            Momentum::Classic { mu, dampening: 0.0 }
        }
    }

    /// μ (0 without momentum).
    pub fn mu(self) -> f32 {
        match self {
            Momentum::None => 0.0,
            Momentum::Classic { mu, .. } | Momentum::Nesterov { mu } => mu,
        }
    }
}

/// Hyper-parameters. [`OptimizerConfig::new`] gives PyTorch's defaults for each kind.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimizerConfig {
    /// Which update rule.
    pub kind: OptimizerKind,
    /// The base learning rate; the optimizer's [`Schedule`] scales it per epoch.
    pub lr: f32,
    /// SGD's momentum (classic or Nesterov); RMSprop's momentum μ (`Classic`).
    pub momentum: Momentum,
    /// L2 penalty added to the gradient (SGD, Adam, RMSprop) or decoupled decay (AdamW).
    pub weight_decay: f32,
    /// Adam's (β₁, β₂).
    pub betas: (f64, f64),
    /// ε of Adam and RMSprop.
    pub eps: f32,
    /// RMSprop's smoothing constant α.
    pub alpha: f64,
    /// Which parameters the weight decay applies to (PyTorch: every one
    /// in the group; GPT training: matrices only).
    #[serde(default)]
    pub decay_on: DecayOn,
}

/// Which parameters weight decay applies to: the two parameter groups of
/// GPT training, by the rule nanoGPT's `configure_optimizers` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum DecayOn {
    /// Every parameter (one parameter group, PyTorch's default).
    #[default]
    All,
    /// Only parameters of two or more dimensions (the weights of linear and
    /// convolution layers, embedding tables); none on biases and norm
    /// scales: `[{params: dim ≥ 2, weight_decay: λ}, {params: dim < 2,
    /// weight_decay: 0}]`.
    Matrices,
}

impl DecayOn {
    /// Whether a parameter of this shape is decayed.
    pub fn applies(self, shape: &[usize]) -> bool {
        self == DecayOn::All || shape.len() >= 2
    }
}

impl OptimizerConfig {
    /// PyTorch's defaults: SGD lr 1e-3; Adam/AdamW lr 1e-3, β = (0.9, 0.999),
    /// ε = 1e-8, AdamW weight decay 0.01; RMSprop lr 1e-2, α = 0.99, ε = 1e-8.
    ///
    /// ```
    /// use backprop::optim::{OptimizerConfig, OptimizerKind};
    /// let c = OptimizerConfig::new(OptimizerKind::AdamW);
    /// assert_eq!((c.lr, c.eps, c.weight_decay), (1e-3, 1e-8, 1e-2));
    /// ```
    pub fn new(kind: OptimizerKind) -> OptimizerConfig {
        OptimizerConfig {
            kind,
            lr: if kind == OptimizerKind::RmsProp {
                1e-2
            } else {
                1e-3
            },
            momentum: Momentum::None,
            weight_decay: if kind == OptimizerKind::AdamW {
                1e-2
            } else {
                0.0
            },
            betas: (0.9, 0.999),
            eps: 1e-8,
            alpha: 0.99,
            decay_on: DecayOn::All,
        }
    }

    /// How many values the optimizer keeps per parameter value: Adam's two
    /// moments, RMSprop's square average (and its momentum buffer), SGD's
    /// momentum buffer; 0 for plain SGD.
    pub fn state_copies(&self) -> usize {
        let momentum = usize::from(self.momentum != Momentum::None);
        match self.kind {
            OptimizerKind::Adam | OptimizerKind::AdamW => 2,
            OptimizerKind::RmsProp => 1 + momentum,
            OptimizerKind::Sgd => momentum,
        }
    }

    /// SGD at learning rate `lr`, with `momentum`.
    ///
    /// ```
    /// use backprop::optim::{OptimizerConfig, Momentum};
    /// let c = OptimizerConfig::sgd(0.05, Momentum::Nesterov { mu: 0.9 });
    /// assert!(c.validate().is_ok());
    /// ```
    pub fn sgd(lr: f32, momentum: Momentum) -> OptimizerConfig {
        OptimizerConfig {
            lr,
            momentum,
            ..OptimizerConfig::new(OptimizerKind::Sgd)
        }
    }

    /// Adam at learning rate `lr` (PyTorch's other defaults).
    pub fn adam(lr: f32) -> OptimizerConfig {
        OptimizerConfig {
            lr,
            ..OptimizerConfig::new(OptimizerKind::Adam)
        }
    }

    /// Reject values PyTorch would reject, naming the hyper-parameter.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if !(self.lr >= 0.0 && self.lr.is_finite()) {
            return Err(Error::invalid(
                Setting::LearningRate,
                self.lr,
                "the learning rate must be a finite number ≥ 0",
            ));
        }
        let mu = self.momentum.mu();
        if !(mu >= 0.0 && mu.is_finite()) {
            return Err(Error::invalid(Setting::Momentum, mu, "must be ≥ 0"));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(Error::invalid(
                Setting::WeightDecay,
                self.weight_decay,
                "must be ≥ 0",
            ));
        }
        match self.momentum {
            Momentum::Nesterov { mu } if mu <= 0.0 => {
                return bad("Nesterov momentum needs a momentum > 0".into())
            }
            Momentum::Nesterov { .. } if self.kind != OptimizerKind::Sgd => {
                return bad("Nesterov momentum applies to SGD only".into())
            }
            Momentum::Classic { dampening, .. }
                if self.kind == OptimizerKind::RmsProp && dampening != 0.0 =>
            {
                return bad("RMSprop's momentum has no dampening".into())
            }
            Momentum::Classic { dampening, .. } if !(0.0..=1.0).contains(&dampening) => {
                return bad(format!("dampening {dampening}: must be in [0, 1]"))
            }
            _ => {}
        }
        if matches!(self.kind, OptimizerKind::Adam | OptimizerKind::AdamW)
            && self.momentum != Momentum::None
        {
            return bad("Adam has no momentum option (its β₁ plays that part)".into());
        }
        if !(0.0..1.0).contains(&self.betas.0) || !(0.0..1.0).contains(&self.betas.1) {
            return Err(Error::invalid(
                Setting::Betas,
                format!("{:?}", self.betas),
                "each must be in [0, 1)",
            ));
        }
        if self.eps.is_nan() || self.eps < 0.0 {
            return Err(Error::invalid(Setting::Eps, self.eps, "must be ≥ 0"));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(Error::invalid(
                Setting::Alpha,
                self.alpha,
                "must be in [0, 1]",
            ));
        }
        Ok(())
    }
}

/// The state kept for one parameter, as PyTorch names it.
#[derive(Clone, Debug, Default, PartialEq)]
struct ParamState {
    /// The parameter's full name.
    name: String,
    shape: Vec<usize>,
    /// Updates applied to this parameter.
    step: u64,
    /// Momentum buffer / Adam's first moment (empty until first used).
    m: Vec<f32>,
    /// Adam's second moment / RMSprop's running mean of g².
    v: Vec<f32>,
}

/// An optimizer: its config, its learning-rate schedule, and per-parameter
/// state keyed by the parameters' names.
///
/// The learning rate has one source: [`Optimizer::lr`], the schedule's value
/// for the current epoch ([`Optimizer::set_epoch`]).
pub struct Optimizer {
    /// The hyper-parameters; `config.lr` is the schedule's base rate.
    pub config: OptimizerConfig,
    /// How the learning rate changes over epochs.
    pub schedule: Schedule,
    epoch: usize,
    /// The step a step schedule is at.
    position: usize,
    state: Vec<ParamState>,
}

impl Optimizer {
    /// An optimizer at a constant learning rate `config.lr`.
    pub fn new(config: OptimizerConfig) -> Optimizer {
        Optimizer {
            config,
            schedule: Schedule::Constant,
            epoch: 0,
            position: 0,
            state: Vec::new(),
        }
    }

    /// The same, with the rate following `schedule` over epochs.
    pub fn with_schedule(mut self, schedule: Schedule) -> Optimizer {
        self.schedule = schedule;
        self
    }

    /// Set the base learning rate (what the [`Schedule`] scales; the rate
    /// itself without one): for a rate worked out step by step in a loop
    /// written by hand (a warm-up, a LambdaLR-like rule).
    ///
    /// ```
    /// use backprop::optim::{Optimizer, OptimizerConfig};
    /// let mut opt = Optimizer::new(OptimizerConfig::adam(1e-3));
    /// for step in 0..100 {
    ///     opt.set_lr(1e-3 * ((step + 1) as f32 / 100.0).min(1.0)); // warm-up
    ///     // … opt.step(&mut model, grads) …
    /// }
    /// assert_eq!(opt.lr(), 1e-3);
    /// ```
    pub fn set_lr(&mut self, lr: f32) {
        self.config.lr = lr;
    }

    /// The learning rate of the current epoch.
    pub fn lr(&self) -> f32 {
        self.schedule.lr(self.config.lr, self.epoch, self.position)
    }

    /// Move a step schedule ([`Schedule::OneCycle`]) to 0-based optimizer
    /// step `step` (the updates before the next one). The trainer calls it
    /// before every step; a loop written by hand that uses a step schedule
    /// must too.
    pub fn set_step(&mut self, step: usize) {
        self.position = step;
    }

    /// The current (0-based) epoch of the schedule.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Move the schedule to (0-based) `epoch`.
    pub fn set_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
    }

    /// Updates taken so far (of the most-updated parameter).
    pub fn steps(&self) -> u64 {
        self.state.iter().map(|s| s.step).max().unwrap_or(0)
    }

    /// One update of every parameter of `model` that has a gradient in
    /// `grads` (PyTorch skips parameters without one), at [`Optimizer::lr`];
    /// then the buffer values the pass computed (batch norm's running
    /// statistics) are stored.
    ///
    /// # Panics
    /// If `grads` come from a model with other parameters.
    pub fn step<M: Module + ?Sized>(&mut self, model: &mut M, grads: ParamGrads) {
        let (gs, updates) = grads.into_parts();
        let mut n = 0;
        model.visit(&mut Visitor::new(&mut |_, _, e| {
            n += matches!(e, Entry::Param(_)) as usize;
        }));
        assert_eq!(
            n,
            gs.len(),
            "Optimizer::step: gradients for {} parameters, the model has {n}",
            gs.len()
        );
        let lr = self.lr();
        let mut i = 0;
        model.visit_mut(&mut VisitorMut::new(&mut |prefix, name, e| {
            if let EntryMut::Param(p) = e {
                if let Some(g) = &gs[i] {
                    self.update(i, prefix, name, p.value_mut(), g, lr);
                }
                i += 1;
            }
        }));
        apply_buffer_updates(model, updates);
    }

    /// One update of plain tensors (named `0`, `1`, … in the state) with
    /// their gradients, at [`Optimizer::lr`].
    pub fn step_tensors(&mut self, params: &mut [&mut Tensor], grads: &[Tensor]) {
        assert_eq!(
            params.len(),
            grads.len(),
            "optimizer: parameters vs gradients"
        );
        let lr = self.lr();
        for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            self.update(i, "", &i.to_string(), p, g, lr);
        }
    }

    /// Update parameter `i` (full name `prefix + name`) with gradient `g`.
    fn update(&mut self, i: usize, prefix: &str, name: &str, p: &mut Tensor, g: &Tensor, lr: f32) {
        assert_eq!(
            p.shape(),
            g.shape(),
            "optimizer: `{prefix}{name}` vs its gradient"
        );
        if i == self.state.len() {
            self.state.push(ParamState {
                name: format!("{prefix}{name}"),
                shape: p.shape().to_vec(),
                ..Default::default()
            });
        }
        let st = &mut self.state[i];
        let wd = if self.config.decay_on.applies(p.shape()) {
            self.config.weight_decay
        } else {
            0.0
        };
        assert!(
            st.name.len() == prefix.len() + name.len()
                && st.name.starts_with(prefix)
                && st.name.ends_with(name),
            "optimizer state of `{}` given parameter `{prefix}{name}`: use one optimizer per model",
            st.name
        );
        st.step += 1;
        let c = &self.config;
        let (p, g) = (p.data_mut(), g.data());
        let n = p.len();
        // State buffers start empty and are sized on the first step (SGD
        // stores the first gradient itself, as PyTorch does).
        let first = st.m.is_empty();
        let (m, v) = (&mut st.m, &mut st.v);
        match c.kind {
            OptimizerKind::Sgd => {
                if first && c.momentum != Momentum::None {
                    m.resize(n, 0.0);
                }
                let k = c.sgd_step(lr, wd, first);
                par::for_chunks(n, [p, m], |s, [p, m]| {
                    update::sgd(&k, p, &g[s..s + p.len()], m)
                });
            }
            OptimizerKind::Adam | OptimizerKind::AdamW => {
                if first {
                    m.resize(n, 0.0);
                    v.resize(n, 0.0);
                }
                let k = c.adam_step(lr, wd, st.step);
                par::for_chunks_of(DIVIDING_CHUNK, n, [p, m, v], |s, [p, m, v]| {
                    update::adam(&k, p, &g[s..s + p.len()], m, v)
                });
            }
            OptimizerKind::RmsProp => {
                if v.is_empty() {
                    v.resize(n, 0.0);
                    if c.momentum.mu() > 0.0 {
                        m.resize(n, 0.0);
                    }
                }
                let k = c.rmsprop_step(lr, wd);
                par::for_chunks_of(DIVIDING_CHUNK, n, [p, m, v], |s, [p, m, v]| {
                    update::rmsprop(&k, p, &g[s..s + p.len()], m, v)
                });
            }
        }
    }

    /// The names of the state tensors of this optimizer kind.
    fn state_names(&self) -> (&'static str, &'static str) {
        match self.config.kind {
            OptimizerKind::Sgd => ("momentum_buffer", ""),
            OptimizerKind::Adam | OptimizerKind::AdamW => ("exp_avg", "exp_avg_sq"),
            OptimizerKind::RmsProp => ("momentum_buffer", "square_avg"),
        }
    }

    /// The optimizer's state as named tensors, as PyTorch names them:
    /// `{param}.step`, `{param}.momentum_buffer`, `{param}.exp_avg`,
    /// `{param}.exp_avg_sq`, `{param}.square_avg`, in the parameters' shapes.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        let (mname, vname) = self.state_names();
        let mut out = Vec::new();
        for st in &self.state {
            out.push((format!("{}.step", st.name), Tensor::scalar(st.step as f32)));
            if !st.m.is_empty() {
                out.push((
                    format!("{}.{mname}", st.name),
                    Tensor::from_vec(st.shape.clone(), st.m.clone()),
                ));
            }
            if !st.v.is_empty() {
                out.push((
                    format!("{}.{vname}", st.name),
                    Tensor::from_vec(st.shape.clone(), st.v.clone()),
                ));
            }
        }
        out
    }

    /// Restore a state written by [`Optimizer::state_dict`] for `model`'s
    /// parameters; `origin` names the file in errors.
    pub fn load_state_dict<M: Module + ?Sized>(
        &mut self,
        state: &[(String, Tensor)],
        model: &M,
        origin: &std::path::Path,
    ) -> Result<()> {
        let (mname, vname) = self.state_names();
        let find = |n: &str| state.iter().find(|(k, _)| k == n).map(|(_, t)| t);
        let mut out = Vec::new();
        let mut err = None;
        model.visit(&mut Visitor::new(&mut |prefix, name, e| {
            let Entry::Param(p) = e else { return };
            let full = format!("{prefix}{name}");
            let shape = p.value().shape().to_vec();
            let mut st = ParamState {
                name: full.clone(),
                shape: shape.clone(),
                ..Default::default()
            };
            st.step = find(&format!("{full}.step")).map_or(0, |t| t.item() as u64);
            for (key, slot) in [(mname, &mut st.m), (vname, &mut st.v)] {
                if key.is_empty() {
                    continue;
                }
                if let Some(t) = find(&format!("{full}.{key}")) {
                    if t.numel() != p.value().numel() {
                        err.get_or_insert(Error::weights(
                            origin,
                            format!(
                                "optimizer state `{full}.{key}` has {} values, the parameter {}",
                                t.numel(),
                                p.value().numel()
                            ),
                        ));
                    }
                    *slot = t.data().to_vec();
                }
            }
            out.push(st);
        }));
        if let Some(e) = err {
            return Err(e);
        }
        self.state = out;
        Ok(())
    }
}

impl OptimizerConfig {
    /// This step's SGD scalars.
    fn sgd_step(&self, lr: f32, wd: f32, first: bool) -> update::Sgd {
        let (dampening, nesterov) = match self.momentum {
            Momentum::Classic { dampening, .. } => (dampening, false),
            Momentum::Nesterov { .. } => (0.0, true),
            Momentum::None => (0.0, false),
        };
        update::Sgd {
            lr,
            weight_decay: wd,
            mu: self.momentum.mu(),
            dampening,
            nesterov,
            first,
        }
    }

    /// Step `t`'s Adam / AdamW scalars, computed as PyTorch does (in
    /// Python floats, f64, then rounded to f32).
    fn adam_step(&self, lr: f32, wd: f32, t: u64) -> update::Adam {
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powi(t as i32);
        let bc2 = 1.0 - b2.powi(t as i32);
        update::Adam {
            step_size: (lr as f64 / bc1) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            w1: (1.0 - b1) as f32,
            b2: b2 as f32,
            w2: (1.0 - b2) as f32,
            eps: self.eps,
            weight_decay: wd,
            decoupled: self.kind == OptimizerKind::AdamW,
            decay: (1.0 - lr as f64 * wd as f64) as f32,
        }
    }

    /// This step's RMSprop scalars.
    fn rmsprop_step(&self, lr: f32, wd: f32) -> update::RmsProp {
        update::RmsProp {
            lr,
            alpha: self.alpha as f32,
            w_alpha: (1.0 - self.alpha) as f32,
            eps: self.eps,
            mu: self.momentum.mu(),
            weight_decay: wd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cfg: OptimizerConfig, steps: usize) -> f32 {
        // Minimize (θ − 3)² from θ = 0.
        let mut opt = Optimizer::new(cfg.clone());
        let mut p = Tensor::scalar(0.0);
        for _ in 0..steps {
            let g = Tensor::scalar(2.0 * (p.item() - 3.0));
            opt.step_tensors(&mut [&mut p], &[g]);
        }
        p.item()
    }

    #[test]
    fn every_optimizer_minimizes_a_quadratic() {
        for kind in [
            OptimizerKind::Sgd,
            OptimizerKind::Adam,
            OptimizerKind::AdamW,
            OptimizerKind::RmsProp,
        ] {
            let mut c = OptimizerConfig::new(kind);
            c.lr = 0.05;
            c.weight_decay = 0.0;
            let p = run(c, 2000);
            assert!((p - 3.0).abs() < 0.05, "{kind:?}: {p}");
        }
    }

    #[test]
    fn momentum_first_step_and_nesterov_by_hand() {
        let c = OptimizerConfig::sgd(0.1, Momentum::classic(0.9));
        let mut opt = Optimizer::new(c);
        let mut p = Tensor::scalar(1.0);
        opt.step_tensors(&mut [&mut p], &[Tensor::scalar(2.0)]); // buf = 2; p = 1 − 0.2
        assert!((p.item() - 0.8).abs() < 1e-7);
        opt.step_tensors(&mut [&mut p], &[Tensor::scalar(1.0)]); // buf = 2.8; p = 0.8 − 0.28
        assert!((p.item() - 0.52).abs() < 1e-6);
        let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1, Momentum::Nesterov { mu: 0.9 }));
        let mut p = Tensor::scalar(1.0);
        opt.step_tensors(&mut [&mut p], &[Tensor::scalar(2.0)]); // buf = 2; step = 2 + 1.8
        assert!((p.item() - (1.0 - 0.38)).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_is_lr_times_sign() {
        let c = OptimizerConfig::new(OptimizerKind::Adam);
        let mut opt = Optimizer::new(c);
        let mut p = Tensor::from_vec(vec![2], vec![1.0, 1.0]);
        opt.step_tensors(&mut [&mut p], &[Tensor::from_vec(vec![2], vec![0.5, -3.0])]);
        assert!((p.data()[0] - (1.0 - 1e-3)).abs() < 1e-6);
        assert!((p.data()[1] - (1.0 + 1e-3)).abs() < 1e-6);
    }

    #[test]
    fn validation_names_the_hyper_parameter() {
        let c = OptimizerConfig::sgd(-1.0, Momentum::None);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("learning rate -1"));
        let c = OptimizerConfig::sgd(0.1, Momentum::Nesterov { mu: 0.0 });
        assert!(c.validate().unwrap_err().to_string().contains("Nesterov"));
        let mut c = OptimizerConfig::new(OptimizerKind::Adam);
        c.momentum = Momentum::Nesterov { mu: 0.9 };
        assert!(c.validate().unwrap_err().to_string().contains("SGD only"));
    }

    #[test]
    fn state_is_keyed_by_name_and_round_trips() {
        use crate::nn::{Linear, ModuleExt, Pass, Sequential};
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut m = Sequential::new().push(Linear::new(3, 2).init(&mut rng));
        let mut opt = Optimizer::new(OptimizerConfig::adam(0.01));
        let x = Tensor::from_vec(vec![2, 3], vec![1.0, 2.0, 3.0, -1.0, 0.5, 0.0]);
        let step = |m: &mut Sequential, opt: &mut Optimizer| {
            let mut p = Pass::train(&*m, 0);
            let xv = p.input(x.clone());
            let out = crate::nn::Module::forward(&*m, &mut p, xv);
            let l = p.cross_entropy(out, &[0, 1]);
            opt.step(m, p.backward(l));
        };
        step(&mut m, &mut opt);
        let names: Vec<String> = opt.state_dict().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "0.weight.step",
                "0.weight.exp_avg",
                "0.weight.exp_avg_sq",
                "0.bias.step",
                "0.bias.exp_avg",
                "0.bias.exp_avg_sq"
            ]
        );
        // A restored optimizer continues exactly as the original.
        let mut again = Optimizer::new(OptimizerConfig::adam(0.01));
        again
            .load_state_dict(&opt.state_dict(), &m, std::path::Path::new("x"))
            .unwrap();
        let mut m2 = m.clone();
        step(&mut m, &mut opt);
        step(&mut m2, &mut again);
        assert_eq!(m.state_dict(), m2.state_dict());
    }
}
