//! Losses, each reduced by the mean over the batch as PyTorch does by default.
//!
//! | loss | value | ∂/∂input |
//! | --- | --- | --- |
//! | `mse(p, t)` | mean (p−t)² over all elements | 2(p−t)/n |
//! | `bce(p, t)` | −mean [t·ln p + (1−t)·ln(1−p)], logs clamped at −100 | (p−t) / max(p(1−p), 1e-12) / n |
//! | `bce_with_logits(z, t)` | mean [max(z,0) − z·t + ln(1+e^(−\|z\|))] | (σ(z)−t)/n |
//! | `cross_entropy(z, labels)` | mean over rows of lse(z) − z_label | (softmax(z) − onehot)/N |
//! | `cross_entropy_probs(z, t)` | mean over rows of −Σ t·log_softmax(z) | (softmax(z)·Σt − t)/N |
//!
//! The clamp at −100 (PyTorch's) keeps `bce` finite when a probability is
//! exactly 0 or 1; the logits forms never take `log(0)` at all. The fused
//! softmax + cross-entropy gives the seeds' δ = softmax(z) − y directly.

use super::softmax::{log_softmax_and_softmax_rows, log_softmax_rows, softmax_rows};
use super::unary::sigmoid;
use crate::autograd::{Backward, Op};
use crate::{Error, Result};
use crate::{Graph, Tensor, Var};
use serde::{Deserialize, Serialize};

/// The training loss (`--loss`: `cross-entropy`, `mse`, `bce`, `bce-logits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum LossKind {
    /// Softmax cross-entropy on logits with integer labels (nn.CrossEntropyLoss).
    #[cfg_attr(feature = "cli", value(alias = "ce"))]
    CrossEntropy,
    /// Mean squared error against one-hot targets (or the label itself for one output).
    Mse,
    /// Binary cross-entropy on probabilities (end the model with sigmoid); targets as mse.
    Bce,
    /// Binary cross-entropy on logits (nn.BCEWithLogitsLoss); targets as mse.
    #[cfg_attr(feature = "cli", value(alias = "bce-with-logits"))]
    BceLogits,
    /// Mean absolute error (nn.L1Loss); targets as mse.
    L1,
    /// Huber loss with δ = 1 (nn.HuberLoss's default); targets as mse.
    Huber,
}

impl LossKind {
    /// The name in messages and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::CrossEntropy => "cross-entropy",
            LossKind::Mse => "mse",
            LossKind::Bce => "bce",
            LossKind::BceLogits => "bce-logits",
            LossKind::L1 => "l1",
            LossKind::Huber => "huber",
        }
    }

    /// Record the loss of `out: [N, C]` against integer `labels` on `g`
    /// (the float losses compare with their [`float_targets`]).
    pub fn apply(self, g: &mut Graph, out: Var, labels: &[usize]) -> Var {
        match self {
            LossKind::CrossEntropy => g.cross_entropy(out, labels),
            _ => {
                let t = float_targets(labels, g.shape(out)[1]);
                self.apply_values(g, out, t)
            }
        }
    }

    /// Record the loss of `out: [N, C]` against float targets `t: [N, C]`
    /// (regression values, multi-label 0/1). Panics for cross-entropy,
    /// which takes class labels, and when the shapes differ (the trainer
    /// checks both first).
    pub fn apply_values(self, g: &mut Graph, out: Var, t: Tensor) -> Var {
        let t = g.input(t);
        match self {
            LossKind::Mse => g.mse(out, t),
            LossKind::Bce => g.bce(out, t),
            LossKind::BceLogits => g.bce_with_logits(out, t),
            LossKind::L1 => g.l1(out, t),
            LossKind::Huber => g.huber(out, t, 1.0),
            LossKind::CrossEntropy => {
                panic!("LossKind::apply_values: cross-entropy takes class labels")
            }
        }
    }
}

impl std::str::FromStr for LossKind {
    type Err = Error;

    /// `cross-entropy` (`ce`), `mse`, `bce`, `bce-logits`; any case, `_` for `-`.
    fn from_str(s: &str) -> Result<LossKind> {
        Ok(match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "cross-entropy" | "ce" | "crossentropy" => LossKind::CrossEntropy,
            "mse" => LossKind::Mse,
            "bce" => LossKind::Bce,
            "bce-logits" | "bce-with-logits" => LossKind::BceLogits,
            "l1" | "mae" => LossKind::L1,
            "huber" => LossKind::Huber,
            _ => {
                return Err(Error::Config(format!(
                    "unknown loss `{s}`; use cross-entropy, mse, bce, bce-logits, l1 or huber"
                )))
            }
        })
    }
}

/// The float targets `mse`/`bce` compare against: one-hot rows `[N, C]`,
/// or the label itself `[N, 1]` for a single output.
pub fn float_targets(labels: &[usize], c: usize) -> Tensor {
    if c == 1 {
        return Tensor::from_vec(
            vec![labels.len(), 1],
            labels.iter().map(|&y| y as f32).collect(),
        );
    }
    let mut t = Tensor::zeros(&[labels.len(), c]);
    for (row, &y) in t.data_mut().chunks_mut(c).zip(labels) {
        row[y] = 1.0;
    }
    t
}

fn same_shape(op: &str, p: &Tensor, t: &Tensor) {
    assert_eq!(
        p.shape(),
        t.shape(),
        "{op}: input {:?} vs target {:?}",
        p.shape(),
        t.shape()
    );
}

/// Backward of a loss whose per-element derivative w.r.t. the input is `d(p, t)`.
struct PointwiseLossBack {
    d: fn(f32, f32) -> f32,
    /// ∂/∂target, when the target needs a gradient.
    dt: fn(f32, f32) -> f32,
}

impl Backward for PointwiseLossBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let (p, t) = (inp[0], inp[1]);
        let s = g.item() / p.numel() as f32;
        let grad = |f: fn(f32, f32) -> f32| {
            let mut r = p.zeros_like();
            for ((o, &pv), &tv) in r.data_mut().iter_mut().zip(p.data()).zip(t.data()) {
                *o = s * f(pv, tv);
            }
            r
        };
        vec![
            needs[0].then(|| grad(self.d)),
            needs[1].then(|| grad(self.dt)),
        ]
    }
}

/// −1, 0 or 1 (0 at 0, where PyTorch's `sign` is 0 too).
fn sign_of(d: f32) -> f32 {
    if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    }
}

struct HuberBack {
    delta: f32,
}

impl Backward for HuberBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let (p, t) = (inp[0], inp[1]);
        let s = g.item() / p.numel() as f32;
        let delta = self.delta;
        let dp = |a: f32, b: f32| {
            let d = a - b;
            s * if d.abs() < delta {
                d
            } else {
                delta * sign_of(d)
            }
        };
        let grad = |neg: bool| {
            let v = p
                .data()
                .iter()
                .zip(t.data())
                .map(|(&a, &b)| if neg { -dp(a, b) } else { dp(a, b) });
            Tensor::from_vec(p.shape().to_vec(), v.collect())
        };
        vec![needs[0].then(|| grad(false)), needs[1].then(|| grad(true))]
    }
}

struct NllBack {
    labels: Vec<usize>,
    opts: CrossEntropyOptions,
    total: f64,
}

impl Backward for NllBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let c = *inp[0].shape().last().expect("[..., C]");
        let mut gz = inp[0].zeros_like();
        let s = g.item() as f64 / self.total;
        for (row, &y) in gz.data_mut().chunks_mut(c).zip(&self.labels) {
            if Some(y) != self.opts.ignore_index {
                let w = self.opts.weight.as_ref().map_or(1.0, |w| w[y] as f64);
                row[y] = (-w * s) as f32;
            }
        }
        vec![Some(gz)]
    }
}

fn mean_of(p: &Tensor, t: &Tensor, f: impl Fn(f32, f32) -> f64) -> Tensor {
    let s: f64 = p.data().iter().zip(t.data()).map(|(&a, &b)| f(a, b)).sum();
    Tensor::scalar((s / p.numel() as f64) as f32)
}

fn bce_term(p: f32, t: f32) -> f64 {
    let lp = (p.ln()).max(-100.0) as f64;
    let lq = ((1.0 - p).ln()).max(-100.0) as f64;
    -(t as f64 * lp + (1.0 - t as f64) * lq)
}

fn bce_logits_term(z: f32, t: f32) -> f64 {
    (z.max(0.0) - z * t + (-z.abs()).exp().ln_1p()) as f64
}

struct CrossEntropyBack {
    labels: Vec<usize>,
    /// `softmax(z)`, kept from the forward pass.
    probs: Tensor,
}

impl Backward for CrossEntropyBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let c = inp[0].shape()[1];
        let n = self.labels.len();
        let mut gz = self.probs.clone();
        let s = g.item() / n as f32;
        for (row, &y) in gz.data_mut().chunks_mut(c).zip(&self.labels) {
            row[y] -= 1.0;
            for v in row.iter_mut() {
                *v *= s;
            }
        }
        vec![Some(gz)]
    }
}

/// What `nn.CrossEntropyLoss` takes besides the logits and the labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CrossEntropyOptions {
    /// Rows whose label is this add nothing to the loss nor to the mean
    /// (padding in a batch of sequences).
    pub ignore_index: Option<usize>,
    /// ε in `[0, 1]`: the target is `1 − ε` on the label and `ε/C` on every
    /// class (PyTorch's `label_smoothing`).
    pub label_smoothing: f32,
    /// A weight per class: each row counts `weight[label]` times, and the
    /// mean divides by the rows' summed weights (PyTorch's `weight`).
    pub weight: Option<Vec<f32>>,
}

struct CrossEntropyWithBack {
    labels: Vec<usize>,
    probs: Tensor,
    opts: CrossEntropyOptions,
    /// Σ of the counted rows' weights (the mean's divisor).
    total: f64,
}

impl Backward for CrossEntropyWithBack {
    fn backward(
        &self,
        g: &Tensor,
        _inp: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let c = *self.probs.shape().last().expect("[.., C]");
        let eps = self.opts.label_smoothing as f64;
        let w = |k: usize| self.opts.weight.as_ref().map_or(1.0, |w| w[k] as f64);
        let w_all: f64 = (0..c).map(w).sum();
        let s = g.item() as f64 / self.total;
        let mut gz = self.probs.clone();
        for (row, &y) in gz.data_mut().chunks_mut(c).zip(&self.labels) {
            if Some(y) == self.opts.ignore_index {
                row.fill(0.0);
                continue;
            }
            // (1−ε)·w_y·(p − onehot(y)) + (ε/C)·(W·p − w), per row, over the total weight.
            for (k, v) in row.iter_mut().enumerate() {
                let p = *v as f64;
                let nll = (1.0 - eps) * w(y) * (p - if k == y { 1.0 } else { 0.0 });
                let smooth = eps / c as f64 * (w_all * p - w(k));
                *v = (s * (nll + smooth)) as f32;
            }
        }
        vec![Some(gz)]
    }
}

struct CrossEntropyProbsBack;

impl Backward for CrossEntropyProbsBack {
    fn backward(
        &self,
        g: &Tensor,
        inp: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Vec<Option<Tensor>> {
        let (z, t) = (inp[0], inp[1]);
        let c = z.shape()[1];
        let s = g.item() / z.shape()[0] as f32;
        let gz = needs[0].then(|| {
            let mut gz = z.zeros_like();
            softmax_rows(z.data(), c, gz.data_mut());
            for (row, tr) in gz.data_mut().chunks_mut(c).zip(t.data().chunks(c)) {
                let ts: f32 = tr.iter().sum();
                for (v, &tv) in row.iter_mut().zip(tr) {
                    *v = s * (*v * ts - tv);
                }
            }
            gz
        });
        let gt = needs[1].then(|| {
            let mut gt = z.zeros_like();
            log_softmax_rows(z.data(), c, gt.data_mut());
            gt.scale(-s);
            gt
        });
        vec![gz, gt]
    }
}

/// Why a loss cannot compare `pred` with `target`, if it cannot: a
/// pointwise loss needs the same shape; cross-entropy `[N, C]` logits and
/// `N` labels below `C` (`labels`), or `[N, C]` target probabilities.
pub fn loss_shapes(
    op: Op,
    pred: &[usize],
    target: &[usize],
    labels: Option<&[usize]>,
) -> Result<()> {
    let bad = |why: String| Err(Error::Config(format!("{}: {why}", op.name())));
    match (op, labels) {
        (Op::CrossEntropy, Some(labels)) => match *pred {
            [n, c] if n == labels.len() => match labels.iter().find(|&&y| y >= c) {
                Some(y) => bad(format!("label {y} is out of range for {c} classes")),
                None => Ok(()),
            },
            _ => bad(format!("logits {pred:?} against {} labels: give [N, C] logits and N labels", labels.len())),
        },
        _ if pred != target => bad(format!(
            "prediction {pred:?} against target {target:?}: the shapes must be equal (one-hot targets \
             for [N, C] outputs: train::float_targets)"
        )),
        (Op::CrossEntropyProbs, _) if pred.len() != 2 => bad(format!("logits must be [N, C], got {pred:?}")),
        _ => Ok(()),
    }
}

impl Graph {
    /// [`Graph::mse`], with an error instead of a panic when the shapes differ.
    pub fn try_mse(&mut self, p: Var, t: Var) -> Result<Var> {
        loss_shapes(Op::Mse, self.shape(p), self.shape(t), None)?;
        Ok(self.mse(p, t))
    }

    /// [`Graph::bce`], with an error instead of a panic when the shapes differ.
    pub fn try_bce(&mut self, p: Var, t: Var) -> Result<Var> {
        loss_shapes(Op::Bce, self.shape(p), self.shape(t), None)?;
        Ok(self.bce(p, t))
    }

    /// [`Graph::bce_with_logits`], with an error instead of a panic when the
    /// shapes differ.
    pub fn try_bce_with_logits(&mut self, z: Var, t: Var) -> Result<Var> {
        loss_shapes(Op::BceWithLogits, self.shape(z), self.shape(t), None)?;
        Ok(self.bce_with_logits(z, t))
    }

    /// [`Graph::cross_entropy`], with an error instead of a panic when the
    /// logits are not `[N, C]` for `N` labels below `C`.
    pub fn try_cross_entropy(&mut self, z: Var, labels: &[usize]) -> Result<Var> {
        loss_shapes(Op::CrossEntropy, self.shape(z), &[], Some(labels))?;
        Ok(self.cross_entropy(z, labels))
    }

    /// Mean squared error over all elements (the shapes must be equal: a
    /// mismatch panics; [`Graph::try_mse`] returns an error instead).
    pub fn mse(&mut self, p: Var, t: Var) -> Var {
        let (pv, tv) = (self.value(p), self.value(t));
        same_shape("mse", pv, tv);
        let l = mean_of(pv, tv, |a, b| ((a - b) as f64).powi(2));
        let bw = PointwiseLossBack {
            d: |p, t| 2.0 * (p - t),
            dt: |p, t| 2.0 * (t - p),
        };
        self.push(Op::Mse, l, &[p, t], bw)
    }

    /// Mean absolute error over all elements (`F.l1_loss`; its derivative
    /// at p = t is 0, as PyTorch's).
    pub fn l1(&mut self, p: Var, t: Var) -> Var {
        let (pv, tv) = (self.value(p), self.value(t));
        same_shape("l1", pv, tv);
        let l = mean_of(pv, tv, |a, b| ((a - b) as f64).abs());
        let bw = PointwiseLossBack {
            d: |p, t| sign_of(p - t),
            dt: |p, t| sign_of(t - p),
        };
        self.push(Op::L1, l, &[p, t], bw)
    }

    /// The Huber loss over all elements (`F.huber_loss(p, t, delta=δ)`):
    /// `½d²` where `|d| < δ`, else `δ(|d| − ½δ)`, averaged.
    pub fn huber(&mut self, p: Var, t: Var, delta: f32) -> Var {
        let (pv, tv) = (self.value(p), self.value(t));
        same_shape("huber", pv, tv);
        assert!(delta > 0.0, "huber: delta {delta} must be > 0");
        let dl = delta as f64;
        let l = mean_of(pv, tv, |a, b| {
            let d = (a - b) as f64;
            if d.abs() < dl {
                0.5 * d * d
            } else {
                dl * (d.abs() - 0.5 * dl)
            }
        });
        self.push(Op::Huber, l, &[p, t], HuberBack { delta })
    }

    /// The mean negative log-likelihood of log-probabilities `z: [..., C]`
    /// (a `log_softmax`'s output) at one label per row (`F.nll_loss`, with
    /// its `ignore_index` and class `weight`; label smoothing does not
    /// apply): `−Σ w_y·z[y] / Σ w_y` over the rows not ignored.
    pub fn nll(&mut self, z: Var, labels: &[usize], opts: &CrossEntropyOptions) -> Var {
        let zv = self.value(z);
        let c = *zv.shape().last().expect("nll: log-probabilities [..., C]");
        assert_eq!(
            zv.numel() / c.max(1),
            labels.len(),
            "nll: logits {:?} against {} labels",
            zv.shape(),
            labels.len()
        );
        let w = |k: usize| opts.weight.as_ref().map_or(1.0, |w| w[k] as f64);
        let (mut sum, mut total) = (0f64, 0f64);
        for (row, &y) in zv.data().chunks(c).zip(labels) {
            if Some(y) == opts.ignore_index {
                continue;
            }
            assert!(y < c, "nll: label {y} out of range for {c} classes");
            sum -= w(y) * row[y] as f64;
            total += w(y);
        }
        let l = Tensor::scalar((sum / total) as f32);
        let back = NllBack {
            labels: labels.to_vec(),
            opts: opts.clone(),
            total,
        };
        self.push(Op::Nll, l, &[z], back)
    }

    /// Binary cross-entropy on probabilities `p ∈ [0, 1]`.
    pub fn bce(&mut self, p: Var, t: Var) -> Var {
        let (pv, tv) = (self.value(p), self.value(t));
        same_shape("bce", pv, tv);
        let l = mean_of(pv, tv, bce_term);
        let bw = PointwiseLossBack {
            d: |p, t| (p - t) / (p * (1.0 - p)).max(1e-12),
            dt: |p, _| (1.0 - p).ln().max(-100.0) - p.ln().max(-100.0),
        };
        self.push(Op::Bce, l, &[p, t], bw)
    }

    /// Binary cross-entropy on logits (σ folded in, stable for any |z|).
    pub fn bce_with_logits(&mut self, z: Var, t: Var) -> Var {
        let (zv, tv) = (self.value(z), self.value(t));
        same_shape("bce_with_logits", zv, tv);
        let l = mean_of(zv, tv, bce_logits_term);
        let bw = PointwiseLossBack {
            d: |z, t| sigmoid(z) - t,
            dt: |z, _| -z,
        };
        self.push(Op::BceWithLogits, l, &[z, t], bw)
    }

    /// Softmax cross-entropy of logits `z: [N, C]` against integer labels.
    pub fn cross_entropy(&mut self, z: Var, labels: &[usize]) -> Var {
        let zv = self.value(z);
        assert!(
            zv.ndim() == 2 && zv.shape()[0] == labels.len(),
            "cross_entropy: logits {:?} vs {} labels",
            zv.shape(),
            labels.len()
        );
        let c = zv.shape()[1];
        let (mut lsm, mut probs) = (zv.zeros_like(), zv.zeros_like());
        log_softmax_and_softmax_rows(zv.data(), c, lsm.data_mut(), probs.data_mut());
        let mut s = 0f64;
        for (row, &y) in lsm.data().chunks(c).zip(labels) {
            assert!(
                y < c,
                "cross_entropy: label {y} out of range for {c} classes"
            );
            s -= row[y] as f64;
        }
        let l = Tensor::scalar((s / labels.len() as f64) as f32);
        self.push(
            Op::CrossEntropy,
            l,
            &[z],
            CrossEntropyBack {
                labels: labels.to_vec(),
                probs,
            },
        )
    }

    /// Softmax cross-entropy of logits `z: [..., C]` (any leading axes: a
    /// language model's `[N, T, V]`) against one label per row, with
    /// `nn.CrossEntropyLoss`'s `ignore_index`, `label_smoothing` and class
    /// `weight`: `Σ_rows [(1−ε)·w_y·(−log p_y) + (ε/C)·Σ_c w_c·(−log p_c)] /
    /// Σ_rows w_y` over the rows not ignored (NaN when every row is).
    pub fn cross_entropy_with(
        &mut self,
        z: Var,
        labels: &[usize],
        opts: &CrossEntropyOptions,
    ) -> Var {
        let zv = self.value(z);
        let c = *zv
            .shape()
            .last()
            .expect("cross_entropy_with: logits [..., C]");
        assert_eq!(
            zv.numel() / c.max(1),
            labels.len(),
            "cross_entropy_with: logits {:?} against {} labels (one a row)",
            zv.shape(),
            labels.len()
        );
        if let Some(w) = &opts.weight {
            assert_eq!(
                w.len(),
                c,
                "cross_entropy_with: {} class weights for {c} classes",
                w.len()
            );
        }
        let w = |k: usize| opts.weight.as_ref().map_or(1.0, |w| w[k] as f64);
        let (mut lsm, mut probs) = (zv.zeros_like(), zv.zeros_like());
        log_softmax_and_softmax_rows(zv.data(), c, lsm.data_mut(), probs.data_mut());
        let eps = opts.label_smoothing as f64;
        let (mut sum, mut total) = (0f64, 0f64);
        for (row, &y) in lsm.data().chunks(c).zip(labels) {
            if Some(y) == opts.ignore_index {
                continue;
            }
            assert!(
                y < c,
                "cross_entropy_with: label {y} out of range for {c} classes"
            );
            let smooth: f64 = row.iter().enumerate().map(|(k, &l)| -w(k) * l as f64).sum();
            sum += (1.0 - eps) * w(y) * -(row[y] as f64) + eps / c as f64 * smooth;
            total += w(y);
        }
        let l = Tensor::scalar((sum / total) as f32);
        let back = CrossEntropyWithBack {
            labels: labels.to_vec(),
            probs,
            opts: opts.clone(),
            total,
        };
        self.push(Op::CrossEntropy, l, &[z], back)
    }

    /// Softmax cross-entropy of logits `z: [N, C]` against target
    /// probabilities (one-hot or soft rows) `t: [N, C]`.
    pub fn cross_entropy_probs(&mut self, z: Var, t: Var) -> Var {
        let (zv, tv) = (self.value(z), self.value(t));
        same_shape("cross_entropy", zv, tv);
        assert_eq!(
            zv.ndim(),
            2,
            "cross_entropy: logits must be [N, C], got {:?}",
            zv.shape()
        );
        let c = zv.shape()[1];
        let mut lsm = zv.zeros_like();
        log_softmax_rows(zv.data(), c, lsm.data_mut());
        let s: f64 = lsm
            .data()
            .iter()
            .zip(tv.data())
            .map(|(&a, &b)| -(a as f64) * b as f64)
            .sum();
        let l = Tensor::scalar((s / zv.shape()[0] as f64) as f32);
        self.push(Op::CrossEntropy, l, &[z, t], CrossEntropyProbsBack)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::gradcheck::{check, pseudo_random};
    use crate::{Graph, Tensor};

    #[test]
    fn cross_entropy_with_options_gradients_and_the_plain_case() {
        use super::CrossEntropyOptions;
        let z = pseudo_random(&[2, 3, 4], 5);
        let labels = [0, 3, 1, 2, 2, 0];
        let all = [
            CrossEntropyOptions::default(),
            CrossEntropyOptions {
                ignore_index: Some(2),
                ..Default::default()
            },
            CrossEntropyOptions {
                label_smoothing: 0.1,
                ..Default::default()
            },
            CrossEntropyOptions {
                ignore_index: Some(0),
                label_smoothing: 0.2,
                weight: Some(vec![0.5, 2.0, 1.0, 1.5]),
            },
        ];
        for o in &all {
            check("cross_entropy_with", std::slice::from_ref(&z), |g, v| {
                g.cross_entropy_with(v[0], &labels, o)
            });
        }
        // No options: the plain cross-entropy of the rows.
        let mut g = Graph::new();
        let zv = g.param(z.clone());
        let a = g.cross_entropy_with(zv, &labels, &all[0]);
        let flat = g.reshape(zv, &[6, 4]);
        let b = g.cross_entropy(flat, &labels);
        assert!((g.value(a).item() - g.value(b).item()).abs() < 1e-6);
    }

    #[test]
    fn losses_of_the_wrong_shapes_are_errors_with_try() {
        let mut g = Graph::new();
        let p = g.param(Tensor::zeros(&[4, 3]));
        let t = g.input(Tensor::zeros(&[4]));
        let e = g.try_mse(p, t).unwrap_err().to_string();
        assert!(
            e.contains("mse") && e.contains("[4, 3]") && e.contains("[4]"),
            "{e}"
        );
        let e = g
            .try_cross_entropy(p, &[0, 1, 5, 2])
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 5"), "{e}");
        let e = g.try_cross_entropy(p, &[0, 1]).unwrap_err().to_string();
        assert!(e.contains("2 labels"), "{e}");
        let t = g.input(Tensor::zeros(&[4, 3]));
        assert!(g.try_mse(p, t).is_ok() && g.try_bce_with_logits(p, t).is_ok());
        assert!(g.try_cross_entropy(p, &[0, 1, 2, 2]).is_ok());
    }

    #[test]
    fn gradients_match_finite_differences() {
        let p = pseudo_random(&[6, 4], 1);
        let t = pseudo_random(&[6, 4], 2);
        check("mse", &[p.clone(), t.clone()], |g, v| g.mse(v[0], v[1]));
        check("l1", &[p.clone(), t.clone()], |g, v| g.l1(v[0], v[1]));
        for delta in [1.0, 0.3] {
            check("huber", &[p.clone(), t.clone()], |g, v| {
                g.huber(v[0], v[1], delta)
            });
        }
        // nll of log-probabilities: the cross-entropy of the logits
        let labels = [0, 3, 1, 2, 2, 0];
        let opts = super::CrossEntropyOptions {
            ignore_index: Some(1),
            label_smoothing: 0.0,
            weight: Some(vec![0.5, 2.0, 1.0, 1.5]),
        };
        check("nll", std::slice::from_ref(&p), |g, v| {
            g.nll(v[0], &labels, &opts)
        });
        let mut g = Graph::new();
        let z = g.param(p.clone());
        let lp = g.log_softmax(z);
        let a = g.nll(lp, &labels, &opts);
        let b = g.cross_entropy_with(z, &labels, &opts);
        assert!((g.value(a).item() - g.value(b).item()).abs() < 1e-6);
        let prob = p.map(|v| 0.5 + 0.4 * v);
        let bits = t.map(|v| if v > 0.0 { 1.0 } else { 0.0 });
        check("bce", &[prob, bits.clone()], |g, v| g.bce(v[0], v[1]));
        check("bce_with_logits", &[p.map(|v| 4.0 * v), bits], |g, v| {
            g.bce_with_logits(v[0], v[1])
        });
        let labels = [0, 3, 1, 1, 2, 3];
        check("cross_entropy", &[p.map(|v| 3.0 * v)], |g, v| {
            g.cross_entropy(v[0], &labels)
        });
        let soft = t.map(|v| v.abs());
        check(
            "cross_entropy_probs",
            &[p.map(|v| 3.0 * v), soft],
            |g, v| g.cross_entropy_probs(v[0], v[1]),
        );
    }

    #[test]
    fn extremes_stay_finite() {
        let mut g = Graph::new();
        let p = g.param(Tensor::from_vec(vec![4], vec![0.0, 1.0, 0.0, 1.0]));
        let t = g.input(Tensor::from_vec(vec![4], vec![0.0, 1.0, 1.0, 0.0]));
        let l = g.bce(p, t);
        // Two exact hits (0 each) and two total misses clamped at 100 each.
        assert_eq!(g.value(l).item(), 50.0);
        let gr = g.backward(l);
        assert!(gr.get(p).unwrap().data().iter().all(|v| v.is_finite()));

        let z = g.param(Tensor::from_vec(vec![1, 3], vec![1000.0, -1000.0, 0.0]));
        let ce = g.cross_entropy(z, &[1]);
        assert_eq!(g.value(ce).item(), 2000.0);
        let zl = g.param(Tensor::from_vec(vec![2], vec![200.0, -200.0]));
        let tl = g.input(Tensor::from_vec(vec![2], vec![1.0, 1.0]));
        let bl = g.bce_with_logits(zl, tl);
        assert_eq!(g.value(bl).item(), 100.0);
    }

    #[test]
    fn cross_entropy_delta_is_softmax_minus_onehot() {
        let mut g = Graph::new();
        let z = g.param(Tensor::from_vec(vec![1, 3], vec![1.0, 2.0, 3.0]));
        let l = g.cross_entropy(z, &[2]);
        let grads = g.backward(l);
        let e: Vec<f32> = [1.0f32, 2.0, 3.0].iter().map(|v| v.exp()).collect();
        let s: f32 = e.iter().sum();
        let want = [e[0] / s, e[1] / s, e[2] / s - 1.0];
        for (a, b) in grads.get(z).unwrap().data().iter().zip(want) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
