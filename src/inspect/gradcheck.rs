//! `backprop gradcheck`: a model's gradients against central finite
//! differences, parameter by parameter, with the checker of
//! [`crate::ops::gradcheck`] (see there for the measure, the steps and the
//! kinks).
//!
//! The model runs on a batch of random inputs in [−1, 1] in evaluation mode
//! (so dropout and batch statistics do not change between the passes), with
//! a graph recorded for the analytic gradients of `L = Σ r·model(x)`. A
//! convolution weight whose output feeds thousands of relu or max-pool units
//! sees kinks at every usable `f32` step, and errors up to a few 1e-3 are
//! kinks, not bugs: hence [`default_tolerance`] is 1e-2 for models with
//! kinks (1e-3 otherwise; smooth layers measure about 1e-5). Fewer kinks:
//! a batch of 1.

use crate::nn::{Mode, Module, ModuleExt, Pass};
use crate::ops::gradcheck::{compare, pseudo_random, weighted_sum};
pub use crate::ops::gradcheck::{CheckConfig, ParamCheck, Worst};
use crate::{Error, Result, Tensor};

/// A model's check: every parameter's result, and what the report needs.
#[derive(Clone, Debug)]
pub struct ModelCheck {
    /// One result per parameter, in the model's parameter order.
    pub params: Vec<ParamCheck>,
    /// `(module name, description)` of every module that owns parameters,
    /// in order (`("1", "linear(784,32)")`).
    pub layers: Vec<(String, String)>,
    /// Whether the model's graph has ops with kinks (relu, leaky_relu,
    /// prelu, max-pooling).
    pub has_kinks: bool,
    /// The tolerance the parameters were judged by ([`default_tolerance`] unless set).
    pub tolerance: f64,
}

/// 1e-2 for models with kinks, 1e-3 otherwise.
pub fn default_tolerance(has_kinks: bool) -> f64 {
    if has_kinks {
        1e-2
    } else {
        1e-3
    }
}

/// Whether `model`'s forward pass on samples of `sample_shape` goes through
/// ops with kinks.
pub fn has_kinks(model: &dyn Module, sample_shape: &[usize]) -> Result<bool> {
    model.output_shape(sample_shape)?;
    let mut shape = vec![1];
    shape.extend_from_slice(sample_shape);
    let mut p = Pass::eval(model);
    let x = p.input(Tensor::zeros(&shape));
    model.forward(&mut p, x);
    Ok((0..p.len()).any(|i| p.op(p.var(i)).kinked()))
}

/// Compare every parameter's gradient of `model` with central finite
/// differences on a random batch (`cfg.batch` samples of `cfg.sample_shape`).
/// A `cfg.tolerance` of 0 means [`default_tolerance`].
pub fn check_model(model: &dyn Module, cfg: &CheckConfig) -> Result<ModelCheck> {
    if cfg.batch == 0 {
        return Err(Error::Config("a batch needs at least 1 sample".into()));
    }
    let has_kinks = has_kinks(model, &cfg.sample_shape)?;
    let mut cfg = cfg.clone();
    if cfg.tolerance <= 0.0 {
        cfg.tolerance = default_tolerance(has_kinks);
    }
    let mut shape = vec![cfg.batch];
    shape.extend_from_slice(&cfg.sample_shape);
    let x = pseudo_random(&shape, cfg.seed.wrapping_add(1));
    let params = check_module(model, &x, &cfg);
    let names: Vec<String> = params.iter().map(|p| p.name.clone()).collect();
    let mut layers: Vec<(String, String)> = Vec::new();
    for (name, m) in crate::nn::named_modules(model) {
        let owns = names
            .iter()
            .any(|n| n.rsplit_once('.').map_or("", |(o, _)| o) == name);
        if owns {
            layers.push((name, m.describe()));
        }
    }
    Ok(ModelCheck {
        params,
        layers,
        has_kinks,
        tolerance: cfg.tolerance,
    })
}

/// [`check_model`]'s comparison on a given batch `x`.
pub fn check_module(model: &dyn Module, x: &Tensor, cfg: &CheckConfig) -> Vec<ParamCheck> {
    // Analytic gradients of L = Σ r·out, evaluation behaviour, graph recorded.
    let mut p = Pass::with_grad(model, Mode::Eval);
    let xv = p.input(x.clone());
    let out = model.forward(&mut p, xv);
    let r = pseudo_random(p.shape(out), cfg.seed.wrapping_add(2));
    let vars = p.param_vars().to_vec();
    let table = p.backward_with(out, r.clone());
    let values: Vec<(String, Tensor)> = model
        .parameters()
        .into_iter()
        .map(|(n, t)| (n, t.value().clone()))
        .collect();
    let analytic: Vec<Tensor> = vars
        .iter()
        .zip(&values)
        .map(|(v, (_, t))| table.get(*v).cloned().unwrap_or_else(|| t.zeros_like()))
        .collect();
    drop(table);
    drop(p);
    let mut copy = model.clone_module();
    compare(&values, &analytic, cfg, |i, t| {
        let mut k = 0;
        copy.for_each_param_mut(&mut |_, p| {
            if k == i {
                p.set(t.clone());
            }
            k += 1;
        });
        let out = copy.predict(x);
        let l = weighted_sum(&out, &r);
        let mut k = 0;
        copy.for_each_param_mut(&mut |_, p| {
            if k == i {
                p.set(values[i].1.clone());
            }
            k += 1;
        });
        l
    })
}

impl ModelCheck {
    /// The worst parameter, if any.
    pub fn worst(&self) -> Option<&ParamCheck> {
        self.params
            .iter()
            .fold(None, |b: Option<&ParamCheck>, p| match b {
                Some(b) if b.worst.error >= p.worst.error => Some(b),
                _ => Some(p),
            })
    }

    /// Elements skipped as kinks, over all parameters.
    pub fn kinks(&self) -> usize {
        self.params.iter().map(|p| p.kinks).sum()
    }

    /// Whether every checked element agrees within the tolerance.
    pub fn passed(&self) -> bool {
        self.worst().is_none_or(|w| w.worst.error <= self.tolerance)
    }

    /// One line per layer: its worst error, and per parameter the worst
    /// error, the elements checked and the kinks.
    pub fn report(&self) -> String {
        let mut s = String::new();
        for (name, text) in &self.layers {
            let ps: Vec<&ParamCheck> = self
                .params
                .iter()
                .filter(|p| p.name.rsplit_once('.').map_or("", |(o, _)| o) == name)
                .collect();
            let w = ps.iter().map(|p| p.worst.error).fold(0.0, f64::max);
            let parts: Vec<String> = ps
                .iter()
                .map(|p| {
                    let local = p.name.rsplit_once('.').map_or(p.name.as_str(), |(_, l)| l);
                    format!(
                        "{local} {:.1e} ({} of {}{})",
                        p.worst.error,
                        p.checked,
                        p.total,
                        if p.kinks > 0 {
                            format!(", {} at kinks", p.kinks)
                        } else {
                            String::new()
                        }
                    )
                })
                .collect();
            let flag = if w > self.tolerance { "  FAIL" } else { "" };
            s += &format!(
                "layer {name} {:<24} worst {w:.1e}{flag}   {}\n",
                text,
                parts.join(", ")
            );
        }
        s
    }

    /// The verdict: `Ok(line)` when every gradient agrees, else an error
    /// naming the worst element.
    pub fn verdict(&self) -> Result<String> {
        let Some(w) = self.worst() else {
            return Ok("the model has no parameters: nothing to check".into());
        };
        let tol = self.tolerance;
        let kinks = self.kinks();
        if !self.passed() {
            return Err(Error::Config(format!(
                "gradient check failed: `{}` element {} has analytic gradient {:.6e}, numeric {:.6e}: error {:.1e} > \
                 tolerance {tol:e}{}",
                w.name,
                w.worst.element,
                w.worst.analytic,
                w.worst.numeric,
                w.worst.error,
                if self.has_kinks {
                    " (a kink fails with one seed only; a wrong gradient with every seed)"
                } else {
                    ""
                }
            )));
        }
        let skipped = if kinks > 0 {
            format!(
                " ({kinks} element{} skipped: the steps crossed kinks of relu or max-pool)",
                if kinks == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        };
        Ok(format!(
            "ok: every gradient checked agrees within {tol:e} (worst {:.1e}, `{}`){skipped}",
            w.worst.error, w.name
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Init, Sequential};
    use crate::ops::gradcheck::check_function;
    use rand::SeedableRng;

    fn model(line: &str) -> Sequential {
        Sequential::parse(
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
            let n = model(line).parameters().len();
            assert_eq!(r.params.len(), n, "{line}");
            assert_eq!(r.has_kinks, !line.contains("tanh"), "{line}");
            for p in &r.params {
                assert!(p.worst.error < 1e-3, "{line}: {p:?}");
                assert!(p.checked + p.kinks == p.total, "{line}: {p:?}");
            }
            assert!(r.verdict().is_ok(), "{line}");
            assert!(r.report().contains("layer 1 linear(12,"), "{}", r.report());
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
        let mut inputs: Vec<Tensor> = m
            .parameters()
            .into_iter()
            .map(|(_, t)| t.value().clone())
            .collect();
        inputs.push(pseudo_random(&[4, 5], 3));
        let r = check_function(&inputs, &cfg(&[5]), |g, v| {
            let z = g.linear(v[2], v[0], Some(v[1]));
            let v = g.value(z).map(|v| v * v);
            g.push("wrong_square", v, &[z], WrongSquare)
        });
        assert!(r[..2].iter().all(|p| p.worst.error > 1e-2), "{r:?}");
        assert!(r.iter().all(|p| p.kinks == 0), "{r:?}");
    }

    #[test]
    fn sampling_limits_the_elements() {
        let mut c = cfg(&[20]);
        c.samples = 7;
        let r = check_model(&model("linear(20,30),relu,linear(30,2)"), &c).unwrap();
        let r = r.params;
        assert_eq!(r[0].total, 600);
        assert_eq!(r[0].checked + r[0].kinks, 7);
        assert_eq!(r[1].checked + r[1].kinks, 7);
        assert_eq!(r[3].total, 2);
    }
}
