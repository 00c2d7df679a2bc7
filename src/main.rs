//! The `backprop` command line: train, evaluate and predict with models
//! written as one line of PyTorch layer names; look inside them with
//! `graph` (the tape of one step) and `gradcheck` (gradients against finite
//! differences).

use anyhow::{anyhow, bail, Context};
use backprop::data::{self, Dataset};
use backprop::nn::{spec, Init, Module, ModuleExt, Sequential};
use backprop::optim::{self, Momentum, Schedule};
use backprop::train::diagnostics::{Sample, WarningKind};
use backprop::train::metrics::Recorder;
use backprop::train::{self, EpochRecord, LossKind, Observer, TrainConfig};
use backprop::{io, Error, Setting, Tensor};
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// The allocator for training: mimalloc, keeping freed memory (see
// `backprop::alloc`).
#[global_allocator]
static GLOBAL: backprop::alloc::MiMalloc = backprop::alloc::MiMalloc;

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

/// The optimizers (`--optimizer`).
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
enum OptimizerArg {
    /// Stochastic gradient descent (--momentum, --nesterov).
    #[value(alias = "gd")]
    Sgd,
    /// Adam (--beta1, --beta2, --eps).
    Adam,
    /// Adam with decoupled weight decay.
    Adamw,
    /// RMSprop (--alpha, --eps, --momentum).
    Rmsprop,
}

impl From<OptimizerArg> for optim::Kind {
    fn from(a: OptimizerArg) -> optim::Kind {
        match a {
            OptimizerArg::Sgd => optim::Kind::Sgd,
            OptimizerArg::Adam => optim::Kind::Adam,
            OptimizerArg::Adamw => optim::Kind::AdamW,
            OptimizerArg::Rmsprop => optim::Kind::RmsProp,
        }
    }
}

/// The losses (`--loss`).
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
enum LossArg {
    /// Softmax cross-entropy on logits (nn.CrossEntropyLoss).
    #[value(alias = "ce")]
    CrossEntropy,
    /// Mean squared error against one-hot targets.
    Mse,
    /// Binary cross-entropy on probabilities (end the model with sigmoid).
    Bce,
    /// Binary cross-entropy on logits (nn.BCEWithLogitsLoss).
    #[value(alias = "bce-with-logits")]
    BceLogits,
}

impl From<LossArg> for LossKind {
    fn from(a: LossArg) -> LossKind {
        match a {
            LossArg::CrossEntropy => LossKind::CrossEntropy,
            LossArg::Mse => LossKind::Mse,
            LossArg::Bce => LossKind::Bce,
            LossArg::BceLogits => LossKind::BceLogits,
        }
    }
}

/// The learning-rate schedules (`--lr-schedule`).
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ScheduleArg {
    /// The same rate throughout.
    #[value(alias = "none")]
    Constant,
    /// Multiply by --lr-gamma every --lr-step-size epochs (StepLR).
    Step,
    /// Cosine from --lr down to --lr-min over the epochs (CosineAnnealingLR).
    Cosine,
    /// Step by step: up from --lr/25 to --lr over the first 30 % of the steps, then down to --lr/2.5e5 (OneCycleLR without momentum cycling).
    OneCycle,
}

/// The command-line flag for a library setting, for error messages.
fn flag(s: Setting) -> &'static str {
    match s {
        Setting::LearningRate => "--lr",
        Setting::Momentum => "--momentum",
        Setting::WeightDecay => "--weight-decay",
        Setting::Betas => "--beta1/--beta2",
        Setting::Eps => "--eps",
        Setting::Alpha => "--alpha",
        Setting::BatchSize => "--batch-size",
        Setting::Epochs => "--epochs",
        Setting::MaxSteps => "--max-steps",
        Setting::ClipGradNorm => "--clip-grad-norm",
        Setting::ClipGradValue => "--clip-grad-value",
        Setting::Loss => "--loss",
        Setting::Schedule => "--lr-schedule",
        Setting::Threads => "--threads",
    }
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
    /// Show the computational graph (the tape) of one training step as Graphviz DOT, with its memory.
    Graph(GraphArgs),
    /// Compare every parameter's gradient with central finite differences on a small random batch.
    Gradcheck(GradcheckArgs),
    /// Serve a local web page showing the runs saved in a folder (their metrics, per-layer gradient flow, warnings).
    Serve(ServeArgs),
}

/// `backprop train`'s flags. A run saves them with its state; `--resume`
/// reads them back (see [`resume_args`]).
#[derive(Args, Clone, serde::Serialize, serde::Deserialize)]
struct TrainArgs {
    /// Model line or preset (mlp, lenet, rnn, mlp-wide, mlp-bn, speedrun).
    #[arg(long, default_value = "mlp")]
    model: String,
    /// Gradient checkpointing: layer ranges (e.g. 0-5,6-9) whose activations are recomputed during backward instead of kept.
    #[arg(long)]
    checkpoint: Option<String>,
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
    /// The update rule.
    #[arg(long, value_enum, ignore_case = true, default_value = "adam")]
    optimizer: OptimizerArg,
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
    /// Learning-rate schedule over epochs.
    #[arg(long, value_enum, ignore_case = true, default_value = "constant")]
    lr_schedule: ScheduleArg,
    /// Epochs between decays for --lr-schedule step.
    #[arg(long, default_value_t = 1)]
    lr_step_size: usize,
    /// Decay factor for --lr-schedule step.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.1)]
    lr_gamma: f32,
    /// Final learning rate for --lr-schedule cosine.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    lr_min: f32,
    /// The training loss.
    #[arg(long, value_enum, ignore_case = true, default_value = "cross-entropy")]
    loss: LossArg,
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
    /// Save the model here (safetensors, PyTorch names; its folder is created), at every epoch's end (and every --save-every steps); the rest of the run's state (optimizer, position, generators, settings, metrics) goes beside it as *.state.safetensors.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Also save every N optimizer steps (0: only at epochs' ends).
    #[arg(long, default_value_t = 0, value_name = "N")]
    save_every: usize,
    /// Continue the run saved in this file (and its *.state.safetensors) exactly where it stopped; its settings come from the saved state (--epochs and --max-steps may extend it; --threads, output and reporting options may change).
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// Overwrite a --save file that is not a safetensors model file.
    #[arg(long)]
    force: bool,
    /// Show the run live on a local web page (address printed at the start; see `backprop serve`).
    #[arg(long)]
    serve: bool,
    #[command(flatten)]
    serve_at: ServeAt,
    /// Threads for the kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// With several MPI processes: end the run on every rank, naming the one that did not answer, when a rank waits this long for the others in one exchange.
    #[arg(long, default_value_t = 300.0, value_name = "SECONDS")]
    #[serde(default = "default_collective_timeout")]
    collective_timeout: f64,
    /// Print one JSON summary as the last line of standard output.
    #[arg(long)]
    json: bool,
    /// No progress bar and no warnings.
    #[arg(long)]
    quiet: bool,
    /// Measure per-layer gradient statistics at step 1 and every N steps (0: never); they feed the warnings, metrics.csv and the gradient plots.
    #[arg(long, default_value_t = 50, value_name = "N")]
    diagnostics_every: usize,
    /// Write metrics.csv and the plots (loss.png/svg, grads.png/svg) into this folder. Default with --save FILE: beside it, as FILE's stem + .metrics.csv, .loss.png, …
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write metrics.csv but no plots.
    #[arg(long)]
    no_plots: bool,
}

/// `--collective-timeout` for runs saved before the flag existed.
fn default_collective_timeout() -> f64 {
    300.0
}

/// A model line or preset, given as the first argument or with --model.
#[derive(Args)]
struct ModelArg {
    /// Model line or preset (mlp, lenet, rnn, mlp-wide, mlp-bn, speedrun).
    #[arg(value_name = "MODEL", required_unless_present = "model")]
    line: Option<String>,
    /// The same, as an option (as `train --model`).
    #[arg(long = "model", value_name = "MODEL", conflicts_with = "line")]
    model: Option<String>,
}

impl ModelArg {
    fn line(&self) -> &str {
        self.line
            .as_deref()
            .or(self.model.as_deref())
            .expect("clap requires one")
    }
}

/// Where the page is served.
#[derive(Args, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct ServeAt {
    /// Port of the page (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on: 127.0.0.1 (this machine only) unless told otherwise, e.g. 0.0.0.0 for every network.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
}

#[derive(Args)]
struct ServeArgs {
    /// The folder of runs (their NAME.metrics.csv files, as `train --save` or `--out` leave them).
    #[arg(default_value = "runs")]
    dir: PathBuf,
    #[command(flatten)]
    at: ServeAt,
}

#[derive(Args)]
struct GraphArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Samples in the batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Shape of one sample, e.g. 1,28,28 (default: 1,28,28, or IN when the model starts with linear(IN,…)).
    #[arg(long, value_name = "D1,D2,…")]
    input_shape: Option<String>,
    /// The loss ending the step.
    #[arg(long, value_enum, ignore_case = true, default_value = "cross-entropy")]
    loss: LossArg,
    /// Write the DOT to this file (and FILE.svg beside it when Graphviz's `dot` is installed) and print the table; without it the DOT goes to standard output and the table to standard error.
    #[arg(long, value_name = "FILE.dot")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct GradcheckArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Samples in the random batch.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Shape of one sample, e.g. 1,28,28 (default: 1,28,28, or IN when the model starts with linear(IN,…)).
    #[arg(long, value_name = "D1,D2,…")]
    input_shape: Option<String>,
    /// Seed for the weights, the batch and the elements checked.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Initialization scheme of the weights checked (as for train).
    #[arg(long, default_value = "default")]
    weight_init: String,
    /// Elements checked per parameter, chosen at random (0: every element; each costs two forward passes).
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Fail when an error |analytic − numeric| / max(1, |analytic|, |numeric|) exceeds this (default 1e-3; 1e-2 for models with kinks: relu, leaky_relu, prelu, max-pooling).
    #[arg(long)]
    tolerance: Option<f64>,
    /// Threads for the kernels.
    #[arg(long)]
    threads: Option<usize>,
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
    /// The loss to report.
    #[arg(long, value_enum, ignore_case = true, default_value = "cross-entropy")]
    loss: LossArg,
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
    /// A PNG or PGM image of a digit, any size, white on black or dark on light: it is made MNIST-like first (scaled to 20 pixels, centred by its centre of mass in 28×28, as MNIST was made; see --raw).
    image: Option<PathBuf>,
    /// Feed the image to the model as it is (gray levels in [0, 1]), not made MNIST-like.
    #[arg(long)]
    raw: bool,
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
    backprop::alloc::keep_freed_memory();
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return clap_error(e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return clap_error(e),
    };
    let procs = Procs::start();
    let res = match cli.command {
        Command::Train(a) => cmd_train(*a, &matches, &procs),
        Command::Eval(a) => cmd_eval(a),
        Command::Predict(a) => cmd_predict(a),
        Command::Presets => {
            for (n, l) in spec::PRESETS {
                println!("{n:9} {l}");
            }
            Ok(())
        }
        Command::Graph(a) => cmd_graph(a),
        Command::Gradcheck(a) => cmd_gradcheck(a),
        Command::Serve(a) => cmd_serve(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            procs.fail(&one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The processes of a data-parallel run (`mpirun -np N`, feature `mpi`):
/// none when started alone, which behaves exactly as without MPI.
struct Procs {
    #[cfg(feature = "mpi")]
    mpi: Option<(
        mpi::environment::Universe,
        std::rc::Rc<backprop::dist::mpi::Mpi>,
    )>,
}

impl Procs {
    /// Start MPI if an MPI launcher started this process with more than one rank.
    fn start() -> Procs {
        #[cfg(feature = "mpi")]
        {
            let launched = [
                "OMPI_COMM_WORLD_SIZE",
                "PMI_SIZE",
                "PMIX_SIZE",
                "MPI_LOCALNRANKS",
            ]
            .iter()
            .filter_map(|k| std::env::var(k).ok()?.parse::<usize>().ok())
            .any(|n| n > 1);
            if launched {
                if let Some(u) = mpi::initialize() {
                    let m = std::rc::Rc::new(backprop::dist::mpi::Mpi::new(u.world()));
                    return Procs { mpi: Some((u, m)) };
                }
            }
            Procs { mpi: None }
        }
        #[cfg(not(feature = "mpi"))]
        Procs {}
    }

    /// Wait at most `secs` for the other processes in one exchange.
    fn set_timeout(&self, secs: f64) -> anyhow::Result<()> {
        if !(secs > 0.0 && secs.is_finite()) {
            bail!("--collective-timeout {secs}: must be a number of seconds > 0");
        }
        #[cfg(feature = "mpi")]
        if let Some((_, m)) = &self.mpi {
            m.set_timeout(std::time::Duration::from_secs_f64(secs.min(1e9)));
        }
        Ok(())
    }

    /// The run's processes, if there are several.
    fn collective(&self) -> Option<std::rc::Rc<dyn backprop::dist::Collective>> {
        #[cfg(feature = "mpi")]
        if let Some((_, m)) = &self.mpi {
            return Some(m.clone());
        }
        None
    }

    /// Report an error on one line; with several processes, end all of them
    /// (no rank may wait forever for this one).
    fn fail(&self, msg: &str) {
        #[cfg(feature = "mpi")]
        if let Some((_, m)) = &self.mpi {
            use backprop::dist::Collective;
            use std::io::Write;
            // One write, so that the ranks' lines do not interleave.
            let line = format!("error: rank {} of {}: {msg}\n", m.rank(), m.size());
            let _ = std::io::stderr().write_all(line.as_bytes());
            m.abort(1);
        }
        eprintln!("error: {msg}");
    }
}

/// Help and version as clap prints them; a usage error on one line
/// (`--loss hinge: not one of cross-entropy, mse, bce, bce-logits`).
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = |k: ContextKind| match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => Some(v.join(", ")),
        _ => None,
    };
    let msg = match (
        e.kind(),
        text(ContextKind::InvalidArg),
        text(ContextKind::InvalidValue),
    ) {
        (ErrorKind::InvalidValue, Some(arg), Some(val)) => {
            let arg = arg.split_whitespace().next().unwrap_or(&arg).to_string();
            match text(ContextKind::ValidValue) {
                Some(valid) => format!("{arg} {val}: not one of {valid}"),
                None => format!("{arg} {val}: not a valid value"),
            }
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            format!("{first} (see backprop --help)")
        }
    };
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}

/// An error and its causes on one line; a setting the library names is
/// named by its flag.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = match c.downcast_ref::<Error>() {
            Some(Error::Invalid {
                setting,
                value,
                msg,
            }) => format!("{} {value}: {msg}", flag(*setting)),
            _ => c.to_string(),
        };
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
        backprop::cpu::set_threads(n);
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

/// The optimizer's settings from the flags; the combinations only flags
/// can get wrong are checked here.
fn optimizer_config(a: &TrainArgs) -> anyhow::Result<optim::Config> {
    let kind = optim::Kind::from(a.optimizer);
    if a.nesterov && kind != optim::Kind::Sgd {
        bail!("--nesterov applies to --optimizer sgd only");
    }
    if a.nesterov && a.momentum <= 0.0 {
        bail!("--nesterov needs --momentum > 0");
    }
    let mut oc = optim::Config::new(kind);
    if let Some(lr) = a.lr {
        oc.lr = lr;
    }
    oc.momentum = if a.nesterov {
        Momentum::Nesterov { mu: a.momentum }
    } else {
        Momentum::classic(a.momentum)
    };
    if let Some(wd) = a.weight_decay {
        oc.weight_decay = wd;
    }
    oc.betas = (a.beta1, a.beta2);
    oc.eps = a.eps;
    oc.alpha = a.alpha;
    Ok(oc)
}

/// The schedule from the flags.
fn schedule(a: &TrainArgs) -> anyhow::Result<Schedule> {
    if !(a.lr_gamma > 0.0 && a.lr_gamma.is_finite()) {
        bail!("--lr-gamma {}: must be a number > 0", a.lr_gamma);
    }
    if !(a.lr_min >= 0.0 && a.lr_min.is_finite()) {
        bail!("--lr-min {}: must be a number ≥ 0", a.lr_min);
    }
    Ok(match a.lr_schedule {
        ScheduleArg::Constant => Schedule::Constant,
        ScheduleArg::Step => {
            if a.lr_step_size == 0 {
                bail!("--lr-step-size 0: must be at least 1");
            }
            Schedule::Step {
                step_size: a.lr_step_size,
                gamma: a.lr_gamma,
            }
        }
        ScheduleArg::Cosine => Schedule::Cosine {
            t_max: a.epochs,
            eta_min: a.lr_min,
        },
        // The steps are counted once the data is read (one_cycle_steps).
        ScheduleArg::OneCycle => Schedule::one_cycle(0),
    })
}

/// `--weight-init`.
fn weight_init(s: &str) -> anyhow::Result<Init> {
    s.parse::<Init>()
        .map_err(|e| anyhow!("--weight-init {s}: {e}"))
}

/// The flags a resumed run may change: they do not change its result, or
/// (`--epochs`, `--max-steps`) they extend it. `--data` and `--test-data`
/// may name the same files by another path: their fingerprints, saved with
/// the run, are what is checked.
const MAY_CHANGE: [&str; 14] = [
    "serve",
    "collective_timeout",
    "port",
    "bind",
    "epochs",
    "max_steps",
    "threads",
    "json",
    "quiet",
    "no_plots",
    "save_every",
    "force",
    "data",
    "test_data",
];

/// Where a run writes: never taken from the saved settings (a copied run
/// folder must not write into the folder it was copied from). A resumed run
/// saves where it was resumed from unless `--save` is given again.
const LOCATIONS: [&str; 3] = ["save", "out", "resume"];

/// The flags as JSON values that compare by what they mean: the learning
/// rate and weight decay filled in with the optimizer's defaults, the
/// model line with its preset expanded and without spaces. Numbers go
/// through their text, so `--lr 0.01` shows as `0.01`.
fn settings_value(a: &TrainArgs) -> anyhow::Result<serde_json::Value> {
    let mut a = a.clone();
    let defaults = optim::Config::new(a.optimizer.into());
    a.lr.get_or_insert(defaults.lr);
    a.weight_decay.get_or_insert(defaults.weight_decay);
    a.model = spec::expand_preset(&a.model).split_whitespace().collect();
    Ok(serde_json::from_str(&serde_json::to_string(&a)?)?)
}

/// A resumed run's flags: the saved ones, with the ones that may change
/// taken from the command line, and its locations from the command line
/// only. A flag given again with another meaning is an error naming the
/// flag and both values.
fn resume_args(saved: TrainArgs, given: TrainArgs, m: &ArgMatches) -> anyhow::Result<TrainArgs> {
    let raw = |a: &TrainArgs| -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(&serde_json::to_string(a)?)?)
    };
    let (sv, gv) = (settings_value(&saved)?, settings_value(&given)?);
    let given_raw = raw(&given)?;
    let on_line = |id: &str| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    let show = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "(none)".into(),
        other => other.to_string(),
    };
    let mut out = raw(&saved)?;
    for id in m.ids().map(|i| i.as_str()) {
        if LOCATIONS.contains(&id) || !on_line(id) {
            continue;
        }
        if MAY_CHANGE.contains(&id) {
            out[id] = given_raw[id].clone();
        } else if sv[id] != gv[id] {
            let flag = format!("--{}", id.replace('_', "-"));
            bail!(
                "{flag} {}: the run was saved with {flag} {}; a resumed run keeps the settings that shape its \
                 result (drop {flag}, or start a new run)",
                show(&given_raw[id]),
                show(&sv[id])
            );
        }
    }
    // Reporting options that are plain switches follow the command line.
    for id in ["json", "quiet", "no_plots", "force"] {
        out[id] = given_raw[id].clone();
    }
    for id in LOCATIONS {
        out[id] = given_raw[id].clone();
    }
    Ok(serde_json::from_value(out)?)
}

/// Make `--save`'s folder if missing, and refuse to overwrite what is not
/// this run's to overwrite, unless `force`: a file that is not a
/// safetensors model file, a run's state file, or a model whose state file
/// belongs to another run (any run but the one `resumed` from).
fn prepare_save(p: &Path, force: bool, resumed: Option<&Path>) -> anyhow::Result<()> {
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow!(
                    "{}: cannot create the folder {} ({e})",
                    p.display(),
                    dir.display()
                )
            })?;
        }
    }
    if !force {
        if let Some(why) = io::run::not_ours_to_overwrite(p, resumed) {
            bail!("{}: {why}", p.display());
        }
    }
    io::run::remove_leftovers(p);
    if p.is_file() && !force && io::load(p).is_err() {
        bail!(
            "{}: exists and is not a safetensors model file, so it is not overwritten; give another path, or --force",
            p.display()
        );
    }
    io::check_writable(p)?;
    Ok(())
}

/// What a run's state file holds besides the optimizer's tensors (metadata keys).
const SETTINGS_KEY: &str = "backprop.settings";
const METRICS_KEY: &str = "backprop.metrics";

fn cmd_train(a: TrainArgs, matches: &ArgMatches, procs: &Procs) -> anyhow::Result<()> {
    let given = matches
        .subcommand_matches("train")
        .expect("the train subcommand");
    // Several processes: every rank trains, rank 0 alone reports and writes.
    let comm = procs.collective();
    let rank = comm.as_ref().map_or(0, |c| c.rank());
    // A resumed run takes its settings from its state file.
    let (mut a, saved) = match a.resume.clone() {
        Some(path) => {
            let saved = io::run::load_run(&path).context("--resume")?;
            let settings = saved.state.metadata.get(SETTINGS_KEY).ok_or_else(|| {
                anyhow!(
                    "--resume {}: the state file holds no settings",
                    path.display()
                )
            })?;
            let old: TrainArgs = serde_json::from_str(settings)
                .with_context(|| format!("--resume {}: the saved settings", path.display()))?;
            let saved_epochs = old.epochs;
            let mut a = resume_args(old, a, given)?;
            match &a.save {
                // Saving elsewhere: the resumed files stay as they are.
                Some(to) if rank == 0 && !a.quiet && !a.json && !io::run::same_file(to, &path) => {
                    eprintln!(
                        "resuming {}; saving to {} (the resumed files are left as they are)",
                        path.display(),
                        to.display()
                    )
                }
                Some(_) => {}
                None => a.save = Some(path.clone()),
            }
            (a, Some((saved, saved_epochs)))
        }
        None => (a, None),
    };
    if rank > 0 {
        a.quiet = true;
        a.json = false;
        a.save = None;
        a.out = None;
    }
    set_threads(a.threads)?;
    procs.set_timeout(a.collective_timeout)?;
    // Everything a user can get wrong is checked before any data is read.
    let mut cfg = TrainConfig::new(optimizer_config(&a)?);
    cfg.epochs = a.epochs;
    cfg.batch_size = a.batch_size;
    cfg.loss = a.loss.into();
    cfg.seed = a.seed;
    cfg.shuffle = !a.no_shuffle;
    cfg.max_steps = a.max_steps;
    cfg.clip_grad_norm = a.clip_grad_norm;
    cfg.clip_grad_value = a.clip_grad_value;
    cfg.diagnostics_every = a.diagnostics_every;
    // The schedule spans the epochs the run was started with, also when a
    // resumed run is extended.
    let mut sched_args = a.clone();
    if let Some((_, e)) = &saved {
        sched_args.epochs = *e;
    }
    cfg.schedule = schedule(&sched_args)?;
    let cycle_epochs = sched_args.epochs;
    if !matches!(cfg.schedule, Schedule::OneCycle { .. }) {
        cfg.validate()?; // a one-cycle schedule once its steps are known
    }
    let init = weight_init(&a.weight_init)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
    let mut model = Sequential::parse(&a.model, init, &mut rng)?;
    if let Some(c) = &a.checkpoint {
        model.checkpoints =
            backprop::nn::checkpoint::parse_segments(c, model.len()).context("--checkpoint")?;
    }
    let resume = match &saved {
        Some((s, _)) => {
            let path = a.resume.as_deref().unwrap_or(Path::new(""));
            model.load_state_dict(&s.model.tensors, path)?;
            let resume = train::Resume::from_state(&s.state, &io::run::state_path(path))
                .context("--resume")?;
            let state = resume.state;
            if state.finished
                && state.epoch >= a.epochs
                && a.max_steps.is_none_or(|m| state.steps >= m)
            {
                bail!(
                    "--resume {}: the run finished after {} epochs ({} steps); give --epochs N with N > {} to continue it",
                    path.display(),
                    state.epoch,
                    state.steps,
                    state.epoch
                );
            }
            Some(train::Resume {
                state,
                optimizer: resume.optimizer,
            })
        }
        None => {
            if let Some(p) = &a.init {
                io::load_into(&mut model, p)?;
            }
            None
        }
    };
    if let Some(p) = &a.save {
        prepare_save(p, a.force, a.resume.as_deref()).context("--save")?;
    }
    // Where metrics.csv and the plots go: `--out DIR/`, else beside --save.
    let files_prefix = match (&a.out, &a.save) {
        (Some(d), _) => {
            if d.exists() && !d.is_dir() {
                bail!(Error::Config(format!(
                    "--out {}: is a file; give a folder (it is created if missing)",
                    d.display()
                )));
            }
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
            Some(d.join(""))
        }
        (None, Some(p)) => Some(run_files_prefix(p)),
        (None, None) => None,
    };
    let data = data_path(a.data.clone())?;
    let (train_set, test_set) = data::load_data(&data, a.test_data.as_deref(), a.csv_scale)?;
    if let Schedule::OneCycle { total_steps, .. } = &mut cfg.schedule {
        // The cycle spans the run's epochs (as first started), step by step.
        *total_steps = cycle_epochs * train_set.len().div_ceil(cfg.batch_size);
        cfg.validate()?;
    }
    train::check_run(&model, &train_set, test_set.as_ref(), &cfg)?;
    if !a.json && !a.quiet {
        eprintln!(
            "{} `{}` ({} parameters) on {} samples from {}{}",
            match &resume {
                Some(r) => format!(
                    "resuming at step {} (epoch {})",
                    r.state.steps,
                    r.state.epoch + 1
                ),
                None => "training".into(),
            },
            model.spec(),
            model.num_parameters(),
            train_set.len(),
            train_set.source.display(),
            test_set
                .as_ref()
                .map(|t| format!(", testing on {}", t.len()))
                .unwrap_or_default()
        );
    }
    let every = if a.diagnostics_every > 0 {
        a.diagnostics_every
    } else {
        50
    };
    let mut bar = Bar::new(a.quiet || a.json, a.quiet, train_set.len());
    bar.recorder = Some(
        match saved
            .as_ref()
            .and_then(|(s, _)| s.state.metadata.get(METRICS_KEY))
        {
            Some(json) => serde_json::from_str(json).context("--resume: the saved metrics")?,
            None => Recorder::new(every, a.diagnostics_every > 0),
        },
    );
    if a.serve && rank == 0 {
        let live = backprop::serve::Live::new();
        let runs = files_prefix
            .as_ref()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        if let Some(rec) = bar.recorder.as_ref().filter(|r| !r.rows.is_empty()) {
            live.set_metrics(rec.to_csv()); // a resumed run's rows so far
        }
        start_page(a.serve_at, runs, Some(live.clone()))?;
        bar.live = Some(live);
    }
    let line = model.spec();
    // The settings without the run's locations: a copied run folder resumes
    // where it is, and the same run saved twice gives the same bytes.
    let settings = {
        let mut kept = a.clone();
        (kept.save, kept.out, kept.resume) = (None, None, None);
        serde_json::to_string(&kept)?
    };
    let mut save = |m: &dyn Module,
                    opt: &optim::Optimizer,
                    st: &train::RunState,
                    obs: Option<serde_json::Value>|
     -> backprop::Result<()> {
        let Some(p) = &a.save else { return Ok(()) };
        // The metrics so far, so that a killed run leaves them too.
        if let (Some(prefix), Some(rec)) = (
            &files_prefix,
            obs.as_ref()
                .and_then(|v| serde_json::from_value::<Recorder>(v.clone()).ok()),
        ) {
            train::plots::write_run_files(&rec, &line, prefix, false)?;
        }
        let mut model_meta = std::collections::HashMap::new();
        model_meta.insert("format".to_string(), "pt".to_string());
        model_meta.insert(io::MODEL_KEY.to_string(), line.clone());
        let mut state_meta = std::collections::HashMap::new();
        state_meta.insert(
            io::run::RUN_KEY.to_string(),
            serde_json::to_string(st).expect("serializable"),
        );
        state_meta.insert(SETTINGS_KEY.to_string(), settings.clone());
        if let Some(v) = obs {
            state_meta.insert(METRICS_KEY.to_string(), v.to_string());
        }
        io::run::save_run(
            p,
            &m.state_dict(),
            model_meta,
            &opt.state_dict(),
            state_meta,
            st.steps as u64,
        )
    };
    let checkpoints = train::Checkpoints {
        every: a.save_every,
        save: &mut save,
    };
    let mut trainer = train::Trainer::new(&cfg);
    if let Some(r) = resume {
        trainer = trainer.resume(r);
    }
    if a.save.is_some() {
        trainer = trainer.checkpoints(checkpoints);
    }
    if let Some(c) = comm {
        trainer = trainer.collective(c);
    }
    let (summary, _) = trainer.run(&mut model, &train_set, test_set.as_ref(), &mut bar)?;
    if let Some(l) = &bar.live {
        l.finish();
        // Let an open page receive the last rows before the process ends.
        std::thread::sleep(std::time::Duration::from_millis(600));
    }
    if let (Some(prefix), Some(rec)) = (&files_prefix, &bar.recorder) {
        let files = train::plots::write_run_files(rec, &model.spec(), prefix, !a.no_plots)?;
        if !a.json && !a.quiet {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            eprintln!("metrics and plots: {}", names.join(", "));
        }
    }
    if rank > 0 {
        return Ok(()); // rank 0 reports
    }
    if let Some(p) = &a.save {
        if !a.json && !a.quiet {
            eprintln!(
                "saved {} (the run's state: {})",
                p.display(),
                io::run::state_path(p).display()
            );
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

/// Start the page at `at`, saying where, and that it is local unless bound wider.
fn start_page(
    at: ServeAt,
    runs: Option<PathBuf>,
    live: Option<backprop::serve::Live>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let addr = std::net::SocketAddr::new(at.bind, at.port);
    let (bound, handle) = backprop::serve::start(addr, runs, live).map_err(|e| {
        anyhow!(
            "--port {} --bind {}: cannot listen there ({e})",
            at.port,
            at.bind
        )
    })?;
    let reach = if at.bind.is_loopback() {
        "this machine only; --bind 0.0.0.0 opens it to the network"
    } else {
        "open to the network"
    };
    eprintln!("serving the page at http://{bound}/ ({reach})");
    Ok(handle)
}

fn cmd_serve(a: ServeArgs) -> anyhow::Result<()> {
    if !a.dir.is_dir() {
        bail!(
            "{}: is not a folder; give the folder of your runs (train --save runs/x.safetensors leaves runs/x.metrics.csv)",
            a.dir.display()
        );
    }
    let handle = start_page(a.at, Some(a.dir), None)?;
    let _ = handle.join();
    Ok(())
}

/// `runs/x.safetensors` → `runs/x.`: metrics go to `runs/x.metrics.csv`, `runs/x.loss.png`, …
fn run_files_prefix(p: &Path) -> PathBuf {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    p.with_file_name(format!("{stem}."))
}

fn load_saved(weights: &Path, model: Option<&str>) -> anyhow::Result<Sequential> {
    if model.is_none() {
        let w = io::load(weights)?;
        if !w.metadata.contains_key(io::MODEL_KEY) {
            bail!(Error::weights(
                weights,
                "the file holds no model line (it was not written by backprop from a model line); pass it with --model",
            ));
        }
    }
    Ok(io::load_model(weights, model)?)
}

fn eval_set(data: Option<PathBuf>, csv_scale: Option<f32>) -> anyhow::Result<Dataset> {
    let d = data_path(data)?;
    let (tr, te) = data::load_data(&d, None, csv_scale)?;
    Ok(te.unwrap_or(tr))
}

fn cmd_eval(a: EvalArgs) -> anyhow::Result<()> {
    set_threads(a.threads)?;
    let loss = LossKind::from(a.loss);
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

/// An image `[1, 1, H, W]` made MNIST-like (`data::mnist_like`).
fn like_mnist(x: &Tensor, path: &Path) -> anyhow::Result<Tensor> {
    let (h, w) = (x.shape()[2], x.shape()[3]);
    match data::mnist_like(x.data(), w, h) {
        Some(v) => Ok(Tensor::from_vec(
            vec![1, 1, data::MNIST_SIDE, data::MNIST_SIDE],
            v,
        )),
        None => bail!(
            "{}: the image is blank (one gray level); draw a digit on it",
            path.display()
        ),
    }
}

fn cmd_predict(a: PredictArgs) -> anyhow::Result<()> {
    let model = load_saved(&a.weights, a.model.as_deref())?;
    let (x, label, what) = match (&a.image, &a.data, a.index) {
        (Some(img), None, None) => {
            let x = data::load_image(img)?;
            let x = if a.raw { x } else { like_mnist(&x, img)? };
            (x, None, img.display().to_string())
        }
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
    let probs = model.probabilities(&out.reshape(&[1, c]));
    let class = probs.argmax_rows()[0];
    let probs = probs.data().to_vec();
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

/// Progress: a bar per epoch with loss, accuracy and samples/s, and a line
/// per finished epoch.
/// Also prints the diagnostics' warnings and feeds the metrics recorder.
struct Bar {
    /// The page's view of this run (`--serve`).
    live: Option<backprop::serve::Live>,
    quiet: bool,
    no_warnings: bool,
    samples: usize,
    bar: Option<ProgressBar>,
    t0: std::time::Instant,
    recorder: Option<Recorder>,
}

impl Bar {
    fn new(quiet: bool, no_warnings: bool, samples: usize) -> Bar {
        Bar {
            live: None,
            quiet,
            no_warnings,
            samples,
            bar: None,
            t0: std::time::Instant::now(),
            recorder: None,
        }
    }
}

impl Observer for Bar {
    fn model(&mut self, model: &dyn Module, _steps: usize) {
        if let Some(l) = &self.live {
            l.offer_model(model);
        }
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        self.recorder
            .as_ref()
            .and_then(|r| serde_json::to_value(r).ok())
    }

    fn epoch_resume(&mut self, epoch: usize, batches: usize, _done: usize, samples: usize) {
        let recorder = self.recorder.take();
        self.epoch_start(epoch, batches);
        self.recorder = recorder;
        if let Some(b) = &self.bar {
            b.set_position(samples as u64);
        }
    }

    fn diagnostics(&mut self, s: &Sample) {
        if let Some(r) = &mut self.recorder {
            r.diagnostics(s);
        }
    }

    fn warning(&mut self, _kind: WarningKind, message: &str) {
        if let Some(l) = &self.live {
            l.warn(message);
        }
        if self.no_warnings {
            return;
        }
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
    }

    fn epoch_start(&mut self, epoch: usize, batches: usize) {
        if let Some(r) = &mut self.recorder {
            r.epoch_start(epoch, batches);
        }
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
        if let Some(r) = &mut self.recorder {
            let rows = r.rows.len();
            r.step(s);
            if let (Some(l), true) = (&self.live, r.rows.len() > rows) {
                l.append_metrics(&r.csv_header(), &r.csv_rows(rows));
            }
        }
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
        if let Some(rec) = &mut self.recorder {
            let rows = rec.rows.len();
            rec.epoch_end(r);
            if let Some(l) = &self.live {
                l.append_metrics(&rec.csv_header(), &rec.csv_rows(rows));
            }
        }
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

/// `1,28,28` (or `1x28x28`) → `[1, 28, 28]`.
fn parse_shape(s: &str) -> anyhow::Result<Vec<usize>> {
    let dims: Option<Vec<usize>> = s
        .split([',', 'x', ' '])
        .filter(|p| !p.is_empty())
        .map(|p| p.trim().parse::<usize>().ok().filter(|&d| d > 0))
        .collect();
    match dims {
        Some(d) if !d.is_empty() && d.len() <= 8 => Ok(d),
        _ => bail!(Error::Config(format!(
            "--input-shape {s}: give the shape of one sample as positive whole numbers, e.g. 1,28,28"
        ))),
    }
}

/// `--input-shape`, or `[in]` for a model that starts with `linear(in,…)`, or MNIST's `[1, 28, 28]`.
fn sample_shape(model: &dyn Module, given: Option<&str>) -> anyhow::Result<Vec<usize>> {
    if let Some(s) = given {
        return parse_shape(s);
    }
    Ok(model.input_shape_hint().unwrap_or_else(|| vec![1, 28, 28]))
}

fn cmd_graph(a: GraphArgs) -> anyhow::Result<()> {
    let loss = LossKind::from(a.loss);
    let model = Sequential::parse(
        a.model.line(),
        Init::Default,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
    )?;
    if a.batch == 0 {
        bail!("--batch 0: use at least 1 sample");
    }
    let shape = sample_shape(&model, a.input_shape.as_deref())?;
    let tape = train::graph::record(&model, &shape, a.batch, loss)?;
    let dot = tape.to_dot();
    match &a.out {
        None => {
            print!("{dot}");
            eprint!("{}", tape.report());
        }
        Some(p) => {
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !dir.is_dir() || p.is_dir() {
                bail!(Error::Config(format!(
                    "--out {}: {} is not a folder; create it first or give a file in an existing folder",
                    p.display(),
                    dir.display()
                )));
            }
            io::write_atomic(p, dot.as_bytes())?;
            print!("{}", tape.report());
            let svg = p.with_extension("svg");
            match std::process::Command::new("dot")
                .arg("-Tsvg")
                .arg(p)
                .arg("-o")
                .arg(&svg)
                .status()
            {
                Ok(st) if st.success() => println!("wrote {} and {}", p.display(), svg.display()),
                Ok(st) => bail!(Error::Config(format!(
                    "Graphviz `dot -Tsvg {}` failed ({st}); the DOT file is there",
                    p.display()
                ))),
                Err(_) => println!(
                    "wrote {} (Graphviz's `dot` is not installed: install graphviz and run `dot -Tsvg {} -o {}`)",
                    p.display(),
                    p.display(),
                    svg.display()
                ),
            }
        }
    }
    Ok(())
}

fn cmd_gradcheck(a: GradcheckArgs) -> anyhow::Result<()> {
    set_threads(a.threads)?;
    if let Some(t) = a.tolerance.filter(|t| !(*t > 0.0 && t.is_finite())) {
        bail!("--tolerance {t}: must be a number > 0");
    }
    if a.batch == 0 {
        bail!("--batch 0: use at least 1 sample");
    }
    let init = weight_init(&a.weight_init)?;
    let model = Sequential::parse(
        a.model.line(),
        init,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(a.seed),
    )?;
    let shape = sample_shape(&model, a.input_shape.as_deref())?;
    let cfg = train::check::CheckConfig {
        sample_shape: shape.clone(),
        batch: a.batch,
        seed: a.seed,
        samples: a.samples,
        tolerance: a.tolerance.unwrap_or(0.0),
    };
    let res = train::check::check_model(&model, &cfg)?;
    println!(
        "gradient check of `{}` on {} random samples of shape {shape:?} (seed {}): L = Σ r·output with random r, \
         central differences with h = 1e-2·max(1, |θ|) (smaller where that crosses a kink), error = |analytic − numeric| / max(1, |analytic|, |numeric|)",
        model.spec(),
        a.batch,
        a.seed,
    );
    print!("{}", res.report());
    println!("{}", res.verdict()?);
    Ok(())
}
