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
    Data { path: PathBuf, msg: String },
    /// A weights file: which file, which tensor.
    #[error("{}: {msg}", path.display())]
    Weights { path: PathBuf, msg: String },
    /// A hyper-parameter or option.
    #[error("{0}")]
    Config(String),
    /// One setting has a value that cannot work: which setting, the value,
    /// and why. (The command line names its own flag for the setting.)
    #[error("{} {value}: {msg}", setting.describe())]
    Invalid {
        setting: Setting,
        value: String,
        msg: String,
    },
    /// Training diverged (loss became NaN or infinite).
    #[error("{0}")]
    Diverged(String),
    /// An operating-system error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The settings of a run that [`Error::Invalid`] can point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    LearningRate,
    Momentum,
    WeightDecay,
    Betas,
    Eps,
    Alpha,
    BatchSize,
    Epochs,
    MaxSteps,
    ClipGradNorm,
    ClipGradValue,
    Loss,
    Schedule,
    Threads,
}

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
