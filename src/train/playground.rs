//! The playground: small networks on the problems backprop was first shown
//! on, trained a few steps at a time by the library itself, so that a page
//! can show every weight and its gradient as they change.
//!
//! - **XOR** (2-2-1) and the **symmetry** detector (6-2-1: is a 6-bit input a
//!   palindrome?) and the **8-3-8 encoder**, from Rumelhart, Hinton &
//!   Williams (1986);
//! - the **two spirals** of Lang & Witbrock (1988): 2 × 97 points winding
//!   three times round the origin, one spiral per class.
//!
//! Every network ends in a sigmoid unit per output, and is trained as the
//! 1986 paper trained its own: full batch, on the error E = ½ Σ (y − d)²
//! over every output of every case, by Δw(t) = −ε ∂E/∂w + α Δw(t−1). That
//! is the library's SGD with classic momentum at a learning rate of
//! ε·N·K/2 on its `mse` (the mean over the N·K outputs, whose gradient is
//! 2/(N·K) of ∂E/∂w).
//!
//! [`train`] is stateless: it takes the weights and the momentum so far (or
//! none, to start from the seed) and gives them back after its steps, with
//! the gradients at the new weights, the outputs for every case, and for
//! the spirals the network's answer over the plane.

use crate::nn::{Activation, Init, Linear, Module, ModuleExt, Pass, Sequential};
use crate::optim::{Momentum, Optimizer, OptimizerConfig};
use crate::{Error, Result, Setting, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The most steps one call takes.
pub const MAX_STEPS: usize = 5000;
/// The most hidden layers, and units in each.
pub const MAX_HIDDEN: (usize, usize) = (3, 32);
/// The side of the grid the spirals' network is evaluated on.
pub const GRID: usize = 41;
/// The plane the grid covers: `[-EXTENT, EXTENT]²`.
pub const EXTENT: f32 = 1.2;

/// A problem: its cases and their targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Exclusive or, 4 cases.
    Xor,
    /// Is a 6-bit input a palindrome? 64 cases.
    Symmetry,
    /// Each of 8 one-hot inputs reproduced at the output, 8 cases.
    Encoder,
    /// Lang & Witbrock's two spirals, 194 points in the plane.
    Spirals,
}

impl std::str::FromStr for Problem {
    type Err = Error;
    fn from_str(s: &str) -> Result<Problem> {
        Ok(match s {
            "xor" => Problem::Xor,
            "symmetry" => Problem::Symmetry,
            "encoder" => Problem::Encoder,
            "spirals" => Problem::Spirals,
            _ => {
                return Err(Error::invalid(
                    Setting::Model,
                    s,
                    "the problems are xor, symmetry, encoder and spirals",
                ))
            }
        })
    }
}

impl Problem {
    /// The inputs `[N, I]` and the targets `[N, K]` (0 or 1).
    pub fn cases(self) -> (Tensor, Tensor) {
        match self {
            Problem::Xor => (
                Tensor::from_vec(vec![4, 2], vec![0., 0., 0., 1., 1., 0., 1., 1.]),
                Tensor::from_vec(vec![4, 1], vec![0., 1., 1., 0.]),
            ),
            Problem::Symmetry => {
                let (mut x, mut y) = (Vec::new(), Vec::new());
                for v in 0..64u32 {
                    let bits: Vec<f32> = (0..6).map(|i| ((v >> (5 - i)) & 1) as f32).collect();
                    y.push((0..3).all(|i| bits[i] == bits[5 - i]) as u8 as f32);
                    x.extend(bits);
                }
                (
                    Tensor::from_vec(vec![64, 6], x),
                    Tensor::from_vec(vec![64, 1], y),
                )
            }
            Problem::Encoder => {
                let eye: Vec<f32> = (0..64).map(|i| (i % 9 == 0) as u8 as f32).collect();
                (
                    Tensor::from_vec(vec![8, 8], eye.clone()),
                    Tensor::from_vec(vec![8, 8], eye),
                )
            }
            Problem::Spirals => {
                // Lang & Witbrock (1988): point i of 97 at angle iπ/16 and
                // radius 6.5(104 − i)/104; the other spiral is its mirror
                // through the origin. Scaled by 1/6.5 into the unit disc.
                let (mut x, mut y) = (Vec::new(), Vec::new());
                for i in 0..97 {
                    let a = i as f64 * std::f64::consts::PI / 16.0;
                    let r = (104 - i) as f64 / 104.0;
                    let (px, py) = ((r * a.sin()) as f32, (r * a.cos()) as f32);
                    x.extend([px, py, -px, -py]);
                    y.extend([1.0, 0.0]);
                }
                (
                    Tensor::from_vec(vec![194, 2], x),
                    Tensor::from_vec(vec![194, 1], y),
                )
            }
        }
    }

    /// The paper's hidden layer (the spirals: two of 16 units).
    pub fn default_hidden(self) -> Vec<usize> {
        match self {
            Problem::Xor | Problem::Symmetry => vec![2],
            Problem::Encoder => vec![3],
            Problem::Spirals => vec![16, 16],
        }
    }
}

/// A network and how it learns.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The problem.
    pub problem: Problem,
    /// Units per hidden layer.
    pub hidden: Vec<usize>,
    /// The hidden units' activation: `sigmoid`, `tanh` or `relu`.
    pub activation: String,
    /// How the weights are first drawn.
    pub init: Init,
    /// ε, the step on ∂E/∂w.
    pub lr: f32,
    /// α, the share of the last change kept.
    pub momentum: f32,
    /// The seed of the first weights.
    pub seed: u64,
}

impl Setup {
    /// Refuse what the playground does not train: a width or depth over
    /// [`MAX_HIDDEN`], an unknown activation, a learning rate outside
    /// (0, 100], a momentum outside [0, 1).
    pub fn check(&self) -> Result<()> {
        let (depth, width) = MAX_HIDDEN;
        if self.hidden.is_empty() || self.hidden.len() > depth {
            return Err(Error::invalid(
                Setting::Model,
                format!("{:?}", self.hidden),
                format!("give 1 to {depth} hidden layers"),
            ));
        }
        if let Some(h) = self.hidden.iter().find(|&&h| h == 0 || h > width) {
            return Err(Error::invalid(
                Setting::Model,
                h,
                format!("a hidden layer has 1 to {width} units"),
            ));
        }
        if !["sigmoid", "tanh", "relu"].contains(&self.activation.as_str()) {
            return Err(Error::invalid(
                Setting::Model,
                &self.activation,
                "the hidden units are sigmoid, tanh or relu",
            ));
        }
        if !(self.lr > 0.0 && self.lr <= 100.0) {
            return Err(Error::invalid(
                Setting::LearningRate,
                self.lr,
                "give a rate in (0, 100]",
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::invalid(
                Setting::Momentum,
                self.momentum,
                "give a momentum in [0, 1)",
            ));
        }
        Ok(())
    }

    /// The network, its weights drawn from the seed.
    pub fn network(&self) -> Sequential {
        let (x, y) = self.problem.cases();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut net = Sequential::new();
        let mut fan_in = x.shape()[1];
        for &h in &self.hidden {
            net = net
                .push(Linear::new(fan_in, h).weight_init(self.init).init(&mut rng))
                .push(match self.activation.as_str() {
                    "tanh" => Activation::tanh(),
                    "relu" => Activation::relu(),
                    _ => Activation::sigmoid(),
                });
            fan_in = h;
        }
        net.push(
            Linear::new(fan_in, y.shape()[1])
                .weight_init(self.init)
                .init(&mut rng),
        )
        .push(Activation::sigmoid())
    }
}

/// Where training stands: the step, the weights and the momentum buffers,
/// named as the model's state dict and the optimizer's state dict name them.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// Steps taken.
    pub step: usize,
    /// The parameters (`0.weight`, `0.bias`, …).
    pub params: Vec<(String, Tensor)>,
    /// The optimizer's state (`0.weight.momentum_buffer`, …); empty: none yet.
    pub velocity: Vec<(String, Tensor)>,
}

/// What [`train`] gives back.
#[derive(Clone, Debug)]
pub struct Report {
    /// The state after the steps.
    pub state: State,
    /// E before each step taken.
    pub losses: Vec<f32>,
    /// E at the new weights.
    pub loss: f32,
    /// ∂E/∂w at the new weights, per parameter (the paper's E, not the mean).
    pub grads: Vec<(String, Tensor)>,
    /// The outputs `[N, K]` at the new weights.
    pub outputs: Tensor,
    /// Cases with every output within 0.5 of its target.
    pub right: usize,
    /// Each layer's units for every case at the new weights: the inputs,
    /// then each hidden layer's activations, then the outputs (`[N, units]`).
    pub units: Vec<Tensor>,
    /// The spirals only: the output over a [`GRID`]² grid of the plane
    /// `[-EXTENT, EXTENT]²`, row by row from the top.
    pub grid: Option<Vec<f32>>,
}

/// Take `steps` steps (at most [`MAX_STEPS`]) from `state` (none: the
/// seed's first weights).
pub fn train(setup: &Setup, state: Option<&State>, steps: usize) -> Result<Report> {
    setup.check()?;
    if steps > MAX_STEPS {
        return Err(Error::invalid(
            Setting::MaxSteps,
            steps,
            format!("take at most {MAX_STEPS} steps a call"),
        ));
    }
    let (x, y) = setup.problem.cases();
    let nk = y.numel() as f32;
    let mut net = setup.network();
    let mut opt = Optimizer::new(OptimizerConfig::sgd(
        setup.lr * nk / 2.0,
        Momentum::Classic {
            mu: setup.momentum,
            dampening: 0.0,
        },
    ));
    let origin = std::path::Path::new("the playground's state");
    let mut step = 0;
    if let Some(s) = state {
        net.load_state_dict(&s.params, origin)?;
        if !s.velocity.is_empty() {
            opt.load_state_dict(&s.velocity, &net, origin)?;
        }
        step = s.step;
    }
    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let mut pass = Pass::train(&net, 0);
        let (xv, t) = (pass.input(x.clone()), pass.input(y.clone()));
        let out = net.forward(&mut pass, xv);
        let loss = pass.mse(out, t);
        losses.push(pass.value(loss).item() * nk / 2.0);
        opt.step(&mut net, pass.backward(loss));
        step += 1;
    }
    // Where the steps left it: every layer's units, E and ∂E/∂w.
    let mut pass = Pass::train(&net, 0);
    let (mut out, t) = (pass.input(x.clone()), pass.input(y.clone()));
    let mut units = vec![x.clone()];
    for i in 0..net.len() {
        out = net.layer(i).forward(&mut pass, out);
        if i % 2 == 1 {
            units.push(pass.value(out).clone()); // after each activation
        }
    }
    let outputs = pass.value(out).clone();
    let l = pass.mse(out, t);
    let loss = pass.value(l).item() * nk / 2.0;
    // The network holds parameters only (no buffers): its state dict
    // names them in the order the gradients come.
    let grads = net
        .state_dict()
        .into_iter()
        .zip(pass.backward(l).tensors())
        .map(|((n, p), g)| {
            let mut g = g.clone().unwrap_or_else(|| Tensor::zeros(p.shape()));
            g.scale(nk / 2.0);
            (n, g)
        })
        .collect();
    let k = y.shape()[1];
    let right = outputs
        .data()
        .chunks(k)
        .zip(y.data().chunks(k))
        .filter(|(o, t)| o.iter().zip(*t).all(|(a, b)| (a - b).abs() < 0.5))
        .count();
    let grid = (setup.problem == Problem::Spirals).then(|| plane(&net));
    Ok(Report {
        state: State {
            step,
            params: net.state_dict(),
            velocity: opt.state_dict(),
        },
        losses,
        loss,
        grads,
        outputs,
        right,
        units,
        grid,
    })
}

/// The network's output over the grid of the plane.
fn plane(net: &Sequential) -> Vec<f32> {
    let mut pts = Vec::with_capacity(GRID * GRID * 2);
    for r in 0..GRID {
        for c in 0..GRID {
            let at = |i: usize| -EXTENT + 2.0 * EXTENT * i as f32 / (GRID - 1) as f32;
            pts.extend([at(c), -at(r)]);
        }
    }
    let mut pass = Pass::eval(net);
    let xv = pass.input(Tensor::from_vec(vec![GRID * GRID, 2], pts));
    let out = net.forward(&mut pass, xv);
    pass.value(out).data().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(problem: Problem) -> Setup {
        Setup {
            problem,
            hidden: problem.default_hidden(),
            activation: "sigmoid".into(),
            init: Init::Uniform(0.3),
            lr: 0.5,
            momentum: 0.9,
            seed: 1,
        }
    }

    #[test]
    fn steps_in_pieces_are_the_steps_at_once() {
        let s = setup(Problem::Xor);
        let whole = train(&s, None, 40).unwrap();
        let a = train(&s, None, 15).unwrap();
        let b = train(&s, Some(&a.state), 25).unwrap();
        assert_eq!(b.state.step, 40);
        assert_eq!(whole.state.params, b.state.params, "bit for bit");
        assert_eq!(whole.loss, b.loss);
    }

    #[test]
    fn the_gradient_is_that_of_the_papers_error() {
        // ∂E/∂w by central differences of E = ½ Σ (y − d)², in f64 of the f32 net.
        let s = setup(Problem::Xor);
        let r = train(&s, None, 0).unwrap();
        let (x, y) = Problem::Xor.cases();
        let e = |params: &[(String, Tensor)]| {
            let mut net = s.network();
            net.load_state_dict(params, std::path::Path::new("t"))
                .unwrap();
            let mut pass = Pass::eval(&net);
            let xv = pass.input(x.clone());
            let out = net.forward(&mut pass, xv);
            let o = pass.value(out).data().to_vec();
            o.iter()
                .zip(y.data())
                .map(|(a, b)| 0.5 * ((a - b) as f64).powi(2))
                .sum::<f64>()
        };
        for (name, g) in &r.grads {
            for i in 0..g.numel() {
                let shift = |d: f32| {
                    let mut p = r.state.params.clone();
                    let t = &mut p.iter_mut().find(|(n, _)| n == name).unwrap().1;
                    let mut v = t.data().to_vec();
                    v[i] += d;
                    *t = Tensor::from_vec(t.shape().to_vec(), v);
                    e(&p)
                };
                let h = 1e-2;
                let fd = (shift(h) - shift(-h)) / (2.0 * h as f64);
                let got = g.data()[i] as f64;
                assert!(
                    (fd - got).abs() < 1e-3 * (1.0 + fd.abs()),
                    "{name}[{i}]: {got} vs {fd}"
                );
            }
        }
    }

    #[test]
    fn xor_learns_and_the_spirals_cover_the_plane() {
        let r = train(&setup(Problem::Xor), None, 2000).unwrap();
        assert!(r.losses[0] > r.loss);
        let mut sp = setup(Problem::Spirals);
        sp.activation = "tanh".into();
        sp.init = Init::XavierNormal;
        sp.lr = 0.01;
        let r = train(&sp, None, 50).unwrap();
        assert_eq!(r.outputs.shape(), &[194, 1]);
        assert_eq!(r.grid.unwrap().len(), GRID * GRID);
    }

    #[test]
    fn hostile_setups_are_refused() {
        let ok = setup(Problem::Encoder);
        let mut s = ok.clone();
        s.hidden = vec![33];
        assert!(train(&s, None, 1).is_err());
        s = ok.clone();
        s.hidden = vec![2, 2, 2, 2];
        assert!(train(&s, None, 1).is_err());
        s = ok.clone();
        s.lr = f32::NAN;
        assert!(train(&s, None, 1).is_err());
        s = ok.clone();
        s.momentum = 1.0;
        assert!(train(&s, None, 1).is_err());
        assert!(train(&ok, None, MAX_STEPS + 1).is_err());
        // weights of another network
        let other = train(&setup(Problem::Xor), None, 0).unwrap();
        assert!(train(&ok, Some(&other.state), 1).is_err());
    }
}
