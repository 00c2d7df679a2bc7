//! burn's side of the speed comparison of BENCHMARKS.md: the five workloads
//! trained on MNIST with burn's pure-Rust CPU backend (`Flex`, with its
//! `simd` and `rayon` features), timed the way `../shared/bench/torch_bench.py`
//! times PyTorch (one line: seconds per training epoch, median over epochs,
//! and test accuracy).
//!
//! usage: burn_bench WORKLOAD [--epochs N] [--threads T] [--data DIR]
//!
//! The timed loop is torch_bench's: shuffle, gather each batch from the
//! training set, forward, cross-entropy, backward, optimizer step. Models,
//! batch sizes and optimizers are torch_bench's; the initial weights are
//! burn's own defaults (its RNN, for one, starts from Xavier-normal weights
//! where PyTorch draws uniform ones), so accuracies differ by chance.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d, Rnn, RnnConfig};
use burn::optim::{
    momentum::MomentumConfig, AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig,
};
use burn::prelude::*;
use burn::tensor::activation::relu;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

/// Reads an IDX file (gzip) into its dimensions and bytes.
fn load_idx(path: &Path) -> (Vec<usize>, Vec<u8>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .expect("gzip");
    let nd = bytes[3] as usize;
    let dims: Vec<usize> = (0..nd)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let data = bytes[4 + 4 * nd..].to_vec();
    (dims, data)
}

struct Split {
    x: Vec<f32>,
    y: Vec<i64>,
    n: usize,
}

fn split(dir: &Path, images: &str, labels: &str) -> Split {
    let (dims, px) = load_idx(&dir.join(images));
    let (_, lab) = load_idx(&dir.join(labels));
    Split {
        x: px.iter().map(|&v| v as f32 / 255.0).collect(),
        y: lab.iter().map(|&v| v as i64).collect(),
        n: dims[0],
    }
}

#[derive(Module, Debug)]
struct Mlp {
    layers: Vec<Linear>,
    norms: Vec<BatchNorm>,
}

impl Mlp {
    fn new(widths: &[usize], batch_norm: bool, device: &Device) -> Self {
        let layers = widths
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        let norms = match batch_norm {
            true => widths[1..widths.len() - 1]
                .iter()
                .map(|&w| BatchNormConfig::new(w).init(device))
                .collect(),
            false => Vec::new(),
        };
        Mlp { layers, norms }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                if let Some(norm) = self.norms.get(i) {
                    x = norm.forward(x);
                }
                x = relu(x);
            }
        }
        x
    }
}

#[derive(Module, Debug)]
struct LeNet {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    fc: Vec<Linear>,
}

impl LeNet {
    fn new(device: &Device) -> Self {
        LeNet {
            conv1: Conv2dConfig::new([1, 6], [5, 5])
                .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
                .init(device),
            conv2: Conv2dConfig::new([6, 16], [5, 5]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc: [(400, 120), (120, 84), (84, 10)]
                .iter()
                .map(|&(i, o)| LinearConfig::new(i, o).init(device))
                .collect(),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let n = x.dims()[0];
        let x = x.reshape([n, 1, 28, 28]);
        let x = self.pool.forward(relu(self.conv1.forward(x)));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        let mut x: Tensor<2> = x.reshape([n, 400]);
        for (i, fc) in self.fc.iter().enumerate() {
            x = fc.forward(x);
            if i < 2 {
                x = relu(x);
            }
        }
        x
    }
}

#[derive(Module, Debug)]
struct RowRnn {
    rnn: Rnn,
    fc: Linear,
}

impl RowRnn {
    fn new(device: &Device) -> Self {
        RowRnn {
            rnn: RnnConfig::new(28, 128, true).init(device),
            fc: LinearConfig::new(128, 10).init(device),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let n = x.dims()[0];
        let (_, state) = self.rnn.forward(x.reshape([n, 28, 28]), None);
        self.fc.forward(state.hidden)
    }
}

/// Trains `model` for `epochs` epochs and prints torch_bench's line.
fn run<M: Module>(
    name: &str,
    mut model: M,
    forward: impl Fn(&M, Tensor<2>) -> Tensor<2>,
    batch: usize,
    mut optim: ModuleOptimizer,
    lr: f64,
    (train, test): (&Split, &Split),
    epochs: usize,
    device: &Device,
) {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut rng: u64 = 0x853c49e6748fea9b;
    let mut times = Vec::new();
    for _ in 0..epochs {
        // Fisher-Yates with a fixed-seed xorshift: the same order every run.
        let mut perm: Vec<usize> = (0..train.n).collect();
        for i in (1..train.n).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            perm.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        let t0 = Instant::now();
        for idx in perm.chunks(batch) {
            let mut xb = Vec::with_capacity(idx.len() * 784);
            let mut yb = Vec::with_capacity(idx.len());
            for &i in idx {
                xb.extend_from_slice(&train.x[i * 784..(i + 1) * 784]);
                yb.push(train.y[i]);
            }
            let x = Tensor::<2>::from_data(TensorData::new(xb, [idx.len(), 784]), device);
            let y = Tensor::<1, Int>::from_data(TensorData::new(yb, [idx.len()]), device);
            let loss = loss_fn.forward(forward(&model, x), y);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
        }
        times.push(t0.elapsed().as_secs_f64());
    }
    let model = model.valid();
    let mut correct = 0usize;
    for start in (0..test.n).step_by(1000) {
        let end = (start + 1000).min(test.n);
        let plain = Device::flex();
        let x = Tensor::<2>::from_data(
            TensorData::new(test.x[start * 784..end * 784].to_vec(), [end - start, 784]),
            &plain,
        );
        let pred: Vec<i64> = forward(&model, x)
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        correct += pred
            .iter()
            .zip(&test.y[start..end])
            .filter(|(p, y)| p == y)
            .count();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{name} burn-0.22.1-flex epoch_s={:.3} test_acc={:.4}",
        times[times.len() / 2],
        correct as f64 / test.n as f64
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut workload = None;
    let (mut epochs, mut threads) = (1usize, 2usize);
    let mut data = String::from("../../data/mnist");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--epochs" => {
                epochs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--epochs N")
            }
            "--threads" => {
                threads = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--threads T")
            }
            "--data" => data = args.next().expect("--data DIR"),
            w => workload = Some(w.to_string()),
        }
    }
    let workload =
        workload.expect("usage: burn_bench WORKLOAD [--epochs N] [--threads T] [--data DIR]");
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("thread pool");
    let dir = Path::new(&data);
    let train = split(
        dir,
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    );
    let test = split(
        dir,
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    );
    let sets = (&train, &test);
    let device = Device::flex().autodiff();
    let adam = || AdamConfig::new().init();
    // PyTorch's SGD momentum has no dampening (burn's default is 0.1).
    let sgd = || {
        SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
            ))
            .init()
    };
    let w = workload.as_str();
    match w {
        "mlp-small" => {
            let m = Mlp::new(&[784, 128, 10], false, &device);
            run(w, m, Mlp::forward, 64, adam(), 1e-3, sets, epochs, &device)
        }
        "mlp-wide" => {
            let m = Mlp::new(&[784, 1024, 1024, 10], false, &device);
            run(w, m, Mlp::forward, 256, sgd(), 0.05, sets, epochs, &device)
        }
        "mlp-bn" => {
            let m = Mlp::new(&[784, 256, 256, 10], true, &device);
            run(w, m, Mlp::forward, 128, sgd(), 0.1, sets, epochs, &device)
        }
        "cnn-lenet" => run(
            w,
            LeNet::new(&device),
            LeNet::forward,
            64,
            adam(),
            1e-3,
            sets,
            epochs,
            &device,
        ),
        "rnn-rows" => run(
            w,
            RowRnn::new(&device),
            RowRnn::forward,
            64,
            adam(),
            1e-3,
            sets,
            epochs,
            &device,
        ),
        _ => panic!("unknown workload {w}"),
    }
}
