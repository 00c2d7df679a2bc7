//! Learning-rate schedules: per epoch as PyTorch's `StepLR` and
//! `CosineAnnealingLR` usually are, or per step (one-cycle, warm-up then
//! cosine).

/// How the learning rate changes over epochs.
#[derive(Clone, Copy, Debug, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum Schedule {
    /// The same rate throughout.
    #[default]
    Constant,
    /// `lr · γ^⌊epoch / step_size⌋` (`StepLR`).
    Step {
        /// Epochs between two decays.
        step_size: usize,
        /// The factor applied at each decay.
        gamma: f32,
    },
    /// `η_min + (lr − η_min)(1 + cos(π·epoch/T))/2` (`CosineAnnealingLR`).
    Cosine {
        /// Epochs from the base rate down to `eta_min` (the half period T).
        t_max: usize,
        /// The lowest learning rate, reached at epoch `t_max`; after it the
        /// rate climbs back along the same cosine, as PyTorch's does.
        eta_min: f32,
    },
    /// Step by step, up from `lr/div_factor` to the base rate `lr` over the
    /// first `pct_start` of `total_steps`, then down to
    /// `lr/(div_factor·final_div_factor)` at the last step, both on a
    /// half cosine: PyTorch's `OneCycleLR(opt, max_lr=lr, total_steps,
    /// pct_start, div_factor, final_div_factor, cycle_momentum=False)`
    /// (PyTorch's default also cycles Adam's β₁ or SGD's momentum; this
    /// does not).
    OneCycle {
        /// The optimizer steps of the whole cycle (epochs × batches).
        total_steps: usize,
        /// The share of the steps spent warming up (PyTorch: 0.3).
        pct_start: f32,
        /// The first rate is `lr / div_factor` (PyTorch: 25).
        div_factor: f32,
        /// The last rate is `lr / (div_factor · final_div_factor)` (PyTorch: 1e4).
        final_div_factor: f32,
    },
    /// Step by step: a linear warm-up `lr·(t+1)/(warmup_steps+1)` for
    /// `t < warmup_steps`, then a half cosine from `lr` down to `lr_min` at
    /// step `decay_steps`, and `lr_min` after it (nanoGPT's `get_lr`).
    WarmupCosine {
        /// Steps of the linear warm-up.
        warmup_steps: usize,
        /// The step at which the rate reaches `lr_min` (the run's steps).
        decay_steps: usize,
        /// The lowest rate.
        lr_min: f32,
    },
}

/// The schedules by name, without their settings (`--lr-schedule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ScheduleKind {
    /// The same rate throughout.
    #[cfg_attr(feature = "cli", value(alias = "none"))]
    Constant,
    /// Multiply by gamma every step_size epochs (StepLR).
    Step,
    /// Cosine from the base rate down to eta_min over the epochs (CosineAnnealingLR).
    Cosine,
    /// Step by step: up from lr/25 to lr over the first 30 % of the steps, then down to lr/2.5e5 (OneCycleLR without momentum cycling).
    OneCycle,
}

impl Schedule {
    /// A one-cycle schedule of `total_steps` with PyTorch's defaults
    /// (`pct_start` 0.3, `div_factor` 25, `final_div_factor` 1e4).
    pub fn one_cycle(total_steps: usize) -> Schedule {
        Schedule::OneCycle {
            total_steps,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    }

    /// The learning rate for 0-based `epoch` and 0-based optimizer `step`
    /// (the number of updates before this one), from the base rate. The
    /// epoch schedules ignore `step`; `OneCycle` ignores `epoch`.
    ///
    /// ```
    /// use backprop::optim::Schedule;
    /// let s = Schedule::Step { step_size: 2, gamma: 0.1 };
    /// assert_eq!(s.lr(1.0, 1, 0), 1.0);
    /// assert!((s.lr(1.0, 2, 0) - 0.1).abs() < 1e-7);
    /// let c = Schedule::Cosine { t_max: 10, eta_min: 0.0 };
    /// assert!((c.lr(1.0, 5, 0) - 0.5).abs() < 1e-6);
    /// let o = Schedule::one_cycle(100);
    /// assert!((o.lr(1.0, 0, 0) - 0.04).abs() < 1e-7); // lr / 25
    /// assert!((o.lr(1.0, 0, 29) - 1.0).abs() < 1e-7); // the top at 30 % − 1
    /// assert!((o.lr(1.0, 0, 99) - 4e-6).abs() < 1e-10); // lr / 25 / 1e4
    /// let w = Schedule::WarmupCosine { warmup_steps: 3, decay_steps: 13, lr_min: 0.1 };
    /// assert_eq!(w.lr(1.0, 0, 0), 0.25); // (0 + 1) / (3 + 1)
    /// assert_eq!(w.lr(1.0, 0, 3), 1.0);
    /// assert!((w.lr(1.0, 0, 8) - 0.55).abs() < 1e-6); // half way down
    /// assert_eq!(w.lr(1.0, 0, 14), 0.1);
    /// ```
    pub fn lr(&self, base: f32, epoch: usize, step: usize) -> f32 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { step_size, gamma } => {
                (base as f64 * (gamma as f64).powi((epoch / step_size.max(1)) as i32)) as f32
            }
            Schedule::Cosine { t_max, eta_min } => {
                let t = epoch as f64 / t_max.max(1) as f64;
                (eta_min as f64
                    + (base - eta_min) as f64 * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0)
                    as f32
            }
            Schedule::OneCycle {
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                // torch.optim.lr_scheduler.OneCycleLR.get_lr, two phases, cos.
                let max = base as f64;
                let initial = max / div_factor as f64;
                let min = initial / final_div_factor as f64;
                let up_end = pct_start as f64 * total_steps as f64 - 1.0;
                let down_end = total_steps as f64 - 1.0;
                let cos = |start: f64, end: f64, pct: f64| {
                    end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
                };
                let t = step.min(total_steps.saturating_sub(1)) as f64;
                let lr = if t <= up_end {
                    cos(initial, max, t / up_end)
                } else {
                    cos(max, min, (t - up_end) / (down_end - up_end))
                };
                lr as f32
            }
            Schedule::WarmupCosine {
                warmup_steps,
                decay_steps,
                lr_min,
            } => {
                let (base, min) = (base as f64, lr_min as f64);
                if step < warmup_steps {
                    return (base * (step + 1) as f64 / (warmup_steps + 1) as f64) as f32;
                }
                if step > decay_steps {
                    return lr_min;
                }
                let ratio =
                    (step - warmup_steps) as f64 / (decay_steps - warmup_steps).max(1) as f64;
                let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
                (min + coeff * (base - min)) as f32
            }
        }
    }
}
