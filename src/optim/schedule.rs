//! Learning-rate schedules, stepped once per epoch as PyTorch's `StepLR` and
//! `CosineAnnealingLR` usually are.

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
        /// The lowest learning rate, reached at epoch `t_max` and kept after.
        eta_min: f32,
    },
}

impl Schedule {
    /// The learning rate for 0-based `epoch`, from the base rate.
    ///
    /// ```
    /// use backprop::optim::Schedule;
    /// let s = Schedule::Step { step_size: 2, gamma: 0.1 };
    /// assert_eq!(s.lr(1.0, 1), 1.0);
    /// assert!((s.lr(1.0, 2) - 0.1).abs() < 1e-7);
    /// let c = Schedule::Cosine { t_max: 10, eta_min: 0.0 };
    /// assert!((c.lr(1.0, 5) - 0.5).abs() < 1e-6);
    /// ```
    pub fn lr(&self, base: f32, epoch: usize) -> f32 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { step_size, gamma } => {
                (base as f64 * (gamma as f64).powi((epoch / step_size.max(1)) as i32)) as f32
            }
            Schedule::Cosine { t_max, eta_min } => {
                let t = (epoch.min(t_max)) as f64 / t_max.max(1) as f64;
                (eta_min as f64
                    + (base - eta_min) as f64 * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0)
                    as f32
            }
        }
    }
}
