//! The `backprop` command line: train, evaluate and predict with models
//! written as one line of PyTorch layer names.

use anyhow::{bail, Context};
use backprop::data::{self, Dataset};
use backprop::nn::{spec, Init, Model};
use backprop::optim::{self, Schedule};
use backprop::train::{self, EpochRecord, LossKind, Observer, TrainConfig};
use backprop::{io, Error, Tensor};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// Training allocates the same few large buffers every step; glibc's malloc
// serves each from fresh mmap'd pages that the kernel must zero (a fifth of
// the run time on mlp-small). mimalloc keeps and reuses them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Train neural networks by backpropagation.
///
/// Models are written as one line of PyTorch layer names, e.g.
/// `flatten,linear(784,128),relu,linear(128,10)`, or a preset name (mlp).
#[derive(Parser)]
#[command(name = "backprop", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (default: the `mlp` preset on the MNIST copy in data/mnist).
    Train(Box<TrainArgs>),
    /// Evaluate a saved model: mean loss and accuracy on a data set.
    Eval(EvalArgs),
    /// Predict the class of one image (PNG or PGM) or of one sample of a data set.
    Predict(PredictArgs),
    /// List the model presets and the model lines they stand for.
    Presets,
}

#[derive(Args)]
struct TrainArgs {
    /// Model line or preset (mlp, lenet, rnn, mlp-wide, mlp-bn).
    #[arg(long, default_value = "mlp")]
    model: String,
    /// Training data: a folder of MNIST-named IDX files (train-*, and t10k-* as the test set) or a CSV file (label first). Default: data/mnist.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Test data: a folder of IDX files or a CSV file (overrides the t10k-* files of --data).
    #[arg(long)]
    test_data: Option<PathBuf>,
    /// Multiply CSV features by this (e.g. 0.00392156862745098 for 0..255 pixels).
    #[arg(long, allow_negative_numbers = true)]
    csv_scale: Option<f32>,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Samples per optimizer step (the last partial batch is kept).
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// sgd, adam, adamw or rmsprop.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Learning rate (default: PyTorch's for the optimizer: 1e-3; rmsprop 1e-2).
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    /// Momentum (sgd, rmsprop).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    momentum: f32,
    /// Nesterov momentum (sgd; needs --momentum > 0).
    #[arg(long)]
    nesterov: bool,
    /// L2 weight decay (decoupled for adamw, whose default is 0.01).
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f32>,
    /// Adam's β₁.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.9)]
    beta1: f64,
    /// Adam's β₂.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.999)]
    beta2: f64,
    /// ε of Adam and RMSprop.
    #[arg(long, allow_negative_numbers = true, default_value_t = 1e-8)]
    eps: f32,
    /// RMSprop's smoothing constant α.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.99)]
    alpha: f64,
    /// Clip the global L2 norm of the gradients to this.
    #[arg(long, allow_negative_numbers = true)]
    clip_grad_norm: Option<f32>,
    /// Clamp every gradient element to [-X, X].
    #[arg(long, allow_negative_numbers = true)]
    clip_grad_value: Option<f32>,
    /// Learning-rate schedule over epochs: constant, step or cosine.
    #[arg(long, default_value = "constant")]
    lr_schedule: String,
    /// Epochs between decays for --lr-schedule step.
    #[arg(long, default_value_t = 1)]
    lr_step_size: usize,
    /// Decay factor for --lr-schedule step.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.1)]
    lr_gamma: f32,
    /// Final learning rate for --lr-schedule cosine.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    lr_min: f32,
    /// cross-entropy, mse, bce or bce-logits.
    #[arg(long, default_value = "cross-entropy")]
    loss: String,
    /// Seed for initialization and shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Take batches in file order instead of shuffling each epoch.
    #[arg(long)]
    no_shuffle: bool,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Initialization scheme: default (PyTorch's), constant(C), small-normal, xavier-uniform, xavier-normal, kaiming-uniform, kaiming-normal.
    #[arg(long, default_value = "default")]
    weight_init: String,
    /// Start from the weights in this safetensors file (ours or PyTorch's state_dict).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Save the trained model here (safetensors, PyTorch names); the optimizer state goes beside it as *.optim.safetensors.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Threads for the kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON summary as the last line of standard output.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// A model saved by `backprop train --save` (or a PyTorch state_dict with --model).
    weights: PathBuf,
    /// Data: a folder of IDX files (t10k-* if present, else train-*) or a CSV file. Default: data/mnist.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Model line, for files that carry none (PyTorch's).
    #[arg(long)]
    model: Option<String>,
    /// Multiply CSV features by this.
    #[arg(long, allow_negative_numbers = true)]
    csv_scale: Option<f32>,
    /// The loss to report: cross-entropy, mse, bce or bce-logits.
    #[arg(long, default_value = "cross-entropy")]
    loss: String,
    /// Threads for the kernels.
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PredictArgs {
    /// A model saved by `backprop train --save`.
    weights: PathBuf,
    /// A PNG or PGM image (gray levels scaled to [0, 1], like MNIST: white digit on black).
    image: Option<PathBuf>,
    /// Predict sample INDEX of this data set instead of an image.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Which sample of --data (0-based).
    #[arg(long)]
    index: Option<usize>,
    /// Model line, for files that carry none.
    #[arg(long)]
    model: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Train(a) => cmd_train(*a),
        Command::Eval(a) => cmd_eval(a),
        Command::Predict(a) => cmd_predict(a),
        Command::Presets => {
            for (n, l) in spec::PRESETS {
                println!("{n:9} {l}");
            }
            Ok(())
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

fn set_threads(n: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = n {
        if n == 0 || n > 1024 {
            bail!(Error::Config(format!(
                "--threads {n}: use between 1 and 1024 threads"
            )));
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .ok();
        backprop::tensor::set_threads(n);
    }
    Ok(())
}

/// `--data` or the MNIST copy the repo ships.
fn data_path(p: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = p {
        return Ok(p);
    }
    let local = PathBuf::from("data/mnist");
    if local.is_dir() {
        return Ok(local);
    }
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    if shipped.is_dir() {
        return Ok(shipped);
    }
    bail!(Error::Config(
        "no --data given and no data/mnist folder here; pass --data PATH".into()
    ))
}

fn cmd_train(a: TrainArgs) -> anyhow::Result<()> {
    set_threads(a.threads)?;
    // Everything a user can get wrong is checked before any data is read.
    let kind = optim::Kind::parse(&a.optimizer)?;
    let mut oc = optim::Config::new(kind);
    if let Some(lr) = a.lr {
        oc.lr = lr;
    }
    oc.momentum = a.momentum;
    oc.nesterov = a.nesterov;
    if let Some(wd) = a.weight_decay {
        oc.weight_decay = wd;
    }
    oc.betas = (a.beta1, a.beta2);
    oc.eps = a.eps;
    oc.alpha = a.alpha;
    let mut cfg = TrainConfig::new(oc);
    cfg.epochs = a.epochs;
    cfg.batch_size = a.batch_size;
    cfg.loss = LossKind::parse(&a.loss)?;
    cfg.seed = a.seed;
    cfg.shuffle = !a.no_shuffle;
    cfg.max_steps = a.max_steps;
    cfg.clip_grad_norm = a.clip_grad_norm;
    cfg.clip_grad_value = a.clip_grad_value;
    if !(a.lr_gamma > 0.0 && a.lr_gamma.is_finite()) {
        bail!(Error::Config(format!(
            "--lr-gamma {}: must be a number > 0",
            a.lr_gamma
        )));
    }
    if !(a.lr_min >= 0.0 && a.lr_min.is_finite()) {
        bail!(Error::Config(format!(
            "--lr-min {}: must be a number ≥ 0",
            a.lr_min
        )));
    }
    cfg.schedule = Schedule::parse(
        &a.lr_schedule,
        a.lr_step_size,
        a.lr_gamma,
        a.epochs,
        a.lr_min,
    )?;
    cfg.validate()?;
    let init = Init::parse(&a.weight_init)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
    let mut model = Model::new(&a.model, init, &mut rng)?;
    if let Some(p) = &a.init {
        let w = io::load(p)?;
        model.load_state(&w.tensors, p)?;
    }
    if let Some(p) = &a.save {
        io::check_writable(p)?;
    }
    let data = data_path(a.data)?;
    let (train_set, test_set) = data::load_data(&data, a.test_data.as_deref(), a.csv_scale)?;
    train::check_compatible(&model, &train_set, cfg.loss)?;
    if let Some(t) = &test_set {
        train::check_compatible(&model, t, cfg.loss)?;
    }
    if !a.json && !a.quiet {
        eprintln!(
            "training `{}` ({} parameters) on {} samples from {}{}",
            model.spec,
            model.num_parameters(),
            train_set.len(),
            train_set.source.display(),
            test_set
                .as_ref()
                .map(|t| format!(", testing on {}", t.len()))
                .unwrap_or_default()
        );
    }
    let mut bar = Bar::new(a.quiet || a.json, train_set.len());
    let (summary, opt) = train::train(&mut model, &train_set, test_set.as_ref(), &cfg, &mut bar)?;
    if let Some(p) = &a.save {
        io::save_model(&model, p)?;
        let names: Vec<String> = model.parameters().map(|(n, _)| n).collect();
        let mut meta = std::collections::HashMap::new();
        meta.insert("optimizer".to_string(), a.optimizer.to_ascii_lowercase());
        meta.insert("steps".to_string(), opt.steps.to_string());
        let op = optim_path(p);
        io::save(&op, &opt.state(&names), meta)?;
        if !a.json && !a.quiet {
            eprintln!("saved {} (optimizer state: {})", p.display(), op.display());
        }
    }
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        match (summary.test_loss, summary.test_accuracy) {
            (Some(l), Some(acc)) => println!(
                "test accuracy {:.2}% (loss {l:.4}) after {} epochs, {} steps",
                acc * 100.0,
                summary.epochs.len(),
                summary.steps
            ),
            _ => println!(
                "train accuracy {:.2}% (loss {:.4}) after {} epochs, {} steps (no test set)",
                summary.train_accuracy * 100.0,
                summary.train_loss,
                summary.epochs.len(),
                summary.steps
            ),
        }
    }
    Ok(())
}

/// `model.safetensors` → `model.optim.safetensors`.
fn optim_path(p: &Path) -> PathBuf {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    p.with_file_name(format!("{stem}.optim.safetensors"))
}

fn load_saved(weights: &Path, model: Option<&str>) -> anyhow::Result<Model> {
    Ok(io::load_model(weights, model)?)
}

fn eval_set(data: Option<PathBuf>, csv_scale: Option<f32>) -> anyhow::Result<Dataset> {
    let d = data_path(data)?;
    let (tr, te) = data::load_data(&d, None, csv_scale)?;
    Ok(te.unwrap_or(tr))
}

fn cmd_eval(a: EvalArgs) -> anyhow::Result<()> {
    set_threads(a.threads)?;
    let loss = LossKind::parse(&a.loss)?;
    let model = load_saved(&a.weights, a.model.as_deref())?;
    let set = eval_set(a.data, a.csv_scale)?;
    train::check_compatible(&model, &set, loss)
        .with_context(|| format!("data {}", set.source.display()))?;
    let (l, acc) = train::evaluate(&model, &set, loss, 1000);
    if a.json {
        println!(
            "{}",
            serde_json::json!({"samples": set.len(), "loss": l, "accuracy": acc, "data": set.source})
        );
    } else {
        println!(
            "{}: accuracy {:.2}% (loss {l:.4}) on {} samples",
            set.source.display(),
            acc * 100.0,
            set.len()
        );
    }
    Ok(())
}

fn cmd_predict(a: PredictArgs) -> anyhow::Result<()> {
    let model = load_saved(&a.weights, a.model.as_deref())?;
    let (x, label, what) = match (&a.image, &a.data, a.index) {
        (Some(img), None, None) => (data::load_image(img)?, None, img.display().to_string()),
        (None, d, Some(i)) => {
            let (tr, te) = data::load_data(&data_path(d.clone())?, None, None)?;
            let set = te.unwrap_or(tr);
            if i >= set.len() {
                bail!(Error::Config(format!(
                    "--index {i}: {} has {} samples (0..{})",
                    set.source.display(),
                    set.len(),
                    set.len().saturating_sub(1)
                )));
            }
            let (x, y) = set.batch(&[i]);
            (
                x,
                Some(y[0]),
                format!("sample {i} of {}", set.source.display()),
            )
        }
        (None, _, None) => bail!(Error::Config(
            "give an IMAGE file, or --index N (with --data)".into()
        )),
        (Some(_), _, _) => bail!(Error::Config(
            "give either an IMAGE or --index, not both".into()
        )),
    };
    let sample: Vec<usize> = x.shape()[1..].to_vec();
    let out_shape = model
        .output_shape(&sample)
        .with_context(|| format!("input {what}"))?;
    let out = model.predict(&x);
    let c = out_shape.iter().product::<usize>();
    let scores = out.data().to_vec();
    let probs = probabilities(&model, &scores);
    let class = Tensor::from_vec(vec![1, c], probs.clone()).argmax_rows()[0];
    if a.json {
        println!(
            "{}",
            serde_json::json!({"input": what, "class": class, "label": label, "probabilities": probs})
        );
    } else {
        println!(
            "{what}: class {class} ({:.1}%){}",
            probs[class] * 100.0,
            label.map(|l| format!(", label {l}")).unwrap_or_default()
        );
        let mut order: Vec<usize> = (0..c).collect();
        order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]));
        for &i in order.iter().take(5) {
            println!("  {i}: {:.4}", probs[i]);
        }
    }
    Ok(())
}

/// Class probabilities from the model's output: softmax of logits, unless
/// the model already ends in softmax / sigmoid / log_softmax.
fn probabilities(model: &Model, scores: &[f32]) -> Vec<f32> {
    use backprop::nn::LayerKind;
    use backprop::ops::unary::Unary;
    match model.layers.last().map(|l| &l.kind) {
        Some(LayerKind::Softmax) | Some(LayerKind::Activation(Unary::Sigmoid)) => scores.to_vec(),
        Some(LayerKind::LogSoftmax) => scores.iter().map(|v| v.exp()).collect(),
        _ => {
            let mut p = vec![0.0; scores.len()];
            backprop::ops::softmax::softmax_rows(scores, scores.len(), &mut p);
            p
        }
    }
}

/// Progress: a bar per epoch with loss, accuracy and samples/s, and a line
/// per finished epoch.
struct Bar {
    quiet: bool,
    samples: usize,
    bar: Option<ProgressBar>,
    t0: std::time::Instant,
}

impl Bar {
    fn new(quiet: bool, samples: usize) -> Bar {
        Bar {
            quiet,
            samples,
            bar: None,
            t0: std::time::Instant::now(),
        }
    }
}

impl Observer for Bar {
    fn epoch_start(&mut self, epoch: usize, _batches: usize) {
        if self.quiet {
            return;
        }
        let b = ProgressBar::new(self.samples as u64);
        b.set_style(
            ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.set_prefix(epoch.to_string());
        self.bar = Some(b);
        self.t0 = std::time::Instant::now();
    }

    fn step(&mut self, s: &train::StepInfo) {
        if let Some(b) = &self.bar {
            b.set_position(s.samples as u64);
            if s.step.is_multiple_of(20) {
                let rate = s.samples as f64 / self.t0.elapsed().as_secs_f64().max(1e-9);
                b.set_message(format!(
                    "loss {:.4} acc {:.2}% {rate:.0} samples/s",
                    s.running_loss,
                    s.running_accuracy * 100.0
                ));
            }
        }
    }

    fn epoch_end(&mut self, r: &EpochRecord) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if self.quiet {
            return;
        }
        let test = match (r.test_loss, r.test_accuracy) {
            (Some(l), Some(a)) => format!(", test loss {l:.4} acc {:.2}%", a * 100.0),
            _ => String::new(),
        };
        eprintln!(
            "epoch {}: train loss {:.4} acc {:.2}%{test} ({:.2}s, {:.0} samples/s)",
            r.epoch,
            r.train_loss,
            r.train_accuracy * 100.0,
            r.train_seconds,
            r.samples_per_second
        );
    }
}
