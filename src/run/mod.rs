//! A run as the library owns it: what it is made of ([`Settings`]), how it
//! is saved and resumed ([`files`]: the model file and its state file,
//! written as one), and the one check of what a resumed run may change
//! ([`check_resumable`]).
//!
//! The command line is a thin layer on this: it turns flags into
//! [`Settings`], and a Rust program continues a run the command line saved
//! in a few lines:
//!
//! ```no_run
//! use backprop::run::Run;
//! use backprop::train::Printer;
//! use std::path::Path;
//! # fn main() -> backprop::Result<()> {
//! let mut run = Run::resume(Path::new("runs/x.safetensors"), None)?;
//! run.settings.train.epochs += 5; // five epochs more than it was started with
//! let (train, test) = run.settings.load_data(Path::new("data/mnist"))?;
//! let summary = run.train(&train, test.as_ref(), &mut Printer::new())?;
//! println!("{:?}", summary.test_accuracy);
//! # Ok(()) }
//! ```

pub mod files;
pub mod lm;

pub use files::{
    load_run, not_ours_to_overwrite, read_state, same_file, save_run, state_path, SavedRun,
};

use crate::data::{DataInfo, DataOptions, Dataset, Opened, DATA_KEY};
use crate::dist::Collective;
use crate::nn::{checkpoint, spec, Init, Module, ModuleExt, Sequential};
use crate::optim::{Momentum, Optimizer, OptimizerConfig, OptimizerKind, Schedule};
use crate::train::metrics::Recorder;
use crate::train::{
    check_run, Checkpoints, EpochRecord, Observer, Resume, RunState, StepInfo, Summary, Task,
    TrainConfig, Trainer,
};
use crate::{Error, Result, Setting};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The state file's metadata key of the run's [`Settings`] (JSON).
pub const SETTINGS_KEY: &str = "backprop.settings";
/// The state file's metadata key of the metrics recorded so far (JSON).
pub const METRICS_KEY: &str = "backprop.metrics";

/// Everything a run is made of: the model line, how its weights start, its
/// data, and how it trains. Saved with the run (the training settings in
/// the run's state, the rest beside them), so that a resumed run is built
/// again exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The model line or preset name (`mlp`, `flatten,linear(784,10)`).
    pub model: String,
    /// The initialization scheme's name ([`Init`]; `default` is PyTorch's).
    #[serde(default = "default_init")]
    pub weight_init: String,
    /// Gradient checkpointing: layer ranges recomputed during the backward
    /// pass (`0-2,3-5`).
    #[serde(default)]
    pub checkpoint: Option<String>,
    /// Start from the weights in this file instead of drawing them.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// The training data (a folder of IDX files or a CSV file); `None`:
    /// the caller's default ([`Settings::load_data`]).
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// The test data, instead of the `t10k-*` files of the data folder.
    #[serde(default)]
    pub test_data: Option<PathBuf>,
    /// A factor for CSV features.
    #[serde(default)]
    pub csv_scale: Option<f32>,
    /// What the model is trained to do; `None`: told by the data and the
    /// loss ([`Task::of`]).
    #[serde(default)]
    pub task: Option<Task>,
    /// A CSV file's target columns by name, comma-separated (`price`,
    /// `a,b`); `None`: the label is the first column.
    #[serde(default)]
    pub target: Option<String>,
    /// Hold out this fraction of the training data as the test set when
    /// there is no test set.
    #[serde(default)]
    pub test_split: Option<f64>,
    /// Resize every image of an image folder to this side.
    #[serde(default)]
    pub image_size: Option<usize>,
    /// Normalize each image channel: `auto` (the training set's means and
    /// deviations) or `MEANS/STDS`.
    #[serde(default)]
    pub normalize: Option<String>,
    /// How often the run saves besides epochs' ends (every this many steps;
    /// 0: only at epochs' ends): [`Outputs::save_every`] as the run was
    /// last saved, which a resumed run keeps unless told otherwise.
    #[serde(default)]
    pub save_every: usize,
    /// How it trains (saved in the run's state, not with these fields).
    #[serde(skip, default = "default_train")]
    pub train: TrainConfig,
}

fn default_init() -> String {
    "default".into()
}

fn default_train() -> TrainConfig {
    TrainConfig::new(OptimizerConfig::new(OptimizerKind::Adam))
}

/// The settings a resumed run may change: they extend it (more epochs, a
/// later step limit) or name the same data by another path (the data are
/// compared by fingerprint when the run resumes).
pub const MAY_CHANGE: [Setting; 4] = [
    Setting::Epochs,
    Setting::MaxSteps,
    Setting::Data,
    Setting::TestData,
];

/// How a setting is read (as text that compares by meaning) and copied
/// from other settings: one entry per [`Setting`].
struct Field {
    show: fn(&Settings) -> String,
    adopt: fn(&mut Settings, &Settings),
}

/// `Some(v)` as `v`, `None` as `(none)`.
fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "(none)".to_string(), |v| v.to_string())
}

fn momentum_text(m: Momentum) -> String {
    match m {
        Momentum::None => "0".into(),
        Momentum::Classic { mu, dampening: 0.0 } => mu.to_string(),
        Momentum::Classic { mu, dampening } => format!("{mu} (dampening {dampening})"),
        Momentum::Nesterov { mu } => format!("{mu} (nesterov)"),
    }
}

/// A schedule without its span (the span is the run's, kept when a resumed
/// run is extended).
fn schedule_text(s: &Schedule) -> String {
    match *s {
        Schedule::Constant => "constant".into(),
        Schedule::Step { step_size, gamma } => format!("step (every {step_size}, ×{gamma})"),
        Schedule::Cosine { eta_min, .. } => format!("cosine (down to {eta_min})"),
        Schedule::OneCycle {
            pct_start,
            div_factor,
            final_div_factor,
            ..
        } => format!("one-cycle ({pct_start}, {div_factor}, {final_div_factor})"),
        Schedule::WarmupCosine {
            warmup_steps,
            lr_min,
            ..
        } => format!("warm-up {warmup_steps} then cosine (down to {lr_min})"),
    }
}

fn path_text(p: &Option<PathBuf>) -> String {
    opt(&p.as_ref().map(|p| p.display().to_string()))
}

/// The one table of what a resumed run compares and takes over.
fn field(s: Setting) -> Field {
    macro_rules! f {
        ($show:expr, $($f:ident).+) => {
            Field {
                show: $show,
                adopt: |a, b| a.$($f).+ = b.$($f).+.clone(),
            }
        };
    }
    match s {
        Setting::Model => f!(
            |s| spec::expand_preset(&s.model).split_whitespace().collect(),
            model
        ),
        Setting::WeightInit => f!(
            |s| match s.weight_init.parse::<Init>() {
                Ok(i) => format!("{i:?}"),
                Err(_) => s.weight_init.clone(),
            },
            weight_init
        ),
        Setting::Checkpoint => f!(|s| opt(&s.checkpoint), checkpoint),
        Setting::Init => f!(|s| path_text(&s.init), init),
        Setting::Data => f!(|s| path_text(&s.data), data),
        Setting::TestData => f!(|s| path_text(&s.test_data), test_data),
        Setting::CsvScale => f!(|s| opt(&s.csv_scale), csv_scale),
        Setting::Task => f!(|s| opt(&s.task.map(Task::name)), task),
        Setting::Target => f!(|s| opt(&s.target), target),
        Setting::TestSplit => f!(|s| opt(&s.test_split), test_split),
        Setting::ImageSize => f!(|s| opt(&s.image_size), image_size),
        Setting::Normalize => f!(|s| opt(&s.normalize), normalize),
        Setting::Augment => f!(|s| format!("{:?}", s.train.augment), train.augment),
        Setting::Epochs => f!(|s| s.train.epochs.to_string(), train.epochs),
        Setting::BatchSize => f!(|s| s.train.batch_size.to_string(), train.batch_size),
        Setting::MaxSteps => f!(|s| opt(&s.train.max_steps), train.max_steps),
        Setting::Seed => f!(|s| s.train.seed.to_string(), train.seed),
        Setting::Shuffle => f!(|s| s.train.shuffle.to_string(), train.shuffle),
        Setting::Loss => f!(|s| s.train.loss.name().into(), train.loss),
        Setting::Schedule => f!(|s| schedule_text(&s.train.schedule), train.schedule),
        Setting::ClipGradNorm => f!(|s| opt(&s.train.clip_grad_norm), train.clip_grad_norm),
        Setting::ClipGradValue => f!(|s| opt(&s.train.clip_grad_value), train.clip_grad_value),
        Setting::DiagnosticsEvery => f!(
            |s| s.train.diagnostics_every.to_string(),
            train.diagnostics_every
        ),
        Setting::Optimizer => f!(
            |s| s.train.optimizer.kind.name().into(),
            train.optimizer.kind
        ),
        Setting::LearningRate => f!(|s| s.train.optimizer.lr.to_string(), train.optimizer.lr),
        Setting::Momentum => f!(
            |s| momentum_text(s.train.optimizer.momentum),
            train.optimizer.momentum
        ),
        Setting::WeightDecay => f!(
            |s| s.train.optimizer.weight_decay.to_string(),
            train.optimizer.weight_decay
        ),
        Setting::Betas => f!(
            |s| format!(
                "{}, {}",
                s.train.optimizer.betas.0, s.train.optimizer.betas.1
            ),
            train.optimizer.betas
        ),
        Setting::Eps => f!(|s| s.train.optimizer.eps.to_string(), train.optimizer.eps),
        Setting::Alpha => f!(
            |s| s.train.optimizer.alpha.to_string(),
            train.optimizer.alpha
        ),
        // Not a setting of the run: the process's.
        Setting::Threads => Field {
            show: |_| String::new(),
            adopt: |_, _| {},
        },
    }
}

impl Settings {
    /// A run of `model` (a model line or preset) trained as `train` says,
    /// with PyTorch's initialization and the caller's default data.
    pub fn new(model: &str, train: TrainConfig) -> Settings {
        Settings {
            model: model.into(),
            weight_init: default_init(),
            checkpoint: None,
            init: None,
            data: None,
            test_data: None,
            csv_scale: None,
            task: None,
            target: None,
            test_split: None,
            image_size: None,
            normalize: None,
            save_every: 0,
            train,
        }
    }

    /// The value of `s`, as text that compares by meaning (the learning
    /// rate as a number, the model line with its preset expanded).
    pub fn value(&self, s: Setting) -> String {
        (field(s).show)(self)
    }

    /// The initialization scheme.
    pub fn init_scheme(&self) -> Result<Init> {
        self.weight_init.parse()
    }

    /// The model these settings describe, its weights drawn from the run's
    /// seed (or read from [`Settings::init`]), with its checkpoint segments.
    pub fn build_model(&self) -> Result<Sequential> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.train.seed);
        let mut model = Sequential::parse(&self.model, self.init_scheme()?, &mut rng)?;
        if let Some(c) = &self.checkpoint {
            checkpoint::apply(&mut model, c)?;
        }
        if let Some(p) = &self.init {
            crate::io::load_into(&mut model, p)?;
        }
        Ok(model)
    }

    /// The training data and the test data: [`Settings::data`], else
    /// `default`.
    pub fn load_data(&self, default: &Path) -> Result<Opened> {
        let data = self.data.as_deref().unwrap_or(default);
        crate::data::open(data, self.test_data.as_deref(), &self.data_options()?)
    }

    /// How [`Settings::load_data`] reads the data.
    pub fn data_options(&self) -> Result<DataOptions> {
        Ok(DataOptions {
            csv_scale: self.csv_scale,
            target: self
                .target
                .as_deref()
                .map(|t| t.split(',').map(|c| c.trim().to_string()).collect())
                .unwrap_or_default(),
            classes: self.task == Some(Task::Classification),
            test_split: self.test_split,
            seed: self.train.seed,
            image_size: self.image_size,
            standardize: None,
            normalize: self.normalize.as_deref().map(str::parse).transpose()?,
        })
    }

    /// The one-cycle schedule's steps, once the training set's size is
    /// known: the run's epochs (as first started), batch by batch.
    pub fn resolve_schedule(&mut self, train_len: usize) {
        if let Schedule::OneCycle { total_steps, .. } = &mut self.train.schedule {
            if *total_steps == 0 {
                *total_steps = self.train.epochs * train_len.div_ceil(self.train.batch_size.max(1));
            }
        }
    }
}

/// The settings of a resumed run: `saved`, with each setting in `given`
/// that the caller set explicitly (`explicit`) either taken over (those of
/// [`MAY_CHANGE`]) or required to mean the same as the saved one. The
/// error ([`Error::Changed`]) names the first that differs, with both
/// values.
pub fn check_resumable(
    saved: &Settings,
    given: &Settings,
    explicit: &[Setting],
) -> Result<Settings> {
    let mut out = saved.clone();
    for &s in explicit {
        let f = field(s);
        if MAY_CHANGE.contains(&s) {
            (f.adopt)(&mut out, given);
            continue;
        }
        let (was, now) = ((f.show)(saved), (f.show)(given));
        if was != now {
            return Err(Error::Changed {
                setting: s,
                saved: was,
                given: now,
            });
        }
    }
    Ok(out)
}

/// What a checkpoint writes besides the model and the optimizer: the
/// settings, where the run stands, the metrics so far.
struct Saver {
    /// The model file (its state file beside it).
    path: PathBuf,
    /// The model line saved in the model file.
    line: String,
    /// [`Settings`] as JSON.
    settings: String,
    /// Where the metrics go (`runs/x.`), if anywhere.
    metrics: Option<PathBuf>,
    /// The data's [`DataInfo`] as JSON, if it has names or preprocessing.
    data: Option<String>,
}

impl Saver {
    fn save(
        &self,
        m: &dyn Module,
        opt: &Optimizer,
        st: &RunState,
        rec: Option<&Recorder>,
    ) -> Result<()> {
        // The metrics so far, so that a killed run leaves them too.
        if let (Some(prefix), Some(rec)) = (&self.metrics, rec) {
            write_metrics(rec, &self.line, prefix, false)?;
        }
        let mut model_meta = HashMap::from([
            ("format".to_string(), "pt".to_string()),
            (crate::io::MODEL_KEY.to_string(), self.line.clone()),
        ]);
        if let Some(d) = &self.data {
            model_meta.insert(DATA_KEY.to_string(), d.clone());
        }
        let mut state_meta = HashMap::from([
            (
                files::RUN_KEY.to_string(),
                serde_json::to_string(st).expect("serializable"),
            ),
            (SETTINGS_KEY.to_string(), self.settings.clone()),
        ]);
        if let Some(rec) = rec {
            state_meta.insert(
                METRICS_KEY.to_string(),
                serde_json::to_string(rec).expect("serializable"),
            );
        }
        save_run(
            &self.path,
            &m.state_dict(),
            model_meta,
            &opt.state_dict(),
            state_meta,
            st.steps as u64,
        )
    }
}

/// Write `metrics.csv` (and, with `plots` and feature `plots`, the loss and
/// gradient figures) at `prefix` (`runs/x.` or `DIR/`). Returns the files.
pub fn write_metrics(
    rec: &Recorder,
    line: &str,
    prefix: &Path,
    plots: bool,
) -> Result<Vec<PathBuf>> {
    #[cfg(feature = "plots")]
    {
        crate::train::plots::write_run_files(rec, line, prefix, plots)
    }
    #[cfg(not(feature = "plots"))]
    {
        let _ = (line, plots);
        let csv = PathBuf::from(format!("{}metrics.csv", prefix.display()));
        crate::io::write_atomic(&csv, rec.to_csv().as_bytes())?;
        Ok(vec![csv])
    }
}

/// `runs/x.safetensors` → `runs/x.`: a saved run's metrics go to
/// `runs/x.metrics.csv`, its plots to `runs/x.loss.png`, …
pub fn files_prefix(model_path: &Path) -> PathBuf {
    let stem = model_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    model_path.with_file_name(format!("{stem}."))
}

/// Where a run writes: its model and state (every `every` steps and at
/// every epoch's end), and its metrics and plots.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    /// The model file (its state file beside it); `None`: nothing is saved.
    pub save: Option<PathBuf>,
    /// Also save every this many steps (0: only at epochs' ends).
    pub save_every: usize,
    /// Where `metrics.csv` and the plots go (`runs/x.` or `DIR/`); `None`:
    /// beside `save` if there is one, else nowhere.
    pub metrics: Option<PathBuf>,
    /// Draw the plots at the end (feature `plots`), not only `metrics.csv`.
    pub plots: bool,
    /// Replace what [`not_ours_to_overwrite`] would refuse.
    pub force: bool,
}

impl Outputs {
    /// The prefix of the metrics files, if they are written.
    pub fn metrics_prefix(&self) -> Option<PathBuf> {
        self.metrics
            .clone()
            .or_else(|| self.save.as_deref().map(files_prefix))
    }
}

/// A run to train: its settings, its model, and, when it continues a saved
/// run, where that run stood.
pub struct Run {
    /// What the run is made of; `train.epochs` and `train.max_steps` may
    /// still be raised to extend a resumed run.
    pub settings: Settings,
    /// The model, with its weights as they start.
    pub model: Sequential,
    /// Where the run writes.
    pub outputs: Outputs,
    /// Batches prepared ahead on a background thread (0: none; the run
    /// is the same either way). 2 unless set.
    pub prefetch: usize,
    /// Where a resumed run stood.
    resume: Option<Resume>,
    /// The metrics recorded so far (a resumed run's) or a new recorder.
    recorder: Recorder,
    /// The processes of a data-parallel run.
    collective: Option<Rc<dyn Collective>>,
    /// The file it was resumed from.
    resumed_from: Option<PathBuf>,
    /// The metrics and plot files written at the end.
    written: Vec<PathBuf>,
    /// What the model needs to read its data again, saved with it.
    data_info: DataInfo,
}

impl Run {
    /// A new run of `settings` (its model built and initialized).
    pub fn new(settings: Settings) -> Result<Run> {
        let model = settings.build_model()?;
        let every = match settings.train.diagnostics_every {
            0 => 50,
            n => n,
        };
        let recorder = Recorder::new(every, settings.train.diagnostics_every > 0);
        Ok(Run {
            settings,
            model,
            outputs: Outputs::default(),
            prefetch: 2,
            resume: None,
            recorder,
            collective: None,
            resumed_from: None,
            written: Vec::new(),
            data_info: DataInfo::default(),
        })
    }

    /// Continue the run saved at `path` (its model file; the state file is
    /// beside it), where it stopped. `change`: settings the caller gives
    /// again and which of them it set explicitly, checked by
    /// [`check_resumable`] (more epochs, another path to the same data).
    /// It saves where it was resumed from unless [`Run::outputs`] says
    /// otherwise.
    pub fn resume(path: &Path, change: Option<(&Settings, &[Setting])>) -> Result<Run> {
        let saved = load_run(path)?;
        let state_file = state_path(path);
        let resume = files::read_state(&saved.state, &state_file)?;
        let json = saved
            .state
            .metadata
            .get(SETTINGS_KEY)
            .ok_or_else(|| Error::weights(&state_file, "the state file holds no settings"))?;
        let mut settings: Settings = serde_json::from_str(json).map_err(|e| {
            Error::weights(
                &state_file,
                format!("the saved settings cannot be read ({e})"),
            )
        })?;
        settings.train = resume.state.config.clone();
        if let Some((given, explicit)) = change {
            settings = check_resumable(&settings, given, explicit)?;
        }
        let recorder = match saved.state.metadata.get(METRICS_KEY) {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                Error::weights(
                    &state_file,
                    format!("the saved metrics cannot be read ({e})"),
                )
            })?,
            None => Recorder::new(50, settings.train.diagnostics_every > 0),
        };
        // The weights come from the saved model, not from `init`.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(settings.train.seed);
        let mut model = Sequential::parse(&settings.model, settings.init_scheme()?, &mut rng)?;
        if let Some(c) = &settings.checkpoint {
            checkpoint::apply(&mut model, c)?;
        }
        model.load_state_dict(&saved.model.tensors, path)?;
        let save_every = settings.save_every;
        Ok(Run {
            settings,
            model,
            outputs: Outputs {
                save: Some(path.to_path_buf()),
                save_every,
                ..Outputs::default()
            },
            prefetch: 2,
            resume: Some(resume),
            recorder,
            collective: None,
            resumed_from: Some(path.to_path_buf()),
            written: Vec::new(),
            data_info: DataInfo::default(),
        })
    }

    /// The step and epoch (1-based) a resumed run continues from.
    pub fn resumes_at(&self) -> Option<(usize, usize)> {
        self.resume
            .as_ref()
            .map(|r| (r.state.steps, r.state.epoch + 1))
    }

    /// The file the run was resumed from.
    pub fn resumed_from(&self) -> Option<&Path> {
        self.resumed_from.as_deref()
    }

    /// Train data-parallel over the processes of `comm` (see [`crate::dist`]).
    pub fn collective(&mut self, comm: Rc<dyn Collective>) {
        self.collective = Some(comm);
    }

    /// The metrics and plot files the last [`Run::train`] wrote at its end.
    pub fn written(&self) -> &[PathBuf] {
        &self.written
    }

    /// What the model needs to read its data again (class names, columns,
    /// standardization), as the last [`Run::check`] found it.
    pub fn data_info(&self) -> &DataInfo {
        &self.data_info
    }

    /// The metrics recorded so far.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Check that the run can write where [`Run::outputs`] says before it
    /// starts: make the save file's folder, refuse to replace what is not
    /// this run's ([`not_ours_to_overwrite`]) or a file that is not a model
    /// unless `force`, clear what killed saves left there.
    pub fn prepare_outputs(&self) -> Result<()> {
        let o = &self.outputs;
        if let Some(p) = &o.save {
            prepare_save(p, o.force, self.resumed_from.as_deref())?;
        }
        if let Some(d) = &o.metrics {
            let dir = if d.as_os_str().to_string_lossy().ends_with('/') {
                d.clone()
            } else {
                d.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
        }
        Ok(())
    }

    /// Every check before the first step (settings, model against data,
    /// batch sizes, memory), with the schedule's span resolved.
    pub fn check<D: Dataset>(&mut self, train: &D, test: Option<&D>) -> Result<()> {
        self.check_not_finished()?;
        self.settings.resolve_schedule(train.len());
        let loss = self.settings.train.loss;
        if let Some(want) = self.settings.task {
            let is = Task::of(train.targets(), loss);
            if is != want {
                let why = match want {
                    Task::Classification => "classification needs class labels: name one target column of whole numbers, or data with labels".to_string(),
                    Task::Regression => format!("regression trains with mse, l1 or huber, not {}", loss.name()),
                    Task::MultiLabel => format!("multi-label tasks train with bce-logits or bce, not {}", loss.name()),
                };
                return Err(Error::invalid(
                    Setting::Task,
                    want.name(),
                    format!("the data and the loss make this {}: {why}", is.name()),
                ));
            }
        }
        let task = Task::of(train.targets(), loss);
        let width = self
            .model
            .output_shape(train.sample_shape())
            .ok()
            .and_then(|s| s.first().copied())
            .unwrap_or(1);
        self.recorder.set_task_columns(task.metric_names(width));
        self.data_info = DataInfo {
            task: Some(task),
            loss: Some(loss.name().to_string()),
            ..train.info()
        };
        check_run(&self.model, train, test, &self.settings.train)
    }

    /// A resumed run that had finished must be given more epochs (or a
    /// later step limit) to continue.
    fn check_not_finished(&self) -> Result<()> {
        let Some(resume) = &self.resume else {
            return Ok(());
        };
        let path = self.resumed_from.as_deref().unwrap_or(Path::new("the run"));
        let st = &resume.state;
        let (epochs, max_steps) = (self.settings.train.epochs, self.settings.train.max_steps);
        if st.finished && st.epoch >= epochs && max_steps.is_none_or(|m| st.steps >= m) {
            return Err(Error::invalid(
                Setting::Epochs,
                epochs,
                format!(
                    "{}: the run finished after {} epochs ({} steps); give more epochs (over {}) to continue it",
                    path.display(),
                    st.epoch,
                    st.steps,
                    st.epoch
                ),
            ));
        }
        Ok(())
    }

    /// Train: resume where the run stood, save as [`Run::outputs`] says,
    /// record the metrics (written beside the save, and at the end), and
    /// tell `obs` how it goes.
    pub fn train<D: Dataset>(
        &mut self,
        train: &D,
        test: Option<&D>,
        obs: &mut dyn Observer,
    ) -> Result<Summary> {
        self.check(train, test)?;
        self.settings.save_every = self.outputs.save_every;
        let line = self.model.describe();
        let saver = self.outputs.save.clone().map(|path| Saver {
            path,
            line: line.clone(),
            settings: serde_json::to_string(&self.settings).expect("serializable settings"),
            metrics: self.outputs.metrics_prefix(),
            data: (!self.data_info.is_empty()).then(|| self.data_info.to_json()),
        });
        let cfg = self.settings.train.clone();
        let mut trainer = Trainer::new(&cfg).prefetch(self.prefetch);
        if let Some(r) = self.resume.take() {
            trainer = trainer.resume(r);
        }
        if let Some(c) = &self.collective {
            trainer = trainer.collective(c.clone());
        }
        let mut save =
            |m: &dyn Module, opt: &Optimizer, st: &RunState, rec: Option<serde_json::Value>| {
                let rec: Option<Recorder> = rec.and_then(|v| serde_json::from_value(v).ok());
                match &saver {
                    Some(s) => s.save(m, opt, st, rec.as_ref()),
                    None => Ok(()),
                }
            };
        if saver.is_some() {
            trainer = trainer.checkpoints(Checkpoints {
                every: self.outputs.save_every,
                save: &mut save,
            });
        }
        let mut both = Recording {
            recorder: &mut self.recorder,
            obs,
        };
        let (summary, _) = trainer.run(&mut self.model, train, test, &mut both)?;
        if let Some(prefix) = self.outputs.metrics_prefix() {
            self.written = write_metrics(&self.recorder, &line, &prefix, self.outputs.plots)?;
        }
        Ok(summary)
    }
}

/// Make `--save`'s folder if missing, and refuse to overwrite what is not
/// this run's to overwrite, unless `force`: a file that is not a
/// safetensors model file, a run's state file, or a model whose state file
/// belongs to another run (any run but the one `resumed` from).
pub fn prepare_save(p: &Path, force: bool, resumed: Option<&Path>) -> Result<()> {
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::Config(format!(
                    "{}: cannot create the folder {} ({e})",
                    p.display(),
                    dir.display()
                ))
            })?;
        }
    }
    if !force {
        if let Some(why) = not_ours_to_overwrite(p, resumed) {
            return Err(Error::Config(format!("{}: {why}", p.display())));
        }
    }
    files::remove_leftovers(p);
    if p.is_file() && !force && crate::io::load(p).is_err() {
        return Err(Error::Config(format!(
            "{}: exists and is not a safetensors model file, so it is not overwritten; give another path, or --force",
            p.display()
        )));
    }
    crate::io::check_writable(p)
}

/// The caller's observer, with the run's metrics recorder in front of it:
/// the recorder sees every event first, its rows go to
/// [`Observer::metrics`], and its state is what a checkpoint saves.
struct Recording<'a> {
    recorder: &'a mut Recorder,
    obs: &'a mut dyn Observer,
}

impl Recording<'_> {
    /// Tell the observer of the rows added since `before`.
    fn rows_since(&mut self, before: usize) {
        if self.recorder.rows.len() > before {
            let (h, r) = (self.recorder.csv_header(), self.recorder.csv_rows(before));
            self.obs.metrics(&h, &r);
        }
    }
}

impl Observer for Recording<'_> {
    fn epoch_start(&mut self, epoch: usize, batches: usize) {
        self.recorder.epoch_start(epoch, batches);
        self.obs.epoch_start(epoch, batches);
    }

    fn epoch_resume(&mut self, epoch: usize, batches: usize, done: usize, samples: usize) {
        // The recorder's epoch continues as saved.
        self.obs.epoch_resume(epoch, batches, done, samples);
    }

    fn step(&mut self, info: &StepInfo) {
        let before = self.recorder.rows.len();
        self.recorder.step(info);
        self.rows_since(before);
        self.obs.step(info);
    }

    fn epoch_end(&mut self, r: &EpochRecord) {
        let before = self.recorder.rows.len();
        self.recorder.epoch_end(r);
        self.rows_since(before);
        self.obs.epoch_end(r);
    }

    fn diagnostics(&mut self, s: &crate::inspect::diagnostics::Sample) {
        self.recorder.diagnostics(s);
        self.obs.diagnostics(s);
    }

    fn warning(&mut self, kind: crate::inspect::diagnostics::WarningKind, message: &str) {
        self.obs.warning(kind, message);
    }

    fn confusion(&mut self, matrix: &[Vec<usize>]) {
        self.obs.confusion(matrix);
    }

    fn model(&mut self, model: &dyn Module, steps: usize) {
        self.obs.model(model, steps);
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&*self.recorder).ok()
    }
}
