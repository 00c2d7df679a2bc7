//! `Dropout` (`nn.Dropout`) and `Dropout2d` (`nn.Dropout2d`).

use crate::nn::init::Init;
use crate::nn::module::{Module, Pass};
use crate::nn::registry::Plan;
use crate::nn::spec::Item;
use crate::{Result, Var};

/// Zeroes each element with probability `p` in training and scales the rest
/// by 1/(1−p) (`nn.Dropout`); the identity in evaluation.
#[derive(Clone, Debug)]
pub struct Dropout {
    p: f32,
}

impl Dropout {
    /// Drop probability `p` (PyTorch's default is 0.5).
    ///
    /// # Panics
    /// Unless `0 ≤ p ≤ 1`.
    pub fn new(p: f32) -> Dropout {
        assert!(
            (0.0..=1.0).contains(&p),
            "Dropout: p = {p}: the drop probability must be in [0, 1]"
        );
        Dropout { p }
    }
}

impl Default for Dropout {
    fn default() -> Self {
        Dropout::new(0.5)
    }
}

impl Module for Dropout {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let y = if p.training() {
            let seed = p.dropout_seed();
            let first = p.first_sample();
            if self.p == 0.0 {
                x // nothing to drop (the seed is still taken: later masks keep theirs)
            } else {
                p.dropout_from(x, self.p, true, seed, first)
            }
        } else {
            x
        };
        p.layer_output(self, y);
        y
    }

    fn spec(&self) -> Option<String> {
        Some(format!("dropout({})", self.p))
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        Ok(s.to_vec())
    }
}

/// `dropout(p=0.5)`.
pub(crate) fn plan_dropout(item: &Item, _init: Init) -> Result<Plan> {
    item.expect_args(1, &["p"], "dropout(p=0.5)")?;
    let p = item.f32_arg(0, "p").unwrap_or(0.5);
    if !(0.0..=1.0).contains(&p) {
        return Err(item.err(format!("p = {p}: the drop probability must be in [0, 1]")));
    }
    Ok(Plan::ready(Dropout::new(p)))
}

/// Zeroes whole channels (each sample's, each with probability `p`) in
/// training and scales the rest by 1/(1−p) (`nn.Dropout2d`, for
/// convolutional features whose neighbouring values are alike); the
/// identity in evaluation.
#[derive(Clone, Debug)]
pub struct Dropout2d {
    p: f32,
}

impl Dropout2d {
    /// Drop probability `p` per channel (PyTorch's default is 0.5).
    ///
    /// # Panics
    /// Unless `0 ≤ p ≤ 1`.
    pub fn new(p: f32) -> Dropout2d {
        assert!(
            (0.0..=1.0).contains(&p),
            "Dropout2d: p = {p}: the drop probability must be in [0, 1]"
        );
        Dropout2d { p }
    }
}

impl Module for Dropout2d {
    fn forward(&self, p: &mut Pass, x: Var) -> Var {
        let y = if p.training() {
            let seed = p.dropout_seed();
            let first = p.first_sample();
            p.dropout2d(x, self.p, true, seed, first)
        } else {
            x
        };
        p.layer_output(self, y);
        y
    }

    fn spec(&self) -> Option<String> {
        Some(format!("dropout2d({})", self.p))
    }

    fn output_shape(&self, s: &[usize]) -> Result<Vec<usize>> {
        if s.len() < 2 {
            return Err(crate::Error::Spec(format!(
                "dropout2d drops channels of [C, H, W] samples, got {}",
                crate::ops::shape::fmt(s)
            )));
        }
        Ok(s.to_vec())
    }
}

/// `dropout2d(p=0.5)`.
pub(crate) fn plan_dropout2d(item: &Item, _init: Init) -> Result<Plan> {
    item.expect_args(1, &["p"], "dropout2d(p=0.5)")?;
    let p = item.f32_arg(0, "p").unwrap_or(0.5);
    if !(0.0..=1.0).contains(&p) {
        return Err(item.err(format!("p = {p}: the drop probability must be in [0, 1]")));
    }
    Ok(Plan::ready(Dropout2d::new(p)))
}
