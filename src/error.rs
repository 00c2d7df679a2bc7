//! Errors a user can cause: a bad model line, a bad file, a bad hyper-parameter.
//!
//! Inside the engine a shape violation is a bug and panics with the op and both
//! shapes; everything a user can get wrong comes back as one of these, with a
//! message that says what is wrong, where, and what to do.

use std::path::PathBuf;

/// Everything that can go wrong because of user input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model line: which item, what was expected.
    #[error("model spec: {0}")]
    Spec(String),
    /// A data file: which file, what is wrong with it.
    #[error("{}: {msg}", path.display())]
    Data {
        /// The data file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A weights file: which file, which tensor.
    #[error("{}: {msg}", path.display())]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong, naming the tensor where there is one.
        msg: String,
    },
    /// A hyper-parameter or option.
    #[error("{0}")]
    Config(String),
    /// One setting has a value that cannot work: which setting, the value,
    /// and why. (The command line names its own flag for the setting.)
    #[error("{} {value}: {msg}", setting.describe())]
    Invalid {
        /// The setting at fault.
        setting: Setting,
        /// The rejected value, as text.
        value: String,
        /// Why the value cannot work.
        msg: String,
    },
    /// A resumed run was given a setting that would change its result:
    /// which, the value it was saved with, and the one given.
    #[error(
        "{} {given}: the run was saved with {} {saved}; a resumed run keeps the settings that shape \
         its result (give the same value, or start a new run)",
        setting.describe(),
        setting.describe()
    )]
    Changed {
        /// The setting.
        setting: Setting,
        /// Its value in the saved run.
        saved: String,
        /// The value given now.
        given: String,
    },
    /// Training diverged (loss became NaN or infinite).
    #[error("{0}")]
    Diverged(String),
    /// A block of memory the run needs cannot be had: what it is for, how
    /// large, how much could be had, and what to change.
    #[error("not enough memory: {0}")]
    OutOfMemory(String),
    /// An operating-system error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The settings of a run that [`Error::Invalid`] can point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// The optimizer's base learning rate.
    LearningRate,
    /// The momentum μ of SGD or RMSprop.
    Momentum,
    /// The weight decay (L2 penalty or decoupled decay).
    WeightDecay,
    /// Adam's (β₁, β₂).
    Betas,
    /// The ε of Adam and RMSprop.
    Eps,
    /// RMSprop's smoothing constant α.
    Alpha,
    /// The number of samples per batch.
    BatchSize,
    /// The number of passes over the training set.
    Epochs,
    /// The cap on optimizer steps.
    MaxSteps,
    /// The maximum total gradient norm (clip by norm).
    ClipGradNorm,
    /// The maximum absolute gradient element (clip by value).
    ClipGradValue,
    /// The loss function.
    Loss,
    /// The learning-rate schedule.
    Schedule,
    /// The number of worker threads.
    Threads,
    /// The model line.
    Model,
    /// The initialization scheme.
    WeightInit,
    /// The gradient-checkpointing segments.
    Checkpoint,
    /// The file the weights start from.
    Init,
    /// The training data.
    Data,
    /// The test data.
    TestData,
    /// The factor applied to CSV features.
    CsvScale,
    /// The optimizer (its update rule).
    Optimizer,
    /// The seed of initialization, shuffling and dropout.
    Seed,
    /// Whether batches are shuffled each epoch.
    Shuffle,
    /// How often the per-layer statistics are measured.
    DiagnosticsEvery,
    /// What the model is trained to do (classification, regression, multi-label).
    Task,
    /// The CSV columns that hold the targets.
    Target,
    /// The fraction of the data held out as the test set.
    TestSplit,
    /// The side images are resized to.
    ImageSize,
    /// The random changes of training images.
    Augment,
    /// The images' per-channel normalization.
    Normalize,
}

/// Every [`Setting`], in the order they are documented.
pub const SETTINGS: [Setting; 31] = [
    Setting::Model,
    Setting::WeightInit,
    Setting::Checkpoint,
    Setting::Init,
    Setting::Data,
    Setting::TestData,
    Setting::CsvScale,
    Setting::Task,
    Setting::Target,
    Setting::TestSplit,
    Setting::ImageSize,
    Setting::Augment,
    Setting::Normalize,
    Setting::Epochs,
    Setting::BatchSize,
    Setting::MaxSteps,
    Setting::Seed,
    Setting::Shuffle,
    Setting::Loss,
    Setting::Optimizer,
    Setting::LearningRate,
    Setting::Momentum,
    Setting::WeightDecay,
    Setting::Betas,
    Setting::Eps,
    Setting::Alpha,
    Setting::ClipGradNorm,
    Setting::ClipGradValue,
    Setting::Schedule,
    Setting::DiagnosticsEvery,
    Setting::Threads,
];

impl Setting {
    /// How the library names the setting in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Setting::LearningRate => "learning rate",
            Setting::Momentum => "momentum",
            Setting::WeightDecay => "weight decay",
            Setting::Betas => "betas",
            Setting::Eps => "eps",
            Setting::Alpha => "alpha",
            Setting::BatchSize => "batch size",
            Setting::Epochs => "epochs",
            Setting::MaxSteps => "max steps",
            Setting::ClipGradNorm => "gradient-norm clip",
            Setting::ClipGradValue => "gradient-value clip",
            Setting::Loss => "loss",
            Setting::Schedule => "learning-rate schedule",
            Setting::Threads => "threads",
            Setting::Model => "model",
            Setting::WeightInit => "weight init",
            Setting::Checkpoint => "checkpoint segments",
            Setting::Init => "initial weights",
            Setting::Data => "data",
            Setting::TestData => "test data",
            Setting::CsvScale => "CSV scale",
            Setting::Optimizer => "optimizer",
            Setting::Seed => "seed",
            Setting::Shuffle => "shuffle",
            Setting::DiagnosticsEvery => "diagnostics interval",
            Setting::Task => "task",
            Setting::Target => "target columns",
            Setting::TestSplit => "test split",
            Setting::ImageSize => "image size",
            Setting::Augment => "augmentation",
            Setting::Normalize => "normalization",
        }
    }
}

impl Error {
    /// `setting` cannot be `value`, because `msg`.
    pub fn invalid(
        setting: Setting,
        value: impl std::fmt::Display,
        msg: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            setting,
            value: value.to_string(),
            msg: msg.into(),
        }
    }
    /// A data-file error.
    pub fn data(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            msg: msg.into(),
        }
    }
    /// A weights-file error.
    pub fn weights(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Weights {
            path: path.into(),
            msg: msg.into(),
        }
    }
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
