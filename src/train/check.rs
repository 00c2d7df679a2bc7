//! `backprop gradcheck`: a model's gradients against central finite
//! differences, parameter by parameter.
//!
//! As the op tests do ([`crate::ops::gradcheck`]): a batch of random inputs
//! in [−1, 1], a fixed random upstream gradient `r` (never all ones) and the
//! scalar `L = Σ r·model(x)` accumulated in `f64`; for each checked element
//! of each parameter, the analytic ∂L/∂θ from one backward pass against
//! `(L(θ+h) − L(θ−h)) / 2h` with `h = 1e-2·max(1, |θ|)`, the error measured
//! as `|a − n| / max(1, |a|, |n|)`. The model runs in `Eval` mode, so dropout
//! and batch statistics do not change between the passes.
//!
//! ReLU and max-pooling have kinks: when `θ ± h` moves a unit across one,
//! the central difference is off although the gradient is right, and a
//! convolution weight feeds thousands of units, so some are always near one.
//! So an element whose error is above 1e-4 is retried with `h = 1e-3` and
//! `1e-4`, and the smallest error is kept. If it stays above 1e-4, the
//! element counts as skipped rather than failed when the steps show a kink:
//! the analytic gradient agrees (within the tolerance) with one of the
//! one-sided differences `(L(θ+h) − L(θ)) / h`, `(L(θ) − L(θ−h)) / h`, or
//! the three estimates disagree with each other. A wrong backward on a
//! smooth stretch gives estimates that agree with each other and with
//! neither side's analytic slope, and fails. Even so, a convolution weight
//! whose output feeds thousands of relu or max-pool units sees kinks at every
//! usable `f32` step, and errors up to a few 1e-3 are kinks, not bugs: hence
//! the command's default tolerance of 1e-2 for such models (1e-3 otherwise;
//! smooth layers measure about 1e-5). Fewer kinks: `--batch 1`.
//!
//! Large layers are sampled: up to `samples` elements per parameter (chosen
//! at random with the seed; all of them when `samples` is 0), each costing two
//! forward passes.

use crate::nn::{Mode, Model};
use crate::ops::gradcheck::pseudo_random;
use crate::{Graph, Result, Tensor, Var};
use rand::SeedableRng;

/// The result for one parameter.
#[derive(Clone, Debug)]
pub struct ParamCheck {
    /// Full name, e.g. `1.weight`.
    pub name: String,
    /// The layer index it belongs to.
    pub layer: usize,
    /// Elements compared (excluding kinks) and the parameter's size.
    pub checked: usize,
    pub total: usize,
    /// Elements skipped because the steps crossed kinks.
    pub kinks: usize,
    /// The worst error and where: `(error, element, analytic, numeric)`.
    pub worst: (f64, usize, f64, f64),
}

/// Settings of a check.
#[derive(Clone, Debug)]
pub struct CheckConfig {
    /// Per-sample input shape, e.g. `[1, 28, 28]`.
    pub sample_shape: Vec<usize>,
    pub batch: usize,
    pub seed: u64,
    /// Elements per parameter (0: all).
    pub samples: usize,
    /// The error that fails the check; also how close estimates must be to
    /// count as agreeing when looking for kinks.
    pub tolerance: f64,
}

/// Compare every parameter's gradient with central finite differences.
pub fn check_model(model: &Model, cfg: &CheckConfig) -> Result<Vec<ParamCheck>> {
    if cfg.batch == 0 {
        return Err(crate::Error::Config(
            "--batch 0: use at least 1 sample".into(),
        ));
    }
    model.output_shape(&cfg.sample_shape)?;
    let mut shape = vec![cfg.batch];
    shape.extend_from_slice(&cfg.sample_shape);
    let x = pseudo_random(&shape, cfg.seed.wrapping_add(1));
    let params: Vec<(String, Tensor)> = model.parameters().map(|(n, t)| (n, t.clone())).collect();
    Ok(check_function(&params, &x, cfg, |g, x, ps| {
        model.forward_with(g, x, ps, Mode::Eval).out
    }))
}

/// [`check_model`] for any function `f(graph, x, params) → output` of named
/// parameters (`"{layer}.{name}"`) and an input batch `x`.
pub fn check_function(
    params: &[(String, Tensor)],
    x: &Tensor,
    cfg: &CheckConfig,
    f: impl Fn(&mut Graph, Var, Vec<Var>) -> Var,
) -> Vec<ParamCheck> {
    // Analytic gradients of L = Σ r·out.
    let mut g = Graph::new();
    let xv = g.input(x.clone());
    let vars: Vec<Var> = params.iter().map(|(_, t)| g.param(t.clone())).collect();
    let out = f(&mut g, xv, vars.clone());
    let r = pseudo_random(g.shape(out), cfg.seed.wrapping_add(2));
    let table = g.backward_with(out, r.clone());
    let analytic: Vec<Tensor> = vars
        .iter()
        .zip(params)
        .map(|(v, (_, t))| table.get(*v).cloned().unwrap_or_else(|| t.zeros_like()))
        .collect();
    drop(g);

    let loss_at = |ps: &[Tensor]| -> f64 {
        let mut g = Graph::no_grad();
        let xv = g.input(x.clone());
        let vars = ps.iter().map(|t| g.param(t.clone())).collect();
        let out = f(&mut g, xv, vars);
        g.value(out)
            .data()
            .iter()
            .zip(r.data())
            .map(|(&o, &w)| o as f64 * w as f64)
            .sum()
    };
    let mut ps: Vec<Tensor> = params.iter().map(|(_, t)| t.clone()).collect();
    let base = loss_at(&ps);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut out = Vec::with_capacity(params.len());
    for (i, (name, t)) in params.iter().enumerate() {
        let n = t.numel();
        let idx: Vec<usize> = if cfg.samples == 0 || n <= cfg.samples {
            (0..n).collect()
        } else {
            let mut v = rand::seq::index::sample(&mut rng, n, cfg.samples).into_vec();
            v.sort_unstable();
            v
        };
        let mut pc = ParamCheck {
            name: name.clone(),
            layer: name
                .split('.')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            checked: 0,
            total: n,
            kinks: 0,
            worst: (0.0, 0, 0.0, 0.0),
        };
        for j in idx {
            let x0 = t.data()[j];
            let a = analytic[i].data()[j] as f64;
            // (error, numeric) at each step tried, and whether one side agrees.
            let mut tries: Vec<(f64, f64)> = Vec::with_capacity(STEPS.len());
            let mut one_side = false;
            let mut scale = 1f64.max(a.abs());
            for step in STEPS {
                let h = step * x0.abs().max(1.0);
                ps[i].data_mut()[j] = x0 + h;
                let lp = loss_at(&ps);
                ps[i].data_mut()[j] = x0 - h;
                let lm = loss_at(&ps);
                ps[i].data_mut()[j] = x0;
                // The steps actually taken, in f32.
                let (hp, hm) = ((x0 + h) as f64 - x0 as f64, x0 as f64 - (x0 - h) as f64);
                let numeric = (lp - lm) / (hp + hm);
                scale = scale.max(numeric.abs());
                let e = (a - numeric).abs() / 1f64.max(a.abs()).max(numeric.abs());
                tries.push((e, numeric));
                if e <= RETRY {
                    break;
                }
                let (fwd, bwd) = ((lp - base) / hp, (base - lm) / hm);
                one_side |= (a - fwd).abs().min((a - bwd).abs()) / scale <= cfg.tolerance;
            }
            let best = tries
                .iter()
                .copied()
                .fold(
                    (f64::INFINITY, f64::NAN),
                    |b, t| if t.0 < b.0 { t } else { b },
                );
            // Estimates that agree with each other: the differences converged.
            let converged = tries.iter().enumerate().any(|(k, x)| {
                tries[k + 1..]
                    .iter()
                    .any(|y| (x.1 - y.1).abs() / scale <= cfg.tolerance)
            });
            if best.0 > RETRY && (one_side || !converged) {
                // A kink: on one side the slope is the analytic gradient, or
                // the estimates jump about with the step.
                pc.kinks += 1;
                continue;
            }
            pc.checked += 1;
            if best.0 > pc.worst.0 {
                pc.worst = (best.0, j, a, best.1);
            }
        }
        out.push(pc);
    }
    out
}

/// The relative steps tried in turn, while the error stays above 1e-4:
/// a smaller step is less likely to cross a kink, a larger one less noisy.
pub const STEPS: [f32; 3] = [1e-2, 1e-3, 1e-4];

/// An element whose error at the first step is above this is tried for a
/// kink and at smaller steps; the smallest error found is reported.
const RETRY: f64 = 1e-4;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Init;

    fn model(line: &str) -> Model {
        Model::new(
            line,
            Init::Default,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap()
    }

    fn cfg(sample: &[usize]) -> CheckConfig {
        CheckConfig {
            sample_shape: sample.to_vec(),
            batch: 4,
            seed: 0,
            samples: 0,
            tolerance: 1e-3,
        }
    }

    #[test]
    fn smooth_and_kinked_models_pass() {
        for line in [
            "flatten,linear(12,8),tanh,linear(8,6),sigmoid,linear(6,3)",
            "flatten,linear(12,16),relu,linear(16,16),relu,linear(16,3)",
            "flatten,linear(12,8),prelu,linear(8,6),elu,linear(6,3),log_softmax",
        ] {
            let r = check_model(&model(line), &cfg(&[3, 4])).unwrap();
            let n = model(line).parameters().count();
            assert_eq!(r.len(), n, "{line}");
            for p in &r {
                assert!(p.worst.0 < 1e-3, "{line}: {p:?}");
                assert!(p.checked + p.kinks == p.total, "{line}: {p:?}");
            }
        }
    }

    /// x², with a backward that forgets the factor 2 on negative inputs.
    struct WrongSquare;
    impl crate::autograd::Backward for WrongSquare {
        fn backward(
            &self,
            g: &Tensor,
            inp: &[&Tensor],
            _out: &Tensor,
            _needs: &[bool],
        ) -> Vec<Option<Tensor>> {
            let d = inp[0]
                .data()
                .iter()
                .zip(g.data())
                .map(|(&x, &g)| if x < 0.0 { x * g } else { 2.0 * x * g })
                .collect();
            vec![Some(Tensor::from_vec(g.shape().to_vec(), d))]
        }
    }

    #[test]
    fn a_wrong_backward_is_caught() {
        let m = model("linear(5,3)");
        let params: Vec<(String, Tensor)> = m.parameters().map(|(n, t)| (n, t.clone())).collect();
        let x = pseudo_random(&[4, 5], 3);
        let r = check_function(&params, &x, &cfg(&[5]), |g, x, ps| {
            let z = g.linear(x, ps[0], Some(ps[1]));
            let v = g.value(z).map(|v| v * v);
            g.push("wrong_square", v, &[z], WrongSquare)
        });
        assert!(r.iter().all(|p| p.worst.0 > 1e-2), "{r:?}");
        assert!(r.iter().all(|p| p.kinks == 0), "{r:?}");
    }

    #[test]
    fn sampling_limits_the_elements() {
        let mut c = cfg(&[20]);
        c.samples = 7;
        let r = check_model(&model("linear(20,30),relu,linear(30,2)"), &c).unwrap();
        assert_eq!(r[0].total, 600);
        assert_eq!(r[0].checked + r[0].kinks, 7);
        assert_eq!(r[1].checked + r[1].kinks, 7);
        assert_eq!(r[3].total, 2);
    }
}
