//! Weight initialization schemes.
//!
//! | scheme | weight | bias |
//! | --- | --- | --- |
//! | `default` (PyTorch's `Linear` init) | U(−1/√fan_in, 1/√fan_in) | U(−1/√fan_in, 1/√fan_in) |
//! | `constant(c)` | c | 0 |
//! | `small-normal` | N(0, 0.01²) | 0 |
//! | `xavier-uniform` | U(−a, a), a = √(6/(fan_in+fan_out)) | 0 |
//! | `xavier-normal` | N(0, 2/(fan_in+fan_out)) | 0 |
//! | `kaiming-uniform` (He) | U(−a, a), a = √(6/fan_in) | 0 |
//! | `kaiming-normal` (He) | N(0, 2/fan_in) | 0 |
//!
//! PyTorch's default is `kaiming_uniform_(a=√5)`, whose bound works out to
//! 1/√fan_in, so a model built here starts from the same distribution as the
//! same model built in PyTorch (not the same numbers: the generators differ).
//!
//! A constant init is allowed but is a trap the seeds warn about: every unit
//! of a layer then computes the same function and receives the same gradient,
//! so the units stay identical forever (the symmetry is never broken).

use crate::{Error, Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How to draw a layer's initial weights (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Init {
    /// PyTorch's `Linear` init: weight and bias U(−1/√fan_in, 1/√fan_in).
    #[default]
    Default,
    /// Every weight `c`, bias 0 (breaks no symmetry).
    Constant(f32),
    /// Weight N(0, 0.01²), bias 0.
    SmallNormal,
    /// Glorot: weight U(−a, a), a = √(6/(fan_in+fan_out)), bias 0.
    XavierUniform,
    /// Glorot: weight N(0, 2/(fan_in+fan_out)), bias 0.
    XavierNormal,
    /// He: weight U(−a, a), a = √(6/fan_in), bias 0.
    KaimingUniform,
    /// He: weight N(0, 2/fan_in), bias 0.
    KaimingNormal,
    /// Weight N(0, σ²) for a given σ, bias 0 (GPT-2's `normal(0.02)`).
    Normal(f32),
    /// Weight and bias U(−a, a) for a given `a` (`nn.init.uniform_`; the
    /// 1986 experiments' ±0.3, biases being weights from a unit always on).
    Uniform(f32),
}

impl std::str::FromStr for Init {
    type Err = Error;

    /// A scheme by name (`-` or `_`, any case).
    ///
    /// ```
    /// use backprop::nn::Init;
    /// assert_eq!("xavier-uniform".parse::<Init>().unwrap(), Init::XavierUniform);
    /// assert_eq!("constant(0.5)".parse::<Init>().unwrap(), Init::Constant(0.5));
    /// assert_eq!("normal(0.02)".parse::<Init>().unwrap(), Init::Normal(0.02));
    /// assert!("glorious".parse::<Init>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Init> {
        let t = s.trim().to_ascii_lowercase().replace('_', "-");
        if let Some(v) = t
            .strip_prefix("constant(")
            .and_then(|r| r.strip_suffix(')'))
        {
            return v
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|c| c.is_finite())
                .map(Init::Constant)
                .ok_or_else(|| Error::Config(format!("`{v}` is not a finite number")));
        }
        if let Some(v) = t.strip_prefix("uniform(").and_then(|r| r.strip_suffix(')')) {
            return v
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|a| a.is_finite() && *a >= 0.0)
                .map(Init::Uniform)
                .ok_or_else(|| Error::Config(format!("`{v}` is not a bound ≥ 0")));
        }
        if let Some(v) = t.strip_prefix("normal(").and_then(|r| r.strip_suffix(')')) {
            return v
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Init::Normal)
                .ok_or_else(|| Error::Config(format!("`{v}` is not a standard deviation ≥ 0")));
        }
        Ok(match t.as_str() {
            "default" | "pytorch" => Init::Default,
            "constant" | "zeros" => Init::Constant(0.0),
            "small-normal" | "normal" => Init::SmallNormal,
            "xavier-uniform" | "glorot-uniform" | "xavier" | "glorot" => Init::XavierUniform,
            "xavier-normal" | "glorot-normal" => Init::XavierNormal,
            "kaiming-uniform" | "he-uniform" => Init::KaimingUniform,
            "kaiming-normal" | "he-normal" | "he" | "kaiming" => Init::KaimingNormal,
            _ => return Err(Error::Config(
                "unknown scheme; use default, constant(C), small-normal, normal(STD), uniform(A), \
                     xavier-uniform, xavier-normal, kaiming-uniform or kaiming-normal"
                    .into(),
            )),
        })
    }
}

impl Init {
    /// Draw a weight of `shape` whose fan-in and fan-out are given.
    pub fn weight(
        self,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
        rng: &mut ChaCha8Rng,
    ) -> Tensor {
        let (fi, fo) = (fan_in as f32, fan_out as f32);
        match self {
            Init::Default => uniform(shape, 1.0 / fi.sqrt(), rng),
            Init::Constant(c) => Tensor::full(shape, c),
            Init::SmallNormal => normal(shape, 0.01, rng),
            Init::XavierUniform => uniform(shape, (6.0 / (fi + fo)).sqrt(), rng),
            Init::XavierNormal => normal(shape, (2.0 / (fi + fo)).sqrt(), rng),
            Init::KaimingUniform => uniform(shape, (6.0 / fi).sqrt(), rng),
            Init::KaimingNormal => normal(shape, (2.0 / fi).sqrt(), rng),
            Init::Normal(std) => normal(shape, std, rng),
            Init::Uniform(a) => uniform(shape, a, rng),
        }
    }

    /// Draw a weight (or, with `bias`, a bias) of a recurrent layer of
    /// `hidden` units: PyTorch's U(−1/√H, 1/√H) for every one under
    /// [`Init::Default`]; under another scheme the weights drawn by it
    /// (fan-in `fan_in`, fan-out `fan_out`) and the biases zero.
    pub fn recurrent(
        self,
        shape: &[usize],
        (fan_in, fan_out, hidden): (usize, usize, usize),
        bias: bool,
        rng: &mut ChaCha8Rng,
    ) -> Tensor {
        match (self, bias) {
            (Init::Default, _) => uniform(shape, 1.0 / (hidden as f32).sqrt(), rng),
            (_, true) => Tensor::zeros(shape),
            (other, false) => other.weight(shape, fan_in, fan_out, rng),
        }
    }

    /// Draw a bias of `shape` for a layer with this fan-in.
    pub fn bias(self, shape: &[usize], fan_in: usize, rng: &mut ChaCha8Rng) -> Tensor {
        match self {
            Init::Default => uniform(shape, 1.0 / (fan_in as f32).sqrt(), rng),
            Init::Uniform(a) => uniform(shape, a, rng),
            _ => Tensor::zeros(shape),
        }
    }
}

/// U(−a, a).
pub fn uniform(shape: &[usize], a: f32, rng: &mut ChaCha8Rng) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(
        shape.to_vec(),
        (0..n).map(|_| rng.random_range(-a..=a)).collect(),
    )
}

/// N(0, std²), by the Box–Muller transform.
pub fn normal(shape: &[usize], std: f32, rng: &mut ChaCha8Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let mut data = Vec::with_capacity(n + 1);
    while data.len() < n {
        let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        data.push((r * t.cos()) as f32 * std);
        data.push((r * t.sin()) as f32 * std);
    }
    data.truncate(n);
    Tensor::from_vec(shape.to_vec(), data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn stats(t: &Tensor) -> (f64, f64) {
        let n = t.numel() as f64;
        let m = t.sum_all() / n;
        let v = t
            .data()
            .iter()
            .map(|&x| (x as f64 - m).powi(2))
            .sum::<f64>()
            / n;
        (m, v)
    }

    #[test]
    fn variances_match_the_formulas() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (fi, fo) = (400, 200);
        let cases = [
            (Init::Default, 1.0 / (3.0 * fi as f64)),
            (Init::SmallNormal, 1e-4),
            (Init::XavierUniform, 2.0 / (fi + fo) as f64),
            (Init::XavierNormal, 2.0 / (fi + fo) as f64),
            (Init::KaimingUniform, 2.0 / fi as f64),
            (Init::KaimingNormal, 2.0 / fi as f64),
        ];
        for (init, want) in cases {
            let w = init.weight(&[fo, fi], fi, fo, &mut rng);
            let (m, v) = stats(&w);
            assert!(m.abs() < 0.05 * want.sqrt(), "{init:?} mean {m}");
            assert!(
                (v / want - 1.0).abs() < 0.03,
                "{init:?} variance {v} want {want}"
            );
        }
        let c = Init::Constant(0.5).weight(&[2, 2], 2, 2, &mut rng);
        assert_eq!(c.data(), &[0.5; 4]);
    }

    #[test]
    fn same_seed_same_weights() {
        let a = Init::Default.weight(&[3, 4], 4, 3, &mut ChaCha8Rng::seed_from_u64(5));
        let b = Init::Default.weight(&[3, 4], 4, 3, &mut ChaCha8Rng::seed_from_u64(5));
        assert_eq!(a, b);
    }
}
