//! The command line's flags, and how they become the library's settings.

use anyhow::{anyhow, bail};
use backprop::nn::Init;
use backprop::optim::{self, Momentum, OptimizerKind, Schedule, ScheduleKind};
use backprop::run::{Outputs, Settings};
use backprop::train::{LossKind, Task, TrainConfig};
use backprop::{Error, Setting};
use clap::{ArgMatches, Args};
use std::path::{Path, PathBuf};

/// `backprop train`'s flags: the run's [`Settings`] (see
/// [`TrainArgs::settings`]), where it writes, and how it reports.
#[derive(Args, Clone)]
pub struct TrainArgs {
    /// Model line or preset (mlp, lenet, rnn, mlp-wide, mlp-bn, speedrun).
    #[arg(long, default_value = "mlp")]
    pub model: String,
    /// Gradient checkpointing: layer ranges (e.g. 0-5,6-9) whose activations are recomputed during backward instead of kept, or `blocks` (each of a GPT's blocks).
    #[arg(long)]
    pub checkpoint: Option<String>,
    /// Training data: a folder of MNIST-named IDX files (train-*, and t10k-* as the test set), a folder of images with one subfolder per class (PNG or JPEG; see --image-size), a CSV file (label first, or with a header and --target), or a UTF-8 text file (*.txt: a character-level language model, gpt-baby by default). Default: data/mnist.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Test data: a folder of IDX files or a CSV file (overrides the t10k-* files of --data).
    #[arg(long)]
    pub test_data: Option<PathBuf>,
    /// Multiply CSV features by this (e.g. 0.00392156862745098 for 0..255 pixels).
    #[arg(long, allow_negative_numbers = true)]
    pub csv_scale: Option<f32>,
    /// The CSV columns (by the header's names, comma-separated) that hold the targets, e.g. `price` or `a,b`; the other columns are the features, standardized with the training split's means and deviations (saved with the model).
    #[arg(long, value_name = "COLUMNS")]
    pub target: Option<String>,
    /// What the model learns: classification (class labels), regression (float targets; default with --target) or multi-label (0/1 targets).
    #[arg(long, value_enum, ignore_case = true)]
    pub task: Option<Task>,
    /// Resize every image of an image folder (--data DIR with one subfolder per class) to SIZE×SIZE pixels; without it the images must all have one size.
    #[arg(long, value_name = "SIZE")]
    pub image_size: Option<usize>,
    /// Random changes of each training image, applied in order with the run's seed: crop:P (pad P zeros, cut the image's size at random), flip (left-right, half the time), affine:D:T (rotate up to ±D degrees, shift up to T of the side), e.g. crop:4,flip.
    #[arg(long, value_name = "LIST")]
    pub augment: Option<String>,
    /// Normalize each image channel: auto (the training set's means and deviations, saved with the model) or MEANS/STDS, e.g. 0.4914,0.4822,0.4465/0.247,0.2435,0.2616.
    #[arg(long, value_name = "auto|MEANS/STDS")]
    pub normalize: Option<String>,
    /// Batches prepared ahead on a background thread while the current step runs (0: none; the run is the same either way).
    #[arg(long, default_value_t = 2)]
    pub prefetch: usize,
    /// Hold out this fraction of --data as the test set (seeded by --seed) when there is no test set, e.g. 0.2.
    #[arg(long, value_name = "FRACTION")]
    pub test_split: Option<f64>,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Samples per optimizer step (the last partial batch is kept).
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// The update rule.
    #[arg(long, value_enum, ignore_case = true, default_value = "adam")]
    pub optimizer: OptimizerKind,
    /// Learning rate (default: PyTorch's for the optimizer: 1e-3; rmsprop 1e-2).
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// Momentum (sgd, rmsprop).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    pub momentum: f32,
    /// Nesterov momentum (sgd; needs --momentum > 0).
    #[arg(long)]
    pub nesterov: bool,
    /// L2 weight decay (decoupled for adamw, whose default is 0.01).
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f32>,
    /// Adam's β₁.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.9)]
    pub beta1: f64,
    /// Adam's β₂ (a language model's recipe: 0.99).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.999)]
    pub beta2: f64,
    /// ε of Adam and RMSprop.
    #[arg(long, allow_negative_numbers = true, default_value_t = 1e-8)]
    pub eps: f32,
    /// RMSprop's smoothing constant α.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.99)]
    pub alpha: f64,
    /// Clip the global L2 norm of the gradients to this.
    #[arg(long, allow_negative_numbers = true)]
    pub clip_grad_norm: Option<f32>,
    /// Clamp every gradient element to [-X, X].
    #[arg(long, allow_negative_numbers = true)]
    pub clip_grad_value: Option<f32>,
    /// Learning-rate schedule over epochs.
    #[arg(long, value_enum, ignore_case = true, default_value = "constant")]
    pub lr_schedule: ScheduleKind,
    /// Epochs between decays for --lr-schedule step.
    #[arg(long, default_value_t = 1)]
    pub lr_step_size: usize,
    /// Decay factor for --lr-schedule step.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.1)]
    pub lr_gamma: f32,
    /// Final learning rate for --lr-schedule cosine.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    pub lr_min: f32,
    /// The training loss. Default: the task's (cross-entropy; mse for regression; bce-logits for multi-label).
    #[arg(long, value_enum, ignore_case = true)]
    pub loss: Option<LossKind>,
    /// Seed for initialization and shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Take batches in file order instead of shuffling each epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Initialization scheme: default (PyTorch's), constant(C), small-normal, xavier-uniform, xavier-normal, kaiming-uniform, kaiming-normal.
    #[arg(long, default_value = "default")]
    pub weight_init: String,
    /// Start from the weights in this safetensors file (ours or PyTorch's state_dict).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Save the model here (safetensors, PyTorch names; its folder is created), at every epoch's end (and every --save-every steps); the rest of the run's state (optimizer, position, generators, settings, metrics) goes beside it as *.state.safetensors.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Also save every N optimizer steps (0: only at epochs' ends).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub save_every: usize,
    /// Continue the run saved in this file (and its *.state.safetensors) exactly where it stopped; its settings come from the saved state (--epochs and --max-steps may extend it; --threads, output and reporting options may change).
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
    /// Overwrite a --save file that is not a safetensors model file.
    #[arg(long)]
    pub force: bool,
    /// Show the run live on a local web page (address printed at the start; see `backprop serve`). The page stays up after the run, showing it finished, until Ctrl-C.
    #[arg(long)]
    pub serve: bool,
    /// With --serve: leave as soon as the run ends instead of keeping the page up.
    #[arg(long, requires = "serve")]
    pub serve_exit: bool,
    #[command(flatten)]
    pub serve_at: ServeAt,
    /// Threads for the kernels (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// With several MPI processes: end the run on every rank, naming the one that did not answer, when a rank waits this long for the others in one exchange.
    #[arg(long, default_value_t = 300.0, value_name = "SECONDS")]
    pub collective_timeout: f64,
    /// Print one JSON summary as the last line of standard output.
    #[arg(long)]
    pub json: bool,
    /// No progress bar and no warnings.
    #[arg(long)]
    pub quiet: bool,
    /// Measure per-layer gradient statistics at step 1 and every N steps (0: never); they feed the warnings, metrics.csv and the gradient plots.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub diagnostics_every: usize,
    /// Write metrics.csv and the plots (loss.png/svg, grads.png/svg) into this folder. Default with --save FILE: beside it, as FILE's stem + .metrics.csv, .loss.png, …
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write metrics.csv but no plots.
    #[arg(long)]
    pub no_plots: bool,
    /// Language models: characters per window, the model's context.
    #[arg(long, default_value_t = 64, value_name = "T")]
    pub block_size: usize,
    /// Language models: steps of linear warm-up before the cosine decay to --lr-min.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub warmup_steps: usize,
    /// Language models: estimate the training and validation loss every N steps (and after the last).
    #[arg(long, default_value_t = 250, value_name = "N")]
    pub eval_every: usize,
    /// Language models: random batches per estimate.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub eval_iters: usize,
    /// Language models: micro-batches per optimizer step, their gradients averaged (the step of one batch N times larger).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub grad_accum: usize,
}

/// A model line or preset, given as the first argument or with --model.
#[derive(Args)]
pub struct ModelArg {
    /// Model line or preset (mlp, lenet, rnn, mlp-wide, mlp-bn, speedrun).
    #[arg(value_name = "MODEL", required_unless_present = "model")]
    pub line: Option<String>,
    /// The same, as an option (as `train --model`).
    #[arg(long = "model", value_name = "MODEL", conflicts_with = "line")]
    pub model: Option<String>,
}

impl ModelArg {
    pub fn line(&self) -> &str {
        self.line
            .as_deref()
            .or(self.model.as_deref())
            .expect("clap requires one")
    }
}

/// Where the page is served.
#[derive(Args, Clone, Copy)]
pub struct ServeAt {
    /// Port of the page (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on: 127.0.0.1 (this machine only) unless told otherwise, e.g. 0.0.0.0 for every network.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
}

#[derive(Args)]
pub struct ServeArgs {
    /// The folder of runs (their NAME.metrics.csv files, as `train --save` or `--out` leave them).
    #[arg(default_value = "runs")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub at: ServeAt,
}

#[derive(Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Samples in the batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Shape of one sample, e.g. 1,28,28 (default: 1,28,28, or IN when the model starts with linear(IN,…)).
    #[arg(long, value_name = "D1,D2,…")]
    pub input_shape: Option<String>,
    /// The loss ending the step.
    #[arg(long, value_enum, ignore_case = true, default_value = "cross-entropy")]
    pub loss: LossKind,
    /// Write the DOT to this file (and FILE.svg beside it when Graphviz's `dot` is installed) and print the table; without it the DOT goes to standard output and the table to standard error.
    #[arg(long, value_name = "FILE.dot")]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct GradcheckArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Samples in the random batch.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Shape of one sample, e.g. 1,28,28 (default: 1,28,28, or IN when the model starts with linear(IN,…)).
    #[arg(long, value_name = "D1,D2,…")]
    pub input_shape: Option<String>,
    /// Seed for the weights, the batch and the elements checked.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Initialization scheme of the weights checked (as for train).
    #[arg(long, default_value = "default")]
    pub weight_init: String,
    /// Elements checked per parameter, chosen at random (0: every element; each costs two forward passes).
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Fail when an error |analytic − numeric| / max(1, |analytic|, |numeric|) exceeds this (default 1e-3; 1e-2 for models with kinks: relu, leaky_relu, prelu, max-pooling).
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// Threads for the kernels.
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A model saved by `backprop train --save` (or a PyTorch state_dict with --model).
    pub weights: PathBuf,
    /// Data: a folder of IDX files (t10k-* if present, else train-*), a CSV file, or a text file (*.txt) for a language model (its validation split: the last 10 %). Default: data/mnist.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Model line, for files that carry none (PyTorch's).
    #[arg(long)]
    pub model: Option<String>,
    /// Multiply CSV features by this.
    #[arg(long, allow_negative_numbers = true)]
    pub csv_scale: Option<f32>,
    /// The loss to report. Default: the one the model was trained with (else cross-entropy).
    #[arg(long, value_enum, ignore_case = true)]
    pub loss: Option<LossKind>,
    /// Threads for the kernels.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SampleArgs {
    /// A language model saved by `backprop train --data FILE.txt --save FILE`.
    pub weights: PathBuf,
    /// The text to continue (characters of the model's vocabulary).
    #[arg(long, default_value = "\n")]
    pub prompt: String,
    /// Characters to generate.
    #[arg(long, default_value_t = 500)]
    pub tokens: usize,
    /// Below 1 sharper, above 1 more varied; 0 always takes the most likely character.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.8)]
    pub temperature: f32,
    /// Draw among the K most likely characters only.
    #[arg(long, value_name = "K", default_value_t = 200)]
    pub top_k: usize,
    /// Seed of the draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads for the kernels.
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Args)]
pub struct PredictArgs {
    /// A model saved by `backprop train --save`.
    pub weights: PathBuf,
    /// A PNG or PGM image of a digit, any size, white on black or dark on light: it is made MNIST-like first (scaled to 20 pixels, centred by its centre of mass in 28×28, as MNIST was made; see --raw). For a model trained on an image folder: a PNG or JPEG, resized as its training images were.
    pub image: Option<PathBuf>,
    /// Feed the image to the model as it is (gray levels in [0, 1]), not made MNIST-like.
    #[arg(long)]
    pub raw: bool,
    /// Predict sample INDEX of this data set instead of an image.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Which sample of --data (0-based).
    #[arg(long)]
    pub index: Option<usize>,
    /// Model line, for files that carry none.
    #[arg(long)]
    pub model: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The command-line flag for a library setting, for error messages.
pub fn flag(s: Setting) -> &'static str {
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
        Setting::Model => "--model",
        Setting::WeightInit => "--weight-init",
        Setting::Checkpoint => "--checkpoint",
        Setting::Init => "--init",
        Setting::Data => "--data",
        Setting::TestData => "--test-data",
        Setting::CsvScale => "--csv-scale",
        Setting::Task => "--task",
        Setting::Target => "--target",
        Setting::TestSplit => "--test-split",
        Setting::ImageSize => "--image-size",
        Setting::Augment => "--augment",
        Setting::Normalize => "--normalize",
        Setting::Optimizer => "--optimizer",
        Setting::Seed => "--seed",
        Setting::Shuffle => "--no-shuffle",
        Setting::DiagnosticsEvery => "--diagnostics-every",
    }
}

/// The run setting a `train` flag sets, if it sets one (`--lr-gamma` is
/// part of the schedule, `--nesterov` of the momentum).
fn setting_of(id: &str) -> Option<Setting> {
    Some(match id {
        "model" => Setting::Model,
        "checkpoint" => Setting::Checkpoint,
        "data" => Setting::Data,
        "test_data" => Setting::TestData,
        "csv_scale" => Setting::CsvScale,
        "target" => Setting::Target,
        "task" => Setting::Task,
        "test_split" => Setting::TestSplit,
        "image_size" => Setting::ImageSize,
        "augment" => Setting::Augment,
        "normalize" => Setting::Normalize,
        "epochs" => Setting::Epochs,
        "batch_size" => Setting::BatchSize,
        "optimizer" => Setting::Optimizer,
        "lr" => Setting::LearningRate,
        "momentum" | "nesterov" => Setting::Momentum,
        "weight_decay" => Setting::WeightDecay,
        "beta1" | "beta2" => Setting::Betas,
        "eps" => Setting::Eps,
        "alpha" => Setting::Alpha,
        "clip_grad_norm" => Setting::ClipGradNorm,
        "clip_grad_value" => Setting::ClipGradValue,
        "lr_schedule" | "lr_step_size" | "lr_gamma" | "lr_min" => Setting::Schedule,
        "loss" => Setting::Loss,
        "seed" => Setting::Seed,
        "no_shuffle" => Setting::Shuffle,
        "max_steps" => Setting::MaxSteps,
        "weight_init" => Setting::WeightInit,
        "init" => Setting::Init,
        "diagnostics_every" => Setting::DiagnosticsEvery,
        _ => return None,
    })
}

impl TrainArgs {
    /// The task: --task, else regression for named target columns, else
    /// classification.
    pub fn task(&self) -> Task {
        self.task.unwrap_or(match self.target {
            Some(_) => Task::Regression,
            None => Task::Classification,
        })
    }

    /// The run these flags describe. The combinations only flags can get
    /// wrong are checked here; the library checks the rest.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut cfg = TrainConfig::new(self.optimizer_config()?);
        cfg.epochs = self.epochs;
        cfg.batch_size = self.batch_size;
        cfg.loss = self.loss.unwrap_or(self.task().default_loss());
        cfg.seed = self.seed;
        cfg.shuffle = !self.no_shuffle;
        cfg.max_steps = self.max_steps;
        cfg.clip_grad_norm = self.clip_grad_norm;
        cfg.clip_grad_value = self.clip_grad_value;
        cfg.diagnostics_every = self.diagnostics_every;
        if let Some(a) = &self.augment {
            cfg.augment = backprop::data::parse_augments(a)?;
        }
        if let Some(n) = &self.normalize {
            n.parse::<backprop::data::Normalize>()?;
        }
        cfg.schedule = self.schedule(self.epochs)?;
        if !matches!(cfg.schedule, Schedule::OneCycle { .. }) {
            cfg.validate()?; // a one-cycle schedule once its steps are known
        }
        self.weight_init
            .parse::<Init>()
            .map_err(|e| anyhow!("--weight-init {}: {e}", self.weight_init))?;
        Ok(Settings {
            model: self.model.clone(),
            weight_init: self.weight_init.clone(),
            checkpoint: self.checkpoint.clone(),
            init: self.init.clone(),
            data: self.data.clone(),
            test_data: self.test_data.clone(),
            csv_scale: self.csv_scale,
            task: self.task,
            target: self.target.clone(),
            test_split: self.test_split,
            image_size: self.image_size,
            normalize: self.normalize.clone(),
            save_every: self.save_every,
            train: cfg,
        })
    }

    /// The run settings given on the command line (not left at their defaults).
    pub fn explicit(m: &ArgMatches) -> Vec<Setting> {
        let mut v: Vec<Setting> = m
            .ids()
            .filter(|id| {
                m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
            })
            .filter_map(|id| setting_of(id.as_str()))
            .collect();
        v.dedup();
        v
    }

    /// Where the run writes: `--save` (a resumed run: where it was resumed
    /// from, unless `--save` moves it), `--out` or beside the save; a
    /// resumed run saves as often as it did (`saved_every`) unless
    /// `--save-every` is given again.
    pub fn outputs(
        &self,
        m: &ArgMatches,
        resumed_from: Option<&Path>,
        saved_every: usize,
    ) -> anyhow::Result<Outputs> {
        let given = m.value_source("save_every") == Some(clap::parser::ValueSource::CommandLine);
        let save_every = match resumed_from {
            Some(_) if !given => saved_every,
            _ => self.save_every,
        };
        let metrics = match &self.out {
            Some(d) if d.exists() && !d.is_dir() => bail!(Error::Config(format!(
                "--out {}: is a file; give a folder (it is created if missing)",
                d.display()
            ))),
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
                Some(d.join(""))
            }
            None => None,
        };
        Ok(Outputs {
            save: self
                .save
                .clone()
                .or_else(|| resumed_from.map(Path::to_path_buf)),
            save_every,
            metrics,
            plots: !self.no_plots,
            force: self.force,
        })
    }

    /// The optimizer's settings from the flags.
    fn optimizer_config(&self) -> anyhow::Result<optim::OptimizerConfig> {
        let kind = self.optimizer;
        if self.nesterov && kind != OptimizerKind::Sgd {
            bail!("--nesterov applies to --optimizer sgd only");
        }
        if self.nesterov && self.momentum <= 0.0 {
            bail!("--nesterov needs --momentum > 0");
        }
        let mut oc = optim::OptimizerConfig::new(kind);
        if let Some(lr) = self.lr {
            oc.lr = lr;
        }
        oc.momentum = if self.nesterov {
            Momentum::Nesterov { mu: self.momentum }
        } else {
            Momentum::classic(self.momentum)
        };
        if let Some(wd) = self.weight_decay {
            oc.weight_decay = wd;
        }
        oc.betas = (self.beta1, self.beta2);
        oc.eps = self.eps;
        oc.alpha = self.alpha;
        Ok(oc)
    }

    /// The schedule from the flags, spanning `epochs` (a one-cycle
    /// schedule's steps are counted once the data is read).
    fn schedule(&self, epochs: usize) -> anyhow::Result<Schedule> {
        if !(self.lr_gamma > 0.0 && self.lr_gamma.is_finite()) {
            bail!("--lr-gamma {}: must be a number > 0", self.lr_gamma);
        }
        if !(self.lr_min >= 0.0 && self.lr_min.is_finite()) {
            bail!("--lr-min {}: must be a number ≥ 0", self.lr_min);
        }
        Ok(match self.lr_schedule {
            ScheduleKind::Constant => Schedule::Constant,
            ScheduleKind::Step => {
                if self.lr_step_size == 0 {
                    bail!("--lr-step-size 0: must be at least 1");
                }
                Schedule::Step {
                    step_size: self.lr_step_size,
                    gamma: self.lr_gamma,
                }
            }
            ScheduleKind::Cosine => Schedule::Cosine {
                t_max: epochs,
                eta_min: self.lr_min,
            },
            ScheduleKind::OneCycle => Schedule::one_cycle(0),
        })
    }
}
