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

impl Error {
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
